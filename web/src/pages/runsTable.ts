// The runs table's model: which columns exist, how a run renders in each, how rows nest under
// their parent run. Kept apart from the React view so it can be reasoned about (and exported
// to CSV) without the DOM.
import { runName, tagValue, type Run } from "../api";
import { csvCell, formatDuration, formatNumber, formatTime, searchKey } from "../format";

export type ColumnKind = "attribute" | "metric" | "param" | "tag";

export interface Column {
  id: string;
  kind: ColumnKind;
  key: string;
  label: string;
  width: number;
  /** The order_by expression the server sorts this column by, if it can. */
  sortKey?: string;
  text: (run: Run) => string;
}

const attribute = (key: string, label: string, width: number, text: (r: Run) => string, sortKey?: string): Column => ({
  id: `attribute:${key}`,
  kind: "attribute",
  key,
  label,
  width,
  sortKey,
  text,
});

export const ATTRIBUTE_COLUMNS: Column[] = [
  attribute("start_time", "Created", 170, (r) => formatTime(r.info.start_time), "attributes.start_time"),
  attribute("duration", "Duration", 100, (r) => formatDuration(r.info.start_time, r.info.end_time)),
  attribute("status", "Status", 100, (r) => r.info.status, "attributes.status"),
  attribute("user_id", "User", 110, (r) => r.info.user_id ?? "", "attributes.user_id"),
  attribute("source", "Source", 160, (r) => tagValue(r.data.tags, "mlflow.source.name") ?? "", "tags.`mlflow.source.name`"),
  attribute("run_id", "Run ID", 260, (r) => r.info.run_id),
  attribute("end_time", "Ended", 170, (r) => formatTime(r.info.end_time), "attributes.end_time"),
  attribute(
    "dataset",
    "Datasets",
    160,
    (r) => (r.inputs?.dataset_inputs ?? []).map((d) => d.dataset.name).join(", "),
  ),
  attribute("models", "Models", 90, (r) => String((r.outputs?.model_outputs ?? []).length || "")),
];

export const NAME_SORT_KEY = "attributes.run_name";
export const DEFAULT_ATTRIBUTES = ["start_time", "duration", "status", "user_id", "source"];

export function metricColumn(key: string): Column {
  return {
    id: `metric:${key}`,
    kind: "metric",
    key,
    label: key,
    width: 120,
    sortKey: searchKey("metrics", key),
    text: (r) => formatNumber(r.data.metrics?.find((m) => m.key === key)?.value),
  };
}

export function paramColumn(key: string): Column {
  return {
    id: `param:${key}`,
    kind: "param",
    key,
    label: key,
    width: 120,
    sortKey: searchKey("params", key),
    text: (r) => r.data.params?.find((p) => p.key === key)?.value ?? "",
  };
}

export function tagColumn(key: string): Column {
  return {
    id: `tag:${key}`,
    kind: "tag",
    key,
    label: key,
    width: 140,
    sortKey: searchKey("tags", key),
    text: (r) => tagValue(r.data.tags, key) ?? "",
  };
}

export function columnFromId(id: string): Column | undefined {
  const [kind, ...rest] = id.split(":");
  const key = rest.join(":");
  if (kind === "attribute") return ATTRIBUTE_COLUMNS.find((c) => c.key === key);
  if (kind === "metric") return metricColumn(key);
  if (kind === "param") return paramColumn(key);
  if (kind === "tag") return tagColumn(key);
  return undefined;
}

/** Every metric, param and tag key the loaded runs have, sorted, for the column picker. */
export function discoverKeys(runs: Run[]) {
  const metrics = new Set<string>();
  const params = new Set<string>();
  const tags = new Set<string>();
  for (const r of runs) {
    r.data.metrics?.forEach((m) => metrics.add(m.key));
    r.data.params?.forEach((p) => params.add(p.key));
    r.data.tags?.forEach((t) => !t.key.startsWith("mlflow.") && tags.add(t.key));
  }
  const sorted = (s: Set<string>) => [...s].sort();
  return { metrics: sorted(metrics), params: sorted(params), tags: sorted(tags) };
}

export interface RunRow {
  run: Run;
  depth: number;
  childCount: number;
  expanded: boolean;
}

export const parentOf = (run: Run) => tagValue(run.data.tags, "mlflow.parentRunId");

/** Rows in display order: each run whose parent is loaded appears under it when expanded. */
export function nestRows(runs: Run[], expanded: Set<string>): RunRow[] {
  const loaded = new Set(runs.map((r) => r.info.run_id));
  const children = new Map<string, Run[]>();
  const roots: Run[] = [];
  for (const r of runs) {
    const parent = parentOf(r);
    if (parent && loaded.has(parent) && parent !== r.info.run_id) {
      const list = children.get(parent) ?? [];
      list.push(r);
      children.set(parent, list);
    } else {
      roots.push(r);
    }
  }
  const rows: RunRow[] = [];
  const visit = (run: Run, depth: number) => {
    const kids = children.get(run.info.run_id) ?? [];
    const isOpen = expanded.has(run.info.run_id);
    rows.push({ run, depth, childCount: kids.length, expanded: isOpen });
    if (isOpen && depth < 20) kids.forEach((k) => visit(k, depth + 1));
  };
  roots.forEach((r) => visit(r, 0));
  return rows;
}

export function toCsv(runs: Run[], columns: Column[]): string {
  const header = ["Run name", "Run ID", ...columns.filter((c) => c.key !== "run_id").map((c) => (c.kind === "attribute" ? c.label : `${c.kind}s.${c.key}`))];
  const lines = [header.map(csvCell).join(",")];
  for (const run of runs) {
    const cells = columns
      .filter((c) => c.key !== "run_id")
      .map((c) => (c.kind === "metric" ? String(run.data.metrics?.find((m) => m.key === c.key)?.value ?? "") : c.text(run)));
    lines.push([runName(run), run.info.run_id, ...cells].map(csvCell).join(","));
  }
  return lines.join("\n") + "\n";
}
