import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { readTemplate, templateAsText, templateSegments, templateTags, templateVariables } from "./promptTemplate";

describe("template variables", () => {
  it("finds {{name}} placeholders with or without inner spaces, dotted names too", () => {
    expect(templateSegments("Hi {{ name }}, about {{topic.title}}: {{question}}?")).toEqual([
      { kind: "text", text: "Hi " },
      { kind: "variable", name: "name", text: "{{ name }}" },
      { kind: "text", text: ", about " },
      { kind: "variable", name: "topic.title", text: "{{topic.title}}" },
      { kind: "text", text: ": " },
      { kind: "variable", name: "question", text: "{{question}}" },
      { kind: "text", text: "?" },
    ]);
  });

  it("leaves single braces and non-identifiers as text", () => {
    expect(templateSegments("{x} {{1abc}} {{ }} {{a-b}}")).toEqual([{ kind: "text", text: "{x} {{1abc}} {{ }} {{a-b}}" }]);
  });

  it("cuts any text into segments that join back into it", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom("{{", "}}", "q", " ", "{", "}", "a.b", "\n", "_x"), { maxLength: 20 }), (parts) => {
        const text = parts.join("");
        expect(templateSegments(text).map((s) => s.text).join("")).toBe(text);
      }),
    );
  });
});

describe("templates stored in version tags", () => {
  it("reads a text template", () => {
    const t = readTemplate([
      { key: "mlflow.prompt.text", value: "Answer {{question}} for {{user}}; {{question}} again" },
      { key: "_mlflow_prompt_type", value: "text" },
    ]);
    expect(t).toEqual({ kind: "text", text: "Answer {{question}} for {{user}}; {{question}} again" });
    expect(templateVariables(t)).toEqual(["question", "user"]);
  });

  it("reads a chat template as role and content", () => {
    const t = readTemplate([
      { key: "mlflow.prompt.text", value: JSON.stringify([{ role: "system", content: "Be {{tone}}" }, { role: "user", content: "{{question}}" }]) },
      { key: "_mlflow_prompt_type", value: "chat" },
    ]);
    expect(t).toEqual({ kind: "chat", messages: [{ role: "system", content: "Be {{tone}}" }, { role: "user", content: "{{question}}" }] });
    expect(templateVariables(t)).toEqual(["tone", "question"]);
    expect(templateAsText(t)).toBe("[system]\nBe {{tone}}\n[user]\n{{question}}");
  });

  it("writes tags that read back as the same template", () => {
    for (const t of [
      { kind: "text" as const, text: "Hello {{name}}" },
      { kind: "chat" as const, messages: [{ role: "user", content: "Hi {{name}}" }] },
    ]) {
      expect(readTemplate(templateTags(t))).toEqual(t);
    }
  });
});
