// An experiment's logged models (MLflow 3's "Models" tab, `#/experiments/{id}/models`): each
// model with its metrics by dataset, its parameters and the registry versions made from it.
import { post, runName, searchRuns, tagValue, type LoggedModel, type Metric } from "../api";
import { ErrorBanner, Spinner, StatusBadge, useAsync } from "../components/common";
import { formatNumber, formatTime } from "../format";
import { href } from "../router";
import "../models.css";

/** A logged model's metric: MLflow 3 records the dataset it was computed on, if any. */
export type ModelMetric = Metric & { dataset_name?: string; dataset_digest?: string; model_id?: string };

export type ModelWithRegistrations = LoggedModel & {
  info: LoggedModel["info"] & { registrations?: { name: string; version: string }[] };
};

/** The value of one metric on one dataset (`dataset` empty when none was given). */
export interface MetricByDataset {
  key: string;
  datasetName: string;
  datasetDigest: string;
  value: number | string;
  step: number;
  timestamp: number;
  runId?: string;
}

const byNumber = (a: number | string | undefined, b: number | string | undefined) => Number(a ?? 0) - Number(b ?? 0);

/** One entry per (metric, dataset): the latest by step, then by time, as a model's metric
 * history ends there; sorted by key, then by dataset name and digest. */
export function metricsByDataset(metrics: ModelMetric[] | undefined): MetricByDataset[] {
  const latest = new Map<string, ModelMetric>();
  for (const m of metrics ?? []) {
    const id = JSON.stringify([m.key, m.dataset_name ?? "", m.dataset_digest ?? ""]);
    const seen = latest.get(id);
    if (!seen || byNumber(m.step, seen.step) > 0 || (byNumber(m.step, seen.step) === 0 && byNumber(m.timestamp, seen.timestamp) >= 0)) latest.set(id, m);
  }
  return [...latest.values()]
    .map((m) => ({
      key: m.key,
      datasetName: m.dataset_name ?? "",
      datasetDigest: m.dataset_digest ?? "",
      value: m.value,
      step: Number(m.step ?? 0),
      timestamp: Number(m.timestamp ?? 0),
      runId: m.run_id,
    }))
    .sort((a, b) => compareText(a.key, b.key) || compareText(a.datasetName, b.datasetName) || compareText(a.datasetDigest, b.datasetDigest));
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A metric column of the Models tab: one per (metric, dataset) seen in any model. */
export interface MetricColumn {
  id: string;
  key: string;
  datasetName: string;
  datasetDigest: string;
  /** Several digests share this dataset name somewhere in the table, so the digest is shown. */
  showDigest: boolean;
}

export const metricColumnId = (key: string, datasetName: string, datasetDigest: string) => JSON.stringify([key, datasetName, datasetDigest]);

export function metricColumns(models: ModelWithRegistrations[]): MetricColumn[] {
  const seen = new Map<string, MetricColumn>();
  const digestsByName = new Map<string, Set<string>>();
  for (const model of models) {
    for (const m of metricsByDataset(model.data?.metrics)) {
      const id = metricColumnId(m.key, m.datasetName, m.datasetDigest);
      if (!seen.has(id)) seen.set(id, { id, key: m.key, datasetName: m.datasetName, datasetDigest: m.datasetDigest, showDigest: false });
      if (m.datasetName) digestsByName.set(m.datasetName, (digestsByName.get(m.datasetName) ?? new Set()).add(m.datasetDigest));
    }
  }
  return [...seen.values()]
    .map((c) => ({ ...c, showDigest: (digestsByName.get(c.datasetName)?.size ?? 0) > 1 }))
    .sort((a, b) => compareText(a.key, b.key) || compareText(a.datasetName, b.datasetName) || compareText(a.datasetDigest, b.datasetDigest));
}

/** The registry versions made from a logged model: the server's list when it sends one, else
 * the `mlflow.modelVersions` tag MLflow's client writes when it registers the model. */
export function registeredVersions(model: ModelWithRegistrations): { name: string; version: string }[] {
  if (model.info.registrations?.length) return model.info.registrations;
  const tag = tagValue(model.info.tags, "mlflow.modelVersions");
  if (!tag) return [];
  try {
    const parsed: unknown = JSON.parse(tag);
    return Array.isArray(parsed)
      ? parsed.filter((v) => v && typeof v.name === "string" && v.version != null).map((v) => ({ name: v.name as string, version: String(v.version) }))
      : [];
  } catch {
    return [];
  }
}

/** A dataset for people: its name and the start of its digest, which tells versions apart. */
export function DatasetLabel({ name, digest }: { name: string; digest: string }) {
  if (!name && !digest) return <span className="muted">—</span>;
  return (
    <span className="dataset-cell" title={digest ? `${name} (digest ${digest})` : name}>
      {name || <span className="muted">unnamed</span>}
      {digest && <span className="digest">{digest.slice(0, 8)}</span>}
    </span>
  );
}

const PARAMS_SHOWN = 4;

function CompactParams({ params }: { params: { key: string; value: string }[] }) {
  if (params.length === 0) return <span className="muted">—</span>;
  const sorted = [...params].sort((a, b) => compareText(a.key, b.key));
  return (
    <div className="params" title={sorted.map((p) => `${p.key}=${p.value}`).join("\n")}>
      {sorted.slice(0, PARAMS_SHOWN).map((p) => (
        <span key={p.key} data-param={p.key}>
          <span className="param-key">{p.key}=</span>
          {p.value.length > 24 ? `${p.value.slice(0, 24)}…` : p.value}
        </span>
      ))}
      {sorted.length > PARAMS_SHOWN && <span className="muted">+{sorted.length - PARAMS_SHOWN} more</span>}
    </div>
  );
}

/** The names of the runs that logged `models`, for people; a run it cannot find keeps its id. */
async function sourceRunNames(models: LoggedModel[]): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  const runIds = [...new Set(models.map((m) => m.info.source_run_id).filter((id): id is string => !!id))];
  const experimentIds = [...new Set(models.map((m) => m.info.experiment_id))];
  for (let i = 0; i < runIds.length; i += 100) {
    const chunk = runIds.slice(i, i + 100);
    try {
      const page = await searchRuns({
        experimentIds,
        filter: `attributes.run_id IN (${chunk.map((id) => `'${id.replace(/'/g, "")}'`).join(", ")})`,
        maxResults: chunk.length,
        viewType: "ALL",
      });
      for (const run of page.items) names.set(run.info.run_id, runName(run));
    } catch {
      // The ids still identify the runs.
    }
  }
  return names;
}

