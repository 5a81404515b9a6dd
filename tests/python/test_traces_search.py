"""Trace search with MLflow's filter grammar and order_by, assessments and trace-to-run links,
driven through the real client. Every trace is made with fixed start and end times, so each
search has one right answer: the exact trace ids in the exact order.
"""

import math
import uuid

import pytest

import mlflow
from mlflow import MlflowClient
from mlflow.entities import AssessmentSource, AssessmentSourceType, Feedback
from mlflow.exceptions import MlflowException

pytestmark = pytest.mark.traces

# 2023-11-14T22:13:20Z, then one trace a second.
T0 = 1_700_000_000_000

# letter: (name, start offset ms, duration ms, status, tags, metadata)
CORPUS = {
    "A": ("retrieve", 1000, 50, "OK", {"team": "search", "env": "prod"}, {"user": "alice"}),
    "B": ("generate", 2000, 300, "ERROR", {"team": "llm"}, {"user": "bob"}),
    "C": ("retrieve", 3000, 10, "OK", {"team": "search"}, {}),
    "D": ("rerank", 4000, 120, "OK", {"env": "dev"}, {"user": "alice"}),
    "E": ("generate", 5000, 200, "OK", {"team": "llm", "env": "prod"}, {}),
}


def _flush():
    try:
        mlflow.flush_trace_async_logging(terminate=False)
    except TypeError:
        mlflow.flush_trace_async_logging()


def _make_trace(experiment_id, name, offset, duration, status, tags, metadata):
    start_ns = (T0 + offset) * 1_000_000
    span = mlflow.start_span_no_context(
        name,
        experiment_id=experiment_id,
        start_time_ns=start_ns,
        inputs={"q": name},
        tags=tags,
        metadata=metadata,
    )
    span.end(outputs={"a": 1}, status=status, end_time_ns=start_ns + duration * 1_000_000)
    return span.trace_id


@pytest.fixture(scope="module")
def corpus():
    """Five traces in a fresh experiment; D names a run as its source, E is linked to it later."""
    client = MlflowClient()
    experiment_id = client.create_experiment(f"traces-search-{uuid.uuid4().hex[:10]}")
    run_id = client.create_run(experiment_id).info.run_id
    ids = {}
    for letter, (name, offset, duration, status, tags, metadata) in CORPUS.items():
        if letter == "D":
            metadata = {**metadata, "mlflow.sourceRun": run_id}
        ids[letter] = _make_trace(experiment_id, name, offset, duration, status, tags, metadata)
    _flush()
    client.link_traces_to_run([ids["E"]], run_id)
    mlflow.log_feedback(trace_id=ids["A"], name="quality", value="good")
    mlflow.log_feedback(trace_id=ids["B"], name="quality", value=0.2)
    overridden = mlflow.log_feedback(trace_id=ids["C"], name="quality", value=0.9)
    mlflow.override_feedback(trace_id=ids["C"], assessment_id=overridden.assessment_id, value=True)
    mlflow.log_expectation(trace_id=ids["D"], name="answer", value="42")
    return {"experiment_id": experiment_id, "run_id": run_id, "ids": ids}


def _letters(corpus, traces):
    by_id = {v: k for k, v in corpus["ids"].items()}
    return "".join(by_id.get(t.info.trace_id, "?") for t in traces)


def _search(corpus, filter_string=None, order_by=None):
    traces = mlflow.search_traces(
        locations=[corpus["experiment_id"]],
        filter_string=filter_string,
        order_by=order_by,
        return_type="list",
    )
    return _letters(corpus, traces)


