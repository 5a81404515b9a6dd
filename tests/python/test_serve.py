"""``mlox serve`` end to end: models logged and registered with the real ``mlflow`` client on
the session's tracking server, served as the seeds serve them (an MLServer repository with
``settings.json`` + ``model-settings.json``, or ``mlflow models serve -m``), queried with the
clients the seeds use, and compared with the model's own predictions in this process.

* seed 000: its model for MLServer (``predict`` decodes MLServer's ``InferenceRequest``
  itself), registered and served through ``models:/<name>/1`` and from a local directory,
  queried with the seed's hand-made BYTES request and decoded with MLServer's
  ``StringRequestCodec`` (``test_serve_mlserver_contract`` checks the same against MLServer);
* seed 001: the ElasticNet wine model from ``runs:/<run>/model``, queried with the seed's JSON
  payload (one FP32 input per column), tritonclient over HTTP and gRPC, and every
  ``/invocations`` format;
* ``mlox serve -m models:/<name>@champion``: the one-model form, its worker killed mid-request
  and its timeout.
"""

from __future__ import annotations

import json
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
from conftest import _free_port, mlox_binary

# Loads MLServer's codecs without its server modules (see that module) and gives the clients.
from test_serving_protocol import (  # noqa: F401  (import order matters for the codecs)
    InferenceResponse,
    StringRequestCodec,
    grpcclient,
    httpclient,
    np,
    pd,
)
from test_seed_wine_elasticnet import WINE_FEATURES, synthetic_wine
import seed000_mlserver_model

pytestmark = [pytest.mark.mlox_only, pytest.mark.heavy]

LOAD_TIMEOUT_S = 180


class Sleepy(mlflow.pyfunc.PythonModel):
    """Sleeps for the requested seconds, then answers its worker's process id."""

    def predict(self, context, model_input):
        import os
        import time

        time.sleep(float(model_input["sleep"].iloc[0]))
        return [os.getpid()] * len(model_input)


# The test module is not importable in the workers; ship the classes by value.
import cloudpickle  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])
cloudpickle.register_pickle_by_value(seed000_mlserver_model)


class ServeProcess:
    def __init__(self, args: list[str], workdir: Path, http_port: int, env: dict[str, str]):
        self.base = f"http://127.0.0.1:{http_port}"
        self.log = workdir / "serve.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [mlox_binary(), "serve", *args],
                cwd=workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-20000:]

    def plain_log(self) -> str:
        """The whole log without terminal colours."""
        return re.sub(r"\x1b\[[0-9;]*m", "", self.log.read_text(errors="replace"))

    def wait_loaded(self) -> list[dict]:
        """Waits until no model is loading any more; returns the repository index."""
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"mlox serve exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                r = requests.post(f"{self.base}/v2/repository/index", json={}, timeout=2)
                index = r.json()
                if r.status_code == 200 and index and all(m["state"] != "LOADING" for m in index):
                    return index
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"models still loading after {LOAD_TIMEOUT_S}s:\n{self.log_text()}")
            time.sleep(0.25)

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def serve_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["MLOX_PYTHON"] = sys.executable
    env["MLOX_CACHE_DIR"] = str(tmp / "cache")
    env.setdefault("MLOX_LOG", "info")
    return env


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Logs and registers the seeds' models once for the module."""
    suffix = str(int(time.time() * 1000))
    mlflow.set_experiment(f"serve-{suffix}")
    out = {}

    # Seed 000: save locally and log with registration, as the seed does.
    seed000 = f"name_test_model1-{suffix}"
    local_dir = tmp_path_factory.mktemp("seed000") / "path_test_model1"
    with mlflow.start_run(run_name="test_model_run"):
        my_model = seed000_mlserver_model.MyModel()
        mlflow.pyfunc.save_model(path=str(local_dir), python_model=my_model)
        mlflow.pyfunc.log_model(name="model", python_model=my_model, registered_model_name=seed000)
    out["seed000"] = seed000
    out["seed000_local"] = local_dir

    # Seed 001: train.py's ElasticNet with an inferred signature.
    from sklearn.linear_model import ElasticNet
    from mlflow.models.signature import infer_signature

    data = synthetic_wine()
    train_x = data.drop(columns=["quality"])
    train_y = data[["quality"]]
    wine_name = f"ElasticnetWineModel-{suffix}"
    with mlflow.start_run() as run:
        lr = ElasticNet(alpha=0.5, l1_ratio=0.5, random_state=42).fit(train_x, train_y)
        mlflow.sklearn.log_model(
            lr, name="model", registered_model_name=wine_name, signature=infer_signature(train_x, train_y)
        )
    out["wine_run"] = run.info.run_id
    out["wine_rows"] = train_x.head(5).astype("float32").astype("float64")
    out["wine_expected"] = lr.predict(out["wine_rows"])

    sleepy = f"Sleepy-{suffix}"
    with mlflow.start_run():
        mlflow.pyfunc.log_model(name="model", python_model=Sleepy(), registered_model_name=sleepy)
    mlflow.MlflowClient().set_registered_model_alias(sleepy, "champion", "1")
    out["sleepy"] = sleepy
    return out


