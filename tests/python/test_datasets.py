"""Data-preprocessing step of a pipeline: counts as metrics, CSV splits as text
artifacts, and dataset lineage through ``mlflow.data`` + ``mlflow.log_input``."""

import json

import pandas as pd
import pytest

import mlflow
import mlflow.data


def cancer_frame():
    from sklearn import datasets

    cancer = datasets.load_breast_cancer()
    X = pd.DataFrame(cancer.data, columns=cancer.feature_names)
    y = pd.Series(cancer.target)
    X["additional_feature"] = X["mean symmetry"] / X["mean texture"]
    return X, y


def _inputs_by_name(run):
    return {d.dataset.name: d for d in run.inputs.dataset_inputs}


def _http_url_of(artifact_uri: str, server_url: str) -> str:
    # With --serve-artifacts the artifact URI is ``mlflow-artifacts:/<path>``, which
    # mlflow.data cannot resolve as a dataset source; the same file is served over
    # plain HTTP by the artifact proxy, so the HTTP URL is the usable source.
    prefix = "mlflow-artifacts:/"
    assert artifact_uri.startswith(prefix), artifact_uri
    return f"{server_url}/api/2.0/mlflow-artifacts/artifacts/{artifact_uri[len(prefix):]}"


@pytest.mark.proxied_artifacts
def test_mlflow_artifacts_uri_is_not_a_dataset_source(experiment_id):
    """Documented client behaviour: ``source=mlflow.get_artifact_uri(...)`` fails
    client-side when artifacts are proxied (no resolver for ``mlflow-artifacts:``)."""
    df = pd.DataFrame({"a": [1]})
    with mlflow.start_run():
        uri = mlflow.get_artifact_uri("datasets/train.csv")
        assert uri.startswith("mlflow-artifacts:/")
        with pytest.raises(mlflow.exceptions.MlflowException, match="source information resolver"):
            mlflow.data.from_pandas(df, name="train", source=uri)


@pytest.mark.proxied_artifacts
def test_preprocessing_run_logs_counts_csvs_and_dataset_inputs(experiment_id, tmp_dir, server_url):
    from sklearn.model_selection import train_test_split

    X, y = cancer_frame()
    with mlflow.start_run(run_name="Data_Preprocessing") as run:
        mlflow.log_metric("full_data_size", X.shape[0])
        mlflow.log_metric("features_count", X.shape[1])
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
        mlflow.log_metric("train_size", X_train.shape[0])
        mlflow.log_metric("test_size", X_test.shape[0])

        train = X_train.assign(target=y_train)
        mlflow.log_text(train.to_csv(index=False), "datasets/train.csv")
        train_artifact = mlflow.get_artifact_uri("datasets/train.csv")
        train_source = _http_url_of(train_artifact, server_url)
        train_ds = mlflow.data.from_pandas(train, name="train", targets="target", source=train_source)
        mlflow.log_input(train_ds, context="training")

        test = X_test.assign(target=y_test)
        mlflow.log_text(test.to_csv(index=False), "datasets/test.csv")
        test_source = _http_url_of(mlflow.get_artifact_uri("datasets/test.csv"), server_url)
        test_ds = mlflow.data.from_pandas(test, name="test", targets="target", source=test_source)
        mlflow.log_input(test_ds)  # no context tag

    stored = mlflow.get_run(run.info.run_id)
    assert stored.data.metrics == {
        "full_data_size": 569.0,
        "features_count": 31.0,
        "train_size": 398.0,
        "test_size": 171.0,
    }

    inputs = _inputs_by_name(stored)
    assert set(inputs) == {"train", "test"}

    tr = inputs["train"]
    assert tr.dataset.digest == train_ds.digest
    assert tr.dataset.source_type == "http"
    assert json.loads(tr.dataset.source) == {"url": train_source}
    schema = json.loads(tr.dataset.schema)
    col_names = [c["name"] for c in schema["mlflow_colspec"]]
    assert col_names == list(train.columns)
    profile = json.loads(tr.dataset.profile)
    assert profile["num_rows"] == len(train)
    assert {t.key: t.value for t in tr.tags} == {"mlflow.data.context": "training"}

    te = inputs["test"]
    assert te.dataset.digest == test_ds.digest
    assert {t.key: t.value for t in te.tags} == {}

    # the dataset's source points at the CSV artifact, which round-trips byte-exactly
    local = mlflow.artifacts.download_artifacts(artifact_uri=train_artifact, dst_path=str(tmp_dir))
    assert pd.read_csv(local).shape == train.shape
    assert open(local).read() == train.to_csv(index=False)

    # the dataset source read back from the run downloads the same CSV over HTTP
    (tmp_dir / "via-http").mkdir()
    reloaded = mlflow.data.get_source(tr).load(dst_path=str(tmp_dir / "via-http"))
    assert open(reloaded).read() == train.to_csv(index=False)


def test_same_dataset_logged_twice_is_recorded_once(experiment_id):
    df = pd.DataFrame({"a": [1, 2, 3], "b": [0.1, 0.2, 0.3]})
    ds = mlflow.data.from_pandas(df, name="tiny")
    with mlflow.start_run() as run:
        mlflow.log_input(ds, context="training")
        mlflow.log_input(ds, context="training")
    inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    assert inputs[0].dataset.name == "tiny"
    assert inputs[0].dataset.digest == ds.digest


def test_same_dataset_in_two_runs_and_numpy_dataset(experiment_id):
    import numpy as np

    df = pd.DataFrame({"x": range(10), "y": [v * 2.0 for v in range(10)]})
    ds = mlflow.data.from_pandas(df, name="shared", targets="y")
    arr = mlflow.data.from_numpy(np.arange(12, dtype=np.float32).reshape(4, 3), name="arr")
    with mlflow.start_run() as r1:
        mlflow.log_input(ds, context="training")
    with mlflow.start_run() as r2:
        mlflow.log_input(ds, context="eval")
        mlflow.log_input(arr, context="training")

    in1 = _inputs_by_name(mlflow.get_run(r1.info.run_id))
    in2 = _inputs_by_name(mlflow.get_run(r2.info.run_id))
    assert in1["shared"].dataset.digest == in2["shared"].dataset.digest == ds.digest
    # the context tag belongs to the run<->dataset link, not to the dataset
    assert {t.key: t.value for t in in1["shared"].tags} == {"mlflow.data.context": "training"}
    assert {t.key: t.value for t in in2["shared"].tags} == {"mlflow.data.context": "eval"}
    assert in2["arr"].dataset.source_type == "code"
    assert json.loads(in2["arr"].dataset.profile)["features_shape"] == [4, 3]


def test_dataset_inputs_visible_in_search_results(experiment_id):
    df = pd.DataFrame({"f": [1.0, 2.0]})
    ds = mlflow.data.from_pandas(df, name="searchable-ds")
    with mlflow.start_run() as run:
        mlflow.log_input(ds, context="training")
    runs = mlflow.search_runs([experiment_id], output_format="list")
    assert [r.info.run_id for r in runs] == [run.info.run_id]
    assert [d.dataset.name for d in runs[0].inputs.dataset_inputs] == ["searchable-ds"]
