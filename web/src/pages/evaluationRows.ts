// What an evaluation run made by `mlflow.genai.evaluate` holds, read back from the server: one
// trace per evaluated item (its root span's inputs and outputs), the item's expectations and the
// scorers' feedback as assessments on the trace, and the aggregates as `<scorer>/<aggregation>`
// metrics of the run.
import type { Metric } from "../api";

export interface AssessmentJson {
  assessment_id?: string;
  assessment_name?: string;
  trace_id?: string;
  source?: { source_type?: string; source_id?: string };
  create_time?: string;
  last_update_time?: string;
  feedback?: { value?: unknown; error?: { error_code?: string; error_message?: string } };
  expectation?: { value?: unknown; serialized_value?: { serialization_format?: string; value?: string } };
  rationale?: string;
  metadata?: Record<string, string>;
  valid?: boolean;
}

export interface TraceInfoJson {
  trace_id: string;
  request_time?: string;
  execution_duration?: string;
  state?: string;
  request_preview?: string;
  response_preview?: string;
  trace_metadata?: Record<string, string>;
  tags?: Record<string, string>;
  assessments?: AssessmentJson[];
}

export interface ScorerResult {
  value: unknown;
  rationale?: string;
  error?: string;
  source?: string;
}

export interface EvaluationRow {
  traceId: string;
  requestTime?: number;
  inputs: unknown;
  outputs: unknown;
  expectations: Record<string, unknown>;
  scores: Record<string, ScorerResult>;
}

