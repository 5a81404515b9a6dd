"""The classic MLflow tutorial ``train.py``: ElasticNet on the wine-quality table.

The user's script logs params/metrics, infers a signature and logs the model as
``"model"`` (no registry), then serves it from ``runs:/<run_id>/model``. The data
set is synthesised with the real column names (no network access in tests).
"""

import math

import numpy as np
import pandas as pd
import pytest

import mlflow
import mlflow.sklearn
from mlflow.models.signature import infer_signature

WINE_FEATURES = [
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
]


def synthetic_wine(n: int = 400, seed: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    centers = [8.3, 0.53, 0.27, 2.5, 0.087, 15.9, 46.5, 0.9967, 3.31, 0.66, 10.4]
    scales = [1.7, 0.18, 0.19, 1.4, 0.047, 10.5, 32.9, 0.0019, 0.15, 0.17, 1.07]
    data = {
        name: rng.normal(c, s, n) for name, c, s in zip(WINE_FEATURES, centers, scales)
    }
    df = pd.DataFrame(data)
    quality = (
        5.6
        + 0.3 * (df["alcohol"] - 10.4)
        - 1.2 * (df["volatile acidity"] - 0.53)
        + 0.5 * (df["sulphates"] - 0.66)
        + rng.normal(0, 0.4, n)
    )
    df["quality"] = quality.round().clip(3, 9).astype(int)
    return df


def eval_metrics(actual, pred):
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    rmse = float(np.sqrt(mean_squared_error(actual, pred)))
    mae = float(mean_absolute_error(actual, pred))
    r2 = float(r2_score(actual, pred))
    return rmse, mae, r2


@pytest.mark.heavy
def test_train_py_logs_run_and_model_is_servable_from_runs_uri(experiment_id):
    from sklearn.linear_model import ElasticNet
    from sklearn.model_selection import train_test_split

    np.random.seed(40)
    data = synthetic_wine()
    train, test = train_test_split(data, random_state=40)
    train_x = train.drop(["quality"], axis=1)
    test_x = test.drop(["quality"], axis=1)
    train_y = train[["quality"]]
    test_y = test[["quality"]]
    alpha, l1_ratio = 0.5, 0.5

    with mlflow.start_run() as run:
        lr = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, random_state=42)
        lr.fit(train_x, train_y)
        predicted_qualities = lr.predict(test_x)
        rmse, mae, r2 = eval_metrics(test_y, predicted_qualities)

        mlflow.log_param("alpha", alpha)
        mlflow.log_param("l1_ratio", l1_ratio)
        mlflow.log_metric("rmse", rmse)
        mlflow.log_metric("r2", r2)
        mlflow.log_metric("mae", mae)

        model_signature = infer_signature(train_x, train_y)
        model_info = mlflow.sklearn.log_model(lr, "model", signature=model_signature)

    run_id = run.info.run_id

    # --- the run as stored by the server
    stored = mlflow.get_run(run_id)
    assert stored.info.experiment_id == experiment_id
    assert stored.info.status == "FINISHED"
    assert stored.info.end_time is not None and stored.info.end_time >= stored.info.start_time
    assert stored.data.params == {"alpha": "0.5", "l1_ratio": "0.5"}
    assert math.isclose(stored.data.metrics["rmse"], rmse, rel_tol=1e-12)
    assert math.isclose(stored.data.metrics["mae"], mae, rel_tol=1e-12)
    assert math.isclose(stored.data.metrics["r2"], r2, rel_tol=1e-12)
    assert stored.info.artifact_uri.endswith(f"{run_id}/artifacts")

    # --- the MLflow 3 logged model behind log_model
    assert model_info.model_id.startswith("m-")
    assert model_info.run_id == run_id
    logged = mlflow.get_logged_model(model_info.model_id)
    assert logged.name == "model"
    assert logged.source_run_id == run_id
    assert logged.experiment_id == experiment_id
    assert str(logged.status) in ("READY", "LoggedModelStatus.READY")
    assert logged.params.get("alpha") == "0.5"

    # --- serving it back: runs:/<run>/model is resolved through the logged model
    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    assert loaded.metadata.get_input_schema().input_names() == WINE_FEATURES
    served = np.asarray(loaded.predict(test_x)).ravel()
    np.testing.assert_allclose(served, np.asarray(lr.predict(test_x)).ravel(), rtol=1e-9)

    # the sklearn flavor gives back an equivalent estimator, too
    skl = mlflow.sklearn.load_model(model_info.model_uri)
    np.testing.assert_allclose(skl.predict(test_x), lr.predict(test_x), rtol=1e-9)
