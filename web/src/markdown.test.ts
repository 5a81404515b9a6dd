import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseInline, parseMarkdown, plainText, safeHref, type Block, type Inline } from "./markdown";

describe("parseInline", () => {
  it("reads emphasis, strong, code and links", () => {
    expect(parseInline("Iris **logistic** regression")).toEqual([
      { kind: "text", text: "Iris " },
      { kind: "strong", children: [{ kind: "text", text: "logistic" }] },
      { kind: "text", text: " regression" },
    ]);
    expect(parseInline("a *b* `c*d` [e](https://x.org)")).toEqual([
      { kind: "text", text: "a " },
      { kind: "em", children: [{ kind: "text", text: "b" }] },
      { kind: "text", text: " " },
      { kind: "code", text: "c*d" },
      { kind: "text", text: " " },
      { kind: "link", href: "https://x.org", children: [{ kind: "text", text: "e" }] },
    ]);
  });
  it("leaves unclosed markers and snake_case names as text", () => {
    expect(plainText([{ kind: "paragraph", children: parseInline("2 * 3 and **open") }])).toBe("2 * 3 and **open");
    expect(parseInline("l1_ratio and max_depth")).toEqual([{ kind: "text", text: "l1_ratio and max_depth" }]);
  });
  it("drops links with a dangerous scheme but keeps their text", () => {
    expect(parseInline("[click](javascript:alert(1))")).toEqual([{ kind: "text", text: "click" }, { kind: "text", text: ")" }]);
    expect(safeHref("JAVASCRIPT:alert(1)")).toBeNull();
    expect(safeHref("data:text/html,x")).toBeNull();
    expect(safeHref("#/experiments/1")).toBe("#/experiments/1");
    expect(safeHref("mailto:a@b.c")).toBe("mailto:a@b.c");
  });
  it("turns bare web addresses into links without trailing punctuation", () => {
    expect(parseInline("see https://mlflow.org/docs.")).toEqual([
      { kind: "text", text: "see " },
      { kind: "link", href: "https://mlflow.org/docs", children: [{ kind: "text", text: "https://mlflow.org/docs" }] },
      { kind: "text", text: "." },
    ]);
  });
});

describe("parseMarkdown", () => {
  it("reads headings, lists, code blocks, quotes and rules", () => {
    const doc = parseMarkdown("# Model\n\nTrained on:\n- wine\n- iris\n\n1. one\n2. two\n\n```\nx = 1\n```\n> note\n\n---");
    expect(doc.map((b) => b.kind)).toEqual(["heading", "paragraph", "list", "list", "code", "quote", "rule"]);
    const lists = doc.filter((b): b is Extract<Block, { kind: "list" }> => b.kind === "list");
    expect(lists.map((l) => [l.ordered, l.items.length])).toEqual([
      [false, 2],
      [true, 2],
    ]);
    expect((doc[4] as Extract<Block, { kind: "code" }>).text).toBe("x = 1");
  });
  it("keeps raw HTML as text", () => {
    const doc = parseMarkdown('<img src=x onerror="alert(1)"> <script>alert(2)</script>');
    expect(plainText(doc)).toBe('<img src=x onerror="alert(1)"> <script>alert(2)</script>');
  });
});

function links(nodes: Inline[]): string[] {
  return nodes.flatMap((n) => (n.kind === "link" ? [n.href, ...links(n.children)] : n.kind === "strong" || n.kind === "em" ? links(n.children) : []));
}

function blockLinks(blocks: Block[]): string[] {
  return blocks.flatMap((b) =>
    b.kind === "heading" || b.kind === "paragraph" ? links(b.children) : b.kind === "quote" ? blockLinks(b.children) : b.kind === "list" ? b.items.flatMap(blockLinks) : [],
  );
}

describe("parseMarkdown on any input", () => {
  it("never throws and never yields a link with a script scheme", () => {
    const alphabet = fc.constantFrom("*", "_", "`", "[", "]", "(", ")", "#", ">", "-", "\n", " ", "a", "1.", "javascript:", "https://x", "\\");
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 60 }).map((xs) => xs.join("")), (text) => {
        const doc = parseMarkdown(text);
        for (const href of blockLinks(doc)) expect(href.toLowerCase().startsWith("javascript:")).toBe(false);
      }),
    );
  });
  it("keeps every letter of plain prose", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z ]{0,40}$/), (text) => {
        expect(plainText(parseMarkdown(text)).replace(/\s+/g, " ").trim()).toBe(text.replace(/\s+/g, " ").trim());
      }),
    );
  });
});

describe("emphasis follows CommonMark's flanking rules", () => {
  it("does not emphasise underscores inside words or code-like text", () => {
    const text = '<img src=x onerror="window.__xss=(window.__xss||0)+1">';
    expect(parseInline(text)).toEqual([{ kind: "text", text }]);
    expect(parseInline("a * b * c")).toEqual([{ kind: "text", text: "a * b * c" }]);
  });
  it("still reads emphasis next to punctuation", () => {
    expect(parseInline("(_fast_), **done**.")).toEqual([
      { kind: "text", text: "(" },
      { kind: "em", children: [{ kind: "text", text: "fast" }] },
      { kind: "text", text: "), " },
      { kind: "strong", children: [{ kind: "text", text: "done" }] },
      { kind: "text", text: "." },
    ]);
  });
});
