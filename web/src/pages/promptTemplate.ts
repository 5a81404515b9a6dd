// A prompt version's template as MLflow stores it in the version's tags: a text template in
// `mlflow.prompt.text`, or (with `_mlflow_prompt_type` = `chat`) a JSON list of chat messages,
// with `{{variable}}` placeholders either way.
import type { KeyValue } from "../api";

export const IS_PROMPT_TAG = "mlflow.prompt.is_prompt";
export const PROMPT_TEXT_TAG = "mlflow.prompt.text";
export const PROMPT_TYPE_TAG = "_mlflow_prompt_type";
export const RESPONSE_FORMAT_TAG = "_mlflow_prompt_response_format";
export const MODEL_CONFIG_TAG = "_mlflow_prompt_model_config";

/** Tags the registry keeps for itself on prompts and their versions: shown read-only or not at
 * all, never offered for editing. */
export function isSystemPromptTag(key: string): boolean {
  return key.startsWith("mlflow.") || key.startsWith("_mlflow_");
}

export interface ChatMessage {
  role: string;
  content: string;
}

export type PromptTemplate = { kind: "text"; text: string } | { kind: "chat"; messages: ChatMessage[] };

export type TemplateSegment = { kind: "text"; text: string } | { kind: "variable"; name: string; text: string };

// MLflow's PROMPT_TEMPLATE_VARIABLE_PATTERN: `{{ name }}` or dotted `{{ a.b }}`, spaces allowed.
const VARIABLE = /\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*(?:\.[a-zA-Z_][a-zA-Z0-9_]*)*)\s*\}\}/g;

/** The text cut into plain runs and `{{variable}}` placeholders, in order; joined back they give
 * the text unchanged. */
export function templateSegments(text: string): TemplateSegment[] {
  const out: TemplateSegment[] = [];
  let last = 0;
  for (const match of text.matchAll(VARIABLE)) {
    const start = match.index ?? 0;
    if (start > last) out.push({ kind: "text", text: text.slice(last, start) });
    out.push({ kind: "variable", name: match[1], text: match[0] });
    last = start + match[0].length;
  }
  if (last < text.length) out.push({ kind: "text", text: text.slice(last) });
  return out;
}

function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  return JSON.stringify(content, null, 2) ?? "";
}

export function readTemplate(tags: KeyValue[] | undefined): PromptTemplate {
  const raw = tags?.find((t) => t.key === PROMPT_TEXT_TAG)?.value ?? "";
  const type = tags?.find((t) => t.key === PROMPT_TYPE_TAG)?.value;
  if (type === "chat") {
    try {
      const parsed: unknown = JSON.parse(raw);
      if (Array.isArray(parsed)) {
        return {
          kind: "chat",
          messages: parsed.map((m) => {
            const message = (m ?? {}) as { role?: unknown; content?: unknown };
            return { role: String(message.role ?? ""), content: contentText(message.content) };
          }),
        };
      }
    } catch {
      // A chat type over text that is not JSON is shown as the text it is.
    }
  }
  return { kind: "text", text: raw };
}

/** Every distinct variable, in order of first use. */
export function templateVariables(template: PromptTemplate): string[] {
  const texts = template.kind === "text" ? [template.text] : template.messages.map((m) => m.content);
  const seen = new Set<string>();
  for (const text of texts) for (const s of templateSegments(text)) if (s.kind === "variable") seen.add(s.name);
  return [...seen];
}

/** The template as lines to compare two versions by; a chat message is its role in brackets
 * followed by its content. */
export function templateAsText(template: PromptTemplate): string {
  if (template.kind === "text") return template.text;
  return template.messages.map((m) => `[${m.role}]\n${m.content}`).join("\n");
}

/** The version tags that create a version holding `template`, as MLflow's client writes them. */
export function templateTags(template: PromptTemplate): KeyValue[] {
  const text = template.kind === "text" ? template.text : JSON.stringify(template.messages);
  return [
    { key: IS_PROMPT_TAG, value: "true" },
    { key: PROMPT_TEXT_TAG, value: text },
    { key: PROMPT_TYPE_TAG, value: template.kind },
  ];
}
