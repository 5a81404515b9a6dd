// What the traces pages compute from the server's answers, kept free of React so it can be
// tested alone: trace infos as MLflow 3 sends them (proto JSON: timestamps as RFC 3339 text,
// durations as "1.5s"), spans in any of the shapes a server returns them (MLflow 3's
// `Span.to_dict` with JSON-encoded attributes, OpenTelemetry's JSON with typed values, MLflow 2's
// span documents), the span tree, chat conversations and assessments.

export interface AssessmentSource {
  source_type?: string;
  source_id?: string;
}

export interface Assessment {
  assessment_id: string;
  assessment_name: string;
  trace_id?: string;
  span_id?: string;
  source?: AssessmentSource;
  create_time?: string | number;
  last_update_time?: string | number;
  feedback?: { value?: unknown; error?: { error_code?: string; error_message?: string } };
  expectation?: { value?: unknown; serialized_value?: { serialization_format?: string; value?: string } };
  rationale?: string;
  metadata?: Record<string, string>;
  overrides?: string;
  valid?: boolean;
}

export interface TraceInfo {
  trace_id: string;
  client_request_id?: string;
  trace_location?: { type?: string; mlflow_experiment?: { experiment_id?: string } };
  request_preview?: string;
  response_preview?: string;
  request_time?: string | number;
  execution_duration?: string | number;
  state?: string;
  trace_metadata?: Record<string, string>;
  tags?: Record<string, string>;
  assessments?: Assessment[];
}

export const SOURCE_RUN_KEY = "mlflow.sourceRun";
export const MODEL_ID_KEY = "mlflow.modelId";

/** Milliseconds since the epoch of a proto timestamp (RFC 3339 text) or a number of ms. */
export function timestampMs(value: string | number | undefined | null): number | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value === "number") return value;
  if (/^-?\d+(\.\d+)?$/.test(value.trim())) return Number(value);
  const parsed = Date.parse(value);
  return Number.isNaN(parsed) ? undefined : parsed;
}

/** Milliseconds of a proto duration ("1.250s") or a number of ms. */
export function durationMs(value: string | number | undefined | null): number | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value === "number") return value;
  const m = /^\s*(-?\d+(?:\.\d+)?)s\s*$/.exec(value);
  if (m) return Number(m[1]) * 1000;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

export function formatMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export const traceExperimentId = (info: TraceInfo) => info.trace_location?.mlflow_experiment?.experiment_id;
export const sourceRunId = (info: TraceInfo) => info.trace_metadata?.[SOURCE_RUN_KEY] || undefined;
export const modelId = (info: TraceInfo) => info.trace_metadata?.[MODEL_ID_KEY] || undefined;

/** Tags a user set, without the ones MLflow keeps for itself (`mlflow.*`). */
export function userTags(info: TraceInfo): [string, string][] {
  return Object.entries(info.tags ?? {})
    .filter(([k]) => !k.startsWith("mlflow."))
    .sort(([a], [b]) => a.localeCompare(b));
}

// ---------------------------------------------------------------------------------------------
// list columns and sorting

export type TraceColumnId = "request" | "response" | "status" | "latency" | "time" | "tags" | "run" | "model";

export interface TraceColumn {
  id: TraceColumnId;
  label: string;
  /** The `order_by` key the server sorts by; columns without one are sorted in the page. */
  orderKey?: string;
  value: (info: TraceInfo) => string | number | undefined;
}

export const TRACE_COLUMNS: TraceColumn[] = [
  { id: "request", label: "Request", value: (t) => t.request_preview ?? "" },
  { id: "response", label: "Response", value: (t) => t.response_preview ?? "" },
  { id: "status", label: "Status", orderKey: "status", value: (t) => t.state ?? "" },
  { id: "latency", label: "Execution time", orderKey: "execution_time_ms", value: (t) => durationMs(t.execution_duration) },
  { id: "time", label: "Request time", orderKey: "timestamp_ms", value: (t) => timestampMs(t.request_time) },
  { id: "tags", label: "Tags", value: (t) => userTags(t).map(([k, v]) => `${k}=${v}`).join(", ") },
  { id: "run", label: "Source run", orderKey: "run_id", value: (t) => sourceRunId(t) ?? "" },
  { id: "model", label: "Logged model", value: (t) => modelId(t) ?? "" },
];

export interface TraceSort {
  column: TraceColumnId;
  descending: boolean;
}

