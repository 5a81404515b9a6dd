// One span opened from the tree: its conversation when it holds chat messages (role and text,
// never markup), then inputs, outputs, attributes and events as collapsible JSON.
import type { ReactNode } from "react";
import { JsonView } from "./JsonView";
import { StatusBadge } from "./common";
import { SpanTypeBadge } from "./spanTree";
import {
  chatMessages,
  formatMs,
  otherAttributes,
  spanDurationMs,
  spanEvents,
  spanInputs,
  spanOutputs,
  type ChatMessage,
  type Span,
  type SpanTree,
} from "../pages/traceModel";

function Part({ title, open = true, children }: { title: string; open?: boolean; children: ReactNode }) {
  return (
    <details className="span-part" open={open}>
      <summary>
        <h3>{title}</h3>
      </summary>
      {children}
    </details>
  );
}

export function ChatView({ messages }: { messages: ChatMessage[] }) {
  return (
    <ol className="chat" aria-label="Chat messages">
      {messages.map((m, i) => (
        <li key={i} className={`chat-message chat-${m.role.toLowerCase()}`} data-role={m.role}>
          <span className="chat-role">{m.role}</span>
          <div className="chat-content">{m.content}</div>
        </li>
      ))}
    </ol>
  );
}

export function SpanDetail({ span, tree }: { span: Span; tree: SpanTree }) {
  const messages = chatMessages(span);
  const inputs = spanInputs(span);
  const outputs = spanOutputs(span);
  const attributes = otherAttributes(span);
  const events = spanEvents(span);
  return (
    <section className="card span-detail" aria-label={`Span ${span.name}`}>
      <header className="card-header">
        <h2 className="span-title">{span.name}</h2>
        <span className="span-facts">
          <SpanTypeBadge type={span.type} />
          <StatusBadge status={span.status} />
          <span className="muted">
            {formatMs(spanDurationMs(span))} · starts at {formatMs(span.startMs - tree.startMs)}
          </span>
        </span>
      </header>
      {span.statusMessage && (
        <div className="error" role="alert">
          {span.statusMessage}
        </div>
      )}
      {messages && (
        <Part title="Chat">
          <ChatView messages={messages} />
        </Part>
      )}
      <Part title="Inputs">
        {inputs === undefined ? <p className="muted">No inputs</p> : <JsonView value={inputs} label="Inputs" openDepth={3} />}
      </Part>
      <Part title="Outputs">
        {outputs === undefined ? <p className="muted">No outputs</p> : <JsonView value={outputs} label="Outputs" openDepth={3} />}
      </Part>
      <Part title="Attributes" open={Object.keys(attributes).length > 0 && Object.keys(attributes).length <= 12}>
        {Object.keys(attributes).length ? <JsonView value={attributes} label="Attributes" openDepth={1} /> : <p className="muted">No attributes</p>}
      </Part>
      <Part title={`Events (${events.length})`} open={events.length > 0}>
        {events.length === 0 && <p className="muted">No events</p>}
        {events.map((e, i) => (
          <div key={i} className="span-event">
            <strong>{e.name}</strong>
            {e.timeMs !== undefined && <span className="muted"> at {formatMs(e.timeMs - tree.startMs)}</span>}
            <JsonView value={e.attributes} label={`Event ${e.name}`} openDepth={2} />
          </div>
        ))}
      </Part>
    </section>
  );
}
