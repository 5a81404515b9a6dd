"""Running `mlox serve` in production: rolling out new model versions without dropping a
request (it follows a registry alias by polling, or at once when a registry webhook calls it,
loads the new version beside the serving one and swaps it in only when it is ready), the V2
repository API's load and unload as Triton's and MLServer's clients call them, Prometheus
metrics, request ids, and a shutdown that lets running requests finish.

MLServer fails 5-7 % of requests while it reloads a model and answers 404 for the old version
in between; here every request under load must succeed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

import mlflow
from conftest import _free_port
from test_serve import LOAD_TIMEOUT_S, ServeProcess, serve_env

import cloudpickle  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.mlox_only, pytest.mark.heavy]


class Marked(mlflow.pyfunc.PythonModel):
    """Answers its own mark for every row, so a response says which version computed it."""

    def __init__(self, mark: int):
        self.mark = mark

    def predict(self, context, model_input):
        return [self.mark] * len(model_input)


@pytest.fixture(scope="module")
def rollout_model():
    """A registered model with three versions marked 1, 2, 3 and `champion` on version 1."""
    name = f"Rollout-{int(time.time() * 1000)}"
    mlflow.set_experiment(f"rollout-{name}")
    for mark in (1, 2, 3):
        with mlflow.start_run():
            mlflow.pyfunc.log_model(name="model", python_model=Marked(mark), registered_model_name=name)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, "champion", "1")
    return name


def _infer(base: str, name: str) -> requests.Response:
    body = {"inputs": [{"name": "x", "shape": [2, 1], "datatype": "FP64", "data": [1.0, 2.0]}]}
    return requests.post(f"{base}/v2/models/{name}/infer", json=body, timeout=30)


class Load:
    """Requests in a loop from another thread, recording every answer."""

    def __init__(self, base: str, name: str):
        self.base, self.name = base, name
        self.answers: list[tuple[int, str | None, int | None, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r = _infer(self.base, self.name)
            except requests.RequestException as e:
                self.answers.append((0, None, None, repr(e)))
                continue
            if r.status_code == 200:
                body = r.json()
                mark = int(body["outputs"][0]["data"][0])
                self.answers.append((200, body.get("model_version"), mark, ""))
            else:
                self.answers.append((r.status_code, None, None, r.text))

    def wait_for_mark(self, mark: int, server: ServeProcess) -> None:
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while not any(a[2] == mark for a in self.answers[-5:]):
            if time.monotonic() > deadline:
                pytest.fail(f"version {mark} never answered:\n{server.log_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def _serve_saved(python_model, tmp_path) -> ServeProcess:
    """`mlox serve -m <dir>` on a pyfunc model saved to a local directory."""
    model_dir = tmp_path / "model"
    mlflow.pyfunc.save_model(path=str(model_dir), python_model=python_model)
    port = _free_port()
    server = ServeProcess(["-m", str(model_dir), "-p", str(port)], tmp_path, port, serve_env(tmp_path))
    server.wait_loaded()
    return server


def _serve_alias(name: str, tmp_path, *extra: str) -> ServeProcess:
    port = _free_port()
    server = ServeProcess(
        ["-m", f"models:/{name}@champion", "-p", str(port), *extra],
        tmp_path,
        port,
        serve_env(tmp_path),
    )
    server.wait_loaded()
    return server


def test_a_moved_alias_is_rolled_out_under_load_without_a_failed_request(rollout_model, tmp_path):
    name = rollout_model
    client = mlflow.MlflowClient()
    server = _serve_alias(name, tmp_path, "--poll-interval", "1")
    load = Load(server.base, name)
    try:
        load.wait_for_mark(1, server)
        client.set_registered_model_alias(name, "champion", "2")
        load.wait_for_mark(2, server)
        client.set_registered_model_alias(name, "champion", "3")
        load.wait_for_mark(3, server)
        time.sleep(0.5)
    finally:
        load.stop()
        server.stop()

    failures = [a for a in load.answers if a[0] != 200]
    assert failures == [], failures[:5]
    marks = [a[2] for a in load.answers]
    # Each version takes over once and for good: no request goes back to an older one.
    assert marks == sorted(marks), "a request was answered by an older version after a newer one"
    assert {1, 2, 3} <= set(marks)
    # The V2 answer names the registry version that computed it.
    assert all(version == str(mark) for _, version, mark, _ in load.answers)
    assert len(load.answers) > 20


def test_a_registry_webhook_triggers_the_rollout_at_once(rollout_model, tmp_path):
    name = rollout_model
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, "champion", "1")
    # Polling off: only the webhook can move the served version.
    server = _serve_alias(name, tmp_path, "--poll-interval", "0")
    hook = client.create_webhook(
        name=f"rollout-{int(time.time() * 1000)}",
        url=f"{server.base}/mlox/refresh",
        events=["model_version_alias.created"],
    )
    try:
        r = _infer(server.base, name)
        assert r.json()["model_version"] == "1"
        client.set_registered_model_alias(name, "champion", "3")
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while _infer(server.base, name).json()["model_version"] != "3":
            if time.monotonic() > deadline:
                pytest.fail(f"the webhook never moved the model:\n{server.log_text()}")
            time.sleep(0.2)
        # Versions that did not move are left alone.
        r = requests.post(f"{server.base}/mlox/refresh", json={"event": "anything"})
        assert r.status_code == 200 and r.json() == {"swapped": 0}
    finally:
        client.delete_webhook(hook.webhook_id)
        server.stop()


def test_tritonclient_unloads_and_loads_through_the_repository_api(rollout_model, tmp_path):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    name = rollout_model
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", "2")
    grpc_port = _free_port()
    server = _serve_alias(name, tmp_path, "--grpc-port", str(grpc_port), "--poll-interval", "0")
    try:
        http = httpclient.InferenceServerClient(server.base.removeprefix("http://"))
        grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        assert http.is_model_ready(name)

        grpc.unload_model(name)
        assert not http.is_model_ready(name)
        r = _infer(server.base, name)
        assert r.status_code == 404, r.text
        assert name in r.json()["error"]
        # Unloaded models stay listed, as Triton lists them.
        unloaded = {"name": name, "state": "UNAVAILABLE", "reason": "unloaded"}
        assert http.get_model_repository_index() == [{**unloaded, "version": ""}]
        assert grpc.get_model_repository_index(as_json=True)["models"] == [unloaded]
        assert _grpc_ready_index(grpc_port) == []
        r = requests.post(f"{server.base}/v2/repository/index", json={"ready": True})
        assert r.status_code == 200 and r.json() == []

        http.load_model(name)
        assert http.is_model_ready(name)
        r = _infer(server.base, name)
        assert r.status_code == 200 and r.json()["model_version"] == "2"
        assert _grpc_ready_index(grpc_port) == [(name, "2", "READY", "")]

        with pytest.raises(InferenceServerException, match="not found"):
            http.load_model("no-such-model")
        with pytest.raises(InferenceServerException, match="not found"):
            grpc.unload_model("no-such-model")
        r = requests.post(f"{server.base}/v2/repository/models/{name}/load", data=b"{not json")
        assert r.status_code == 400 and "error" in r.json()
    finally:
        server.stop()



def _grpc_ready_index(port: int) -> list[tuple[str, str, str, str]]:
    """RepositoryIndex with `ready` set, which tritonclient's wrapper does not expose."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        response = stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(ready=True))
    return [(m.name, m.version, m.state, m.reason) for m in response.models]


