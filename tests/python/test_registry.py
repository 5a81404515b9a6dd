"""Model registry: registering from log_model / register_model, versions, stages,
aliases, tags, search, rename/delete, loading through ``models:/`` URIs."""

import threading
import time

import numpy as np
import pandas as pd
import pytest

import mlflow
import mlflow.pyfunc
from mlflow.exceptions import MlflowException

SKLEARN_REQS = ["scikit-learn", "pandas"]


def _rm_names(models):
    return [m.name for m in models]


# ------------------------------------------------------------ user workflows


class MyModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input):
        return self.my_custom_function(model_input)

    def my_custom_function(self, model_input):
        return f"This is your input: {model_input}"


@pytest.mark.heavy
def test_custom_pyfunc_registered_twice_and_loaded_by_version(experiment_id, unique_name, client, tmp_dir):
    reg_model_name = unique_name("name_test_model1")
    my_model = MyModel()
    run_ids = []
    for _ in range(2):
        with mlflow.start_run(run_name="test_model_run") as run:
            model_path = f"path_test_model1-{run.info.run_id}"
            mlflow.pyfunc.save_model(
                path=str(tmp_dir / model_path), python_model=my_model, pip_requirements=["cloudpickle"]
            )
            info = mlflow.pyfunc.log_model(
                artifact_path=model_path,
                python_model=my_model,
                registered_model_name=reg_model_name,
                pip_requirements=["cloudpickle"],
            )
            assert str(info.registered_model_version) == str(len(run_ids) + 1)
        run_ids.append(run.info.run_id)

    rm = client.get_registered_model(reg_model_name)
    assert [v.version for v in rm.latest_versions] == ["2"]
    v2 = client.get_model_version(reg_model_name, "2")
    assert v2.run_id == run_ids[1]
    assert v2.status == "READY"
    assert v2.source == f"models:/{info.model_id}"
    assert v2.current_stage == "None"

    loaded_model = mlflow.pyfunc.load_model(f"models:/{reg_model_name}/2")
    assert loaded_model.predict(100) == "This is your input: 100"
    v1 = mlflow.pyfunc.load_model(f"models:/{reg_model_name}/1")
    assert v1.metadata.run_id == run_ids[0]

    # the logged model remembers its registrations
    tag = mlflow.get_logged_model(info.model_id).tags["mlflow.modelVersions"]
    assert reg_model_name in tag


def _wine(n=200, seed=40):
    rng = np.random.default_rng(seed)
    cols = ["fixed acidity", "volatile acidity", "citric acid", "residual sugar", "alcohol"]
    df = pd.DataFrame({c: rng.normal(1 + i, 0.3, n) for i, c in enumerate(cols)})
    df["quality"] = (5 + df["alcohol"] - df["volatile acidity"] + rng.normal(0, 0.2, n)).round()
    return df


@pytest.mark.heavy
def test_elasticnet_registered_from_log_model(experiment_id, unique_name, client, artifact_root):
    from sklearn.linear_model import ElasticNet
    from mlflow.models.signature import infer_signature

    name = unique_name("ElasticnetWineModel")
    data = _wine()
    train_x, train_y = data.drop(["quality"], axis=1), data[["quality"]]
    with mlflow.start_run() as run:
        lr = ElasticNet(alpha=0.5, l1_ratio=0.5, random_state=42).fit(train_x, train_y)
        mlflow.log_param("alpha", 0.5)
        mlflow.log_metric("rmse", 0.7)
        info = mlflow.sklearn.log_model(
            lr,
            "model",
            registered_model_name=name,
            signature=infer_signature(train_x, train_y),
            pip_requirements=SKLEARN_REQS,
        )
    assert str(info.registered_model_version) == "1"
    mv = client.get_model_version(name, "1")
    assert mv.run_id == run.info.run_id
    assert mv.source == f"models:/{info.model_id}"
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/1")
    np.testing.assert_allclose(np.asarray(loaded.predict(train_x.head(5))).ravel(), lr.predict(train_x.head(5)))
    uri = client.get_model_version_download_uri(name, "1")
    assert uri == f"{artifact_root}/{experiment_id}/models/{info.model_id}/artifacts"


