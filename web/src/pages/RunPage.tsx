import { Fragment, useMemo, useState, type ReactNode } from "react";
import { getRun, post, runName, searchRuns, tagValue, type LoggedModel, type Run } from "../api";
import { ArtifactBrowser } from "../components/artifacts";
import { EditableText, ErrorBanner, KeyValueTable, Section, Spinner, StatusBadge, Tabs, TagEditor, useAsync } from "../components/common";
import { ChartControls, defaultChartSettings, MetricGrid } from "../components/metricPanel";
import { colorFor, formatDuration, formatNumber, formatTime } from "../format";
import { href, navigate } from "../router";
import { useExperimentName } from "../components/ExperimentHeader";
import { ImageGrid } from "../components/images";

type Tab = "overview" | "model-metrics" | "system-metrics" | "images" | "artifacts";

/** The tab a URL segment names: MLflow's own (`model-metrics`, `system-metrics`, `artifacts`) and
 * the shorter names earlier versions of this UI wrote, so saved links keep working. */
export function runTab(segment: string | undefined): Tab {
  switch (segment) {
    case "model-metrics":
    case "metrics":
      return "model-metrics";
    case "system-metrics":
    case "system":
      return "system-metrics";
    case "images":
    case "artifacts":
      return segment;
    default:
      return "overview";
  }
}

async function loadRunPage(runId: string) {
  const run = await getRun(runId);
  const parentId = tagValue(run.data.tags, "mlflow.parentRunId");
  const [parent, children, models] = await Promise.all([
    parentId ? getRun(parentId).catch(() => null) : Promise.resolve(null),
    searchRuns({ experimentIds: [run.info.experiment_id], filter: `tags.mlflow.parentRunId = '${runId}'`, maxResults: 100 }).then((p) => p.items),
    post<{ models?: LoggedModel[] }>("logged-models/search", {
      experiment_ids: [run.info.experiment_id],
      filter: `source_run_id = '${runId}'`,
      max_results: 50,
    })
      .then((r) => r.models ?? [])
      .catch(() => [] as LoggedModel[]),
  ]);
  return { run, parent, children, models };
}

export function RunPage({ experimentId, runId, tab, artifactPath }: { experimentId: string; runId: string; tab?: string; artifactPath?: string }) {
  const { data, error, loading, reload } = useAsync(() => loadRunPage(runId), [runId]);
  const active = runTab(tab);
  const experimentName = useExperimentName(experimentId).name;
  const [settings, setSettings] = useState(defaultChartSettings);
  const run = data?.run;
  const metricKeys = useMemo(() => (run?.data.metrics ?? []).map((m) => m.key).sort(), [run]);
  if (loading && !data) return <Spinner />;
  if (error || !run) return <ErrorBanner error={error ?? new Error("Run not found")} />;
  const name = runName(run);
  const chartRuns = [{ id: runId, name, color: colorFor(0) }];
  const tags = run.data.tags ?? [];
  const setTag = (key: string, value: string) => post("runs/set-tag", { run_id: runId, key, value }).then(reload);
  const base = ["experiments", experimentId, "runs", runId];

  return (
    <div className="page run-page">
      <nav className="breadcrumbs" aria-label="Breadcrumbs">
        <a href="#/experiments">Experiments</a> / <a href={href(["experiments", run.info.experiment_id])}>{experimentName ?? `Experiment ${run.info.experiment_id}`}</a> / <span>{name}</span>
      </nav>
      <header className="page-header">
        <h1>{name}</h1>
        <StatusBadge status={run.info.status} />
        {run.info.lifecycle_stage === "deleted" && <span className="badge status-failed">DELETED</span>}
      </header>
      <Tabs
        tabs={[
          { id: "overview", label: "Overview" },
          { id: "model-metrics", label: "Model metrics" },
          { id: "system-metrics", label: "System metrics" },
          ...(tagValue(tags, "mlflow.loggedImages") ? [{ id: "images" as const, label: "Images" }] : []),
          { id: "artifacts", label: "Artifacts" },
        ]}
        active={active}
        onChange={(t) => navigate(href(t === "overview" ? base : [...base, t]), true)}
      />
      {active === "overview" && (
        <div className="overview">
          <Section title="Details">
            <KeyValueTable
              label="Run details"
              rows={[
                ["Run ID", <span className="mono">{runId}</span>],
                ["Status", <StatusBadge status={run.info.status} />],
                ["Created", formatTime(run.info.start_time)],
                ["Ended", formatTime(run.info.end_time)],
                ["Duration", formatDuration(run.info.start_time, run.info.end_time)],
                ["User", run.info.user_id ?? "—"],
                ["Source", [tagValue(tags, "mlflow.source.type"), tagValue(tags, "mlflow.source.name")].filter(Boolean).join(": ") || "—"],
                ["Git commit", tagValue(tags, "mlflow.source.git.commit") ?? "—"],
                ["Artifact URI", <span className="mono">{run.info.artifact_uri}</span>],
                [
                  "Parent run",
                  data.parent ? (
                    <a href={href(["experiments", data.parent.info.experiment_id, "runs", data.parent.info.run_id])}>{runName(data.parent)}</a>
                  ) : (
                    "—"
                  ),
                ],
                [
                  "Child runs",
                  data.children.length ? (
                    <span className="link-list">
                      {data.children.map((c) => (
                        <a key={c.info.run_id} href={href(["experiments", c.info.experiment_id, "runs", c.info.run_id])}>
                          {runName(c)}
                        </a>
                      ))}
                    </span>
                  ) : (
                    "—"
                  ),
                ],
                [
                  "Logged models",
                  data.models.length ? (
                    <span className="link-list">
                      {data.models.map((m) => (
                        <a key={m.info.model_id} href={href(["experiments", m.info.experiment_id, "models", m.info.model_id])}>
                          {m.info.name}
                        </a>
                      ))}
                    </span>
                  ) : (
                    "—"
                  ),
                ],
              ]}
            />
          </Section>
          <Section title="Description">
            <EditableText label="Description" value={tagValue(tags, "mlflow.note.content") ?? ""} onSave={(v) => setTag("mlflow.note.content", v)} placeholder="No description" />
          </Section>
          <Datasets run={run} />
          <Section title={`Parameters (${run.data.params?.length ?? 0})`}>
            <FilterableTable label="Parameters" rows={(run.data.params ?? []).map((p) => [p.key, p.value])} />
          </Section>
          <Section title={`Metrics (${run.data.metrics?.length ?? 0})`}>
            <FilterableTable
              label="Metrics"
              rows={(run.data.metrics ?? []).map((m) => [
                m.key,
                formatNumber(m.value),
                <a href={href(["metric", m.key], { runs: JSON.stringify([runId]), experiments: JSON.stringify([run.info.experiment_id]) })}>Chart</a>,
              ])}
            />
          </Section>
          <Section title="Tags">
            <TagEditor tags={tags} onSet={setTag} onDelete={(key) => post("runs/delete-tag", { run_id: runId, key }).then(reload)} />
          </Section>
        </div>
      )}
      {active === "model-metrics" && (
        <>
          <ChartControls settings={settings} onChange={setSettings} />
          <MetricGrid runs={chartRuns} keys={metricKeys.filter((k) => !k.startsWith("system/"))} settings={settings} empty="This run has no model metrics." />
        </>
      )}
      {active === "system-metrics" && (
        <>
          <ChartControls settings={settings} onChange={setSettings} />
          <MetricGrid
            runs={chartRuns}
            keys={metricKeys.filter((k) => k.startsWith("system/"))}
            settings={settings}
            empty="No system metrics were logged for this run (mlflow.start_run(log_system_metrics=True) records them)."
          />
        </>
      )}
      {active === "images" && <ImageGrid runId={runId} />}
      {active === "artifacts" && (
        <ArtifactBrowser
          source={{ kind: "run", id: runId }}
          initialPath={artifactPath}
          onPathChange={(p) => window.history.replaceState(null, "", href([...base, "artifacts", ...p.split("/")]))}
        />
      )}
    </div>
  );
}

