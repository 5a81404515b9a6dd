// Scatter and parallel-coordinates views of params and latest metric values across runs.
import { useMemo, useState } from "react";
import { runName, type Run } from "../api";
import { ParallelCoordinates, ScatterPlot, type ComparePoint } from "./charts";

export function comparePoints(runs: Run[], colorOf: (runId: string, index: number) => string): ComparePoint[] {
  return runs.map((run, i) => {
    const values: ComparePoint["values"] = {};
    for (const p of run.data.params ?? []) values[`param: ${p.key}`] = p.value;
    for (const m of run.data.metrics ?? []) values[`metric: ${m.key}`] = Number(m.value);
    return { id: run.info.run_id, label: runName(run), color: colorOf(run.info.run_id, i), values };
  });
}

/** Axes a scatter plot starts with: a param that differs between runs against a metric, and
 * never the same column twice (a diagonal line says nothing). */
export function defaultScatterAxes(points: ComparePoint[], params: string[], metrics: string[]): { x?: string; y?: string } {
  const varies = (key: string) => new Set(points.map((p) => String(p.values[key] ?? ""))).size > 1;
  const x = params.find(varies) ?? params[0] ?? metrics.find(varies) ?? metrics[0];
  const y = metrics.find((k) => k !== x && varies(k)) ?? metrics.find((k) => k !== x) ?? params.find((k) => k !== x);
  return { x, y };
}

export function CompareCharts({ runs, colorOf }: { runs: Run[]; colorOf: (runId: string, index: number) => string }) {
  const points = useMemo(() => comparePoints(runs, colorOf), [runs, colorOf]);
  const keys = useMemo(() => {
    const all = new Set<string>();
    points.forEach((p) => Object.keys(p.values).forEach((k) => all.add(k)));
    const sorted = [...all].sort();
    return [...sorted.filter((k) => k.startsWith("param: ")), ...sorted.filter((k) => k.startsWith("metric: ") && !k.startsWith("metric: system/"))];
  }, [points]);
  const params = keys.filter((k) => k.startsWith("param: "));
  const metrics = keys.filter((k) => k.startsWith("metric: "));
  const [xKey, setXKey] = useState<string | undefined>();
  const [yKey, setYKey] = useState<string | undefined>();
  const [pcKeys, setPcKeys] = useState<string[] | undefined>();
  const defaults = useMemo(() => defaultScatterAxes(points, params, metrics), [points, keys]);
  const x = xKey && keys.includes(xKey) ? xKey : (defaults.x ?? keys[0]);
  const y = yKey && keys.includes(yKey) ? yKey : (defaults.y ?? keys[0]);
  const parallel = pcKeys?.filter((k) => keys.includes(k)) ?? [...params.slice(0, 6), ...metrics.slice(0, 1)];
  if (runs.length === 0 || keys.length === 0) return <p className="muted">Select runs with params or metrics to compare them.</p>;
  return (
    <div className="compare-charts">
      <div className="chart-card">
        <h3>Scatter</h3>
        <div className="chart-controls">
          <label>
            X{" "}
            <select aria-label="Scatter X" value={x} onChange={(e) => setXKey(e.target.value)}>
              {keys.map((k) => (
                <option key={k}>{k}</option>
              ))}
            </select>
          </label>
          <label>
            Y{" "}
            <select aria-label="Scatter Y" value={y} onChange={(e) => setYKey(e.target.value)}>
              {keys.map((k) => (
                <option key={k}>{k}</option>
              ))}
            </select>
          </label>
        </div>
        <ScatterPlot points={points} xKey={x} yKey={y} />
      </div>
      <div className="chart-card wide">
        <h3>Parallel coordinates</h3>
        <fieldset className="key-picker">
          <legend>Axes</legend>
          {keys.map((k) => (
            <label key={k}>
              <input
                type="checkbox"
                checked={parallel.includes(k)}
                onChange={(e) => setPcKeys(e.target.checked ? [...parallel, k] : parallel.filter((p) => p !== k))}
              />{" "}
              {k}
            </label>
          ))}
        </fieldset>
        {parallel.length > 0 ? <ParallelCoordinates points={points} keys={parallel} /> : <p className="muted">Pick at least one axis.</p>}
      </div>
    </div>
  );
}
