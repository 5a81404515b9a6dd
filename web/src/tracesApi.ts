// The trace routes the traces pages call: MLflow 3's `ajax-api/3.0/mlflow/traces/...` for
// search, trace info and assessments, and `get-trace-artifact` for the spans, which answers
// for spans wherever the server keeps them (its database or the artifact store).
import { ApiError, get, v3, type Page } from "./api";
import { normalizeSpan, type Assessment, type Span, type TraceInfo } from "./pages/traceModel";

/** The `locations` of a trace search over one experiment's traces. */
export const experimentLocations = (experimentId: string) => [{ type: "MLFLOW_EXPERIMENT", mlflow_experiment: { experiment_id: experimentId } }];

export async function searchTraces(opts: {
  experimentId: string;
  filter?: string;
  orderBy?: string[];
  pageToken?: string;
  maxResults?: number;
}): Promise<Page<TraceInfo>> {
  const r = await v3.post<{ traces?: TraceInfo[]; next_page_token?: string }>("traces/search", {
    locations: experimentLocations(opts.experimentId),
    filter: opts.filter || undefined,
    order_by: opts.orderBy?.length ? opts.orderBy : undefined,
    max_results: opts.maxResults ?? 100,
    page_token: opts.pageToken,
  });
  return { items: r.traces ?? [], nextPageToken: r.next_page_token || undefined };
}

export async function getTraceInfo(traceId: string): Promise<TraceInfo> {
  const r = await v3.get<{ trace?: { trace_info?: TraceInfo } }>(`traces/${encodeURIComponent(traceId)}`);
  if (!r.trace?.trace_info) throw new ApiError(`Trace ${traceId} not found`, 404, "RESOURCE_DOES_NOT_EXIST");
  return r.trace.trace_info;
}

export async function getTraceSpans(traceId: string): Promise<Span[]> {
  const r = await get<{ spans?: Record<string, unknown>[] }>("get-trace-artifact", { request_id: traceId });
  return (r.spans ?? []).map(normalizeSpan);
}

export async function createAssessment(traceId: string, assessment: Assessment): Promise<Assessment> {
  const r = await v3.post<{ assessment: Assessment }>(`traces/${encodeURIComponent(traceId)}/assessments`, { assessment });
  return r.assessment;
}

/** Changes the named fields of an assessment in place (MLflow's `UpdateAssessment`). */
export async function updateAssessment(
  traceId: string,
  assessmentId: string,
  fields: Pick<Assessment, "feedback" | "expectation" | "rationale">,
): Promise<Assessment> {
  const paths = Object.keys(fields).filter((k) => (fields as Record<string, unknown>)[k] !== undefined);
  const r = await v3.patch<{ assessment: Assessment }>(
    `traces/${encodeURIComponent(traceId)}/assessments/${encodeURIComponent(assessmentId)}`,
    { assessment: { assessment_id: assessmentId, trace_id: traceId, ...fields }, update_mask: paths.join(",") },
  );
  return r.assessment;
}
