// The evaluation runs of an experiment and the traces `mlflow.genai.evaluate` linked to them,
// read over the routes MLflow's own UI reads: run search, the v3 trace search filtered by run, and
// each trace's span data for the full inputs and outputs of the evaluated item.
import { get, getRun, searchRuns, v3, type Run } from "./api";
import { experimentLocations } from "./tracesApi";
import { evaluationRow, rootSpanIO, sortRows, type EvaluationRow, type SpanIO, type TraceInfoJson } from "./pages/evaluationRows";

/** The run tag `mlflow.genai.evaluate` sets on the runs it makes. */
export const RUN_TYPE_TAG = "mlflow.runType";
export const GENAI_EVALUATE_RUN_TYPE = "genai_evaluate";

export function isEvaluationRun(run: Run): boolean {
  return (run.data.tags ?? []).some((t) => t.key === RUN_TYPE_TAG && t.value === GENAI_EVALUATE_RUN_TYPE);
}

export async function listEvaluationRuns(experimentId: string): Promise<Run[]> {
  const out: Run[] = [];
  let pageToken: string | undefined;
  do {
    const page = await searchRuns({
      experimentIds: [experimentId],
      filter: `tags.\`${RUN_TYPE_TAG}\` = '${GENAI_EVALUATE_RUN_TYPE}'`,
      orderBy: ["attributes.start_time DESC"],
      pageToken,
      maxResults: 500,
    });
    out.push(...page.items);
    pageToken = page.nextPageToken;
  } while (pageToken && out.length < 5000);
  return out;
}

/** Every trace linked to the run (its `mlflow.sourceRun` metadata or a run link), assessments
 * included. */
export async function searchRunTraces(experimentId: string, runId: string): Promise<TraceInfoJson[]> {
  const out: TraceInfoJson[] = [];
  let pageToken: string | undefined;
  do {
    const r = await v3.post<{ traces?: TraceInfoJson[]; next_page_token?: string }>("traces/search", {
      locations: experimentLocations(experimentId),
      filter: `attribute.run_id = '${runId.replace(/'/g, "")}'`,
      max_results: 500,
      order_by: ["timestamp_ms ASC"],
      page_token: pageToken,
    });
    out.push(...(r.traces ?? []));
    pageToken = r.next_page_token || undefined;
  } while (pageToken && out.length < 10000);
  return out;
}

/** The root span's inputs and outputs; undefined where the spans cannot be read (the previews
 * in the trace's info stand in then). */
export async function traceRootIO(traceId: string): Promise<SpanIO | undefined> {
  try {
    const data = await get<{ spans?: unknown[] }>("get-trace-artifact", { request_id: traceId });
    return rootSpanIO(data.spans ?? []);
  } catch {
    return undefined;
  }
}

/** Runs `work` over `items` with at most `limit` calls at a time, answers in input order. */
async function mapLimited<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export interface EvaluationRunData {
  run: Run;
  rows: EvaluationRow[];
}

export async function loadEvaluationRun(experimentId: string, runId: string): Promise<EvaluationRunData> {
  const [run, traces] = await Promise.all([getRun(runId), searchRunTraces(experimentId, runId)]);
  const io = await mapLimited(traces, 6, (t) => traceRootIO(t.trace_id));
  return { run, rows: sortRows(traces.map((t, i) => evaluationRow(t, io[i]))) };
}
