"""`mlox server --app-name basic-auth`: users, grants, roles and tokens, driven by the official
MLflow client (`MLFLOW_TRACKING_USERNAME`/`PASSWORD`, `MLFLOW_TRACKING_TOKEN`), its
`AuthServiceClient` and raw requests, on SQLite and on PostgreSQL.

Each backend gets one server of its own for the module (the session server runs without auth);
users are made fresh per test, so tests do not see each other's grants."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client

from conftest import PgDatabase, _free_port, launch_mlox, mlox_binary

pytestmark = [pytest.mark.mlox_only, pytest.mark.standalone]

ADMIN = "admin"
ADMIN_PASSWORD = "admin-password-for-tests"


def _launch_auth_server(tmp_path, backend_uri: str, ini: str | None = None, log_name="auth.log"):
    env_before = dict(os.environ)
    os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    os.environ.pop("MLFLOW_AUTH_ADMIN_USERNAME", None)
    if ini is not None:
        path = tmp_path / f"{log_name}.ini"
        path.write_text(ini)
        os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(path)
    else:
        os.environ.pop("MLFLOW_AUTH_CONFIG_PATH", None)
    try:
        return launch_mlox(tmp_path, backend_uri, "--app-name", "basic-auth", log_name=log_name)
    finally:
        os.environ.clear()
        os.environ.update(env_before)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def auth_server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"auth-{request.param}")
    database = None
    if request.param == "postgresql":
        database = PgDatabase()
        uri = database.uri
    else:
        uri = f"sqlite:///{tmp / 'mlruns.db'}"
    server = _launch_auth_server(tmp, uri)
    yield server
    server.stop()
    if database is not None:
        database.close()


@pytest.fixture
def url(auth_server) -> str:
    return auth_server.url


@pytest.fixture
def as_user(monkeypatch):
    """Makes the MLflow client (environment credentials) act as one user."""

    def switch(username: str | None, password: str | None = None, token: str | None = None):
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        if username is not None:
            monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
            monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        if token is not None:
            monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)

    switch(None)
    return switch


def new_user(url: str, prefix: str = "user") -> tuple[str, str]:
    username = f"{prefix}-{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    r = requests.post(
        f"{url}/api/2.0/mlflow/users/create",
        json={"username": username, "password": password},
        auth=(ADMIN, ADMIN_PASSWORD),
    )
    assert r.status_code == 200, r.text
    assert r.json()["user"]["username"] == username
    assert r.json()["user"]["is_admin"] is False
    return username, password


def api(url: str, method: str, path: str, auth, **kwargs) -> requests.Response:
    return requests.request(method, f"{url}/api/2.0/mlflow/{path}", auth=auth, **kwargs)


# --------------------------------------------------------------------------- sign-in


def test_no_credentials_get_mlflows_challenge_and_health_stays_open(url):
    r = requests.get(f"{url}/api/2.0/mlflow/experiments/search", params={"max_results": 1})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="mlflow"'
    assert r.text.startswith("You are not authenticated.")
    assert requests.get(f"{url}/health").status_code == 200
    wrong = requests.get(f"{url}/api/2.0/mlflow/users/current", auth=(ADMIN, "password1234"))
    assert wrong.status_code == 401


def test_the_client_signs_in_from_the_environment(url, as_user):
    with pytest.raises(MlflowException, match="You are not authenticated") as err:
        MlflowClient(url, registry_uri=url).search_experiments()
    assert err.value.error_code == "UNAUTHENTICATED"
    username, password = new_user(url)
    as_user(username, password)
    experiment_id = MlflowClient(url, registry_uri=url).create_experiment(f"signed-in-{uuid.uuid4().hex[:6]}")
    assert MlflowClient(url, registry_uri=url).get_experiment(experiment_id).experiment_id == experiment_id


def test_no_server_starts_without_an_administrator_password(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_AUTH")}
    cmd = [mlox_binary(), "server", "--app-name", "basic-auth", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{tmp_path / 'a.db'}",
           "--artifacts-destination", str(tmp_path / "artifacts")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode != 0
    assert "MLFLOW_AUTH_ADMIN_PASSWORD" in done.stderr + done.stdout
    env["MLFLOW_AUTH_ADMIN_PASSWORD"] = "short"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode != 0
    assert "at least 12 characters" in done.stderr + done.stdout


def test_repeated_failures_lock_one_username_only(url):
    victim, password = new_user(url, "victim")
    bystander, bystander_password = new_user(url, "bystander")
    current = f"{url}/api/2.0/mlflow/users/current"
    for _ in range(20):
        assert requests.get(current, auth=(victim, "not-the-password")).status_code == 401
    locked = requests.get(current, auth=(victim, password))
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert locked.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert requests.get(current, auth=(bystander, bystander_password)).status_code == 200


# --------------------------------------------------------------------------- users


def test_users_are_managed_through_the_auth_service_client(url, as_user):
    client = get_app_client("basic-auth", url)
    username = f"u-{uuid.uuid4().hex[:8]}"
    with pytest.raises(MlflowException, match="You are not authenticated"):
        client.create_user(username, "a-good-long-password")
    as_user(ADMIN, ADMIN_PASSWORD)
    with pytest.raises(MlflowException, match="at least 12 characters"):
        client.create_user(username, "short")
    user = client.create_user(username, "a-good-long-password")
    assert (user.username, user.is_admin) == (username, False)
    with pytest.raises(MlflowException, match="already exists") as err:
        client.create_user(username, "a-good-long-password")
    assert err.value.error_code == "RESOURCE_ALREADY_EXISTS"

    as_user(username, "a-good-long-password")
    with pytest.raises(MlflowException, match="Permission denied") as err:
        client.create_user(f"{username}-2", "a-good-long-password")
    assert err.value.error_code == "PERMISSION_DENIED"
    with pytest.raises(MlflowException, match="Current password is required"):
        client.update_user_password(username, "another-long-password")
    client.update_user_password(username, "another-long-password",
                                current_password="a-good-long-password")
    with pytest.raises(MlflowException, match="You are not authenticated"):
        client.get_user(username)
    as_user(username, "another-long-password")
    assert client.get_user(username).username == username

    as_user(ADMIN, ADMIN_PASSWORD)
    client.update_user_admin(username, True)
    assert client.get_user(username).is_admin is True
    client.delete_user(username)
    with pytest.raises(MlflowException, match=f"User with username={username} not found") as err:
        client.get_user(username)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_malformed_bodies_are_clean_400s_and_nothing_is_reflected(url):
    admin = (ADMIN, ADMIN_PASSWORD)
    for body in ("null", "", "[1]"):
        r = requests.post(f"{url}/api/2.0/mlflow/users/create", data=body,
                          headers={"Content-Type": "application/json"}, auth=admin)
        assert r.status_code == 400, (body, r.text)
    r = requests.post(f"{url}/api/2.0/mlflow/users/create", data="x",
                      headers={"Content-Type": "<script>alert(1)</script>"}, auth=admin)
    assert r.status_code < 500
    assert "<script>" not in r.text
    assert requests.post(f"{url}/api/2.0/mlflow/users/create",
                         json={"username": "x", "password": "y" * 20}).status_code == 401


# --------------------------------------------------------------------------- permissions


def test_default_read_creator_manage_and_grants(url, as_user):
    owner, owner_pw = new_user(url, "owner")
    other, other_pw = new_user(url, "other")
    as_user(owner, owner_pw)
    client = MlflowClient(url, registry_uri=url)
    experiment_id = client.create_experiment(f"owned-{uuid.uuid4().hex[:6]}")
    run = client.create_run(experiment_id)

    auth_client = get_app_client("basic-auth", url)
    mine = auth_client.get_user_permission(owner, "experiment", experiment_id)
    assert (mine.permission, mine.allowed) == ("MANAGE", True)

    as_user(other, other_pw)
    assert client.get_run(run.info.run_id).info.run_id == run.info.run_id
    with pytest.raises(MlflowException, match="Permission denied") as err:
        client.log_metric(run.info.run_id, "loss", 1.0)
    assert err.value.error_code == "PERMISSION_DENIED"
    with pytest.raises(MlflowException, match="Permission denied"):
        client.delete_experiment(experiment_id)
    with pytest.raises(MlflowException, match="Permission denied"):
        auth_client.grant_user_permission(other, "experiment", experiment_id, "EDIT")

    as_user(owner, owner_pw)
    auth_client.grant_user_permission(other, "experiment", experiment_id, "EDIT")
    as_user(other, other_pw)
    client.log_metric(run.info.run_id, "loss", 1.0)
    assert client.get_metric_history(run.info.run_id, "loss")[0].value == 1.0
    with pytest.raises(MlflowException, match="Permission denied"):
        client.delete_run(run.info.run_id)

    as_user(owner, owner_pw)
    auth_client.grant_user_permission(other, "experiment", experiment_id, "DENY")
    as_user(other, other_pw)
    with pytest.raises(MlflowException, match="Permission denied"):
        client.get_run(run.info.run_id)
    denied = client.search_runs([experiment_id])
    assert list(denied) == []
    assert experiment_id not in {e.experiment_id for e in client.search_experiments()}

    as_user(owner, owner_pw)
    auth_client.revoke_user_permission(other, "experiment", experiment_id)
    assert auth_client.get_user_permission(other, "experiment", experiment_id).permission == "READ"


def test_the_signed_in_user_is_the_runs_author(url):
    author, password = new_user(url, "author")
    r = api(url, "POST", "experiments/create", (author, password),
            json={"name": f"authored-{uuid.uuid4().hex[:6]}"})
    experiment_id = r.json()["experiment_id"]
    r = api(url, "POST", "runs/create", (author, password), json={
        "experiment_id": experiment_id, "user_id": "mallory", "start_time": 1,
        "tags": [{"key": "mlflow.user", "value": "mallory"}, {"key": "team", "value": "a"}],
    })
    assert r.status_code == 200, r.text
    run = r.json()["run"]
    assert run["info"]["user_id"] == author
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["mlflow.user"] == author
    assert tags["team"] == "a"


def test_registered_models_creator_manages_and_grants_follow_renames(url, as_user):
    owner, owner_pw = new_user(url, "modeler")
    other, other_pw = new_user(url, "reader")
    name = f"model-{uuid.uuid4().hex[:6]}"
    as_user(owner, owner_pw)
    client = MlflowClient(url, registry_uri=url)
    client.create_registered_model(name)
    auth_client = get_app_client("basic-auth", url)
    auth_client.grant_user_permission(other, "registered_model", name, "EDIT")
    as_user(other, other_pw)
    client.set_registered_model_tag(name, "stage", "dev")
    with pytest.raises(MlflowException, match="Permission denied"):
        client.delete_registered_model(name)
    as_user(owner, owner_pw)
    client.rename_registered_model(name, f"{name}-v2")
    assert auth_client.get_user_permission(other, "registered_model", f"{name}-v2").permission == "EDIT"
    client.delete_registered_model(f"{name}-v2")
    assert auth_client.get_user_permission(owner, "registered_model", f"{name}-v2").permission == "READ"


def test_older_clients_per_resource_permission_endpoints(url):
    owner, owner_pw = new_user(url, "legacy-owner")
    user, user_pw = new_user(url, "legacy-user")
    experiment_id = api(url, "POST", "experiments/create", (owner, owner_pw),
                        json={"name": f"legacy-{uuid.uuid4().hex[:6]}"}).json()["experiment_id"]
    body = {"experiment_id": experiment_id, "username": user, "permission": "READ"}
    r = api(url, "POST", "experiments/permissions/create", (owner, owner_pw), json=body)
    assert r.status_code == 200, r.text
    assert r.json()["experiment_permission"]["experiment_id"] == experiment_id
    assert r.json()["experiment_permission"]["permission"] == "READ"
    assert api(url, "POST", "experiments/permissions/create", (user, user_pw), json=body).status_code == 403
    r = api(url, "PATCH", "experiments/permissions/update", (owner, owner_pw),
            json={**body, "permission": "EDIT"})
    assert r.status_code == 200, r.text
    r = api(url, "GET", "experiments/permissions/get", (owner, owner_pw),
            params={"experiment_id": experiment_id, "username": user})
    assert r.json()["experiment_permission"]["permission"] == "EDIT"
    assert api(url, "DELETE", "experiments/permissions/delete", (owner, owner_pw), json=body).status_code == 200
    r = api(url, "GET", "experiments/permissions/get", (owner, owner_pw),
            params={"experiment_id": experiment_id, "username": user})
    assert r.status_code == 404
    assert r.json() == {
        "error_code": "RESOURCE_DOES_NOT_EXIST",
        "message": f"Experiment permission with experiment_id={experiment_id} and username={user} not found",
    }

    name = f"legacy-model-{uuid.uuid4().hex[:6]}"
    assert api(url, "POST", "registered-models/create", (owner, owner_pw), json={"name": name}).status_code == 200
    r = api(url, "POST", "registered-models/permissions/create", (owner, owner_pw),
            json={"name": name, "username": user, "permission": "MANAGE"})
    assert r.json()["registered_model_permission"] == {
        "name": name, "user_id": r.json()["registered_model_permission"]["user_id"],
        "permission": "MANAGE", "workspace": "default",
    }
    assert api(url, "DELETE", "registered-models/delete", (user, user_pw), json={"name": name}).status_code == 200


def test_roles_grant_through_assignment(url, as_user):
    user, user_pw = new_user(url, "role-user")
    owner, owner_pw = new_user(url, "role-owner")
    experiment_id = api(url, "POST", "experiments/create", (owner, owner_pw),
                        json={"name": f"roles-{uuid.uuid4().hex[:6]}"}).json()["experiment_id"]
    run_id = api(url, "POST", "runs/create", (owner, owner_pw),
                 json={"experiment_id": experiment_id}).json()["run"]["info"]["run_id"]
    as_user(ADMIN, ADMIN_PASSWORD)
    client = get_app_client("basic-auth", url)
    role = client.create_role(workspace="default", name=f"editors-{uuid.uuid4().hex[:6]}")
    granted = client.add_role_permission(role.id, "experiment", experiment_id, "EDIT")
    assert (granted.resource_type, granted.permission) == ("experiment", "EDIT")
    with pytest.raises(MlflowException, match="Invalid resource type"):
        client.add_role_permission(role.id, "bogus", "1", "READ")

    log = {"run_id": run_id, "key": "m", "value": 1.0, "timestamp": 1, "step": 0}
    assert api(url, "POST", "runs/log-metric", (user, user_pw), json=log).status_code == 403
    client.assign_role(user, role.id)
    assert [r.id for r in client.list_user_roles(user)] == [role.id]
    assert api(url, "POST", "runs/log-metric", (user, user_pw), json=log).status_code == 200
    client.unassign_role(user, role.id)
    assert api(url, "POST", "runs/log-metric", (user, user_pw), json=log).status_code == 403


def test_webhooks_and_unlisted_routes_are_for_administrators(url):
    user, user_pw = new_user(url, "hooks")
    hook = {"name": "h", "url": "https://example.com/hook", "events": [
        {"entity": "registered_model", "action": "created"}]}
    r = requests.post(f"{url}/api/2.0/mlflow/webhooks", json=hook, auth=(user, user_pw))
    assert (r.status_code, r.text) == (403, "Permission denied")
    r = requests.get(f"{url}/api/2.0/mlflow/webhooks", auth=(ADMIN, ADMIN_PASSWORD))
    assert r.status_code == 200


def test_proxied_artifacts_need_edit_to_write_and_manage_to_delete(url):
    owner, owner_pw = new_user(url, "art-owner")
    editor, editor_pw = new_user(url, "art-editor")
    reader, reader_pw = new_user(url, "art-reader")
    experiment_id = api(url, "POST", "experiments/create", (owner, owner_pw),
                        json={"name": f"art-{uuid.uuid4().hex[:6]}"}).json()["experiment_id"]
    api(url, "POST", "experiments/permissions/create", (owner, owner_pw),
        json={"experiment_id": experiment_id, "username": editor, "permission": "EDIT"})
    path = f"{url}/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/r/artifacts/a.txt"
    assert requests.put(path, data=b"x", auth=(reader, reader_pw)).status_code == 403
    assert requests.put(path, data=b"hello", auth=(editor, editor_pw)).status_code == 200
    assert requests.get(path, auth=(reader, reader_pw)).content == b"hello"
    assert requests.delete(path, auth=(editor, editor_pw)).status_code == 403
    assert requests.delete(path, auth=(owner, owner_pw)).status_code == 200
    outside = f"{url}/api/2.0/mlflow-artifacts/artifacts/not-an-experiment/a.txt"
    assert requests.put(outside, data=b"x", auth=(owner, owner_pw)).status_code == 403


# --------------------------------------------------------------------------- tokens


def test_personal_access_tokens(url, as_user):
    user, password = new_user(url, "tokens")
    r = api(url, "POST", "users/tokens/create", (user, password),
            json={"name": "ci", "expires_in_days": 30})
    assert r.status_code == 200, r.text
    token, info = r.json()["token"], r.json()["token_info"]
    assert info["name"] == "ci" and info["expires_at"] > info["created_at"]

    as_user(None, token=token)
    client = MlflowClient(url, registry_uri=url)
    experiment_id = client.create_experiment(f"by-token-{uuid.uuid4().hex[:6]}")
    run = client.create_run(experiment_id)
    assert run.info.user_id == user

    listed = api(url, "GET", "users/tokens/list", (user, password)).json()["tokens"]
    assert [t["id"] for t in listed] == [info["id"]]
    assert token not in str(listed)

    new_password = f"pw-{uuid.uuid4().hex}"
    assert api(url, "PATCH", "users/update-password", (user, password),
               json={"username": user, "password": new_password,
                     "current_password": password}).status_code == 200
    assert client.get_run(run.info.run_id).info.run_id == run.info.run_id

    other, other_pw = new_user(url, "not-owner")
    r = api(url, "DELETE", "users/tokens/delete", (other, other_pw), json={"id": info["id"]})
    assert r.status_code == 404
    assert api(url, "DELETE", "users/tokens/delete", (user, new_password),
               json={"id": info["id"]}).status_code == 200
    with pytest.raises(MlflowException, match="You are not authenticated"):
        client.get_run(run.info.run_id)
    bearer = requests.get(f"{url}/api/2.0/mlflow/users/current",
                          headers={"Authorization": "Bearer mlox_not-a-token"})
    assert bearer.status_code == 401


# --------------------------------------------------------------------------- no read default


@pytest.fixture(scope="module")
def private_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth-private")
    server = _launch_auth_server(
        tmp, f"sqlite:///{tmp / 'mlruns.db'}",
        ini="[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
            f"database_uri = sqlite:///{tmp / 'basic_auth.db'}\n",
        log_name="private.log",
    )
    yield server, tmp
    server.stop()


def test_with_no_default_permission_searches_show_only_what_is_granted(private_server, as_user):
    server, tmp = private_server
    url = server.url
    alice, alice_pw = new_user(url, "alice")
    bob, bob_pw = new_user(url, "bob")
    client = MlflowClient(url, registry_uri=url)
    as_user(alice, alice_pw)
    mine = [client.create_experiment(f"alice-{i}-{uuid.uuid4().hex[:4]}") for i in range(3)]
    run = client.create_run(mine[0])
    client.create_registered_model(f"alice-model-{uuid.uuid4().hex[:4]}")
    as_user(bob, bob_pw)
    theirs = client.create_experiment(f"bob-{uuid.uuid4().hex[:4]}")
    visible = {e.experiment_id for e in client.search_experiments()}
    assert theirs in visible and not visible & set(mine)
    more = [client.create_experiment(f"bob-{i}-{uuid.uuid4().hex[:4]}") for i in range(2)]
    visible = [e.experiment_id for e in client.search_experiments()]
    # Pages are filled as MLflow fills them: never short while more readable rows follow.
    pages, token = [], None
    while True:
        page = client.search_experiments(max_results=1, page_token=token)
        pages.append([e.experiment_id for e in page])
        token = page.token
        if not token:
            break
    assert all(len(p) == 1 for p in pages[:-1]), pages
    assert [e for p in pages for e in p] == visible
    assert {theirs, *more} <= set(visible) and not set(visible) & set(mine)
    assert [m.name for m in client.search_registered_models()] == []
    models = [f"bob-model-{i}-{uuid.uuid4().hex[:4]}" for i in range(2)]
    for name in models:
        client.create_registered_model(name)
    first = client.search_registered_models(max_results=1)
    assert len(first) == 1 and first.token
    second = client.search_registered_models(max_results=1, page_token=first.token)
    assert {first[0].name, second[0].name} == set(models)
    assert list(client.search_runs([mine[0], theirs])) == []
    with pytest.raises(MlflowException, match="Permission denied"):
        client.get_run(run.info.run_id)
    # The users live in the file the ini names, not in the tracking database.
    assert (tmp / "basic_auth.db").exists()


# --------------------------------------------------------------------------- GenAI routes


def test_traces_take_their_experiments_permissions(url):
    from test_otlp import _export, _span, _trace_hex

    owner, owner_pw = new_user(url, "trace-owner")
    reader, reader_pw = new_user(url, "trace-reader")
    experiment_id = api(url, "POST", "experiments/create", (owner, owner_pw),
                        json={"name": f"traces-{uuid.uuid4().hex[:6]}"}).json()["experiment_id"]
    trace_hex = _trace_hex()
    trace_id = f"tr-{trace_hex}"
    export = _export(_span(trace_hex, "a" * 16, "root"))
    headers = {"Content-Type": "application/x-protobuf", "x-mlflow-experiment-id": experiment_id}
    refused = requests.post(f"{url}/v1/traces", data=export, headers=headers, auth=(reader, reader_pw))
    assert refused.status_code == 403
    sent = requests.post(f"{url}/v1/traces", data=export, headers=headers, auth=(owner, owner_pw))
    assert sent.status_code == 200, sent.text

    v3 = f"{url}/api/3.0/mlflow"
    assert requests.get(f"{v3}/traces/{trace_id}", auth=(reader, reader_pw)).status_code == 200
    got = requests.get(f"{v3}/traces/get", params={"trace_id": trace_id}, auth=(reader, reader_pw))
    assert got.status_code == 200, got.text
    tag = {"key": "k", "value": "v"}
    assert requests.patch(f"{v3}/traces/{trace_id}/tags", json=tag,
                          auth=(reader, reader_pw)).status_code == 403
    assert requests.patch(f"{v3}/traces/{trace_id}/tags", json=tag,
                          auth=(owner, owner_pw)).status_code == 200
    delete = {"experiment_id": experiment_id, "request_ids": [trace_id]}
    assert requests.post(f"{v3}/traces/delete-traces", json=delete,
                         auth=(reader, reader_pw)).status_code == 403
    done = requests.post(f"{v3}/traces/delete-traces", json=delete, auth=(owner, owner_pw))
    assert done.status_code == 200 and done.json()["traces_deleted"] == 1

    # Trace metrics read the experiments they name; prompt-lab runs write into theirs.
    query = {"experiment_ids": [experiment_id], "view_type": "TRACES", "metric_name": "trace_count",
             "aggregations": [{"aggregation_type": "COUNT"}]}
    counted = requests.post(f"{v3}/traces/metrics", json=query, auth=(reader, reader_pw))
    assert counted.status_code == 200, counted.text
    lab = {"experiment_id": experiment_id, "prompt_template": "t", "prompt_parameters": [{"key": "k", "value": "v"}],
           "model_route": "chat", "model_input": "i", "mlflow_version": "3.17.2"}
    lab_url = f"{url}/ajax-api/2.0/mlflow/runs/create-promptlab-run"
    assert requests.post(lab_url, json=lab, auth=(reader, reader_pw)).status_code == 403
    assert requests.post(lab_url, json=lab, auth=(owner, owner_pw)).status_code == 200
    # The AI gateway's configuration is for administrators; a call needs USE on its endpoint,
    # and whether an endpoint exists is not told to who may not call it.
    secrets = f"{v3}/gateway/secrets/list"
    assert requests.get(secrets, auth=(owner, owner_pw)).status_code == 403
    assert requests.get(secrets, auth=(ADMIN, ADMIN_PASSWORD)).status_code == 200
    assert requests.post(f"{url}/gateway/any/mlflow/invocations", json={"messages": []},
                         auth=(owner, owner_pw)).status_code == 403


# --------------------------------------------------------------------------- serve and gateway


def _wait_ready(url: str, proc: subprocess.Popen, log) -> None:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"exited:\n{log.read_text()}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    pytest.fail(f"not ready:\n{log.read_text()}")


def _start(args: list[str], workdir, name: str) -> subprocess.Popen:
    log = workdir / f"{name}.log"
    with open(log, "ab") as out:
        return subprocess.Popen([mlox_binary(), *args], cwd=workdir, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)


def _token(url: str, user: str, password: str) -> str:
    r = api(url, "POST", "users/tokens/create", (user, password), json={"name": "serve"})
    assert r.status_code == 200, r.text
    return r.json()["token"]


def test_mlox_serve_admits_users_with_use_on_the_model(auth_server, tmp_path):
    from llm_fixtures import tiny_model

    url = auth_server.url
    allowed, allowed_pw = new_user(url, "serve-ok")
    refused, refused_pw = new_user(url, "serve-no")
    grant = requests.post(f"{url}/api/3.0/mlflow/users/permissions/grant", auth=(ADMIN, ADMIN_PASSWORD),
                          json={"username": allowed, "resource_type": "registered_model",
                                "resource_id": "guarded", "permission": "USE"})
    assert grant.status_code == 200, grant.text
    token = _token(url, allowed, allowed_pw)

    port, grpc_port = _free_port(), _free_port()
    proc = _start(["serve", "-m", str(tiny_model("tiny-bert-embeddings")), "--name", "guarded",
                   "-p", str(port), "--grpc-port", str(grpc_port), "--auth-tracking-uri", url],
                  tmp_path, "serve")
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"{base}/v2/health/ready", proc, tmp_path / "serve.log")
        body = {"model": "guarded", "input": "hello"}
        anonymous = requests.post(f"{base}/v1/embeddings", json=body)
        assert anonymous.status_code == 401
        assert "error" in anonymous.json()
        assert requests.post(f"{base}/v1/embeddings", json=body,
                             auth=(refused, refused_pw)).status_code == 403
        ok = requests.post(f"{base}/v1/embeddings", json=body,
                           headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200, ok.text
        assert len(ok.json()["data"][0]["embedding"]) > 0
        assert requests.post(f"{base}/v1/embeddings", json=body,
                             auth=(allowed, allowed_pw)).status_code == 200
        v2 = {"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}
        assert requests.post(f"{base}/v2/models/guarded/infer", json=v2).status_code == 401
        assert requests.post(f"{base}/v2/models/guarded/infer", json=v2,
                             headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert requests.get(f"{base}/metrics").status_code == 200

        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{grpc_port}")
        assert client.is_server_live()
        with pytest.raises(InferenceServerException, match="(?i)unauthenticated|personal access token"):
            client.get_model_metadata("guarded")
        meta = client.get_model_metadata("guarded", headers={"authorization": f"Bearer {token}"})
        assert meta.name == "guarded"
    finally:
        _stop(proc)


def test_mlox_gateway_admits_users_with_use_on_the_endpoint(auth_server, tmp_path):
    url = auth_server.url
    allowed, allowed_pw = new_user(url, "gw-ok")
    refused, refused_pw = new_user(url, "gw-no")
    requests.post(f"{url}/api/3.0/mlflow/users/permissions/grant", auth=(ADMIN, ADMIN_PASSWORD),
                  json={"username": allowed, "resource_type": "gateway_endpoint",
                        "resource_id": "embeddings", "permission": "USE"}).raise_for_status()
    config = tmp_path / "config.yaml"
    config.write_text(f"""
