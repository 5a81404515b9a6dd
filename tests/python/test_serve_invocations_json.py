"""``/invocations`` answers in MLflow's exact JSON for every kind of pyfunc output.

Clients written against ``mlflow models serve`` parse its answers: a named Series comes back as
records keyed by the Series' name, an unnamed one keyed ``"0"``, a string as a bare string, a
dict as an object. One custom pyfunc returns each kind in turn (chosen by the request's
``kind`` column); every answer of ``mlox serve -m`` is compared with what MLflow's own scoring
server function (``mlflow.pyfunc.scoring_server.invocations``) answers for the same model and
body, in this process.
"""

from __future__ import annotations

import json
import sys

import pytest
import requests

import mlflow
from conftest import _free_port
from test_serve import ServeProcess, serve_env

pytestmark = [pytest.mark.mlox_only, pytest.mark.heavy, pytest.mark.standalone]

KINDS = [
    "named_series",
    "unnamed_series",
    "int_series_named",
    "dataframe",
    "one_column_dataframe",
    "array_1d",
    "array_2d",
    "array_0d",
    "list_of_floats",
    "list_of_strings",
    "dict_of_arrays",
    "string",
    "integer",
    "float",
    "numpy_scalar",
]


class EveryOutput(mlflow.pyfunc.PythonModel):
    """Returns the kind of value named by the first row's ``kind``."""

    def predict(self, context, model_input):
        import numpy as np
        import pandas as pd

        kind = model_input["kind"].iloc[0]
        x = model_input["x"]
        if kind == "named_series":
            return x * 2
        if kind == "unnamed_series":
            return pd.Series((x * 2).tolist())
        if kind == "int_series_named":
            return pd.Series(range(len(x)), name="count")
        if kind == "dataframe":
            return pd.DataFrame({"y": x * 2, "label": [f"r{i}" for i in range(len(x))]})
        if kind == "one_column_dataframe":
            return pd.DataFrame({"y": x * 2})
        if kind == "array_1d":
            return (x * 2).to_numpy()
        if kind == "array_2d":
            return np.stack([x.to_numpy(), (x * 2).to_numpy()], axis=1)
        if kind == "array_0d":
            return np.array(x.sum())
        if kind == "list_of_floats":
            return [float(v) for v in x]
        if kind == "list_of_strings":
            return [f"item-{i}" for i in range(len(x))]
        if kind == "dict_of_arrays":
            return {"a": (x * 2).to_numpy(), "b": np.array(["u"] * len(x))}
        if kind == "string":
            return "hello"
        if kind == "integer":
            return 7
        if kind == "float":
            return 2.5
        if kind == "numpy_scalar":
            return np.float64(x.sum())
        raise ValueError(f"unknown kind {kind}")


import cloudpickle  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("invocations-json")
    model_dir = root / "every-output"
    mlflow.pyfunc.save_model(path=str(model_dir), python_model=EveryOutput())
    port = _free_port()
    # One worker and no merging: each request is its own predict call, as in MLflow.
    server = ServeProcess(
        ["-m", str(model_dir), "-h", "127.0.0.1", "-p", str(port), "-w", "1", "--merge-waiting", "1"],
        root,
        port,
        serve_env(root),
    )
    try:
        server.wait_loaded()
        yield server, mlflow.pyfunc.load_model(str(model_dir))
    finally:
        server.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_predictions_are_encoded_as_mlflow_encodes_them(served, kind):
    from mlflow.pyfunc.scoring_server import invocations

    server, model = served
    body = json.dumps({"dataframe_split": {"columns": ["kind", "x"], "data": [[kind, 1.5], [kind, 2.5]]}})
    expected = invocations(body, "application/json", model, model.metadata.get_input_schema())
    assert expected.status == 200, expected.response
    r = requests.post(f"{server.base}/invocations", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    got, want = r.json(), json.loads(expected.response)
    assert got == want
    # Object keys in MLflow's order too (records follow the frame's columns).
    assert json.dumps(got) == json.dumps(want)