export const DEFAULT_SORT: TraceSort = { column: "time", descending: true };

/** `?sort=latency:desc` as the page keeps it in its deep link. */
export function parseSort(text: string | null | undefined): TraceSort {
  if (!text) return DEFAULT_SORT;
  const [column, direction] = text.split(":");
  if (!TRACE_COLUMNS.some((c) => c.id === column)) return DEFAULT_SORT;
  return { column: column as TraceColumnId, descending: direction !== "asc" };
}

export const sortParam = (sort: TraceSort) => `${sort.column}:${sort.descending ? "desc" : "asc"}`;

/** The next sort when a column's header is clicked: a new column starts descending. */
export function toggleSort(current: TraceSort, column: TraceColumnId): TraceSort {
  return current.column === column ? { column, descending: !current.descending } : { column, descending: true };
}

/** What the server is asked to order by for `sort` (its own default order otherwise). */
export function serverOrderBy(sort: TraceSort): string[] {
  const key = TRACE_COLUMNS.find((c) => c.id === sort.column)?.orderKey;
  return key ? [`${key} ${sort.descending ? "DESC" : "ASC"}`] : [];
}

/** Loaded traces in `sort`'s order when the server cannot sort by that column; missing values
 * go last either way, and equal values keep the server's order. */
export function sortLoaded(traces: TraceInfo[], sort: TraceSort): TraceInfo[] {
  const column = TRACE_COLUMNS.find((c) => c.id === sort.column);
  if (!column || column.orderKey) return traces;
  const keyed = traces.map((t, i) => ({ t, i, v: column.value(t) }));
  const missing = (v: unknown) => v === undefined || v === "";
  keyed.sort((a, b) => {
    if (missing(a.v) || missing(b.v)) return missing(a.v) === missing(b.v) ? a.i - b.i : missing(a.v) ? 1 : -1;
    const c = typeof a.v === "number" && typeof b.v === "number" ? a.v - b.v : String(a.v).localeCompare(String(b.v));
    return c === 0 ? a.i - b.i : sort.descending ? -c : c;
  });
  return keyed.map((k) => k.t);
}

// ---------------------------------------------------------------------------------------------
// spans

export interface SpanEvent {
  name: string;
  timeMs?: number;
  attributes: Record<string, unknown>;
}

export interface Span {
  id: string;
  parentId: string | null;
  name: string;
  type: string;
  startMs: number;
  endMs: number | undefined;
  status: string;
  statusMessage: string;
  /** Attribute values as stored; read them through `spanAttributes`, which decodes them. */
  rawAttributes: Record<string, unknown>;
  /** Whether each attribute value is JSON text still to be parsed (MLflow's span documents). */
  encoded: boolean;
  rawEvents: unknown[];
}

const nsToMs = (ns: unknown): number | undefined => {
  if (ns === undefined || ns === null || ns === "") return undefined;
  const n = Number(ns);
  return Number.isFinite(n) ? n / 1e6 : undefined;
};

/** An OpenTelemetry `AnyValue` in proto JSON as the plain value it holds. */
export function anyValue(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  const v = value as Record<string, unknown>;
  const pick = (snake: string, camel: string) => (snake in v ? v[snake] : v[camel]);
  const s = pick("string_value", "stringValue");
  if (s !== undefined) return s;
  const b = pick("bool_value", "boolValue");
  if (b !== undefined) return b;
  const i = pick("int_value", "intValue");
  if (i !== undefined) return Number(i);
  const d = pick("double_value", "doubleValue");
  if (d !== undefined) return Number(d);
  const arr = pick("array_value", "arrayValue") as { values?: unknown[] } | undefined;
  if (arr !== undefined) return (arr.values ?? []).map(anyValue);
  const kv = pick("kvlist_value", "kvlistValue") as { values?: { key: string; value: unknown }[] } | undefined;
  if (kv !== undefined) return Object.fromEntries((kv.values ?? []).map((e) => [e.key, anyValue(e.value)]));
  const bytes = pick("bytes_value", "bytesValue");
  if (bytes !== undefined) return bytes;
  return null;
}

