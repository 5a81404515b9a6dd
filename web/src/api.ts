// Typed access to the tracking and registry API, the same `/ajax-api/` routes MLflow's own UI
// uses, so the UI works against any deployment of the server without extra endpoints.

export interface KeyValue {
  key: string;
  value: string;
}

export interface Metric {
  key: string;
  value: number | string;
  timestamp: number;
  step: number;
  run_id?: string;
}

export interface RunInfo {
  run_id: string;
  run_name?: string;
  experiment_id: string;
  user_id?: string;
  status: string;
  start_time?: number;
  end_time?: number;
  artifact_uri?: string;
  lifecycle_stage?: string;
}

export interface Dataset {
  name: string;
  digest: string;
  source_type?: string;
  source?: string;
  schema?: string;
  profile?: string;
}

export interface DatasetInput {
  tags?: KeyValue[];
  dataset: Dataset;
}

export interface Run {
  info: RunInfo;
  data: { metrics?: Metric[]; params?: KeyValue[]; tags?: KeyValue[] };
  inputs?: { dataset_inputs?: DatasetInput[]; model_inputs?: { model_id: string }[] };
  outputs?: { model_outputs?: { model_id: string; step?: number }[] };
}

export interface Experiment {
  experiment_id: string;
  name: string;
  artifact_location?: string;
  lifecycle_stage?: string;
  creation_time?: number;
  last_update_time?: number;
  tags?: KeyValue[];
}

export interface LoggedModel {
  info: {
    model_id: string;
    experiment_id: string;
    name: string;
    artifact_uri?: string;
    creation_timestamp_ms?: number;
    last_updated_timestamp_ms?: number;
    status?: string;
    source_run_id?: string;
    model_type?: string;
    tags?: KeyValue[];
  };
  data?: { params?: KeyValue[]; metrics?: Metric[] };
}

export interface ModelVersion {
  name: string;
  version: string;
  creation_timestamp?: number;
  last_updated_timestamp?: number;
  current_stage?: string;
  description?: string;
  source?: string;
  run_id?: string;
  status?: string;
  user_id?: string;
  tags?: KeyValue[];
  aliases?: string[];
  model_id?: string;
}

export interface RegisteredModel {
  name: string;
  creation_timestamp?: number;
  last_updated_timestamp?: number;
  description?: string;
  latest_versions?: ModelVersion[];
  tags?: KeyValue[];
  aliases?: { alias: string; version: string }[];
}

