"""Trace metrics (``/api/3.0/mlflow/traces/metrics``) through the MLflow client's own
``query_trace_metrics``: counts, latencies, tokens and sessions of traces; counts, latencies
and costs of spans; counts and values of assessments; grouped by dimensions and time buckets,
filtered, and refused with MLflow's messages when a query does not fit the metric.
"""

from __future__ import annotations

import time
import uuid

import pytest
import requests

import mlflow
from mlflow.entities.trace_metrics import AggregationType, MetricAggregation, MetricViewType


def _agg(kind, p=None):
    return MetricAggregation(aggregation_type=kind, percentile_value=p)


@pytest.fixture(scope="module")
def traced(tracking_uri):
    """Four traces: `answer` twice (one failing, one in session s-1), `lookup` twice (session s-1
    and s-2), with token usage, an LLM child span with a model and a cost, and feedback."""
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = mlflow.set_experiment(f"trace-metrics-{uuid.uuid4().hex[:8]}").experiment_id
    client = mlflow.MlflowClient(tracking_uri)
    trace_ids = []
    plan = [
        ("answer", "s-1", 10, {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8}, None),
        ("answer", None, 30, {"input_tokens": 7, "output_tokens": 1, "total_tokens": 8}, ValueError("boom")),
        ("lookup", "s-1", 20, None, None),
        ("lookup", "s-2", 40, None, None),
    ]
    for name, session, sleep_ms, usage, error in plan:
        try:
            with mlflow.start_span(name=name):
                mlflow.update_current_trace(metadata={"mlflow.trace.session": session} if session else {},
                                            tags={"team": "search" if name == "lookup" else "qa"})
                with mlflow.start_span(name="llm", span_type="LLM") as llm:
                    llm.set_attribute("mlflow.llm.model", "gpt-stub")
                    llm.set_attribute("mlflow.llm.provider", "openai")
                    llm.set_attribute("mlflow.llm.cost", {"input_cost": 0.5, "output_cost": 0.25, "total_cost": 0.75})
                    if usage:
                        llm.set_attribute("mlflow.chat.tokenUsage", usage)
                    time.sleep(sleep_ms / 1000)
                if error:
                    raise error
        except ValueError:
            pass
        trace_ids.append(mlflow.get_last_active_trace_id())
    mlflow.flush_trace_async_logging()
    mlflow.log_feedback(trace_id=trace_ids[0], name="quality", value=True)
    mlflow.log_feedback(trace_id=trace_ids[1], name="quality", value=False)
    mlflow.log_feedback(trace_id=trace_ids[2], name="quality", value=True)
    mlflow.log_feedback(trace_id=trace_ids[2], name="score", value=0.25)
    return client._tracing_client.store, experiment_id, trace_ids


def test_trace_counts_latencies_tokens_and_sessions(traced):
    store, experiment_id, _ = traced
    by_status = store.query_trace_metrics(
        experiment_ids=[experiment_id], view_type=MetricViewType.TRACES, metric_name="trace_count",
        aggregations=[_agg(AggregationType.COUNT)], dimensions=["trace_status"])
    assert [(p.dimensions, p.values) for p in by_status] == [
        ({"trace_status": "ERROR"}, {"COUNT": 1}), ({"trace_status": "OK"}, {"COUNT": 3})]

    latency = store.query_trace_metrics(
        experiment_ids=[experiment_id], view_type=MetricViewType.TRACES, metric_name="latency",
        aggregations=[_agg(AggregationType.MIN), _agg(AggregationType.MAX), _agg(AggregationType.PERCENTILE, 50)],
        dimensions=["trace_name"])
    assert [p.dimensions["trace_name"] for p in latency] == ["answer", "lookup"]
    answer, lookup = (p.values for p in latency)
    assert set(answer) == {"MIN", "MAX", "P50.0"}
    assert 10 <= answer["MIN"] < answer["MAX"] and answer["MAX"] >= 30
    assert answer["P50.0"] == pytest.approx((answer["MIN"] + answer["MAX"]) / 2)
    assert lookup["MIN"] >= 20 and lookup["MAX"] >= 40

    tokens = store.query_trace_metrics(
        experiment_ids=[experiment_id], view_type=MetricViewType.TRACES, metric_name="input_tokens",
        aggregations=[_agg(AggregationType.SUM), _agg(AggregationType.AVG)])
    assert [p.values for p in tokens] == [{"SUM": 10, "AVG": 5}]

    sessions = store.query_trace_metrics(
        experiment_ids=[experiment_id], view_type=MetricViewType.TRACES, metric_name="session_count",
        aggregations=[_agg(AggregationType.COUNT)])
    assert [p.values for p in sessions] == [{"COUNT": 2}]

    tagged = store.query_trace_metrics(
        experiment_ids=[experiment_id], view_type=MetricViewType.TRACES, metric_name="trace_count",
        aggregations=[_agg(AggregationType.COUNT)], filters=["trace.tag.team = 'qa'", "trace.status = 'OK'"])
    assert [p.values for p in tagged] == [{"COUNT": 1}]
    in_session = store.query_trace_metrics(
        experiment_ids=[experiment_id], view_type=MetricViewType.TRACES, metric_name="trace_count",
        aggregations=[_agg(AggregationType.COUNT)], filters=["trace.metadata.`mlflow.trace.session` = 's-1'"])
    assert [p.values for p in in_session] == [{"COUNT": 2}]


