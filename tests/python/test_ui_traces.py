"""The traces pages of the web UI, clicked through in headless Chromium.

Traces are written by the real ``mlflow`` client as an application writes them: ``@mlflow.trace``
functions three levels deep, a chat model call holding a conversation, tags set from inside the
trace, one trace produced inside a run, feedback from a judge and an expectation. The list is
opened by deep link, filtered with MLflow's trace search grammar and sorted; a trace is opened
by the links MLflow's UI writes; assessments added, edited and overridden on the page are read
back through the client.
"""

from __future__ import annotations

import os
import re
import time

import pytest
from playwright.sync_api import expect

from test_ui import page, shot  # noqa: F401  (the page fixture: no JS errors, nothing fetched from outside)

pytestmark = pytest.mark.mlox_only

CHAT_SYSTEM = "You answer questions about invoices in one sentence."
CHAT_QUESTION = "Why was I charged twice in March?"
CHAT_ANSWER = "The second charge was a pre-authorisation; it is released within 3 days."
# Logged content must render as text, never as markup.
HOSTILE = "<img src=x onerror=\"document.title='pwned'\"> refund?"


def _flush():
    import mlflow

    try:
        mlflow.flush_trace_async_logging(terminate=False)
    except TypeError:
        mlflow.flush_trace_async_logging()


@pytest.fixture(scope="module")
def traces(server_url):
    """One experiment with five traces: four answered, at known paces, and one that failed."""
    import mlflow
    from mlflow.entities import AssessmentSource, AssessmentSourceType, SpanType

    mlflow.set_tracking_uri(server_url)
    client = mlflow.MlflowClient(server_url)
    exp_id = client.create_experiment(f"ui-traces-{os.urandom(4).hex()}")
    mlflow.set_experiment(experiment_id=exp_id)

    @mlflow.trace(span_type=SpanType.TOOL)
    def lookup_invoice(question: str, pause: float) -> dict:
        time.sleep(pause)
        return {"invoice": "INV-1042", "amount": 42.5}

    @mlflow.trace(span_type=SpanType.RETRIEVER)
    def find_documents(question: str, pause: float) -> list:
        return [lookup_invoice(question, pause)]

    @mlflow.trace(span_type=SpanType.CHAT_MODEL)
    def chat_model(messages: list) -> dict:
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": CHAT_ANSWER}, "finish_reason": "stop"}]}

    @mlflow.trace(span_type=SpanType.TOOL)
    def order_status(order: str) -> dict:
        raise TimeoutError("order service timed out")

    @mlflow.trace(span_type=SpanType.AGENT)
    def support_agent(question: str, topic: str, pause: float) -> str:
        mlflow.update_current_trace(tags={"topic": topic, "channel": "web"})
        if topic == "outage":
            order_status("A-17")
        find_documents(question, pause)
        if topic == "billing":
            reply = chat_model([{"role": "system", "content": CHAT_SYSTEM}, {"role": "user", "content": question}])
            return reply["choices"][0]["message"]["content"]
        return f"answer to {question}"

    ids = {}
    support_agent(CHAT_QUESTION, "billing", 0.30)
    _flush()
    ids["billing"] = mlflow.get_last_active_trace_id()
    support_agent("How do I reset my password?", "account", 0.01)
    _flush()
    ids["account"] = mlflow.get_last_active_trace_id()
    support_agent(HOSTILE, "refunds", 0.12)
    _flush()
    ids["hostile"] = mlflow.get_last_active_trace_id()
    with pytest.raises(TimeoutError):
        support_agent("Is my order delayed?", "outage", 0.0)
    _flush()
    ids["failed"] = mlflow.get_last_active_trace_id()
    # A trace of a logged model's version of the agent, produced inside an evaluation run.
    model = mlflow.set_active_model(name="support-agent-v2")
    try:
        with mlflow.start_run(run_name="support-eval") as run:
            support_agent("Where is my parcel?", "shipping", 0.06)
            _flush()
            ids["in_run"] = mlflow.get_last_active_trace_id()
    finally:
        mlflow.clear_active_model()

    judge = AssessmentSource(source_type=AssessmentSourceType.LLM_JUDGE, source_id="judge-v1")
    feedback = mlflow.log_feedback(
        trace_id=ids["billing"], name="helpfulness", value=False, rationale="Misses the refund date.", source=judge
    )
    expectation = mlflow.log_expectation(trace_id=ids["billing"], name="expected_answer", value="A pre-authorisation, released in 3 days.")
    return {
        "client": client,
        "exp_id": exp_id,
        "ids": ids,
        "run_id": run.info.run_id,
        "model_id": model.model_id,
        "feedback_id": feedback.assessment_id,
        "expectation_id": expectation.assessment_id,
    }


