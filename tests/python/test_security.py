"""The security layer of ``mlox server`` (MLflow 3.5's flags and defaults) and one regression
request per class of MLflow CVE that needs no authentication.

The layer: the ``Host`` check against DNS rebinding (``--allowed-hosts``), the refusal of
cross-origin API writes and the CORS answers (``--cors-allowed-origins``), ``X-Frame-Options``
and ``X-Content-Type-Options`` (``--x-frame-options``), all switched off by
``--disable-security-middleware``; and the JSON ``Content-Type`` MLflow requires of API writes.

The CVE table: each row is the request that exploited the CVE in MLflow, sent to a server of
our own whose artifact root and the directories around it we can watch, so every row proves
both the refusal (the status the CVE's fix gives) and that no file outside the artifact root
was read or written.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
import uuid
from pathlib import Path

import pytest
import requests

from conftest import launch_mlox

pytestmark = [pytest.mark.mlox_only, pytest.mark.standalone]

API = "/api/2.0/mlflow"
AJAX = "/ajax-api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
INVALID_HOST = "Invalid Host header - possible DNS rebinding attack detected"
CROSS_ORIGIN_BLOCKED = "Cross-origin request blocked"
# Webhooks to private addresses and over http are what the CVE forbids; the suite's launcher
# allows both for the webhook tests, so this module's servers take them away again.
STRICT_WEBHOOKS = {"MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": None, "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": None}


def _start(tmp_path: Path, *flags: str, env_extra=None):
    return launch_mlox(tmp_path, f"sqlite:///{tmp_path / 'mlox.db'}", *flags, env_extra=env_extra)


@pytest.fixture
def start(tmp_path):
    """``start(*flags, env_extra=…)``: a fresh mlox server, stopped after the test."""
    started = []

    def make(*flags: str, env_extra=None):
        workdir = tmp_path / f"server-{len(started)}"
        workdir.mkdir()
        server = _start(workdir, *flags, env_extra={**STRICT_WEBHOOKS, **(env_extra or {})})
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def _json_post(url: str, path: str, body: dict, **kw):
    return requests.post(url + path, json=body, timeout=30, **kw)


# --------------------------------------------------------------------------- Host header


def test_a_foreign_host_header_is_refused_as_dns_rebinding(start):
    server = start()
    r = requests.get(server.url + "/", headers={"Host": "attacker.example"}, timeout=30)
    assert r.status_code == 403
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text == INVALID_HOST
    r = requests.post(
        server.url + f"{API}/experiments/create",
        json={"name": "rebound"},
        headers={"Host": "attacker.example:5000"},
        timeout=30,
    )
    assert (r.status_code, r.text) == (403, INVALID_HOST)
    # A name that starts like a private address is still a name the attacker controls.
    r = requests.get(server.url + f"{API}/experiments/search", headers={"Host": "10.attacker.example"}, timeout=30)
    assert r.status_code == 403
    # Nothing was created by the refused write.
    r = requests.get(server.url + f"{API}/experiments/get-by-name", params={"experiment_name": "rebound"}, timeout=30)
    assert r.status_code == 404


@pytest.mark.parametrize("host", ["localhost:5000", "127.0.0.1:5000", "[::1]:5000", "10.1.2.3:5000", "192.168.0.9", "172.20.0.4:80"])
def test_local_and_private_hosts_are_allowed_by_default(start_once, host):
    r = requests.get(start_once.url + f"{API}/experiments/search", params={"max_results": 1}, headers={"Host": host}, timeout=30)
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def start_once(tmp_path_factory):
    """One default-configured server for the read-only checks of this module."""
    workdir = tmp_path_factory.mktemp("security-defaults")
    server = _start(workdir, env_extra=STRICT_WEBHOOKS)
    yield server
    server.stop()


@pytest.mark.parametrize("path", ["/health", "/version"])
def test_health_and_version_answer_any_host(start_once, path):
    r = requests.get(start_once.url + path, headers={"Host": "lb-probe.internal"}, timeout=30)
    assert r.status_code == 200


def test_allowed_hosts_replace_the_defaults_and_star_turns_the_check_off(start):
    named = start("--allowed-hosts", "mlflow.example.com,*.corp.example")
    for host, status in [
        ("mlflow.example.com", 200),
        ("ci.corp.example", 200),
        # A pattern without a port admits no port, as in MLflow.
        ("ci.corp.example:8080", 403),
        ("localhost:5000", 403),
        ("evil.example", 403),
    ]:
        r = requests.get(named.url + f"{API}/experiments/search", headers={"Host": host}, timeout=30)
        assert r.status_code == status, (host, r.text)
    # The address the server listens on is always reachable.
    assert requests.get(named.url + f"{API}/experiments/search", timeout=30).status_code == 200

    any_host = start("--allowed-hosts", "*")
    r = requests.get(any_host.url + f"{API}/experiments/search", headers={"Host": "attacker.example"}, timeout=30)
    assert r.status_code == 200


def test_allowed_hosts_come_from_the_environment_too(start):
    server = start(env_extra={"MLFLOW_SERVER_ALLOWED_HOSTS": "mlflow.example.com"})
    ok = requests.get(server.url + f"{API}/experiments/search", headers={"Host": "mlflow.example.com"}, timeout=30)
    refused = requests.get(server.url + f"{API}/experiments/search", headers={"Host": "localhost"}, timeout=30)
    assert (ok.status_code, refused.status_code) == (200, 403)


# --------------------------------------------------------------------------- CORS


def test_cross_origin_writes_are_blocked_and_reads_are_not(start_once):
    url = start_once.url
    evil = {"Origin": "https://evil.example"}
    r = _json_post(url, f"{API}/experiments/create", {"name": f"cors-{uuid.uuid4().hex}"}, headers=evil)
    assert (r.status_code, r.text) == (403, CROSS_ORIGIN_BLOCKED)
    assert "Access-Control-Allow-Origin" not in r.headers
    for method in ("DELETE", "PATCH", "PUT"):
        r = requests.request(method, url + f"{API}/registered-models/update", json={}, headers=evil, timeout=30)
        assert r.status_code == 403, method
    r = requests.put(url + f"{ARTIFACTS}/cors/x.txt", data=b"x", headers=evil, timeout=30)
    assert r.status_code == 403
    r = requests.post(url + f"{AJAX}/experiments/search", json={}, headers=evil, timeout=30)
    assert r.status_code == 403
    # Reading is harmless: the browser keeps the answer from the page without CORS headers.
    r = requests.get(url + f"{API}/experiments/search", params={"max_results": 1}, headers=evil, timeout=30)
    assert r.status_code == 200
    assert "Access-Control-Allow-Origin" not in r.headers


def test_loopback_origins_and_the_servers_own_origin_may_write(start_once):
    url = start_once.url
    r = _json_post(url, f"{API}/experiments/search", {}, headers={"Origin": "http://localhost:3000"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    # The web UI opened at the server's private address writes with that address as origin.
    own = {"Host": "10.1.2.3:5000", "Origin": "http://10.1.2.3:5000"}
    assert _json_post(url, f"{API}/experiments/search", {}, headers=own).status_code == 200
    other_port = {"Host": "10.1.2.3:5000", "Origin": "http://10.1.2.3:5001"}
    assert _json_post(url, f"{API}/experiments/search", {}, headers=other_port).status_code == 403
    # No Origin at all (the MLflow client, curl) is not a cross-origin request.
    assert _json_post(url, f"{API}/experiments/search", {}).status_code == 200


def test_an_api_preflight_is_answered_with_204(start_once):
    asked = {
        "Origin": "http://localhost:3000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    r = requests.options(start_once.url + f"{API}/experiments/create", headers=asked, timeout=30)
    assert r.status_code == 204
    assert r.content == b""
    assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert r.headers["Access-Control-Allow-Headers"].lower() == "content-type"
    r = requests.options(
        start_once.url + f"{API}/experiments/create",
        headers={**asked, "Origin": "https://evil.example"},
        timeout=30,
    )
    assert r.status_code == 204
    assert "Access-Control-Allow-Origin" not in r.headers


def test_explicit_origins_get_credentialed_cors_and_star_gets_plain_cors(start):
    listed = start("--cors-allowed-origins", "https://app.example.com,https://*.tools.example")
    for origin, status in [("https://app.example.com", 200), ("https://ci.tools.example", 200), ("https://evil.example", 403)]:
        r = _json_post(listed.url, f"{API}/experiments/search", {}, headers={"Origin": origin})
        assert r.status_code == status, origin
        if status == 200:
            assert r.headers["Access-Control-Allow-Origin"] == origin
            assert r.headers["Access-Control-Allow-Credentials"] == "true"

    anyone = start(env_extra={"MLFLOW_SERVER_CORS_ALLOWED_ORIGINS": "*"})
    r = _json_post(anyone.url, f"{API}/experiments/search", {}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in r.headers


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize("path", ["/", "/health", f"{API}/experiments/search", f"{API}/no-such-route", "/static-files/none.js"])
def test_every_answer_carries_the_security_headers(start_once, path):
    r = requests.get(start_once.url + path, timeout=30)
    assert r.headers["X-Content-Type-Options"] == "nosniff", path
    assert r.headers["X-Frame-Options"] == "SAMEORIGIN", path


def test_x_frame_options_deny_and_none(start):
    deny = start("--x-frame-options", "DENY")
    assert requests.get(deny.url + "/", timeout=30).headers["X-Frame-Options"] == "DENY"
    none = start(env_extra={"MLFLOW_SERVER_X_FRAME_OPTIONS": "NONE"})
    r = requests.get(none.url + "/", timeout=30)
    assert "X-Frame-Options" not in r.headers
    assert r.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "flags, env",
    [(["--disable-security-middleware"], {}), ([], {"MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE": "true"})],
    ids=["flag", "env"],
)
def test_disabling_the_middleware_turns_every_guard_off(start, flags, env):
    server = start(*flags, env_extra=env)
    foreign = {"Host": "attacker.example", "Origin": "https://evil.example"}
    r = _json_post(server.url, f"{API}/experiments/search", {}, headers=foreign)
    assert r.status_code == 200
    assert "X-Frame-Options" not in r.headers
    assert "Access-Control-Allow-Origin" not in r.headers
    assert "security middleware disabled" in server.log_text()


def test_only_the_string_true_disables_the_middleware(start):
    server = start(env_extra={"MLFLOW_SERVER_DISABLE_SECURITY_MIDDLEWARE": "1"})
    r = requests.get(server.url + "/", headers={"Host": "attacker.example"}, timeout=30)
    assert r.status_code == 403


# --------------------------------------------------------------------------- JSON writes


def test_api_writes_must_be_json(start_once):
    url = start_once.url + f"{API}/experiments/create"
    body = json.dumps({"name": f"plain-{uuid.uuid4().hex}"})
    r = requests.post(url, data=body, headers={"Content-Type": "text/plain"}, timeout=30)
    assert r.status_code == 400
    assert r.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "Bad Request. Content-Type must be one of ['application/json'].",
    }
    r = requests.post(url, data=body, timeout=30)
    assert (r.status_code, r.json()["message"]) == (400, "Bad Request. Content-Type header is missing.")
    # The type is never echoed back (CVE-2023-6568's reflected XSS).
    r = requests.post(url, data=body, headers={"Content-Type": "<script>alert(1)</script>"}, timeout=30)
    assert r.status_code == 400 and "<script>" not in r.text
    r = requests.post(url, data=body, headers={"Content-Type": "application/json; charset=utf-8"}, timeout=30)
    assert r.status_code == 200, r.text


def test_artifact_uploads_keep_their_own_content_types(start_once):
    url = start_once.url
    exp = _json_post(url, f"{API}/experiments/create", {"name": f"ct-{uuid.uuid4().hex}"}).json()["experiment_id"]
    run_id = _json_post(url, f"{API}/runs/create", {"experiment_id": exp}).json()["run"]["info"]["run_id"]
    r = requests.post(
        url + f"{AJAX}/upload-artifact", params={"run_uuid": run_id, "path": "a.txt"}, data=b"hello", headers={"Content-Type": "text/plain"}, timeout=30
    )
    assert r.status_code == 200, r.text
    r = requests.put(url + f"{ARTIFACTS}/ct/b.bin", data=b"\x00\x01", headers={"Content-Type": "application/octet-stream"}, timeout=30)
    assert r.status_code == 200, r.text


def test_cve_2023_43472_drive_by_text_plain_post_is_refused(start):
    """A page on another origin may send a ``text/plain`` POST without a preflight."""
    guarded = start()
    name = f"csrf-{uuid.uuid4().hex}"
    exp = _json_post(guarded.url, f"{API}/experiments/create", {"name": name}).json()["experiment_id"]
    drive_by = json.dumps({"experiment_id": exp, "new_name": "pwned"})
    headers = {"Content-Type": "text/plain", "Origin": "https://evil"}
    r = requests.post(guarded.url + f"{API}/experiments/update", data=drive_by, headers=headers, timeout=30)
    assert r.status_code == 403
    # Without the middleware the JSON requirement alone still refuses it.
    unguarded = start("--disable-security-middleware")
    exp2 = _json_post(unguarded.url, f"{API}/experiments/create", {"name": name}).json()["experiment_id"]
    r = requests.post(
        unguarded.url + f"{API}/experiments/update",
        data=json.dumps({"experiment_id": exp2, "new_name": "pwned"}),
        headers=headers,
        timeout=30,
    )
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    for server, exp_id in ((guarded, exp), (unguarded, exp2)):
        got = requests.get(server.url + f"{API}/experiments/get", params={"experiment_id": exp_id}, timeout=30).json()
        assert got["experiment"]["name"] == name


def test_the_official_client_works_behind_the_middleware(start_once):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=start_once.url, registry_uri=start_once.url)
    exp = client.create_experiment(f"client-{uuid.uuid4().hex}")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "loss", 0.5, step=1)
    client.log_param(run.info.run_id, "lr", "0.1")
    client.set_terminated(run.info.run_id)
    got = client.get_run(run.info.run_id)
    assert got.data.metrics == {"loss": 0.5}
    assert got.data.params == {"lr": "0.1"}
    name = f"model-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    client.set_registered_model_alias(name, "champion", client.create_model_version(name, f"runs:/{run.info.run_id}/m", run.info.run_id).version)
    assert client.get_model_version_by_alias(name, "champion").version == "1"


# --------------------------------------------------------------------------- CVE table


class Watched:
    """A server whose artifact root sits next to a secret file, to prove no request read the
    secret or /etc/passwd and none wrote a file outside the artifact root."""

    def __init__(self, server, secret: Path, marker: str):
        self.server = server
        self.url = server.url
        self.secret = secret
        self.secret_text = secret.read_text()
        self.marker = marker
        self.artifacts = (server.workdir / "artifacts").resolve()

    def files_outside_artifacts(self) -> set[str]:
        seen = set()
        for dirpath, dirnames, filenames in os.walk(self.server.workdir.parent):
            here = Path(dirpath).resolve()
            if here == self.artifacts or self.artifacts in here.parents:
                dirnames[:] = []
                continue
            seen.update(str(here / f) for f in filenames if not f.startswith(("mlox.db", "server.log")))
        return seen

    def assert_nothing_leaked(self, responses, before: set[str]):
        for r in responses:
            body = r.content if hasattr(r, "content") else r[1]
            assert self.secret_text.encode() not in body
            assert b"root:x:0:0" not in body
        new = self.files_outside_artifacts() - before
        assert not new, f"files appeared outside the artifact root: {sorted(new)}"
        assert self.secret.read_text() == self.secret_text
        for place in (Path("/tmp") / self.marker, Path("/") / self.marker, Path.home() / ".ssh" / self.marker):
            assert not place.exists(), place


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    root = tmp_path_factory.mktemp("cve")
    workdir = root / "server"
    workdir.mkdir()
    secret = root / "secret.txt"
    secret.write_text(f"mlox-canary-{uuid.uuid4().hex}")
    server = _start(workdir, env_extra=STRICT_WEBHOOKS)
    yield Watched(server, secret, f"mlox-escape-{uuid.uuid4().hex[:12]}")
    server.stop()


def _raw(url: str, method: str, target: str, body: bytes | None = None, headers: dict | None = None):
    """The request line byte for byte: no client-side normalisation of dot segments."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request(method, target, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def _new_model(w: Watched) -> str:
    name = f"cve-{uuid.uuid4().hex[:10]}"
    assert _json_post(w.url, f"{API}/registered-models/create", {"name": name}).status_code == 200
    return name


