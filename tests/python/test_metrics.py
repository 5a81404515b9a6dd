"""Metrics, params and tags: step histories, batches, special float values."""

import math
import sys
import time

import pytest

import mlflow
from mlflow.entities import Metric, Param, RunTag


def _history(client, run_id, key):
    return client.get_metric_history(run_id, key)


def test_log_metric_with_steps_keeps_every_point_in_order(experiment_id, client):
    with mlflow.start_run() as run:
        for step in range(20):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    hist = _history(client, run.info.run_id, "loss")
    assert [m.step for m in hist] == list(range(20))
    assert [m.value for m in hist] == [1.0 / (s + 1) for s in range(20)]
    assert all(m.key == "loss" for m in hist)
    assert all(m.timestamp > 0 for m in hist)
    # the run's "latest" value is the one with the highest step
    assert client.get_run(run.info.run_id).data.metrics["loss"] == pytest.approx(1.0 / 20)


def test_latest_metric_is_max_step_not_last_logged(experiment_id, client):
    with mlflow.start_run() as run:
        mlflow.log_metric("acc", 0.9, step=5)
        mlflow.log_metric("acc", 0.1, step=2)  # logged later, but an older step
    rid = run.info.run_id
    assert client.get_run(rid).data.metrics["acc"] == 0.9
    assert sorted((m.step, m.value) for m in _history(client, rid, "acc")) == [(2, 0.1), (5, 0.9)]


def test_same_step_logged_twice_keeps_both_points(experiment_id, client):
    with mlflow.start_run() as run:
        mlflow.log_metric("m", 1.0, step=0, timestamp=1000)
        mlflow.log_metric("m", 2.0, step=0, timestamp=2000)
    hist = _history(client, run.info.run_id, "m")
    assert sorted((m.timestamp, m.value) for m in hist) == [(1000, 1.0), (2000, 2.0)]
    # the latest value at equal step is the one with the latest timestamp
    assert client.get_run(run.info.run_id).data.metrics["m"] == 2.0


def test_log_metrics_with_step_and_timestamp(experiment_id, client):
    with mlflow.start_run() as run:
        mlflow.log_metrics({"a": 1.5, "b": -2.0}, step=3)
        mlflow.log_metrics({"a": 2.5, "b": -3.0}, step=4, timestamp=1_700_000_000_123)
    rid = run.info.run_id
    a = _history(client, rid, "a")
    # history is ordered by (timestamp, step, value): the explicit, older timestamp first
    assert [(m.step, m.value) for m in a] == [(4, 2.5), (3, 1.5)]
    assert a[0].timestamp == 1_700_000_000_123
    assert a[1].timestamp > 1_700_000_000_123
    assert client.get_run(rid).data.metrics == {"a": 2.5, "b": -3.0}


def test_metric_history_is_ordered_by_timestamp_then_step(experiment_id, client):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_batch(
        run_id,
        metrics=[
            Metric("h", 3.0, 3000, 0),
            Metric("h", 1.0, 1000, 9),
            Metric("h", 2.5, 2000, 2),
            Metric("h", 2.0, 2000, 1),
        ],
    )
    hist = _history(client, run_id, "h")
    assert [(m.timestamp, m.step, m.value) for m in hist] == [
        (1000, 9, 1.0),
        (2000, 1, 2.0),
        (2000, 2, 2.5),
        (3000, 0, 3.0),
    ]
    # "latest" is by step, then timestamp
    assert client.get_run(run_id).data.metrics["h"] == 1.0


