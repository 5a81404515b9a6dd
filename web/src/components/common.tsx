import { useCallback, useEffect, useRef, useState, type ReactNode } from "react";
import { ApiError, type KeyValue } from "../api";
import { setQuery, useLocation } from "../router";
import { Markdown } from "./Markdown";

/** Loads data for a page and reloads when `deps` change; stale answers are dropped. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]) {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: true });
  const generation = useRef(0);
  const reload = useCallback(() => {
    const mine = ++generation.current;
    setState((s) => ({ ...s, loading: true, error: undefined }));
    load().then(
      (data) => mine === generation.current && setState({ data, loading: false }),
      (error: Error) => mine === generation.current && setState({ error, loading: false }),
    );
  }, deps);
  useEffect(() => {
    reload();
  }, [reload]);
  return { ...state, reload };
}

/** Runs one change and reports its failure in the page instead of losing it. */
export function useAction(after: () => void) {
  const [failure, setFailure] = useState<Error | null>(null);
  const run = async (change: () => Promise<unknown>) => {
    setFailure(null);
    try {
      await change();
      after();
      return true;
    } catch (e) {
      setFailure(e as Error);
      return false;
    }
  };
  return { failure, run };
}

/** A form's submit: `saving` while the change runs, and its failure kept for the form to show
 * (cleared by the next success) instead of lost. */
export function useSubmit() {
  const [error, setError] = useState<Error | null>(null);
  const [saving, setSaving] = useState(false);
  const submit = async (change: () => Promise<unknown>) => {
    setSaving(true);
    try {
      await change();
      setError(null);
    } catch (err) {
      setError(err as Error);
    } finally {
      setSaving(false);
    }
  };
  return { error, saving, submit };
}

/** A form's last row: its submit and Cancel buttons, then the error of its last submit. */
export function FormActions({ submitLabel = "Save", disabled, onCancel, error }: { submitLabel?: string; disabled: boolean; onCancel: () => void; error: Error | null }) {
  return (
    <>
      <div className="row-actions">
        <button type="submit" className="primary" disabled={disabled}>
          {submitLabel}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
      <ErrorBanner error={error} />
    </>
  );
}

export function ErrorBanner({ error }: { error?: Error | null }) {
  if (!error) return null;
  const code = error instanceof ApiError && error.code ? `${error.code}: ` : "";
  return (
    <div className="error" role="alert">
      {code}
      {error.message}
    </div>
  );
}

export function Spinner({ label = "Loading…" }: { label?: string }) {
  return (
    <div className="spinner" role="status">
      {label}
    </div>
  );
}

/** A page's table of what it loaded: nothing but a spinner until the first answer (nothing at
 * all if that answer was an error, which the page's banner shows), then the header and rows. */
export function LoadedTable({
  label,
  loading,
  loaded,
  headers,
  children,
}: {
  label: string;
  loading: boolean;
  loaded: boolean;
  headers: string[];
  children: ReactNode;
}) {
  if (!loaded) return loading ? <Spinner /> : null;
  return (
    <table className="grid" aria-label={label}>
      <thead>
        <tr>
          {headers.map((h, i) => (
            <th key={i}>{h}</th>
          ))}
        </tr>
      </thead>
      <tbody>{children}</tbody>
    </table>
  );
}

export function StatusBadge({ status }: { status?: string }) {
  const s = (status ?? "").toUpperCase();
  return <span className={`badge status-${s.toLowerCase()}`}>{s || "—"}</span>;
}

