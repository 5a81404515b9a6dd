"""Model logging and loading (MLflow 3 LoggedModel workflow) for sklearn and
xgboost, plus the LoggedModel API itself."""

import json

import numpy as np
import pandas as pd
import pytest

import mlflow
import mlflow.sklearn
import mlflow.xgboost
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

# Skips the client's (slow, purely local) requirements inference; server traffic is unchanged.
SKLEARN_REQS = ["scikit-learn", "pandas"]
XGB_REQS = ["xgboost", "pandas"]


def _status(model) -> str:
    s = model.status
    return s.name if hasattr(s, "name") else str(s)


def diabetes():
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return X, y


def cancer():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


@pytest.mark.heavy
def test_sklearn_log_model_with_signature_and_input_example(experiment_id, client, tmp_dir):
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = diabetes()
    model = make_pipeline(StandardScaler(), Ridge(alpha=0.5)).fit(X, y)
    signature = infer_signature(X, model.predict(X))
    with mlflow.start_run() as run:
        mlflow.log_params({"alpha": 0.5, "scaler": "standard"})
        mlflow.log_metric("train_r2", model.score(X, y))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=X.head(3),
            pip_requirements=SKLEARN_REQS,
        )
    rid = run.info.run_id
    assert info.model_id.startswith("m-")
    assert info.signature == signature
    assert info.flavors.keys() >= {"python_function", "sklearn"}

    # the model's files live under the logged model, not the run
    files = {f.path for f in client.list_logged_model_artifacts(info.model_id)}
    assert {"MLmodel", "input_example.json", "serving_input_example.json", "requirements.txt"} <= files
    lm = mlflow.get_logged_model(info.model_id)
    assert _status(lm) == "READY"
    assert lm.source_run_id == rid
    assert lm.params == {"alpha": "0.5", "scaler": "standard"}
    assert lm.artifact_location.endswith(f"/models/{info.model_id}/artifacts")

    # the run records the model as an output and its metrics are linked to the model
    stored = client.get_run(rid)
    assert [o.model_id for o in stored.outputs.model_outputs] == [info.model_id]
    assert [m.key for m in lm.metrics] == ["train_r2"]
    assert lm.metrics[0].run_id == rid

    # load three ways; all predict exactly like the in-process model
    expected = model.predict(X.head(20))
    for uri in (f"runs:/{rid}/model", f"models:/{info.model_id}", info.model_uri):
        loaded = mlflow.pyfunc.load_model(uri)
        np.testing.assert_allclose(np.asarray(loaded.predict(X.head(20))).ravel(), expected, rtol=1e-12)
        assert loaded.metadata.signature == signature
    native = mlflow.sklearn.load_model(f"models:/{info.model_id}")
    np.testing.assert_allclose(native.predict(X.head(20)), expected, rtol=1e-12)

    # the stored input example is usable as-is
    mlmodel = mlflow.models.Model.load(f"models:/{info.model_id}")
    ex = mlmodel.load_input_example(mlflow.artifacts.download_artifacts(f"models:/{info.model_id}", dst_path=str(tmp_dir)))
    assert list(ex.columns) == list(X.columns)
    assert len(ex) == 3