def _new_run(w: Watched) -> str:
    exp = _json_post(w.url, f"{API}/experiments/create", {"name": f"cve-{uuid.uuid4().hex}"}).json()["experiment_id"]
    return _json_post(w.url, f"{API}/runs/create", {"experiment_id": exp}).json()["run"]["info"]["run_id"]


def _create_version(w: Watched, source: str, **extra):
    return _json_post(w.url, f"{API}/model-versions/create", {"name": _new_model(w), "source": source, **extra})


def _refused(r, status=400, error_code="INVALID_PARAMETER_VALUE"):
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
    if error_code:
        assert r.json()["error_code"] == error_code, r.text
    return r


def _raw_refused(status_and_body, status=400):
    got, body = status_and_body
    assert got == status, (got, body[:300])
    return status_and_body


def cve_2023_1177_model_source_lfi(w):
    name = _new_model(w)
    created = _refused(_json_post(w.url, f"{API}/model-versions/create", {"name": name, "source": "file:///etc/"}))
    read = requests.get(w.url + "/model-versions/get-artifact", params={"name": name, "version": "1", "path": "passwd"}, timeout=30)
    _refused(read, 404, "RESOURCE_DOES_NOT_EXIST")
    return [created, read]


def cve_2023_1176_absolute_source_is_no_existence_oracle(w):
    answers = [_refused(_create_version(w, source)) for source in ("/etc/passwd", "/etc/mlox-no-such-file")]
    first, second = (r.json()["message"] for r in answers)
    assert first.replace("/etc/passwd", "X") == second.replace("/etc/mlox-no-such-file", "X")
    return answers