def _sample(metrics: str, name: str, model: str, version: str) -> float:
    labels = f'model_name="{model}",model_version="{version}",model="{model}",version="{version}"'
    match = re.search(rf"^{re.escape(name)}{{{re.escape(labels)}}} (\S+)$", metrics, re.MULTILINE)
    assert match, f"no {name}{{{labels}}} in:\n{metrics}"
    return float(match.group(1))


def test_metrics_count_each_version_and_request_ids_follow_the_request(rollout_model, tmp_path):
    name = rollout_model
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", "1")
    server = _serve_alias(name, tmp_path, "--poll-interval", "0")
    try:
        for _ in range(3):
            assert _infer(server.base, name).status_code == 200
        bad = requests.post(
            f"{server.base}/v2/models/{name}/infer",
            json={"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1.0]}]},
        )
        assert bad.status_code == 400
        r = requests.post(
            f"{server.base}/invocations", json={"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}
        )
        assert r.status_code == 200 and r.json() == {"predictions": [1]}
        # Unknown models get no series of their own.
        assert requests.post(f"{server.base}/v2/models/nope/infer", json={"inputs": []}).status_code == 404

        r = requests.get(f"{server.base}/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = r.text
        assert _sample(text, "model_infer_request_success_total", name, "1") == 4
        assert _sample(text, "model_infer_request_failure_total", name, "1") == 1
        assert _sample(text, "model_infer_request_duration_seconds_count", name, "1") == 5
        assert _sample(text, "model_infer_request_duration_seconds_sum", name, "1") > 0
        assert _sample(text, "model_ready", name, "1") == 1
        assert 'model_name="nope"' not in text

        # The caller's request id names the response; without one, the server makes one.
        r = requests.post(
            f"{server.base}/v2/models/{name}/infer",
            headers={"X-Request-Id": "trace-42"},
            json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
        )
        assert r.headers["x-request-id"] == "trace-42" and r.json()["id"] == "trace-42"
        r = _infer(server.base, name)
        generated = r.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f-]{36}", generated) and r.json()["id"] == generated
        # An id in the body wins for the body; the header still follows the request.
        r = requests.post(
            f"{server.base}/v2/models/{name}/infer",
            headers={"X-Request-Id": "outer"},
            json={"id": "inner", "inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
        )
        assert r.json()["id"] == "inner" and r.headers["x-request-id"] == "outer"
        assert requests.get(f"{server.base}/v2/health/live").headers["x-request-id"]
    finally:
        server.stop()


class Slow(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        time.sleep(float(model_input["sleep"].iloc[0]))
        return ["done"] * len(model_input)


@pytest.mark.standalone
def test_shutdown_finishes_running_requests_then_exits(tmp_path):
    server = _serve_saved(Slow(), tmp_path)
    result = {}

    def slow_request():
        result["r"] = requests.post(
            f"{server.base}/invocations", json={"dataframe_split": {"columns": ["sleep"], "data": [[2.0]]}}
        )

    try:
        thread = threading.Thread(target=slow_request)
        thread.start()
        time.sleep(0.7)
        workers = server.worker_pids()
        assert workers
        # The orchestrator signals the server process alone (its workers are its business).
        os.kill(server.proc.pid, signal.SIGTERM)
        thread.join(timeout=30)
        assert result["r"].status_code == 200, result["r"].text
        assert result["r"].json() == {"predictions": ["done"]}
        assert server.proc.wait(timeout=30) == 0, server.log_text()
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{server.base}/ping", timeout=2)
        # No worker outlives the server.
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)
    finally:
        server.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent's reaping is missing.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class BatchProbe(mlflow.pyfunc.PythonModel):
    """Echoes `x` and says how many rows the call it was part of had."""

    def predict(self, context, model_input):
        import pandas as pd

        return pd.DataFrame({"x": model_input["x"], "batch_rows": len(model_input)})


@pytest.mark.standalone
def test_adaptive_batching_gives_each_request_exactly_its_own_rows(tmp_path):
    model_dir = tmp_path / "probe" / "model"
    mlflow.pyfunc.save_model(path=str(model_dir), python_model=BatchProbe())
    port = _free_port()
    (tmp_path / "probe" / "model-settings.json").write_text(
        '{"name": "probe", "implementation": "mlserver_mlflow.MLflowRuntime",'
        ' "max_batch_size": 8, "max_batch_time": 0.3, "parameters": {"uri": "./model"}}'
    )
    (tmp_path / "settings.json").write_text(f'{{"http_port": {port}, "grpc_port": 0}}')
    server = ServeProcess(["."], tmp_path, port, serve_env(tmp_path))
    server.wait_loaded()
    try:
        def request(i: int) -> tuple[int, list[float], requests.Response]:
            xs = [float(i * 100 + k) for k in range(1 + i % 4)]
            body = {
                "id": f"req-{i}",
                "parameters": {"content_type": "pd"},
                "inputs": [{"name": "x", "shape": [len(xs)], "datatype": "FP64", "data": xs}],
            }
            return i, xs, requests.post(f"{server.base}/v2/models/probe/infer", json=body, timeout=60)

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(request, range(8)))
        merged = 0
        for i, xs, r in answers:
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["id"] == f"req-{i}"
            outputs = {o["name"]: o for o in body["outputs"]}
            assert outputs["x"]["data"] == xs
            assert outputs["x"]["shape"][0] == len(xs)
            (rows,) = set(outputs["batch_rows"]["data"])
            assert rows >= len(xs)
            merged += rows > len(xs)
        assert merged > 0, "no request shared a call with another"
        metrics = requests.get(f"{server.base}/metrics").text
        assert _sample(metrics, "model_batched_requests_total", "probe", "") == 8
        assert _sample(metrics, "model_batches_total", "probe", "") < 8
        assert _sample(metrics, "model_batch_queue_depth", "probe", "") == 0
        assert "adaptive batching on" in server.log_text()
        # Records list the columns in the frame's order, as pandas gave them (not sorted).
        r = requests.post(
            f"{server.base}/invocations", json={"dataframe_split": {"columns": ["x"], "data": [[7.0]]}}
        )
        assert r.status_code == 200, r.text
        assert list(r.json()["predictions"][0]) == ["x", "batch_rows"]
    finally:
        server.stop()


class SlowProbe(mlflow.pyfunc.PythonModel):
    """BatchProbe that takes 0.3 s a call, so requests sent together queue behind it; given
    a negative x it answers one row, the sum, whatever number of rows it was given."""

    def predict(self, context, model_input, params=None):
        import time

        import pandas as pd

        time.sleep(0.3)
        if (model_input["x"] < 0).any():
            return pd.DataFrame({"x": [float(model_input["x"].sum())], "batch_rows": [len(model_input)]})
        return pd.DataFrame({"x": model_input["x"], "batch_rows": len(model_input)})


def _probe_requests(base: str, n: int, sign: float = 1.0) -> list[tuple[list[float], requests.Response]]:
    """n concurrent V2 requests of 1–3 rows each; the first goes out alone so the rest queue
    behind a busy worker."""
    from concurrent.futures import ThreadPoolExecutor

    def send(i: int):
        xs = [sign * (i * 10 + k + 1) for k in range(1 + i % 3)]
        body = {
            "parameters": {"content_type": "pd"},
            "inputs": [{"name": "x", "shape": [len(xs)], "datatype": "FP64", "data": xs}],
        }
        return xs, requests.post(f"{base}/v2/models/probe/infer", json=body, timeout=60)

    with ThreadPoolExecutor(max_workers=n) as pool:
        first = pool.submit(send, 0)
        time.sleep(0.1)
        rest = list(pool.map(send, range(1, n)))
    return [first.result(), *rest]


@pytest.mark.standalone
@pytest.mark.parametrize("merge_waiting", [None, "1"])
def test_python_models_merge_the_requests_that_wait_for_a_busy_worker(tmp_path, merge_waiting):
    """By default the requests queued behind a busy Python worker share its next call, each
    getting exactly its own rows back; `--merge-waiting 1` sends each on its own."""
    model_dir = tmp_path / "probe"
    mlflow.pyfunc.save_model(path=str(model_dir), python_model=SlowProbe())
    port = _free_port()
    flags = [] if merge_waiting is None else ["--merge-waiting", merge_waiting]
    server = ServeProcess(
        ["-m", str(model_dir), "--name", "probe", "-p", str(port), *flags], tmp_path, port, serve_env(tmp_path)
    )
    server.wait_loaded()
    try:
        answers = _probe_requests(server.base, 6)
        for xs, r in answers:
            assert r.status_code == 200, r.text
            outputs = {o["name"]: o for o in r.json()["outputs"]}
            assert outputs["x"]["data"] == xs
            (rows,) = set(outputs["batch_rows"]["data"])
            assert rows >= len(xs)
        shared = [xs for xs, r in answers if r.json()["outputs"][1]["data"][0] > len(xs)]
        if merge_waiting is None:
            assert len(shared) >= 2, "the queued requests did not share a call"
            assert "merged into one call" in server.plain_log()
        else:
            assert shared == []

        # A model whose answer is not one row per input row cannot be cut: every request is
        # answered from a call of its own.
        for xs, r in _probe_requests(server.base, 4, sign=-1.0):
            assert r.status_code == 200, r.text
            outputs = {o["name"]: o for o in r.json()["outputs"]}
            assert outputs["x"]["data"] == [sum(xs)]
            assert outputs["batch_rows"]["data"] == [len(xs)]
    finally:
        server.stop()


@pytest.mark.standalone
def test_the_openapi_document_holds_under_schemathesis(tmp_path):
    """Schemathesis generates requests from the served OpenAPI document (examples, edge
    cases, then random data) and checks that no answer is a 5xx, that every status, content
    type and body is the one the document promises."""
    import numpy as np
    import pandas as pd
    import xgboost as xgb
    from mlflow.models import infer_signature

    x = pd.DataFrame({"a": np.arange(30.0), "b": np.arange(30.0) % 3})
    y = x["a"] * 2 + x["b"]
    model_dir = tmp_path / "tiny"
    mlflow.xgboost.save_model(
        xgb.XGBRegressor(n_estimators=5, max_depth=2).fit(x, y), str(model_dir), signature=infer_signature(x, y)
    )
    port = _free_port()
    server = ServeProcess(["-m", str(model_dir), "--name", "tiny", "-p", str(port)], tmp_path, port, serve_env(tmp_path))
    server.wait_loaded()
    try:
        page = requests.get(f"{server.base}/v2/models/tiny/docs")
        assert page.status_code == 200 and '"docs/dataplane.json"' in page.text
        assert requests.get(f"{server.base}/v2/models/nope/docs/dataplane.json").status_code == 404
        doc = requests.get(f"{server.base}/v2/docs/dataplane.json").json()
        assert doc["openapi"].startswith("3.")

        schemathesis = Path(sys.executable).parent / "schemathesis"
        run = subprocess.run(
            [
                str(schemathesis), "run", f"{server.base}/v2/models/tiny/docs/dataplane.json",
                "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                "response_schema_conformance",
                "--max-examples", "30", "--seed", "1", "--workers", "1",
                "--phases", "examples,coverage,fuzzing",
                # Unloading would leave nothing to test; the health routes' 503 then is right.
                "--exclude-path-regex", "unload",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
        assert "passed" in run.stdout
    finally:
        server.stop()


class OneKeyDict(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        import numpy as np

        return {"scores": np.asarray(model_input["x"], dtype=float).reshape(-1, 1) * 2}


@pytest.mark.standalone
def test_a_dict_of_one_output_keeps_its_key_as_mlflow_answers_it(tmp_path):
    server = _serve_saved(OneKeyDict(), tmp_path)
    try:
        r = requests.post(
            f"{server.base}/invocations", json={"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.5]]}}
        )
        assert r.status_code == 200, r.text
        # mlflow models serve: {"predictions": {"scores": [[2.0], [5.0]]}}
        assert r.json() == {"predictions": {"scores": [[2.0], [5.0]]}}
    finally:
        server.stop()


@pytest.mark.standalone
def test_a_reload_that_fails_keeps_the_serving_version_and_says_why(tmp_path):
    server = _serve_saved(Slow(), tmp_path)
    try:
        name = "model"
        body = {"dataframe_split": {"columns": ["sleep"], "data": [[0.0]]}}
        assert requests.post(f"{server.base}/invocations", json=body).status_code == 200
        (tmp_path / "model" / "python_model.pkl").write_bytes(b"not a pickle")
        r = requests.post(f"{server.base}/v2/repository/models/{name}/load")
        assert r.status_code == 503, r.text
        assert "could not be loaded" in r.json()["error"]
        # The running version never stopped answering.
        assert requests.post(f"{server.base}/invocations", json=body).json() == {"predictions": ["done"]}
        assert requests.get(f"{server.base}/v2/health/ready").status_code == 200
    finally:
        server.stop()


def _record_loader_pid(marker: str) -> str:
    from pathlib import Path as _Path

    _Path(marker).write_text(str(os.getpid()))
    return marker


class _RunsOnLoad:
    """Unpickling this calls a function, as the model files of CVE-2024-37052…37060 do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (_record_loader_pid, (self.marker,))


class Tampered(mlflow.pyfunc.PythonModel):
    def __init__(self, marker: str):
        self.payload = _RunsOnLoad(marker)

    def predict(self, context, model_input):
        return [1] * len(model_input)


@pytest.mark.standalone
def test_cve_2024_37052_a_pickled_model_never_runs_code_in_the_server(tmp_path):
    """A pickle runs code when loaded: mlox loads pickled models only in its Python workers,
    never in the serving process, and MLflow's MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false
    refuses them outright."""
    marker = tmp_path / "loaded-by.pid"
    server = _serve_saved(Tampered(str(marker)), tmp_path)
    try:
        loader = int(marker.read_text())
        assert loader != server.proc.pid
        assert loader in server.worker_pids()
        r = requests.post(f"{server.base}/invocations", json={"dataframe_split": {"columns": ["x"], "data": [[1.0]]}})
        assert r.status_code == 200 and r.json() == {"predictions": [1]}, r.text
    finally:
        server.stop()

    marker.unlink()
    refusing = tmp_path / "refusing"
    refusing.mkdir()
    port = _free_port()
    env = {**serve_env(refusing), "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}
    server = ServeProcess(["-m", str(tmp_path / "model"), "-p", str(port)], refusing, port, env)
    try:
        # Its only model refused, the server says why and exits, as on any model that cannot load.
        assert server.proc.wait(timeout=LOAD_TIMEOUT_S) != 0
        assert "Deserializing model using pickle is disallowed" in server.plain_log()
        assert not marker.exists()
    finally:
        server.stop()
