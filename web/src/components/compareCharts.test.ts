import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { defaultScatterAxes } from "./compareCharts";
import type { ComparePoint } from "./charts";

const point = (id: string, values: ComparePoint["values"]): ComparePoint => ({ id, label: id, color: "#000", values });

describe("defaultScatterAxes", () => {
  it("plots a param that varies against a metric", () => {
    const points = [point("a", { "param: seed": "1", "param: alpha": "0.1", "metric: rmse": 1 }), point("b", { "param: seed": "1", "param: alpha": "0.5", "metric: rmse": 2 })];
    expect(defaultScatterAxes(points, ["param: alpha", "param: seed"].sort(), ["metric: rmse"])).toEqual({ x: "param: alpha", y: "metric: rmse" });
  });
  it("uses two different metrics when runs have no params", () => {
    const points = [point("a", { "metric: r2": 0.5, "metric: rmse": 1 }), point("b", { "metric: r2": 0.7, "metric: rmse": 2 })];
    expect(defaultScatterAxes(points, [], ["metric: r2", "metric: rmse"])).toEqual({ x: "metric: r2", y: "metric: rmse" });
  });
  it("never picks the same column for both axes", () => {
    const key = fc.constantFrom("param: a", "param: b", "metric: m", "metric: n");
    fc.assert(
      fc.property(fc.uniqueArray(key, { minLength: 2 }), fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 4 }), (keys, seeds) => {
        const points = seeds.map((s, i) => point(String(i), Object.fromEntries(keys.map((k) => [k, s]))));
        const { x, y } = defaultScatterAxes(
          points,
          keys.filter((k) => k.startsWith("param")),
          keys.filter((k) => k.startsWith("metric")),
        );
        expect(x).toBeDefined();
        expect(y).toBeDefined();
        expect(x).not.toBe(y);
      }),
    );
  });
});
