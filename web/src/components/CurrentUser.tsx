import { useEffect, useState } from "react";
import { get } from "../api";

interface SignedIn {
  user: { id: number; username: string; is_admin: boolean };
}

/** Who the browser is signed in as, on a server running with `--app-name basic-auth`; nothing
 * on a server without auth, which has no `users/current` route. */
export function CurrentUser() {
  const [user, setUser] = useState<SignedIn["user"] | null>(null);
  useEffect(() => {
    let live = true;
    get<SignedIn>("users/current")
      .then((answer) => live && setUser(answer.user))
      .catch(() => live && setUser(null));
    return () => {
      live = false;
    };
  }, []);
  if (!user) return null;
  return (
    <span className="current-user" data-testid="current-user" title="Signed in">
      {user.username}
      {user.is_admin ? <span className="badge">admin</span> : null}
    </span>
  );
}
