import { useEffect, useState } from "react";
import { get } from "../api";

interface SignedIn {
  user: { id: number; username: string; is_admin: boolean };
  /** Signed in through the login page (a session cookie), which signing out can end. */
  session?: boolean;
}

/** Who the browser is signed in as, on a server running with `--app-name basic-auth`; nothing
 * on a server without auth, which has no `users/current` route. */
export function CurrentUser() {
  const [signedIn, setSignedIn] = useState<SignedIn | null>(null);
  useEffect(() => {
    let live = true;
    get<SignedIn>("users/current")
      .then((answer) => live && setSignedIn(answer))
      .catch(() => live && setSignedIn(null));
    return () => {
      live = false;
    };
  }, []);
  if (!signedIn) return null;
  const { user, session } = signedIn;
  const signOut = async () => {
    await fetch("logout", { method: "POST" });
    window.location.href = "login";
  };
  return (
    <span className="current-user" data-testid="current-user-box">
      <a data-testid="current-user" title="Signed in: your access tokens" href="#/tokens">
        {user.username}
      </a>
      {user.is_admin ? (
        <>
          <span className="badge">admin</span>
          <a href="#/admin/users">Users</a>
        </>
      ) : null}
      {session ? (
        <button type="button" className="link-button" onClick={signOut}>
          Sign out
        </button>
      ) : null}
    </span>
  );
}