export interface SpanIO {
  inputs: unknown;
  outputs: unknown;
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function timeOf(text: string | undefined): number {
  if (!text) return 0;
  const n = Number(text);
  if (Number.isFinite(n)) return n;
  const t = Date.parse(text);
  return Number.isNaN(t) ? 0 : t;
}

export function expectationValue(a: AssessmentJson): unknown {
  const serialized = a.expectation?.serialized_value;
  if (serialized?.value !== undefined) return parseJson(serialized.value);
  return a.expectation?.value;
}

/** The inputs and outputs of a trace's root span, from the span dictionaries of its
 * `traces.json` (attributes hold JSON-encoded strings). */
export function rootSpanIO(spans: unknown[]): SpanIO | undefined {
  const isRoot = (s: Record<string, unknown>) => {
    const parent = s.parent_span_id ?? s.parent_id;
    return parent === undefined || parent === null || parent === "";
  };
  const root = (spans as Record<string, unknown>[]).find((s) => s && typeof s === "object" && isRoot(s));
  if (!root) return undefined;
  const attributes = (root.attributes ?? {}) as Record<string, unknown>;
  const attr = (key: string) => {
    const v = attributes[key];
    return typeof v === "string" ? parseJson(v) : v;
  };
  return {
    inputs: attr("mlflow.spanInputs") ?? root.inputs,
    outputs: attr("mlflow.spanOutputs") ?? root.outputs,
  };
}

/** One evaluated item. Of several assessments with one name (a scorer's result and a later
 * correction) the latest valid one counts, as in MLflow's UI. */
export function evaluationRow(info: TraceInfoJson, io?: SpanIO): EvaluationRow {
  const latest = new Map<string, AssessmentJson>();
  for (const a of info.assessments ?? []) {
    if (a.valid === false || !a.assessment_name) continue;
    const kind = a.expectation ? "e" : a.feedback ? "f" : undefined;
    if (!kind) continue;
    const key = `${kind}:${a.assessment_name}`;
    const seen = latest.get(key);
    if (!seen || timeOf(a.last_update_time ?? a.create_time) >= timeOf(seen.last_update_time ?? seen.create_time)) latest.set(key, a);
  }
  const expectations: Record<string, unknown> = {};
  const scores: Record<string, ScorerResult> = {};
  for (const [key, a] of latest) {
    const name = a.assessment_name as string;
    if (key.startsWith("e:")) {
      expectations[name] = expectationValue(a);
    } else {
      const error = a.feedback?.error;
      scores[name] = {
        value: a.feedback?.value ?? null,
        rationale: a.rationale || undefined,
        error: error ? [error.error_code, error.error_message].filter(Boolean).join(": ") || "Error" : undefined,
        source: a.source?.source_id || a.source?.source_type,
      };
    }
  }
  return {
    traceId: info.trace_id,
    requestTime: timeOf(info.request_time) || undefined,
    inputs: io ? io.inputs : parseJson(info.request_preview),
    outputs: io ? io.outputs : parseJson(info.response_preview),
    expectations,
    scores,
  };
}

/** The scorers that judged any of the rows, in name order. */
export function scorerNames(...rowSets: EvaluationRow[][]): string[] {
  const names = new Set<string>();
  for (const rows of rowSets) for (const r of rows) for (const n of Object.keys(r.scores)) names.add(n);
  return [...names].sort();
}

export interface Aggregate {
  key: string;
  scorer: string;
  aggregation: string;
  value: number;
}

/** The run's `<scorer>/<aggregation>` metrics (the scorer's name may itself contain `/`). */
export function aggregates(metrics: Metric[] | undefined): Aggregate[] {
  const out: Aggregate[] = [];
  for (const m of metrics ?? []) {
    const cut = m.key.lastIndexOf("/");
    if (cut <= 0 || cut === m.key.length - 1) continue;
    out.push({ key: m.key, scorer: m.key.slice(0, cut), aggregation: m.key.slice(cut + 1), value: Number(m.value) });
  }
  return out.sort((a, b) => a.scorer.localeCompare(b.scorer) || a.aggregation.localeCompare(b.aggregation));
}

/** A stable text for a JSON value: object keys sorted, so equal inputs logged in a different key
 * order still match. */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return "undefined";
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

export interface MatchedRow {
  key: string;
  left?: EvaluationRow;
  right?: EvaluationRow;
}

/** Pairs the rows of two runs that evaluated the same inputs; an input evaluated several times
 * pairs its occurrences in order. Rows only one run has are kept with the other side empty. */
export function matchRows(left: EvaluationRow[], right: EvaluationRow[]): MatchedRow[] {
  const pending = new Map<string, EvaluationRow[]>();
  for (const r of right) {
    const k = canonicalJson(r.inputs);
    const list = pending.get(k);
    if (list) list.push(r);
    else pending.set(k, [r]);
  }
  const out: MatchedRow[] = [];
  for (const l of left) {
    const k = canonicalJson(l.inputs);
    const match = pending.get(k)?.shift();
    out.push({ key: k, left: l, right: match });
  }
  for (const r of right) {
    const k = canonicalJson(r.inputs);
    const rest = pending.get(k);
    if (rest && rest.includes(r)) out.push({ key: k, right: r });
  }
  return out;
}

/** A feedback value as a number where MLflow's aggregation reads one: booleans and yes/no. */
export function scoreNumber(value: unknown): number | undefined {
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value === "number") return value;
  if (typeof value === "string") {
    const v = value.toLowerCase();
    if (v === "yes") return 1;
    if (v === "no") return 0;
  }
  return undefined;
}

export type Verdict = "pass" | "fail" | "neutral";

export function verdict(value: unknown): Verdict {
  if (value === true || (typeof value === "string" && value.toLowerCase() === "yes")) return "pass";
  if (value === false || (typeof value === "string" && value.toLowerCase() === "no")) return "fail";
  return "neutral";
}

export function formatScore(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string") return value;
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
  return JSON.stringify(value);
}

/** Rows in the order their items were evaluated, ties by inputs so the order is stable. */
export function sortRows(rows: EvaluationRow[]): EvaluationRow[] {
  return [...rows].sort((a, b) => (a.requestTime ?? 0) - (b.requestTime ?? 0) || canonicalJson(a.inputs).localeCompare(canonicalJson(b.inputs)));
}