function parseJsonText(value: unknown): unknown {
  if (typeof value !== "string") return value;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

function statusName(code: unknown): string {
  const text = String(code ?? "").toUpperCase();
  if (text === "1" || text.endsWith("_OK") || text === "OK") return "OK";
  if (text === "2" || text.endsWith("_ERROR") || text === "ERROR") return "ERROR";
  return "UNSET";
}

/** One span from any of the shapes servers send (see the top of this file). */
export function normalizeSpan(raw: Record<string, unknown>): Span {
  const context = raw.context as Record<string, unknown> | undefined;
  let rawAttributes: Record<string, unknown> = {};
  let encoded = true;
  if (Array.isArray(raw.attributes)) {
    encoded = false;
    for (const kv of raw.attributes as { key: string; value: unknown }[]) rawAttributes[kv.key] = anyValue(kv.value);
  } else if (raw.attributes && typeof raw.attributes === "object") {
    rawAttributes = raw.attributes as Record<string, unknown>;
  }
  // MLflow 2's documents keep type, inputs and outputs beside the attributes, already decoded.
  if (context) {
    rawAttributes = { ...rawAttributes };
    for (const [field, key] of [
      ["span_type", "mlflow.spanType"],
      ["inputs", "mlflow.spanInputs"],
      ["outputs", "mlflow.spanOutputs"],
    ] as const) {
      if (raw[field] !== undefined && rawAttributes[key] === undefined) rawAttributes[key] = JSON.stringify(raw[field]);
    }
  }
  const status = raw.status as Record<string, unknown> | string | undefined;
  const parent = (raw.parent_span_id ?? raw.parentSpanId ?? raw.parent_id) as string | null | undefined;
  const typeValue = rawAttributes["mlflow.spanType"];
  const type = encoded ? parseJsonText(typeValue) : typeValue;
  return {
    id: String(raw.span_id ?? raw.spanId ?? context?.span_id ?? ""),
    parentId: parent ? String(parent) : null,
    name: String(raw.name ?? ""),
    type: typeof type === "string" && type ? type : "UNKNOWN",
    startMs: nsToMs(raw.start_time_unix_nano ?? raw.startTimeUnixNano ?? raw.start_time) ?? 0,
    endMs: nsToMs(raw.end_time_unix_nano ?? raw.endTimeUnixNano ?? raw.end_time),
    status: statusName(typeof status === "object" && status ? status.code : (raw.status_code ?? status)),
    statusMessage: String((typeof status === "object" && status ? status.message : raw.status_message) ?? ""),
    rawAttributes,
    encoded,
    rawEvents: Array.isArray(raw.events) ? raw.events : [],
  };
}

const decodedCache = new WeakMap<Span, Record<string, unknown>>();

/** A span's attributes as values (decoded on first use: a 2,000-span trace only pays for the
 * spans a user opens). */
export function spanAttributes(span: Span): Record<string, unknown> {
  let decoded = decodedCache.get(span);
  if (!decoded) {
    decoded = span.encoded
      ? Object.fromEntries(Object.entries(span.rawAttributes).map(([k, v]) => [k, parseJsonText(v)]))
      : span.rawAttributes;
    decodedCache.set(span, decoded);
  }
  return decoded;
}

export const spanInputs = (span: Span) => spanAttributes(span)["mlflow.spanInputs"];
export const spanOutputs = (span: Span) => spanAttributes(span)["mlflow.spanOutputs"];

/** The attributes a user reads beside inputs and outputs: MLflow's bookkeeping left out. */
export function otherAttributes(span: Span): Record<string, unknown> {
  const hidden = new Set(["mlflow.spanInputs", "mlflow.spanOutputs", "mlflow.traceRequestId", "mlflow.spanType"]);
  return Object.fromEntries(Object.entries(spanAttributes(span)).filter(([k]) => !hidden.has(k)));
}

export function spanEvents(span: Span): SpanEvent[] {
  return span.rawEvents.map((e) => {
    const ev = (e ?? {}) as Record<string, unknown>;
    let attributes: Record<string, unknown> = {};
    if (Array.isArray(ev.attributes)) {
      for (const kv of ev.attributes as { key: string; value: unknown }[]) attributes[kv.key] = anyValue(kv.value);
    } else if (ev.attributes && typeof ev.attributes === "object") {
      attributes = Object.fromEntries(Object.entries(ev.attributes as object).map(([k, v]) => [k, span.encoded ? parseJsonText(v) : v]));
    }
    return { name: String(ev.name ?? ""), timeMs: nsToMs(ev.time_unix_nano ?? ev.timeUnixNano ?? ev.timestamp), attributes };
  });
}

export interface SpanTree {
  spans: Span[];
  roots: Span[];
  children: Map<string, Span[]>;
  depth: Map<string, number>;
  /** The trace's extent, what the timeline's bars are positioned in. */
  startMs: number;
  endMs: number;
}

/** The tree of `spans` in one pass over them (children in start order); a span whose parent
 * is missing is shown as a root rather than lost. */
export function buildSpanTree(spans: Span[]): SpanTree {
  const byId = new Map<string, Span>();
  for (const s of spans) byId.set(s.id, s);
  const children = new Map<string, Span[]>();
  const roots: Span[] = [];
  let startMs = Infinity;
  let endMs = -Infinity;
  for (const s of spans) {
    startMs = Math.min(startMs, s.startMs);
    endMs = Math.max(endMs, s.endMs ?? s.startMs);
    if (s.parentId && s.parentId !== s.id && byId.has(s.parentId)) {
      const list = children.get(s.parentId);
      if (list) list.push(s);
      else children.set(s.parentId, [s]);
    } else roots.push(s);
  }
  const byStart = (a: Span, b: Span) => a.startMs - b.startMs;
  roots.sort(byStart);
  for (const list of children.values()) list.sort(byStart);
  const depth = new Map<string, number>();
  const stack: [Span, number][] = roots.map((r) => [r, 0]);
  while (stack.length) {
    const [span, d] = stack.pop()!;
    if (depth.has(span.id)) continue;
    depth.set(span.id, d);
    for (const c of children.get(span.id) ?? []) stack.push([c, d + 1]);
  }
  if (!Number.isFinite(startMs)) startMs = endMs = 0;
  return { spans, roots, children, depth, startMs, endMs };
}

export interface SpanRow {
  span: Span;
  depth: number;
  childCount: number;
  collapsed: boolean;
}

/** The rows shown: the tree depth first, without the descendants of collapsed spans. */
export function visibleRows(tree: SpanTree, collapsed: Set<string>): SpanRow[] {
  const rows: SpanRow[] = [];
  const seen = new Set<string>();
  const stack: [Span, number][] = [];
  for (let i = tree.roots.length - 1; i >= 0; i--) stack.push([tree.roots[i], 0]);
  while (stack.length) {
    const [span, depth] = stack.pop()!;
    // A cycle in parent ids (a broken export) must not loop forever.
    if (seen.has(span.id)) continue;
    seen.add(span.id);
    const kids = tree.children.get(span.id) ?? [];
    const isCollapsed = collapsed.has(span.id);
    rows.push({ span, depth, childCount: kids.length, collapsed: isCollapsed });
    if (!isCollapsed) for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1]);
  }
  return rows;
}

