"""Builds the serving benchmark's models and request bodies; run by bench/serving/run.py with the
interpreter of an environment that has mlflow, scikit-learn, xgboost and pandas.

    python build_models.py <out-dir> <rows,...>

Writes, below <out-dir>:
  models/<name>/            an MLflow model directory (`mlflow.<flavor>.save_model`)
  bodies/<name>-<rows>.v2.json           a V2 inference request, one input per column and
                                         `"parameters": {"content_type": "pd"}`, as MLServer's
                                         users send a DataFrame
  bodies/<name>-<rows>.invocations.json  the same rows as MLflow's `{"dataframe_split": …}`
  expected.json             per model and row count, what the model itself predicts for those
                            rows (loaded back with mlflow.pyfunc), so the driver can check that
                            every server answers the same
The data is synthetic or shipped with scikit-learn: nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

# Seed 001's wine columns and synthetic data, as the compatibility suite makes them.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "python"))
from test_seed_wine_elasticnet import synthetic_wine  # noqa: E402


def requirements(*modules) -> list[str]:
    """Pinned to what is installed: naming them spares mlflow inferring them, which loads every
    model once more in a subprocess and may pick up whatever else the environment imports."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", *modules)]


class Echo(mlflow.pyfunc.PythonModel):
    """The smallest pyfunc: what a server adds around a Python model, with no model work."""

    def predict(self, context, model_input, params=None):
        return model_input


def wine_model(path: Path) -> pd.DataFrame:
    """Seed 001's train.py: ElasticNet(alpha=0.5, l1_ratio=0.5) on the wine columns, signature
    inferred from the training frame."""
    from sklearn.linear_model import ElasticNet
    from sklearn.model_selection import train_test_split

    data = synthetic_wine(1000)
    train, test = train_test_split(data, random_state=42)
    train_x, train_y = train.drop(columns=["quality"]), train[["quality"]]
    model = ElasticNet(alpha=0.5, l1_ratio=0.5, random_state=42).fit(train_x, train_y)
    mlflow.sklearn.save_model(model, str(path), signature=infer_signature(train_x, train_y),
                              pip_requirements=requirements("scikit-learn"))
    return test.drop(columns=["quality"]).reset_index(drop=True)


def cancer_model(path: Path) -> pd.DataFrame:
    """Seed 003: an XGBClassifier on scikit-learn's breast-cancer set, saved with mlflow.xgboost
    and a signature."""
    import xgboost as xgb
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer(as_frame=True)
    train, test, y_train, _ = train_test_split(data.data, data.target, test_size=0.33, random_state=42)
    model = xgb.XGBClassifier(n_estimators=100, max_depth=3).fit(train, y_train)
    mlflow.xgboost.save_model(model, str(path), signature=infer_signature(train, y_train),
                              pip_requirements=requirements("xgboost"))
    return test.reset_index(drop=True)


def echo_model(path: Path) -> pd.DataFrame:
    """The echo pyfunc, taking the wine columns so its requests match the wine model's."""
    frame = synthetic_wine(200, seed=7).drop(columns=["quality"])
    mlflow.pyfunc.save_model(str(path), python_model=Echo(), signature=infer_signature(frame, frame),
                             pip_requirements=requirements("pandas"))
    return frame


BUILDERS = {"wine": wine_model, "cancer": cancer_model, "echo": echo_model}


def take_rows(pool: pd.DataFrame, n: int) -> pd.DataFrame:
    """n rows from the held-out data, cycling when the pool is smaller."""
    return pool.iloc[[i % len(pool) for i in range(n)]].reset_index(drop=True)


def v2_body(frame: pd.DataFrame) -> dict:
    return {
        "inputs": [
            {"name": column, "shape": [len(frame)], "datatype": "FP64", "data": frame[column].tolist()}
            for column in frame.columns
        ],
        "parameters": {"content_type": "pd"},
    }


def invocations_body(frame: pd.DataFrame) -> dict:
    return {"dataframe_split": {"columns": frame.columns.tolist(), "data": frame.values.tolist()}}


def plain(value):
    """A prediction as JSON: numbers stay numbers, frames become lists of records."""
    if isinstance(value, pd.DataFrame):
        return value.to_dict(orient="records")
    if isinstance(value, (pd.Series, np.ndarray)):
        return np.asarray(value).tolist()
    return value


def main() -> None:
    out = Path(sys.argv[1])
    rows = [int(r) for r in sys.argv[2].split(",")]
    names = sys.argv[3].split(",") if len(sys.argv) > 3 else list(BUILDERS)
    (out / "models").mkdir(parents=True, exist_ok=True)
    (out / "bodies").mkdir(parents=True, exist_ok=True)
    expected: dict = {}
    for name in names:
        path = out / "models" / name
        pool = BUILDERS[name](path)
        loaded = mlflow.pyfunc.load_model(str(path))
        expected[name] = {}
        for n in rows:
            frame = take_rows(pool, n)
            stem = out / "bodies" / f"{name}-{n}"
            Path(f"{stem}.v2.json").write_text(json.dumps(v2_body(frame)))
            Path(f"{stem}.invocations.json").write_text(json.dumps(invocations_body(frame)))
            expected[name][str(n)] = plain(loaded.predict(frame))
        print(f"built {name} in {path}", file=sys.stderr)
    (out / "expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main()
