// The trace routes the traces pages call: MLflow 3's `ajax-api/3.0/mlflow/traces/...` for
// search, trace info and assessments, and `get-trace-artifact` for the spans, which answers
// for spans wherever the server keeps them (its database or the artifact store).
import { ApiError } from "./api";
import { normalizeSpan, type Assessment, type Span, type TraceInfo } from "./pages/traceModel";

const V3 = "ajax-api/3.0/mlflow";
const V2 = "ajax-api/2.0/mlflow";

async function call<T>(method: string, url: string, body?: unknown): Promise<T> {
  const response = await fetch(url, {
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

export async function searchTraces(opts: {
  experimentId: string;
  filter?: string;
  orderBy?: string[];
  pageToken?: string;
  maxResults?: number;
}): Promise<{ traces: TraceInfo[]; nextPageToken?: string }> {
  const r = await call<{ traces?: TraceInfo[]; next_page_token?: string }>("POST", `${V3}/traces/search`, {
    locations: [{ type: "MLFLOW_EXPERIMENT", mlflow_experiment: { experiment_id: opts.experimentId } }],
    filter: opts.filter || undefined,
    order_by: opts.orderBy?.length ? opts.orderBy : undefined,
    max_results: opts.maxResults ?? 100,
    page_token: opts.pageToken,
  });
  return { traces: r.traces ?? [], nextPageToken: r.next_page_token || undefined };
}

export async function getTraceInfo(traceId: string): Promise<TraceInfo> {
  const r = await call<{ trace?: { trace_info?: TraceInfo } }>("GET", `${V3}/traces/${encodeURIComponent(traceId)}`);
  if (!r.trace?.trace_info) throw new ApiError(`Trace ${traceId} not found`, 404, "RESOURCE_DOES_NOT_EXIST");
  return r.trace.trace_info;
}

export async function getTraceSpans(traceId: string): Promise<Span[]> {
  const r = await call<{ spans?: Record<string, unknown>[] }>("GET", `${V2}/get-trace-artifact?request_id=${encodeURIComponent(traceId)}`);
  return (r.spans ?? []).map(normalizeSpan);
}

export async function createAssessment(traceId: string, assessment: Assessment): Promise<Assessment> {
  const r = await call<{ assessment: Assessment }>("POST", `${V3}/traces/${encodeURIComponent(traceId)}/assessments`, { assessment });
  return r.assessment;
}

/** Changes the named fields of an assessment in place (MLflow's `UpdateAssessment`). */
export async function updateAssessment(
  traceId: string,
  assessmentId: string,
  fields: Pick<Assessment, "feedback" | "expectation" | "rationale">,
): Promise<Assessment> {
  const paths = Object.keys(fields).filter((k) => (fields as Record<string, unknown>)[k] !== undefined);
  const r = await call<{ assessment: Assessment }>(
    "PATCH",
    `${V3}/traces/${encodeURIComponent(traceId)}/assessments/${encodeURIComponent(assessmentId)}`,
    { assessment: { assessment_id: assessmentId, trace_id: traceId, ...fields }, update_mask: paths.join(",") },
  );
  return r.assessment;
}