def rows(page):
    return page.get_by_test_id("trace-row")


def trace_ids_shown(page) -> list[str]:
    return [r.get_attribute("data-trace-id") for r in rows(page).all()]


def test_traces_list_shows_previews_filters_and_sorts(page, traces):
    ids = traces["ids"]
    page.goto(f"/#/experiments/{traces['exp_id']}/traces")
    expect(rows(page)).to_have_count(5)
    expect(page.get_by_role("link", name="Traces", exact=True)).to_have_attribute("aria-current", "page")
    billing = page.locator(f'[data-trace-id="{ids["billing"]}"]')
    expect(billing).to_contain_text(CHAT_QUESTION)
    expect(billing).to_contain_text(CHAT_ANSWER[:30])
    expect(billing).to_contain_text("OK")
    expect(billing).to_contain_text("topic: billing")
    expect(billing).to_contain_text("helpfulness: false")
    expect(page.locator(f'[data-trace-id="{ids["failed"]}"]')).to_contain_text("ERROR")
    # Hostile content is shown as the text it is.
    expect(page.locator(f'[data-trace-id="{ids["hostile"]}"]')).to_contain_text("<img src=x")
    assert page.title() != "pwned"
    # The trace written inside a run under an active model links to both.
    in_run = page.locator(f'[data-trace-id="{ids["in_run"]}"]')
    expect(in_run.get_by_role("link", name=traces["run_id"][:8])).to_have_attribute("href", f"#/experiments/{traces['exp_id']}/runs/{traces['run_id']}")
    expect(in_run.get_by_role("link", name=traces["model_id"][:14])).to_have_attribute(
        "href", f"#/experiments/{traces['exp_id']}/models/{traces['model_id']}"
    )
    # Newest first by default.
    assert trace_ids_shown(page) == [ids["in_run"], ids["failed"], ids["hostile"], ids["account"], ids["billing"]]
    shot(page, "traces-list")

    # The pauses make billing the slowest; the stored execution times decide the rest.
    latency = {tid: traces["client"].get_trace(tid).info.execution_time_ms for tid in ids.values()}
    slowest_first = sorted(latency, key=latency.get, reverse=True)
    assert slowest_first[0] == ids["billing"]
    page.get_by_role("button", name="Sort by Execution time").click()
    expect(page).to_have_url(re.compile(r"sort=latency%3Adesc"))
    expect(rows(page).first).to_have_attribute("data-trace-id", ids["billing"])
    assert trace_ids_shown(page) == slowest_first
    page.get_by_role("button", name="Sort by Execution time").click()
    expect(rows(page).first).to_have_attribute("data-trace-id", slowest_first[-1])
    assert trace_ids_shown(page) == slowest_first[::-1]

    page.get_by_label("Filter traces").fill("tags.topic = 'billing'")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-trace-id", ids["billing"])
    expect(page).to_have_url(re.compile(r"filter=tags\.topic"))
    # The filter is part of the deep link.
    page.reload()
    expect(rows(page)).to_have_count(1)
    expect(page.get_by_label("Filter traces")).to_have_value("tags.topic = 'billing'")

    page.get_by_label("Filter traces").fill("attributes.status = 'ERROR'")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-trace-id", ids["failed"])

    slower_than_the_rest = (latency[slowest_first[0]] + latency[slowest_first[1]]) // 2
    page.get_by_label("Filter traces").fill(f"trace.status = 'OK' AND trace.execution_time_ms > {slower_than_the_rest}")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-trace-id", ids["billing"])

    page.get_by_label("Filter traces").fill("tags.topic === 'billing'")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("INVALID_PARAMETER_VALUE")
    expect(page.get_by_role("alert")).to_contain_text("===")
    expect(rows(page)).to_have_count(0)