def cve_2023_2356_relative_remote_source(w):
    return [
        _refused(_create_version(w, source))
        for source in (
            "mlflow-artifacts://h/../../../../etc",
            "http://h/api/2.0/mlflow-artifacts/artifacts/../../",
            "s3:/b/../../x",
        )
    ]


def cve_2023_2780_backslash_source(w):
    return [_refused(_create_version(w, "file://..\\..\\etc")), _refused(_create_version(w, "\\..\\etc"))]


def cve_2023_30172_get_artifact_path(w):
    run_id = _new_run(w)
    answers = []
    for path in ("../../../../etc/passwd", "/etc/passwd", str(w.secret), "..%2f..%2fsecret.txt"):
        answers.append(_refused(requests.get(w.url + "/get-artifact", params={"run_uuid": run_id, "path": path}, timeout=30)))
    return answers


def cve_2023_6015_artifact_put_traversal(w):
    m = w.marker
    return [
        _raw_refused(_raw(w.url, "PUT", f"{ARTIFACTS}/{p}", b"pwned"))
        for p in (f"..%2f..%2ftmp%2f{m}", f"%252e%252e%252f%252e%252e%252ftmp%252f{m}", f"../../../{m}")
    ]


def cve_2023_6018_writes_leave_no_root(w):
    run_id = _new_run(w)
    m = w.marker
    answers = [
        _raw_refused(_raw(w.url, "PUT", f"{ARTIFACTS}/a/../../../{m}", b"pwned")),
        _raw_refused(_raw(w.url, "PUT", f"{ARTIFACTS}/%2e%2e/%2e%2e/{m}", b"pwned")),
        _refused(requests.post(w.url + f"{AJAX}/upload-artifact", params={"run_uuid": run_id, "path": f"../../{m}"}, data=b"x", timeout=30)),
        _refused(
            requests.post(w.url + f"{AJAX}/upload-artifact", params={"run_uuid": run_id, "path": f"../../../.ssh/{m}"}, data=b"x", timeout=30)
        ),
    ]
    return answers


