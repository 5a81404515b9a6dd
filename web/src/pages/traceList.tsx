// An experiment's traces as MLflow 3's traces tab lists them: one row per trace with its request
// and response previews, state, execution time, time, tags, source run and logged model; the
// server filters with the trace search grammar and sorts where its `order_by` can, the page
// sorts the loaded rows by the other columns. Rows are drawn only where the user looks and
// further pages are asked for as the list scrolls, so 100,000 traces cost what one screen does.
import { useVirtualizer } from "@tanstack/react-virtual";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { ErrorBanner, Spinner, StatusBadge } from "../components/common";
import { formatTime } from "../format";
import { href, setQuery, useLocation } from "../router";
import { searchTraces } from "../tracesApi";
import {
  TRACE_COLUMNS,
  assessmentValue,
  durationMs,
  formatMs,
  modelId,
  parseSort,
  serverOrderBy,
  sortLoaded,
  sortParam,
  sourceRunId,
  timestampMs,
  toggleSort,
  userTags,
  type TraceColumn,
  type TraceInfo,
} from "./traceModel";

const PAGE_SIZE = 100;
const ROW_HEIGHT = 36;
const FILTER_EXAMPLE = "tags.topic = 'billing' AND attributes.status = 'OK' AND trace.timestamp_ms > 1700000000000";

interface TracePages {
  traces: TraceInfo[];
  nextPageToken?: string;
  loading: boolean;
  error?: Error;
}

function useTracePages(experimentId: string, filter: string, orderBy: string[]) {
  const [state, setState] = useState<TracePages>({ traces: [], loading: true });
  const generation = useRef(0);
  const key = JSON.stringify([experimentId, filter, orderBy]);
  const fetchPage = useCallback(
    (pageToken: string | undefined, mine: number) => {
      setState((s) => ({ ...s, loading: true }));
      searchTraces({ experimentId, filter, orderBy, pageToken, maxResults: PAGE_SIZE }).then(
        (page) => {
          if (mine !== generation.current) return;
          setState((s) => ({ traces: pageToken ? [...s.traces, ...page.traces] : page.traces, nextPageToken: page.nextPageToken, loading: false }));
        },
        (error: Error) => mine === generation.current && setState((s) => ({ ...s, error, loading: false, nextPageToken: undefined })),
      );
    },
    [key],
  );
  useEffect(() => {
    const mine = ++generation.current;
    setState({ traces: [], loading: true });
    fetchPage(undefined, mine);
  }, [fetchPage]);
  const loadMore = useCallback(() => {
    if (state.loading || !state.nextPageToken) return;
    fetchPage(state.nextPageToken, generation.current);
  }, [state.loading, state.nextPageToken, fetchPage]);
  return { ...state, loadMore };
}

const WIDTHS: Record<string, string> = {
  request: "minmax(0, 1.6fr)",
  response: "minmax(0, 1.6fr)",
  status: "90px",
  latency: "130px",
  time: "170px",
  tags: "minmax(0, 1.4fr)",
  run: "100px",
  model: "130px",
  assessments: "minmax(0, 1.2fr)",
};
const TEMPLATE = [...TRACE_COLUMNS.map((c) => WIDTHS[c.id]), WIDTHS.assessments].join(" ");

export function TraceList({ experimentId }: { experimentId: string }) {
  const { query } = useLocation();
  const filter = query.get("filter") ?? "";
  const sort = parseSort(query.get("sort"));
  const orderBy = serverOrderBy(sort);
  const [draft, setDraft] = useState(filter);
  useEffect(() => setDraft(filter), [filter]);
  const pages = useTracePages(experimentId, filter, orderBy);
  const rows = useMemo(() => sortLoaded(pages.traces, sort), [pages.traces, sort.column, sort.descending]);
  const sortedHere = orderBy.length === 0 && sort.column !== "time";
  // The open trace's link keeps the list's filter and sort, so "Traces" in its breadcrumbs
  // comes back to the same list.
  const listQuery = { filter: filter || undefined, sort: query.get("sort") ?? undefined };

  return (
    <>
      <form
        className="search-bar"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setQuery({ filter: draft.trim() });
        }}
      >
        <input aria-label="Filter traces" className="mono" placeholder={FILTER_EXAMPLE} value={draft} onChange={(e) => setDraft(e.target.value)} />
        <button type="submit">Search</button>
        {filter && (
          <button type="button" onClick={() => setQuery({ filter: undefined })}>
            Clear
          </button>
        )}
      </form>
      <ErrorBanner error={pages.error} />
      <div className="toolbar">
        <span className="muted" data-testid="trace-count">
          {pages.traces.length} traces loaded{pages.nextPageToken ? " (scroll for more)" : ""}
        </span>
        {sortedHere && pages.nextPageToken && <span className="muted small">sorted within the loaded traces</span>}
      </div>
      <TraceTable
        experimentId={experimentId}
        rows={rows}
        sort={sort}
        onSort={(column) => setQuery({ sort: sortParam(toggleSort(sort, column.id)) })}
        onNearEnd={pages.loadMore}
        loading={pages.loading}
        hasMore={Boolean(pages.nextPageToken)}
        listQuery={listQuery}
      />
    </>
  );
}

