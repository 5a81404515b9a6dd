"""mlox serving as real serving clients see it: tritonclient (HTTP and gRPC), MLServer's own
codecs and plain ``requests``, against the deterministic test models of
``crates/mlox-serving/examples/serve_fixture.rs``:

* ``wine`` v1 (intercept 0) and v2 (intercept 1): y = b + sum((i+1)/10 * x_i) over the eleven
  wine-quality columns of its signature; answers an FP64 tensor ``predictions``.
* ``echo`` v1: signature ``text: string``, parameter ``suffix``; answers its strings as a
  one-column frame ``output``.
* ``echo-raw``: the same model logged without a signature (seed 000's pyfunc).

The fixture server is the example binary: ``MLOX_SERVE_FIXTURE`` names it, else it is built
with ``cargo build -p mlox-serving --example serve_fixture`` (honouring ``CARGO_TARGET_DIR``).
Needs ``tritonclient[http,grpc]``, ``mlserver``, ``numpy``, ``pandas`` and ``requests``; the
module is skipped where they are not installed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
requests = pytest.importorskip("requests")
httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")


def _load_mlserver_codecs_only() -> None:
    """mlserver's package __init__ starts its server modules, which register MLServer's
    ``inference.*`` protobuf messages in the same descriptor pool tritonclient.grpc already
    filled ("duplicate symbol 'inference.ServerLiveRequest'"). The codecs need none of that, so
    the package is entered without running its __init__."""
    import importlib.util
    import sys
    import types

    spec = importlib.util.find_spec("mlserver")
    if spec is None or spec.submodule_search_locations is None:
        pytest.skip("mlserver is not installed", allow_module_level=True)
    if "mlserver" not in sys.modules:
        package = types.ModuleType("mlserver")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["mlserver"] = package


_load_mlserver_codecs_only()

from mlserver.codecs import NumpyCodec, NumpyRequestCodec, PandasCodec  # noqa: E402
from mlserver.codecs.string import StringRequestCodec  # noqa: E402
from mlserver.types import InferenceRequest, InferenceResponse  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.mlox_only

REPO_ROOT = Path(__file__).resolve().parents[2]

from test_seed_wine_elasticnet import WINE_FEATURES as WINE_COLUMNS  # noqa: E402
# The two rows of the MLServer / mlflow reference captures.
WINE_ROWS = [
    [7.718, 0.1528, 0.4626, 9.1623, -0.0416, 7.8629, 120.3693, 0.9941, 3.1975, 0.4362, 11.5553],
    [8.5222, 0.3519, 0.5342, 7.27, 0.013, 36.2688, 74.7269, 0.9976, 3.1925, 0.5097, 9.6829],
]


def predict(row, intercept=0.0):
    """What the fixture's linear model answers, summed in the same order."""
    y = intercept
    for i, x in enumerate(row):
        y += (i + 1) / 10 * x
    return y


V1 = [predict(r) for r in WINE_ROWS]
V2 = [predict(r, 1.0) for r in WINE_ROWS]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fixture_binary() -> Path:
    explicit = os.environ.get("MLOX_SERVE_FIXTURE")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    subprocess.run(
        ["cargo", "build", "-q", "-p", "mlox-serving", "--example", "serve_fixture"],
        cwd=REPO_ROOT,
        check=True,
        timeout=1800,
    )
    return target / "debug" / "examples" / "serve_fixture"


@pytest.fixture(scope="module")
def fixture_server(tmp_path_factory):
    http_port, grpc_port = _free_port(), _free_port()
    log = tmp_path_factory.mktemp("serve-fixture") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(_fixture_binary()), "--http-port", str(http_port), "--grpc-port", str(grpc_port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"serve_fixture did not become ready:\n{log.read_text()}")
        time.sleep(0.1)
    yield {"http": f"127.0.0.1:{http_port}", "grpc": f"127.0.0.1:{grpc_port}", "base": base}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


# --------------------------------------------------------------------------- tritonclient.http


def test_tritonclient_http_health_and_metadata(fixture_server):
    c = httpclient.InferenceServerClient(url=fixture_server["http"])
    assert c.is_server_live()
    assert c.is_server_ready()
    assert c.is_model_ready("wine")
    assert c.is_model_ready("wine", "v1")
    assert not c.is_model_ready("nope")
    meta = c.get_server_metadata()
    assert meta["name"] == "mlox-fixture"
    assert "binary_tensor_data" in meta["extensions"]
    m = c.get_model_metadata("echo")
    assert m["platform"] == "mlflow"
    assert m["versions"] == ["v1"]
    assert m["inputs"] == [
        {"name": "text", "datatype": "BYTES", "shape": [-1, 1], "parameters": {"content_type": "str"}}
    ]
    wine = c.get_model_metadata("wine", "v1")
    assert [t["name"] for t in wine["inputs"]] == WINE_COLUMNS
    assert wine["outputs"][0]["name"] == "predictions"


