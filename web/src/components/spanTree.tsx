// A trace's spans as a collapsible tree beside a waterfall: each row is one span (its name
// indented by depth, its type and duration) and a bar placed by its start and end within the
// trace. Only the rows in view are in the DOM, so a trace of thousands of spans draws at once.
import { useVirtualizer } from "@tanstack/react-virtual";
import { useMemo, useRef } from "react";
import { barPosition, formatMs, spanDurationMs, visibleRows, type Span, type SpanTree } from "../pages/traceModel";

const ROW_HEIGHT = 30;
const VISIBLE_ROWS = 18;

export function SpanTypeBadge({ type }: { type: string }) {
  return <span className={`badge span-type span-type-${type.toLowerCase()}`}>{type}</span>;
}

export function SpanTreeView({
  tree,
  collapsed,
  onToggle,
  selectedId,
  onSelect,
}: {
  tree: SpanTree;
  collapsed: Set<string>;
  onToggle: (id: string) => void;
  selectedId?: string;
  onSelect: (span: Span) => void;
}) {
  const rows = useMemo(() => visibleRows(tree, collapsed), [tree, collapsed]);
  const scroller = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 10,
  });
  const height = Math.min(rows.length, VISIBLE_ROWS) * ROW_HEIGHT + 2;
  const total = tree.endMs - tree.startMs;
  return (
    <div className="span-tree">
      <div className="span-tree-header" aria-hidden="true">
        <span>Span</span>
        <span>Type</span>
        <span className="num">Duration</span>
        <span className="span-axis">
          <span>0</span>
          <span>{formatMs(total / 2)}</span>
          <span>{formatMs(total)}</span>
        </span>
      </div>
      <div className="span-tree-scroll" ref={scroller} style={{ height }} role="tree" aria-label="Span tree">
        <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
          {virtualizer.getVirtualItems().map((item) => {
            const { span, depth, childCount, collapsed: isCollapsed } = rows[item.index];
            const bar = barPosition(span, tree);
            const selected = span.id === selectedId;
            return (
              <div
                key={span.id}
                role="treeitem"
                aria-level={depth + 1}
                aria-selected={selected}
                aria-expanded={childCount ? !isCollapsed : undefined}
                data-testid="span-row"
                data-span-name={span.name}
                className={selected ? "span-row selected" : "span-row"}
                style={{ transform: `translateY(${item.start}px)`, height: ROW_HEIGHT }}
                onClick={() => onSelect(span)}
              >
                <span className="span-name-cell" style={{ paddingLeft: depth * 16 }}>
                  {childCount > 0 ? (
                    <button
                      type="button"
                      className="expander"
                      aria-label={`${isCollapsed ? "Expand" : "Collapse"} ${span.name}`}
                      onClick={(e) => {
                        e.stopPropagation();
                        onToggle(span.id);
                      }}
                    >
                      {isCollapsed ? "▸" : "▾"}
                    </button>
                  ) : (
                    <span className="expander-spacer" />
                  )}
                  <button type="button" className="span-name" title={span.name}>
                    {span.name}
                  </button>
                  {span.status === "ERROR" && <span className="badge status-error">error</span>}
                </span>
                <span>
                  <SpanTypeBadge type={span.type} />
                </span>
                <span className="num">{formatMs(spanDurationMs(span))}</span>
                <span className="span-bar-cell">
                  <span
                    className={span.status === "ERROR" ? "span-bar error" : "span-bar"}
                    style={{ left: `${bar.left}%`, width: `${bar.width}%` }}
                    title={`${span.name}: starts at ${formatMs(span.startMs - tree.startMs)}, takes ${formatMs(spanDurationMs(span))}`}
                  />
                </span>
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}