function TraceTable({
  experimentId,
  rows,
  sort,
  onSort,
  onNearEnd,
  loading,
  hasMore,
  listQuery,
}: {
  experimentId: string;
  rows: TraceInfo[];
  sort: ReturnType<typeof parseSort>;
  onSort: (column: TraceColumn) => void;
  onNearEnd: () => void;
  loading: boolean;
  hasMore: boolean;
  listQuery: Record<string, string | undefined>;
}) {
  const scroller = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
  });
  const onScroll = () => {
    const el = scroller.current;
    if (el && el.scrollTop + el.clientHeight >= el.scrollHeight - 40 * ROW_HEIGHT) onNearEnd();
  };
  return (
    <div className="runs-table traces-table" role="table" aria-label="Traces" aria-rowcount={rows.length + 1}>
      <div className="runs-scroll" ref={scroller} onScroll={onScroll}>
        <div className="runs-header" role="row" style={{ gridTemplateColumns: TEMPLATE }}>
          {TRACE_COLUMNS.map((c) => {
            const active = sort.column === c.id ? (sort.descending ? "descending" : "ascending") : undefined;
            return (
              <span role="columnheader" key={c.id} aria-sort={active ?? "none"}>
                <button type="button" className="sort-header" data-sort={active ?? "none"} onClick={() => onSort(c)} aria-label={`Sort by ${c.label}`}>
                  {c.label}
                  {active === "ascending" ? " ▲" : active === "descending" ? " ▼" : ""}
                </button>
              </span>
            );
          })}
          <span role="columnheader">Assessments</span>
        </div>
        <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
          {virtualizer.getVirtualItems().map((item) => {
            const t = rows[item.index];
            const run = sourceRunId(t);
            const model = modelId(t);
            const tags = userTags(t);
            const valid = (t.assessments ?? []).filter((a) => a.valid !== false);
            return (
              <div
                key={t.trace_id}
                role="row"
                data-testid="trace-row"
                data-trace-id={t.trace_id}
                className="runs-row"
                style={{ gridTemplateColumns: TEMPLATE, transform: `translateY(${item.start}px)`, height: ROW_HEIGHT }}
              >
                <span role="cell" className="trace-request" title={t.request_preview}>
                  <a href={href(["experiments", experimentId, "traces", t.trace_id], listQuery)}>{t.request_preview || t.trace_id}</a>
                </span>
                <span role="cell" className="trace-response" title={t.response_preview}>
                  {t.response_preview}
                </span>
                <span role="cell">
                  <StatusBadge status={t.state} />
                </span>
                <span role="cell" className="num">
                  {formatMs(durationMs(t.execution_duration))}
                </span>
                <span role="cell">{formatTime(timestampMs(t.request_time))}</span>
                <span role="cell" className="trace-tags" title={tags.map(([k, v]) => `${k}: ${v}`).join("\n")}>
                  {tags.map(([k, v]) => (
                    <span key={k} className="chip">
                      {k}: {v}
                    </span>
                  ))}
                </span>
                <span role="cell" className="mono">
                  {run && <a href={href(["experiments", experimentId, "runs", run])}>{run.slice(0, 8)}</a>}
                </span>
                <span role="cell" className="mono">
                  {model && <a href={href(["experiments", experimentId, "models", model])}>{model.slice(0, 14)}</a>}
                </span>
                <span role="cell" className="trace-assessments" title={valid.map((a) => `${a.assessment_name}: ${JSON.stringify(assessmentValue(a))}`).join("\n")}>
                  {valid.map((a) => (
                    <span key={a.assessment_id} className={a.expectation ? "chip expectation" : "chip"}>
                      {a.assessment_name}: {short(assessmentValue(a))}
                    </span>
                  ))}
                </span>
              </div>
            );
          })}
        </div>
        {loading && <Spinner label="Loading traces…" />}
        {!loading && hasMore && (
          <button type="button" className="load-more" onClick={onNearEnd}>
            Load more traces
          </button>
        )}
        {!loading && rows.length === 0 && <p className="muted empty">No traces match.</p>}
      </div>
    </div>
  );
}

function short(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? "";
  return text.length > 24 ? `${text.slice(0, 23)}…` : text;
}
