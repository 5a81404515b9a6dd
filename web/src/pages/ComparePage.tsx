import { useCallback, useState } from "react";
import { getRun, runName, type Run } from "../api";
import { CompareCharts } from "../components/compareCharts";
import { ErrorBanner, Section, Spinner, useAsync } from "../components/common";
import { ChartControls, defaultChartSettings, MetricGrid } from "../components/metricPanel";
import { colorFor, formatNumber, formatTime } from "../format";
import { href, idList, useLocation } from "../router";

type Row = { key: string; values: string[]; differs: boolean };

function rowsOf(runs: Run[], pick: (r: Run) => { key: string; value: string }[]): Row[] {
  const keys = new Set<string>();
  const maps = runs.map((r) => {
    const m = new Map<string, string>();
    for (const kv of pick(r)) {
      m.set(kv.key, kv.value);
      keys.add(kv.key);
    }
    return m;
  });
  return [...keys].sort().map((key) => {
    const values = maps.map((m) => m.get(key) ?? "");
    return { key, values, differs: new Set(values).size > 1 };
  });
}

function CompareTable({ label, runs, rows, onlyDiff }: { label: string; runs: Run[]; rows: Row[]; onlyDiff: boolean }) {
  const shown = onlyDiff ? rows.filter((r) => r.differs) : rows;
  return (
    <table className="grid compare-table" aria-label={label}>
      <thead>
        <tr>
          <th>{label}</th>
          {runs.map((r) => (
            <th key={r.info.run_id}>{runName(r)}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {shown.map((row) => (
          <tr key={row.key} className={row.differs ? "differs" : undefined} data-key={row.key} data-differs={row.differs}>
            <th scope="row">{row.key}</th>
            {row.values.map((v, i) => (
              <td key={i}>{v}</td>
            ))}
          </tr>
        ))}
        {shown.length === 0 && (
          <tr>
            <td colSpan={runs.length + 1} className="muted">
              {onlyDiff ? "No differences." : "None."}
            </td>
          </tr>
        )}
      </tbody>
    </table>
  );
}

export function ComparePage() {
  const { query } = useLocation();
  const runIds = idList(query.get("runs"));
  const { data, error, loading } = useAsync(() => Promise.all(runIds.map(getRun)), [runIds.join(",")]);
  const [onlyDiff, setOnlyDiff] = useState(false);
  const [settings, setSettings] = useState(defaultChartSettings);
  const colorOf = useCallback((_id: string, i: number) => colorFor(i), []);
  if (loading && !data) return <Spinner />;
  const runs = data ?? [];
  const params = rowsOf(runs, (r) => r.data.params ?? []);
  const metrics = rowsOf(runs, (r) => (r.data.metrics ?? []).map((m) => ({ key: m.key, value: formatNumber(m.value) })));
  const tags = rowsOf(runs, (r) => (r.data.tags ?? []).filter((t) => !t.key.startsWith("mlflow.")));
  const metricKeys = metrics.map((m) => m.key).filter((k) => !k.startsWith("system/"));
  return (
    <div className="page compare-page">
      <nav className="breadcrumbs" aria-label="Breadcrumbs">
        <a href="#/experiments">Experiments</a>
        {runs[0] && (
          <>
            {" "}
            / <a href={href(["experiments", runs[0].info.experiment_id])}>Experiment {runs[0].info.experiment_id}</a>
          </>
        )}{" "}
        / <span>Compare {runs.length} runs</span>
      </nav>
      <header className="page-header">
        <h1>Comparing {runs.length} runs</h1>
        <label>
          <input type="checkbox" checked={onlyDiff} onChange={(e) => setOnlyDiff(e.target.checked)} /> Show only differences
        </label>
      </header>
      <ErrorBanner error={error} />
      <Section title="Runs">
        <table className="grid compare-table" aria-label="Runs compared">
          <thead>
            <tr>
              <th />
              {runs.map((r, i) => (
                <th key={r.info.run_id}>
                  <span className="swatch" style={{ background: colorFor(i) }} /> <a href={href(["experiments", r.info.experiment_id, "runs", r.info.run_id])}>{runName(r)}</a>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            <tr>
              <th scope="row">Run ID</th>
              {runs.map((r) => (
                <td key={r.info.run_id} className="mono">
                  {r.info.run_id}
                </td>
              ))}
            </tr>
            <tr>
              <th scope="row">Start time</th>
              {runs.map((r) => (
                <td key={r.info.run_id}>{formatTime(r.info.start_time)}</td>
              ))}
            </tr>
            <tr>
              <th scope="row">Status</th>
              {runs.map((r) => (
                <td key={r.info.run_id}>{r.info.status}</td>
              ))}
            </tr>
          </tbody>
        </table>
      </Section>
      <Section title="Parameters">
        <CompareTable label="Parameters" runs={runs} rows={params} onlyDiff={onlyDiff} />
      </Section>
      <Section title="Metrics">
        <CompareTable label="Metrics" runs={runs} rows={metrics} onlyDiff={onlyDiff} />
      </Section>
      <Section title="Tags">
        <CompareTable label="Tags" runs={runs} rows={tags} onlyDiff={onlyDiff} />
      </Section>
      <Section title="Scatter and parallel coordinates">
        <CompareCharts runs={runs} colorOf={colorOf} />
      </Section>
      <Section title="Metric history">
        <ChartControls settings={settings} onChange={setSettings} />
        <MetricGrid runs={runs.map((r, i) => ({ id: r.info.run_id, name: runName(r), color: colorFor(i) }))} keys={metricKeys} settings={settings} empty="No metrics." />
      </Section>
    </div>
  );
}