/** Where a span's bar sits in the timeline, in percent of the trace's extent. */
export function barPosition(span: Span, tree: SpanTree): { left: number; width: number } {
  const total = tree.endMs - tree.startMs;
  if (total <= 0) return { left: 0, width: 100 };
  const left = ((span.startMs - tree.startMs) / total) * 100;
  const width = (((span.endMs ?? tree.endMs) - span.startMs) / total) * 100;
  return { left: Math.min(Math.max(left, 0), 100), width: Math.max(Math.min(width, 100 - left), 0.3) };
}

export const spanDurationMs = (span: Span) => (span.endMs === undefined ? undefined : span.endMs - span.startMs);

// ---------------------------------------------------------------------------------------------
// chat

export interface ChatMessage {
  role: string;
  content: string;
}

function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((part) => {
        if (typeof part === "string") return part;
        const p = (part ?? {}) as Record<string, unknown>;
        if (typeof p.text === "string") return p.text;
        return p.type ? `[${String(p.type)}]` : "";
      })
      .filter(Boolean)
      .join("\n");
  }
  if (content === null || content === undefined) return "";
  return JSON.stringify(content);
}

function asMessage(value: unknown): ChatMessage | null {
  if (!value || typeof value !== "object" || Array.isArray(value)) return null;
  const m = value as Record<string, unknown>;
  if (typeof m.role !== "string" || !("content" in m || "tool_calls" in m)) return null;
  let content = contentText(m.content);
  const calls = Array.isArray(m.tool_calls) ? (m.tool_calls as { function?: { name?: string; arguments?: string } }[]) : [];
  for (const call of calls) {
    const line = `→ ${call.function?.name ?? "tool"}(${call.function?.arguments ?? ""})`;
    content = content ? `${content}\n${line}` : line;
  }
  return { role: m.role, content };
}

