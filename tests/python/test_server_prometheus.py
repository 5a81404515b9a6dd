"""``mlox server --expose-prometheus DIR`` (MLflow's flag) serves ``/metrics``: requests under
MLflow's metric names and labels plus the route, error answers by ``error_code``, database
statements, artifact-store operations, the log writer's queue and group sizes, and webhook
deliveries. Read the way Prometheus reads it, with ``prometheus_client``'s own parser.
"""

from __future__ import annotations

import time

import mlflow
import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from prometheus_client.parser import text_string_to_metric_families

from conftest import launch_mlox
from test_webhooks import Receiver

pytestmark = [pytest.mark.mlox_only, pytest.mark.standalone]


def _samples(url: str) -> list:
    r = requests.get(f"{url}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return [s for family in text_string_to_metric_families(r.text) for s in family.samples]


def _value(samples: list, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    return sum(
        s.value for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_cover_requests_errors_database_artifacts_writer_and_webhooks(tmp_path):
    server = launch_mlox(
        tmp_path, f"sqlite:///{tmp_path / 'mlruns.db'}", "--expose-prometheus", str(tmp_path / "prom")
    )
    receiver = Receiver()
    try:
        client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        experiment_id = client.create_experiment("prometheus")
        run = client.create_run(experiment_id)
        for step in range(5):
            client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
        client.log_batch(run.info.run_id, params=[mlflow.entities.Param("lr", "0.1")])
        (tmp_path / "notes.txt").write_text("hello")
        client.log_artifact(run.info.run_id, str(tmp_path / "notes.txt"))
        with pytest.raises(MlflowException):
            client.get_run("0" * 32)
        for _ in range(3):
            assert requests.get(f"{server.url}/health", timeout=10).status_code == 200
        client.create_webhook(
            name="prometheus-hook", url=receiver.url("/hook"), events=["registered_model.created"]
        )
        client.create_registered_model("prometheus-model")
        assert receiver.wait_for("/hook", 1, timeout=30), "the webhook was not delivered"

        deadline = time.monotonic() + 10
        while True:
            samples = _samples(server.url)
            delivered = _value(samples, "mlox_webhook_delivery_attempts_total", outcome="delivered")
            if delivered >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        receiver.close()
        server.stop()

    # MLflow's names and labels, with the route's template.
    log_metric = "/api/2.0/mlflow/runs/log-metric"
    assert _value(samples, "mlflow_http_request_total", method="POST", status="200", route=log_metric) == 5
    get_run = "/api/2.0/mlflow/runs/get"
    assert _value(samples, "mlflow_http_request_total", method="GET", status="404", route=get_run) == 1
    durations = [s for s in samples if s.name == "mlflow_http_request_duration_seconds_count"
                 and s.labels.get("route") == log_metric]
    assert durations and all(s.labels["mlflow_version"] for s in durations)
    assert sum(s.value for s in durations) == 5
    # As in MLflow, probes are not counted.
    assert not [s for s in samples if s.labels.get("route") == "/health"]
    assert _value(samples, "mlox_http_request_errors_total", route=get_run,
                  error_code="RESOURCE_DOES_NOT_EXIST") == 1
    assert _value(samples, "mlflow_http_request_exceptions_total") == 0

    # Database statements, by kind.
    assert _value(samples, "mlox_db_statement_duration_seconds_count", statement="insert") >= 5
    assert _value(samples, "mlox_db_statement_duration_seconds_count", statement="select") >= 1

    # The artifact proxy's store.
    assert _value(samples, "mlox_artifact_operation_duration_seconds_count", operation="put", outcome="ok") == 1

    # The SQLite log writer: every log call passed through it, in groups.
    calls = _value(samples, "mlox_log_writer_calls_total")
    assert calls >= 6  # five log-metric calls and one log-batch
    assert _value(samples, "mlox_log_writer_group_size_sum") == calls
    groups = _value(samples, "mlox_log_writer_group_size_count")
    assert 1 <= groups <= calls
    assert _value(samples, "mlox_log_writer_queued_calls") == 0

    assert delivered >= 1
    assert _value(samples, "mlox_webhook_delivery_attempts_total", outcome="failed") == 0


def test_without_the_flag_there_is_no_metrics_route(tmp_path):
    server = launch_mlox(tmp_path, f"sqlite:///{tmp_path / 'mlruns.db'}")
    try:
        r = requests.get(f"{server.url}/metrics", timeout=10)
    finally:
        server.stop()
    assert r.status_code == 404