function Datasets({ run }: { run: Run }) {
  const inputs = run.inputs?.dataset_inputs ?? [];
  const [open, setOpen] = useState<number | null>(null);
  return (
    <Section title={`Datasets (${inputs.length})`}>
      {inputs.length === 0 ? (
        <p className="muted">No datasets logged.</p>
      ) : (
        <table className="grid" aria-label="Datasets">
          <thead>
            <tr>
              <th>Name</th>
              <th>Digest</th>
              <th>Context</th>
              <th>Source</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {inputs.map((d, i) => (
              <Fragment key={i}>
                <tr>
                  <td>{d.dataset.name}</td>
                  <td className="mono">{d.dataset.digest}</td>
                  <td>{tagValue(d.tags, "mlflow.data.context") ?? ""}</td>
                  <td>{d.dataset.source_type}</td>
                  <td>
                    <button type="button" className="link-button" aria-expanded={open === i} onClick={() => setOpen(open === i ? null : i)}>
                      {open === i ? "Hide" : "Details"}
                    </button>
                  </td>
                </tr>
                {open === i && (
                  <tr>
                    <td colSpan={5}>
                      <pre className="text-preview">{prettyJson(d.dataset.schema)}</pre>
                      {d.dataset.profile && <pre className="text-preview">{prettyJson(d.dataset.profile)}</pre>}
                      <pre className="text-preview">{prettyJson(d.dataset.source)}</pre>
                    </td>
                  </tr>
                )}
              </Fragment>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}

function prettyJson(text?: string): string {
  if (!text) return "";
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function FilterableTable({ rows, label }: { rows: ReactNode[][]; label: string }) {
  const [filter, setFilter] = useState("");
  const shown = rows.filter((r) => String(r[0]).toLowerCase().includes(filter.toLowerCase()));
  return (
    <>
      {rows.length > 8 && <input className="table-filter" aria-label={`Filter ${label.toLowerCase()}`} placeholder="Filter" value={filter} onChange={(e) => setFilter(e.target.value)} />}
      <table className="kv" aria-label={label}>
        <tbody>
          {shown.length === 0 && (
            <tr>
              <td className="muted">None</td>
            </tr>
          )}
          {shown.map((r, i) => (
            <tr key={i}>
              <th scope="row">{r[0]}</th>
              {r.slice(1).map((c, j) => (
                <td key={j}>{c}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
