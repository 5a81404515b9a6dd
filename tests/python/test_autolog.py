"""Autologging: the client decides what to log, the server must store all of it."""

import numpy as np
import pytest

import mlflow
import mlflow.sklearn
import mlflow.xgboost


@pytest.mark.heavy
def test_sklearn_autolog_records_params_metrics_and_model(experiment_id, client):
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import ElasticNet

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    mlflow.sklearn.autolog(log_input_examples=False, log_model_signatures=True, silent=True)
    try:
        with mlflow.start_run() as run:
            model = ElasticNet(alpha=0.01, l1_ratio=0.3, random_state=1).fit(X, y)
    finally:
        mlflow.sklearn.autolog(disable=True)
    rid = run.info.run_id
    data = client.get_run(rid).data
    assert data.params["alpha"] == "0.01"
    assert data.params["l1_ratio"] == "0.3"
    assert data.params["random_state"] == "1"
    for key in ("training_score", "training_r2_score", "training_mean_squared_error"):
        assert key in data.metrics, sorted(data.metrics)
    assert data.metrics["training_score"] == pytest.approx(model.score(X, y))
    assert data.tags["estimator_name"] == "ElasticNet"
    assert data.tags["estimator_class"] == "sklearn.linear_model._coordinate_descent.ElasticNet"

    models = mlflow.search_logged_models(experiment_ids=[experiment_id], output_format="list")
    assert [m.source_run_id for m in models] == [rid]
    loaded = mlflow.pyfunc.load_model(f"models:/{models[0].model_id}")
    np.testing.assert_allclose(np.asarray(loaded.predict(X.head(10))).ravel(), model.predict(X.head(10)))
    # the training data set is recorded as a run input
    inputs = client.get_run(rid).inputs.dataset_inputs
    assert any({t.key: t.value for t in d.tags}.get("mlflow.data.context") == "train" for d in inputs)


@pytest.mark.heavy
def test_xgboost_autolog_with_xgb_train(experiment_id, client):
    import xgboost as xgb
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    dtrain = xgb.DMatrix(X.iloc[:400], label=y.iloc[:400])
    dtest = xgb.DMatrix(X.iloc[400:], label=y.iloc[400:])
    params = {"objective": "binary:logistic", "max_depth": 2, "eta": 0.5, "eval_metric": ["auc", "logloss"]}
    mlflow.xgboost.autolog(log_input_examples=False, silent=True)
    try:
        with mlflow.start_run() as run:
            booster = xgb.train(params, dtrain, num_boost_round=8, evals=[(dtest, "test")], verbose_eval=False)
    finally:
        mlflow.xgboost.autolog(disable=True)
    rid = run.info.run_id
    data = client.get_run(rid).data
    assert data.params["max_depth"] == "2"
    assert data.params["eta"] == "0.5"
    assert data.params["num_boost_round"] == "8"
    # per-iteration evaluation metrics, one point per boosting round
    auc = client.get_metric_history(rid, "test-auc")
    assert [m.step for m in auc] == list(range(8))
    logloss = client.get_metric_history(rid, "test-logloss")
    assert len(logloss) == 8
    assert logloss[-1].value < logloss[0].value
    assert data.metrics["test-logloss"] == pytest.approx(logloss[-1].value)
    # feature importance artifacts and the model
    names = {f.path for f in client.list_artifacts(rid)}
    assert any(n.startswith("feature_importance_weight") for n in names), names
    models = mlflow.search_logged_models(experiment_ids=[experiment_id], output_format="list")
    assert len(models) == 1 and models[0].source_run_id == rid
    loaded = mlflow.xgboost.load_model(f"models:/{models[0].model_id}")
    np.testing.assert_allclose(loaded.predict(dtest), booster.predict(dtest), rtol=1e-6)
