// The prompt registry: the list of prompts (`#/prompts`) and one prompt with its versions
// (`#/prompts/{name}?promptVersion=N`), in MLflow's URL shapes. A prompt's page shows the
// selected version's template with its variables marked, compares two versions line by line,
// moves aliases, edits tags and commits new versions.
import { useState } from "react";
import type { ModelVersion, RegisteredModel } from "../api";
import { ErrorBanner, FormActions, Section, Spinner, TagEditor, useAction, useAsync, useSubmit } from "../components/common";
import { AliasChips, latestVersion, RegisteredModelList } from "../components/registeredModelList";
import { formatTime } from "../format";
import { href, navigate, setQuery, useLocation } from "../router";
import {
  createPromptVersion,
  deletePromptAlias,
  deletePromptTag,
  deletePromptVersionTag,
  getPrompt,
  isPrompt,
  listPromptVersions,
  searchPrompts,
  setPromptAlias,
  setPromptTag,
  setPromptVersionTag,
} from "../promptsApi";
import { diffLines, diffStats } from "./promptDiff";
import { isSystemPromptTag, readTemplate, templateAsText, templateSegments, templateVariables, type PromptTemplate } from "./promptTemplate";
import "../prompts.css";

export function PromptsPage() {
  return (
    <RegisteredModelList
      title="Prompts"
      searchLabel="Search prompts"
      searchPlaceholder="Search prompts by name"
      fetchPage={({ search }, pageToken) => searchPrompts({ search, pageToken })}
      headers={["Name", "Latest version", "Commit message", "Aliases", "Last modified", "Tags"]}
      row={(p) => <PromptRow key={p.name} prompt={p} />}
      empty={(search) => (search ? `No prompts match “${search}”.` : "No prompts yet. Register one with mlflow.genai.register_prompt().")}
    />
  );
}

function PromptRow({ prompt }: { prompt: RegisteredModel }) {
  const latest = latestVersion(prompt);
  const tags = (prompt.tags ?? []).filter((t) => !isSystemPromptTag(t.key));
  return (
    <tr data-prompt={prompt.name}>
      <td>
        <a href={href(["prompts", prompt.name])}>{prompt.name}</a>
      </td>
      <td>{latest ? <a href={href(["prompts", prompt.name], { promptVersion: latest.version })}>Version {latest.version}</a> : "—"}</td>
      <td className="ellipsis">{latest?.description || <span className="muted">—</span>}</td>
      <td>
        <AliasChips model={prompt} />
      </td>
      <td>{formatTime(prompt.last_updated_timestamp)}</td>
      <td>
        {tags.map((t) => (
          <span key={t.key} className="badge prompt-tag">
            {t.key}: {t.value}
          </span>
        ))}
      </td>
    </tr>
  );
}

async function loadPrompt(name: string) {
  const [prompt, versions] = await Promise.all([getPrompt(name), listPromptVersions(name)]);
  return { prompt, versions };
}