def cve_2023_6831_artifact_delete_traversal(w):
    m = w.marker
    return [
        _raw_refused(_raw(w.url, "DELETE", f"{ARTIFACTS}/{p}"))
        for p in (f"..\\..\\{m}", f"..%5c..%5c{m}", f"..%2f..%2f{m}", f"%252e%252e%252f{m}", f"../../{m}")
    ]


def cve_2023_6909_source_validation_bypass(w):
    return [
        _refused(_create_version(w, source))
        for source in (
            "file:///tmp#/../../etc",
            "\\..\\etc",
            "http://h/%252e%252e/%252e%252e/etc",
            "s3://bucket/x%00/y",
            "mlflow-artifacts:/%2e%2e/%2e%2e/etc",
        )
    ]


def cve_2023_6974_ssrf_source(w):
    return [
        _refused(_create_version(w, "http://169.254.169.254/latest/meta-data/")),
        _refused(_json_post(w.url, f"{API}/experiments/create", {"name": f"ssrf-{uuid.uuid4().hex}", "artifact_location": "http://169.254.169.254/latest/"})),
    ]


def cve_2024_1594_fragment_and_params_in_locations(w):
    answers = []
    for location in ("file:///tmp#/../../etc", "http://h/x;/../../etc"):
        answers.append(_refused(_json_post(w.url, f"{API}/experiments/create", {"name": f"frag-{uuid.uuid4().hex}", "artifact_location": location})))
    answers.append(_refused(_create_version(w, "file:///tmp#/../../etc")))
    return answers


