// An experiment's traces as MLflow 3's traces tab lists them: one row per trace with its request
// and response previews, state, execution time, time, tags, source run and logged model; the
// server filters with the trace search grammar and sorts where its `order_by` can, the page
// sorts the loaded rows by the other columns. Rows are drawn only where the user looks and
// further pages are asked for as the list scrolls, so 100,000 traces cost what one screen does.
import { useMemo } from "react";
import { ErrorBanner, FilterSearchBar, StatusBadge } from "../components/common";
import { usePagedSearch } from "../components/paging";
import { LoadMoreFooter, SortButton, useVirtualRows } from "../components/virtualRows";
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
  const pages = usePagedSearch(
    (pageToken) => searchTraces({ experimentId, filter, orderBy, pageToken, maxResults: PAGE_SIZE }),
    [experimentId, filter, orderBy],
  );
  const rows = useMemo(() => sortLoaded(pages.items, sort), [pages.items, sort.column, sort.descending]);
  const sortedHere = orderBy.length === 0 && sort.column !== "time";
  // The open trace's link keeps the list's filter and sort, so "Traces" in its breadcrumbs
  // comes back to the same list.
  const listQuery = { filter: filter || undefined, sort: query.get("sort") ?? undefined };

  return (
    <>
      <FilterSearchBar param="filter" label="Filter traces" placeholder={FILTER_EXAMPLE} />
      <ErrorBanner error={pages.error} />
      <div className="toolbar">
        <span className="muted" data-testid="trace-count">
          {pages.items.length} traces loaded{pages.nextPageToken ? " (scroll for more)" : ""}
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
  const { scroller, virtualizer, onScroll } = useVirtualRows(rows.length, ROW_HEIGHT, onNearEnd);
  return (
    <div className="runs-table traces-table" role="table" aria-label="Traces" aria-rowcount={rows.length + 1}>
      <div className="runs-scroll" ref={scroller} onScroll={onScroll}>
        <div className="runs-header" role="row" style={{ gridTemplateColumns: TEMPLATE }}>
          {TRACE_COLUMNS.map((c) => {
            const active = sort.column === c.id ? (sort.descending ? "descending" : "ascending") : undefined;
            return (
              <span role="columnheader" key={c.id} aria-sort={active ?? "none"}>
                <SortButton label={c.label} active={active} onSort={() => onSort(c)} />
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
        <LoadMoreFooter noun="traces" loading={loading} hasMore={hasMore} empty={rows.length === 0} onLoadMore={onNearEnd} />
      </div>
    </div>
  );
}

function short(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? "";
  return text.length > 24 ? `${text.slice(0, 23)}…` : text;
}
