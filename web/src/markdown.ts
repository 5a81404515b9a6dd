// Markdown as users write it in descriptions (MLflow renders run, experiment and model notes as
// Markdown), parsed into a small tree the UI turns into React elements. Only the common subset is
// understood: headings, paragraphs, emphasis, code, links, lists, quotes and rules. Raw HTML is
// never interpreted: it stays text, so a description cannot inject markup or script.

export type Inline =
  | { kind: "text"; text: string }
  | { kind: "code"; text: string }
  | { kind: "strong"; children: Inline[] }
  | { kind: "em"; children: Inline[] }
  | { kind: "link"; href: string; children: Inline[] };

export type Block =
  | { kind: "heading"; level: number; children: Inline[] }
  | { kind: "paragraph"; children: Inline[] }
  | { kind: "code"; text: string }
  | { kind: "quote"; children: Block[] }
  | { kind: "list"; ordered: boolean; items: Block[][] }
  | { kind: "rule" };

/** Links may go to the web, to mail, or within the page; `javascript:` and the like are dropped. */
export function safeHref(raw: string): string | null {
  const href = raw.trim();
  if (/^(https?:|mailto:)/i.test(href)) return href;
  if (/^(#|\/|\.\/|\.\.\/)/.test(href)) return href;
  // A relative path without a scheme (`docs/readme.md`) is harmless; anything with a scheme is not allowed.
  if (/^[a-z][a-z0-9+.-]*:/i.test(href)) return null;
  return href;
}

const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;

export function parseMarkdown(source: string): Block[] {
  return parseBlocks(source.replace(/\r\n?/g, "\n").split("\n"));
}

function parseBlocks(lines: string[]): Block[] {
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i++;
      continue;
    }
    const fence = /^\s*(```|~~~)/.exec(line);
    if (fence) {
      const body: string[] = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i++;
      blocks.push({ kind: "code", text: body.join("\n") });
      continue;
    }
    const heading = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      blocks.push({ kind: "heading", level: heading[1].length, children: parseInline(heading[2]) });
      i++;
      continue;
    }
    if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) {
      blocks.push({ kind: "rule" });
      i++;
      continue;
    }
    if (/^\s{0,3}>/.test(line)) {
      const quoted: string[] = [];
      while (i < lines.length && /^\s{0,3}>/.test(lines[i])) quoted.push(lines[i++].replace(/^\s{0,3}>\s?/, ""));
      blocks.push({ kind: "quote", children: parseBlocks(quoted) });
      continue;
    }
    if (/^ {4}/.test(line)) {
      const body: string[] = [];
      while (i < lines.length && (/^ {4}/.test(lines[i]) || !lines[i].trim())) body.push(lines[i++].slice(4));
      while (body.length && !body[body.length - 1].trim()) body.pop();
      blocks.push({ kind: "code", text: body.join("\n") });
      continue;
    }
    const item = LIST_ITEM.exec(line);
    if (item) {
      const ordered = /\d/.test(item[2]);
      const indent = item[1].length;
      const items: Block[][] = [];
      while (i < lines.length) {
        const m = LIST_ITEM.exec(lines[i]);
        if (!m || m[1].length !== indent || /\d/.test(m[2]) !== ordered) break;
        const body = [m[3]];
        i++;
        // Continuation lines are indented past the marker; blank lines end the item.
        while (i < lines.length && lines[i].trim() && (lines[i].length - lines[i].trimStart().length > indent) ) {
          body.push(lines[i].slice(Math.min(indent + 2, lines[i].length - lines[i].trimStart().length)));
          i++;
        }
        items.push(parseBlocks(body));
      }
      blocks.push({ kind: "list", ordered, items });
      continue;
    }
    const para: string[] = [];
    while (
      i < lines.length &&
      lines[i].trim() &&
      !/^\s*(```|~~~)/.test(lines[i]) &&
      !/^\s{0,3}(#{1,6})\s/.test(lines[i]) &&
      !/^\s{0,3}>/.test(lines[i]) &&
      !(para.length > 0 && LIST_ITEM.test(lines[i]))
    )
      para.push(lines[i++].trim());
    if (para.length === 0) para.push(lines[i++].trim());
    blocks.push({ kind: "paragraph", children: parseInline(para.join("\n")) });
  }
  return blocks;
}