def cve_2024_3573_local_source_spellings(w):
    return [_refused(_create_version(w, source)) for source in ("file:/etc", "C:/x", "/etc", "etc", "file:etc", "FILE:///etc")]


def cve_2024_8859_dbfs_traversal(w):
    return [
        _refused(_json_post(w.url, f"{API}/experiments/create", {"name": f"dbfs-{uuid.uuid4().hex}", "artifact_location": location}))
        for location in ("dbfs:/../../etc", "dbfs:/a/../../../etc")
    ]


def cve_2025_0453_graphql_batching_and_aliases(w):
    query = "{ mlflowSearchRuns(input: {experimentIds: [\"0\"]}) { runs { info { runId } } } }"
    batch = requests.post(w.url + "/graphql", json=[{"query": query}] * 20, timeout=30)
    assert batch.status_code == 400, batch.text
    assert batch.json()["message"] == "Batched GraphQL requests are not supported; send one query per request."
    aliases = " ".join(f"a{i}: mlflowSearchRuns(input: {{experimentIds: [\"0\"]}}) {{ runs {{ info {{ runId }} }} }}" for i in range(100))
    many = requests.post(w.url + "/graphql", json={"query": "{ " + aliases + " }"}, timeout=30)
    # GraphQL's own shape, as MLflow answers it (200): nothing executed, the limit named.
    assert many.status_code == 200, many.text
    assert many.json()["data"] is None
    assert "at most 10 root fields" in many.json()["errors"][0]
    nested = " ".join(f"a{i}: runs {{ info {{ runId }} }}" for i in range(11))
    aliased = requests.post(
        w.url + "/graphql", json={"query": f'{{ mlflowSearchRuns(input: {{experimentIds: ["0"]}}) {{ {nested} }} }}'}, timeout=30
    )
    assert aliased.status_code == 200, aliased.text
    assert aliased.json()["data"] is None
    assert "aliases" in aliased.json()["errors"][0]
    return [batch, many, aliased]


