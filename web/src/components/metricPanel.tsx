// Metric history charts with their controls. Histories come sampled from the server
// (get-history-bulk-interval), so a million-point metric costs the browser a few thousand
// points; zooming in on steps fetches that range again at full resolution.
import { useEffect, useMemo, useState } from "react";
import { metricHistorySampled, type Metric } from "../api";
import { BarChart, LineChart, type Series, type XAxis } from "./charts";
import { ErrorBanner, Spinner } from "./common";

export interface ChartRun {
  id: string;
  name: string;
  color: string;
}

export interface ChartSettings {
  xAxis: XAxis;
  logScale: boolean;
  smoothing: number;
}

export const defaultChartSettings: ChartSettings = { xAxis: "step", logScale: false, smoothing: 0 };

export function ChartControls({ settings, onChange }: { settings: ChartSettings; onChange: (s: ChartSettings) => void }) {
  return (
    <div className="chart-controls" role="group" aria-label="Chart settings">
      <label>
        X axis{" "}
        <select aria-label="X axis" value={settings.xAxis} onChange={(e) => onChange({ ...settings, xAxis: e.target.value as XAxis })}>
          <option value="step">Step</option>
          <option value="time">Time (wall)</option>
          <option value="relative">Time (relative)</option>
        </select>
      </label>
      <label>
        <input type="checkbox" checked={settings.logScale} onChange={(e) => onChange({ ...settings, logScale: e.target.checked })} /> Log scale
      </label>
      <label>
        Smoothing{" "}
        <input
          aria-label="Smoothing"
          type="range"
          min={0}
          max={0.99}
          step={0.01}
          value={settings.smoothing}
          onChange={(e) => onChange({ ...settings, smoothing: Number(e.target.value) })}
        />
        <span className="muted">{settings.smoothing.toFixed(2)}</span>
      </label>
    </div>
  );
}

function toSeries(runs: ChartRun[], metrics: Metric[]): Series[] {
  const byRun = new Map<string, Series["points"]>();
  for (const m of metrics) {
    const id = m.run_id ?? runs[0]?.id;
    if (!id) continue;
    const list = byRun.get(id) ?? [];
    list.push({ step: Number(m.step ?? 0), timestamp: Number(m.timestamp ?? 0), value: Number(m.value) });
    byRun.set(id, list);
  }
  return runs.map((r) => ({
    label: r.name,
    color: r.color,
    points: (byRun.get(r.id) ?? []).sort((a, b) => a.step - b.step || a.timestamp - b.timestamp),
  }));
}

export function MetricChart({
  runs,
  metricKey,
  settings,
  maxPoints = 1000,
  height,
}: {
  runs: ChartRun[];
  metricKey: string;
  settings: ChartSettings;
  maxPoints?: number;
  height?: number;
}) {
  const [range, setRange] = useState<{ min: number; max: number } | null>(null);
  const [state, setState] = useState<{ series?: Series[]; error?: Error; loading: boolean }>({ loading: true });
  const runKey = runs.map((r) => r.id).join(",");
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    const stepRange = range && settings.xAxis === "step" ? { startStep: Math.floor(range.min), endStep: Math.ceil(range.max) } : {};
    metricHistorySampled({ runIds: runs.map((r) => r.id), key: metricKey, maxResults: maxPoints, ...stepRange }).then(
      (metrics) => live && setState({ series: toSeries(runs, metrics), loading: false }),
      (error: Error) => live && setState({ error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [runKey, metricKey, maxPoints, range, settings.xAxis]);
  const series = useMemo(() => state.series ?? [], [state.series]);
  // Logged once per run (the common case for evaluation scores): bars, not a lone point.
  const singleValued = series.some((s) => s.points.length > 0) && series.every((s) => s.points.length <= 1) && !range;
  return (
    <div className="metric-chart" data-metric={metricKey}>
      <ErrorBanner error={state.error} />
      {state.loading && !state.series ? (
        <Spinner />
      ) : singleValued ? (
        <BarChart title={metricKey} bars={series.filter((s) => s.points.length === 1).map((s) => ({ label: s.label, color: s.color, value: s.points[0].value }))} />
      ) : (
        <LineChart
          series={series}
          xAxis={settings.xAxis}
          logScale={settings.logScale}
          smoothing={settings.smoothing}
          title={metricKey}
          height={height}
          onZoom={settings.xAxis === "step" ? (r) => setRange((prev) => (prev && r && Math.abs(prev.min - r.min) < 1e-9 && Math.abs(prev.max - r.max) < 1e-9 ? prev : r)) : undefined}
        />
      )}
      {range && settings.xAxis === "step" && (
        <button type="button" className="link-button" onClick={() => setRange(null)}>
          Reset zoom
        </button>
      )}
    </div>
  );
}

export function MetricGrid({ runs, keys, settings, empty }: { runs: ChartRun[]; keys: string[]; settings: ChartSettings; empty: string }) {
  if (keys.length === 0) return <p className="muted">{empty}</p>;
  return (
    <div className="chart-grid">
      {keys.map((key) => (
        <div className="chart-card" key={key}>
          <MetricChart runs={runs} metricKey={key} settings={settings} />
          <a className="chart-link" href={`#/metric/${encodeURIComponent(key)}?runs=${encodeURIComponent(JSON.stringify(runs.map((r) => r.id)))}`}>
            Open {key}
          </a>
        </div>
      ))}
    </div>
  );
}
