import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Run } from "../api";
import { parseDelimited } from "../format";
import { columnFromId, discoverKeys, metricColumn, nestRows, paramColumn, toCsv } from "./runsTable";

function run(id: string, opts: { parent?: string; metrics?: Record<string, number>; params?: Record<string, string>; name?: string } = {}): Run {
  const tags = opts.parent ? [{ key: "mlflow.parentRunId", value: opts.parent }] : [];
  return {
    info: { run_id: id, run_name: opts.name ?? id, experiment_id: "1", status: "FINISHED", start_time: 1000, end_time: 2000 },
    data: {
      tags,
      metrics: Object.entries(opts.metrics ?? {}).map(([key, value]) => ({ key, value, step: 0, timestamp: 0 })),
      params: Object.entries(opts.params ?? {}).map(([key, value]) => ({ key, value })),
    },
  };
}

describe("nesting rows", () => {
  const runs = [run("best"), run("parent"), run("c1", { parent: "parent" }), run("c2", { parent: "parent" }), run("orphan", { parent: "gone" })];

  it("hides children under a collapsed parent and counts them", () => {
    const rows = nestRows(runs, new Set());
    expect(rows.map((r) => [r.run.info.run_id, r.depth, r.childCount])).toEqual([
      ["best", 0, 0],
      ["parent", 0, 2],
      ["orphan", 0, 0],
    ]);
  });

  it("shows children right under their expanded parent, one level deeper", () => {
    const rows = nestRows(runs, new Set(["parent"]));
    expect(rows.map((r) => [r.run.info.run_id, r.depth])).toEqual([
      ["best", 0],
      ["parent", 0],
      ["c1", 1],
      ["c2", 1],
      ["orphan", 0],
    ]);
  });

  it("shows every run exactly once when everything is expanded, whatever the tree", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(30), { maxLength: 30 }), (parents) => {
        // run i's parent is some run with a smaller index (or none), so the tree has no cycles
        const many = parents.map((p, i) => run(`r${i}`, p < i && p % 3 !== 0 ? { parent: `r${p}` } : {}));
        const rows = nestRows(many, new Set(many.map((r) => r.info.run_id)));
        expect(rows.map((r) => r.run.info.run_id).sort()).toEqual(many.map((r) => r.info.run_id).sort());
        for (const row of rows) expect(row.childCount).toBe(many.filter((r) => r.data.tags?.[0]?.value === row.run.info.run_id).length);
      }),
    );
  });

  it("survives a run that names itself as its parent", () => {
    expect(nestRows([run("self", { parent: "self" })], new Set(["self"])).length).toBe(1);
  });
});

describe("columns", () => {
  it("round-trip through their ids", () => {
    for (const id of ["metric:rmse", "param:alpha", "tag:team", "attribute:status", "metric:a:b"]) expect(columnFromId(id)?.id).toBe(id);
    expect(columnFromId("nonsense:x")).toBeUndefined();
  });
  it("sort with the search grammar's keys", () => {
    expect(metricColumn("system/cpu").sortKey).toBe("metrics.`system/cpu`");
    expect(paramColumn("alpha").sortKey).toBe("params.alpha");
  });
  it("are discovered from the loaded runs, system tags left out", () => {
    const keys = discoverKeys([run("a", { metrics: { rmse: 1 }, params: { alpha: "0.1" } }), run("b", { parent: "a", metrics: { r2: 0.5 } })]);
    expect(keys).toEqual({ metrics: ["r2", "rmse"], params: ["alpha"], tags: [] });
  });
});

describe("CSV export", () => {
  it("writes one row per run with exact metric values", () => {
    const csv = toCsv([run("a", { name: "first, run", metrics: { rmse: 0.123456789 }, params: { alpha: "0.1" } })], [metricColumn("rmse"), paramColumn("alpha")]);
    expect(parseDelimited(csv, ",")).toEqual([
      ["Run name", "Run ID", "metrics.rmse", "params.alpha"],
      ["first, run", "a", "0.123456789", "0.1"],
    ]);
  });
});
