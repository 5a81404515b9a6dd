// The parts the long, scrolled tables (runs, traces) share: only the rows in view are drawn, and
// the next page is asked for as the user scrolls near the end of what is loaded.
import { useVirtualizer } from "@tanstack/react-virtual";
import { useRef } from "react";
import { Spinner } from "./common";

/** How close to the end of the loaded rows, in rows, the next page is asked for. */
const NEAR_END_ROWS = 40;

export function useVirtualRows(count: number, rowHeight: number, onNearEnd: () => void) {
  const scroller = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer({
    count,
    getScrollElement: () => scroller.current,
    estimateSize: () => rowHeight,
    overscan: 12,
  });
  const onScroll = () => {
    const el = scroller.current;
    if (el && el.scrollTop + el.clientHeight >= el.scrollHeight - NEAR_END_ROWS * rowHeight) onNearEnd();
  };
  return { scroller, virtualizer, onScroll };
}

/** What follows the loaded rows: a spinner while a page loads, else a button for more (for those
 * who do not scroll) or the note that nothing matched. */
export function LoadMoreFooter({ noun, loading, hasMore, empty, onLoadMore }: { noun: string; loading: boolean; hasMore: boolean; empty: boolean; onLoadMore: () => void }) {
  if (loading) return <Spinner label={`Loading ${noun}…`} />;
  return (
    <>
      {hasMore && (
        <button type="button" className="load-more" onClick={onLoadMore}>
          Load more {noun}
        </button>
      )}
      {empty && <p className="muted empty">No {noun} match.</p>}
    </>
  );
}

/** A column header that sorts by its column; `active` is the direction it sorts in now. */
export function SortButton({ label, active, onSort }: { label: string; active?: "ascending" | "descending"; onSort: () => void }) {
  return (
    <button type="button" className="sort-header" data-sort={active ?? "none"} onClick={onSort} aria-label={`Sort by ${label}`}>
      {label}
      {active === "ascending" ? " ▲" : active === "descending" ? " ▼" : ""}
    </button>
  );
}
