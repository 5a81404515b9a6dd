import { describe, expect, it } from "vitest";
import {
  anyValue,
  barPosition,
  buildSpanTree,
  chatMessages,
  durationMs,
  newAssessmentBody,
  normalizeSpan,
  orderAssessments,
  parseSort,
  parseValueInput,
  serverOrderBy,
  sortLoaded,
  spanInputs,
  timestampMs,
  toggleSort,
  valueInputText,
  visibleRows,
  type Span,
  type TraceInfo,
} from "./traceModel";

/** A span document as MLflow 3's `Span.to_dict` writes it: attribute values are JSON text. */
function doc(id: string, parent: string | null, startMs: number, endMs: number, attrs: Record<string, unknown> = {}) {
  return {
    trace_id: "dHI=",
    span_id: id,
    parent_span_id: parent,
    name: `span-${id}`,
    start_time_unix_nano: startMs * 1e6,
    end_time_unix_nano: endMs * 1e6,
    attributes: Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, JSON.stringify(v)])),
    status: { code: "STATUS_CODE_OK", message: "" },
    events: [],
  };
}

describe("trace info fields", () => {
  it("reads proto timestamps and durations", () => {
    expect(timestampMs("2024-05-01T10:00:00.250Z")).toBe(Date.UTC(2024, 4, 1, 10, 0, 0, 250));
    expect(timestampMs(1700000000000)).toBe(1700000000000);
    expect(timestampMs("1700000000000")).toBe(1700000000000);
    expect(timestampMs(undefined)).toBeUndefined();
    expect(durationMs("1.250s")).toBe(1250);
    expect(durationMs("0s")).toBe(0);
    expect(durationMs(42)).toBe(42);
    expect(durationMs("")).toBeUndefined();
  });
});

describe("sorting", () => {
  const t = (id: string, request: string, ms?: string): TraceInfo => ({ trace_id: id, request_preview: request, execution_duration: ms });
  it("asks the server for the columns it can order by", () => {
    expect(serverOrderBy(parseSort("latency:desc"))).toEqual(["execution_time_ms DESC"]);
    expect(serverOrderBy(parseSort("time:asc"))).toEqual(["timestamp_ms ASC"]);
    expect(serverOrderBy(parseSort("request:asc"))).toEqual([]);
    expect(parseSort("nonsense:asc")).toEqual(parseSort(null));
  });
  it("sorts loaded rows by the other columns, missing values last", () => {
    const rows = [t("a", "b"), t("b", ""), t("c", "a"), t("d", "c")];
    expect(sortLoaded(rows, { column: "request", descending: false }).map((r) => r.trace_id)).toEqual(["c", "a", "d", "b"]);
    expect(sortLoaded(rows, { column: "request", descending: true }).map((r) => r.trace_id)).toEqual(["d", "a", "c", "b"]);
    // Columns the server sorts keep the server's order.
    expect(sortLoaded(rows, { column: "latency", descending: true })).toBe(rows);
  });
  it("flips the direction on a second click and starts a new column descending", () => {
    expect(toggleSort({ column: "latency", descending: true }, "latency")).toEqual({ column: "latency", descending: false });
    expect(toggleSort({ column: "latency", descending: false }, "status")).toEqual({ column: "status", descending: true });
  });
});

describe("spans", () => {
  it("reads MLflow 3 span documents", () => {
    const s = normalizeSpan(doc("AAA=", null, 10, 30, { "mlflow.spanType": "LLM", "mlflow.spanInputs": { q: 1 } }));
    expect(s).toMatchObject({ id: "AAA=", parentId: null, type: "LLM", startMs: 10, endMs: 30, status: "OK" });
    expect(spanInputs(s)).toEqual({ q: 1 });
  });

  it("reads OpenTelemetry JSON spans with typed values", () => {
    const s = normalizeSpan({
      span_id: "b",
      parent_span_id: "a",
      name: "tool",
      start_time_unix_nano: "2000000",
      end_time_unix_nano: "5000000",
      attributes: [
        { key: "mlflow.spanType", value: { string_value: "TOOL" } },
        { key: "mlflow.spanInputs", value: { kvlist_value: { values: [{ key: "n", value: { int_value: "3" } }] } } },
      ],
      status: { code: "STATUS_CODE_ERROR", message: "boom" },
    });
    expect(s).toMatchObject({ parentId: "a", type: "TOOL", startMs: 2, endMs: 5, status: "ERROR", statusMessage: "boom" });
    expect(spanInputs(s)).toEqual({ n: 3 });
    expect(anyValue({ array_value: { values: [{ bool_value: true }, { double_value: 1.5 }] } })).toEqual([true, 1.5]);
  });

  it("builds the tree in start order and hides collapsed descendants", () => {
    const spans = [
      doc("c", "a", 5, 8),
      doc("a", null, 0, 10),
      doc("b", "a", 1, 4),
      doc("d", "b", 2, 3),
      doc("orphan", "missing", 6, 7),
    ].map(normalizeSpan);
    const tree = buildSpanTree(spans);
    expect(tree.roots.map((s) => s.id)).toEqual(["a", "orphan"]);
    const rows = visibleRows(tree, new Set());
    expect(rows.map((r) => [r.span.id, r.depth])).toEqual([
      ["a", 0],
      ["b", 1],
      ["d", 2],
      ["c", 1],
      ["orphan", 0],
    ]);
    expect(visibleRows(tree, new Set(["b"])).map((r) => r.span.id)).toEqual(["a", "b", "c", "orphan"]);
    expect(barPosition(spans[0], tree)).toEqual({ left: 50, width: 30 });
  });

  it("survives a parent cycle", () => {
    const tree = buildSpanTree([doc("a", "b", 0, 1), doc("b", "a", 0, 1), doc("r", null, 0, 2)].map(normalizeSpan));
    expect(visibleRows(tree, new Set()).map((r) => r.span.id)).toEqual(["r"]);
  });

  it("builds a 2,000-span tree with every span once, children after their parent", () => {
    const docs = [doc("0", null, 0, 4000)];
    for (let i = 1; i < 2000; i++) docs.push(doc(String(i), String(Math.floor((i - 1) / 4)), i, i + 2, { "mlflow.spanType": "CHAIN" }));
    const tree = buildSpanTree(docs.map(normalizeSpan));
    const rows = visibleRows(tree, new Set());
    expect(rows).toHaveLength(2000);
    expect(new Set(rows.map((r) => r.span.id)).size).toBe(2000);
    const position = new Map(rows.map((r, i) => [r.span.id, i]));
    for (let i = 1; i < 2000; i++) expect(position.get(String(i))!).toBeGreaterThan(position.get(String(Math.floor((i - 1) / 4)))!);
    // How fast it draws is measured by bench/ui/run.py, not asserted here.
  });
});