export function PromptPage({ name }: { name: string }) {
  const { query } = useLocation();
  const { data, error, loading, reload } = useAsync(() => loadPrompt(name), [name]);
  const [creating, setCreating] = useState(false);
  if (loading && !data) return <Spinner />;
  if (!data) {
    return (
      <div className="page">
        <PromptBreadcrumbs name={name} />
        <ErrorBanner error={error} />
      </div>
    );
  }
  const { prompt, versions } = data;
  if (!isPrompt(prompt)) {
    return (
      <div className="page">
        <PromptBreadcrumbs name={name} />
        <div className="error" role="alert">
          {name} is a registered model, not a prompt. <a href={href(["models", name])}>Open the model</a>.
        </div>
      </div>
    );
  }
  const selected = versions.find((v) => v.version === query.get("promptVersion")) ?? versions[0];
  const compareTo = query.get("compareTo");
  const compareVersion = compareTo ? versions.find((v) => v.version === compareTo) : undefined;
  return (
    <div className="page prompt-page">
      <PromptBreadcrumbs name={name} />
      <header className="page-header">
        <h1>{name}</h1>
        <span className="muted">
          {versions.length} {versions.length === 1 ? "version" : "versions"} · last modified {formatTime(prompt.last_updated_timestamp)}
        </span>
        <button type="button" className="primary" onClick={() => setCreating(true)} disabled={creating}>
          New version
        </button>
      </header>
      <ErrorBanner error={error} />
      {creating && (
        <NewVersionForm
          name={name}
          base={selected}
          onCancel={() => setCreating(false)}
          onCreated={(v) => {
            setCreating(false);
            reload();
            navigate(href(["prompts", name], { promptVersion: v.version }));
          }}
        />
      )}
      <div className="prompt-layout">
        <VersionList name={name} versions={versions} selected={selected?.version} compareTo={compareVersion?.version} />
        <div className="prompt-main">
          {selected && (
            <div className="toolbar">
              <div className="tabs" role="tablist" aria-label="View">
                <button
                  type="button"
                  role="tab"
                  aria-selected={!compareVersion}
                  className={!compareVersion ? "tab active" : "tab"}
                  onClick={() => setQuery({ compareTo: undefined })}
                >
                  Preview
                </button>
                <button
                  type="button"
                  role="tab"
                  aria-selected={!!compareVersion}
                  className={compareVersion ? "tab active" : "tab"}
                  disabled={versions.length < 2}
                  onClick={() => {
                    const other = versions.find((v) => v.version !== selected.version);
                    if (other) setQuery({ promptVersion: selected.version, compareTo: other.version });
                  }}
                >
                  Compare
                </button>
              </div>
            </div>
          )}
          {selected && compareVersion ? (
            <VersionDiff versions={versions} base={compareVersion} target={selected} />
          ) : selected ? (
            <VersionDetails name={name} version={selected} onChange={reload} />
          ) : (
            <p className="muted">This prompt has no versions yet.</p>
          )}
          <AliasEditor name={name} prompt={prompt} versions={versions} onChange={reload} />
          <Section title="Prompt tags">
            <TagEditor
              tags={(prompt.tags ?? []).filter((t) => !isSystemPromptTag(t.key))}
              onSet={(key, value) => setPromptTag(name, key, value).then(reload)}
              onDelete={(key) => deletePromptTag(name, key).then(reload)}
            />
          </Section>
        </div>
      </div>
    </div>
  );
}

function PromptBreadcrumbs({ name }: { name: string }) {
  return (
    <nav className="breadcrumbs" aria-label="Breadcrumbs">
      <a href="#/prompts">Prompts</a> / <span>{name}</span>
    </nav>
  );
}

function VersionList({ name, versions, selected, compareTo }: { name: string; versions: ModelVersion[]; selected?: string; compareTo?: string }) {
  return (
    <section className="card prompt-versions" aria-label="Versions">
      <header className="card-header">
        <h2>Versions</h2>
      </header>
      <ol className="version-list">
        {versions.map((v) => {
          const isSelected = v.version === selected;
          const isBase = v.version === compareTo;
          return (
            <li key={v.version} data-version={v.version} className={isSelected ? "selected" : isBase ? "base" : undefined}>
              <a href={href(["prompts", name], { promptVersion: v.version, compareTo })} aria-current={isSelected ? "true" : undefined}>
                <span className="version-number">Version {v.version}</span>
                {(v.aliases ?? []).map((a) => (
                  <span key={a} className="chip" data-alias={a}>
                    @{a}
                  </span>
                ))}
              </a>
              <div className="version-message">{v.description || <span className="muted">No commit message</span>}</div>
              <div className="muted small">{formatTime(v.creation_timestamp)}</div>
            </li>
          );
        })}
      </ol>
    </section>
  );
}

/** Template text with each `{{variable}}` in its own marked span; everything is a text node. */
export function TemplateText({ text }: { text: string }) {
  return (
    <>
      {templateSegments(text).map((s, i) =>
        s.kind === "variable" ? (
          <span key={i} className="prompt-variable" data-variable={s.name}>
            {s.text}
          </span>
        ) : (
          <span key={i}>{s.text}</span>
        ),
      )}
    </>
  );
}

function TemplateView({ template }: { template: PromptTemplate }) {
  if (template.kind === "text") {
    return (
      <pre className="prompt-template" aria-label="Prompt template">
        <TemplateText text={template.text} />
      </pre>
    );
  }
  return (
    <div className="prompt-chat" aria-label="Prompt template">
      {template.messages.map((m, i) => (
        <div key={i} className="chat-message" data-role={m.role}>
          <div className="chat-role">{m.role}</div>
          <pre className="prompt-template">
            <TemplateText text={m.content} />
          </pre>
        </div>
      ))}
    </div>
  );
}

