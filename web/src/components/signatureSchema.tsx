// A model's signature as its MLmodel file records it. MLflow writes MLmodel with PyYAML
// (`safe_dump`, block style) and stores `signature.inputs`, `.outputs` and `.params` as JSON
// strings; long strings are folded over several lines and may be single- or double-quoted.
// Only that part of YAML is read here: a top-level block mapping and its scalar children.

/** One column or tensor of an input or output schema. */
export interface SchemaEntry {
  name?: string;
  /** The column's type as written for people (`double`, `array<string>`, `{a: long}`), or `tensor`. */
  type: string;
  required: boolean;
  tensor?: { dtype: string; shape: (number | string)[] };
}

export interface ParamEntry {
  name: string;
  type: string;
  default: unknown;
  shape: (number | string)[] | null;
}

export interface ModelSignature {
  inputs: SchemaEntry[] | null;
  outputs: SchemaEntry[] | null;
  params: ParamEntry[] | null;
}

/** The scalar children of the top-level mapping `key` (as strings, `null` for YAML nulls), or
 * `undefined` when the document has no such key or it is not a mapping of scalars. */
export function readTopLevelMapping(text: string, key: string): Record<string, string | null> | undefined {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  const start = lines.findIndex((l) => l.startsWith(`${key}:`) && /^\s*(#.*)?$/.test(l.slice(key.length + 1)));
  if (start < 0) return undefined;
  const block: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.length > 0 && !/^\s/.test(line) && !line.startsWith("#")) break;
    block.push(line);
  }
  const first = block.find((l) => l.trim() !== "" && !l.trim().startsWith("#"));
  if (first === undefined) return undefined;
  const indent = first.length - first.trimStart().length;
  const out: Record<string, string | null> = {};
  let current: { key: string; lines: string[] } | null = null;
  const finish = () => {
    if (current) out[current.key] = readScalar(current.lines.join("\n"));
  };
  for (const line of block) {
    const lineIndent = line.length - line.trimStart().length;
    const blank = line.trim() === "";
    if (!blank && lineIndent === indent && !(current && isInsideQuotes(current.lines))) {
      const m = /^(?:'((?:[^']|'')*)'|"((?:[^"\\]|\\.)*)"|([^\s'"#][^:#]*?))\s*:(?:\s+(.*))?$/.exec(line.slice(indent));
      if (m) {
        finish();
        const name = m[1] !== undefined ? m[1].replace(/''/g, "'") : m[2] !== undefined ? m[2] : m[3];
        current = { key: name, lines: [m[4] ?? ""] };
        continue;
      }
      if (line.trimStart().startsWith("#")) continue;
    }
    if (!blank && lineIndent < indent) break;
    if (current) current.lines.push(line);
  }
  finish();
  return out;
}

/** True while a quoted scalar opened in `lines` has not been closed yet. */
function isInsideQuotes(lines: string[]): boolean {
  const text = lines.join("\n").trimStart();
  if (text.startsWith("'")) return closingQuote(text, "'") < 0;
  if (text.startsWith('"')) return closingQuote(text, '"') < 0;
  return false;
}

function closingQuote(text: string, quote: "'" | '"'): number {
  for (let i = 1; i < text.length; i++) {
    const c = text[i];
    if (quote === '"' && c === "\\") i++;
    else if (c === quote) {
      if (quote === "'" && text[i + 1] === "'") i++;
      else return i;
    }
  }
  return -1;
}

/** A flow scalar as YAML reads it: quoted (with escapes and line folding), plain, or a block
 * scalar (`|`, `>`). Returns `null` for YAML's nulls. */
