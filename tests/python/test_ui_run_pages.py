"""What MLflow users expect of the run and experiment pages, clicked through in headless Chromium:
names instead of ids in breadcrumbs, MLflow's tab URLs, Markdown descriptions rendered safely,
bars for metrics logged once, images logged by key and step with a step slider, resizable run
columns, and a compare scatter that does not start on one metric against itself.

Data is written by the real ``mlflow`` client; edits made on a page are read back through it.
"""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from test_ui import page, shot  # noqa: F401  (the page fixture: no JS errors, no outside requests)

pytestmark = pytest.mark.mlox_only

DESCRIPTION = """Iris **logistic** regression, see [the docs](https://mlflow.org/docs).

- scaled features
- `C = 1.0`

<img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>"""


@pytest.fixture(scope="module")
def logged(server_url):
    import mlflow
    import numpy as np
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(server_url)
    client = MlflowClient(server_url)
    name = f"ui-iris-{os.urandom(4).hex()}"
    exp_id = client.create_experiment(name)
    client.set_experiment_tag(exp_id, "mlflow.note.content", "Experiments on **iris**")
    mlflow.set_experiment(experiment_id=exp_id)
    runs = {}
    for c in (0.1, 1.0):
        with mlflow.start_run(run_name=f"logreg-C{c}") as run:
            mlflow.log_param("C", c)
            mlflow.log_metric("accuracy", 0.9 + c / 20)
            mlflow.log_metric("a_metric_with_a_very_long_name_that_does_not_fit_in_its_column", c)
            for step in range(5):
                mlflow.log_metric("loss", 1.0 / (step + 1 + c), step=step)
                mlflow.log_metric("system/cpu_utilization_percentage", 10 + step, step=step)
            runs[c] = run.info.run_id
    run_id = runs[1.0]
    client.set_tag(run_id, "mlflow.note.content", DESCRIPTION)
    for step, shade in enumerate((40, 120, 200)):
        image = np.full((8, 12, 3), shade, dtype=np.uint8)
        client.log_image(run_id, image, key="confusion/matrix", step=step * 10)
    return {"client": client, "exp_id": exp_id, "exp_name": name, "run_id": run_id, "runs": runs}


def run_url(logged, tab: str = "") -> str:
    return f"/#/experiments/{logged['exp_id']}/runs/{logged['run_id']}" + (f"/{tab}" if tab else "")