def cve_2025_14279_dns_rebinding(w):
    r = requests.get(w.url + f"{API}/experiments/search", headers={"Host": "attacker.example"}, timeout=30)
    assert (r.status_code, r.text) == (403, INVALID_HOST)
    return [r]


def cve_2026_2393_webhook_ssrf(w):
    answers = []
    for url in ("http://169.254.169.254/", "https://169.254.169.254/latest/meta-data/", "https://127.0.0.1:5000/", "https://[::1]/"):
        body = {"name": f"hook-{uuid.uuid4().hex[:8]}", "url": url, "events": [{"entity": "registered_model", "action": "created"}]}
        answers.append(_refused(_json_post(w.url, "/api/3.0/mlflow/webhooks", body)))
    return answers


def cve_2026_2614_prompt_tag_source_bypass(w):
    tags = [{"key": "mlflow.prompt.is_prompt", "value": "true"}]
    return [_refused(_create_version(w, source, tags=tags)) for source in ("/etc", "file:///etc/passwd", "../../etc")]


def cve_2025_52967_gateway_proxy_ssrf(w):
    """MLflow's UI proxied requests to a gateway path the caller named. mlox has no such proxy,
    so nothing is fetched: a listener standing in for the metadata service sees no request."""
    import http.server
    import threading

    seen = []

    class Listener(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args):
            pass

    listener = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Listener)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    target = f"http://127.0.0.1:{listener.server_address[1]}/latest/meta-data/"
    try:
        answers = [
            requests.get(w.url + f"{AJAX}/gateway-proxy", params={"gateway_path": target}, timeout=30),
            requests.get(w.url + f"{AJAX}/gateway-proxy", params={"gateway_path": "http://169.254.169.254/"}, timeout=30),
            requests.post(w.url + f"{AJAX}/gateway-proxy", json={"gateway_path": target}, timeout=30),
        ]
    finally:
        listener.shutdown()
        listener.server_close()
    for answer in answers:
        assert answer.status_code in (400, 404), answer.text
        assert answer.json()["error_code"] in ("ENDPOINT_NOT_FOUND", "INVALID_PARAMETER_VALUE")
    assert seen == []
    return answers


