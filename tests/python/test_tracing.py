"""Tracing: instrumented user code must run unchanged against the server.

Retrieval of the exported traces is specified in the ``traces``-marked tests,
which can be switched off with MLOX_TEST_TRACES=0.
"""

import pytest

import mlflow


@mlflow.trace
def add(a, b):
    return a + b


@mlflow.trace(name="pipeline", attributes={"kind": "demo"})
def pipeline(x):
    with mlflow.start_span(name="preprocess") as span:
        span.set_inputs({"x": x})
        y = x + 1
        span.set_outputs({"y": y})
    with mlflow.start_span(name="postprocess", span_type="TOOL") as span:
        span.set_attribute("factor", 2)
        z = add(y, y)
    mlflow.update_current_trace(tags={"user": "tester"})
    return z


def _flush():
    try:
        mlflow.flush_trace_async_logging(terminate=False)
    except TypeError:
        mlflow.flush_trace_async_logging()


def test_traced_code_runs_without_errors(experiment_id):
    assert pipeline(41) == 84
    assert add(1, 2) == 3
    with mlflow.start_run():
        assert pipeline(1) == 4
    _flush()
    # the client's view of the last trace is local and complete
    trace_id = mlflow.get_last_active_trace_id()
    assert trace_id


def test_traced_code_inside_a_run_keeps_run_usable(experiment_id, client):
    with mlflow.start_run() as run:
        pipeline(3)
        mlflow.log_metric("after_trace", 1.0)
    _flush()
    assert client.get_run(run.info.run_id).data.metrics["after_trace"] == 1.0


def test_traces_export_endpoints_do_not_fail(experiment_id, api):
    """The endpoints the exporter calls answer without a server error."""
    r = api.get("/version")
    assert r.status_code == 200
    assert r.text.strip()[0].isdigit()


@pytest.mark.traces
def test_trace_is_retrievable_with_spans(experiment_id):
    out = pipeline(10)
    _flush()
    trace_id = mlflow.get_last_active_trace_id()
    trace = mlflow.get_trace(trace_id)
    assert trace is not None
    assert trace.info.trace_id == trace_id
    assert trace.info.experiment_id == experiment_id
    assert str(trace.info.state).endswith("OK")
    assert trace.info.tags.get("user") == "tester"
    names = sorted(s.name for s in trace.data.spans)
    assert names == ["add", "pipeline", "postprocess", "preprocess"]
    root = next(s for s in trace.data.spans if s.parent_id is None)
    assert root.name == "pipeline"
    assert root.inputs == {"x": 10}
    assert root.outputs == out


@pytest.mark.traces
def test_search_traces_and_tags(experiment_id, client):
    pipeline(1)
    add(2, 3)
    _flush()
    traces = mlflow.search_traces(locations=[experiment_id], return_type="list")
    assert len(traces) == 2
    tid = mlflow.get_last_active_trace_id()
    client.set_trace_tag(tid, "reviewed", "yes")
    assert mlflow.get_trace(tid).info.tags["reviewed"] == "yes"
    client.delete_trace_tag(tid, "reviewed")
    assert "reviewed" not in mlflow.get_trace(tid).info.tags


@pytest.mark.traces
def test_log_feedback_assessment(experiment_id):
    add(1, 1)
    _flush()
    tid = mlflow.get_last_active_trace_id()
    fb = mlflow.log_feedback(trace_id=tid, name="quality", value=True, rationale="ok")
    assert fb.assessment_id
    assessments = mlflow.get_trace(tid).info.assessments
    assert [a.name for a in assessments] == ["quality"]


@pytest.mark.traces
def test_traces_of_an_active_model_are_linked_to_it(tracking_uri, unique_name):
    """``mlflow.set_active_model``: the traces made while a logged model is active carry its id,
    and ``search_traces(model_id=...)`` finds exactly them."""
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.set_experiment(unique_name("active-model"))
    first_name = unique_name("agent-v1")
    first = mlflow.set_active_model(name=first_name)

    @mlflow.trace
    def agent(question):
        return question[::-1]

    agent("abc")
    agent("de")
    second = mlflow.set_active_model(name=unique_name("agent-v2"))
    agent("x")
    mlflow.flush_trace_async_logging()
    mlflow.clear_active_model()

    linked = mlflow.search_traces(model_id=first.model_id, return_type="list")
    assert sorted(t.data.spans[0].inputs["question"] for t in linked) == ["abc", "de"]
    assert {t.info.trace_metadata["mlflow.modelId"] for t in linked} == {first.model_id}
    [other] = mlflow.search_traces(model_id=second.model_id, return_type="list")
    assert other.data.spans[0].inputs["question"] == "x"
    model = mlflow.get_logged_model(first.model_id)
    assert (model.name, model.experiment_id) == (first_name, experiment.experiment_id)