endpoints:
  - name: embeddings
    endpoint_type: llm/v1/embeddings
    model:
      provider: mlflow-model-serving
      name: nothing-listens-here
      config:
        model_server_url: http://127.0.0.1:{_free_port()}
""")
    port = _free_port()
    proc = _start(["gateway", "start", "--config-path", str(config), "--port", str(port),
                   "--auth-tracking-uri", url], tmp_path, "gateway")
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"{base}/health", proc, tmp_path / "gateway.log")
        body = {"input": "hello"}
        invoke = f"{base}/endpoints/embeddings/invocations"
        anonymous = requests.post(invoke, json=body)
        assert anonymous.status_code == 401 and "detail" in anonymous.json()
        assert requests.post(invoke, json=body, auth=(refused, refused_pw)).status_code == 403
        admitted = requests.post(invoke, json=body, auth=(allowed, allowed_pw))
        # Past the gate, the request reaches the endpoint, whose model server is down.
        assert admitted.status_code not in (401, 403), admitted.text
        assert admitted.status_code >= 500
        openai_body = {"model": "embeddings", "input": "hello"}
        assert requests.post(f"{base}/v1/embeddings", json=openai_body,
                             auth=(refused, refused_pw)).status_code == 403
    finally:
        _stop(proc)


def test_the_login_page_signs_a_browser_in_and_out(auth_server, browser):
    from playwright.sync_api import expect

    username, password = new_user(auth_server.url, "web")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{auth_server.url}/")
        expect(page).to_have_url(f"{auth_server.url}/login?next=%2F")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill("not-the-password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_test_id("current-user")).to_have_text(username)
        cookie = next(c for c in context.cookies() if c["name"] == "mlox_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        # The session ended on the server too: the old cookie opens nothing.
        stale = requests.get(f"{auth_server.url}/api/2.0/mlflow/users/current",
                             cookies={"mlox_session": cookie["value"]})
        assert stale.status_code == 401
    finally:
        context.close()


def test_sessions_for_scripts_and_no_open_redirect(url):
    username, password = new_user(url, "session")
    session = requests.Session()
    r = session.post(f"{url}/login", json={"username": username, "password": password})
    assert r.status_code == 200 and r.json()["user"]["username"] == username
    me = session.get(f"{url}/api/2.0/mlflow/users/current")
    assert me.status_code == 200 and me.json()["session"] is True
    # Sessions are not listed among, nor mistaken for, personal access tokens.
    assert session.get(f"{url}/api/2.0/mlflow/users/tokens/list").json()["tokens"] == []
    r = requests.post(f"{url}/login", allow_redirects=False,
                      data={"username": username, "password": password, "next": "//evil.example/"})
    assert r.status_code == 303 and r.headers["Location"] == "/"
    wrong = requests.post(f"{url}/login", json={"username": username, "password": "nope-nope-nope"})
    assert wrong.status_code == 401


def test_the_web_ui_signs_in_and_shows_the_user(auth_server, browser):
    from playwright.sync_api import expect

    username, password = new_user(auth_server.url, "ui")
    # A client that is not a browser still gets MLflow's challenge.
    challenge = requests.get(f"{auth_server.url}/")
    assert challenge.status_code == 401 and "Basic" in challenge.headers["WWW-Authenticate"]
    # Basic credentials sent up front (as a signing-in proxy sends them) open the UI directly.
    import base64

    basic = base64.b64encode(f"{username}:{password}".encode()).decode()
    context = browser.new_context(extra_http_headers={"Authorization": f"Basic {basic}"})
    try:
        page = context.new_page()
        page.goto(f"{auth_server.url}/#/experiments")
        expect(page.get_by_test_id("current-user")).to_have_text(username)
        expect(page.get_by_role("heading", name="Experiments")).to_be_visible()
    finally:
        context.close()


@pytest.mark.parametrize("row,method,path,body,signed_in", [
    # CVE-2026-2651: multipart uploads into an experiment need EDIT on it.
    ("mpu-create", "POST", "/api/2.0/mlflow-artifacts/mpu/create/{exp}/r/artifacts/big.bin",
     {"path": "big.bin", "num_parts": 1}, 403),
    ("mpu-abort", "POST", "/api/2.0/mlflow-artifacts/mpu/abort/{exp}/r/artifacts/big.bin",
     {"path": "big.bin", "upload_id": "u"}, 403),
    ("mpu-complete", "POST", "/api/2.0/mlflow-artifacts/mpu/complete/{exp}/r/artifacts/big.bin",
     {"path": "big.bin", "upload_id": "u", "parts": []}, 403),
    # CVE-2026-3198: gateway secrets, endpoints and model definitions are not listed to any
    # user; the tracking server keeps none, and the routes are for administrators.
    ("gateway-secrets", "GET", "/api/3.0/mlflow/gateway/secrets/list", None, 403),
    ("gateway-endpoints", "GET", "/ajax-api/3.0/mlflow/gateway/endpoints/list", None, 403),
    # CVE-2026-0545: the jobs API is not open to anyone.
    ("jobs", "GET", "/ajax-api/3.0/mlflow/jobs/some-job", None, 403),
    # CVE-2025-1473: there is no sign-up form to forge a post to; users are made by admins.
    ("signup", "POST", "/api/2.0/mlflow/users/create-ui", None, 404),
    # CVE-2023-6014: no account creation without credentials.
    ("users-create", "POST", "/api/2.0/mlflow/users/create",
     {"username": "x", "password": "y" * 16}, 403),
])
def test_cve_rows_that_need_authentication_are_refused(url, row, method, path, body, signed_in):
    owner, owner_pw = new_user(url, "cve-owner")
    reader, reader_pw = new_user(url, "cve-reader")
    experiment_id = api(url, "POST", "experiments/create", (owner, owner_pw),
                        json={"name": f"cve-{uuid.uuid4().hex[:6]}"}).json()["experiment_id"]
    target = f"{url}{path.format(exp=experiment_id)}"
    anonymous = requests.request(method, target, json=body)
    assert anonymous.status_code == 401, (row, anonymous.text)
    as_reader = requests.request(method, target, json=body, auth=(reader, reader_pw))
    assert as_reader.status_code == signed_in, (row, as_reader.status_code, as_reader.text)


def _sign_in(page, url: str, username: str, password: str, next_hash: str):
    page.goto(f"{url}/login?next=%2F%23{next_hash.replace('/', '%2F')}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_tokens_are_made_and_revoked_from_the_web_ui(auth_server, browser):
    from playwright.sync_api import expect

    url = auth_server.url
    username, password = new_user(url, "ui-tokens")
    context = browser.new_context()
    try:
        page = context.new_page()
        _sign_in(page, url, username, password, "/tokens")
        expect(page.get_by_role("heading", name="Access tokens")).to_be_visible()
        page.get_by_label("Name").fill("notebook")
        page.get_by_role("button", name="Create token").click()
        secret = page.get_by_test_id("new-token").inner_text()
        me = requests.get(f"{url}/api/2.0/mlflow/users/current",
                          headers={"Authorization": f"Bearer {secret}"})
        assert me.status_code == 200 and me.json()["user"]["username"] == username
        row = page.locator("tr[data-token='notebook']")
        expect(row).to_be_visible()
        assert secret not in page.locator("table").inner_text()
        row.get_by_role("button", name="Revoke").click()
        expect(row).to_have_count(0)
        gone = requests.get(f"{url}/api/2.0/mlflow/users/current",
                            headers={"Authorization": f"Bearer {secret}"})
        assert gone.status_code == 401
    finally:
        context.close()


def test_administrators_manage_users_and_grants_from_the_web_ui(auth_server, browser):
    from playwright.sync_api import expect

    url = auth_server.url
    owner, owner_pw = new_user(url, "ui-owner")
    experiment_id = api(url, "POST", "experiments/create", (owner, owner_pw),
                        json={"name": f"ui-grants-{uuid.uuid4().hex[:6]}"}).json()["experiment_id"]
    newcomer = f"ui-new-{uuid.uuid4().hex[:6]}"
    newcomer_pw = f"pw-{uuid.uuid4().hex}"
    tag = {"experiment_id": experiment_id, "key": "reviewed", "value": "yes"}
    context = browser.new_context()
    try:
        page = context.new_page()
        reset_pw = f"reset-{uuid.uuid4().hex}"
        page.on("dialog", lambda dialog: dialog.accept(reset_pw) if dialog.type == "prompt" else dialog.accept())
        _sign_in(page, url, ADMIN, ADMIN_PASSWORD, "/admin/users")
        expect(page.get_by_role("heading", name="Users")).to_be_visible()
        page.get_by_label("Username").fill(newcomer)
        page.get_by_label("Password").fill("too-short")
        page.get_by_role("button", name="Create user").click()
        # The browser's own check keeps a short password from being sent at all.
        assert requests.get(f"{url}/api/2.0/mlflow/users/get", params={"username": newcomer},
                            auth=(ADMIN, ADMIN_PASSWORD)).status_code == 404
        page.get_by_label("Password").fill(newcomer_pw)
        page.get_by_role("button", name="Create user").click()
        expect(page.get_by_role("status")).to_have_text(f"User {newcomer} created.")
        row = page.locator(f"tr[data-user='{newcomer}']")
        expect(row).to_be_visible()
        assert api(url, "POST", "experiments/set-experiment-tag", (newcomer, newcomer_pw),
                   json=tag).status_code == 403

        row.get_by_role("link", name=newcomer).click()
        expect(page.get_by_role("heading", name=f"Permissions of {newcomer}")).to_be_visible()
        page.get_by_label("Resource type", exact=True).select_option("experiment")
        page.get_by_label("Resource", exact=True).fill(experiment_id)
        page.get_by_label("Permission", exact=True).select_option("EDIT")
        page.get_by_role("button", name="Grant").click()
        grant = page.locator(f"tr[data-grant='experiment:{experiment_id}']")
        expect(grant).to_contain_text("EDIT")
        expect(grant).to_contain_text("direct")
        assert api(url, "POST", "experiments/set-experiment-tag", (newcomer, newcomer_pw),
                   json=tag).status_code == 200
        grant.get_by_role("button", name="Revoke").click()
        expect(grant).to_have_count(0)
        assert api(url, "POST", "experiments/set-experiment-tag", (newcomer, newcomer_pw),
                   json=tag).status_code == 403

        page.get_by_role("link", name="Users").first.click()
        row = page.locator(f"tr[data-user='{newcomer}']")
        row.get_by_role("button", name="Make administrator").click()
        expect(row.get_by_role("button", name="Remove administrator")).to_be_visible()
        expect(row).to_contain_text("administrator")
        me = requests.get(f"{url}/api/2.0/mlflow/users/current", auth=(newcomer, newcomer_pw))
        assert me.json()["user"]["is_admin"] is True
        row.get_by_role("button", name="Remove administrator").click()
        expect(row.get_by_role("button", name="Make administrator")).to_be_visible()
        me = requests.get(f"{url}/api/2.0/mlflow/users/current", auth=(newcomer, newcomer_pw))
        assert me.json()["user"]["is_admin"] is False
        row.get_by_role("button", name="Reset password").click()
        expect(page.get_by_role("status")).to_have_text(f"Password of {newcomer} changed.")
        assert requests.get(f"{url}/api/2.0/mlflow/users/current", auth=(newcomer, newcomer_pw)).status_code == 401
        newcomer_pw = reset_pw
        assert requests.get(f"{url}/api/2.0/mlflow/users/current", auth=(newcomer, newcomer_pw)).status_code == 200
        row.get_by_role("button", name="Delete").click()
        expect(row).to_have_count(0)
        gone = requests.get(f"{url}/api/2.0/mlflow/users/current", auth=(newcomer, newcomer_pw))
        assert gone.status_code == 401
    finally:
        context.close()


def test_the_admin_pages_are_refused_to_other_users(auth_server, browser):
    from playwright.sync_api import expect

    url = auth_server.url
    username, password = new_user(url, "ui-plain")
    context = browser.new_context()
    try:
        page = context.new_page()
        _sign_in(page, url, username, password, "/admin/users")
        expect(page.get_by_role("alert")).to_contain_text("Permission denied")
        expect(page.get_by_test_id("current-user-box").get_by_role("link", name="Users")).to_have_count(0)
        expect(page.locator("table[aria-label='Users']")).to_have_count(0)
    finally:
        context.close()


def test_prompt_grants_apply_to_the_prompt_of_that_name(url):
    owner, owner_pw = new_user(url, "prompt-owner")
    writer, writer_pw = new_user(url, "prompt-writer")
    name = f"greeting-{uuid.uuid4().hex[:6]}"
    created = api(url, "POST", "registered-models/create", (owner, owner_pw), json={
        "name": name, "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]})
    assert created.status_code == 200, created.text
    tag = {"name": name, "key": "stage", "value": "draft"}
    assert api(url, "POST", "registered-models/set-tag", (writer, writer_pw), json=tag).status_code == 403
    granted = requests.post(f"{url}/api/3.0/mlflow/users/permissions/grant", auth=(owner, owner_pw),
                            json={"username": writer, "resource_type": "prompt",
                                  "resource_id": name, "permission": "EDIT"})
    assert granted.status_code == 200, granted.text
    assert api(url, "POST", "registered-models/set-tag", (writer, writer_pw), json=tag).status_code == 200