CVE_ROWS = {
    "1-CVE-2023-1177": cve_2023_1177_model_source_lfi,
    "2-CVE-2023-1176": cve_2023_1176_absolute_source_is_no_existence_oracle,
    "3-CVE-2023-2356": cve_2023_2356_relative_remote_source,
    "4-CVE-2023-2780": cve_2023_2780_backslash_source,
    "5-CVE-2023-30172": cve_2023_30172_get_artifact_path,
    "7-CVE-2023-6015": cve_2023_6015_artifact_put_traversal,
    "8-CVE-2023-6018": cve_2023_6018_writes_leave_no_root,
    "11-CVE-2023-6831": cve_2023_6831_artifact_delete_traversal,
    "12-CVE-2023-6909": cve_2023_6909_source_validation_bypass,
    "13-CVE-2023-6974": cve_2023_6974_ssrf_source,
    "14-CVE-2024-1594": cve_2024_1594_fragment_and_params_in_locations,
    "15-CVE-2024-3573": cve_2024_3573_local_source_spellings,
    "20-CVE-2024-8859": cve_2024_8859_dbfs_traversal,
    "21-CVE-2025-0453": cve_2025_0453_graphql_batching_and_aliases,
    "24-CVE-2025-52967": cve_2025_52967_gateway_proxy_ssrf,
    "25-CVE-2025-14279": cve_2025_14279_dns_rebinding,
    "26-CVE-2026-2393": cve_2026_2393_webhook_ssrf,
    "27-CVE-2026-2614": cve_2026_2614_prompt_tag_source_bypass,
}


@pytest.mark.parametrize("row", list(CVE_ROWS), ids=list(CVE_ROWS))
def test_cve_regression(watched, row):
    before = watched.files_outside_artifacts()
    responses = CVE_ROWS[row](watched)
    assert responses, "every row sends at least one request"
    watched.assert_nothing_leaked(responses, before)
