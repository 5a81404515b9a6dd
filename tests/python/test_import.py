"""`mlox import`: a real MLflow 3.17.2 server is filled through the official client, stopped,
its database imported into mlox, and everything is read back through an mlox server that serves
the same artifact directory: ids, runs, metric histories, searches, datasets, registered models
and aliases, model loading and artifacts.

Each test runs its own MLflow and mlox servers; the session server is not used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mlflow
import mlflow.sklearn
from mlflow import MlflowClient

from conftest import _free_port, _mlflow_executable, launch, launch_mlox, mlox_binary

pytestmark = [pytest.mark.mlox_only, pytest.mark.heavy, pytest.mark.standalone, pytest.mark.timeout(600)]

SKLEARN_REQS = ["scikit-learn", "pandas"]
# SQLAlchemy 2.1 picks psycopg 3 for a bare postgresql:// URL; MLflow's docs use psycopg2.
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"


def _point_client_at(url: str) -> None:
    os.environ["MLFLOW_TRACKING_URI"] = url
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)


def _fill(url: str, workdir: Path) -> dict:
    """Logs a small but complete workflow into the MLflow server and returns what to expect."""
    from sklearn.linear_model import Ridge

    _point_client_at(url)
    client = MlflowClient(url, url)
    exp_id = mlflow.create_experiment("import-source", tags={"team": "vision"})
    gone_id = mlflow.create_experiment("import-gone")
    mlflow.set_experiment(experiment_id=exp_id)

    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    y = X["a"] * 2.0 - X["b"] + 0.1 * rng.normal(size=40)
    model = Ridge(alpha=0.5).fit(X, y)
    notes = workdir / "notes.txt"
    notes.write_text("hello from mlflow\nline two\n")

    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_params({"alpha": 0.5, "features": 3})
        mlflow.set_tag("stage", "train")
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metric("r2", model.score(X, y))
        mlflow.log_input(mlflow.data.from_pandas(X.assign(y=y), name="toy", targets="y"), context="training")
        mlflow.log_artifact(str(notes))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name="imported-clf",
            input_example=X.head(2),
            pip_requirements=SKLEARN_REQS,
        )
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("child_metric", 3.0)
    v2 = mlflow.register_model(info.model_uri, "imported-clf")
    client.set_registered_model_alias("imported-clf", "champion", v2.version)
    client.set_registered_model_tag("imported-clf", "owner", "alice")
    client.set_model_version_tag("imported-clf", "1", "validated", "yes")

    genai = _fill_genai(client, exp_id, parent.info.run_id)

    with mlflow.start_run(run_name="doomed") as doomed:
        mlflow.log_param("x", 1)
    client.delete_run(doomed.info.run_id)
    client.delete_experiment(gone_id)
    return {
        **genai,
        "exp_id": exp_id,
        "gone_id": gone_id,
        "parent": parent.info.run_id,
        "child": child.info.run_id,
        "doomed": doomed.info.run_id,
        "model_id": info.model_id,
        "X": X,
        "prediction": model.predict(X),
        "v2": v2.version,
        "parent_run": client.get_run(parent.info.run_id),
    }


def _fill_genai(client: MlflowClient, exp_id: str, run_id: str) -> dict:
    """MLflow 3's GenAI side: a traced call with spans, a tag, feedback, an expectation and a
    link to a run; a prompt with an alias; an evaluation dataset with records and a tag."""
    from mlflow.genai.datasets import create_dataset

    with mlflow.start_span(name="answer", span_type="CHAIN") as root:
        root.set_inputs({"question": "2+2?"})
        with mlflow.start_span(name="llm", span_type="CHAT_MODEL") as llm:
            llm.set_attribute("mlflow.chat.tokenUsage", {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6})
            llm.set_outputs("4")
        root.set_outputs({"answer": "4"})
    trace_id = root.trace_id
    mlflow.flush_trace_async_logging()
    client.set_trace_tag(trace_id, "reviewed", "yes")
    feedback = mlflow.log_feedback(trace_id=trace_id, name="correct", value=True, rationale="2+2 is 4")
    mlflow.log_expectation(trace_id=trace_id, name="expected", value={"answer": "4"})
    client.link_traces_to_run([trace_id], run_id)
    prompt = mlflow.genai.register_prompt(name="import-greeting", template="Hello {{name}}!")
    mlflow.genai.set_prompt_alias("import-greeting", alias="live", version=prompt.version)
    dataset = create_dataset(name="import-questions", experiment_id=[exp_id], tags={"owner": "qa"})
    dataset.merge_records([
        {"inputs": {"question": "2+2?"}, "expectations": {"answer": "4"}},
        {"inputs": {"question": "3+3?"}, "expectations": {"answer": "6"}},
    ])
    return {
        "trace_id": trace_id,
        "trace": client.get_trace(trace_id),
        "feedback_id": feedback.assessment_id,
        "dataset_id": dataset.dataset_id,
    }


def _check_genai(client: MlflowClient, want: dict) -> None:
    from mlflow.genai.datasets import get_dataset

    before = want["trace"]
    found = client.search_traces(locations=[want["exp_id"]], filter_string="tags.reviewed = 'yes'")
    assert [t.info.trace_id for t in found] == [want["trace_id"]]
    trace = client.get_trace(want["trace_id"])
    assert (trace.info.request_time, trace.info.execution_duration, trace.info.state) == (
        before.info.request_time, before.info.execution_duration, before.info.state)
    assert trace.info.trace_metadata["mlflow.trace.tokenUsage"] == before.info.trace_metadata["mlflow.trace.tokenUsage"]
    assert [(s.name, s.span_id, s.parent_id) for s in trace.data.spans] == [
        (s.name, s.span_id, s.parent_id) for s in before.data.spans]
    assert trace.data.spans[1].outputs == "4"
    by_name = {a.name: a for a in trace.info.assessments}
    assert by_name["correct"].assessment_id == want["feedback_id"]
    assert by_name["correct"].value is True and by_name["correct"].rationale == "2+2 is 4"
    assert by_name["correct"].create_time_ms == next(
        a for a in before.info.assessments if a.name == "correct").create_time_ms
    assert by_name["expected"].value == {"answer": "4"}
    linked = client.search_traces(locations=[want["exp_id"]], run_id=want["parent"])
    assert [t.info.trace_id for t in linked] == [want["trace_id"]]

    assert mlflow.genai.load_prompt("prompts:/import-greeting@live").format(name="Ada") == "Hello Ada!"
    dataset = get_dataset(dataset_id=want["dataset_id"])
    assert dataset.name == "import-questions" and dataset.tags["owner"] == "qa"
    assert dataset.experiment_ids == [want["exp_id"]]
    records = dataset.to_df()
    assert sorted(r["question"] for r in records["inputs"]) == ["2+2?", "3+3?"]
    assert sorted(e["answer"] for e in records["expectations"]) == ["4", "6"]


def _check(url: str, want: dict, tmp_path: Path) -> None:
    _point_client_at(url)
    client = MlflowClient(url, url)
    parent = want["parent"]

    exp = client.get_experiment(want["exp_id"])
    assert exp.name == "import-source"
    assert exp.tags["team"] == "vision"
    assert client.get_experiment(want["gone_id"]).lifecycle_stage == "deleted"

    run = client.get_run(parent)
    before = want["parent_run"]
    assert run.info.run_name == "parent"
    assert run.info.artifact_uri == before.info.artifact_uri
    assert (run.info.start_time, run.info.end_time, run.info.status) == (
        before.info.start_time,
        before.info.end_time,
        before.info.status,
    )
    assert run.data.params == {"alpha": "0.5", "features": "3"}
    assert run.data.metrics == before.data.metrics
    assert run.data.tags["stage"] == "train"
    assert run.inputs.dataset_inputs[0].dataset.name == "toy"
    assert run.inputs.dataset_inputs[0].dataset.digest == before.inputs.dataset_inputs[0].dataset.digest
    assert [o.model_id for o in run.outputs.model_outputs] == [want["model_id"]]

    history = client.get_metric_history(parent, "loss")
    assert [(m.step, m.value) for m in history] == [(s, 1.0 / (s + 1)) for s in range(5)]

    child = client.get_run(want["child"])
    assert child.data.tags["mlflow.parentRunId"] == parent
    assert child.data.metrics == {"child_metric": 3.0}
    found = client.search_runs([want["exp_id"]], "params.alpha = '0.5' and metrics.loss < 0.3")
    assert [r.info.run_id for r in found] == [parent]
    nested = client.search_runs([want["exp_id"]], f"tags.mlflow.parentRunId = '{parent}'")
    assert [r.info.run_id for r in nested] == [want["child"]]
    assert client.get_run(want["doomed"]).info.lifecycle_stage == "deleted"

    lm = client.get_logged_model(want["model_id"])
    assert lm.source_run_id == parent
    versions = sorted(client.search_model_versions("name = 'imported-clf'"), key=lambda v: int(v.version))
    assert [v.version for v in versions] == ["1", want["v2"]] == ["1", "2"]
    rm = client.get_registered_model("imported-clf")
    assert rm.tags == {"owner": "alice"}
    assert rm.aliases == {"champion": "2"}
    assert client.get_model_version("imported-clf", "1").tags == {"validated": "yes"}
    assert client.get_model_version_by_alias("imported-clf", "champion").version == "2"

    X = want["X"]
    for uri in ("models:/imported-clf@champion", "models:/imported-clf/1", f"runs:/{parent}/model", f"models:/{want['model_id']}"):
        predicted = mlflow.pyfunc.load_model(uri).predict(X)
        np.testing.assert_allclose(np.asarray(predicted), want["prediction"], err_msg=uri)

    local = client.download_artifacts(parent, "notes.txt", str(tmp_path))
    assert Path(local).read_text() == "hello from mlflow\nline two\n"

    _check_genai(client, want)

    # Ids of new entities continue above the imported ones.
    new_id = client.create_experiment(f"after-import-{uuid.uuid4().hex[:6]}")
    assert int(new_id) > max(int(want["exp_id"]), int(want["gone_id"]))
    mv = client.create_model_version("imported-clf", f"runs:/{parent}/model", run_id=parent)
    assert mv.version == "3"


def _run_import(source_uri: str, target_uri: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [mlox_binary(), "import", "--from", source_uri, "--to", target_uri, "--batch-size", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


def _psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _postgres_available() -> bool:
    if shutil.which("psql") is None:
        return False
    try:
        import psycopg2  # noqa: F401  (MLflow's PostgreSQL driver)

        _psql("SELECT 1")
    except Exception:
        return False
    return True


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_mlflow_installation_is_taken_over(backend, server, tmp_path):
    source_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    database = None
    if backend == "postgresql":
        if not _postgres_available():
            pytest.skip("PostgreSQL (psql at 127.0.0.1:5432) or psycopg2 not available")
        database = f"mlflow_import_{uuid.uuid4().hex[:10]}"
        _psql(f"CREATE DATABASE {database}")
        source_uri = f"{PG}/{database}"
    art = tmp_path / "art"
    art.mkdir()
    mlox_db = tmp_path / "mlox.db"
    try:
        port = _free_port()
        src = launch(
            [
                _mlflow_executable(),
                "server",
                "--backend-store-uri",
                source_uri,
                "--artifacts-destination",
                str(art),
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "-p",
                str(port),
                "--workers",
                "1",
            ],
            tmp_path,
            port,
            log_name="mlflow.log",
            timeout=180,
        )
        try:
            want = _fill(src.url, tmp_path)
        finally:
            src.stop()

        done = _run_import(source_uri, f"sqlite:///{mlox_db}")
        assert "metrics" in done.stderr and "registered_model_aliases" in done.stderr
        assert "not imported" not in done.stderr, done.stderr
        # Importing again is a no-op: nothing is written twice.
        again = _run_import(source_uri.replace("+psycopg2", ""), f"sqlite:///{mlox_db}")
        assert "0 written" in again.stderr.splitlines()[-1], again.stderr

        dst = launch_mlox(tmp_path, f"sqlite:///{mlox_db}", artifacts=art, log_name="mlox.log")
        try:
            _check(dst.url, want, tmp_path)
        finally:
            dst.stop()
    finally:
        _point_client_at(server.url)
        if database is not None:
            _psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


MLFLOW_FERNET_KEY = "bWxveC10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGVmZ2g="


def test_webhooks_keep_their_secrets_across_the_import(server, tmp_path):
    """MLflow encrypts webhook secrets with its Fernet key; the import opens them with that key
    and seals them with mlox's, so deliveries from mlox carry the signature receivers already
    verify. Without the key, a webhook with a secret is left out and reported."""
    from test_webhooks import Receiver, assert_signed

    source_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    receiver = Receiver()
    port = _free_port()
    src = launch(
        [_mlflow_executable(), "server", "--backend-store-uri", source_uri,
         "--host", "127.0.0.1", "-p", str(port), "--workers", "1"],
        tmp_path, port, log_name="mlflow.log", timeout=180,
        env_extra={"MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": MLFLOW_FERNET_KEY},
    )
    try:
        client = MlflowClient(src.url, src.url)
        signed = client.create_webhook(name="signed", url=receiver.url("/signed"),
                                       events=["registered_model.created"], secret="whsec-from-mlflow")
        plain = client.create_webhook(name="plain", url=receiver.url("/plain"),
                                      events=["model_version.created"])
    finally:
        src.stop()
    try:
        without_key = subprocess.run(
            [mlox_binary(), "import", "--from", source_uri, "--to", f"sqlite:///{tmp_path / 'nokey.db'}"],
            capture_output=True, text=True, timeout=300,
            env={k: v for k, v in os.environ.items() if k != "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"},
        )
        assert without_key.returncode == 0, without_key.stderr
        assert "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY" in without_key.stderr

        mlox_db = tmp_path / "mlox.db"
        done = subprocess.run(
            [mlox_binary(), "import", "--from", source_uri, "--to", f"sqlite:///{mlox_db}"],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": MLFLOW_FERNET_KEY,
                 "MLFLOW_CRYPTO_KEK_PASSPHRASE": "passphrase of the mlox installation"},
        )
        assert done.returncode == 0, done.stderr
        import sqlite3

        stored = dict(sqlite3.connect(mlox_db).execute("SELECT webhook_id, secret FROM webhooks"))
        assert stored[plain.webhook_id] is None
        assert stored[signed.webhook_id].startswith("mlox-sealed:v1:")
        assert "whsec-from-mlflow" not in stored[signed.webhook_id]

        dst = launch_mlox(tmp_path, f"sqlite:///{mlox_db}", log_name="mlox.log",
                          env_extra={"MLFLOW_CRYPTO_KEK_PASSPHRASE": "passphrase of the mlox installation"})
        try:
            client = MlflowClient(dst.url, dst.url)
            assert {w.name for w in client.list_webhooks()} == {"signed", "plain"}
            client.create_registered_model(f"after-import-{uuid.uuid4().hex[:6]}")
            assert_signed(receiver.wait_for("/signed", 1, 10)[0], secret="whsec-from-mlflow")
        finally:
            dst.stop()
    finally:
        receiver.close()