function messageList(value: unknown): ChatMessage[] {
  if (!Array.isArray(value)) return [];
  const out: ChatMessage[] = [];
  for (const item of value) {
    const m = asMessage(item);
    if (m) out.push(m);
  }
  return out;
}

function messagesIn(value: unknown): ChatMessage[] {
  if (!value || typeof value !== "object") return [];
  if (Array.isArray(value)) return messageList(value);
  const v = value as Record<string, unknown>;
  const single = asMessage(v);
  if (single) return [single];
  for (const key of ["messages", "input", "output"]) {
    const list = messageList(v[key]);
    if (list.length) return list;
  }
  if (Array.isArray(v.choices)) {
    const list = (v.choices as { message?: unknown }[]).map((c) => asMessage(c?.message)).filter((m): m is ChatMessage => m !== null);
    if (list.length) return list;
  }
  if (v.message) {
    const m = asMessage(v.message);
    if (m) return [m];
  }
  return [];
}

/** The conversation a span holds, or null: MLflow's `mlflow.chat.messages` attribute when set
 * (it already joins request and answer), otherwise the messages of its inputs followed by
 * those of its outputs (OpenAI chat requests and completions, or `{messages: [...]}`). */
export function chatMessages(span: Span): ChatMessage[] | null {
  const attrs = spanAttributes(span);
  const logged = messageList(attrs["mlflow.chat.messages"]);
  if (logged.length) return logged;
  const asked = messagesIn(attrs["mlflow.spanInputs"]);
  if (!asked.length) return null;
  return [...asked, ...messagesIn(attrs["mlflow.spanOutputs"])];
}

// ---------------------------------------------------------------------------------------------
// assessments

export type AssessmentKind = "feedback" | "expectation";

export const assessmentKind = (a: Assessment): AssessmentKind => (a.expectation ? "expectation" : "feedback");

export function assessmentValue(a: Assessment): unknown {
  if (a.feedback) return a.feedback.value;
  if (a.expectation) {
    if (a.expectation.value !== undefined) return a.expectation.value;
    const serialized = a.expectation.serialized_value?.value;
    return serialized === undefined ? undefined : parseJsonText(serialized);
  }
  return undefined;
}

/** What a user typed as a value: JSON when it reads as JSON (`true`, `0.8`, `{"a": 1}`),
 * otherwise the text itself. */
export function parseValueInput(text: string): unknown {
  const t = text.trim();
  if (t === "") return "";
  try {
    return JSON.parse(t);
  } catch {
    return text;
  }
}

/** A value as the text a user edits it as (the inverse of `parseValueInput`). */
export function valueInputText(value: unknown): string {
  if (typeof value === "string") {
    // A string that would read back as JSON ("true", "3") keeps its quotes.
    try {
      JSON.parse(value);
      return JSON.stringify(value);
    } catch {
      return value;
    }
  }
  return value === undefined ? "" : JSON.stringify(value);
}

/** The assessment body to POST (MLflow's `CreateAssessment` message in proto JSON). */
export function newAssessmentBody(opts: {
  traceId: string;
  kind: AssessmentKind;
  name: string;
  value: unknown;
  rationale?: string;
  sourceType: string;
  sourceId: string;
  spanId?: string;
  overrides?: string;
}): Assessment {
  const body: Assessment = {
    assessment_id: "",
    assessment_name: opts.name,
    trace_id: opts.traceId,
    source: { source_type: opts.sourceType, source_id: opts.sourceId },
  };
  delete (body as Partial<Assessment>).assessment_id;
  if (opts.kind === "feedback") body.feedback = { value: opts.value };
  else if (opts.value !== null && typeof opts.value === "object") {
    // Expectations holding structure travel serialized, as MLflow's client sends them.
    body.expectation = { serialized_value: { serialization_format: "JSON_FORMAT", value: JSON.stringify(opts.value) } };
  } else body.expectation = { value: opts.value };
  if (opts.rationale) body.rationale = opts.rationale;
  if (opts.spanId) body.span_id = opts.spanId;
  if (opts.overrides) body.overrides = opts.overrides;
  return body;
}

/** Valid assessments first (newest first), then the ones another has overridden. */
export function orderAssessments(list: Assessment[]): Assessment[] {
  const time = (a: Assessment) => timestampMs(a.last_update_time ?? a.create_time) ?? 0;
  return [...list].sort((a, b) => Number(b.valid !== false) - Number(a.valid !== false) || time(b) - time(a));
}
