// A line diff of two prompt templates: the longest common subsequence of their lines is kept,
// every other line of the old text is removed and every other line of the new text is added.

export type DiffKind = "same" | "removed" | "added";

export interface DiffLine {
  kind: DiffKind;
  text: string;
  /** 1-based line number in the old text (same and removed lines). */
  oldLine?: number;
  /** 1-based line number in the new text (same and added lines). */
  newLine?: number;
}

/** Above this many cells the quadratic table is not built; the differing middle is then shown
 * as all removed followed by all added, which is still a correct (if not minimal) diff. */
const MAX_TABLE_CELLS = 4_000_000;

export function splitLines(text: string): string[] {
  return text === "" ? [] : text.split(/\r\n|\n|\r/);
}

export function diffLines(oldText: string, newText: string): DiffLine[] {
  return diffSequences(splitLines(oldText), splitLines(newText));
}

export function diffSequences(a: string[], b: string[]): DiffLine[] {
  // Equal heads and tails are common in edited prompts and need no table.
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;

  const out: DiffLine[] = [];
  for (let i = 0; i < head; i++) out.push({ kind: "same", text: a[i], oldLine: i + 1, newLine: i + 1 });

  const midA = a.slice(head, a.length - tail);
  const midB = b.slice(head, b.length - tail);
  for (const line of diffMiddle(midA, midB)) {
    out.push({
      ...line,
      oldLine: line.oldLine === undefined ? undefined : line.oldLine + head,
      newLine: line.newLine === undefined ? undefined : line.newLine + head,
    });
  }

  for (let k = 0; k < tail; k++) {
    const i = a.length - tail + k;
    const j = b.length - tail + k;
    out.push({ kind: "same", text: a[i], oldLine: i + 1, newLine: j + 1 });
  }
  return out;
}

function diffMiddle(a: string[], b: string[]): DiffLine[] {
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0 || (n + 1) * (m + 1) > MAX_TABLE_CELLS) {
    return [
      ...a.map((text, i): DiffLine => ({ kind: "removed", text, oldLine: i + 1 })),
      ...b.map((text, j): DiffLine => ({ kind: "added", text, newLine: j + 1 })),
    ];
  }
  // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..], kept in one flat
  // array so the table costs a single allocation.
  const width = m + 1;
  const lcs = new Uint32Array((n + 1) * width);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * width + j] = a[i] === b[j] ? lcs[(i + 1) * width + j + 1] + 1 : Math.max(lcs[(i + 1) * width + j], lcs[i * width + j + 1]);
    }
  }
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push({ kind: "same", text: a[i], oldLine: i + 1, newLine: j + 1 });
      i++;
      j++;
    } else if (lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) {
      // Removals before additions, so a changed line reads as "old, then new".
      out.push({ kind: "removed", text: a[i], oldLine: i + 1 });
      i++;
    } else {
      out.push({ kind: "added", text: b[j], newLine: j + 1 });
      j++;
    }
  }
  for (; i < n; i++) out.push({ kind: "removed", text: a[i], oldLine: i + 1 });
  for (; j < m; j++) out.push({ kind: "added", text: b[j], newLine: j + 1 });
  return out;
}

export function diffStats(lines: DiffLine[]): { added: number; removed: number } {
  let added = 0;
  let removed = 0;
  for (const l of lines) {
    if (l.kind === "added") added++;
    else if (l.kind === "removed") removed++;
  }
  return { added, removed };
}