FILTERS = [
    (None, "EDCBA"),
    ("trace.name = 'retrieve'", "CA"),
    ("name = 'generate'", "EB"),
    ("tags.Name != 'generate'", "DCA"),
    ("trace.name LIKE 're%'", "DCA"),
    ("trace.name ILIKE 'RE%'", "DCA"),
    ("trace.status = 'ERROR'", "B"),
    ("status = 'OK'", "EDCA"),
    ("trace.status IN ('ERROR', 'IN_PROGRESS')", "B"),
    ("attributes.status NOT IN ('OK')", "B"),
    (f"trace.timestamp_ms > {T0 + 2500}", "EDC"),
    (f"timestamp >= {T0 + 2000} AND timestamp < {T0 + 4000}", "CB"),
    (f"trace.timestamp_ms = {T0 + 1000}", "A"),
    ("trace.execution_time_ms > 100", "EDB"),
    ("execution_time <= 50", "CA"),
    (f"trace.end_time_ms >= {T0 + 4100}", "ED"),
    ("tags.team = 'search'", "CA"),
    ("tag.env != 'prod'", "D"),
    ("tags.env IS NULL", "CB"),
    ("tags.env IS NOT NULL", "EDA"),
    ("tags.team LIKE 'se%'", "CA"),
    ("tags.team ILIKE 'LL%'", "EB"),
    ("tags.team LIKE 'LL%'", ""),
    ("tags.`team` = 'llm' AND tags.env = 'prod'", "E"),
    ("metadata.user = 'alice'", "DA"),
    ("request_metadata.user != 'alice'", "B"),
    ("metadata.user IS NULL", "EC"),
    ("metadata.user LIKE 'b%'", "B"),
    ("trace.name = 'retrieve' AND tags.team = 'search' AND timestamp_ms > %d" % (T0 + 1500), "C"),
    ("trace.name = 'nope'", ""),
    # Only valid (not overridden) assessments count.
    ("feedback.quality = 'good'", "A"),
    ("feedback.quality = 'true'", "C"),
    ("feedback.quality != 'good'", "CB"),
    ("feedback.quality > 0.5", ""),
    ("feedback.quality <= 0.5", "B"),
    ("feedback.quality LIKE '%oo%'", "A"),
    ("feedback.quality IS NULL", "ED"),
    ("feedback.quality IS NOT NULL", "CBA"),
    ("expectation.answer = '42'", "D"),
    ("expectation.quality IS NOT NULL", ""),
]


@pytest.mark.parametrize(("filter_string", "expected"), FILTERS)
def test_search_traces_filters(corpus, filter_string, expected):
    assert _search(corpus, filter_string) == expected


def test_search_traces_by_run_includes_linked_traces(corpus):
    run_id = corpus["run_id"]
    assert _search(corpus, f"run_id = '{run_id}'") == "ED"
    assert _search(corpus, f"metadata.`mlflow.sourceRun` = '{run_id}'") == "ED"
    assert _search(corpus, "run_id = 'no-such-run'") == ""


def test_search_traces_by_request_id(corpus):
    ids = corpus["ids"]
    assert _search(corpus, f"trace.request_id = '{ids['A']}'") == "A"
    assert _search(corpus, f"request_id IN ('{ids['A']}', '{ids['B']}')") == "BA"
    assert _search(corpus, f"request_id NOT IN ('{ids['A']}', '{ids['B']}')") == "EDC"


ORDERINGS = [
    (["timestamp_ms ASC"], "ABCDE"),
    (["timestamp DESC"], "EDCBA"),
    (["execution_time_ms DESC"], "BEDAC"),
    (["execution_time"], "CADEB"),
    (["name ASC"], "EBDCA"),
    (["trace.status ASC", "timestamp_ms ASC"], "BACDE"),
    (["tags.team DESC"], "CAEBD"),
    (["metadata.user ASC", "timestamp_ms ASC"], "ADBCE"),
]


@pytest.mark.parametrize(("order_by", "expected"), ORDERINGS)
def test_search_traces_order_by(corpus, order_by, expected):
    assert _search(corpus, order_by=order_by) == expected


def test_search_traces_pages(corpus):
    client = MlflowClient()
    seen = []
    token = None
    pages = 0
    while True:
        page = client.search_traces(
            locations=[corpus["experiment_id"]],
            order_by=["timestamp_ms ASC"],
            max_results=2,
            page_token=token,
        )
        seen.append(_letters(corpus, page))
        pages += 1
        token = page.token
        if not token or pages > 5:
            break
    assert "".join(seen) == "ABCDE"
    assert seen[:3] == ["AB", "CD", "E"]