@pytest.fixture(scope="module")
def repository_server(models, tmp_path_factory):
    """`mlserver start .` on a directory written as the seeds write it."""
    root = tmp_path_factory.mktemp("model-repository")
    http_port, grpc_port = _free_port(), _free_port()
    (root / "settings.json").write_text(
        "{\n"
        '    "debug": "true",  // write output of starting process\n'
        f'    "http_port": "{http_port}", // port for swagger\n'
        f'    "grpc_port": "{grpc_port}", // API port\n'
        '    "server_name":" mlserver" // name of server\n'
        "}\n"
    )
    for name, uri in (
        (models["seed000"], f"models:/{models['seed000']}/1"),
        ("wine-classifier", f"runs:/{models['wine_run']}/model"),
        ("broken", "runs:/0123456789abcdef0123456789abcdef/model"),
    ):
        (root / name).mkdir()
        (root / name / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": name,
                    "implementation": "mlserver_mlflow.MLflowRuntime",
                    "parameters": {"uri": uri},
                },
                indent=4,
            )
        )
    # A model directory next to its settings, with no uri: the directory itself.
    local = root / "local-seed000"
    local.mkdir()
    (local / "model-settings.json").write_text('{"name": "local-seed000"}')
    for item in models["seed000_local"].iterdir():
        target = local / item.name
        if item.is_dir():
            import shutil

            shutil.copytree(item, target)
        else:
            target.write_bytes(item.read_bytes())

    server = ServeProcess(["."], root, http_port, serve_env(root))
    server.grpc = f"127.0.0.1:{grpc_port}"
    server.http = f"127.0.0.1:{http_port}"
    server.index = server.wait_loaded()
    yield server
    server.stop()


def test_repository_loads_every_model_and_reports_the_broken_one(repository_server, models):
    states = {m["name"]: (m["state"], m["reason"]) for m in repository_server.index}
    assert states[models["seed000"]] == ("READY", "")
    assert states["wine-classifier"] == ("READY", "")
    assert states["local-seed000"] == ("READY", "")
    state, reason = states["broken"]
    assert state == "UNAVAILABLE"
    assert "0123456789abcdef0123456789abcdef" in reason
    base = repository_server.base
    # One model down: the server is live but not ready, and the others answer.
    assert requests.get(f"{base}/v2/health/live").status_code == 200
    assert requests.get(f"{base}/v2/health/ready").status_code == 503
    assert requests.get(f"{base}/v2/models/wine-classifier/ready").status_code == 200
    r = requests.post(f"{base}/v2/models/broken/infer", json={"inputs": []})
    assert r.status_code == 503 and "broken" in r.json()["error"]
    meta = requests.get(f"{base}/v2").json()
    assert meta["name"] == "mlserver"
    # Seed 001's ElasticNet runs natively; the custom pyfunc models need Python.
    log = repository_server.plain_log()
    assert 'model=wine-classifier runtime="native"' in log
    assert f'model={models["seed000"]} runtime="python"' in log