def test_breadcrumbs_and_titles_name_the_experiment(page, logged):
    page.goto(run_url(logged))
    crumbs = page.get_by_role("navigation", name="Breadcrumbs")
    expect(crumbs.get_by_role("link", name=logged["exp_name"])).to_be_visible()
    expect(crumbs).not_to_contain_text(f"Experiment {logged['exp_id']}")
    crumbs.get_by_role("link", name=logged["exp_name"]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(logged["exp_name"])
    # The experiment's own description is Markdown too.
    expect(page.locator(".experiment-description strong")).to_have_text("iris")


@pytest.mark.parametrize(
    ("segment", "tab"),
    [("model-metrics", "Model metrics"), ("system-metrics", "System metrics"), ("artifacts", "Artifacts"), ("metrics", "Model metrics"), ("", "Overview")],
)
def test_mlflow_tab_urls_open_their_tab(page, logged, segment, tab):
    page.goto(run_url(logged, segment))
    expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
    if segment == "system-metrics":
        page.locator("[data-metric='system/cpu_utilization_percentage'] [data-rendered=true]").wait_for()
    if segment == "model-metrics":
        page.locator("[data-metric=loss] [data-rendered=true]").wait_for()


def test_tab_clicks_write_mlflow_urls(page, logged):
    page.goto(run_url(logged))
    page.get_by_role("tab", name="Model metrics").click()
    page.wait_for_url(re.compile(r"/model-metrics$"))
    page.get_by_role("tab", name="System metrics").click()
    page.wait_for_url(re.compile(r"/system-metrics$"))


def test_markdown_description_renders_safely_and_edits_round_trip(page, logged):
    page.goto(run_url(logged))
    description = page.get_by_role("region", name="Description")
    expect(description.locator("strong")).to_have_text("logistic")
    expect(description.locator("li")).to_have_count(2)
    expect(description.locator("code")).to_have_text("C = 1.0")
    link = description.get_by_role("link", name="the docs")
    expect(link).to_have_attribute("href", "https://mlflow.org/docs")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    # Markup in the description is shown as text, never run.
    expect(description).to_contain_text("<script>document.title='pwned'</script>")
    assert description.locator("img, script").count() == 0
    assert page.title() != "pwned"
    shot(page, "run-markdown-description")

    description.get_by_role("button", name="Edit Description").click()
    description.get_by_role("textbox", name="Description").fill("Now **bold** _and_ plain")
    description.get_by_role("button", name="Save").click()
    expect(description.locator("em")).to_have_text("and")
    stored = logged["client"].get_run(logged["run_id"]).data.tags["mlflow.note.content"]
    assert stored == "Now **bold** _and_ plain"
    logged["client"].set_tag(logged["run_id"], "mlflow.note.content", DESCRIPTION)


def test_metric_logged_once_is_drawn_as_bars(page, logged):
    page.goto(run_url(logged, "model-metrics"))
    bars = page.locator("[data-metric=accuracy] [data-testid=bar-chart]")
    expect(bars).to_be_visible()
    expect(bars).to_contain_text("0.95")
    # A history with steps stays a line chart.
    expect(page.locator("[data-metric=loss] [data-testid=metric-chart]")).to_be_visible()
    assert page.locator("[data-metric=loss] [data-testid=bar-chart]").count() == 0

    # Across runs, each run gets its bar.
    page.goto(f"/#/experiments/{logged['exp_id']}?view=chart")
    expect(page.locator("[data-metric=accuracy] [data-bar]")).to_have_count(2)
    shot(page, "runs-chart-bars")


def test_images_logged_by_step_show_with_a_slider(page, logged, api):
    page.goto(run_url(logged))
    page.get_by_role("tab", name="Images").click()
    page.wait_for_url(re.compile(r"/images$"))
    card = page.locator("[data-image-key='confusion/matrix']")
    expect(card.get_by_test_id("image-step")).to_have_text("Step 20")
    image = card.get_by_role("img")
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("i => i.naturalWidth") > 0
    last_src = image.get_attribute("src")
    slider = card.get_by_role("slider", name="Step of confusion/matrix")
    slider.fill("0")
    expect(card.get_by_test_id("image-step")).to_have_text("Step 0")
    assert image.get_attribute("src") != last_src
    r = api.get("/" + image.get_attribute("src"))
    assert r.status_code == 200 and r.content[:4] in (b"RIFF", b"\x89PNG")
    shot(page, "run-images")


def test_run_columns_resize_keep_their_width_and_show_full_names(page, logged):
    key = "a_metric_with_a_very_long_name_that_does_not_fit_in_its_column"
    page.goto(f"/#/experiments/{logged['exp_id']}")
    page.get_by_test_id("run-row").first.wait_for()
    header = page.get_by_role("columnheader").filter(has=page.get_by_role("button", name=f"Sort by {key}"))
    expect(header).to_have_attribute("title", f"metric: {key}")
    before = header.bounding_box()["width"]
    handle = page.get_by_role("separator", name=f"Resize column {key}")
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 200, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    after = header.bounding_box()["width"]
    assert after > before + 150, (before, after)
    page.reload()
    page.get_by_test_id("run-row").first.wait_for()
    assert abs(header.bounding_box()["width"] - after) < 2
    # Keyboard users resize with the arrow keys; a double-click restores the default.
    handle.focus()
    page.keyboard.press("ArrowLeft")
    assert header.bounding_box()["width"] < after - 10
    handle.dblclick()
    assert abs(header.bounding_box()["width"] - before) < 2


def test_compare_scatter_starts_on_a_param_against_a_metric(page, logged):
    runs = list(logged["runs"].values())
    page.goto(f"/#/compare-runs?runs={'%5B' + ','.join(f'%22{r}%22' for r in runs) + '%5D'}&experiments=%5B%22{logged['exp_id']}%22%5D")
    x = page.get_by_role("combobox", name="Scatter X")
    y = page.get_by_role("combobox", name="Scatter Y")
    expect(x).to_have_value("param: C")
    assert y.input_value().startswith("metric: ") and y.input_value() != x.input_value()
    expect(page.get_by_test_id("scatter-plot").locator("circle")).to_have_count(2)
