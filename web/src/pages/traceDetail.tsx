// One trace: its summary (state, time, execution time, source run, logged model, tags), the span
// tree with its waterfall, the selected span's contents and the trace's assessments.
import { useMemo, useState, type ReactNode } from "react";
import { ErrorBanner, KeyValueTable, Spinner, StatusBadge, useAsync } from "../components/common";
import { SpanDetail } from "../components/spanDetail";
import { SpanTreeView } from "../components/spanTree";
import { TraceAssessments } from "../components/traceAssessments";
import { formatTime } from "../format";
import { href } from "../router";
import { getTraceInfo, getTraceSpans } from "../tracesApi";
import {
  buildSpanTree,
  durationMs,
  formatMs,
  modelId,
  sourceRunId,
  timestampMs,
  userTags,
  type Span,
  type TraceInfo,
} from "./traceModel";

function TraceSummary({ info, experimentId, spanCount }: { info: TraceInfo; experimentId: string; spanCount?: number }) {
  const run = sourceRunId(info);
  const model = modelId(info);
  const tags = userTags(info);
  const rows: [string, ReactNode][] = [
    ["Trace ID", <span className="mono">{info.trace_id}</span>],
    ["Status", <StatusBadge status={info.state} />],
    ["Request time", formatTime(timestampMs(info.request_time))],
    ["Execution time", formatMs(durationMs(info.execution_duration))],
  ];
  if (spanCount !== undefined) rows.push(["Spans", String(spanCount)]);
  if (run) rows.push(["Source run", <a href={href(["experiments", experimentId, "runs", run])}>{run}</a>]);
  if (model) rows.push(["Logged model", <a href={href(["experiments", experimentId, "models", model])}>{model}</a>]);
  if (info.client_request_id) rows.push(["Client request ID", <span className="mono">{info.client_request_id}</span>]);
  rows.push([
    "Tags",
    tags.length ? (
      <span className="chips" aria-label="Trace tags">
        {tags.map(([k, v]) => (
          <span key={k} className="chip">
            {k}: {v}
          </span>
        ))}
      </span>
    ) : (
      <span className="muted">None</span>
    ),
  ]);
  return (
    <section className="card trace-summary" aria-label="Trace">
      <KeyValueTable rows={rows} label="Trace details" />
      {(info.request_preview || info.response_preview) && (
        <div className="trace-previews">
          <div>
            <h3>Request</h3>
            <pre className="json-view json-text">{info.request_preview}</pre>
          </div>
          <div>
            <h3>Response</h3>
            <pre className="json-view json-text">{info.response_preview}</pre>
          </div>
        </div>
      )}
    </section>
  );
}

export function TraceDetail({ experimentId, traceId }: { experimentId: string; traceId: string }) {
  const info = useAsync(() => getTraceInfo(traceId), [traceId]);
  const spans = useAsync(() => getTraceSpans(traceId), [traceId]);
  const tree = useMemo(() => buildSpanTree(spans.data ?? []), [spans.data]);
  const byId = useMemo(() => new Map((spans.data ?? []).map((s) => [s.id, s])), [spans.data]);
  const [selectedId, setSelectedId] = useState<string | undefined>();
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const selected: Span | undefined = (selectedId && byId.get(selectedId)) || tree.roots[0];
  const toggle = (id: string) =>
    setCollapsed((s) => {
      const next = new Set(s);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });

  return (
    <>
      <ErrorBanner error={info.error} />
      {info.data ? <TraceSummary info={info.data} experimentId={experimentId} spanCount={spans.data?.length} /> : info.loading && <Spinner label="Loading trace…" />}
      <ErrorBanner error={spans.error} />
      {spans.loading && !spans.data && <Spinner label="Loading spans…" />}
      {spans.data && spans.data.length === 0 && <p className="muted">This trace has no spans.</p>}
      {spans.data && spans.data.length > 0 && (
        <div className="trace-body">
          <section className="card trace-spans" aria-label="Spans">
            <header className="card-header">
              <h2>Spans</h2>
              <span className="row-actions">
                <button type="button" className="link-button" onClick={() => setCollapsed(new Set())}>
                  Expand all
                </button>
                <button
                  type="button"
                  className="link-button"
                  onClick={() => setCollapsed(new Set([...tree.children.keys()].filter((id) => !tree.roots.some((r) => r.id === id))))}
                >
                  Collapse all
                </button>
              </span>
            </header>
            <SpanTreeView tree={tree} collapsed={collapsed} onToggle={toggle} selectedId={selected?.id} onSelect={(s) => setSelectedId(s.id)} />
          </section>
          {selected && <SpanDetail key={selected.id} span={selected} tree={tree} />}
        </div>
      )}
      {info.data && (
        <TraceAssessments traceId={traceId} assessments={info.data.assessments ?? []} spans={byId} selectedSpan={selected} onChanged={info.reload} />
      )}
    </>
  );
}