def test_time_buckets_cover_the_range_asked(traced):
    store, experiment_id, _ = traced
    now = int(time.time() * 1000)
    buckets = store.query_trace_metrics(
        experiment_ids=[experiment_id], view_type=MetricViewType.TRACES, metric_name="trace_count",
        aggregations=[_agg(AggregationType.COUNT)], time_interval_seconds=86400,
        start_time_ms=now - 86_400_000, end_time_ms=now + 60_000)
    assert sum(p.values["COUNT"] for p in buckets) == 4
    assert all(p.dimensions["time_bucket"].endswith("T00:00:00+00:00") for p in buckets)
    empty = store.query_trace_metrics(
        experiment_ids=[experiment_id], view_type=MetricViewType.TRACES, metric_name="trace_count",
        aggregations=[_agg(AggregationType.COUNT)], start_time_ms=0, end_time_ms=1000)
    assert [p.values for p in empty] == [{"COUNT": 0}]


def test_span_counts_latencies_and_costs(traced):
    store, experiment_id, _ = traced
    by_type = store.query_trace_metrics(
        experiment_ids=[experiment_id], view_type=MetricViewType.SPANS, metric_name="span_count",
        aggregations=[_agg(AggregationType.COUNT)], dimensions=["span_type"])
    assert [(p.dimensions["span_type"], p.values["COUNT"]) for p in by_type] == [("LLM", 4), ("UNKNOWN", 4)]
    llm_latency = store.query_trace_metrics(
        experiment_ids=[experiment_id], view_type=MetricViewType.SPANS, metric_name="latency",
        aggregations=[_agg(AggregationType.MAX)], filters=["span.type = 'LLM'"])
    assert llm_latency[0].values["MAX"] >= 40
    cost = store.query_trace_metrics(
        experiment_ids=[experiment_id], view_type=MetricViewType.SPANS, metric_name="total_cost",
        aggregations=[_agg(AggregationType.SUM)], dimensions=["span_model_name", "span_model_provider"])
    assert [(p.dimensions, p.values) for p in cost] == [
        ({"span_model_name": "gpt-stub", "span_model_provider": "openai"}, {"SUM": 3.0})]


def test_assessment_counts_and_values(traced):
    store, experiment_id, _ = traced
    counts = store.query_trace_metrics(
        experiment_ids=[experiment_id], view_type=MetricViewType.ASSESSMENTS, metric_name="assessment_count",
        aggregations=[_agg(AggregationType.COUNT)], dimensions=["assessment_name", "assessment_value"])
    assert [(p.dimensions["assessment_name"], p.dimensions["assessment_value"], p.values["COUNT"]) for p in counts] == [
        ("quality", "false", 1), ("quality", "true", 2), ("score", "0.25", 1)]
    values = store.query_trace_metrics(
        experiment_ids=[experiment_id], view_type=MetricViewType.ASSESSMENTS, metric_name="assessment_value",
        aggregations=[_agg(AggregationType.AVG)], dimensions=["assessment_name"], filters=["assessment.type = 'feedback'"])
    assert [(p.dimensions["assessment_name"], p.values["AVG"]) for p in values] == [
        ("quality", pytest.approx(2 / 3)), ("score", 0.25)]


def test_queries_that_do_not_fit_the_metric_are_refused(traced, tracking_uri):
    store, experiment_id, _ = traced
    url = f"{tracking_uri}/api/3.0/mlflow/traces/metrics"
    base = {"experiment_ids": [experiment_id], "view_type": "TRACES", "metric_name": "latency",
            "aggregations": [{"aggregation_type": "AVG"}]}
    for change, message in [
        ({"aggregations": [{"aggregation_type": "COUNT"}]}, "Found invalid aggregation_type(s): ['COUNT']"),
        ({"dimensions": ["trace_status"]}, "Found invalid dimension(s): ['trace_status']"),
        ({"metric_name": "tokens"}, "metric_name must be one of"),
        ({"filters": ["span.name = 'x'"]}, "Filtering by span is only supported for SPANS"),
        ({"filters": ["trace.tag = 'x'"]}, "requires a key"),
        ({"time_interval_seconds": 60}, "start_time_ms and end_time_ms are required"),
    ]:
        answer = requests.post(url, json={**base, **change})
        assert answer.status_code == 400, (change, answer.text)
        assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert message in answer.json()["message"], (change, answer.json()["message"])


@pytest.mark.mlox_only
def test_a_percentile_without_its_value_is_a_400(tracking_uri):
    """MLflow 3.17.2 answers this with a 500 HTML page."""
    answer = requests.post(f"{tracking_uri}/api/3.0/mlflow/traces/metrics", json={
        "experiment_ids": ["0"], "view_type": "TRACES", "metric_name": "latency",
        "aggregations": [{"aggregation_type": "PERCENTILE"}]})
    assert answer.status_code == 400
    assert answer.json() == {"error_code": "INVALID_PARAMETER_VALUE",
                             "message": "Percentile value is required for PERCENTILE aggregation"}
