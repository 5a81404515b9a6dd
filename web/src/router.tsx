// Hash routes in MLflow's own URL shapes (`#/experiments/1/runs/<id>`, `#/models/<name>`), so
// links users already keep from MLflow's UI open the same pages here, and every page is a deep
// link without any server-side routing.
import { useEffect, useState, type AnchorHTMLAttributes, type ReactNode } from "react";

export interface Location {
  path: string[];
  query: URLSearchParams;
}

export function parseHash(hash: string): Location {
  const raw = hash.replace(/^#/, "");
  const [pathPart, queryPart = ""] = raw.split("?", 2);
  const path = pathPart
    .split("/")
    .filter(Boolean)
    .map((s) => decodeURIComponent(s));
  return { path, query: new URLSearchParams(queryPart) };
}

export function useLocation(): Location {
  const [hash, setHash] = useState(window.location.hash);
  useEffect(() => {
    const onChange = () => setHash(window.location.hash);
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return parseHash(hash);
}

/** Builds `#/a/b?k=v`, encoding each path segment. */
export function href(path: (string | number)[], query?: Record<string, string | undefined>): string {
  const segments = path.map((s) => encodeURIComponent(String(s))).join("/");
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== "") params.set(k, v);
  const q = params.toString();
  return `#/${segments}${q ? `?${q}` : ""}`;
}

export function navigate(to: string, replace = false) {
  if (replace) window.location.replace(to);
  else window.location.hash = to.replace(/^#/, "");
}

/** Rewrites the current page's query without adding a history entry (filters, sort order). */
export function setQuery(update: Record<string, string | undefined>) {
  const current = parseHash(window.location.hash);
  for (const [k, v] of Object.entries(update)) {
    if (v === undefined || v === "") current.query.delete(k);
    else current.query.set(k, v);
  }
  const q = current.query.toString();
  const target = `#/${current.path.map(encodeURIComponent).join("/")}${q ? `?${q}` : ""}`;
  window.history.replaceState(null, "", target);
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}

export function Link({ to, children, ...rest }: { to: string; children: ReactNode } & AnchorHTMLAttributes<HTMLAnchorElement>) {
  return (
    <a href={to} {...rest}>
      {children}
    </a>
  );
}

/** MLflow writes id lists in URLs as JSON arrays: `?runs=["a","b"]`. */
export function idList(value: string | null): string[] {
  if (!value) return [];
  try {
    const parsed = JSON.parse(value);
    return Array.isArray(parsed) ? parsed.map(String) : [String(parsed)];
  } catch {
    return value.split(",").filter(Boolean);
  }
}

export const idListParam = (ids: string[]) => JSON.stringify(ids);