@pytest.mark.heavy
def test_register_model_from_runs_uri_and_latest_versions(experiment_id, unique_name, client):
    """The pipeline registers the model from ``runs:/<run>/model`` and a later step
    loads ``models:/<name>/<latest version>``."""
    import xgboost as xgb
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    name = unique_name("CancerModel")
    booster_name = unique_name("CancerModelBooster")
    with mlflow.start_run() as run:
        booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(X, label=y), 5)
        mlflow.xgboost.log_model(booster, name="booster", input_example=X.head(3), pip_requirements=["xgboost"])
        mv_b = mlflow.register_model(f"runs:/{run.info.run_id}/booster", booster_name)
        clf = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(X, y)
        mlflow.xgboost.log_model(clf, name="model", input_example=X.head(3), pip_requirements=["xgboost"])
    mv = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    assert mv_b.version == "1" and mv.version == "1"
    assert mv.name == name
    assert mv.source.startswith("models:/m-")  # resolved client-side to the logged model
    assert mv.run_id == run.info.run_id

    last_version = mlflow.MlflowClient().get_registered_model(name).latest_versions[0].version
    assert last_version == "1"
    model = mlflow.xgboost.load_model(f"models:/{name}/{last_version}")
    np.testing.assert_array_equal(model.predict(X.head(20)), clf.predict(X.head(20)))
    pyf = mlflow.pyfunc.load_model(f"models:/{booster_name}/1")
    np.testing.assert_allclose(np.asarray(pyf.predict(X.head(5))).ravel(), booster.predict(xgb.DMatrix(X.head(5))), rtol=1e-6)

    # registering the same source again makes version 2
    mv2 = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    assert mv2.version == "2"
    assert [v.version for v in client.get_registered_model(name).latest_versions] == ["2"]


# ------------------------------------------------------------ metadata-only fixtures


@pytest.fixture
def model_with_versions(experiment_id, unique_name, client):
    """A registered model with 3 versions pointing at a real logged model."""
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    y = X["a"] * 2 + X["b"]
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(LinearRegression().fit(X, y), name="model", pip_requirements=SKLEARN_REQS)
    name = unique_name("reg")
    client.create_registered_model(name, tags={"owner": "lab"}, description="first")
    versions = [
        client.create_model_version(name, f"models:/{info.model_id}", run.info.run_id, model_id=info.model_id)
        for _ in range(3)
    ]
    return {"name": name, "versions": versions, "run_id": run.info.run_id, "model_id": info.model_id, "X": X, "y": y}


def test_create_and_get_registered_model(model_with_versions, client):
    name = model_with_versions["name"]
    rm = client.get_registered_model(name)
    assert rm.name == name
    assert rm.description == "first"
    assert rm.tags == {"owner": "lab"}
    assert rm.creation_timestamp <= rm.last_updated_timestamp
    assert [v.version for v in rm.latest_versions] == ["3"]  # latest per stage ("None")
    assert [v.version for v in model_with_versions["versions"]] == ["1", "2", "3"]
    err = pytest.raises(MlflowException, client.create_registered_model, name).value
    assert err.error_code == "RESOURCE_ALREADY_EXISTS"


