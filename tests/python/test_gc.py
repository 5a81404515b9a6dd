"""``mlox gc`` beside the live session server, as an operator runs ``mlflow gc``: deleted runs,
experiments and logged models are removed from the store and their artifacts from the
artifact store (local files or the S3 bucket), checked by looking at both directly; what is
live, or not old enough, stays.
"""

from __future__ import annotations

import subprocess

import pytest

import mlflow
from conftest import ARTIFACTS, mlox_binary

pytestmark = [pytest.mark.mlox_only]


def _gc(server, *args: str) -> subprocess.CompletedProcess:
    storage = server.storage
    if storage is None:
        pytest.skip("the session server's storage is not known here")
    destination = {
        "local": str(server.workdir / "artifacts"),
        "s3": storage.s3_prefix,
    }.get(ARTIFACTS, str(server.workdir / "artifacts"))
    return subprocess.run(
        [mlox_binary(), "gc", "--backend-store-uri", storage.backend_uri, "--artifacts-destination", destination, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _artifact_files(server, artifact_uri: str) -> list[str]:
    """What the artifact store holds under a run's or model's artifact location."""
    storage = server.storage
    if artifact_uri.startswith("mlflow-artifacts:"):
        relative = artifact_uri.split(":", 1)[1].lstrip("/")
        if ARTIFACTS == "local":
            base = server.workdir / "artifacts" / relative
            return sorted(str(p) for p in base.rglob("*") if p.is_file()) if base.exists() else []
        prefix = f"{storage.s3_prefix}/{relative}"
    else:
        prefix = artifact_uri
    bucket, _, key = prefix.removeprefix("s3://").partition("/")
    listed = storage.s3_client().list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/") + "/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


def _run_with_artifact(client, experiment_id: str) -> mlflow.entities.Run:
    run = client.create_run(experiment_id)
    client.log_param(run.info.run_id, "alpha", "0.5")
    client.log_metric(run.info.run_id, "loss", 0.25)
    client.log_text(run.info.run_id, "hello", "notes/readme.txt")
    return client.get_run(run.info.run_id)


def _gone(client, run_id: str) -> bool:
    try:
        client.get_run(run_id)
    except mlflow.exceptions.MlflowException as e:
        return e.error_code == "RESOURCE_DOES_NOT_EXIST"
    return False


def test_gc_removes_deleted_runs_and_their_artifacts(server, client, unique_name):
    experiment = client.create_experiment(unique_name("gc"))
    live = _run_with_artifact(client, experiment)
    doomed = _run_with_artifact(client, experiment)
    assert _artifact_files(server, doomed.info.artifact_uri), "the artifact was not written"
    client.delete_run(doomed.info.run_id)

    # Deleted a moment ago: --older-than 1d keeps it, and says so when it is named.
    young = _gc(server, "--older-than", "1d", "--run-ids", doomed.info.run_id)
    assert young.returncode != 0 and "not older than the required age" in young.stderr
    # A live run cannot be named.
    refused = _gc(server, "--run-ids", live.info.run_id)
    assert refused.returncode != 0 and "is not in `deleted` lifecycle stage" in refused.stderr
    # A dry run says what it would do and does nothing.
    dry = _gc(server, "--dry-run", "--run-ids", doomed.info.run_id)
    assert dry.returncode == 0, dry.stderr
    assert f"would permanently delete run {doomed.info.run_id}" in dry.stdout
    assert client.get_run(doomed.info.run_id).info.lifecycle_stage == "deleted"

    done = _gc(server, "--run-ids", doomed.info.run_id)
    assert done.returncode == 0, done.stderr
    assert f"Run with ID {doomed.info.run_id} has been permanently deleted." in done.stdout
    assert _gone(client, doomed.info.run_id)
    assert _artifact_files(server, doomed.info.artifact_uri) == []
    # The live run and its artifacts are untouched; the server kept serving throughout.
    assert client.get_run(live.info.run_id).data.params == {"alpha": "0.5"}
    assert _artifact_files(server, live.info.artifact_uri)
    assert client.download_artifacts(live.info.run_id, "notes")


def test_gc_removes_a_deleted_experiment_with_its_runs_and_logged_models(server, client, unique_name):
    experiment = client.create_experiment(unique_name("gc-exp"))
    runs = [_run_with_artifact(client, experiment) for _ in range(2)]
    model = client.create_logged_model(experiment_id=experiment, name="m")
    client.log_model_artifacts(model.model_id, _model_dir(server))
    model = client.get_logged_model(model.model_id)
    assert _artifact_files(server, model.artifact_location)
    kept_experiment = client.create_experiment(unique_name("gc-kept"))
    kept = _run_with_artifact(client, kept_experiment)
    client.delete_experiment(experiment)

    done = _gc(server, "--experiment-ids", experiment)
    assert done.returncode == 0, done.stderr
    assert f"Experiment with ID {experiment} has been permanently deleted." in done.stdout
    with pytest.raises(mlflow.exceptions.MlflowException) as e:
        client.get_experiment(experiment)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    for run in runs:
        assert _gone(client, run.info.run_id)
        assert _artifact_files(server, run.info.artifact_uri) == []
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_logged_model(model.model_id)
    assert _artifact_files(server, model.artifact_location) == []
    assert client.get_run(kept.info.run_id).info.lifecycle_stage == "active"
    assert _artifact_files(server, kept.info.artifact_uri)


def _model_dir(server):
    directory = server.workdir / "gc-model-files"
    directory.mkdir(exist_ok=True)
    (directory / "MLmodel").write_text("flavors: {}\n")
    return str(directory)
