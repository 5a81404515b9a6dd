import { useState } from "react";
import { del, get, patch, post } from "../api";
import { ErrorBanner, LoadedTable, useAction, useAsync } from "../components/common";

// The administrator's pages of a server running with `--app-name basic-auth`: who has an
// account, who administers, and what each user may do. They use the same users/permissions
// endpoints as MLflow's `AuthServiceClient`, so nothing here is possible that a script could
// not do, and nothing a script does is hidden from here.

interface RoleSummary {
  id: number;
  name: string;
  workspace: string;
}

interface UserSummary {
  id: number;
  username: string;
  is_admin: boolean;
  roles?: RoleSummary[];
}

interface PermissionRow {
  role_id: number;
  role_name: string;
  workspace: string;
  resource_type: string;
  resource_pattern: string;
  permission: string;
}

/** Grants given to one user directly live in a role of their own, which is not a role anyone
 * chose, so the pages call them "direct" instead of showing its name. */
const isPersonalRole = (name: string) => /^__user_\d+__$/.test(name);

export const GRANTABLE_RESOURCE_TYPES = [
  "experiment",
  "registered_model",
  "prompt",
  "scorer",
  "gateway_endpoint",
  "gateway_secret",
  "gateway_model_definition",
] as const;

/** What can be granted: NO_PERMISSIONS is what revoking leaves, not a grant. */
export const PERMISSIONS = ["READ", "USE", "EDIT", "MANAGE", "DENY"] as const;

/** `#/admin/users`: every account, made, promoted, reset and deleted here. */
export function UsersPage() {
  const { data, error, loading, reload } = useAsync(() => get<{ users?: UserSummary[] }>("users/list"), []);
  const { failure, run } = useAction(reload);
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [notice, setNotice] = useState<string | null>(null);

  const create = async (event: React.FormEvent) => {
    event.preventDefault();
    setNotice(null);
    const made = await run(() => post("users/create", { username, password }));
    if (made) {
      setNotice(`User ${username} created.`);
      setUsername("");
      setPassword("");
    }
  };
  const setAdmin = (user: UserSummary, isAdmin: boolean) =>
    run(() => patch("users/update-admin", { username: user.username, is_admin: isAdmin }));
  const remove = (user: UserSummary) => {
    if (!window.confirm(`Delete user ${user.username}? Their tokens and grants go with them.`)) return;
    void run(() => del("users/delete", { username: user.username }));
  };
  const resetPassword = async (user: UserSummary) => {
    const next = window.prompt(`New password for ${user.username} (at least 12 characters)`);
    if (!next) return;
    setNotice(null);
    if (await run(() => patch("users/update-password", { username: user.username, password: next })))
      setNotice(`Password of ${user.username} changed.`);
  };

  return (
    <div className="page">
      <header className="page-header">
        <h1>Users</h1>
      </header>
      <form className="inline-form" onSubmit={create} aria-label="New user">
        <label>
          Username <input value={username} onChange={(e) => setUsername(e.target.value)} required autoComplete="off" />
        </label>
        <label>
          Password{" "}
          <input type="password" value={password} onChange={(e) => setPassword(e.target.value)} required minLength={12} autoComplete="new-password" />
        </label>
        <button type="submit">Create user</button>
      </form>
      {notice ? (
        <div className="notice" role="status">
          {notice}
        </div>
      ) : null}
      <ErrorBanner error={failure ?? error} />
      <LoadedTable label="Users" loading={loading} loaded={!!data} headers={["Username", "Administrator", "Roles", ""]}>
          {(data?.users ?? []).map((user) => (
            <tr key={user.id} data-user={user.username}>
              <td>
                <a href={`#/admin/users/${encodeURIComponent(user.username)}`}>{user.username}</a>
              </td>
              <td>{user.is_admin ? <span className="badge">administrator</span> : <span className="muted">no</span>}</td>
              <td>
                {(user.roles ?? [])
                  .filter((r) => !isPersonalRole(r.name))
                  .map((r) => r.name)
                  .join(", ") || <span className="muted">none</span>}
              </td>
              <td className="actions">
                <button type="button" className="link-button" onClick={() => setAdmin(user, !user.is_admin)}>
                  {user.is_admin ? "Remove administrator" : "Make administrator"}
                </button>
                <button type="button" className="link-button" onClick={() => resetPassword(user)}>
                  Reset password
                </button>
                <button type="button" className="link-button danger" onClick={() => remove(user)}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
      </LoadedTable>
    </div>
  );
}

/** `#/admin/users/{name}`: what one user may do, granted and revoked here. */
export function UserPermissionsPage({ username }: { username: string }) {
  const { data, error, loading, reload } = useAsync(
    () => get<{ is_admin: boolean; permissions?: PermissionRow[] }>("users/permissions/list", { username }),
    [username],
  );
  const { failure, run } = useAction(reload);
  const [resourceType, setResourceType] = useState<string>("experiment");
  const [resourceId, setResourceId] = useState("");
  const [permission, setPermission] = useState<string>("READ");

  const grant = async (event: React.FormEvent) => {
    event.preventDefault();
    if (await run(() => post("users/permissions/grant", { username, resource_type: resourceType, resource_id: resourceId, permission })))
      setResourceId("");
  };
  const revoke = (row: PermissionRow) =>
    run(() => post("users/permissions/revoke", { username, resource_type: row.resource_type, resource_id: row.resource_pattern }));

  const rows = data?.permissions ?? [];
  return (
    <div className="page">
      <nav className="breadcrumbs" aria-label="Breadcrumb">
        <a href="#/admin/users">Users</a> / <span>{username}</span>
      </nav>
      <header className="page-header">
        <h1>Permissions of {username}</h1>
      </header>
      {data?.is_admin ? <p className="notice">An administrator: every permission, whatever is granted below.</p> : null}
      <form className="inline-form" onSubmit={grant} aria-label="Grant a permission">
        <label>
          Resource type{" "}
          <select aria-label="Resource type" value={resourceType} onChange={(e) => setResourceType(e.target.value)}>
            {GRANTABLE_RESOURCE_TYPES.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <label>
          Resource{" "}
          <input aria-label="Resource" value={resourceId} onChange={(e) => setResourceId(e.target.value)} required placeholder="id, name or *" />
        </label>
        <label>
          Permission{" "}
          <select aria-label="Permission" value={permission} onChange={(e) => setPermission(e.target.value)}>
            {PERMISSIONS.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Grant</button>
      </form>
      <ErrorBanner error={failure ?? error} />
      {data && rows.length === 0 ? (
        <p className="muted">No grants: this user has the server's default permission on everything.</p>
      ) : (
        <LoadedTable label="Permissions" loading={loading} loaded={!!data} headers={["Resource type", "Resource", "Permission", "Through", ""]}>
          {rows.map((row) => {
            const direct = isPersonalRole(row.role_name);
            return (
              <tr key={`${row.role_id}/${row.resource_type}/${row.resource_pattern}`} data-grant={`${row.resource_type}:${row.resource_pattern}`}>
                <td>{row.resource_type}</td>
                <td className="mono">{row.resource_pattern}</td>
                <td>{row.permission}</td>
                <td>{direct ? "direct" : `role ${row.role_name}`}</td>
                <td>
                  {direct ? (
                    <button type="button" className="link-button danger" onClick={() => revoke(row)}>
                      Revoke
                    </button>
                  ) : null}
                </td>
              </tr>
            );
          })}
        </LoadedTable>
      )}
    </div>
  );
}