def test_stage_transitions_and_archive_existing(model_with_versions, client):
    name = model_with_versions["name"]
    mv = client.transition_model_version_stage(name, "1", "Staging")
    assert mv.current_stage == "Staging"
    client.transition_model_version_stage(name, "2", "Production")
    client.transition_model_version_stage(name, "3", "Production", archive_existing_versions=True)
    stages = {v.version: v.current_stage for v in client.search_model_versions(f"name = '{name}'")}
    assert stages == {"1": "Staging", "2": "Archived", "3": "Production"}
    # archive_existing_versions=False keeps other versions in the stage
    client.transition_model_version_stage(name, "2", "Staging", archive_existing_versions=False)
    stages = {v.version: v.current_stage for v in client.search_model_versions(f"name = '{name}'")}
    assert stages == {"1": "Staging", "2": "Staging", "3": "Production"}

    latest = {v.current_stage: v.version for v in client.get_registered_model(name).latest_versions}
    assert latest == {"Staging": "2", "Production": "3"}
    assert [v.version for v in client.get_latest_versions(name, stages=["Staging"])] == ["2"]
    assert [v.version for v in client.get_latest_versions(name, stages=["Production"])] == ["3"]
    assert client.get_latest_versions(name, stages=["Archived"]) == []

    # stage names are case-insensitive on input and canonical on output
    assert client.transition_model_version_stage(name, "1", "archived").current_stage == "Archived"
    with pytest.raises(MlflowException) as ei:
        client.transition_model_version_stage(name, "1", "Nonsense")
    assert ei.value.error_code == "INVALID_PARAMETER_VALUE"

    # models:/name/Production resolves to the latest Production version
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/Production")
    X = model_with_versions["X"]
    np.testing.assert_allclose(np.asarray(loaded.predict(X)).ravel(), model_with_versions["y"].to_numpy())


def test_aliases(model_with_versions, client):
    name = model_with_versions["name"]
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    assert client.get_model_version(name, "1").aliases == ["champion"]
    assert client.get_registered_model(name).aliases == {"champion": "1", "challenger": "2"}
    # moving an alias
    client.set_registered_model_alias(name, "champion", "3")
    assert client.get_model_version_by_alias(name, "champion").version == "3"
    assert client.get_model_version(name, "1").aliases == []
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert loaded.metadata.model_id == model_with_versions["model_id"]
    # deleting
    client.delete_registered_model_alias(name, "challenger")
    assert client.get_registered_model(name).aliases == {"champion": "3"}
    with pytest.raises(MlflowException) as ei:
        client.get_model_version_by_alias(name, "challenger")
    assert ei.value.error_code == "INVALID_PARAMETER_VALUE"
    assert "Registered model alias challenger not found." in ei.value.message


def test_alias_errors(model_with_versions, api, check):
    name = model_with_versions["name"]
    r = api.get("/api/2.0/mlflow/registered-models/alias", params={"name": name, "alias": "nope"})
    body = check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert body["message"] == "Registered model alias nope not found."
    # alias pointing at a version that does not exist
    r = api.post("/api/2.0/mlflow/registered-models/alias", json={"name": name, "alias": "x", "version": "99"})
    check.assert_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    # version-like aliases are reserved
    r = api.post("/api/2.0/mlflow/registered-models/alias", json={"name": name, "alias": "v1", "version": "1"})
    check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    r = api.post("/api/2.0/mlflow/registered-models/alias", json={"name": name, "alias": "latest", "version": "1"})
    check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")


def test_tags_on_models_and_versions(model_with_versions, client):
    name = model_with_versions["name"]
    client.set_registered_model_tag(name, "task", "regression")
    client.set_registered_model_tag(name, "owner", "ops")  # overwrite
    client.set_model_version_tag(name, "2", "validated", "true")
    rm = client.get_registered_model(name)
    assert rm.tags == {"owner": "ops", "task": "regression"}
    assert client.get_model_version(name, "2").tags == {"validated": "true"}
    client.delete_registered_model_tag(name, "task")
    client.delete_model_version_tag(name, "2", "validated")
    assert client.get_registered_model(name).tags == {"owner": "ops"}
    assert client.get_model_version(name, "2").tags == {}


def test_descriptions(model_with_versions, client):
    name = model_with_versions["name"]
    rm = client.update_registered_model(name, description="updated")
    assert rm.description == "updated"
    mv = client.update_model_version(name, "1", description="v1 notes")
    assert mv.description == "v1 notes"
    assert client.get_model_version(name, "1").description == "v1 notes"


