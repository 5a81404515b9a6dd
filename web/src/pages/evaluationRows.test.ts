import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { aggregates, canonicalJson, evaluationRow, matchRows, rootSpanIO, scoreNumber, type EvaluationRow, type TraceInfoJson } from "./evaluationRows";

const trace: TraceInfoJson = {
  trace_id: "tr-1",
  request_time: "2025-05-01T10:00:00.000Z",
  request_preview: '{"question": "ok"}',
  response_preview: '"OK"',
  assessments: [
    { assessment_name: "expected", expectation: { value: "OK" }, create_time: "2025-05-01T10:00:01Z" },
    { assessment_name: "facts", expectation: { serialized_value: { serialization_format: "JSON_FORMAT", value: '["a", "b"]' } } },
    { assessment_name: "exact_match", feedback: { value: true }, source: { source_type: "CODE", source_id: "exact_match" } },
    { assessment_name: "concise", feedback: { value: "yes" }, rationale: "2 characters", create_time: "2025-05-01T10:00:01Z" },
    // A later correction of the same scorer replaces the first value; an invalidated one never counts.
    { assessment_name: "concise", feedback: { value: "no" }, rationale: "corrected", create_time: "2025-05-01T10:00:05Z" },
    { assessment_name: "concise", feedback: { value: "maybe" }, valid: false, create_time: "2025-05-01T10:00:09Z" },
    { assessment_name: "broken", feedback: { error: { error_code: "ValueError", error_message: "boom" } } },
  ],
};

describe("an evaluation row from a trace", () => {
  it("reads expectations, scorer values, rationales and errors", () => {
    const row = evaluationRow(trace);
    expect(row.inputs).toEqual({ question: "ok" });
    expect(row.outputs).toBe("OK");
    expect(row.expectations).toEqual({ expected: "OK", facts: ["a", "b"] });
    expect(row.scores.exact_match).toEqual({ value: true, rationale: undefined, error: undefined, source: "exact_match" });
    expect(row.scores.concise.value).toBe("no");
    expect(row.scores.concise.rationale).toBe("corrected");
    expect(row.scores.broken).toMatchObject({ value: null, error: "ValueError: boom" });
    expect(row.requestTime).toBe(Date.parse("2025-05-01T10:00:00.000Z"));
  });

  it("takes inputs and outputs from the root span when the spans are there", () => {
    const spans = [
      { span_id: "c", parent_span_id: "r", attributes: { "mlflow.spanInputs": '{"x": 1}' } },
      { span_id: "r", parent_span_id: null, attributes: { "mlflow.spanInputs": '{"question": "a long question"}', "mlflow.spanOutputs": '"A LONG QUESTION"' } },
    ];
    const io = rootSpanIO(spans);
    expect(io).toEqual({ inputs: { question: "a long question" }, outputs: "A LONG QUESTION" });
    expect(evaluationRow(trace, io).inputs).toEqual({ question: "a long question" });
    expect(rootSpanIO([])).toBeUndefined();
  });
});

describe("aggregates", () => {
  it("splits <scorer>/<aggregation> metrics at the last slash and leaves other metrics out", () => {
    const metrics = [
      { key: "exact_match/mean", value: 0.5, step: 0, timestamp: 0 },
      { key: "guidelines/tone/mean", value: 1, step: 0, timestamp: 0 },
      { key: "latency", value: 3, step: 0, timestamp: 0 },
    ];
    expect(aggregates(metrics).map((a) => [a.scorer, a.aggregation, a.value])).toEqual([
      ["exact_match", "mean", 0.5],
      ["guidelines/tone", "mean", 1],
    ]);
  });

  it("reads booleans and yes/no as 1 and 0, as MLflow aggregates them", () => {
    expect([true, false, "Yes", "no", 0.25, "maybe", null].map(scoreNumber)).toEqual([1, 0, 1, 0, 0.25, undefined, undefined]);
  });
});

function row(id: string, inputs: unknown): EvaluationRow {
  return { traceId: id, inputs, outputs: null, expectations: {}, scores: {} };
}

describe("matching two runs' rows by inputs", () => {
  it("pairs equal inputs whatever their key order and keeps unmatched rows on their side", () => {
    const left = [row("l1", { a: 1, b: 2 }), row("l2", { q: "only left" })];
    const right = [row("r1", { q: "only right" }), row("r2", { b: 2, a: 1 })];
    expect(matchRows(left, right).map((m) => [m.left?.traceId, m.right?.traceId])).toEqual([
      ["l1", "r2"],
      ["l2", undefined],
      [undefined, "r1"],
    ]);
  });

  it("uses every row of both sides exactly once", () => {
    const inputs = fc.constantFrom<unknown>({ q: "a" }, { q: "b" }, { q: "a", n: 1 }, "plain", [1, 2]);
    fc.assert(
      fc.property(fc.array(inputs, { maxLength: 8 }), fc.array(inputs, { maxLength: 8 }), (a, b) => {
        const left = a.map((x, i) => row(`l${i}`, x));
        const right = b.map((x, i) => row(`r${i}`, x));
        const matched = matchRows(left, right);
        expect(matched.flatMap((m) => (m.left ? [m.left.traceId] : [])).sort()).toEqual(left.map((r) => r.traceId).sort());
        expect(matched.flatMap((m) => (m.right ? [m.right.traceId] : [])).sort()).toEqual(right.map((r) => r.traceId).sort());
        for (const m of matched) if (m.left && m.right) expect(canonicalJson(m.left.inputs)).toBe(canonicalJson(m.right.inputs));
      }),
    );
  });
});
