"""MLServer's MLflow runtime contract under ``mlox serve``, checked against MLServer itself.

A model declared with ``mlserver_mlflow.MLflowRuntime`` that has no signature gets its request
decoded only where a content type names a codec; otherwise ``predict`` receives MLServer's
``InferenceRequest`` object, and whatever it returns is encoded by MLServer's codecs. Seed 000
depends on this: its model decodes the request itself. Every test here sends the same requests
to ``mlox serve`` and to ``mlserver start`` (MLServer 1.7.1 with mlserver-mlflow, in this venv)
serving the same model directories, and expects the same answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import mlflow
from conftest import _free_port

# Loads MLServer's codecs without its server modules (see that module) and gives the clients.
from test_serving_protocol import (  # noqa: F401  (import order matters for the codecs)
    InferenceResponse,
    StringRequestCodec,
    grpcclient,
    np,
)
from test_serve import ServeProcess, serve_env
import seed000_mlserver_model
from seed000_mlserver_model import InputTypeModel, MyModel

pytestmark = [pytest.mark.mlox_only, pytest.mark.heavy, pytest.mark.standalone]

STARTUP_TIMEOUT_S = 180

import cloudpickle  # noqa: E402

cloudpickle.register_pickle_by_value(seed000_mlserver_model)


# ---- the seed's client code, as written there ---------------------------------------------


def create_request_to_mlserver_model(data: dict, model_name: str) -> dict:
    j_input = json.dumps(data)
    dict_inference_request = {
        "inputs": [
            {
                "name": model_name,
                "shape": [len(j_input)],
                "datatype": "BYTES",
                "data": j_input,
            }
        ]
    }
    return dict_inference_request


def send_request_to_mlserver_model(inference_request: dict, host: str, model_name: str):
    endpoint = f"{host}/v2/models/{model_name}/infer"
    headers = {"Content-Type": "application/json"}
    post_response = requests.post(endpoint, json=inference_request, headers=headers)
    return post_response  # .text


def decode_answer(post_response) -> dict:
    inf_resp = InferenceResponse.parse_raw(post_response.text)
    raw_json = StringRequestCodec.decode_response(inf_resp)
    res = json.loads(raw_json[0])
    return res


# ---- the two servers ----------------------------------------------------------------------


class MlserverProcess:
    """`mlserver start .` from this venv, inference in its main process (no worker pool)."""

    def __init__(self, root: Path, http_port: int):
        self.base = f"http://127.0.0.1:{http_port}"
        self.log = root / "mlserver.log"
        mlserver = Path(sys.executable).parent / "mlserver"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(mlserver), "start", "."],
                cwd=root,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=10)


def wait_ready(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{base} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-5000:]}")
        try:
            if requests.get(f"{base}/v2/health/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    pytest.fail(f"{base} not ready after {STARTUP_TIMEOUT_S}s:\n{log.read_text(errors='replace')[-5000:]}")


def write_models(root: Path, model_dirs: dict[str, Path]) -> None:
    for name, model_dir in model_dirs.items():
        (root / name).mkdir()
        parameters = {"uri": str(model_dir)}
        if name == "seed-versioned":
            parameters["version"] = "v1"
        (root / name / "model-settings.json").write_text(
            json.dumps({"name": name, "implementation": "mlserver_mlflow.MLflowRuntime", "parameters": parameters})
        )


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract-models")
    dirs = {"seed": root / "seed", "types": root / "types"}
    mlflow.pyfunc.save_model(path=str(dirs["seed"]), python_model=MyModel())
    mlflow.pyfunc.save_model(path=str(dirs["types"]), python_model=InputTypeModel())
    dirs["seed-versioned"] = dirs["seed"]
    return dirs


@pytest.fixture(scope="module")
def servers(model_dirs, tmp_path_factory):
    """mlox and MLServer on the same model-settings files, each with its own settings.json."""
    pytest.importorskip("mlserver_mlflow", reason="the reference server needs mlserver-mlflow")
    started = {}
    try:
        mlox_root = tmp_path_factory.mktemp("mlox-repository")
        http, grpc, metrics = _free_port(), _free_port(), _free_port()
        (mlox_root / "settings.json").write_text(
            json.dumps({"http_port": http, "grpc_port": grpc, "metrics_port": metrics, "server_name": "mlserver"})
        )
        write_models(mlox_root, model_dirs)
        mlox = ServeProcess(["."], mlox_root, http, serve_env(mlox_root))
        mlox.grpc = f"127.0.0.1:{grpc}"
        mlox.metrics = f"http://127.0.0.1:{metrics}"
        started["mlox"] = mlox

        ref_root = tmp_path_factory.mktemp("mlserver-repository")
        http, grpc, metrics = _free_port(), _free_port(), _free_port()
        (ref_root / "settings.json").write_text(
            json.dumps(
                {
                    "host": "127.0.0.1",
                    "http_port": http,
                    "grpc_port": grpc,
                    "metrics_port": metrics,
                    "parallel_workers": 0,
                    "server_name": "mlserver",
                }
            )
        )
        write_models(ref_root, model_dirs)
        reference = MlserverProcess(ref_root, http)
        reference.grpc = f"127.0.0.1:{grpc}"
        reference.metrics = f"http://127.0.0.1:{metrics}"
        started["mlserver"] = reference

        wait_ready(mlox.base, mlox.proc, mlox.log)
        wait_ready(reference.base, reference.proc, reference.log)
        yield started
    finally:
        for server in started.values():
            server.stop()


def without_id(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "id"}


# ---- tests --------------------------------------------------------------------------------


def test_seed_000_model_and_client_over_rest(servers):
    answers = {}
    for which, server in servers.items():
        model_answer = send_request_to_mlserver_model(
            create_request_to_mlserver_model({"a": 10}, "seed"), server.base, "seed"
        )
        assert model_answer.status_code == 200, (which, model_answer.text)
        assert decode_answer(model_answer) == {"result": 20}
        answers[which] = model_answer.json()
    assert without_id(answers["mlox"]) == without_id(answers["mlserver"])
    # MLServer's encoding: one BYTES output per key of the dict, the dict codec on the response.
    assert answers["mlox"]["parameters"] == {"content_type": "dict"}
    (output,) = answers["mlox"]["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("output", "BYTES", [1])
    assert output["parameters"] == {"content_type": "np"}


def test_metrics_port_serves_prometheus_metrics_as_mlserver_does(servers):
    for which, server in servers.items():
        answer = send_request_to_mlserver_model(
            create_request_to_mlserver_model({"a": 1}, "seed"), server.base, "seed"
        )
        assert answer.status_code == 200, (which, answer.text)
        r = requests.get(f"{server.metrics}/metrics", timeout=10)
        assert r.status_code == 200, (which, r.text)
        assert r.headers["content-type"].startswith("text/plain"), which
        success = [
            line for line in r.text.splitlines()
            # MLServer's code labels the model `model` (its documentation says `model_name`;
            # mlox writes both).
            if line.startswith("model_infer_request_success_total{") and 'model="seed"' in line
        ]
        assert success and float(success[0].rsplit(" ", 1)[1]) >= 1, (which, r.text[:2000])
    # The metrics port serves metrics only.
    assert requests.get(f"{servers['mlox'].metrics}/v2/health/ready", timeout=10).status_code == 404


def test_seed_000_model_sees_mlservers_request_object(servers):
    mlox = servers["mlox"]
    r = requests.post(
        f"{mlox.base}/v2/models/seed/infer",
        json={"id": "seed-req-1", **create_request_to_mlserver_model({"a": 21}, "seed")},
        headers={"X-Tenant": "team-a"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "seed-req-1"
    assert decode_answer(r) == {"result": 42}
    # The model printed what it received (its stdout goes to the server's log).
    log = mlox.plain_log()
    line = next(line for line in log.splitlines() if "seed-req-1" in line and "Полученный predict запрос" in line)
    assert "<class 'mlserver.types.dataplane.InferenceRequest'>" in line
    assert "'x-tenant': 'team-a'" in line
    assert "'Ce-Modelid': 'seed'" in line and "'Ce-Requestid': 'seed-req-1'" in line


def test_seed_000_model_over_grpc(servers):
    j_input = json.dumps({"a": 10})
    answers = {}
    for which, server in servers.items():
        client = grpcclient.InferenceServerClient(url=server.grpc)
        data = grpcclient.InferInput("seed", [1], "BYTES")
        data.set_data_from_numpy(np.array([j_input.encode()], dtype=object))
        result = client.infer("seed", [data])
        (raw,) = result.as_numpy("output")
        answers[which] = (json.loads(raw), result.get_response().parameters["content_type"].string_param)
    assert answers["mlox"] == answers["mlserver"] == ({"result": 20}, "dict")


@pytest.mark.parametrize(
    "parameters, input_parameters, data, expected",
    [
        # No codec named anywhere: the request object itself.
        ({}, {}, ["x"], "InferenceRequest"),
        # A content type on an input only decodes that input; predict still gets the request.
        ({}, {"content_type": "str"}, ["x"], "InferenceRequest"),
        # A content type on the request names the request codec, whose result predict gets.
        ({"content_type": "str"}, {}, ["x"], "list"),
        ({"content_type": "np"}, {}, ["x"], "ndarray"),
        ({"content_type": "pd"}, {}, ["x"], "DataFrame"),
    ],
)
def test_content_types_decide_what_predict_receives(servers, parameters, input_parameters, data, expected):
    body = {
        "parameters": parameters,
        "inputs": [{"name": "text", "shape": [len(data)], "datatype": "BYTES", "data": data, "parameters": input_parameters}],
    }
    answers = {}
    for which, server in servers.items():
        r = requests.post(f"{server.base}/v2/models/types/infer", json=body)
        assert r.status_code == 200, (which, r.text)
        answers[which] = without_id(r.json())
    assert answers["mlox"]["outputs"][0]["data"] == [expected]
    assert answers["mlserver"]["outputs"][0]["data"] == [expected]
    if parameters.get("content_type") not in ("pd", "np"):
        # Decoded in the worker by MLServer's codecs, and answered through them too. (A request
        # naming pd or np is decoded by mlox, which can merge it with others; its dict answer
        # is encoded by mlox's codecs, whose shapes and content types differ for dicts.)
        assert answers["mlox"] == answers["mlserver"]


def test_versions(servers):
    body = create_request_to_mlserver_model({"a": 1}, "seed-versioned")
    for which, server in servers.items():
        r = requests.post(f"{server.base}/v2/models/seed-versioned/versions/v1/infer", json=body)
        assert r.status_code == 200, (which, r.text)
        assert r.json()["model_version"] == "v1"
        r = requests.post(f"{server.base}/v2/models/seed-versioned/versions/v9/infer", json=body)
        assert r.status_code == 404, (which, r.status_code, r.text)
        assert "v9" in r.text
        r = requests.post(f"{server.base}/v2/models/seed/versions/3/infer", json=body)
        assert r.status_code == 404, (which, r.status_code, r.text)
    r = requests.post(f"{servers['mlox'].base}/v2/models/seed/versions/3/infer", json=body)
    assert set(r.json()) == {"error"}


def test_without_mlserver_in_the_models_environment_the_answer_names_it(model_dirs, tmp_path):
    """A model environment without the mlserver package: a 503 that says what to install,
    never a 500 with a traceback."""
    shadow = tmp_path / "shadow"
    (shadow / "mlserver").mkdir(parents=True)
    (shadow / "mlserver" / "__init__.py").write_text("raise ImportError('mlserver is not installed here')\n")
    root = tmp_path / "repository"
    root.mkdir()
    http = _free_port()
    (root / "settings.json").write_text(json.dumps({"http_port": http, "grpc_port": 0}))
    write_models(root, {"types": model_dirs["types"]})
    env = serve_env(root)
    env["PYTHONPATH"] = str(shadow)
    server = ServeProcess(["."], root, http, env)
    try:
        server.wait_loaded()
        r = requests.post(
            f"{server.base}/v2/models/types/infer",
            json={"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"]}]},
        )
        assert r.status_code == 503, r.text
        message = r.json()["error"]
        assert "'mlserver' is not importable" in message and "pip install mlserver" in message
        assert "Traceback" not in message
    finally:
        server.stop()