const WORD = /[\p{L}\p{N}]/u;

/** Where the emphasis opened at `start` by `marker` closes, or -1. As in CommonMark, an opener
 * is followed by a non-space and a closer preceded by one; with underscores neither may touch a
 * letter or digit outside, so `snake_case_names` and `window.__x` stay text. */
function emphasisEnd(text: string, start: number, marker: string): number {
  const underscore = marker[0] === "_";
  const after = text[start + marker.length];
  if (after === undefined || /\s/.test(after) || after === marker[0]) return -1;
  if (underscore && start > 0 && WORD.test(text[start - 1])) return -1;
  for (let end = text.indexOf(marker, start + marker.length); end > 0; end = text.indexOf(marker, end + 1)) {
    const before = text[end - 1];
    const next = text[end + marker.length];
    if (/\s/.test(before)) continue;
    if (next === marker[0]) continue;
    if (underscore && next !== undefined && WORD.test(next)) continue;
    return end;
  }
  return -1;
}

/** Inline spans, left to right; an opener without its closer is plain text. */
export function parseInline(text: string): Inline[] {
  const out: Inline[] = [];
  let plain = "";
  const flush = () => {
    if (plain) out.push({ kind: "text", text: plain });
    plain = "";
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\" && i + 1 < text.length && /[\\`*_[\]()#>!-]/.test(text[i + 1])) {
      plain += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "`") {
      const end = text.indexOf("`", i + 1);
      if (end > i) {
        flush();
        out.push({ kind: "code", text: text.slice(i + 1, end) });
        i = end + 1;
        continue;
      }
    }
    if (c === "*" || c === "_") {
      const marker = text[i + 1] === c ? c + c : c;
      const end = emphasisEnd(text, i, marker);
      if (end > 0) {
        flush();
        const inner = parseInline(text.slice(i + marker.length, end));
        out.push(marker.length === 2 ? { kind: "strong", children: inner } : { kind: "em", children: inner });
        i = end + marker.length;
        continue;
      }
    }
    if (c === "[") {
      const close = text.indexOf("]", i + 1);
      if (close > i && text[close + 1] === "(") {
        const end = text.indexOf(")", close + 2);
        if (end > close) {
          const target = safeHref(text.slice(close + 2, end).split(/\s+"/)[0]);
          const label = parseInline(text.slice(i + 1, close));
          flush();
          if (target) out.push({ kind: "link", href: target, children: label });
          else out.push(...label);
          i = end + 1;
          continue;
        }
      }
    }
    const auto = /^https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"]/.exec(text.slice(i));
    if (auto && (i === 0 || /\s|\(/.test(text[i - 1]))) {
      flush();
      out.push({ kind: "link", href: auto[0], children: [{ kind: "text", text: auto[0] }] });
      i += auto[0].length;
      continue;
    }
    plain += c;
    i++;
  }
  flush();
  return out;
}

/** The text a tree shows, for tests and for a plain-text title. */
export function plainText(blocks: Block[]): string {
  const inline = (xs: Inline[]): string => xs.map((x) => (x.kind === "text" || x.kind === "code" ? x.text : inline(x.children))).join("");
  return blocks
    .map((b) => {
      switch (b.kind) {
        case "heading":
        case "paragraph":
          return inline(b.children);
        case "code":
          return b.text;
        case "quote":
          return plainText(b.children);
        case "list":
          return b.items.map(plainText).join("\n");
        case "rule":
          return "";
      }
    })
    .join("\n");
}