export function ExperimentModels({ experimentIds }: { experimentIds: string[] }) {
  const { data, error, loading } = useAsync(async () => {
    const models: ModelWithRegistrations[] = [];
    let pageToken: string | undefined;
    do {
      // The server allows at most 50 logged models a page, as MLflow does.
      const r = await post<{ models?: ModelWithRegistrations[]; next_page_token?: string }>("logged-models/search", {
        experiment_ids: experimentIds,
        max_results: 50,
        page_token: pageToken,
      });
      models.push(...(r.models ?? []));
      pageToken = r.next_page_token || undefined;
    } while (pageToken && models.length < 1000);
    return { models, runNames: await sourceRunNames(models) };
  }, [experimentIds.join(",")]);
  if (loading) return <Spinner />;
  const models = data?.models ?? [];
  const columns = metricColumns(models);
  const fixedColumns = 6;
  return (
    <>
      <ErrorBanner error={error} />
      <div className="logged-models-wrap">
        <table className="grid logged-models" aria-label="Logged models">
          <thead>
            <tr>
              <th>Model</th>
              <th>Status</th>
              <th>Created</th>
              <th>Source run</th>
              <th>Registered versions</th>
              {columns.map((c) => (
                <th key={c.id} className="metric-col" data-metric-column={c.key} data-dataset={c.datasetName}>
                  {c.key}
                  {(c.datasetName || c.datasetDigest) && (
                    <span className="header-dataset">
                      {c.datasetName || "unnamed"}
                      {c.showDigest && c.datasetDigest ? ` (${c.datasetDigest.slice(0, 8)})` : ""}
                    </span>
                  )}
                </th>
              ))}
              <th>Parameters</th>
            </tr>
          </thead>
          <tbody>
            {models.map((m) => {
              const values = new Map(metricsByDataset(m.data?.metrics).map((v) => [metricColumnId(v.key, v.datasetName, v.datasetDigest), v]));
              const versions = registeredVersions(m);
              return (
                <tr key={m.info.model_id} data-model-id={m.info.model_id}>
                  <td>
                    <a href={href(["experiments", m.info.experiment_id, "models", m.info.model_id])}>{m.info.name}</a>
                    {m.info.model_type && <div className="muted">{m.info.model_type}</div>}
                  </td>
                  <td>
                    <StatusBadge status={m.info.status?.replace("LOGGED_MODEL_", "")} />
                  </td>
                  <td>{formatTime(m.info.creation_timestamp_ms)}</td>
                  <td>
                    {m.info.source_run_id ? (
                      <a className="mono" href={href(["experiments", m.info.experiment_id, "runs", m.info.source_run_id])}>
                        {data?.runNames.get(m.info.source_run_id) ?? m.info.source_run_id.slice(0, 8)}
                      </a>
                    ) : (
                      "—"
                    )}
                  </td>
                  <td>
                    {versions.length === 0 && <span className="muted">—</span>}
                    {versions.map((v) => (
                      <a key={`${v.name}/${v.version}`} className="chip" href={href(["models", v.name, "versions", v.version])}>
                        {v.name} v{v.version}
                      </a>
                    ))}
                  </td>
                  {columns.map((c) => {
                    const v = values.get(c.id);
                    return (
                      <td key={c.id} className="metric-col" data-metric-column={c.key} data-dataset={c.datasetName}>
                        {v ? formatNumber(v.value) : <span className="muted">—</span>}
                      </td>
                    );
                  })}
                  <td>
                    <CompactParams params={m.data?.params ?? []} />
                  </td>
                </tr>
              );
            })}
            {data && models.length === 0 && (
              <tr>
                <td colSpan={fixedColumns + columns.length} className="muted">
                  No logged models.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </>
  );
}