def _column_inputs(module, binary):
    data = np.array(WINE_ROWS, dtype=np.float64)
    inputs = []
    for i, name in enumerate(WINE_COLUMNS):
        t = module.InferInput(name, [2, 1], "FP64")
        if module is httpclient:
            t.set_data_from_numpy(data[:, i : i + 1], binary_data=binary)
        else:
            t.set_data_from_numpy(data[:, i : i + 1])
        inputs.append(t)
    return inputs


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_http_one_input_per_column(fixture_server, binary):
    c = httpclient.InferenceServerClient(url=fixture_server["http"])
    outputs = [httpclient.InferRequestedOutput("predictions", binary_data=binary)]
    r = c.infer("wine", _column_inputs(httpclient, binary), model_version="v1", outputs=outputs)
    assert r.get_response()["model_version"] == "v1"
    np.testing.assert_allclose(r.as_numpy("predictions"), V1)
    # No requested outputs: tritonclient asks for every output in binary.
    r = c.infer("wine", _column_inputs(httpclient, binary), request_id="triton-1")
    assert r.get_response()["id"] == "triton-1"
    np.testing.assert_allclose(r.as_numpy("predictions"), V2)


def test_tritonclient_http_single_2d_tensor(fixture_server):
    """MLServer's MLflow runtime answers 500 to this request."""
    c = httpclient.InferenceServerClient(url=fixture_server["http"])
    t = httpclient.InferInput("input-0", [2, 11], "FP64")
    t.set_data_from_numpy(np.array(WINE_ROWS, dtype=np.float64))
    r = c.infer("wine", [t], model_version="v1")
    np.testing.assert_allclose(r.as_numpy("predictions"), V1)


def test_tritonclient_http_bytes(fixture_server):
    c = httpclient.InferenceServerClient(url=fixture_server["http"])
    t = httpclient.InferInput("text", [2, 1], "BYTES")
    t.set_data_from_numpy(np.array([[b"hello"], [b"world"]], dtype=np.object_))
    r = c.infer("echo", [t], parameters={"suffix": "!"})
    out = r.as_numpy("output")
    assert out.shape == (2, 1)
    assert [x.decode() for x in out.ravel()] == ["hello!", "world!"]


def test_tritonclient_http_errors(fixture_server):
    c = httpclient.InferenceServerClient(url=fixture_server["http"])
    with pytest.raises(InferenceServerException) as e:
        c.infer("nope", _column_inputs(httpclient, True))
    assert "Model nope not found" in str(e.value)
    t = httpclient.InferInput("input-0", [2, 10], "FP64")
    t.set_data_from_numpy(np.array([r[:10] for r in WINE_ROWS], dtype=np.float64))
    with pytest.raises(InferenceServerException) as e:
        c.infer("wine", [t])
    assert e.value.status() == "400"
    assert "the model signature has 11 columns" in e.value.message()


# --------------------------------------------------------------------------- tritonclient.grpc


def test_tritonclient_grpc(fixture_server):
    c = grpcclient.InferenceServerClient(url=fixture_server["grpc"])
    assert c.is_server_live()
    assert c.is_server_ready()
    assert c.is_model_ready("echo")
    meta = c.get_model_metadata("wine", "v1", as_json=True)
    assert meta["platform"] == "mlflow"
    assert [t["name"] for t in meta["inputs"]] == WINE_COLUMNS
    # tritonclient.grpc sends raw_input_contents and reads raw_output_contents.
    r = c.infer("wine", _column_inputs(grpcclient, True), model_version="v1", request_id="grpc-1")
    assert r.get_response().id == "grpc-1"
    np.testing.assert_allclose(r.as_numpy("predictions"), V1)
    t = grpcclient.InferInput("text", [2, 1], "BYTES")
    t.set_data_from_numpy(np.array([[b"hello"], [b"world"]], dtype=np.object_))
    r = c.infer("echo", [t])
    assert [x.decode() for x in r.as_numpy("output").ravel()] == ["hello", "world"]
    with pytest.raises(InferenceServerException) as e:
        c.infer("nope", [t])
    assert e.value.status() == "StatusCode.NOT_FOUND"
    t = grpcclient.InferInput("fixed acidity", [1], "FP64")
    t.set_data_from_numpy(np.array([1.0]))
    with pytest.raises(InferenceServerException) as e:
        c.infer("wine", [t])
    assert e.value.status() == "StatusCode.INVALID_ARGUMENT"


# --------------------------------------------------------------------------- MLServer codecs


