import { useState } from "react";
import { parseMarkdown, plainText } from "../markdown";
import { post, searchExperiments, type Experiment } from "../api";
import { ErrorBanner, NameSearchBar, Spinner, useAsync, useNameSearch } from "../components/common";
import { formatTime } from "../format";
import { href, idListParam, navigate } from "../router";

async function loadAll(filter: string): Promise<Experiment[]> {
  const all: Experiment[] = [];
  let pageToken: string | undefined;
  do {
    const page = await searchExperiments({ filter, pageToken });
    all.push(...page.items);
    pageToken = page.nextPageToken;
  } while (pageToken && all.length < 10000);
  return all;
}

export function ExperimentsPage() {
  const { filter } = useNameSearch();
  const { data, error, loading, reload } = useAsync(() => loadAll(filter), [filter]);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [creating, setCreating] = useState(false);
  const [newName, setNewName] = useState("");
  const [renaming, setRenaming] = useState<string | null>(null);
  const [renameTo, setRenameTo] = useState("");
  const [actionError, setActionError] = useState<Error | null>(null);

  const act = async (action: () => Promise<unknown>) => {
    try {
      await action();
      setActionError(null);
      reload();
    } catch (e) {
      setActionError(e as Error);
    }
  };
  const toggle = (id: string) =>
    setSelected((s) => {
      const next = new Set(s);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });

  return (
    <div className="page">
      <header className="page-header">
        <h1>Experiments</h1>
        <div className="row-actions">
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            Create experiment
          </button>
          <button
            type="button"
            disabled={selected.size < 2}
            onClick={() => navigate(href(["compare-experiments", "s"], { experiments: idListParam([...selected]) }))}
          >
            Compare {selected.size > 1 ? `(${selected.size})` : ""}
          </button>
        </div>
      </header>
      <NameSearchBar label="Search experiments" placeholder="Search experiments by name" />
      {creating && (
        <form
          className="card inline-form"
          aria-label="Create experiment"
          onSubmit={(e) => {
            e.preventDefault();
            act(async () => {
              const r = await post<{ experiment_id: string }>("experiments/create", { name: newName });
              setCreating(false);
              setNewName("");
              navigate(href(["experiments", r.experiment_id]));
            });
          }}
        >
          <input aria-label="Experiment name" placeholder="Experiment name" value={newName} onChange={(e) => setNewName(e.target.value)} autoFocus />
          <button type="submit" className="primary">
            Create
          </button>
          <button type="button" onClick={() => setCreating(false)}>
            Cancel
          </button>
        </form>
      )}
      <ErrorBanner error={error ?? actionError} />
      {loading && !data ? (
        <Spinner />
      ) : (
        <table className="grid" aria-label="Experiments">
          <thead>
            <tr>
              <th className="check" />
              <th>Name</th>
              <th>ID</th>
              <th>Created</th>
              <th>Last modified</th>
              <th>Description</th>
              <th className="actions">Actions</th>
            </tr>
          </thead>
          <tbody>
            {(data ?? []).map((e) => (
              <tr key={e.experiment_id} data-experiment={e.experiment_id}>
                <td className="check">
                  <input type="checkbox" aria-label={`Select ${e.name}`} checked={selected.has(e.experiment_id)} onChange={() => toggle(e.experiment_id)} />
                </td>
                <td>
                  {renaming === e.experiment_id ? (
                    <form
                      className="inline-form"
                      onSubmit={(ev) => {
                        ev.preventDefault();
                        act(async () => {
                          await post("experiments/update", { experiment_id: e.experiment_id, new_name: renameTo });
                          setRenaming(null);
                        });
                      }}
                    >
                      <input aria-label="New name" value={renameTo} onChange={(ev) => setRenameTo(ev.target.value)} autoFocus />
                      <button type="submit" className="primary">
                        Save
                      </button>
                      <button type="button" onClick={() => setRenaming(null)}>
                        Cancel
                      </button>
                    </form>
                  ) : (
                    <a href={href(["experiments", e.experiment_id])}>{e.name}</a>
                  )}
                </td>
                <td className="mono">{e.experiment_id}</td>
                <td>{formatTime(e.creation_time)}</td>
                <td>{formatTime(e.last_update_time)}</td>
                <td className="muted ellipsis">{plainText(parseMarkdown(e.tags?.find((t) => t.key === "mlflow.note.content")?.value ?? ""))}</td>
                <td className="actions">
                  <button type="button" className="link-button" aria-label={`Rename ${e.name}`} onClick={() => (setRenaming(e.experiment_id), setRenameTo(e.name))}>
                    Rename
                  </button>
                  <button
                    type="button"
                    className="link-button danger"
                    aria-label={`Delete ${e.name}`}
                    onClick={() => {
                      if (window.confirm(`Delete experiment "${e.name}"?`)) act(() => post("experiments/delete", { experiment_id: e.experiment_id }));
                    }}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
            {data && data.length === 0 && (
              <tr>
                <td colSpan={7} className="muted">
                  No experiments match.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      )}
    </div>
  );
}