def test_seed_000_request_and_decoding(repository_server, models):
    """The seed's create_request_to_mlserver_model / send / decode_answer, unchanged."""

    def create_request_to_mlserver_model(data: dict, model_name: str) -> dict:
        j_input = json.dumps(data)
        return {"inputs": [{"name": model_name, "shape": [len(j_input)], "datatype": "BYTES", "data": j_input}]}

    def send_request_to_mlserver_model(inference_request: dict, host: str, model_name: str):
        endpoint = f"{host}/v2/models/{model_name}/infer"
        headers = {"Content-Type": "application/json"}
        return requests.post(endpoint, json=inference_request, headers=headers)

    def decode_answer(post_response) -> dict:
        inf_resp = InferenceResponse.parse_raw(post_response.text)
        raw_json = StringRequestCodec.decode_response(inf_resp)
        res = json.loads(raw_json[0])
        return res

    for name in (models["seed000"], "local-seed000"):
        answer = send_request_to_mlserver_model(
            create_request_to_mlserver_model({"a": 10}, name), repository_server.base, name
        )
        assert answer.status_code == 200, answer.text
        assert decode_answer(answer) == {"result": 20}


def seed_001_payload(rows: "pd.DataFrame") -> dict:
    """Seed 001's JSON payload: one FP32 input per column, shape [n]."""
    return {
        "inputs": [
            {"name": column, "shape": [len(rows)], "datatype": "FP32", "data": rows[column].tolist()}
            for column in WINE_FEATURES
        ]
    }


def test_seed_001_json_payload(repository_server, models):
    rows = models["wine_rows"]
    r = requests.post(f"{repository_server.base}/v2/models/wine-classifier/infer", json=seed_001_payload(rows))
    assert r.status_code == 200, r.text
    (output,) = r.json()["outputs"]
    np.testing.assert_allclose(output["data"], models["wine_expected"], rtol=1e-6)
    local = mlflow.pyfunc.load_model(f"runs:/{models['wine_run']}/model").predict(rows)
    np.testing.assert_allclose(output["data"], np.asarray(local).ravel(), rtol=1e-6)


def test_seed_001_metadata_names_the_signature(repository_server):
    meta = requests.get(f"{repository_server.base}/v2/models/wine-classifier").json()
    assert [t["name"] for t in meta["inputs"]] == WINE_FEATURES
    assert {t["datatype"] for t in meta["inputs"]} == {"FP64"}
    assert meta["platform"] == "mlflow"


def _triton_inputs(module, rows):
    inputs = []
    for column in WINE_FEATURES:
        t = module.InferInput(column, [len(rows), 1], "FP64")
        t.set_data_from_numpy(rows[[column]].to_numpy(dtype=np.float64))
        inputs.append(t)
    return inputs


def test_tritonclient_http_and_grpc(repository_server, models):
    rows = models["wine_rows"]
    http = httpclient.InferenceServerClient(url=repository_server.http)
    assert http.is_model_ready("wine-classifier")
    r = http.infer("wine-classifier", _triton_inputs(httpclient, rows))
    (name,) = [o["name"] for o in r.get_response()["outputs"]]
    np.testing.assert_allclose(r.as_numpy(name).ravel(), models["wine_expected"], rtol=1e-6)

    grpc = grpcclient.InferenceServerClient(url=repository_server.grpc)
    assert grpc.is_server_live()
    assert not grpc.is_server_ready()  # "broken" is down
    assert grpc.is_model_ready("wine-classifier")
    r = grpc.infer("wine-classifier", _triton_inputs(grpcclient, rows), request_id="g-1")
    assert r.get_response().id == "g-1"
    out = r.get_response().outputs[0].name
    np.testing.assert_allclose(r.as_numpy(out).ravel(), models["wine_expected"], rtol=1e-6)
    # A single 2-D tensor into a model whose signature names columns (MLServer: 500).
    t = grpcclient.InferInput("input-0", list(rows.shape), "FP64")
    t.set_data_from_numpy(rows.to_numpy(dtype=np.float64))
    r = grpc.infer("wine-classifier", [t])
    np.testing.assert_allclose(r.as_numpy(out).ravel(), models["wine_expected"], rtol=1e-6)

    with pytest.raises(grpcclient.InferenceServerException) as e:
        grpc.infer("wine-classifier", _triton_inputs(grpcclient, rows)[:-1])
    assert e.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "alcohol" in e.value.message()
    with pytest.raises(grpcclient.InferenceServerException) as e:
        grpc.infer("broken", _triton_inputs(grpcclient, rows))
    assert e.value.status() == "StatusCode.UNAVAILABLE"