def test_deep_links_open_the_trace(page, traces):
    billing = traces["ids"]["billing"]
    exp_id = traces["exp_id"]
    for link in (
        f"/#/experiments/{exp_id}/traces?selectedEvaluationId={billing}",
        f"/#/experiments/{exp_id}/traces?selectedTraceId={billing}",
        f"/#/experiments/{exp_id}/traces/{billing}",
    ):
        page.goto(link)
        summary = page.get_by_role("region", name="Trace", exact=True)
        expect(summary).to_contain_text(billing)
        expect(page.get_by_role("tree", name="Span tree")).to_contain_text("support_agent")
    # A row of the list opens its trace, and the breadcrumbs lead back to the list.
    page.goto(f"/#/experiments/{exp_id}/traces")
    page.get_by_role("link", name="How do I reset my password?").click()
    expect(page).to_have_url(re.compile(rf"/traces/{traces['ids']['account']}"))
    expect(page.get_by_role("region", name="Trace", exact=True)).to_contain_text(traces["ids"]["account"])
    page.get_by_label("Breadcrumbs").get_by_role("link", name="Traces", exact=True).click()
    expect(rows(page)).to_have_count(5)


def test_trace_page_shows_span_tree_span_contents_and_chat(page, traces):
    billing = traces["ids"]["billing"]
    page.goto(f"/#/experiments/{traces['exp_id']}/traces/{billing}")
    tree = page.get_by_role("tree", name="Span tree")
    for name, level in (("support_agent", 1), ("find_documents", 2), ("lookup_invoice", 3), ("chat_model", 2)):
        item = tree.locator(f'[data-span-name="{name}"]')
        expect(item).to_have_attribute("aria-level", str(level))
    expect(tree.locator('[data-span-name="lookup_invoice"]')).to_contain_text("TOOL")
    # The root span is open first: its inputs are the agent's arguments.
    detail = page.get_by_role("region", name="Span support_agent")
    expect(detail.get_by_label("Inputs")).to_contain_text(CHAT_QUESTION)

    tree.locator('[data-span-name="lookup_invoice"]').click()
    detail = page.get_by_role("region", name="Span lookup_invoice")
    expect(detail.get_by_label("Outputs")).to_contain_text("INV-1042")
    expect(detail.get_by_label("Inputs")).to_contain_text("pause")

    # Collapsing a span hides its descendants.
    tree.get_by_role("button", name="Collapse find_documents").click()
    expect(tree.locator('[data-span-name="lookup_invoice"]')).to_have_count(0)
    tree.get_by_role("button", name="Expand find_documents").click()
    expect(tree.locator('[data-span-name="lookup_invoice"]')).to_have_count(1)

    tree.locator('[data-span-name="chat_model"]').click()
    chat = page.get_by_role("list", name="Chat messages")
    messages = chat.get_by_role("listitem")
    expect(messages).to_have_count(3)
    expect(messages.nth(0)).to_have_attribute("data-role", "system")
    expect(messages.nth(0)).to_contain_text(CHAT_SYSTEM)
    expect(messages.nth(1)).to_have_attribute("data-role", "user")
    expect(messages.nth(1)).to_contain_text(CHAT_QUESTION)
    expect(messages.nth(2)).to_have_attribute("data-role", "assistant")
    expect(messages.nth(2)).to_contain_text(CHAT_ANSWER)

    assessments = page.get_by_role("region", name="Assessments")
    expect(assessments.locator(f'[data-assessment-id="{traces["feedback_id"]}"]')).to_contain_text("Misses the refund date.")
    expect(assessments.locator(f'[data-assessment-id="{traces["feedback_id"]}"]')).to_contain_text("judge-v1")
    expect(assessments.locator(f'[data-assessment-id="{traces["expectation_id"]}"]')).to_contain_text("released in 3 days")
    shot(page, "trace-detail")


