// Lists the server hands out a page at a time: either grown as the user scrolls (runs, traces)
// or stepped through with Previous and Next (registered models, prompts).
import { useCallback, useEffect, useRef, useState } from "react";
import type { Page } from "../api";
import { useAsync } from "./common";

export interface PagedSearch<T> {
  items: T[];
  nextPageToken?: string;
  loading: boolean;
  error?: Error;
  /** Starts over from the first page. */
  reload: () => void;
  /** Asks for the next page, unless one is on its way or there is none. */
  loadMore: () => void;
}

/** A list that grows a page at a time. A change of `key` (what `fetchPage` searches for) starts
 * it over, and answers to a search the user has since left are dropped. */
export function usePagedSearch<T>(fetchPage: (pageToken: string | undefined) => Promise<Page<T>>, key: unknown[]): PagedSearch<T> {
  const [state, setState] = useState<Omit<PagedSearch<T>, "reload" | "loadMore">>({ items: [], loading: true });
  const generation = useRef(0);
  const fetchInto = useCallback(
    (pageToken: string | undefined, mine: number) => {
      setState((s) => ({ ...s, loading: true }));
      fetchPage(pageToken).then(
        (page) => {
          if (mine !== generation.current) return;
          setState((s) => ({ items: pageToken ? [...s.items, ...page.items] : page.items, nextPageToken: page.nextPageToken, loading: false }));
        },
        (error: Error) => mine === generation.current && setState((s) => ({ ...s, error, loading: false, nextPageToken: undefined })),
      );
    },
    [JSON.stringify(key)],
  );
  const reload = useCallback(() => {
    const mine = ++generation.current;
    setState({ items: [], loading: true });
    fetchInto(undefined, mine);
  }, [fetchInto]);
  useEffect(() => reload(), [reload]);
  const loadMore = useCallback(() => {
    if (state.loading || !state.nextPageToken) return;
    fetchInto(state.nextPageToken, generation.current);
  }, [state.loading, state.nextPageToken, fetchInto]);
  return { ...state, reload, loadMore };
}

/** One page of a list at a time, with the tokens of the pages before it kept for Previous. */
export function useSteppedPages<T>(fetchPage: (pageToken: string | undefined) => Promise<Page<T>>, deps: unknown[]) {
  const [pageToken, setPageToken] = useState<string | undefined>();
  const [history, setHistory] = useState<(string | undefined)[]>([]);
  const page = useAsync(() => fetchPage(pageToken), [...deps, pageToken]);
  const nextPageToken = page.data?.nextPageToken;
  return {
    ...page,
    /** Back to the first page, for a new search. */
    restart: () => {
      setPageToken(undefined);
      setHistory([]);
    },
    previous: history.length > 0 ? () => (setPageToken(history[history.length - 1]), setHistory(history.slice(0, -1))) : undefined,
    next: nextPageToken ? () => (setHistory([...history, pageToken]), setPageToken(nextPageToken)) : undefined,
  };
}

export function Pager({ previous, next }: { previous?: () => void; next?: () => void }) {
  return (
    <div className="pager">
      <button type="button" disabled={!previous} onClick={previous}>
        Previous
      </button>
      <button type="button" disabled={!next} onClick={next}>
        Next
      </button>
    </div>
  );
}