function VersionDetails({ name, version, onChange }: { name: string; version: ModelVersion; onChange: () => void }) {
  const template = readTemplate(version.tags);
  const variables = templateVariables(template);
  return (
    <>
      <Section title={`Version ${version.version}`}>
        <table className="kv" aria-label="Version details">
          <tbody>
            <tr>
              <th scope="row">Commit message</th>
              <td className="commit-message">{version.description || <span className="muted">None</span>}</td>
            </tr>
            <tr>
              <th scope="row">Registered</th>
              <td>{formatTime(version.creation_timestamp)}</td>
            </tr>
            {version.user_id && (
              <tr>
                <th scope="row">Author</th>
                <td>{version.user_id}</td>
              </tr>
            )}
            <tr>
              <th scope="row">Type</th>
              <td>{template.kind === "chat" ? "Chat (list of messages)" : "Text"}</td>
            </tr>
            <tr>
              <th scope="row">Aliases</th>
              <td>{(version.aliases ?? []).map((a) => `@${a}`).join(", ") || <span className="muted">None</span>}</td>
            </tr>
            <tr>
              <th scope="row">Variables</th>
              <td aria-label="Variables">
                {variables.length === 0 && <span className="muted">None</span>}
                {variables.map((v) => (
                  <span key={v} className="chip mono">
                    {v}
                  </span>
                ))}
              </td>
            </tr>
          </tbody>
        </table>
      </Section>
      <Section title="Template">
        <TemplateView template={template} />
      </Section>
      <Section title="Version tags">
        <TagEditor
          tags={(version.tags ?? []).filter((t) => !isSystemPromptTag(t.key))}
          onSet={(key, value) => setPromptVersionTag(name, version.version, key, value).then(onChange)}
          onDelete={(key) => deletePromptVersionTag(name, version.version, key).then(onChange)}
        />
      </Section>
    </>
  );
}

