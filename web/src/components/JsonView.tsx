// A JSON value as a collapsible tree (span inputs and outputs, attributes, scorer rationales).
// Strings are rendered as text nodes, never as markup, so logged content stays inert.
import { useState } from "react";

/** Strings that hold JSON (span attributes are stored that way) are shown as the value they hold. */
export function parseMaybeJson(value: unknown): unknown {
  if (typeof value !== "string") return value;
  const t = value.trim();
  if (!(t.startsWith("{") || t.startsWith("[") || t.startsWith('"'))) return value;
  try {
    return JSON.parse(t);
  } catch {
    return value;
  }
}

function Scalar({ value }: { value: unknown }) {
  if (value === null) return <span className="json-null">null</span>;
  if (typeof value === "string") return <span className="json-string">{JSON.stringify(value)}</span>;
  if (typeof value === "number") return <span className="json-number">{String(value)}</span>;
  if (typeof value === "boolean") return <span className="json-bool">{String(value)}</span>;
  return <span>{String(value)}</span>;
}

function Node({ name, value, depth, openDepth }: { name?: string; value: unknown; depth: number; openDepth: number }) {
  const composite = value !== null && typeof value === "object";
  const [open, setOpen] = useState(depth < openDepth);
  const label = name !== undefined ? <span className="json-key">{name}: </span> : null;
  if (!composite) {
    return (
      <div className="json-line" style={{ paddingLeft: depth * 14 }}>
        {label}
        <Scalar value={value} />
      </div>
    );
  }
  const entries: [string, unknown][] = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value as object);
  const [openMark, closeMark] = Array.isArray(value) ? ["[", "]"] : ["{", "}"];
  return (
    <div>
      <div className="json-line" style={{ paddingLeft: depth * 14 }}>
        <button type="button" className="json-toggle" aria-expanded={open} onClick={() => setOpen(!open)}>
          {open ? "▾" : "▸"}
        </button>
        {label}
        {open ? openMark : `${openMark} ${entries.length} ${entries.length === 1 ? "item" : "items"} ${closeMark}`}
      </div>
      {open && entries.map(([k, v]) => <Node key={k} name={Array.isArray(value) ? undefined : k} value={v} depth={depth + 1} openDepth={openDepth} />)}
      {open && (
        <div className="json-line" style={{ paddingLeft: depth * 14 }}>
          {closeMark}
        </div>
      )}
    </div>
  );
}

/** `value` as a tree, open `openDepth` levels deep; a plain string is shown as wrapped text. */
export function JsonView({ value, openDepth = 2, label }: { value: unknown; openDepth?: number; label?: string }) {
  const parsed = parseMaybeJson(value);
  if (typeof parsed === "string") {
    return (
      <pre className="json-view json-text" aria-label={label}>
        {parsed}
      </pre>
    );
  }
  return (
    <div className="json-view mono" aria-label={label}>
      <Node value={parsed} depth={0} openDepth={openDepth} />
    </div>
  );
}