export function readScalar(raw: string): string | null {
  const text = raw.trimStart();
  if (text.startsWith("'") || text.startsWith('"')) {
    const quote = text[0] as "'" | '"';
    const end = closingQuote(text, quote);
    const body = text.slice(1, end < 0 ? undefined : end);
    return quote === "'" ? unfoldQuoted(body, false) : unfoldQuoted(body, true);
  }
  if (/^[|>]/.test(text)) return readBlockScalar(text);
  const plain = text
    .split("\n")
    .map((l) => l.replace(/(^|\s)#.*$/, "").trim())
    .filter((l, i, all) => l !== "" || (i > 0 && i < all.length - 1))
    .join(" ")
    .trim();
  return plain === "" || plain === "~" || /^(null|Null|NULL)$/.test(plain) ? null : plain;
}

const ESCAPES: Record<string, string> = {
  "0": "\0",
  a: "\x07",
  b: "\b",
  t: "\t",
  "\t": "\t",
  n: "\n",
  v: "\v",
  f: "\f",
  r: "\r",
  e: "\x1b",
  " ": " ",
  '"': '"',
  "/": "/",
  "\\": "\\",
  N: "\x85",
  _: "\xa0",
  L: "\u2028",
  P: "\u2029",
};

/** The content of a quoted scalar: a line break between text is a space, an empty line a
 * newline, the lines' surrounding white space is dropped; `''` in single quotes is a quote;
 * double quotes also take backslash escapes, including an escaped line break (no space). */
function unfoldQuoted(body: string, escapes: boolean): string {
  let out = "";
  // White space written by an escape is content and survives the trimming before a break.
  let protectedLength = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (!escapes && c === "'" && body[i + 1] === "'") {
      out += "'";
      i++;
    } else if (escapes && c === "\\") {
      const next = body[i + 1];
      i++;
      if (next === "\n") {
        while (body[i + 1] === " " || body[i + 1] === "\t") i++;
      } else if (next === "x" || next === "u" || next === "U") {
        const width = next === "x" ? 2 : next === "u" ? 4 : 8;
        const code = parseInt(body.slice(i + 1, i + 1 + width), 16);
        out += Number.isNaN(code) ? "" : String.fromCodePoint(code);
        i += width;
      } else {
        out += ESCAPES[next] ?? next ?? "";
      }
      protectedLength = out.length;
    } else if (c === "\n") {
      out = out.slice(0, protectedLength) + out.slice(protectedLength).replace(/[ \t]+$/, "");
      let breaks = 1;
      let j = i + 1;
      for (;;) {
        while (body[j] === " " || body[j] === "\t") j++;
        if (body[j] === "\n") {
          breaks++;
          j++;
        } else break;
      }
      out += breaks === 1 ? " " : "\n".repeat(breaks - 1);
      i = j - 1;
    } else {
      out += c;
    }
  }
  return out;
}

function readBlockScalar(text: string): string {
  const [header, ...rest] = text.split("\n");
  const lines = rest.length > 0 && rest[rest.length - 1].trim() === "" ? rest.slice(0, -1) : rest;
  const indent = Math.min(...lines.filter((l) => l.trim() !== "").map((l) => l.length - l.trimStart().length));
  const content = lines.map((l) => l.slice(Number.isFinite(indent) ? indent : 0));
  const joined = header.startsWith("|") ? content.join("\n") : content.join("\n").replace(/([^\n])\n(?=[^\n ])/g, "$1 ");
  return header.includes("-") ? joined : joined + "\n";
}

/** The signature in an MLmodel file; `null` when the model was logged without one. */
export function readSignature(mlmodel: string): ModelSignature | null {
  const fields = readTopLevelMapping(mlmodel, "signature");
  if (!fields) return null;
  const inputs = parseJson(fields.inputs);
  const outputs = parseJson(fields.outputs);
  const params = parseJson(fields.params);
  if (inputs == null && outputs == null && params == null) return null;
  return {
    inputs: Array.isArray(inputs) ? inputs.map(schemaEntry) : null,
    outputs: Array.isArray(outputs) ? outputs.map(schemaEntry) : null,
    params: Array.isArray(params) ? params.map(paramEntry) : null,
  };
}

function parseJson(text: string | null | undefined): unknown {
  if (text == null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

type Json = Record<string, unknown>;

function schemaEntry(spec: unknown): SchemaEntry {
  const s = (spec ?? {}) as Json;
  const name = typeof s.name === "string" ? s.name : undefined;
  // MLflow before 2.10 wrote `optional`; later versions write `required` (default true).
  const required = typeof s.required === "boolean" ? s.required : s.optional !== true;
  if (s.type === "tensor") {
    const t = (s["tensor-spec"] ?? {}) as Json;
    return { name, type: "tensor", required, tensor: { dtype: String(t.dtype ?? "?"), shape: shapeOf(t.shape) ?? [] } };
  }
  return { name, type: typeLabel(s), required };
}

function paramEntry(spec: unknown): ParamEntry {
  const s = (spec ?? {}) as Json;
  return { name: String(s.name ?? ""), type: typeLabel(s), default: s.default ?? null, shape: shapeOf(s.shape) };
}

function shapeOf(shape: unknown): (number | string)[] | null {
  return Array.isArray(shape) ? shape.map((d) => (typeof d === "number" ? d : String(d))) : null;
}

/** A column type as MLflow's schema JSON writes it, for people: nested arrays, objects and maps
 * are spelled out (`array<string>`, `{a: long, b?: string}`, `map<string, double>`). */
export function typeLabel(spec: unknown): string {
  if (typeof spec === "string") return spec;
  const s = (spec ?? {}) as Json;
  switch (s.type) {
    case "array":
      return `array<${typeLabel(s.items)}>`;
    case "map":
      return `map<string, ${typeLabel(s.values)}>`;
    case "object": {
      const props = Object.entries((s.properties ?? {}) as Record<string, Json>);
      return `{${props.map(([k, v]) => `${k}${v.required === false ? "?" : ""}: ${typeLabel(v)}`).join(", ")}}`;
    }
    case "tensor": {
      const t = (s["tensor-spec"] ?? {}) as Json;
      return `tensor<${String(t.dtype ?? "?")}>`;
    }
    default:
      return typeof s.type === "string" ? s.type : "?";
  }
}

/** A tensor shape as NumPy prints it; -1 is a dimension of any size. */
export function shapeLabel(shape: (number | string)[]): string {
  return `(${shape.join(", ")}${shape.length === 1 ? "," : ""})`;
}
