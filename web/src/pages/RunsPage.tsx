import { useCallback, useMemo, useState } from "react";
import { getExperiment, post, runName, searchRuns, type Run } from "../api";
import { CompareCharts } from "../components/compareCharts";
import { ExperimentHeader } from "../components/ExperimentHeader";
import { ExperimentModels } from "./ExperimentModels";
import { ErrorBanner, FilterSearchBar, StatusBadge, Tabs, useAsync } from "../components/common";
import { usePagedSearch } from "../components/paging";
import { LoadMoreFooter, SortButton, useVirtualRows } from "../components/virtualRows";
import { ChartControls, defaultChartSettings, MetricGrid, type ChartRun } from "../components/metricPanel";
import { colorFor, downloadText } from "../format";
import { href, idListParam, navigate, setQuery, useLocation } from "../router";
import {
  ATTRIBUTE_COLUMNS,
  DEFAULT_ATTRIBUTES,
  NAME_SORT_KEY,
  columnFromId,
  discoverKeys,
  nestRows,
  toCsv,
  type Column,
} from "./runsTable";

const PAGE_SIZE = 200;
const EXPORT_LIMIT = 100_000;
const ROW_HEIGHT = 34;

function storedColumns(scope: string): string[] | null {
  try {
    const raw = localStorage.getItem(`mlox.columns.${scope}`);
    return raw ? (JSON.parse(raw) as string[]) : null;
  } catch {
    return null;
  }
}

const MIN_COLUMN_WIDTH = 60;
const MAX_COLUMN_WIDTH = 800;

function storedWidths(scope: string): Record<string, number> {
  try {
    const raw = localStorage.getItem(`mlox.columnWidths.${scope}`);
    return raw ? (JSON.parse(raw) as Record<string, number>) : {};
  } catch {
    return {};
  }
}

/** The drag handle on a header's right edge; arrow keys resize too, double-click restores. */
function ColumnResizer({ label, width, onResize, onReset }: { label: string; width: number; onResize: (w: number) => void; onReset: () => void }) {
  const clamp = (w: number) => Math.max(MIN_COLUMN_WIDTH, Math.min(MAX_COLUMN_WIDTH, Math.round(w)));
  return (
    <span
      className="col-resizer"
      role="separator"
      aria-orientation="vertical"
      aria-label={`Resize column ${label}`}
      aria-valuenow={width}
      aria-valuemin={MIN_COLUMN_WIDTH}
      aria-valuemax={MAX_COLUMN_WIDTH}
      tabIndex={0}
      onDoubleClick={onReset}
      onKeyDown={(e) => {
        if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
          e.preventDefault();
          onResize(clamp(width + (e.key === "ArrowRight" ? 20 : -20)));
        }
      }}
      onPointerDown={(e) => {
        e.preventDefault();
        const startX = e.clientX;
        const move = (ev: PointerEvent) => onResize(clamp(width + ev.clientX - startX));
        const up = () => {
          window.removeEventListener("pointermove", move);
          window.removeEventListener("pointerup", up);
        };
        window.addEventListener("pointermove", move);
        window.addEventListener("pointerup", up);
      }}
    />
  );
}

function ColumnPicker({
  keys,
  chosen,
  onChange,
}: {
  keys: { metrics: string[]; params: string[]; tags: string[] };
  chosen: string[];
  onChange: (ids: string[]) => void;
}) {
  const [open, setOpen] = useState(false);
  const [search, setSearch] = useState("");
  const groups: [string, string[]][] = [
    ["Attributes", ATTRIBUTE_COLUMNS.map((c) => c.id)],
    ["Metrics", keys.metrics.map((k) => `metric:${k}`)],
    ["Params", keys.params.map((k) => `param:${k}`)],
    ["Tags", keys.tags.map((k) => `tag:${k}`)],
  ];
  const label = (id: string) => columnFromId(id)?.label ?? id;
  return (
    <div className="popover-anchor">
      <button type="button" aria-expanded={open} onClick={() => setOpen(!open)}>
        Columns
      </button>
      {open && (
        <div className="popover" role="dialog" aria-label="Choose columns" onKeyDown={(e) => e.key === "Escape" && setOpen(false)}>
          <input aria-label="Filter columns" placeholder="Filter columns" value={search} onChange={(e) => setSearch(e.target.value)} autoFocus />
          {groups.map(([title, ids]) => {
            const shown = ids.filter((id) => label(id).toLowerCase().includes(search.toLowerCase()));
            if (shown.length === 0) return null;
            return (
              <fieldset key={title}>
                <legend>{title}</legend>
                {shown.map((id) => (
                  <label key={id}>
                    <input
                      type="checkbox"
                      checked={chosen.includes(id)}
                      onChange={(e) => onChange(e.target.checked ? [...chosen, id] : chosen.filter((c) => c !== id))}
                    />{" "}
                    {label(id)}
                  </label>
                ))}
              </fieldset>
            );
          })}
          <button type="button" onClick={() => setOpen(false)}>
            Done
          </button>
        </div>
      )}
    </div>
  );
}

