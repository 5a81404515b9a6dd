"""Signs JupyterHub users in with the users of an mlox tracking server (`mlox server
--app-name basic-auth`, MLflow's basic-auth users), and starts each user's notebook server
signed in to the tracking server as that user.

At sign-in the user's password is checked by the tracking server itself: the authenticator
asks it for a personal access token in the user's name (replacing the one it made at the
previous sign-in). The token is kept in JupyterHub's encrypted auth state and given to the
user's notebook server as ``MLFLOW_TRACKING_TOKEN``, with ``MLFLOW_TRACKING_URI``, so
``mlflow.start_run()`` in a notebook is recorded as that user with no set-up and no password
stored anywhere.

    c.JupyterHub.authenticator_class = "mlox_jupyterhub.MloxAuthenticator"
    c.MloxAuthenticator.tracking_uri = "http://127.0.0.1:5000"
    c.Authenticator.enable_auth_state = True   # needs JUPYTERHUB_CRYPT_KEY
    c.Authenticator.allow_all = True
"""

from __future__ import annotations

import json

from jupyterhub.auth import Authenticator
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Integer, Unicode

TOKEN_NAME = "jupyterhub"


class MloxAuthenticator(Authenticator):
    tracking_uri = Unicode(help="The mlox tracking server whose users sign in.").tag(config=True)
    token_days = Integer(30, help="Days a notebook server's access token lasts.").tag(config=True)

    def _tokens_url(self, route: str) -> str:
        return f"{self.tracking_uri.rstrip('/')}/api/2.0/mlflow/users/tokens/{route}"

    async def _call(self, method: str, route: str, username: str, password: str, body=None):
        request = HTTPRequest(
            self._tokens_url(route),
            method=method,
            auth_username=username,
            auth_password=password,
            auth_mode="basic",
            headers={"Content-Type": "application/json"} if body is not None else None,
            body=json.dumps(body) if body is not None else None,
            allow_nonstandard_methods=True,
        )
        answer = await AsyncHTTPClient().fetch(request)
        return json.loads(answer.body or b"{}")

    async def authenticate(self, handler, data):
        username = (data or {}).get("username", "")
        password = (data or {}).get("password", "")
        if not username or not password:
            return None
        try:
            listed = await self._call("GET", "list", username, password)
        except HTTPClientError as refused:
            if refused.code in (401, 403, 429):
                self.log.warning("mlox refused the sign-in of %s (%s)", username, refused.code)
                return None
            raise
        for token in listed.get("tokens", []):
            if token.get("name") == TOKEN_NAME:
                await self._call("DELETE", "delete", username, password, {"id": token["id"]})
        made = await self._call(
            "POST", "create", username, password, {"name": TOKEN_NAME, "expires_in_days": self.token_days}
        )
        return {"name": username, "auth_state": {"mlflow_tracking_token": made["token"]}}

    async def pre_spawn_start(self, user, spawner):
        state = await user.get_auth_state() or {}
        spawner.environment["MLFLOW_TRACKING_URI"] = self.tracking_uri
        spawner.environment["MLFLOW_REGISTRY_URI"] = self.tracking_uri
        token = state.get("mlflow_tracking_token")
        if token:
            spawner.environment["MLFLOW_TRACKING_TOKEN"] = token