def test_search_traces_with_the_client_object(corpus):
    client = MlflowClient()
    page = client.search_traces(
        locations=[corpus["experiment_id"]],
        filter_string="tags.team = 'llm'",
        order_by=["timestamp_ms ASC"],
    )
    assert _letters(corpus, page) == "BE"


@pytest.mark.parametrize(
    ("filter_string", "message_start"),
    [
        ("trace.foo = 'x'", "Invalid attribute key 'foo' specified."),
        ("trace.state = 'OK'", "Invalid attribute key 'state' specified."),
        ("bogus.x = 'a'", "Invalid entity type 'bogus'."),
        ("name IN ('a')", "Invalid comparator 'IN' not one of"),
        ("timestamp_ms LIKE 'x'", "Invalid comparator 'LIKE' not one of"),
        ("tags.x = 5", "Expected a quoted string value for tag"),
        ("trace.name = 'a' OR trace.name = 'b'", "Invalid clause(s) in filter string"),
    ],
)
def test_search_traces_rejects_bad_filters(corpus, filter_string, message_start):
    with pytest.raises(MlflowException) as info:
        _search(corpus, filter_string)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert message_start in info.value.message


def test_span_filters(corpus):
    """Spans kept in the database (they arrive over OTLP) are searched by name."""
    assert _search(corpus, "span.name = 'rerank'") == "D"


# ------------------------------------------------------------------------- assessments


def _trace(experiment_id):
    return _make_trace(experiment_id, "judge-me", 9000, 5, "OK", {}, {})


def test_assessments_lifecycle(experiment_id):
    trace_id = _trace(experiment_id)
    _flush()
    source = AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id="alice")
    fb = mlflow.log_feedback(
        trace_id=trace_id, name="quality", value="good", rationale="clear", source=source
    )
    ex = mlflow.log_expectation(trace_id=trace_id, name="answer", value={"text": "42"}, source=source)
    assert fb.assessment_id and ex.assessment_id and fb.assessment_id != ex.assessment_id

    got = mlflow.get_assessment(trace_id, fb.assessment_id)
    assert (got.name, got.value, got.rationale, got.valid) == ("quality", "good", "clear", True)
    assert got.source.source_id == "alice"
    assert got.trace_id == trace_id
    got_ex = mlflow.get_assessment(trace_id, ex.assessment_id)
    assert (got_ex.name, got_ex.value) == ("answer", {"text": "42"})

    updated = mlflow.update_assessment(
        trace_id=trace_id,
        assessment_id=fb.assessment_id,
        assessment=Feedback(name="quality2", value="great", rationale="even clearer"),
    )
    assert (updated.name, updated.value, updated.rationale) == ("quality2", "great", "even clearer")
    assert updated.assessment_id == fb.assessment_id
    assert updated.source.source_id == "alice"
    got = mlflow.get_assessment(trace_id, fb.assessment_id)
    assert (got.name, got.value, got.rationale) == ("quality2", "great", "even clearer")

    new = mlflow.override_feedback(
        trace_id=trace_id, assessment_id=fb.assessment_id, value="bad", rationale="wrong"
    )
    assert new.assessment_id != fb.assessment_id
    assert new.overrides == fb.assessment_id
    assert new.valid is True
    assert mlflow.get_assessment(trace_id, fb.assessment_id).valid is False

    info = mlflow.get_trace(trace_id).info
    by_id = {a.assessment_id: a for a in info.assessments}
    assert set(by_id) == {fb.assessment_id, ex.assessment_id, new.assessment_id}
    assert by_id[fb.assessment_id].valid is False
    assert by_id[new.assessment_id].value == "bad"

    # Deleting the override makes the overridden feedback valid again.
    mlflow.delete_assessment(trace_id, new.assessment_id)
    assert mlflow.get_assessment(trace_id, fb.assessment_id).valid is True
    mlflow.delete_assessment(trace_id, ex.assessment_id)
    with pytest.raises(MlflowException) as err:
        mlflow.get_assessment(trace_id, ex.assessment_id)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    ids = [a.assessment_id for a in mlflow.get_trace(trace_id).info.assessments]
    assert ids == [fb.assessment_id]