def test_invocations_formats_per_model(repository_server, models):
    rows = models["wine_rows"]
    expected = models["wine_expected"]
    url = f"{repository_server.base}/models/wine-classifier/invocations"
    values = rows.to_numpy().tolist()
    records = rows.to_dict(orient="records")
    for body in (
        {"dataframe_split": {"columns": WINE_FEATURES, "data": values}},
        {"dataframe_records": records},
        {"instances": records},
        {"inputs": {c: rows[c].tolist() for c in WINE_FEATURES}},
    ):
        r = requests.post(url, json=body)
        assert r.status_code == 200, (list(body), r.text)
        np.testing.assert_allclose(r.json()["predictions"], expected, rtol=1e-6)
    r = requests.post(url, data=rows.to_csv(index=False), headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], expected, rtol=1e-6)
    # A column missing: MLflow's schema enforcement, as a 400 in MLflow's error shape.
    r = requests.post(url, json={"dataframe_split": {"columns": WINE_FEATURES[:-1], "data": [v[:-1] for v in values]}})
    assert r.status_code == 400
    assert r.json()["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")
    assert "alcohol" in r.json()["message"]


@pytest.fixture(scope="module")
def sleepy_server(models, tmp_path_factory):
    """`mlflow models serve -m models:/<name>@champion -p <port> -t 3`, one worker."""
    workdir = tmp_path_factory.mktemp("serve-one")
    port = _free_port()
    server = ServeProcess(
        ["-m", f"models:/{models['sleepy']}@champion", "-h", "127.0.0.1", "-p", str(port), "-t", "3", "-w", "1"],
        workdir,
        port,
        serve_env(workdir),
    )
    server.wait_loaded()
    yield server
    server.stop()


def _sleep_request(base: str, seconds: float):
    return requests.post(
        f"{base}/invocations", json={"dataframe_split": {"columns": ["sleep"], "data": [[seconds]]}}, timeout=60
    )


def _served_by_new_worker(base: str, old_pid: int) -> bool:
    """Waits for the restarted worker to answer; true when another process did."""
    deadline = time.monotonic() + 60
    while True:
        r = _sleep_request(base, 0)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.status_code == 200, r.text
    return r.json()["predictions"] != [old_pid]


def test_one_model_answers_mlflow_scoring_routes(sleepy_server, models):
    base = sleepy_server.base
    assert requests.get(f"{base}/ping").status_code == 200
    assert requests.get(f"{base}/health").status_code == 200
    r = _sleep_request(base, 0)
    assert r.status_code == 200, r.text
    (pid,) = r.json()["predictions"]
    assert sleepy_server.worker_pids() == [pid]
    # The V2 name is the registered model's.
    r = requests.get(f"{base}/v2/models/{models['sleepy']}/ready")
    assert r.status_code == 200


def test_a_worker_killed_mid_request_fails_only_that_request(sleepy_server):
    base = sleepy_server.base
    (before,) = _sleep_request(base, 0).json()["predictions"]
    result = {}
    slow = threading.Thread(target=lambda: result.setdefault("r", _sleep_request(base, 2.5)))
    slow.start()
    time.sleep(0.8)
    os.kill(before, signal.SIGKILL)
    slow.join(timeout=30)
    r = result["r"]
    assert r.status_code == 503, r.text
    assert "worker" in r.json()["message"]
    # The pool restarts the worker; the server keeps serving.
    assert _served_by_new_worker(base, before)


def test_a_request_over_the_timeout_restarts_the_worker(sleepy_server):
    base = sleepy_server.base
    (before,) = _sleep_request(base, 0).json()["predictions"]
    r = _sleep_request(base, 10)
    assert r.status_code == 503, r.text
    assert "3" in r.json()["message"]
    assert _served_by_new_worker(base, before)