def test_log_batch_many_metrics_params_tags(experiment_id, client):
    run_id = client.create_run(experiment_id).info.run_id
    ts = int(time.time() * 1000)
    metrics = [Metric(f"m{i % 50}", float(i), ts + i, i // 50) for i in range(1000)]
    params = [Param(f"p{i}", f"value-{i}") for i in range(100)]
    tags = [RunTag(f"t{i}", f"tag-{i}") for i in range(100)]
    client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
    run = client.get_run(run_id)
    assert len(run.data.metrics) == 50
    assert run.data.metrics["m7"] == float(7 + 50 * 19)
    assert run.data.params == {f"p{i}": f"value-{i}" for i in range(100)}
    assert {k: v for k, v in run.data.tags.items() if k.startswith("t")} == {
        f"t{i}": f"tag-{i}" for i in range(100)
    }
    hist = _history(client, run_id, "m7")
    assert [m.step for m in hist] == list(range(20))
    assert [m.value for m in hist] == [float(7 + 50 * s) for s in range(20)]


def test_log_params_and_tags_fluent(experiment_id, client):
    with mlflow.start_run() as run:
        mlflow.log_params({"lr": 0.01, "layers": [64, 32], "name": "ünïcødé 模型", "none": None})
        mlflow.set_tags({"stage": "dev", "empty": ""})
        mlflow.set_tag("stage", "prod")  # tags may be overwritten
        mlflow.log_param("lr", 0.01)  # re-logging the same value is allowed
    data = client.get_run(run.info.run_id).data
    assert data.params == {"lr": "0.01", "layers": "[64, 32]", "name": "ünïcødé 模型", "none": "None"}
    assert data.tags["stage"] == "prod"
    assert data.tags["empty"] == ""


def test_delete_tag(experiment_id, client):
    run_id = client.create_run(experiment_id).info.run_id
    client.set_tag(run_id, "k", "v")
    assert client.get_run(run_id).data.tags["k"] == "v"
    client.delete_tag(run_id, "k")
    assert "k" not in client.get_run(run_id).data.tags


def _same_float(got: float, sent: float) -> bool:
    if math.isnan(sent):
        return math.isnan(got)
    if math.isinf(sent):
        # MLflow's SQL store clamps +-inf to +-max double; keeping a true infinity is fine too
        return got == sent or got == math.copysign(sys.float_info.max, sent)
    return got == sent


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1e308, -1e-308, 5e-324, 123456789.123456789],
    ids=["nan", "inf", "-inf", "zero", "neg-zero", "huge", "tiny", "denormal", "many-digits"],
)
def test_special_metric_values_round_trip(experiment_id, client, value):
    with mlflow.start_run() as run:
        mlflow.log_metric("v", value, step=0)
    got = client.get_run(run.info.run_id).data.metrics["v"]
    hist = _history(client, run.info.run_id, "v")
    assert len(hist) == 1
    for x in (got, hist[0].value):
        assert _same_float(x, value), (x, value)


def test_nan_and_inf_through_log_batch(experiment_id, client):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_batch(
        run_id,
        metrics=[
            Metric("a", float("nan"), 1, 0),
            Metric("b", float("inf"), 1, 0),
            Metric("c", float("-inf"), 1, 0),
        ],
    )
    m = client.get_run(run_id).data.metrics
    assert math.isnan(m["a"])
    assert _same_float(m["b"], math.inf), m["b"]
    assert _same_float(m["c"], -math.inf), m["c"]
    assert m["b"] > 1e308 and m["c"] < -1e308


def test_negative_and_large_steps(experiment_id, client):
    with mlflow.start_run() as run:
        mlflow.log_metric("s", 1.0, step=-5)
        mlflow.log_metric("s", 2.0, step=2**40)
    hist = _history(client, run.info.run_id, "s")
    assert sorted(m.step for m in hist) == [-5, 2**40]


def test_metric_history_of_10k_points(experiment_id, client):
    """A long training curve: 10 000 points logged in batches and read back whole
    (the client pages through get-history transparently)."""
    run_id = client.create_run(experiment_id).info.run_id
    ts = 1_700_000_000_000
    n = 10_000
    for start in range(0, n, 1000):
        client.log_batch(
            run_id,
            metrics=[Metric("curve", i * 0.5, ts + i, i) for i in range(start, start + 1000)],
        )
    hist = client.get_metric_history(run_id, "curve")
    assert len(hist) == n
    assert [m.step for m in hist] == list(range(n))
    assert [m.value for m in hist] == [i * 0.5 for i in range(n)]
    assert client.get_run(run_id).data.metrics["curve"] == (n - 1) * 0.5


def test_metric_history_of_unknown_key_is_empty(experiment_id, client):
    run_id = client.create_run(experiment_id).info.run_id
    assert client.get_metric_history(run_id, "never-logged") == []


def test_metric_history_raw_paging(experiment_id, client, api):
    """``metrics/get-history`` pages with max_results + page_token."""
    run_id = client.create_run(experiment_id).info.run_id
    client.log_batch(run_id, metrics=[Metric("p", float(i), 1000 + i, i) for i in range(25)])
    seen = []
    token = None
    for _ in range(10):
        params = {"run_id": run_id, "metric_key": "p", "max_results": 10}
        if token:
            params["page_token"] = token
        r = api.get("/api/2.0/mlflow/metrics/get-history", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        page = body.get("metrics", [])
        assert len(page) <= 10
        seen.extend(m["step"] for m in page)
        token = body.get("next_page_token")
        if not token:
            break
    assert seen == list(range(25))