def test_seed_000_string_request_codec(fixture_server):
    """Seed 000: one JSON string in, one JSON string out, through MLServer's own codec."""
    payload = {"a": 10}
    request = StringRequestCodec.encode_request([json.dumps(payload)])
    # The codec holds the string as bytes; pydantic's JSON encoding writes it as text.
    r = requests.post(
        f"{fixture_server['base']}/v2/models/echo/infer",
        data=request.model_dump_json(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    response = InferenceResponse.model_validate_json(r.text)
    raw_json = StringRequestCodec.decode_response(response)
    assert json.loads(raw_json[0]) == payload
    assert response.outputs[0].datatype == "BYTES"


def test_seed_000_hand_made_request(fixture_server):
    """The seed's create_request_to_mlserver_model(): bare string data, shape [len(string)]."""
    j_input = json.dumps({"a": 10})
    body = {"inputs": [{"name": "work_model1", "shape": [len(j_input)], "datatype": "BYTES", "data": j_input}]}
    r = requests.post(
        f"{fixture_server['base']}/v2/models/echo-raw/infer",
        json=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    response = InferenceResponse.parse_raw(r.text)
    assert json.loads(StringRequestCodec.decode_response(response)[0]) == {"a": 10}


def test_pandas_and_numpy_codecs(fixture_server):
    df = pd.DataFrame(WINE_ROWS, columns=WINE_COLUMNS)
    request = PandasCodec.encode_request(df)
    r = requests.post(
        f"{fixture_server['base']}/v2/models/wine/versions/v1/infer",
        json=request.model_dump(),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    response = InferenceResponse.model_validate_json(r.text)
    np.testing.assert_allclose(NumpyCodec.decode_output(response.outputs[0]), V1)
    # Seed 001's NumPy example: one 2-D input through NumpyCodec.
    request = InferenceRequest(inputs=[NumpyCodec.encode_input("x_0", np.array(WINE_ROWS))])
    r = requests.post(
        f"{fixture_server['base']}/v2/models/wine/versions/v1/infer",
        json=request.model_dump(),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(
        NumpyRequestCodec.decode_response(InferenceResponse.model_validate_json(r.text)), V1
    )


# --------------------------------------------------------------------------- plain requests


def test_reference_request_shapes(fixture_server):
    base = fixture_server["base"]
    columns = [
        {"name": n, "shape": [2, 1], "datatype": "FP64", "data": [WINE_ROWS[0][i], WINE_ROWS[1][i]]}
        for i, n in enumerate(WINE_COLUMNS)
    ]
    r = requests.post(f"{base}/v2/models/wine/versions/v1/infer", json={"inputs": columns, "id": "req-42"})
    body = r.json()
    assert (r.status_code, body["id"], body["model_name"]) == (200, "req-42", "wine")
    assert body["outputs"][0]["data"] == pytest.approx(V1)
    r = requests.post(
        f"{base}/v2/models/wine/infer", json={"inputs": columns, "parameters": {"content_type": "pd"}}
    )
    assert r.json()["outputs"][0]["data"] == pytest.approx(V2)
    # Where MLServer answers 422 with FastAPI's detail, or 500.
    r = requests.post(
        f"{base}/v2/models/wine/infer",
        data='{"inputs": [{"name": "x", ',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400 and set(r.json()) == {"error"}
    bad = [dict(c) for c in columns]
    bad[0]["data"] = ["a", "b"]
    r = requests.post(f"{base}/v2/models/wine/infer", json={"inputs": bad})
    assert r.status_code == 400 and "not a valid FP64 value" in r.json()["error"]
    r = requests.post(f"{base}/v2/models/wine/infer", json={"inputs": columns[:-1]})
    assert r.status_code == 400 and "'alcohol' (double)" in r.json()["error"]
    r = requests.post(f"{base}/v2/models/nope/infer", json={"inputs": columns})
    assert (r.status_code, r.json()) == (404, {"error": "Model nope not found"})
    r = requests.post(f"{base}/v2/repository/index", json={})
    assert {(e["name"], e["version"], e["state"]) for e in r.json()} == {
        ("wine", "v1", "READY"),
        ("wine", "v2", "READY"),
        ("echo", "v1", "READY"),
        ("echo-raw", "", "READY"),
    }


def test_mlflow_scoring_protocol(fixture_server):
    base = fixture_server["base"]
    assert requests.get(f"{base}/ping").text == "\n"
    assert requests.get(f"{base}/version").text == "3.17.2"
    url = f"{base}/models/wine/versions/v1/invocations"
    records = [dict(zip(WINE_COLUMNS, row)) for row in WINE_ROWS]
    for body in (
        {"dataframe_split": {"columns": WINE_COLUMNS, "data": WINE_ROWS}},
        {"dataframe_records": records},
        {"instances": records},
        {"inputs": {c: [r[i] for r in WINE_ROWS] for i, c in enumerate(WINE_COLUMNS)}},
        {"inputs": WINE_ROWS},
    ):
        r = requests.post(url, json=body)
        assert r.status_code == 200, (body, r.text)
        assert r.json()["predictions"] == pytest.approx(V1)
    csv = pd.DataFrame(WINE_ROWS, columns=WINE_COLUMNS).to_csv(index=False)
    r = requests.post(url, data=csv, headers={"Content-Type": "text/csv"})
    assert r.json()["predictions"] == pytest.approx(V1)
    r = requests.post(
        f"{base}/models/echo/invocations", json={"inputs": {"text": ["hello"]}, "params": {"suffix": "?"}}
    )
    assert r.json() == {"predictions": ["hello?"]}
    r = requests.post(url, data='{"dataframe_split": {"columns": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error_code"] == "BAD_REQUEST"
    # Several models: the global route cannot choose and says which routes can.
    r = requests.post(f"{base}/invocations", json={"inputs": {"text": ["x"]}})
    assert r.status_code == 400 and "/models/<name>/invocations" in r.json()["message"]
