import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { diffLines, diffSequences, diffStats, splitLines, type DiffLine } from "./promptDiff";

const marks = (lines: DiffLine[]) => lines.map((l) => `${l.kind === "same" ? " " : l.kind === "added" ? "+" : "-"}${l.text}`);

/** The length of a longest common subsequence, by plain recursion with a memo: slow, obviously
 * right, and independent of the table the diff builds. */
function lcsLength(a: string[], b: string[]): number {
  const memo = new Map<string, number>();
  const go = (i: number, j: number): number => {
    if (i === a.length || j === b.length) return 0;
    const key = `${i},${j}`;
    const hit = memo.get(key);
    if (hit !== undefined) return hit;
    const v = a[i] === b[j] ? 1 + go(i + 1, j + 1) : Math.max(go(i + 1, j), go(i, j + 1));
    memo.set(key, v);
    return v;
  };
  return go(0, 0);
}

describe("line diff of two templates", () => {
  it("marks a changed line as removed then added and keeps the rest", () => {
    const v1 = "You are a helpful assistant.\nAnswer the question: {{question}}\nBe brief.";
    const v3 = "You are a helpful assistant.\nAnswer the question about {{topic}}: {{question}}\nBe brief.\nCite sources.";
    expect(marks(diffLines(v1, v3))).toEqual([
      " You are a helpful assistant.",
      "-Answer the question: {{question}}",
      "+Answer the question about {{topic}}: {{question}}",
      " Be brief.",
      "+Cite sources.",
    ]);
    expect(diffStats(diffLines(v1, v3))).toEqual({ added: 2, removed: 1 });
  });

  it("numbers lines on each side", () => {
    const lines = diffLines("a\nb\nc", "a\nc\nd");
    expect(lines).toEqual([
      { kind: "same", text: "a", oldLine: 1, newLine: 1 },
      { kind: "removed", text: "b", oldLine: 2 },
      { kind: "same", text: "c", oldLine: 3, newLine: 2 },
      { kind: "added", text: "d", newLine: 3 },
    ]);
  });

  it("treats an empty text as no lines and reads CRLF as a line break", () => {
    expect(splitLines("")).toEqual([]);
    expect(splitLines("x\r\ny")).toEqual(["x", "y"]);
    expect(marks(diffLines("", "new"))).toEqual(["+new"]);
    expect(marks(diffLines("old", ""))).toEqual(["-old"]);
  });

  it("still answers a correct diff when the texts are too large for the table", () => {
    const a = Array.from({ length: 2500 }, (_, i) => `a${i}`);
    const b = Array.from({ length: 2500 }, (_, i) => `b${i}`);
    const lines = diffSequences(a, b);
    expect(diffStats(lines)).toEqual({ added: 2500, removed: 2500 });
  });
});

describe("line diff properties", () => {
  // A small alphabet, so that random texts share many lines.
  const text = fc.array(fc.constantFrom("alpha", "beta", "{{x}}", "", "gamma"), { maxLength: 14 });

  it("keeps the old text in its same and removed lines, and the new one in its same and added lines", () => {
    fc.assert(
      fc.property(text, text, (a, b) => {
        const lines = diffSequences(a, b);
        expect(lines.filter((l) => l.kind !== "added").map((l) => l.text)).toEqual(a);
        expect(lines.filter((l) => l.kind !== "removed").map((l) => l.text)).toEqual(b);
      }),
    );
  });

  it("numbers each side's lines 1, 2, 3, … in order", () => {
    fc.assert(
      fc.property(text, text, (a, b) => {
        const lines = diffSequences(a, b);
        const oldNumbers = lines.filter((l) => l.kind !== "added").map((l) => l.oldLine);
        const newNumbers = lines.filter((l) => l.kind !== "removed").map((l) => l.newLine);
        expect(oldNumbers).toEqual(a.map((_, i) => i + 1));
        expect(newNumbers).toEqual(b.map((_, i) => i + 1));
      }),
    );
  });

  it("keeps as many lines unchanged as the longest common subsequence has", () => {
    fc.assert(
      fc.property(text, text, (a, b) => {
        const same = diffSequences(a, b).filter((l) => l.kind === "same").length;
        expect(same).toBe(lcsLength(a, b));
      }),
    );
  });

  it("finds nothing to change between a text and itself", () => {
    fc.assert(
      fc.property(text, (a) => {
        expect(diffSequences(a, a).every((l) => l.kind === "same")).toBe(true);
      }),
    );
  });
});