export interface ArtifactFile {
  path: string;
  is_dir: boolean;
  file_size?: number | string;
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

const BASE = "ajax-api/2.0/mlflow";
/** MLflow 3's routes (traces and their assessments), beside the 2.0 ones under `BASE`. */
const BASE_V3 = "ajax-api/3.0/mlflow";

type Query = Record<string, string | number | boolean | string[] | undefined>;

function queryString(query: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) value.forEach((v) => params.append(key, v));
    else params.append(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

async function call<T>(method: string, base: string, path: string, body?: unknown, query: Query = {}): Promise<T> {
  const response = await fetch(`${base}/${path}${queryString(query)}`, {
    method,
    headers: body === undefined ? undefined : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json: unknown = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    if (!response.ok) throw new ApiError(text || response.statusText, response.status);
  }
  if (!response.ok) {
    const err = json as { message?: string; error_code?: string };
    throw new ApiError(err.message ?? response.statusText, response.status, err.error_code);
  }
  return json as T;
}

export const get = <T>(path: string, query: Query = {}) => call<T>("GET", BASE, path, undefined, query);
export const post = <T>(path: string, body: unknown) => call<T>("POST", BASE, path, body);
export const patch = <T>(path: string, body: unknown) => call<T>("PATCH", BASE, path, body);
export const del = <T>(path: string, body: unknown) => call<T>("DELETE", BASE, path, body);

/** The same calls on MLflow 3's routes. */
export const v3 = {
  get: <T>(path: string, query: Query = {}) => call<T>("GET", BASE_V3, path, undefined, query),
  post: <T>(path: string, body: unknown) => call<T>("POST", BASE_V3, path, body),
  patch: <T>(path: string, body: unknown) => call<T>("PATCH", BASE_V3, path, body),
};

export interface Page<T> {
  items: T[];
  nextPageToken?: string;
}

export async function searchExperiments(opts: {
  filter?: string;
  pageToken?: string;
  maxResults?: number;
  viewType?: string;
}): Promise<Page<Experiment>> {
  const r = await post<{ experiments?: Experiment[]; next_page_token?: string }>("experiments/search", {
    filter: opts.filter || undefined,
    max_results: opts.maxResults ?? 1000,
    page_token: opts.pageToken,
    order_by: ["last_update_time DESC"],
    view_type: opts.viewType ?? "ACTIVE_ONLY",
  });
  return { items: r.experiments ?? [], nextPageToken: r.next_page_token || undefined };
}

export async function getExperiment(id: string): Promise<Experiment> {
  const r = await get<{ experiment: Experiment }>("experiments/get", { experiment_id: id });
  return r.experiment;
}

export async function searchRuns(opts: {
  experimentIds: string[];
  filter?: string;
  orderBy?: string[];
  pageToken?: string;
  maxResults?: number;
  viewType?: string;
}): Promise<Page<Run>> {
  const r = await post<{ runs?: Run[]; next_page_token?: string }>("runs/search", {
    experiment_ids: opts.experimentIds,
    filter: opts.filter || undefined,
    order_by: opts.orderBy,
    page_token: opts.pageToken,
    max_results: opts.maxResults ?? 250,
    run_view_type: opts.viewType ?? "ACTIVE_ONLY",
  });
  return { items: r.runs ?? [], nextPageToken: r.next_page_token || undefined };
}

export async function searchRegisteredModels(opts: { filter?: string; pageToken?: string; maxResults?: number }): Promise<Page<RegisteredModel>> {
  const r = await get<{ registered_models?: RegisteredModel[]; next_page_token?: string }>("registered-models/search", {
    filter: opts.filter || undefined,
    max_results: opts.maxResults ?? 100,
    page_token: opts.pageToken,
    order_by: ["name ASC"],
  });
  return { items: r.registered_models ?? [], nextPageToken: r.next_page_token || undefined };
}

export async function getRun(runId: string): Promise<Run> {
  const r = await get<{ run: Run }>("runs/get", { run_id: runId });
  return r.run;
}

/** At most this many runs per bulk-history request, as the server enforces. */
export const MAX_RUNS_PER_HISTORY_REQUEST = 100;
/** The server samples each run's history down to at most this many steps. */
export const MAX_POINTS_PER_RUN = 2500;

export async function metricHistorySampled(opts: {
  runIds: string[];
  key: string;
  maxResults?: number;
  startStep?: number;
  endStep?: number;
}): Promise<Metric[]> {
  const out: Metric[] = [];
  for (let i = 0; i < opts.runIds.length; i += MAX_RUNS_PER_HISTORY_REQUEST) {
    const r = await get<{ metrics?: Metric[] }>("metrics/get-history-bulk-interval", {
      run_ids: opts.runIds.slice(i, i + MAX_RUNS_PER_HISTORY_REQUEST),
      metric_key: opts.key,
      max_results: opts.maxResults ?? 1000,
      start_step: opts.startStep,
      end_step: opts.endStep,
    });
    out.push(...(r.metrics ?? []));
  }
  return out;
}

export function tagValue(tags: KeyValue[] | undefined, key: string): string | undefined {
  return tags?.find((t) => t.key === key)?.value;
}

export function runName(run: Run): string {
  return run.info.run_name || tagValue(run.data.tags, "mlflow.runName") || run.info.run_id;
}

export const artifactUrl = (runId: string, path: string) =>
  `get-artifact${queryString({ path, run_uuid: runId })}`;

export const modelVersionArtifactUrl = (name: string, version: string, path: string) =>
  `model-versions/get-artifact${queryString({ path, name, version })}`;

export const loggedModelArtifactUrl = (modelId: string, path: string) =>
  `${BASE}/logged-models/${encodeURIComponent(modelId)}/artifacts/files${queryString({ artifact_file_path: path })}`;

export async function listArtifacts(source: ArtifactSource, path: string): Promise<ArtifactFile[]> {
  if (source.kind === "run") {
    const r = await get<{ files?: ArtifactFile[] }>("artifacts/list", { run_uuid: source.id, path: path || undefined });
    return r.files ?? [];
  }
  const r = await get<{ files?: ArtifactFile[] }>(
    `logged-models/${encodeURIComponent(source.id)}/artifacts/directories`,
    { artifact_directory_path: path || undefined },
  );
  return r.files ?? [];
}

export type ArtifactSource = { kind: "run"; id: string } | { kind: "logged-model"; id: string };

export function artifactDownloadUrl(source: ArtifactSource, path: string): string {
  return source.kind === "run" ? artifactUrl(source.id, path) : loggedModelArtifactUrl(source.id, path);
}
