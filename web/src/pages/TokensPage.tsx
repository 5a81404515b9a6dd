import { useState } from "react";
import { del, get, post } from "../api";
import { ErrorBanner, LoadedTable, useAction, useAsync } from "../components/common";
import { formatTime } from "../format";

interface TokenInfo {
  id: string;
  name: string;
  created_at: number;
  expires_at?: number | null;
}

/** The signed-in user's personal access tokens (`MLFLOW_TRACKING_TOKEN`): made here, shown
 * once, listed without their secrets, revoked here. */
export function TokensPage() {
  const { data, error, loading, reload } = useAsync(() => get<{ tokens?: TokenInfo[] }>("users/tokens/list"), []);
  const [name, setName] = useState("");
  const [days, setDays] = useState("90");
  const [created, setCreated] = useState<{ name: string; token: string } | null>(null);
  const { failure, run } = useAction(reload);

  const create = async (event: React.FormEvent) => {
    event.preventDefault();
    await run(async () => {
      const answer = await post<{ token: string; token_info: TokenInfo }>("users/tokens/create", {
        name,
        expires_in_days: days ? Number(days) : undefined,
      });
      setCreated({ name: answer.token_info.name, token: answer.token });
      setName("");
    });
  };
  const revoke = (id: string) => run(() => del("users/tokens/delete", { id }));

  return (
    <div className="page">
      <header className="page-header">
        <h1>Access tokens</h1>
      </header>
      <p className="muted">
        A token signs scripts and notebooks in as you: set <span className="mono">MLFLOW_TRACKING_TOKEN</span> to it.
      </p>
      <form className="inline-form" onSubmit={create} aria-label="New token">
        <label>
          Name <input value={name} onChange={(e) => setName(e.target.value)} required />
        </label>
        <label>
          Expires in days <input type="number" min={1} max={3650} value={days} onChange={(e) => setDays(e.target.value)} />
        </label>
        <button type="submit">Create token</button>
      </form>
      {created ? (
        <div className="notice" role="status">
          Token <strong>{created.name}</strong> (shown only now): <code data-testid="new-token">{created.token}</code>
        </div>
      ) : null}
      <ErrorBanner error={failure ?? error} />
      <LoadedTable label="Tokens" loading={loading} loaded={!!data} headers={["Name", "Created", "Expires", ""]}>
          {(data?.tokens ?? []).map((t) => (
            <tr key={t.id} data-token={t.name}>
              <td>{t.name}</td>
              <td>{formatTime(t.created_at)}</td>
              <td>{t.expires_at ? formatTime(t.expires_at) : "never"}</td>
              <td>
                <button type="button" className="link-button danger" onClick={() => revoke(t.id)}>
                  Revoke
                </button>
              </td>
            </tr>
          ))}
      </LoadedTable>
    </div>
  );
}
