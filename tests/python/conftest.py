"""Black-box compatibility suite: the official ``mlflow`` client against a live server.

One server is started per test session, on a free port, with a fresh SQLite
backend store and a fresh artifact root in a temporary directory. Every test
creates its own uniquely named experiments / models, so tests are independent
and may run in any order against the shared server.

Targets (env ``MLOX_TEST_TARGET``):

* ``mlox`` (default) -- the binary from ``MLOX_BIN`` (default ``<repo>/target/debug/mlox``).
* ``mlflow``         -- the reference ``mlflow server`` (from the same environment as
  the test runner, or ``MLOX_VENV``), used to validate that every assertion here
  describes real MLflow behaviour.

``MLOX_TEST_SERVER_URL`` points the suite at an already running server instead
(tests that inspect the server's artifact directory are then skipped).

Storage (the same suite runs on every combination):

* ``MLOX_TEST_BACKEND``   -- ``sqlite`` (default) or ``postgresql``: a fresh database on the
  PostgreSQL server at ``MLOX_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432``),
  dropped afterwards.
* ``MLOX_TEST_ARTIFACTS`` -- ``local`` (default, proxied to a directory), ``s3`` (proxied to an
  S3 bucket) or ``s3-direct`` (``--no-serve-artifacts``: the client writes to the bucket
  itself). The S3 server is ``moto_server`` from the suite's venv.

Markers:

* ``mlox_only`` -- behaviour mlox must have where MLflow itself falls short
  (e.g. a 5xx for bad input); skipped for the ``mlflow`` target.
* ``traces``    -- trace retrieval; skipped when ``MLOX_TEST_TRACES=0``.
* ``heavy``     -- slower end-to-end workflows (model logging, large uploads).
* ``proxied_artifacts`` -- drives the server's artifact proxy; skipped with ``s3-direct``.
* ``standalone`` -- starts its own servers, so the session's storage settings do not matter.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

# The client must fail fast on a wrong 5xx instead of retrying with back-off for
# minutes, and must not hang forever on a stuck server. These are read by the
# client at request time, so setting them before any test runs is enough.
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "0"
os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = os.environ.get("MLOX_TEST_HTTP_TIMEOUT", "60")
# No background telemetry / git probing noise in the client.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGET = os.environ.get("MLOX_TEST_TARGET", "mlox").strip().lower()
if TARGET not in ("mlox", "mlflow"):
    raise pytest.UsageError(f"MLOX_TEST_TARGET must be 'mlox' or 'mlflow', got {TARGET!r}")

# mlox must answer /health within 30 s; the reference server boots several Python
# workers and needs longer on small machines.
HEALTH_TIMEOUT_S = float(
    os.environ.get("MLOX_TEST_STARTUP_TIMEOUT", "30" if TARGET == "mlox" else "120")
)
DEFAULT_TEST_TIMEOUT_S = 300

BACKEND = os.environ.get("MLOX_TEST_BACKEND", "sqlite").strip().lower()
if BACKEND not in ("sqlite", "postgresql"):
    raise pytest.UsageError(f"MLOX_TEST_BACKEND must be 'sqlite' or 'postgresql', got {BACKEND!r}")
ARTIFACTS = os.environ.get("MLOX_TEST_ARTIFACTS", "local").strip().lower()
if ARTIFACTS not in ("local", "s3", "s3-direct"):
    raise pytest.UsageError(f"MLOX_TEST_ARTIFACTS must be 'local', 's3' or 's3-direct', got {ARTIFACTS!r}")
PG_URL = os.environ.get("MLOX_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432").rstrip("/")
S3_BUCKET = "mlox-test"


def pytest_configure(config):
    for line in (
        "mlox_only: behaviour mlox must have where MLflow differs; skipped for the mlflow target",
        "traces: trace retrieval through the server; skipped when MLOX_TEST_TRACES=0",
        "heavy: slower end-to-end workflow (model logging, large uploads)",
        "proxied_artifacts: drives the artifact proxy; skipped when clients write to S3 directly",
        "standalone: starts its own servers; independent of the session server's storage",
        "browser: drives the web UI in Chromium (given to every test that uses the browser fixture)",
    ):
        config.addinivalue_line("markers", line)


def pytest_collection_modifyitems(config, items):
    skip_mlox_only = pytest.mark.skip(
        reason="documents behaviour mlox must have; the reference MLflow server differs"
    )
    skip_traces = pytest.mark.skip(reason="trace retrieval switched off (MLOX_TEST_TRACES=0)")
    skip_proxy = pytest.mark.skip(reason="artifacts are not proxied (MLOX_TEST_ARTIFACTS=s3-direct)")
    has_timeout_plugin = config.pluginmanager.hasplugin("timeout")
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
        if TARGET == "mlflow" and item.get_closest_marker("mlox_only"):
            item.add_marker(skip_mlox_only)
        if item.get_closest_marker("traces") and os.environ.get("MLOX_TEST_TRACES", "1") == "0":
            item.add_marker(skip_traces)
        if ARTIFACTS == "s3-direct" and item.get_closest_marker("proxied_artifacts"):
            item.add_marker(skip_proxy)
        if has_timeout_plugin and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT_S))


# --------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mlflow_executable() -> str:
    venv = os.environ.get("MLOX_VENV")
    candidates = []
    if venv:
        candidates.append(Path(venv).resolve() / "bin" / "mlflow")
    candidates.append(Path(sys.executable).parent / "mlflow")
    for c in candidates:
        if c.exists():
            return str(c)
    found = shutil.which("mlflow")
    if found:
        return found
    raise pytest.UsageError("cannot find the `mlflow` executable for MLOX_TEST_TARGET=mlflow")


def _venv_bin(name: str) -> str:
    venv = os.environ.get("MLOX_VENV")
    for c in ([Path(venv).resolve() / "bin" / name] if venv else []) + [Path(sys.executable).parent / name]:
        if c.exists():
            return str(c)
    found = shutil.which(name)
    if found:
        return found
    raise pytest.UsageError(f"cannot find `{name}` (install tests/python/requirements.txt)")


class Storage:
    """The backend database and artifact store one server runs on, created for the session."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.pg_database = None
        self.moto = None
        self.s3_env: dict[str, str] = {}
        if BACKEND == "postgresql":
            self.pg_database = PgDatabase()
            self.backend_uri = self.pg_database.uri
        else:
            self.backend_uri = f"sqlite:///{workdir / 'mlox.db'}"
        if ARTIFACTS.startswith("s3"):
            self._start_moto()
        self.s3_prefix = f"s3://{S3_BUCKET}/{workdir.name}"

    def _start_moto(self) -> None:
        import requests

        port = _free_port()
        log = open(self.workdir / "moto.log", "wb")
        self.moto = subprocess.Popen(
            [_venv_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(endpoint, timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or self.moto.poll() is not None:
                    raise RuntimeError(f"moto_server did not start; see {self.workdir / 'moto.log'}")
                time.sleep(0.2)
        self.s3_env = {
            "MLFLOW_S3_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        # The client needs the same settings to read and write the bucket in direct mode.
        os.environ.update(self.s3_env)
        self.s3_client().create_bucket(Bucket=S3_BUCKET)

    def s3_client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_env["MLFLOW_S3_ENDPOINT_URL"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def artifact_flags(self) -> list[str]:
        if ARTIFACTS == "local":
            return ["--artifacts-destination", str(self.workdir / "artifacts"), "--serve-artifacts"]
        if ARTIFACTS == "s3":
            return ["--artifacts-destination", self.s3_prefix, "--serve-artifacts"]
        return ["--default-artifact-root", self.s3_prefix, "--no-serve-artifacts"]

    def close(self) -> None:
        if self.moto is not None and self.moto.poll() is None:
            os.killpg(self.moto.pid, signal.SIGTERM)
            self.moto.wait(timeout=10)
        if self.pg_database is not None:
            self.pg_database.close()


def _server_command(port: int, storage: Storage) -> list[str]:
    common = [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        storage.backend_uri,
        *storage.artifact_flags(),
    ]
    if TARGET == "mlflow":
        return [_mlflow_executable(), "server", *common]
    return [mlox_binary(), "server", *common]


def mlox_binary() -> str:
    binary = Path(os.environ.get("MLOX_BIN", REPO_ROOT / "target" / "debug" / "mlox"))
    if not binary.is_absolute():
        binary = (REPO_ROOT / binary).resolve()
    if not binary.exists():
        raise pytest.UsageError(f"mlox binary not found at {binary} (build it or set MLOX_BIN)")
    return str(binary)


class Server:
    def __init__(self, url: str, workdir: Path, log_path: Path, proc: subprocess.Popen, storage=None):
        self.url = url
        self.workdir = workdir
        self.storage = storage
        # Only a local artifact destination is a directory tests can look into.
        self.artifacts_dir = workdir / "artifacts" if ARTIFACTS == "local" else None
        self.external = proc is None
        self.log_path = log_path
        self.proc = proc

    def log_text(self, start: int = 0, limit: int = 20000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                data = f.read()
        except OSError:
            return ""
        text = data.decode("utf-8", "replace")
        if len(text) > limit:
            text = "...[truncated]...\n" + text[-limit:]
        return text

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flushing, as in a crash or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)


def _wait_healthy(server: Server, timeout: float = HEALTH_TIMEOUT_S) -> None:
    import requests

    deadline = time.monotonic() + timeout
    last_err = None
    while time.monotonic() < deadline:
        if server.proc is not None and server.proc.poll() is not None:
            raise RuntimeError(
                f"server exited with code {server.proc.returncode} before becoming healthy.\n"
                f"--- server log ---\n{server.log_text()}"
            )
        try:
            r = requests.get(f"{server.url}/health", timeout=2)
            if r.status_code == 200:
                return
            last_err = f"HTTP {r.status_code}: {r.text[:200]}"
        except requests.RequestException as e:  # not listening yet
            last_err = repr(e)
        time.sleep(0.2)
    raise RuntimeError(
        f"server not healthy after {timeout:.0f}s (last: {last_err}).\n"
        f"--- server log ---\n{server.log_text()}"
    )


_SERVER: Server | None = None


def launch(
    cmd: list[str], workdir: Path, port: int, storage=None, log_name: str = "server.log", timeout: float = HEALTH_TIMEOUT_S,
    env_extra: dict[str, str | None] | None = None,
) -> Server:
    """Starts a server process in its own process group and waits until it is healthy.
    ``env_extra`` is applied last, over the suite's settings; a ``None`` value unsets a variable."""
    log_path = workdir / log_name
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    env.setdefault("RUST_BACKTRACE", "1")
    # Allow webhooks to reach the local receiver used by the webhook tests.
    env["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"] = "http,https"
    env["MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"] = "true"
    env["MLFLOW_WEBHOOK_CACHE_TTL"] = "1"
    env["MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES"] = "0"
    # MLflow encrypts webhook secrets with a per-process key unless one is given; its several
    # workers then cannot read each other's secrets. A fixed test key keeps them in agreement.
    env.setdefault("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY", "bWxveC10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGVmZ2g=")
    # No test reaches the internet for MLflow's model catalog; tests that price calls give
    # their own catalog file.
    env["MLFLOW_MODEL_CATALOG_URI"] = ""
    env.pop("MLFLOW_TRACKING_URI", None)
    for name, value in (env_extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    srv = Server(f"http://127.0.0.1:{port}", workdir, log_path, proc, storage)
    try:
        _wait_healthy(srv, timeout)
    except Exception:
        srv.stop()
        raise
    return srv


def launch_mlox(
    workdir: Path, backend_uri: str, *extra: str, port: int | None = None, log_name: str = "server.log", artifacts: Path | None = None,
    env_extra: dict[str, str | None] | None = None,
) -> Server:
    """An extra mlox server (a replica, or one to kill); artifacts under ``workdir`` unless given."""
    port = port or _free_port()
    cmd = [
        mlox_binary(), "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", str(artifacts or workdir / "artifacts"), *extra,
    ]
    return launch(cmd, workdir, port, log_name=log_name, env_extra=env_extra)


class PgDatabase:
    """A fresh database on the test PostgreSQL server, dropped by ``close()``."""

    def __init__(self):
        import psycopg2

        self.name = f"mlox_test_{uuid.uuid4().hex[:12]}"
        self.uri = f"{PG_URL}/{self.name}"
        self._connect = lambda: psycopg2.connect(f"{PG_URL}/postgres")
        self._admin(f'CREATE DATABASE "{self.name}"')

    def _admin(self, statement: str) -> None:
        conn = self._connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def close(self) -> None:
        try:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        except Exception as e:  # a leftover test database is not a test failure
            sys.stderr.write(f"could not drop {self.name}: {e}\n")


@pytest.fixture(scope="session")
def server(request, tmp_path_factory):
    """The running server under test (URL, temp dir, log)."""
    global _SERVER
    external = os.environ.get("MLOX_TEST_SERVER_URL")
    if external:
        # An already running server (e.g. under a debugger); its log is not ours.
        workdir = tmp_path_factory.mktemp("external-server")
        srv = Server(external.rstrip("/"), workdir, workdir / "server.log", None)
        _wait_healthy(srv)
        _SERVER = srv
        yield srv
        _SERVER = None
        return
    workdir = tmp_path_factory.mktemp(f"{TARGET}-server")
    (workdir / "artifacts").mkdir()
    log_path = workdir / "server.log"
    port = _free_port()
    storage = Storage(workdir)
    request.addfinalizer(storage.close)
    srv = launch(_server_command(port, storage), workdir, port, storage=storage)
    _SERVER = srv
    yield srv
    srv.stop()
    failed = request.session.testsfailed
    if failed:
        tr = request.config.pluginmanager.get_plugin("terminalreporter")
        text = f"\n===== {TARGET} server log (tail) =====\n{srv.log_text(limit=30000)}\n"
        if tr is not None:
            tr.write_line(text)
        else:
            sys.stderr.write(text)
    _SERVER = None


@pytest.fixture(scope="session")
def server_url(server) -> str:
    """Base URL (``http://127.0.0.1:PORT``) for raw HTTP probes."""
    return server.url


@pytest.fixture(scope="session")
def artifact_root(server) -> str:
    """What new experiments' artifact locations start with: the proxy's scheme, or the bucket
    prefix the client writes to directly."""
    if ARTIFACTS == "s3-direct":
        return server.storage.s3_prefix
    return "mlflow-artifacts:"


@pytest.fixture(scope="session")
def tracking_uri(server) -> str:
    return server.url


@pytest.fixture(scope="session", autouse=True)
def _point_client_at_server(request):
    """Every test talks to the session server through MLFLOW_TRACKING_URI."""
    # Pure collection runs (--collect-only) must not start a server.
    if request.config.getoption("collectonly"):
        yield
        return
    srv = request.getfixturevalue("server")
    import mlflow

    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = srv.url
    mlflow.set_tracking_uri(srv.url)
    mlflow.set_registry_uri(srv.url)
    yield
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


@pytest.fixture(autouse=True)
def _clean_client_state(request):
    """No active run, experiment or autologging leaks from one test to the next."""
    srv = _SERVER
    start = srv.log_size() if srv else 0
    request.node._server_log_start = start
    yield
    import mlflow

    for _ in range(20):
        if mlflow.active_run() is None:
            break
        try:
            mlflow.end_run()
        except Exception:
            pass  # end_run pops the run before telling the server
    try:
        mlflow.autolog(disable=True)
    except Exception:
        pass
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    os.environ.pop("MLFLOW_EXPERIMENT_NAME", None)
    # forget the experiment chosen by set_experiment()
    try:
        import mlflow.tracking.fluent as fluent

        fluent._active_experiment_id = None
    except Exception:
        pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _SERVER is not None:
        start = getattr(item, "_server_log_start", 0)
        text = _SERVER.log_text(start=start, limit=8000)
        if text:
            report.sections.append((f"{TARGET} server log during this test", text))


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def unique_name():
    """``unique_name("exp")`` -> ``"exp-<10 hex>"``; unique across the session."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
def client(tracking_uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@pytest.fixture
def experiment_id(unique_name):
    """A fresh experiment, made the active one for fluent-API calls."""
    import mlflow

    exp = mlflow.set_experiment(unique_name("exp"))
    return exp.experiment_id


class RawApi:
    """Minimal raw-HTTP client for protocol-level assertions."""

    def __init__(self, base_url: str):
        import requests

        self.base = base_url
        self.session = requests.Session()

    def url(self, path: str) -> str:
        return self.base + path

    def request(self, method: str, path: str, **kw):
        kw.setdefault("timeout", 30)
        return self.session.request(method, self.url(path), **kw)

    def get(self, path: str, params=None, **kw):
        return self.request("GET", path, params=params, **kw)

    def post(self, path: str, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def patch(self, path: str, json=None, **kw):
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path: str, json=None, **kw):
        return self.request("DELETE", path, json=json, **kw)

    def put(self, path: str, data=None, **kw):
        return self.request("PUT", path, data=data, **kw)


def assert_not_5xx(resp) -> None:
    """Bad input is the caller's fault: never a server error."""
    assert resp.status_code < 500, (
        f"{resp.request.method} {resp.request.url} -> {resp.status_code} (server error for bad input): "
        f"{resp.text[:500]}"
    )


def assert_api_error(resp, status: int, error_code: str) -> dict:
    """Assert an MLflow-style JSON error: HTTP status + ``error_code`` (+ a message)."""
    assert_not_5xx(resp)
    assert resp.status_code == status, (
        f"{resp.request.method} {resp.request.url}: expected {status} {error_code}, "
        f"got {resp.status_code}: {resp.text[:500]}"
    )
    body = resp.json()
    assert body.get("error_code") == error_code, body
    assert isinstance(body.get("message"), str) and body["message"], body
    return body


class ApiHelpers:
    assert_not_5xx = staticmethod(assert_not_5xx)
    assert_error = staticmethod(assert_api_error)


@pytest.fixture
def api(server_url) -> RawApi:
    return RawApi(server_url)


@pytest.fixture
def check():
    """``check.assert_not_5xx(resp)``, ``check.assert_error(resp, 404, "RESOURCE_DOES_NOT_EXIST")``."""
    return ApiHelpers


@pytest.fixture
def tmp_dir():
    d = Path(tempfile.mkdtemp(prefix="mlox-test-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def target() -> str:
    return TARGET


CHROMIUM = os.environ.get("MLOX_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright; a missing browser fails the run when
    MLOX_REQUIRE_BROWSER=1 (CI), else skips the browser tests."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("MLOX_REQUIRE_BROWSER") == "1":
            pytest.fail(f"Chromium not found at {CHROMIUM}")
        pytest.skip("Chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()