@pytest.mark.heavy
def test_xgboost_booster_and_classifier(experiment_id, client):
    """The pipeline's training step: a Booster and an XGBClassifier from one run."""
    import xgboost as xgb

    X, y = cancer()
    features = list(X.columns)
    train_x, test_x = X.iloc[:400], X.iloc[400:]
    train_y, test_y = y.iloc[:400], y.iloc[400:]
    dtrain = xgb.DMatrix(train_x, label=train_y)
    dtest = xgb.DMatrix(test_x, label=test_y)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "eval_metric": ["auc", "error"]}
    with mlflow.start_run() as run:
        mlflow.log_params({k: v for k, v in params.items() if k != "eval_metric"})
        booster = xgb.train(params, dtrain, num_boost_round=20, evals=[(dtest, "test")], verbose_eval=False)
        input_example = test_x.iloc[0:10]
        b_info = mlflow.xgboost.log_model(
            booster, name="booster", input_example=input_example, pip_requirements=XGB_REQS
        )
        preds = pd.DataFrame(booster.predict(xgb.DMatrix(input_example)), columns=["predictions"])
        mlflow.log_text(preds.to_json(orient="split", index=False), "booster/predictions_example.json")

        clf = xgb.XGBClassifier(n_estimators=20, max_depth=3, learning_rate=0.3).fit(train_x, train_y)
        signature = infer_signature(train_x, clf.predict(train_x))
        c_info = mlflow.xgboost.log_model(
            clf, name="model", signature=signature, input_example=input_example, pip_requirements=XGB_REQS
        )
    rid = run.info.run_id

    assert b_info.model_id != c_info.model_id
    outputs = {o.model_id for o in client.get_run(rid).outputs.model_outputs}
    assert outputs == {b_info.model_id, c_info.model_id}

    # booster: pyfunc returns scores
    b_loaded = mlflow.pyfunc.load_model(f"runs:/{rid}/booster")
    np.testing.assert_allclose(
        np.asarray(b_loaded.predict(test_x)).ravel(), booster.predict(dtest), rtol=1e-6
    )
    assert mlflow.xgboost.load_model(b_info.model_uri).num_boosted_rounds() == 20
    # the run artifact under the same "booster/" prefix is independent of the model
    assert json.loads(mlflow.artifacts.load_text(f"{run.info.artifact_uri}/booster/predictions_example.json"))[
        "columns"
    ] == ["predictions"]

    # classifier: pyfunc returns classes, native flavor gives predict_proba back
    c_loaded = mlflow.pyfunc.load_model(f"runs:/{rid}/model")
    np.testing.assert_array_equal(np.asarray(c_loaded.predict(test_x)).ravel(), clf.predict(test_x))
    native = mlflow.xgboost.load_model(f"models:/{c_info.model_id}")
    np.testing.assert_allclose(native.predict_proba(test_x)[:, 1], clf.predict_proba(test_x)[:, 1], rtol=1e-6)
    assert c_loaded.metadata.get_input_schema().input_names() == features


# ----------------------------------------------------------------- LoggedModel API


def test_logged_model_lifecycle(experiment_id, client, artifact_root):
    with mlflow.start_run() as run:
        lm = mlflow.initialize_logged_model(
            name="handmade", tags={"team": "a"}, params={"p": "1"}, model_type="agent"
        )
    assert lm.model_id.startswith("m-")
    assert _status(lm) == "PENDING"
    assert lm.source_run_id == run.info.run_id
    assert lm.experiment_id == experiment_id
    assert lm.name == "handmade"
    assert lm.model_type == "agent"
    assert lm.tags["team"] == "a"
    assert lm.params == {"p": "1"}
    assert lm.artifact_location == f"{artifact_root}/{experiment_id}/models/{lm.model_id}/artifacts"

    fetched = mlflow.get_logged_model(lm.model_id)
    assert fetched.model_id == lm.model_id
    assert fetched.creation_timestamp == lm.creation_timestamp

    mlflow.set_logged_model_tags(lm.model_id, {"stage": "eval", "team": "b"})
    tags = mlflow.get_logged_model(lm.model_id).tags
    assert tags["stage"] == "eval" and tags["team"] == "b"
    mlflow.delete_logged_model_tag(lm.model_id, "stage")
    assert "stage" not in mlflow.get_logged_model(lm.model_id).tags

    done = mlflow.finalize_logged_model(lm.model_id, LoggedModelStatus.READY)
    assert _status(done) == "READY"
    again = mlflow.get_logged_model(lm.model_id)
    assert _status(again) == "READY"
    assert again.last_updated_timestamp >= again.creation_timestamp

    client.delete_logged_model(lm.model_id)
    with pytest.raises(MlflowException) as ei:
        mlflow.get_logged_model(lm.model_id)
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_finalize_failed_status(experiment_id):
    lm = mlflow.initialize_logged_model(name="broken")
    assert _status(mlflow.finalize_logged_model(lm.model_id, "FAILED")) == "FAILED"