function SortHeader({ column, orderBy, onSort, label }: { column?: Column; orderBy: string[]; onSort: (key: string) => void; label: string }) {
  const sortKey = column ? column.sortKey : NAME_SORT_KEY;
  const current = orderBy[0] ?? "";
  const active = sortKey && current.startsWith(sortKey + " ") ? (current.endsWith("ASC") ? "ascending" : "descending") : undefined;
  if (!sortKey) return <span>{label}</span>;
  return <SortButton label={label} active={active} onSort={() => onSort(sortKey)} />;
}

export function RunsPage({ experimentIds, view: routeView }: { experimentIds: string[]; view?: "models" }) {
  const { query } = useLocation();
  const filter = query.get("searchFilter") ?? "";
  const orderBy = query.get("orderBy") ? [query.get("orderBy") as string] : ["attributes.start_time DESC"];
  const view = routeView ?? ((query.get("view") ?? "table") as "table" | "chart" | "models");
  const viewType = query.get("lifecycle") === "deleted" ? "DELETED_ONLY" : "ACTIVE_ONLY";
  const scope = experimentIds.join(",");
  const experiments = useAsync(() => Promise.all(experimentIds.map(getExperiment)), [scope]);
  // Runs arrive a page at a time; the table asks for the next page as it scrolls near the end.
  const pages = usePagedSearch(
    (pageToken) => searchRuns({ experimentIds, filter, orderBy, pageToken, maxResults: PAGE_SIZE, viewType }),
    [experimentIds, filter, orderBy, viewType],
  );
  const keys = useMemo(() => discoverKeys(pages.items), [pages.items]);
  const [chosen, setChosen] = useState<string[] | null>(() => storedColumns(scope));
  const columnIds = chosen ?? [
    ...DEFAULT_ATTRIBUTES.map((k) => `attribute:${k}`),
    ...keys.metrics.filter((k) => !k.startsWith("system/")).slice(0, 8).map((k) => `metric:${k}`),
    ...keys.params.slice(0, 8).map((k) => `param:${k}`),
  ];
  const columns = columnIds.map(columnFromId).filter((c): c is Column => Boolean(c));
  const chooseColumns = (ids: string[]) => {
    setChosen(ids);
    localStorage.setItem(`mlox.columns.${scope}`, JSON.stringify(ids));
  };
  const [widths, setWidths] = useState<Record<string, number>>(() => storedWidths(scope));
  const resizeColumn = (id: string, width: number | undefined) =>
    setWidths((w) => {
      const next = { ...w };
      if (width === undefined) delete next[id];
      else next[id] = width;
      localStorage.setItem(`mlox.columnWidths.${scope}`, JSON.stringify(next));
      return next;
    });
  const [expanded, setExpanded] = useState<Set<string>>(new Set());
  const rows = useMemo(() => nestRows(pages.items, expanded), [pages.items, expanded]);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [exporting, setExporting] = useState<string | null>(null);
  const [actionError, setActionError] = useState<Error | null>(null);

  const onSort = (key: string) => {
    const current = orderBy[0] ?? "";
    const next = current === `${key} DESC` ? `${key} ASC` : `${key} DESC`;
    setQuery({ orderBy: next });
  };
  const toggleSelected = (id: string) =>
    setSelected((s) => {
      const next = new Set(s);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  const toggleExpanded = (id: string) =>
    setExpanded((s) => {
      const next = new Set(s);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });

  const exportCsv = async () => {
    setExporting("Exporting…");
    try {
      const all: Run[] = [];
      let pageToken: string | undefined;
      do {
        const page = await searchRuns({ experimentIds, filter, orderBy, pageToken, maxResults: 1000, viewType });
        all.push(...page.items);
        pageToken = page.nextPageToken;
        setExporting(`Exporting… ${all.length} runs`);
      } while (pageToken && all.length < EXPORT_LIMIT);
      downloadText("runs.csv", toCsv(all, columns));
      setActionError(null);
    } catch (e) {
      setActionError(e as Error);
    } finally {
      setExporting(null);
    }
  };

  const selectedRuns = pages.items.filter((r) => selected.has(r.info.run_id));
  const chartRuns = (selectedRuns.length ? selectedRuns : pages.items.slice(0, 10)).slice(0, 100);
  const colorOf = useCallback((_id: string, i: number) => colorFor(i), []);
  const title = experiments.data ? experiments.data.map((e) => e.name).join(", ") : "Runs";

  return (
    <div className="page runs-page">
      {experimentIds.length === 1 ? (
        <ExperimentHeader experimentId={experimentIds[0]} active={view === "table" ? "runs" : view} />
      ) : (
        <>
          <nav className="breadcrumbs" aria-label="Breadcrumbs">
            <a href="#/experiments">Experiments</a> / <span>{title}</span>
          </nav>
          <header className="page-header">
            <h1>{title}</h1>
          </header>
          <ErrorBanner error={experiments.error} />
          <Tabs
            tabs={[
              { id: "table", label: "Runs" },
              { id: "chart", label: "Charts" },
              { id: "models", label: "Models" },
            ]}
            active={view}
            onChange={(v) => setQuery({ view: v === "table" ? undefined : v })}
          />
        </>
      )}
      {view !== "models" && (
        <FilterSearchBar param="searchFilter" label="Filter runs" placeholder="metrics.rmse < 1 and params.model = 'tree' and tags.mlflow.runName LIKE 'best%'">
          <select
            aria-label="Lifecycle"
            value={viewType === "DELETED_ONLY" ? "deleted" : "active"}
            onChange={(e) => setQuery({ lifecycle: e.target.value === "deleted" ? "deleted" : undefined })}
          >
            <option value="active">Active</option>
            <option value="deleted">Deleted</option>
          </select>
        </FilterSearchBar>
      )}
      <ErrorBanner error={pages.error ?? actionError} />
      {view === "table" && (
        <>
          <div className="toolbar">
            <span className="muted" data-testid="run-count">
              {pages.items.length} runs loaded{pages.nextPageToken ? " (scroll for more)" : ""}
            </span>
            <span className="spacer" />
            {selected.size > 0 && <span>{selected.size} selected</span>}
            <button
              type="button"
              disabled={selected.size < 2}
              onClick={() => navigate(href(["compare-runs"], { runs: idListParam([...selected]), experiments: idListParam(experimentIds) }))}
            >
              Compare
            </button>
            <button
              type="button"
              className="danger"
              disabled={selected.size === 0 || viewType === "DELETED_ONLY"}
              onClick={async () => {
                if (!window.confirm(`Delete ${selected.size} run(s)?`)) return;
                try {
                  for (const id of selected) await post("runs/delete", { run_id: id });
                  setSelected(new Set());
                  pages.reload();
                } catch (e) {
                  setActionError(e as Error);
                }
              }}
            >
              Delete
            </button>
            <button type="button" onClick={() => setExpanded(new Set(pages.items.map((r) => r.info.run_id)))}>
              Expand all
            </button>
            <button type="button" onClick={() => setExpanded(new Set())}>
              Collapse all
            </button>
            <ColumnPicker keys={keys} chosen={columnIds} onChange={chooseColumns} />
            <button type="button" onClick={exportCsv} disabled={Boolean(exporting)}>
              {exporting ?? "Download CSV"}
            </button>
          </div>
          <RunsTable
            rows={rows}
            columns={columns}
            widths={widths}
            onResize={resizeColumn}
            orderBy={orderBy}
            onSort={onSort}
            selected={selected}
            onToggleSelected={toggleSelected}
            onSelectAll={(all) => setSelected(all ? new Set(pages.items.map((r) => r.info.run_id)) : new Set())}
            onToggleExpanded={toggleExpanded}
            onNearEnd={pages.loadMore}
            loading={pages.loading}
            hasMore={Boolean(pages.nextPageToken)}
          />
        </>
      )}
      {view === "chart" && <RunCharts runs={chartRuns} colorOf={colorOf} selectedCount={selectedRuns.length} />}
      {view === "models" && <ExperimentModels experimentIds={experimentIds} />}
    </div>
  );
}

function RunsTable({
  rows,
  columns,
  widths,
  onResize,
  orderBy,
  onSort,
  selected,
  onToggleSelected,
  onSelectAll,
  onToggleExpanded,
  onNearEnd,
  loading,
  hasMore,
}: {
  rows: ReturnType<typeof nestRows>;
  columns: Column[];
  widths: Record<string, number>;
  onResize: (columnId: string, width: number | undefined) => void;
  orderBy: string[];
  onSort: (key: string) => void;
  selected: Set<string>;
  onToggleSelected: (id: string) => void;
  onSelectAll: (all: boolean) => void;
  onToggleExpanded: (id: string) => void;
  onNearEnd: () => void;
  loading: boolean;
  hasMore: boolean;
}) {
  // More runs are fetched when the user scrolls near the end, not whenever few rows show: an
  // experiment whose runs all nest under one collapsed parent would otherwise load every page.
  const { scroller, virtualizer, onScroll } = useVirtualRows(rows.length, ROW_HEIGHT, onNearEnd);
  const items = virtualizer.getVirtualItems();
  const widthOf = (c: Column) => widths[c.id] ?? c.width;
  const template = `40px 28px minmax(220px, 2fr) ${columns.map((c) => `${widthOf(c)}px`).join(" ")}`;
  const allSelected = rows.length > 0 && rows.every((r) => selected.has(r.run.info.run_id));
  return (
    <div className="runs-table" role="table" aria-label="Runs" aria-rowcount={rows.length + 1}>
      <div className="runs-scroll" ref={scroller} onScroll={onScroll}>
        <div className="runs-header" role="row" style={{ gridTemplateColumns: template }}>
          <span role="columnheader" className="check">
            <input type="checkbox" aria-label="Select all runs" checked={allSelected} onChange={(e) => onSelectAll(e.target.checked)} />
          </span>
          <span role="columnheader" className="expander-cell" />
          <span role="columnheader">
            <SortHeader orderBy={orderBy} onSort={onSort} label="Run name" />
          </span>
          {columns.map((c) => (
            <span role="columnheader" key={c.id} className={`col-${c.kind} resizable`} title={`${c.kind === "attribute" ? c.label : `${c.kind}: ${c.key}`}`}>
              <SortHeader column={c} orderBy={orderBy} onSort={onSort} label={c.label} />
              <ColumnResizer label={c.label} width={widthOf(c)} onResize={(w) => onResize(c.id, w)} onReset={() => onResize(c.id, undefined)} />
            </span>
          ))}
        </div>
        <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
          {items.map((item) => {
            const row = rows[item.index];
            const run = row.run;
            const id = run.info.run_id;
            return (
              <div
                key={id}
                role="row"
                data-testid="run-row"
                data-run-id={id}
                className={selected.has(id) ? "runs-row selected" : "runs-row"}
                style={{ gridTemplateColumns: template, transform: `translateY(${item.start}px)`, height: ROW_HEIGHT }}
              >
                <span role="cell" className="check">
                  <input type="checkbox" aria-label={`Select run ${runName(run)}`} checked={selected.has(id)} onChange={() => onToggleSelected(id)} />
                </span>
                <span role="cell" className="expander-cell">
                  {row.childCount > 0 && (
                    <button
                      type="button"
                      className="expander"
                      aria-expanded={row.expanded}
                      aria-label={`${row.expanded ? "Collapse" : "Expand"} ${row.childCount} child runs of ${runName(run)}`}
                      onClick={() => onToggleExpanded(id)}
                    >
                      {row.expanded ? "▾" : "▸"}
                    </button>
                  )}
                </span>
                <span role="cell" className="run-name" style={{ paddingLeft: row.depth * 18 }}>
                  <a href={href(["experiments", run.info.experiment_id, "runs", id])}>{runName(run)}</a>
                  {row.childCount > 0 && <span className="muted small"> ({row.childCount})</span>}
                </span>
                {columns.map((c) => (
                  <span role="cell" key={c.id} className={`col-${c.kind}`}>
                    {c.key === "status" && c.kind === "attribute" ? <StatusBadge status={run.info.status} /> : c.text(run)}
                  </span>
                ))}
              </div>
            );
          })}
        </div>
        <LoadMoreFooter noun="runs" loading={loading} hasMore={hasMore} empty={rows.length === 0} onLoadMore={onNearEnd} />
      </div>
    </div>
  );
}

function RunCharts({ runs, colorOf, selectedCount }: { runs: Run[]; colorOf: (id: string, i: number) => string; selectedCount: number }) {
  const [settings, setSettings] = useState(defaultChartSettings);
  const chartRuns: ChartRun[] = runs.map((r, i) => ({ id: r.info.run_id, name: runName(r), color: colorOf(r.info.run_id, i) }));
  const keys = discoverKeys(runs).metrics;
  const modelKeys = keys.filter((k) => !k.startsWith("system/"));
  const systemKeys = keys.filter((k) => k.startsWith("system/"));
  return (
    <div className="run-charts">
      <p className="muted">
        {selectedCount ? `Showing the ${runs.length} selected runs.` : `Showing the first ${runs.length} runs; select runs in the table to choose others.`}
      </p>
      <ul className="legend" aria-label="Runs in charts">
        {chartRuns.map((r) => (
          <li key={r.id}>
            <span className="swatch" style={{ background: r.color }} /> {r.name}
          </li>
        ))}
      </ul>
      <ChartControls settings={settings} onChange={setSettings} />
      <h2>Model metrics</h2>
      <MetricGrid runs={chartRuns} keys={modelKeys} settings={settings} empty="These runs have no metrics." />
      {systemKeys.length > 0 && (
        <>
          <h2>System metrics</h2>
          <MetricGrid runs={chartRuns} keys={systemKeys} settings={settings} empty="" />
        </>
      )}
      <h2>Compare params and metrics</h2>
      <CompareCharts runs={runs} colorOf={colorOf} />
    </div>
  );
}
