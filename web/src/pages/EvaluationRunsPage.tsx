// MLflow's evaluation-runs page (`#/experiments/{id}/evaluation-runs?selectedRunUuid=…`, the link
// the client prints after `mlflow.genai.evaluate`): the experiment's evaluation runs, the selected
// run's aggregate scores and one row per evaluated item (inputs, outputs, expectations, each
// scorer's value and rationale), and a second run side by side (`&compareToRunUuid=…`).
import { useState, type ReactNode } from "react";
import { runName, type Run } from "../api";
import { ExperimentHeader } from "../components/ExperimentHeader";
import { JsonView } from "../components/JsonView";
import { ErrorBanner, Section, Spinner, useAsync } from "../components/common";
import { listEvaluationRuns, loadEvaluationRun, type EvaluationRunData } from "../evaluationApi";
import { formatNumber, formatTime } from "../format";
import { href, setQuery, useLocation } from "../router";
import { aggregates, formatScore, matchRows, scorerNames, verdict, type Aggregate, type EvaluationRow, type ScorerResult } from "./evaluationRows";
import "../evaluation.css";

export function EvaluationRunsPage({ experimentId, selectedRunId }: { experimentId: string; selectedRunId?: string }) {
  const { query } = useLocation();
  const compareRunId = query.get("compareToRunUuid") ?? undefined;
  const runs = useAsync(() => listEvaluationRuns(experimentId), [experimentId]);
  const selected = selectedRunId ?? runs.data?.[0]?.info.run_id;
  return (
    <div className="page evaluation-page">
      <ExperimentHeader experimentId={experimentId} active="evaluation-runs" />
      <ErrorBanner error={runs.error} />
      <div className="evaluation-layout">
        <RunList experimentId={experimentId} runs={runs.data} loading={runs.loading} selected={selected} compareTo={compareRunId} />
        <div className="evaluation-main">
          {selected ? (
            <SelectedRun key={`${selected}/${compareRunId ?? ""}`} experimentId={experimentId} runId={selected} compareRunId={compareRunId} runs={runs.data ?? []} />
          ) : runs.data ? (
            <div className="card empty">
              <p>No evaluation runs in this experiment yet.</p>
              <p className="muted">
                Runs made by <span className="mono">mlflow.genai.evaluate(data=…, predict_fn=…, scorers=[…])</span> appear here with one row per evaluated item.
              </p>
            </div>
          ) : null}
        </div>
      </div>
    </div>
  );
}

function RunList({ experimentId, runs, loading, selected, compareTo }: { experimentId: string; runs?: Run[]; loading: boolean; selected?: string; compareTo?: string }) {
  return (
    <section className="card evaluation-runs" aria-label="Evaluation runs">
      <header className="card-header">
        <h2>Evaluation runs</h2>
        {runs && <span className="muted small">{runs.length}</span>}
      </header>
      {!runs && loading && <Spinner />}
      <ol className="eval-run-list">
        {(runs ?? []).map((r) => {
          const id = r.info.run_id;
          const isSelected = id === selected;
          const isCompared = id === compareTo;
          return (
            <li key={id} data-run={id} className={isSelected ? "selected" : isCompared ? "compared" : undefined}>
              <a href={href(["experiments", experimentId, "evaluation-runs"], { selectedRunUuid: id, compareToRunUuid: compareTo !== id ? compareTo : undefined })} aria-current={isSelected ? "true" : undefined}>
                {runName(r)}
              </a>
              {isCompared && <span className="badge compare-badge">compared</span>}
              <div className="muted small">{formatTime(r.info.start_time)}</div>
              <div className="eval-run-scores small">
                {aggregates(r.data.metrics)
                  .filter((a) => a.aggregation === "mean")
                  .map((a) => (
                    <span key={a.key} className="chip">
                      {a.scorer} {formatNumber(a.value)}
                    </span>
                  ))}
              </div>
            </li>
          );
        })}
      </ol>
    </section>
  );
}

async function loadPair(experimentId: string, runId: string, compareRunId?: string) {
  const [main, other] = await Promise.all([
    loadEvaluationRun(experimentId, runId),
    compareRunId ? loadEvaluationRun(experimentId, compareRunId) : Promise.resolve(undefined),
  ]);
  return { main, other };
}

function SelectedRun({ experimentId, runId, compareRunId, runs }: { experimentId: string; runId: string; compareRunId?: string; runs: Run[] }) {
  const { data, error, loading } = useAsync(() => loadPair(experimentId, runId, compareRunId), [experimentId, runId, compareRunId]);
  const others = runs.filter((r) => r.info.run_id !== runId);
  return (
    <>
      <header className="eval-run-header">
        <h2>
          {data ? runName(data.main.run) : <span className="mono">{runId}</span>}
          {data?.other && (
            <>
              {" "}
              <span className="muted">vs</span> {runName(data.other.run)}
            </>
          )}
        </h2>
        <div className="toolbar">
          <a href={href(["experiments", experimentId, "runs", runId])}>Open run</a>
          <label className="compare-picker">
            Compare with{" "}
            <select aria-label="Compare with" value={compareRunId ?? ""} onChange={(e) => setQuery({ compareToRunUuid: e.target.value || undefined })}>
              <option value="">No other run</option>
              {others.map((r) => (
                <option key={r.info.run_id} value={r.info.run_id}>
                  {runName(r)} ({formatTime(r.info.start_time)})
                </option>
              ))}
            </select>
          </label>
        </div>
      </header>
      <ErrorBanner error={error} />
      {loading && !data && <Spinner label="Loading evaluation results…" />}
      {data && (
        <>
          <AggregateScores main={data.main} other={data.other} />
          {data.other ? <CompareTable experimentId={experimentId} main={data.main} other={data.other} /> : <ResultsTable experimentId={experimentId} data={data.main} />}
        </>
      )}
    </>
  );
}