def test_search_logged_models(experiment_id, unique_name, client):
    other_exp = client.create_experiment(unique_name("lm-other"))
    with mlflow.start_run() as run:
        a = mlflow.initialize_logged_model(name="alpha", params={"lr": "0.1"}, tags={"k": "x"})
        mlflow.log_metric("acc", 0.9, model_id=a.model_id)
        b = mlflow.initialize_logged_model(name="beta", params={"lr": "0.2"}, tags={"k": "y"})
        mlflow.log_metric("acc", 0.7, model_id=b.model_id)
    c = mlflow.initialize_logged_model(name="alpha", experiment_id=other_exp)
    mlflow.finalize_logged_model(a.model_id, "READY")

    def ids(**kw):
        return [m.model_id for m in mlflow.search_logged_models(output_format="list", **kw)]

    mine = ids(experiment_ids=[experiment_id])
    assert sorted(mine) == sorted([a.model_id, b.model_id])
    # default order: newest first
    assert mine == [b.model_id, a.model_id]
    assert ids(experiment_ids=[experiment_id], filter_string="name = 'alpha'") == [a.model_id]
    assert sorted(ids(experiment_ids=[experiment_id, other_exp], filter_string="name = 'alpha'")) == sorted(
        [a.model_id, c.model_id]
    )
    assert ids(experiment_ids=[experiment_id], filter_string="params.lr = '0.2'") == [b.model_id]
    assert ids(experiment_ids=[experiment_id], filter_string="tags.k = 'x'") == [a.model_id]
    assert ids(experiment_ids=[experiment_id], filter_string="metrics.acc > 0.8") == [a.model_id]
    assert sorted(ids(experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'")) == sorted(
        [a.model_id, b.model_id]
    )
    assert ids(experiment_ids=[experiment_id], filter_string=f"model_id = '{b.model_id}'") == [b.model_id]
    assert ids(
        experiment_ids=[experiment_id], order_by=[{"field_name": "metrics.acc", "ascending": True}]
    ) == [b.model_id, a.model_id]
    assert ids(experiment_ids=[experiment_id], order_by=[{"field_name": "name", "ascending": False}]) == [
        b.model_id,
        a.model_id,
    ]
    assert ids(experiment_ids=[experiment_id], max_results=1) == [b.model_id]
    # paging through the client
    page = client.search_logged_models([experiment_id], max_results=1)
    assert len(page) == 1 and page.token
    page2 = client.search_logged_models([experiment_id], max_results=1, page_token=page.token)
    assert [m.model_id for m in page2] == [a.model_id]
    df = mlflow.search_logged_models(experiment_ids=[experiment_id])
    assert isinstance(df, pd.DataFrame) and len(df) == 2
    assert run.info.run_id in set(df["source_run_id"])


def test_get_unknown_logged_model_is_404(experiment_id, api):
    with pytest.raises(MlflowException) as ei:
        mlflow.get_logged_model("m-00000000000000000000000000000000")
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    r = api.get("/api/2.0/mlflow/logged-models/m-00000000000000000000000000000000")
    assert r.status_code == 404
    assert r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_logged_model_registrations_source_runs_and_dataset_search(experiment_id, unique_name, client):
    # A source run the server does not know is recorded as given, as MLflow does.
    foreign = client.create_logged_model(experiment_id, source_run_id="123")
    assert client.get_logged_model(foreign.model_id).source_run_id == "123"

    model = client.create_logged_model(experiment_id)
    name = unique_name("reg")
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, model.artifact_location, model_id=model.model_id)
    tag = client.get_logged_model(model.model_id).tags["mlflow.modelVersions"]
    assert tag == f'[{{"name": "{name}", "version": 1}}, {{"name": "{name}", "version": 2}}]'

    run = client.create_run(experiment_id)
    client.log_metric(
        run.info.run_id, "acc", 0.9, dataset_name="eval", dataset_digest="d1", model_id=model.model_id
    )
    found = client.search_logged_models(
        [experiment_id], datasets=[{"dataset_name": "eval", "dataset_digest": "d1"}]
    )
    assert [m.model_id for m in found] == [model.model_id]
    assert client.search_logged_models([experiment_id], datasets=[{"dataset_name": "other"}]) == []
