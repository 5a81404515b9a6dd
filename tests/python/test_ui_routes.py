"""The non-artifact routes MLflow's web UI calls besides the REST API: bulk metric histories
(``metrics/get-history-bulk``), dataset summaries (``experiments/search-datasets``), small
uploads into a run (``upload-artifact``) and the GraphQL endpoint (``/graphql``), checked
against what the official client logged."""

import math

import mlflow
from mlflow.entities import Dataset, DatasetInput, InputTag

AJAX = "/ajax-api/2.0/mlflow"


def test_metric_history_bulk_and_dataset_summaries(experiment_id, client, api):
    runs = sorted(client.create_run(experiment_id).info.run_id for _ in range(2))
    for i, run_id in enumerate(runs):
        for step in range(3):
            client.log_metric(run_id, "loss", step + i, timestamp=10 + step, step=step)
    r = api.get(f"{AJAX}/metrics/get-history-bulk", params={"run_id": runs, "metric_key": "loss"})
    assert r.status_code == 200, r.text
    assert [(m["run_id"], m["step"], m["value"]) for m in r.json()["metrics"]] == [
        (run_id, step, step + i) for i, run_id in enumerate(runs) for step in range(3)
    ]
    r = api.get(f"{AJAX}/metrics/get-history-bulk", params={"metric_key": "loss"})
    assert r.status_code == 400
    assert "must specify at least one run_id" in r.json()["message"]

    dataset = Dataset(name="train", digest="d1", source_type="local", source="{}")
    context = InputTag(key="mlflow.data.context", value="training")
    client.log_inputs(runs[0], [DatasetInput(dataset=dataset, tags=[context])])
    r = api.post(f"{AJAX}/experiments/search-datasets", json={"experiment_ids": [experiment_id]})
    assert r.json()["dataset_summaries"] == [
        {"experiment_id": experiment_id, "name": "train", "digest": "d1", "context": "training"}
    ]


def test_upload_artifact_lands_in_the_run(experiment_id, client, api):
    run_id = client.create_run(experiment_id).info.run_id
    r = api.post(
        f"{AJAX}/upload-artifact", params={"run_uuid": run_id, "path": "notes/a.txt"}, data="hello"
    )
    assert r.status_code == 200, r.text
    assert [f.path for f in client.list_artifacts(run_id, "notes")] == ["notes/a.txt"]
    r = api.get("/get-artifact", params={"run_uuid": run_id, "path": "notes/a.txt"})
    assert r.text == "hello"
    assert r.headers["Content-Type"] == "text/plain"
    r = api.post(f"{AJAX}/upload-artifact", params={"run_uuid": run_id, "path": "../x"}, data="x")
    assert (r.status_code, r.json()["message"]) == (400, "Invalid path")


def test_graphql_reads_runs_as_the_web_ui_does(experiment_id, client, api):
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_metric("ok", 1.5, step=3)
        mlflow.log_metric("nan", math.nan)
    query = """
        query testQuery($id: String) {
          mlflowGetRun(input: {runId: $id}) {
            run { info { status } experiment { experimentId } data { metrics { key value step } } }
          }
        }"""
    r = api.post(
        "/graphql",
        json={"query": query, "variables": {"id": run.info.run_id}, "operationName": "testQuery"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["errors"] is None
    got = body["data"]["mlflowGetRun"]["run"]
    assert got["info"]["status"] == "FINISHED"
    assert got["experiment"]["experimentId"] == experiment_id
    metrics = {m["key"]: (m["value"], m["step"]) for m in got["data"]["metrics"]}
    assert metrics == {"ok": (1.5, "3"), "nan": (None, "0")}
