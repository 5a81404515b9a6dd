"""The GenAI pages of the web UI, clicked through in headless Chromium: the prompt registry and
the evaluation runs of ``mlflow.genai.evaluate``.

Prompts are registered with the real client (a text prompt in three versions with
``{{variables}}`` and commit messages, ``production`` on version 2, and a chat prompt); the
pages must show them, diff two versions, and every edit made on a page (moving an alias, a new
version, tags) must be what the client then loads. Two evaluations of one small dataset with
different predict functions and two custom scorers give two evaluation runs; the page opened by
the link the client prints must show each evaluated item with its inputs, outputs,
expectations and scores, the run's aggregates, and both runs side by side.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from playwright.sync_api import expect

from test_ui import page, shot  # noqa: F401  (the page fixture: no JS errors, nothing fetched from outside)

pytestmark = pytest.mark.mlox_only

V1 = "You are a helpful assistant.\nAnswer the question: {{question}}\nBe brief."
V2 = "You are a helpful assistant.\nAnswer the question: {{question}}\nBe brief and polite."
V3 = "You are a helpful assistant for {{ product }}.\nAnswer the question: {{question}}\nBe brief and polite.\nCite a source."
CHAT = [
    {"role": "system", "content": "You answer in {{language}}."},
    {"role": "user", "content": "{{question}}"},
]


def register_qa_prompt(name: str) -> str:
    """The text prompt in its three versions, ``production`` on version 2."""
    import mlflow

    mlflow.genai.register_prompt(name=name, template=V1, commit_message="First draft")
    mlflow.genai.register_prompt(name=name, template=V2, commit_message="Ask for politeness")
    mlflow.genai.register_prompt(name=name, template=V3, commit_message="Name the product and cite sources",
                                 tags={"reviewed": "yes"})
    mlflow.genai.set_prompt_alias(name, alias="production", version=2)
    return name


@pytest.fixture(scope="module")
def prompts(server_url):
    import mlflow

    mlflow.set_tracking_uri(server_url)
    mlflow.set_registry_uri(server_url)
    suffix = os.urandom(4).hex()
    name = register_qa_prompt(f"ui-qa-{suffix}")
    chat = f"ui-chat-{suffix}"
    mlflow.genai.register_prompt(name=chat, template=CHAT, commit_message="Chat in any language")
    return {"suffix": suffix, "name": name, "chat": chat}


def version_item(page, version: int):
    return page.get_by_role("region", name="Versions").locator(f"li[data-version='{version}']")


def test_prompts_list_shows_latest_versions_and_searches_by_name(page, prompts):
    page.goto(f"/#/prompts?search={prompts['suffix']}")
    table = page.get_by_role("table", name="Prompts")
    expect(table.locator("tbody tr")).to_have_count(2)
    row = table.locator(f"tr[data-prompt='{prompts['name']}']")
    expect(row).to_contain_text("Version 3")
    expect(row).to_contain_text("Name the product and cite sources")
    expect(row).to_contain_text("@production: v2")
    expect(table.locator(f"tr[data-prompt='{prompts['chat']}']")).to_contain_text("Chat in any language")
    shot(page, "prompts-list")

    page.get_by_label("Search prompts").fill(prompts["chat"])
    page.get_by_role("button", name="Search", exact=True).click()
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(rf"search={prompts['chat']}"))
    table.get_by_role("link", name=prompts["chat"]).click()
    expect(page).to_have_url(re.compile(rf"#/prompts/{prompts['chat']}$"))


def test_prompt_page_shows_versions_commit_messages_and_marked_variables(page, prompts):
    name = prompts["name"]
    page.goto(f"/#/prompts/{name}")
    versions = page.get_by_role("region", name="Versions").locator("li")
    expect(versions).to_have_count(3)
    for version, message in ((1, "First draft"), (2, "Ask for politeness"), (3, "Name the product and cite sources")):
        expect(version_item(page, version)).to_contain_text(message)
    expect(version_item(page, 2)).to_contain_text("@production")

    # Without ?promptVersion the latest version is shown, its variables marked as such.
    template = page.get_by_label("Prompt template")
    expect(template).to_have_text(V3)
    variables = template.locator(".prompt-variable")
    expect(variables).to_have_text(["{{ product }}", "{{question}}"])
    assert variables.evaluate_all("els => els.map(e => e.dataset.variable)") == ["product", "question"]
    expect(page.get_by_role("table", name="Version details")).to_contain_text("Name the product and cite sources")
    shot(page, "prompt-detail")

    page.goto(f"/#/prompts/{name}?promptVersion=1")
    expect(page.get_by_role("table", name="Version details")).to_contain_text("First draft")
    expect(template).to_have_text(V1)
    expect(template.locator(".prompt-variable")).to_have_text(["{{question}}"])
    expect(version_item(page, 1)).to_have_class(re.compile("selected"))


def test_chat_prompt_shows_each_message_as_role_and_content(page, prompts):
    page.goto(f"/#/prompts/{prompts['chat']}")
    messages = page.get_by_label("Prompt template").locator(".chat-message")
    expect(messages).to_have_count(2)
    expect(messages.nth(0).locator(".chat-role")).to_have_text("system")
    expect(messages.nth(0).locator(".prompt-variable")).to_have_text("{{language}}")
    expect(messages.nth(1).locator(".chat-role")).to_have_text("user")
    expect(messages.nth(1).locator(".prompt-variable")).to_have_text("{{question}}")


def test_diff_between_two_versions_marks_changed_lines(page, prompts):
    name = prompts["name"]
    page.goto(f"/#/prompts/{name}?promptVersion=3")
    page.get_by_role("tab", name="Compare").click()
    page.get_by_label("Base version").select_option("1")
    expect(page).to_have_url(re.compile(r"promptVersion=3.*compareTo=1|compareTo=1.*promptVersion=3"))
    diff = page.get_by_role("table", name="Diff")
    expect(diff.locator("tr[data-kind='removed'] .diff-text")).to_have_text(["You are a helpful assistant.", "Be brief."])
    expect(diff.locator("tr[data-kind='added'] .diff-text")).to_have_text(
        ["You are a helpful assistant for {{ product }}.", "Be brief and polite.", "Cite a source."])
    expect(diff.locator("tr[data-kind='same'] .diff-text")).to_have_text(["Answer the question: {{question}}"])
    expect(diff.locator("tr[data-kind='added'] .prompt-variable")).to_have_text(["{{ product }}"])
    shot(page, "prompt-diff")

    # The comparison is a deep link too.
    page.goto(f"/#/prompts/{name}?promptVersion=2&compareTo=1")
    expect(diff.locator("tr[data-kind='removed'] .diff-text")).to_have_text(["Be brief."])
    expect(diff.locator("tr[data-kind='added'] .diff-text")).to_have_text(["Be brief and polite."])


def test_alias_moved_and_deleted_on_the_page_is_what_the_client_loads(page):
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name = register_qa_prompt(f"ui-alias-{os.urandom(4).hex()}")
    client = MlflowClient()
    assert client.get_prompt_version_by_alias(name, "production").version == 2
    page.goto(f"/#/prompts/{name}")
    aliases = page.get_by_role("table", name="Aliases")
    page.get_by_label("Version of alias production").select_option("3")
    expect(version_item(page, 3)).to_contain_text("@production")
    expect(version_item(page, 2)).not_to_contain_text("@production")
    # The page shows the alias moved only once it has read it back from the server.
    assert client.get_prompt_version_by_alias(name, "production").version == 3
    assert mlflow.genai.load_prompt(f"prompts:/{name}@production", cache_ttl_seconds=0).template == V3

    page.get_by_label("New alias", exact=True).fill("staging")
    page.get_by_label("New alias version").select_option("1")
    page.get_by_role("button", name="Set alias").click()
    expect(aliases.locator("tr[data-alias='staging']")).to_be_visible()
    assert client.get_prompt_version_by_alias(name, "staging").version == 1

    aliases.get_by_role("button", name="Delete alias staging").click()
    expect(aliases.locator("tr[data-alias='staging']")).to_have_count(0)
    with pytest.raises(MlflowException):
        client.get_prompt_version_by_alias(name, "staging")


def test_new_version_created_on_the_page_loads_in_the_client(page):
    import mlflow

    name = register_qa_prompt(f"ui-commit-{os.urandom(4).hex()}")
    page.goto(f"/#/prompts/{name}?promptVersion=3")
    page.get_by_role("button", name="New version").click()
    form = page.get_by_role("region", name="New version")
    new_text = "You are a concise assistant for {{product}}.\nQuestion: {{question}}\nAnswer in one sentence."
    form.get_by_label("Template", exact=True).fill(new_text)
    form.get_by_label("Commit message").fill("One-sentence answers")
    form.get_by_role("button", name="Create version").click()
    expect(page).to_have_url(re.compile(r"promptVersion=4"))
    expect(version_item(page, 4)).to_contain_text("One-sentence answers")
    expect(page.get_by_label("Prompt template")).to_have_text(new_text)

    loaded = mlflow.genai.load_prompt(f"prompts:/{name}/4")
    assert loaded.template == new_text
    assert loaded.commit_message == "One-sentence answers"
    assert loaded.format(product="mlox", question="Why?") == "You are a concise assistant for mlox.\nQuestion: Why?\nAnswer in one sentence."


def test_new_chat_version_created_on_the_page_loads_as_messages(page):
    import mlflow

    name = f"ui-chat-commit-{os.urandom(4).hex()}"
    mlflow.genai.register_prompt(name=name, template=CHAT, commit_message="Chat in any language")
    page.goto(f"/#/prompts/{name}")
    page.get_by_role("button", name="New version").click()
    form = page.get_by_role("region", name="New version")
    expect(form.get_by_label("Template type")).to_have_value("chat")
    messages = [{"role": "system", "content": "Answer in {{language}}, politely."}, {"role": "user", "content": "{{question}}"}]
    form.get_by_label("Template", exact=True).fill(json.dumps(messages))
    form.get_by_label("Commit message").fill("Politely")
    form.get_by_role("button", name="Create version").click()
    expect(page).to_have_url(re.compile(r"promptVersion=2"))
    assert mlflow.genai.load_prompt(f"prompts:/{name}/2").template == messages


def test_prompt_and_version_tags_are_edited_on_the_page(page, prompts):
    from mlflow import MlflowClient

    name = prompts["name"]
    client = MlflowClient()
    page.goto(f"/#/prompts/{name}?promptVersion=3")
    version_tags = page.get_by_role("region", name="Version tags")
    expect(version_tags.locator("tr[data-tag='reviewed']")).to_contain_text("yes")
    # The registry's own tags (template, type) are not offered for editing.
    expect(version_tags.locator("tr[data-tag='mlflow.prompt.text']")).to_have_count(0)
    expect(version_tags.locator("tr[data-tag='_mlflow_prompt_type']")).to_have_count(0)
    version_tags.get_by_label("New tag key").fill("owner")
    version_tags.get_by_label("New tag value").fill("support-team")
    version_tags.get_by_role("button", name="Add tag").click()
    expect(version_tags.locator("tr[data-tag='owner']")).to_contain_text("support-team")
    assert client.get_prompt_version(name, 3).tags["owner"] == "support-team"

    prompt_tags = page.get_by_role("region", name="Prompt tags")
    prompt_tags.get_by_label("New tag key").fill("domain")
    prompt_tags.get_by_label("New tag value").fill("faq")
    prompt_tags.get_by_role("button", name="Add tag").click()
    expect(prompt_tags.locator("tr[data-tag='domain']")).to_contain_text("faq")
    assert client.get_prompt(name).tags["domain"] == "faq"
    prompt_tags.get_by_role("button", name="Delete tag domain").click()
    expect(prompt_tags.locator("tr[data-tag='domain']")).to_have_count(0)
    assert "domain" not in client.get_prompt(name).tags


# --------------------------------------------------------------------------- evaluation runs

QUESTIONS = {
    "What is MLflow?": "An ML platform",
    "Capital of France?": "Paris",
    "2 + 2?": "4",
    "Color of the sky?": "Blue",
}
ANSWERS_LOOKUP = {"What is MLflow?": "An ML platform", "Capital of France?": "Paris", "2 + 2?": "4", "Color of the sky?": "Green"}
ANSWERS_VERBOSE = {
    "What is MLflow?": "An open source platform for the machine learning lifecycle",
    "Capital of France?": "Paris",
    "2 + 2?": "5",
    "Color of the sky?": "Blue",
}


def answering(answers: dict[str, str]):
    def predict(question: str) -> str:
        return answers[question]

    return predict


@pytest.fixture(scope="module")
def evaluations(server_url):
    import mlflow
    from mlflow.entities import Feedback
    from mlflow.genai.scorers import scorer

    @scorer
    def exact_match(outputs, expectations) -> bool:
        return outputs == expectations["expected_response"]

    @scorer
    def word_count(outputs):
        words = len(outputs.split())
        return Feedback(value=words, rationale=f"The answer has {words} word{'s' if words != 1 else ''}.")

    mlflow.set_tracking_uri(server_url)
    experiment = mlflow.set_experiment(f"ui-genai-eval-{os.urandom(4).hex()}")
    data = [{"inputs": {"question": q}, "expectations": {"expected_response": a}} for q, a in QUESTIONS.items()]
    runs = {}
    for run_name, answers in (("lookup", ANSWERS_LOOKUP), ("verbose", ANSWERS_VERBOSE)):
        with mlflow.start_run(run_name=run_name) as run:
            mlflow.genai.evaluate(data=data, predict_fn=answering(answers), scorers=[exact_match, word_count])
        runs[run_name] = mlflow.get_run(run.info.run_id)
    return {"exp_id": experiment.experiment_id, "runs": runs}


def result_row(table, question: str):
    return table.locator("tbody tr").filter(has=table.page.locator("[data-col='inputs']", has_text=question))


def test_evaluation_run_page_shows_every_item_with_scores_and_the_run_aggregates(page, evaluations):
    lookup = evaluations["runs"]["lookup"]
    exp_id = evaluations["exp_id"]
    page.goto(f"/#/experiments/{exp_id}/evaluation-runs?selectedRunUuid={lookup.info.run_id}")
    expect(page.get_by_role("navigation", name="Experiment").get_by_role("link", name="Evaluations")).to_have_attribute("aria-current", "page")
    run_list = page.get_by_role("region", name="Evaluation runs")
    expect(run_list.locator("li")).to_have_count(2)
    expect(run_list.locator(f"li[data-run='{lookup.info.run_id}']")).to_have_class(re.compile("selected"))

    table = page.get_by_role("table", name="Evaluation results")
    expect(table.locator("tbody tr")).to_have_count(len(QUESTIONS))
    for question, expected in QUESTIONS.items():
        row = result_row(table, question)
        expect(row).to_have_count(1)
        answer = ANSWERS_LOOKUP[question]
        expect(row.locator("[data-col='outputs']")).to_contain_text(answer)
        expect(row.locator("[data-col='expectations']")).to_contain_text("expected_response")
        expect(row.locator("[data-col='expectations']")).to_contain_text(expected)
        expect(row.locator("[data-scorer='exact_match']")).to_have_attribute("data-value", "true" if answer == expected else "false")
        expect(row.locator("[data-scorer='word_count']")).to_have_attribute("data-value", str(len(answer.split())))

    # A scorer's rationale is one click (or a hover) away.
    cell = result_row(table, "Capital of France?").locator("[data-scorer='word_count']")
    expect(cell.locator(".rationale")).not_to_be_visible()
    cell.locator("summary").click()
    expect(cell.locator(".rationale")).to_have_text("The answer has 1 word.")

    aggregates = page.get_by_role("table", name="Aggregate scores")
    for key, value in lookup.data.metrics.items():
        if "/" not in key:
            continue
        shown = aggregates.locator(f"tr[data-metric='{key}'] td[data-run='selected']")
        expect(shown).to_have_count(1)
        assert float(shown.inner_text()) == pytest.approx(value, rel=1e-5)
    assert lookup.data.metrics["exact_match/mean"] == pytest.approx(0.75)
    shot(page, "evaluation-run")


def test_two_evaluation_runs_side_by_side(page, evaluations):
    lookup = evaluations["runs"]["lookup"]
    verbose = evaluations["runs"]["verbose"]
    exp_id = evaluations["exp_id"]
    page.goto(f"/#/experiments/{exp_id}/evaluation-runs?selectedRunUuid={verbose.info.run_id}")
    page.get_by_label("Compare with").select_option(lookup.info.run_id)
    expect(page).to_have_url(re.compile(f"compareToRunUuid={lookup.info.run_id}"))

    table = page.get_by_role("table", name="Compared results")
    expect(table.locator("tbody tr")).to_have_count(len(QUESTIONS))
    for question in QUESTIONS:
        row = result_row(table, question)
        expect(row).to_have_count(1)
        outputs = row.locator("[data-col='outputs']")
        expect(outputs.locator("[data-run='selected']")).to_contain_text(ANSWERS_VERBOSE[question])
        expect(outputs.locator("[data-run='compared']")).to_contain_text(ANSWERS_LOOKUP[question])
        for side, answers in (("selected", ANSWERS_VERBOSE), ("compared", ANSWERS_LOOKUP)):
            scores = row.locator(f"td.score-pair [data-run='{side}']")
            expect(scores.locator("[data-scorer='exact_match']")).to_have_attribute(
                "data-value", "true" if answers[question] == QUESTIONS[question] else "false")
            expect(scores.locator("[data-scorer='word_count']")).to_have_attribute("data-value", str(len(answers[question].split())))
    # Items whose scores differ between the runs are marked.
    expect(result_row(table, "2 + 2?")).to_have_class(re.compile("differs"))
    expect(result_row(table, "Capital of France?")).not_to_have_class(re.compile("differs"))

    aggregates = page.get_by_role("table", name="Aggregate scores")
    exact = aggregates.locator("tr[data-metric='exact_match/mean']")
    assert float(exact.locator("td[data-run='selected']").inner_text()) == pytest.approx(verbose.data.metrics["exact_match/mean"])
    assert float(exact.locator("td[data-run='compared']").inner_text()) == pytest.approx(lookup.data.metrics["exact_match/mean"])
    delta = verbose.data.metrics["exact_match/mean"] - lookup.data.metrics["exact_match/mean"]
    assert float(exact.locator("td.delta").get_attribute("data-delta")) == pytest.approx(delta)
    expect(exact.locator("td.delta")).to_have_text("−0.25")
    shot(page, "evaluation-compare")