def test_search_registered_models(unique_name, client):
    prefix = unique_name("srm")
    for suffix, team in (("b", "x"), ("a", "y"), ("c", "x")):
        client.create_registered_model(f"{prefix}-{suffix}", tags={"team": team})
    got = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'", order_by=["name ASC"])
    assert _rm_names(got) == [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]
    got = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'", order_by=["name DESC"])
    assert _rm_names(got) == [f"{prefix}-c", f"{prefix}-b", f"{prefix}-a"]
    got = client.search_registered_models(
        filter_string=f"name LIKE '{prefix}-%' AND tags.team = 'x'", order_by=["name ASC"]
    )
    assert _rm_names(got) == [f"{prefix}-b", f"{prefix}-c"]
    got = client.search_registered_models(filter_string=f"name = '{prefix}-a'")
    assert _rm_names(got) == [f"{prefix}-a"]
    got = client.search_registered_models(filter_string=f"name ILIKE '{prefix.upper()}-%'")
    assert sorted(_rm_names(got)) == [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]
    # paging
    page = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'", order_by=["name ASC"], max_results=2)
    assert _rm_names(page) == [f"{prefix}-a", f"{prefix}-b"] and page.token
    rest = client.search_registered_models(
        filter_string=f"name LIKE '{prefix}-%'", order_by=["name ASC"], max_results=2, page_token=page.token
    )
    assert _rm_names(rest) == [f"{prefix}-c"]
    # last_updated_timestamp ordering
    got = client.search_registered_models(
        filter_string=f"name LIKE '{prefix}-%'", order_by=["last_updated_timestamp DESC"]
    )
    assert len(got) == 3


def test_search_registered_models_raw_with_prompt_clause(unique_name, client, api):
    """The client appends ``AND tag.`mlflow.prompt.is_prompt` != 'true'`` to every filter."""
    name = unique_name("raw-srm")
    client.create_registered_model(name)
    flt = f"name = '{name}' AND tag.`mlflow.prompt.is_prompt` != 'true'"
    r = api.get("/api/2.0/mlflow/registered-models/search", params={"filter": flt, "max_results": 100})
    assert r.status_code == 200, r.text
    assert [m["name"] for m in r.json()["registered_models"]] == [name]
    r = api.get(
        "/api/2.0/mlflow/registered-models/search",
        params={"filter": "tag.`mlflow.prompt.is_prompt` != 'true'", "max_results": 5, "order_by": "name ASC"},
    )
    assert r.status_code == 200, r.text


def test_search_model_versions(model_with_versions, unique_name, client):
    name = model_with_versions["name"]
    run_id = model_with_versions["run_id"]
    client.set_model_version_tag(name, "2", "validated", "true")
    got = client.search_model_versions(f"name = '{name}'")
    assert sorted(v.version for v in got) == ["1", "2", "3"]
    # Without an order, the most recently changed versions come first (MLflow's default).
    time.sleep(0.01)
    client.update_model_version(name, "1", description="retrained")
    got = client.search_model_versions(f"name = '{name}'")
    assert [v.version for v in got] == ["1", "3", "2"]
    got = client.search_model_versions(f"name='{name}'", order_by=["version_number DESC"])
    assert [v.version for v in got] == ["3", "2", "1"]
    got = client.search_model_versions(f"name = '{name}' AND tags.validated = 'true'")
    assert [v.version for v in got] == ["2"]
    got = client.search_model_versions(f"run_id = '{run_id}'")
    assert sorted(v.version for v in got) == ["1", "2", "3"]
    assert {v.name for v in got} == {name}
    got = client.search_model_versions(f"name = '{name}' AND version_number > 1", order_by=["version_number ASC"])
    assert [v.version for v in got] == ["2", "3"]
    page = client.search_model_versions(f"name = '{name}'", max_results=2, order_by=["version_number ASC"])
    assert [v.version for v in page] == ["1", "2"] and page.token
    rest = client.search_model_versions(
        f"name = '{name}'", max_results=2, order_by=["version_number ASC"], page_token=page.token
    )
    assert [v.version for v in rest] == ["3"]
    with pytest.raises(MlflowException) as ei:
        client.search_model_versions("name <<< 'x'")
    assert ei.value.error_code == "INVALID_PARAMETER_VALUE"