export function Tabs<T extends string>({
  tabs,
  active,
  onChange,
}: {
  tabs: { id: T; label: string }[];
  active: T;
  onChange: (id: T) => void;
}) {
  return (
    <div className="tabs" role="tablist">
      {tabs.map((t) => (
        <button
          key={t.id}
          role="tab"
          type="button"
          aria-selected={t.id === active}
          className={t.id === active ? "tab active" : "tab"}
          onClick={() => onChange(t.id)}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

export function Section({ title, actions, children }: { title: string; actions?: ReactNode; children: ReactNode }) {
  return (
    <section className="card" aria-label={title}>
      <header className="card-header">
        <h2>{title}</h2>
        {actions}
      </header>
      {children}
    </section>
  );
}

/** A text that turns into a textarea on "Edit"; saving calls `onSave` and shows its error. */
export function EditableText({
  value,
  onSave,
  label,
  placeholder = "None",
}: {
  value: string;
  onSave: (v: string) => Promise<unknown>;
  label: string;
  placeholder?: string;
}) {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(value);
  const { error, saving, submit } = useSubmit();
  useEffect(() => setDraft(value), [value]);
  if (!editing) {
    return (
      <div className="editable">
        {value ? <Markdown className="editable-text" source={value} /> : <div className="editable-text muted">{placeholder}</div>}
        <button type="button" className="link-button" onClick={() => setEditing(true)} aria-label={`Edit ${label}`}>
          Edit
        </button>
      </div>
    );
  }
  return (
    <form
      className="editable"
      onSubmit={(e) => {
        e.preventDefault();
        submit(async () => {
          await onSave(draft);
          setEditing(false);
        });
      }}
    >
      <textarea aria-label={label} value={draft} onChange={(e) => setDraft(e.target.value)} rows={4} autoFocus />
      <FormActions disabled={saving} onCancel={() => (setEditing(false), setDraft(value))} error={error} />
    </form>
  );
}

/** Lists tags with add, edit and delete; system tags (`mlflow.*`) are shown read-only. */
export function TagEditor({
  tags,
  onSet,
  onDelete,
  showSystem = false,
}: {
  tags: KeyValue[];
  onSet: (key: string, value: string) => Promise<unknown>;
  onDelete: (key: string) => Promise<unknown>;
  showSystem?: boolean;
}) {
  const [key, setKey] = useState("");
  const [value, setValue] = useState("");
  const [editing, setEditing] = useState<string | null>(null);
  const [editValue, setEditValue] = useState("");
  const { error, submit: run } = useSubmit();
  const visible = tags.filter((t) => showSystem || !t.key.startsWith("mlflow."));
  return (
    <div className="tag-editor">
      <table className="kv" aria-label="Tags">
        <tbody>
          {visible.length === 0 && (
            <tr>
              <td className="muted">No tags</td>
            </tr>
          )}
          {visible.map((t) => (
            <tr key={t.key} data-tag={t.key}>
              <th scope="row">{t.key}</th>
              <td>
                {editing === t.key ? (
                  <form
                    className="inline-form"
                    onSubmit={(e) => {
                      e.preventDefault();
                      run(async () => {
                        await onSet(t.key, editValue);
                        setEditing(null);
                      });
                    }}
                  >
                    <input aria-label={`Value of ${t.key}`} value={editValue} onChange={(e) => setEditValue(e.target.value)} autoFocus />
                    <button type="submit" className="primary">
                      Save
                    </button>
                    <button type="button" onClick={() => setEditing(null)}>
                      Cancel
                    </button>
                  </form>
                ) : (
                  <span className="tag-value">{t.value}</span>
                )}
              </td>
              <td className="actions">
                {!t.key.startsWith("mlflow.") && editing !== t.key && (
                  <>
                    <button
                      type="button"
                      className="link-button"
                      aria-label={`Edit tag ${t.key}`}
                      onClick={() => (setEditing(t.key), setEditValue(t.value))}
                    >
                      Edit
                    </button>
                    <button type="button" className="link-button danger" aria-label={`Delete tag ${t.key}`} onClick={() => run(() => onDelete(t.key))}>
                      Delete
                    </button>
                  </>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form
        className="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          if (!key.trim()) return;
          run(async () => {
            await onSet(key.trim(), value);
            setKey("");
            setValue("");
          });
        }}
      >
        <input aria-label="New tag key" placeholder="Key" value={key} onChange={(e) => setKey(e.target.value)} />
        <input aria-label="New tag value" placeholder="Value" value={value} onChange={(e) => setValue(e.target.value)} />
        <button type="submit">Add tag</button>
      </form>
      <ErrorBanner error={error} />
    </div>
  );
}

export function KeyValueTable({ rows, label, empty = "None" }: { rows: [ReactNode, ReactNode][]; label: string; empty?: string }) {
  return (
    <table className="kv" aria-label={label}>
      <tbody>
        {rows.length === 0 && (
          <tr>
            <td className="muted">{empty}</td>
          </tr>
        )}
        {rows.map(([k, v], i) => (
          <tr key={i}>
            <th scope="row">{k}</th>
            <td>{v}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The `?search=` of a list page and the name filter it means in the search grammar. */
export function useNameSearch(): { search: string; filter: string } {
  const { query } = useLocation();
  const search = query.get("search") ?? "";
  // Quotes cannot be escaped in the grammar's strings, so they are dropped from the pattern.
  return { search, filter: search ? `name ILIKE '%${search.replace(/'/g, "")}%'` : "" };
}

/** A search box that writes `?search=` into the page's deep link. */
export function NameSearchBar({ label, placeholder, onSearch }: { label: string; placeholder: string; onSearch?: () => void }) {
  return <QuerySearchBar param="search" label={label} placeholder={placeholder} onSearch={onSearch} />;
}

/** A search box for a filter in the server's search grammar, kept in `?{param}=` of the page's
 * deep link, with a Clear button while one is set; `children` are further controls of the bar. */
export function FilterSearchBar({ param, label, placeholder, children }: { param: string; label: string; placeholder: string; children?: ReactNode }) {
  return <QuerySearchBar param={param} label={label} placeholder={placeholder} grammar children={children} />;
}

function QuerySearchBar({
  param,
  label,
  placeholder,
  grammar = false,
  onSearch,
  children,
}: {
  param: string;
  label: string;
  placeholder: string;
  /** A filter expression: typed in monospace, trimmed, and clearable. */
  grammar?: boolean;
  onSearch?: () => void;
  children?: ReactNode;
}) {
  const { query } = useLocation();
  const current = query.get(param) ?? "";
  const [draft, setDraft] = useState(current);
  // The box follows the link, so going back in history shows the search that page was for.
  useEffect(() => setDraft(current), [current]);
  return (
    <form
      className="search-bar"
      role="search"
      onSubmit={(e) => {
        e.preventDefault();
        onSearch?.();
        setQuery({ [param]: grammar ? draft.trim() : draft });
      }}
    >
      <input aria-label={label} className={grammar ? "mono" : undefined} placeholder={placeholder} value={draft} onChange={(e) => setDraft(e.target.value)} />
      <button type="submit">Search</button>
      {grammar && current && (
        <button type="button" onClick={() => setQuery({ [param]: undefined })}>
          Clear
        </button>
      )}
      {children}
    </form>
  );
}