function VersionDiff({ versions, base, target }: { versions: ModelVersion[]; base: ModelVersion; target: ModelVersion }) {
  const lines = diffLines(templateAsText(readTemplate(base.tags)), templateAsText(readTemplate(target.tags)));
  const stats = diffStats(lines);
  const picker = (label: string, value: string, key: "compareTo" | "promptVersion") => (
    <label className="diff-picker">
      {label}{" "}
      <select aria-label={label} value={value} onChange={(e) => setQuery({ [key]: e.target.value })}>
        {versions.map((v) => (
          <option key={v.version} value={v.version}>
            Version {v.version}
          </option>
        ))}
      </select>
    </label>
  );
  return (
    <Section
      title={`Version ${base.version} → version ${target.version}`}
      actions={
        <div className="toolbar">
          {picker("Base version", base.version, "compareTo")}
          {picker("Compared version", target.version, "promptVersion")}
        </div>
      }
    >
      <div className="diff-summary">
        <span className="diff-count added">+{stats.added}</span> <span className="diff-count removed">−{stats.removed}</span>
        {stats.added + stats.removed === 0 && <span className="muted"> The templates are identical.</span>}
      </div>
      <div className="diff-commits muted small">
        <div>
          v{base.version}: {base.description || "no commit message"}
        </div>
        <div>
          v{target.version}: {target.description || "no commit message"}
        </div>
      </div>
      <table className="prompt-diff" aria-label="Diff">
        <tbody>
          {lines.map((l, i) => (
            <tr key={i} className={`diff-${l.kind}`} data-kind={l.kind}>
              <td className="diff-num">{l.oldLine ?? ""}</td>
              <td className="diff-num">{l.newLine ?? ""}</td>
              <td className="diff-mark" aria-label={l.kind === "same" ? undefined : l.kind}>
                {l.kind === "added" ? "+" : l.kind === "removed" ? "−" : ""}
              </td>
              <td className="diff-text">
                <TemplateText text={l.text} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Section>
  );
}

function AliasEditor({ name, prompt, versions, onChange }: { name: string; prompt: RegisteredModel; versions: ModelVersion[]; onChange: () => void }) {
  const [alias, setAlias] = useState("");
  const [version, setVersion] = useState("");
  const { failure, run } = useAction(onChange);
  const aliases = prompt.aliases ?? [];
  return (
    <Section title="Aliases">
      <table className="grid" aria-label="Aliases">
        <thead>
          <tr>
            <th>Alias</th>
            <th>Version</th>
            <th className="actions" />
          </tr>
        </thead>
        <tbody>
          {aliases.length === 0 && (
            <tr>
              <td colSpan={3} className="muted">
                No aliases. An alias such as “production” lets code load prompts:/{name}@production.
              </td>
            </tr>
          )}
          {aliases.map((a) => (
            <tr key={a.alias} data-alias={a.alias}>
              <td className="mono">@{a.alias}</td>
              <td>
                <select
                  aria-label={`Version of alias ${a.alias}`}
                  value={a.version}
                  onChange={(e) => run(() => setPromptAlias(name, a.alias, e.target.value))}
                >
                  {versions.map((v) => (
                    <option key={v.version} value={v.version}>
                      Version {v.version}
                    </option>
                  ))}
                </select>
              </td>
              <td className="actions">
                <button type="button" className="link-button danger" aria-label={`Delete alias ${a.alias}`} onClick={() => run(() => deletePromptAlias(name, a.alias))}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form
        className="inline-form alias-form"
        onSubmit={async (e) => {
          e.preventDefault();
          if (await run(() => setPromptAlias(name, alias.trim(), version))) {
            setAlias("");
            setVersion("");
          }
        }}
      >
        <input aria-label="New alias" placeholder="Alias" value={alias} onChange={(e) => setAlias(e.target.value)} />
        <select aria-label="New alias version" value={version} onChange={(e) => setVersion(e.target.value)}>
          <option value="">Version…</option>
          {versions.map((v) => (
            <option key={v.version} value={v.version}>
              Version {v.version}
            </option>
          ))}
        </select>
        <button type="submit" disabled={!alias.trim() || !version}>
          Set alias
        </button>
      </form>
      <ErrorBanner error={failure} />
    </Section>
  );
}

function templateDraft(template: PromptTemplate): string {
  return template.kind === "text" ? template.text : JSON.stringify(template.messages, null, 2);
}

/** A chat draft is the JSON list of messages the chat template is stored as. */
function parseDraft(kind: PromptTemplate["kind"], draft: string): PromptTemplate {
  if (kind === "text") return { kind, text: draft };
  let parsed: unknown;
  try {
    parsed = JSON.parse(draft);
  } catch (e) {
    throw new Error(`A chat template is a JSON list of messages: ${(e as Error).message}`);
  }
  const ok =
    Array.isArray(parsed) &&
    parsed.every((m) => m && typeof m === "object" && typeof (m as { role?: unknown }).role === "string" && typeof (m as { content?: unknown }).content === "string");
  if (!ok) throw new Error('A chat template is a JSON list of messages like [{"role": "user", "content": "Hi {{name}}"}].');
  return { kind, messages: parsed as { role: string; content: string }[] };
}

function NewVersionForm({
  name,
  base,
  onCancel,
  onCreated,
}: {
  name: string;
  base?: ModelVersion;
  onCancel: () => void;
  onCreated: (v: ModelVersion) => void;
}) {
  const baseTemplate = base ? readTemplate(base.tags) : ({ kind: "text", text: "" } as PromptTemplate);
  const [kind, setKind] = useState<PromptTemplate["kind"]>(baseTemplate.kind);
  const [draft, setDraft] = useState(templateDraft(baseTemplate));
  const [message, setMessage] = useState("");
  const { error, saving, submit } = useSubmit();
  let preview: PromptTemplate | null = null;
  try {
    preview = parseDraft(kind, draft);
  } catch {
    preview = null;
  }
  return (
    <section className="card new-version" aria-label="New version">
      <header className="card-header">
        <h2>New version{base ? ` (from version ${base.version})` : ""}</h2>
      </header>
      <form
        className="new-version-form"
        onSubmit={(e) => {
          e.preventDefault();
          submit(async () => onCreated(await createPromptVersion(name, parseDraft(kind, draft), message.trim())));
        }}
      >
        <label>
          Type{" "}
          <select
            aria-label="Template type"
            value={kind}
            onChange={(e) => {
              const next = e.target.value as PromptTemplate["kind"];
              if (next === "chat" && kind === "text") setDraft(JSON.stringify([{ role: "user", content: draft }], null, 2));
              setKind(next);
            }}
          >
            <option value="text">Text</option>
            <option value="chat">Chat (JSON list of messages)</option>
          </select>
        </label>
        <textarea aria-label="Template" className="mono" rows={Math.min(20, Math.max(6, draft.split("\n").length + 1))} value={draft} onChange={(e) => setDraft(e.target.value)} />
        {preview && templateVariables(preview).length > 0 && (
          <div className="muted small">
            Variables:{" "}
            {templateVariables(preview).map((v) => (
              <span key={v} className="chip mono">
                {v}
              </span>
            ))}
          </div>
        )}
        <input aria-label="Commit message" placeholder="Commit message: what changed and why" value={message} onChange={(e) => setMessage(e.target.value)} />
        <FormActions submitLabel="Create version" disabled={saving || !draft.trim()} onCancel={onCancel} error={error} />
      </form>
    </section>
  );
}