def test_rename_registered_model(model_with_versions, unique_name, client):
    old = model_with_versions["name"]
    new = unique_name("renamed")
    client.set_registered_model_alias(old, "best", "2")
    client.rename_registered_model(old, new)
    assert client.get_registered_model(new).name == new
    with pytest.raises(MlflowException) as ei:
        client.get_registered_model(old)
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.get_model_version(new, "2").name == new
    assert client.get_model_version_by_alias(new, "best").version == "2"
    assert sorted(v.version for v in client.search_model_versions(f"name = '{new}'")) == ["1", "2", "3"]
    assert mlflow.pyfunc.load_model(f"models:/{new}/1") is not None


def test_delete_version_and_model(model_with_versions, client, api, check):
    name = model_with_versions["name"]
    client.delete_model_version(name, "2")
    with pytest.raises(MlflowException) as ei:
        client.get_model_version(name, "2")
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert sorted(v.version for v in client.search_model_versions(f"name = '{name}'")) == ["1", "3"]
    # versions are never reused after a delete
    mv = client.create_model_version(
        name,
        f"models:/{model_with_versions['model_id']}",
        model_with_versions["run_id"],
        model_id=model_with_versions["model_id"],
    )
    assert mv.version == "4"
    client.delete_registered_model(name)
    with pytest.raises(MlflowException) as ei:
        client.get_registered_model(name)
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.search_model_versions(f"name = '{name}'") == []
    check.assert_error(
        api.delete("/api/2.0/mlflow/registered-models/delete", json={"name": name}), 404, "RESOURCE_DOES_NOT_EXIST"
    )


def test_download_uri_and_loading_by_version(model_with_versions, client, experiment_id, artifact_root):
    name = model_with_versions["name"]
    model_id = model_with_versions["model_id"]
    assert client.get_model_version_download_uri(name, "1") == (
        f"{artifact_root}/{experiment_id}/models/{model_id}/artifacts"
    )
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/3")
    X = model_with_versions["X"]
    np.testing.assert_allclose(np.asarray(loaded.predict(X)).ravel(), model_with_versions["y"].to_numpy())


def test_create_model_version_for_missing_model(client, unique_name, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    with pytest.raises(MlflowException) as ei:
        client.create_model_version(unique_name("ghost"), f"runs:/{run_id}/model", run_id)
    assert ei.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_models_source_must_match_model_id(model_with_versions, client, api, check):
    """A ``models:/m-…`` source is only accepted together with the matching model_id."""
    name = model_with_versions["name"]
    model_id = model_with_versions["model_id"]
    r = api.post("/api/2.0/mlflow/model-versions/create", json={"name": name, "source": f"models:/{model_id}"})
    body = check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert body["message"].startswith(f"Invalid model version source: 'models:/{model_id}'.")
    r = api.post(
        "/api/2.0/mlflow/model-versions/create",
        json={"name": name, "source": f"models:/{model_id}", "model_id": model_id},
    )
    assert r.status_code == 200, r.text
    mv = r.json()["model_version"]
    assert mv["version"] == "4"
    assert mv["source"] == f"models:/{model_id}"
    assert mv["run_id"] == model_with_versions["run_id"]  # filled in from the logged model
    assert mv["status"] == "READY"


def test_concurrent_registrations_get_distinct_consecutive_versions(experiment_id, unique_name, client):
    """16 parallel ``create_model_version`` calls for one model: versions 1..16 exactly."""
    name = unique_name("concurrent")
    client.create_registered_model(name)
    run_id = client.create_run(experiment_id).info.run_id
    results, errors = [], []
    barrier = threading.Barrier(16)

    def register():
        c = mlflow.MlflowClient()
        try:
            barrier.wait(timeout=30)
            results.append(c.create_model_version(name, f"runs:/{run_id}/model", run_id).version)
        except Exception as e:  # collected and reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=register) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(int(v) for v in results) == list(range(1, 17))
    stored = client.search_model_versions(f"name = '{name}'")
    assert sorted(int(v.version) for v in stored) == list(range(1, 17))