def test_a_model_that_does_not_exist_ends_the_command_with_its_reason(tmp_path):
    port = _free_port()
    proc = subprocess.run(
        [mlox_binary(), "serve", "-m", "models:/NoSuchModel-xyz/1", "-p", str(port)],
        cwd=tmp_path,
        env=serve_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "NoSuchModel-xyz" in proc.stderr


class CustomPyFuncModel(mlflow.pyfunc.PythonModel):
    """Seed 003's wrapper: probabilities instead of labels, and its own log file written from
    load_context (the seed uses loguru; the standard library's logging does the same here)."""

    def __init__(self, model):
        self.model = model

    def get_logger(self):
        import logging

        logger = logging.getLogger("custom-cancer-model")
        handler = logging.FileHandler("mlserve/mlserver_logs.log")
        handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        return logger

    def load_context(self, context):
        self.logger = self.get_logger()

    def predict(self, context, model_input):
        self.logger.info("start request")
        self.logger.info(f"batch size: {len(model_input)}")
        predict = self.model.predict_proba(model_input)[:, 1]
        self.logger.info("Finish request")
        return predict


def _serve_single_model_repository(root: Path, uri: str) -> ServeProcess:
    """Seed 003's directory: one model-settings.json naming the model `cancer-model`."""
    http_port = _free_port()
    (root / "settings.json").write_text(json.dumps({"http_port": http_port, "grpc_port": 0}))
    (root / "model-settings.json").write_text(
        json.dumps({"name": "cancer-model", "implementation": "mlserver_mlflow.MLflowRuntime", "parameters": {"uri": uri}})
    )
    server = ServeProcess(["."], root, http_port, serve_env(root))
    server.wait_loaded()
    return server


def test_seed_003_cancer_model_and_its_custom_wrapper(tmp_path):
    """Seed 003: XGBoost on breast cancer, registered, served from `models:/CancerModel/1`, queried
    on /invocations with `params` the model does not declare (ignored, as MLflow does); then
    wrapped in a custom pyfunc that answers probabilities, and served again."""
    import xgboost as xgb
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    from mlflow.models import infer_signature

    data = load_breast_cancer(as_frame=True)
    train, test, y_train, _ = train_test_split(data.data, data.target, test_size=0.33, random_state=42)
    suffix = str(int(time.time() * 1000))
    cancer, custom = f"CancerModel-{suffix}", f"CustomCancerModel-{suffix}"
    model = xgb.XGBClassifier(n_estimators=20, max_depth=3).fit(train, y_train)
    with mlflow.start_run():
        mlflow.xgboost.log_model(
            model, name="model", signature=infer_signature(train, y_train), registered_model_name=cancer
        )
    input_data = json.dumps(
        {"params": {"method": "proba"}, "dataframe_split": {"columns": test.columns.tolist(), "data": test.values.tolist()}}
    )

    server = _serve_single_model_repository(tmp_path, f"models:/{cancer}/1")
    try:
        response = requests.post(
            f"{server.base}/invocations", data=input_data, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 200, response.text
        labels = response.json()["predictions"]
        assert labels == mlflow.pyfunc.load_model(f"models:/{cancer}/1").predict(test).tolist()
        assert set(labels) == {0, 1}
        # The XGBoost model runs natively; the custom wrapper below needs Python.
        assert 'runtime="native"' in server.plain_log()
    finally:
        server.stop()

    loaded = mlflow.xgboost.load_model(f"models:/{cancer}/1")
    with mlflow.start_run():
        mlflow.pyfunc.log_model(name="custom_model", python_model=CustomPyFuncModel(loaded), registered_model_name=custom)
    (tmp_path / "mlserve").mkdir()
    server = _serve_single_model_repository(tmp_path, f"models:/{custom}/1")
    try:
        response = requests.post(
            f"{server.base}/invocations", data=input_data, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 200, response.text
        probabilities = response.json()["predictions"]
        np.testing.assert_allclose(probabilities, loaded.predict_proba(test)[:, 1], rtol=1e-6)
        assert all(0.0 <= p <= 1.0 for p in probabilities)
        log = (tmp_path / "mlserve" / "mlserver_logs.log").read_text()
        assert f"batch size: {len(test)}" in log
        assert 'runtime="python"' in server.plain_log()
    finally:
        server.stop()