def test_assessment_of_a_missing_trace_or_id_is_404(experiment_id):
    trace_id = _trace(experiment_id)
    _flush()
    with pytest.raises(MlflowException) as err:
        mlflow.get_assessment(trace_id, "a-0123456789abcdef0123456789abcdef")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as err:
        mlflow.override_feedback(
            trace_id=trace_id, assessment_id="a-0123456789abcdef0123456789abcdef", value=1
        )
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"


# ------------------------------------------------------------------------- links and routes


def test_link_traces_to_run_takes_any_run_id(experiment_id):
    """MLflow does not look the run up; the link is found by a search on that run id."""
    trace_id = _trace(experiment_id)
    _flush()
    run_id = uuid.uuid4().hex
    MlflowClient().link_traces_to_run([trace_id], run_id)
    MlflowClient().link_traces_to_run([trace_id], run_id)
    found = mlflow.search_traces(
        locations=[experiment_id], filter_string=f"run_id = '{run_id}'", return_type="list"
    )
    assert [t.info.trace_id for t in found] == [trace_id]


def test_trace_tags_set_and_delete(experiment_id):
    client = MlflowClient()
    trace_id = _trace(experiment_id)
    _flush()
    client.set_trace_tag(trace_id, "reviewed", "yes")
    assert mlflow.search_traces(
        locations=[experiment_id], filter_string="tags.reviewed = 'yes'", return_type="list"
    )[0].info.trace_id == trace_id
    client.delete_trace_tag(trace_id, "reviewed")
    assert (
        mlflow.search_traces(
            locations=[experiment_id], filter_string="tags.reviewed = 'yes'", return_type="list"
        )
        == []
    )


@pytest.mark.parametrize(
    "path",
    ["/api/2.0/mlflow/no/such/endpoint", "/api/3.0/mlflow/traces/x/nothing", "/ajax-api/2.0/mlflow/nope"],
)
def test_unknown_routes_are_404(api, target, path):
    r = api.get(path)
    assert r.status_code == 404
    if target == "mlox":
        # MLflow answers an HTML page here; mlox answers its JSON error shape.
        body = r.json()
        assert body["error_code"] == "ENDPOINT_NOT_FOUND"
        assert path in body["message"]


def test_wrong_method_is_405(api, target):
    r = api.get("/api/2.0/mlflow/traces/link-to-run")
    assert r.status_code == 405
    if target == "mlox":
        assert r.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_two_filters_correlate_over_an_experiments_traces(experiment_id):
    from mlflow.tracing.client import TracingClient

    for i in range(6):
        _make_trace(experiment_id, f"prod-{i}", 10_000 + i, 5, "OK",
                    {"env": "prod", "kind": "TOOL"}, {})
    for i in range(4):
        _make_trace(experiment_id, f"dev-{i}", 20_000 + i, 5, "OK",
                    {"env": "dev", "kind": "LLM" if i else "TOOL"}, {})
    _flush()
    client = TracingClient()
    together = client.calculate_trace_filter_correlation(
        experiment_ids=[experiment_id],
        filter_string1="tags.env = 'prod'", filter_string2="tags.kind = 'TOOL'")
    assert (together.total_count, together.filter1_count, together.filter2_count,
            together.joint_count) == (10, 6, 7, 6)
    assert 0.6 < together.npmi < 0.8
    nothing = client.calculate_trace_filter_correlation(
        experiment_ids=[experiment_id],
        filter_string1="tags.env = 'staging'", filter_string2="tags.kind = 'TOOL'")
    assert nothing.filter1_count == 0
    assert math.isnan(nothing.npmi)
    with pytest.raises(MlflowException, match="Invalid"):
        client.calculate_trace_filter_correlation(
            experiment_ids=[experiment_id],
            filter_string1="invalid.filter = 'x'", filter_string2="tags.kind = 'TOOL'")