def test_failed_span_shows_its_error_and_exception_event(page, traces):
    page.goto(f"/#/experiments/{traces['exp_id']}/traces/{traces['ids']['failed']}")
    expect(page.get_by_role("region", name="Trace", exact=True)).to_contain_text("ERROR")
    tree = page.get_by_role("tree", name="Span tree")
    failed = tree.locator('[data-span-name="order_status"]')
    expect(failed).to_contain_text("error")
    failed.click()
    detail = page.get_by_role("region", name="Span order_status")
    expect(detail).to_contain_text("ERROR")
    expect(detail.get_by_role("alert")).to_contain_text("order service timed out")
    expect(detail.get_by_label("Event exception")).to_contain_text("TimeoutError")


def test_hostile_trace_content_stays_text(page, traces):
    page.goto(f"/#/experiments/{traces['exp_id']}/traces/{traces['ids']['hostile']}")
    expect(page.get_by_role("region", name="Span support_agent").get_by_label("Inputs")).to_contain_text("<img src=x")
    assert page.locator("main img").count() == 0
    assert page.title() != "pwned"


def test_assessments_added_edited_and_overridden_on_the_page(page, traces):
    import mlflow

    trace_id = traces["ids"]["billing"]
    page.goto(f"/#/experiments/{traces['exp_id']}/traces/{trace_id}")
    assessments = page.get_by_role("region", name="Assessments")

    # Add a feedback.
    assessments.get_by_role("button", name="Add assessment").click()
    form = assessments.get_by_role("form", name="Add assessment")
    form.get_by_label("Assessment name").fill("tone")
    form.get_by_label("Assessment value").fill('"friendly"')
    form.get_by_label("Assessment rationale").fill("Polite and clear.")
    form.get_by_label("Assessment source").fill("reviewer-ann")
    form.get_by_role("button", name="Save").click()
    expect(assessments.get_by_role("row").filter(has_text="tone")).to_contain_text("Polite and clear.")

    def stored():
        return {a.name: a for a in mlflow.get_trace(trace_id).info.assessments if a.valid is not False}

    tone = stored()["tone"]
    assert tone.feedback.value == "friendly"
    assert tone.rationale == "Polite and clear."
    assert tone.source.source_type == "HUMAN" and tone.source.source_id == "reviewer-ann"

    # Override the judge's feedback: a new feedback replaces it, the old one stays, invalid.
    assessments.get_by_role("button", name="Override helpfulness").click()
    form = assessments.get_by_role("form", name="Override helpfulness")
    form.get_by_label("Assessment value").fill("true")
    form.get_by_label("Assessment rationale").fill("It does give the refund date.")
    form.get_by_label("Assessment source").fill("reviewer-ann")
    form.get_by_role("button", name="Override").click()
    old_row = assessments.locator(f'[data-assessment-id="{traces["feedback_id"]}"]')
    expect(old_row).to_contain_text("overridden")
    all_now = mlflow.get_trace(trace_id).info.assessments
    old = next(a for a in all_now if a.assessment_id == traces["feedback_id"])
    new = next(a for a in all_now if a.overrides == traces["feedback_id"])
    assert old.valid is False
    assert new.name == "helpfulness" and new.feedback.value is True and new.valid is not False
    assert new.rationale == "It does give the refund date."
    expect(assessments.locator(f'[data-assessment-id="{new.assessment_id}"]')).to_contain_text("true")

    # Edit the expectation in place.
    assessments.get_by_role("button", name="Edit expected_answer").click()
    form = assessments.get_by_role("form", name="Edit expected_answer")
    form.get_by_label("Assessment value").fill("A pre-authorisation, released within 3 days.")
    form.get_by_role("button", name="Save").click()
    expect(assessments.locator(f'[data-assessment-id="{traces["expectation_id"]}"]')).to_contain_text("released within 3 days")
    edited = mlflow.get_trace(trace_id).info.assessments
    expectation = next(a for a in edited if a.assessment_id == traces["expectation_id"])
    assert expectation.expectation.value == "A pre-authorisation, released within 3 days."