function AggregateScores({ main, other }: { main: EvaluationRunData; other?: EvaluationRunData }) {
  const mine = aggregates(main.run.data.metrics);
  const theirs = new Map<string, Aggregate>(aggregates(other?.run.data.metrics).map((a) => [a.key, a]));
  const keys = [...mine.map((a) => a.key), ...[...theirs.keys()].filter((k) => !mine.some((a) => a.key === k))];
  const byKey = new Map(mine.map((a) => [a.key, a]));
  return (
    <Section title="Aggregate scores">
      {keys.length === 0 ? (
        <p className="muted">This run has no scorer metrics.</p>
      ) : (
        <table className="grid" aria-label="Aggregate scores">
          <thead>
            <tr>
              <th>Scorer</th>
              <th>Aggregation</th>
              <th className="num">{other ? runName(main.run) : "Value"}</th>
              {other && (
                <>
                  <th className="num">{runName(other.run)}</th>
                  <th className="num">Change</th>
                </>
              )}
            </tr>
          </thead>
          <tbody>
            {keys.map((k) => {
              const a = byKey.get(k);
              const b = theirs.get(k);
              const agg = a ?? b!;
              // The change reads from the compared run to the selected one: what this run did better or worse.
              const delta = a && b ? a.value - b.value : undefined;
              return (
                <tr key={k} data-metric={k}>
                  <td>{agg.scorer}</td>
                  <td className="muted">{agg.aggregation}</td>
                  <td className="num" data-run="selected">
                    {a ? formatNumber(a.value) : "—"}
                  </td>
                  {other && (
                    <>
                      <td className="num" data-run="compared">
                        {b ? formatNumber(b.value) : "—"}
                      </td>
                      <td className={`num delta ${delta === undefined || delta === 0 ? "" : delta > 0 ? "up" : "down"}`} data-delta={delta ?? ""}>
                        {delta === undefined ? "—" : `${delta > 0 ? "+" : delta < 0 ? "−" : "±"}${formatNumber(Math.abs(delta))}`}
                      </td>
                    </>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </Section>
  );
}

function Score({ name, result }: { name: string; result?: ScorerResult }) {
  if (!result) return <span className="muted">—</span>;
  const kind = result.error ? "error" : verdict(result.value);
  const badge = (
    <span className={`badge score score-${kind}`} title={result.error ?? result.rationale}>
      {result.error ? "error" : formatScore(result.value)}
    </span>
  );
  const detail = result.error ?? result.rationale;
  if (!detail) return <span className="score-cell" data-scorer={name} data-value={formatScore(result.value)}>{badge}</span>;
  return (
    <details className="score-cell" data-scorer={name} data-value={formatScore(result.value)}>
      <summary aria-label={`${name}: ${result.error ? "error" : formatScore(result.value)}, show ${result.error ? "error" : "rationale"}`}>{badge}</summary>
      <div className={result.error ? "rationale error-text" : "rationale"}>{detail}</div>
    </details>
  );
}

function Expectations({ value }: { value: Record<string, unknown> }) {
  const keys = Object.keys(value);
  if (keys.length === 0) return <span className="muted">—</span>;
  return <JsonView value={value} openDepth={2} label="Expectations" />;
}

function TraceLink({ experimentId, traceId }: { experimentId: string; traceId: string }) {
  return (
    <a className="mono small trace-link" href={href(["experiments", experimentId, "traces"], { selectedEvaluationId: traceId })} title={traceId}>
      {traceId.length > 14 ? `${traceId.slice(0, 14)}…` : traceId}
    </a>
  );
}

function RowFilter({ value, onChange }: { value: string; onChange: (v: string) => void }) {
  return <input className="row-filter" aria-label="Filter rows" placeholder="Filter rows by inputs, outputs or expectations" value={value} onChange={(e) => onChange(e.target.value)} />;
}

function rowText(row?: EvaluationRow): string {
  if (!row) return "";
  return JSON.stringify([row.inputs, row.outputs, row.expectations]).toLowerCase();
}

function ResultsTable({ experimentId, data }: { experimentId: string; data: EvaluationRunData }) {
  const [filter, setFilter] = useState("");
  const scorers = scorerNames(data.rows);
  const rows = data.rows.filter((r) => !filter || rowText(r).includes(filter.toLowerCase()));
  return (
    <Section title={`Evaluation results (${data.rows.length})`} actions={<RowFilter value={filter} onChange={setFilter} />}>
      {data.rows.length === 0 ? (
        <p className="muted">No traces are linked to this run.</p>
      ) : (
        <ScoresTable label="Evaluation results" headers={["#", "Inputs", "Outputs", "Expectations"]} scorers={scorers} trailingHeaders={["Trace"]}>
          {rows.map((r, i) => (
            <tr key={r.traceId} data-trace={r.traceId}>
              <td className="muted">{i + 1}</td>
              <td className="io-cell" data-col="inputs">
                <JsonView value={r.inputs} label="Inputs" />
              </td>
              <td className="io-cell" data-col="outputs">
                <JsonView value={r.outputs} label="Outputs" />
              </td>
              <td className="io-cell" data-col="expectations">
                <Expectations value={r.expectations} />
              </td>
              {scorers.map((s) => (
                <td key={s}>
                  <Score name={s} result={r.scores[s]} />
                </td>
              ))}
              <td>
                <TraceLink experimentId={experimentId} traceId={r.traceId} />
              </td>
            </tr>
          ))}
        </ScoresTable>
      )}
    </Section>
  );
}

function CompareTable({ experimentId, main, other }: { experimentId: string; main: EvaluationRunData; other: EvaluationRunData }) {
  const [filter, setFilter] = useState("");
  const [onlyChanged, setOnlyChanged] = useState(false);
  const scorers = scorerNames(main.rows, other.rows);
  const matched = matchRows(main.rows, other.rows);
  const changed = (m: (typeof matched)[number]) => scorers.some((s) => formatScore(m.left?.scores[s]?.value) !== formatScore(m.right?.scores[s]?.value));
  const rows = matched.filter(
    (m) => (!filter || (rowText(m.left) + rowText(m.right)).includes(filter.toLowerCase())) && (!onlyChanged || changed(m)),
  );
  const mainName = runName(main.run);
  const otherName = runName(other.run);
  return (
    <Section
      title={`Side by side (${matched.length} items)`}
      actions={
        <div className="toolbar">
          <label className="small">
            <input type="checkbox" checked={onlyChanged} onChange={(e) => setOnlyChanged(e.target.checked)} /> Only items whose scores differ
          </label>
          <RowFilter value={filter} onChange={setFilter} />
        </div>
      }
    >
      <div className="run-legend" aria-label="Runs">
        <span className="selected">{mainName} (selected)</span>
        <span className="compared">{otherName} (compared)</span>
      </div>
      <ScoresTable label="Compared results" className="compare" headers={["Inputs", "Expectations", "Outputs"]} scorers={scorers}>
        {rows.map((m, i) => {
          const differs = changed(m);
          return (
            <tr key={i} className={differs ? "differs" : undefined} data-inputs={m.key}>
              <td className="io-cell" data-col="inputs">
                <JsonView value={(m.left ?? m.right)!.inputs} label="Inputs" />
              </td>
              <td className="io-cell" data-col="expectations">
                <Expectations value={(m.left ?? m.right)!.expectations} />
              </td>
              <td className="io-cell" data-col="outputs">
                <SideOutputs side="selected" name={mainName} row={m.left} experimentId={experimentId} />
                <SideOutputs side="compared" name={otherName} row={m.right} experimentId={experimentId} />
              </td>
              {scorers.map((s) => (
                <td key={s} className="score-pair">
                  <div className="side" data-run="selected">
                    <Score name={s} result={m.left?.scores[s]} />
                  </div>
                  <div className="side" data-run="compared">
                    <Score name={s} result={m.right?.scores[s]} />
                  </div>
                </td>
              ))}
            </tr>
          );
        })}
      </ScoresTable>
    </Section>
  );
}

/** A table of evaluated items: its own column headers, then one per scorer, then `trailingHeaders`. */
function ScoresTable({
  label,
  className,
  headers,
  scorers,
  trailingHeaders = [],
  children,
}: {
  label: string;
  className?: string;
  headers: string[];
  scorers: string[];
  trailingHeaders?: string[];
  children: ReactNode;
}) {
  return (
    <div className="eval-table-scroll">
      <table className={className ? `grid eval-table ${className}` : "grid eval-table"} aria-label={label}>
        <thead>
          <tr>
            {headers.map((h) => (
              <th key={h}>{h}</th>
            ))}
            {scorers.map((s) => (
              <th key={s} className="scorer-col">
                {s}
              </th>
            ))}
            {trailingHeaders.map((h) => (
              <th key={h}>{h}</th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

/** One run's outputs for an item in the side-by-side table, headed by the run and its trace. */
function SideOutputs({ side, name, row, experimentId }: { side: "selected" | "compared"; name: string; row?: EvaluationRow; experimentId: string }) {
  return (
    <div className="side" data-run={side}>
      <div className="side-label small muted">
        {name} {row && <TraceLink experimentId={experimentId} traceId={row.traceId} />}
      </div>
      {row ? <JsonView value={row.outputs} label={`Outputs of ${name}`} /> : <span className="muted">not evaluated</span>}
    </div>
  );
}
