// Renders a description written in Markdown. Every piece of text becomes a React text node, so
// markup in a description is shown, never run; links open in a new tab without a handle back
// to this page.
import type { ReactNode } from "react";
import { parseMarkdown, type Block, type Inline } from "../markdown";

function renderInline(nodes: Inline[]): ReactNode[] {
  return nodes.map((n, i) => {
    switch (n.kind) {
      case "text":
        return n.text;
      case "code":
        return <code key={i}>{n.text}</code>;
      case "strong":
        return <strong key={i}>{renderInline(n.children)}</strong>;
      case "em":
        return <em key={i}>{renderInline(n.children)}</em>;
      case "link":
        return (
          <a key={i} href={n.href} target="_blank" rel="noopener noreferrer">
            {renderInline(n.children)}
          </a>
        );
    }
  });
}

function renderBlocks(blocks: Block[]): ReactNode[] {
  return blocks.map((b, i) => {
    switch (b.kind) {
      case "heading": {
        // Page headings stay h1/h2; a description's headings sit below them.
        const Tag = `h${Math.min(6, b.level + 2)}` as "h3";
        return <Tag key={i}>{renderInline(b.children)}</Tag>;
      }
      case "paragraph":
        return <p key={i}>{renderInline(b.children)}</p>;
      case "code":
        return (
          <pre key={i}>
            <code>{b.text}</code>
          </pre>
        );
      case "quote":
        return <blockquote key={i}>{renderBlocks(b.children)}</blockquote>;
      case "list": {
        const items = b.items.map((item, j) => <li key={j}>{renderBlocks(item)}</li>);
        return b.ordered ? <ol key={i}>{items}</ol> : <ul key={i}>{items}</ul>;
      }
      case "rule":
        return <hr key={i} />;
    }
  });
}

export function Markdown({ source, className = "" }: { source: string; className?: string }) {
  return <div className={`markdown ${className}`}>{renderBlocks(parseMarkdown(source))}</div>;
}
