import { useState } from "react";
import { getRun, runName } from "../api";
import { ErrorBanner, Spinner, useAsync } from "../components/common";
import { ChartControls, defaultChartSettings, MetricChart } from "../components/metricPanel";
import { colorFor } from "../format";
import { href, idList, useLocation } from "../router";

/** One metric for one or more runs, large, with finer detail fetched as the user zooms. */
export function MetricPage({ metricKey }: { metricKey: string }) {
  const { query } = useLocation();
  const runIds = idList(query.get("runs"));
  const { data, error, loading } = useAsync(() => Promise.all(runIds.map(getRun)), [runIds.join(",")]);
  const [settings, setSettings] = useState(defaultChartSettings);
  if (loading && !data) return <Spinner />;
  const runs = (data ?? []).map((r, i) => ({ id: r.info.run_id, name: runName(r), color: colorFor(i), experimentId: r.info.experiment_id }));
  return (
    <div className="page">
      <nav className="breadcrumbs" aria-label="Breadcrumbs">
        <a href="#/experiments">Experiments</a>
        {runs.length === 1 && (
          <>
            {" "}
            / <a href={href(["experiments", runs[0].experimentId, "runs", runs[0].id])}>{runs[0].name}</a>
          </>
        )}{" "}
        / <span>{metricKey}</span>
      </nav>
      <header className="page-header">
        <h1>{metricKey}</h1>
      </header>
      <ErrorBanner error={error} />
      <ul className="legend" aria-label="Runs in chart">
        {runs.map((r) => (
          <li key={r.id}>
            <span className="swatch" style={{ background: r.color }} /> <a href={href(["experiments", r.experimentId, "runs", r.id])}>{r.name}</a>
          </li>
        ))}
      </ul>
      <ChartControls settings={settings} onChange={setSettings} />
      <p className="muted small">Drag across the chart to zoom in; the zoomed range is fetched again in full detail.</p>
      {runs.length > 0 && <MetricChart runs={runs} metricKey={metricKey} settings={settings} maxPoints={2500} height={460} />}
    </div>
  );
}