describe("chat", () => {
  const span = (inputs: unknown, outputs: unknown, extra: Record<string, unknown> = {}): Span =>
    normalizeSpan(doc("x", null, 0, 1, { "mlflow.spanInputs": inputs, "mlflow.spanOutputs": outputs, ...extra }));

  it("joins request messages and the completion's choice", () => {
    const s = span(
      { messages: [{ role: "system", content: "Be brief." }, { role: "user", content: [{ type: "text", text: "Hi?" }] }] },
      { choices: [{ message: { role: "assistant", content: "Hello." } }] },
    );
    expect(chatMessages(s)).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi?" },
      { role: "assistant", content: "Hello." },
    ]);
  });

  it("prefers MLflow's chat attribute and shows tool calls as text", () => {
    const s = span({ x: 1 }, null, {
      "mlflow.chat.messages": [
        { role: "user", content: "weather?" },
        { role: "assistant", content: null, tool_calls: [{ function: { name: "get_weather", arguments: '{"city":"Oslo"}' } }] },
      ],
    });
    expect(chatMessages(s)).toEqual([
      { role: "user", content: "weather?" },
      { role: "assistant", content: '→ get_weather({"city":"Oslo"})' },
    ]);
  });

  it("finds no conversation in other spans", () => {
    expect(chatMessages(span({ question: "q" }, { answer: "a" }))).toBeNull();
    expect(chatMessages(span("<b>text</b>", "x"))).toBeNull();
  });
});

describe("assessments", () => {
  it("reads typed values from what users type and back", () => {
    expect(parseValueInput("true")).toBe(true);
    expect(parseValueInput("0.8")).toBe(0.8);
    expect(parseValueInput("looks right")).toBe("looks right");
    expect(parseValueInput('{"a": 1}')).toEqual({ a: 1 });
    for (const v of [true, 0.8, "looks right", "true", { a: [1] }]) expect(parseValueInput(valueInputText(v))).toEqual(v);
  });

  it("builds MLflow's create bodies, overrides and serialized expectations", () => {
    expect(
      newAssessmentBody({ traceId: "tr-1", kind: "feedback", name: "ok", value: false, rationale: "wrong", sourceType: "HUMAN", sourceId: "ann", overrides: "a-1" }),
    ).toEqual({
      assessment_name: "ok",
      trace_id: "tr-1",
      source: { source_type: "HUMAN", source_id: "ann" },
      feedback: { value: false },
      rationale: "wrong",
      overrides: "a-1",
    });
    expect(newAssessmentBody({ traceId: "t", kind: "expectation", name: "facts", value: ["a"], sourceType: "HUMAN", sourceId: "x" }).expectation).toEqual({
      serialized_value: { serialization_format: "JSON_FORMAT", value: '["a"]' },
    });
    expect(newAssessmentBody({ traceId: "t", kind: "expectation", name: "n", value: 3, sourceType: "HUMAN", sourceId: "x" }).expectation).toEqual({ value: 3 });
  });

  it("lists valid assessments first, newest first", () => {
    const a = (id: string, valid: boolean, time: string) => ({ assessment_id: id, assessment_name: id, valid, last_update_time: time });
    const ordered = orderAssessments([a("old", true, "2024-01-01T00:00:00Z"), a("gone", false, "2024-03-01T00:00:00Z"), a("new", true, "2024-02-01T00:00:00Z")]);
    expect(ordered.map((x) => x.assessment_id)).toEqual(["new", "old", "gone"]);
  });
});
