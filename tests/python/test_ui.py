"""The web UI, clicked through in headless Chromium.

A server is filled through the real ``mlflow`` client (nested tuning runs with metric histories,
system metrics, datasets, artifacts of every previewable kind, a logged sklearn model registered
in two versions), then each page is opened the way a user would: through links from the start
page or by deep link, asserting what is shown and what the server stored after an edit. A
screenshot of each main page is kept under ``MLOX_TEST_ARTEFACTS`` (default
``target/ui-screenshots``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import struct
import zlib
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.mlox_only

SCREENSHOTS = Path(os.environ.get("MLOX_TEST_ARTEFACTS", Path(__file__).resolve().parents[2] / "target" / "ui-screenshots"))

NOTEBOOK_HTML = """<html><body><h1 id="title">Training notebook</h1>
<p>rmse went down</p>
<script>document.getElementById('title').textContent = 'SCRIPT RAN'; parent.document.title = 'pwned';</script>
</body></html>"""


def _png(width: int, height: int, rgb=(37, 99, 235)) -> bytes:
    """A valid PNG of one colour, written by hand so the test needs no imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.fixture
def page(browser, server_url):
    context = browser.new_context(base_url=server_url, viewport={"width": 1440, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    outside: list[str] = []
    pg.on("request", lambda r: outside.append(r.url) if not (r.url.startswith(server_url) or r.url.startswith(("data:", "blob:", "about:"))) else None)
    pg.set_default_timeout(15000)
    yield pg
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
    assert not outside, f"the UI fetched from outside the server (no CDN allowed): {outside}"


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def filled(server_url, tmp_path_factory):
    """One experiment as a user's tuning session leaves it, and a registered model."""
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient
    from sklearn.linear_model import ElasticNet

    mlflow.set_tracking_uri(server_url)
    client = MlflowClient(server_url)
    suffix = os.urandom(4).hex()
    name = f"ui-wine-{suffix}"
    exp_id = client.create_experiment(name)
    client.set_experiment_tag(exp_id, "mlflow.note.content", "ElasticNet tuning on the wine data")
    mlflow.set_experiment(experiment_id=exp_id)

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=["fixed_acidity", "density", "ph"])
    y = X["fixed_acidity"] * 0.5 - X["ph"] + rng.normal(scale=0.1, size=60)
    children = {}
    with mlflow.start_run(run_name="tuning") as parent:
        mlflow.set_tag("team", "wine")
        for alpha in (0.1, 0.5, 0.9):
            with mlflow.start_run(run_name=f"alpha-{alpha}", nested=True) as child:
                mlflow.log_params({"alpha": alpha, "l1_ratio": 0.5})
                for step in range(20):
                    mlflow.log_metric("rmse", (1.0 + alpha) / (step + 1), step=step)
                    mlflow.log_metric("system/cpu_utilization_percentage", 20 + step, step=step)
                mlflow.log_metric("r2", 1 - alpha / 2)
                mlflow.set_tag("candidate", "yes" if alpha < 0.6 else "no")
                children[alpha] = child.info.run_id
    with mlflow.start_run(run_name="best-model") as best:
        mlflow.log_params({"alpha": 0.1, "l1_ratio": 0.5})
        mlflow.log_metric("rmse", 0.21)
        dataset = mlflow.data.from_pandas(X.assign(quality=y), name="wine-quality", targets="quality")
        mlflow.log_input(dataset, context="training")
        mlflow.log_text(NOTEBOOK_HTML, "reports/notebook.html")
        mlflow.log_dict({"alpha": 0.1, "features": ["fixed_acidity", "density", "ph"]}, "config/params.json")
        mlflow.log_text("alpha,rmse\n0.1,0.21\n0.5,0.35\n", "reports/scores.csv")
        tmp = tmp_path_factory.mktemp("png")
        (tmp / "residuals.png").write_bytes(_png(40, 30))
        mlflow.log_artifact(str(tmp / "residuals.png"), "plots")
        model = ElasticNet(alpha=0.1).fit(X, y)
        info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(2))
    model_name = f"ui-wine-model-{suffix}"
    v1 = mlflow.register_model(f"runs:/{best.info.run_id}/model", model_name)
    v2 = mlflow.register_model(info.model_uri, model_name)
    client.set_registered_model_alias(model_name, "champion", v2.version)
    client.transition_model_version_stage(model_name, v1.version, "Staging")
    client.update_registered_model(model_name, description="Predicts wine quality")
    client.set_model_version_tag(model_name, v2.version, "validated", "true")
    return {
        "client": client,
        "exp_id": exp_id,
        "exp_name": name,
        "parent": parent.info.run_id,
        "children": children,
        "best": best.info.run_id,
        "model_id": info.model_id,
        "model_name": model_name,
    }


def rows(page):
    return page.get_by_test_id("run-row")


def test_experiments_page_lists_searches_creates_renames_and_deletes(page, filled):
    client = filled["client"]
    page.goto("/")
    page.get_by_label("Search experiments").fill(filled["exp_name"])
    page.get_by_role("button", name="Search", exact=True).click()
    table = page.get_by_role("table", name="Experiments")
    expect_text(table, filled["exp_name"])
    expect(table.locator("tbody tr")).to_have_count(1)
    shot(page, "experiments")

    new_name = f"ui-created-{os.urandom(3).hex()}"
    page.get_by_role("button", name="Create experiment", exact=True).click()
    page.get_by_label("Experiment name").fill(new_name)
    page.get_by_role("button", name="Create", exact=True).click()
    page.wait_for_url(re.compile(r"#/experiments/\d+$"))
    exp = client.get_experiment_by_name(new_name)
    assert exp is not None and page.url.endswith(f"#/experiments/{exp.experiment_id}")

    page.goto(f"/#/experiments?search={new_name}")
    page.get_by_role("button", name=f"Rename {new_name}", exact=True).click()
    page.get_by_label("New name").fill(new_name + "-renamed")
    page.get_by_role("button", name="Save", exact=True).click()
    expect_text(page.get_by_role("table", name="Experiments"), new_name + "-renamed")
    assert client.get_experiment(exp.experiment_id).name == new_name + "-renamed"

    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name=f"Delete {new_name}-renamed", exact=True).click()
    page.get_by_text("No experiments match.").wait_for()
    assert client.get_experiment(exp.experiment_id).lifecycle_stage == "deleted"


def test_runs_table_nests_children_filters_sorts_and_picks_columns(page, filled):
    page.goto(f"/#/experiments/{filled['exp_id']}")
    rows(page).first.wait_for()
    # Children are grouped under their parent until it is expanded.
    expect(rows(page)).to_have_count(2)
    page.get_by_role("button", name=re.compile(r"Expand 3 child runs of tuning")).click()
    expect(rows(page)).to_have_count(5)
    names = [rows(page).nth(i).locator(".run-name a").inner_text() for i in range(5)]
    assert names[:2] == ["best-model", "tuning"]  # newest first
    assert set(names[2:]) == {"alpha-0.1", "alpha-0.5", "alpha-0.9"}
    shot(page, "runs-table")

    # The search grammar in the filter box, answered by the server.
    page.get_by_label("Filter runs").fill("metrics.r2 > 0.6 and params.l1_ratio = '0.5'")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_function("document.querySelectorAll('[data-testid=run-row]').length === 2")
    shown = {rows(page).nth(i).get_attribute("data-run-id") for i in range(2)}
    assert shown == {filled["children"][0.1], filled["children"][0.5]}
    assert "searchFilter=" in page.url  # the filter is part of the deep link

    # A bad filter shows the server's message, not a blank page.
    page.get_by_label("Filter runs").fill("metrics.r2 >>> 1")
    page.get_by_role("button", name="Search", exact=True).click()
    expect_text(page.get_by_role("alert"), "INVALID_PARAMETER_VALUE")

    # Sorting by a metric column asks the server for that order.
    page.get_by_label("Filter runs").fill("params.l1_ratio = '0.5' and attributes.run_name LIKE 'alpha%'")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_function("document.querySelectorAll('[data-testid=run-row]').length === 3")
    page.get_by_role("button", name="Sort by r2", exact=True).click()
    page.wait_for_url(re.compile("orderBy=metrics.r2\\+DESC|orderBy=metrics.r2%20DESC"))
    page.wait_for_function(
        "(id) => document.querySelector('[data-testid=run-row]')?.dataset.runId === id", arg=filled["children"][0.1]
    )
    page.get_by_role("button", name="Sort by r2", exact=True).click()
    page.wait_for_function(
        "(id) => document.querySelector('[data-testid=run-row]')?.dataset.runId === id", arg=filled["children"][0.9]
    )

    # A tag column chosen in the picker shows each run's tag.
    page.get_by_role("button", name="Columns", exact=True).click()
    page.get_by_role("dialog", name="Choose columns").get_by_label("candidate").check()
    page.get_by_role("button", name="Done", exact=True).click()
    # alpha 0.9 is first in ascending r2 and is not a candidate
    expect(rows(page).first.locator(".col-tag")).to_have_text("no")


def test_runs_selection_compare_and_csv_export(page, filled, tmp_path):
    page.goto(f"/#/experiments/{filled['exp_id']}?searchFilter=params.l1_ratio+%3D+%270.5%27")
    page.wait_for_function("document.querySelectorAll('[data-testid=run-row]').length === 4")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV", exact=True).click()
    path = tmp_path / "runs.csv"
    download.value.save_as(path)
    table = list(csv.DictReader(io.StringIO(path.read_text())))
    assert {r["Run ID"] for r in table} == set(filled["children"].values()) | {filled["best"]}
    by_id = {r["Run ID"]: r for r in table}
    assert float(by_id[filled["children"][0.5]]["metrics.r2"]) == pytest.approx(0.75)
    assert by_id[filled["best"]]["params.alpha"] == "0.1"

    page.get_by_label("Select run alpha-0.1").check()
    page.get_by_label("Select run alpha-0.9").check()
    page.get_by_role("button", name="Compare", exact=True).click()
    page.wait_for_url(re.compile("#/compare-runs"))
    params = page.get_by_role("table", name="Parameters")
    expect(params.locator("tr[data-key=alpha]")).to_have_attribute("data-differs", "true")
    expect(params.locator("tr[data-key=l1_ratio]")).to_have_attribute("data-differs", "false")
    page.get_by_label("Show only differences").check()
    expect(params.locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("scatter-plot").locator("circle")).to_have_count(2)
    expect(page.get_by_test_id("parallel-coordinates").locator("polyline")).to_have_count(2)
    page.locator("[data-metric=rmse] [data-rendered=true]").wait_for()
    shot(page, "compare-runs")


def test_charts_overlay_runs_with_log_scale_smoothing_and_param_plots(page, filled):
    children = list(filled["children"].values())
    page.goto(f"/#/experiments/{filled['exp_id']}?view=chart&searchFilter=attributes.run_name+LIKE+%27alpha%25%27")
    chart = page.locator("[data-metric=rmse] [data-testid=metric-chart]")
    chart.and_(page.locator("[data-rendered=true]")).wait_for()
    assert chart.get_attribute("data-points") == str(20 * 3)
    expect(page.locator("[data-metric='system/cpu_utilization_percentage'] [data-rendered=true]")).to_have_count(1)
    expect(page.get_by_test_id("scatter-plot").locator("circle")).to_have_count(3)
    page.get_by_label("Log scale").first.check()
    page.get_by_label("X axis").first.select_option("relative")
    chart.and_(page.locator("[data-rendered=true]")).wait_for()
    shot(page, "charts")

    # The single-metric page: all runs overlaid, full detail on demand.
    page.goto(f"/#/metric/rmse?runs={json.dumps(children)}")
    big = page.get_by_test_id("metric-chart")
    big.and_(page.locator("[data-rendered=true]")).wait_for()
    assert big.get_attribute("data-points") == "60"
    legend = page.get_by_role("list", name="Runs in chart")
    for alpha in ("alpha-0.1", "alpha-0.5", "alpha-0.9"):
        expect_text(legend, alpha)
    page.get_by_label("Smoothing").fill("0.8")
    big.and_(page.locator("[data-rendered=true]")).wait_for()


def test_run_page_shows_overview_and_saves_edits(page, filled):
    client = filled["client"]
    child = filled["children"][0.5]
    page.goto(f"/#/experiments/{filled['exp_id']}")
    page.get_by_role("button", name=re.compile("Expand 3 child runs")).click()
    page.get_by_role("link", name="alpha-0.5").click()
    page.wait_for_url(re.compile(f"runs/{child}$"))
    details = page.get_by_role("table", name="Run details")
    expect_text(details, child)
    expect_text(details, "FINISHED")
    expect_text(details.locator("tr", has_text="Parent run"), "tuning")
    expect_text(page.get_by_role("table", name="Parameters"), "0.5")
    expect_text(page.get_by_role("table", name="Metrics"), "0.75")

    page.get_by_role("button", name="Edit Description", exact=True).click()
    page.get_by_role("textbox", name="Description").fill("middle of the grid")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("button", name="Edit Description", exact=True)).to_be_visible()
    page.get_by_text("middle of the grid").wait_for()
    assert client.get_run(child).data.tags["mlflow.note.content"] == "middle of the grid"

    page.get_by_label("New tag key").fill("reviewed")
    page.get_by_label("New tag value").fill("by-ui")
    page.get_by_role("button", name="Add tag", exact=True).click()
    page.locator("[data-tag=reviewed]").wait_for()
    assert client.get_run(child).data.tags["reviewed"] == "by-ui"
    page.get_by_role("button", name="Edit tag candidate", exact=True).click()
    page.get_by_label("Value of candidate").fill("maybe")
    page.get_by_role("button", name="Save", exact=True).click()
    expect_text(page.locator("[data-tag=candidate]"), "maybe")
    assert client.get_run(child).data.tags["candidate"] == "maybe"
    page.get_by_role("button", name="Delete tag reviewed", exact=True).click()
    page.locator("[data-tag=reviewed]").wait_for(state="detached")
    assert "reviewed" not in client.get_run(child).data.tags
    shot(page, "run-overview")

    page.get_by_role("tab", name="Model metrics").click()
    page.locator("[data-metric=rmse] [data-rendered=true]").wait_for()
    assert page.locator("[data-metric=rmse] [data-testid=metric-chart]").get_attribute("data-points") == "20"
    page.get_by_role("tab", name="System metrics").click()
    page.locator("[data-metric='system/cpu_utilization_percentage'] [data-rendered=true]").wait_for()
    expect(page.locator("[data-metric=rmse]")).to_have_count(0)
    shot(page, "run-system-metrics")


def test_run_page_lists_datasets_and_logged_models(page, filled):
    page.goto(f"/#/experiments/{filled['exp_id']}/runs/{filled['best']}")
    datasets = page.get_by_role("table", name="Datasets")
    expect_text(datasets, "wine-quality")
    expect_text(datasets, "training")
    datasets.get_by_role("button", name="Details", exact=True).click()
    expect_text(datasets, "fixed_acidity")
    page.get_by_role("table", name="Run details").get_by_role("link", name="model").click()
    page.wait_for_url(re.compile(f"models/{filled['model_id']}$"))
    expect_text(page.get_by_role("table", name="Logged model details"), "best-model")
    page.get_by_role("tree").get_by_role("button", name="MLmodel", exact=True).click()
    expect_text(page.get_by_test_id("text-preview"), "flavors")
    shot(page, "logged-model")


def test_artifact_browser_previews_each_kind_safely(page, filled):
    run = filled["best"]
    page.goto(f"/#/experiments/{filled['exp_id']}/runs/{run}/artifacts")
    tree = page.get_by_role("tree")
    tree.get_by_role("button", name="config", exact=True).click()
    tree.get_by_role("button", name="params.json", exact=True).click()
    preview = page.get_by_test_id("text-preview")
    expect_text(preview, '"features": [')
    assert page.url.endswith("/artifacts/config/params.json")

    tree.get_by_role("button", name="reports", exact=True).click()
    tree.get_by_role("button", name="scores.csv", exact=True).click()
    csv_table = page.get_by_role("table", name="Table reports/scores.csv")
    expect(csv_table.locator("tbody tr")).to_have_count(2)
    expect_text(csv_table.locator("thead"), "rmse")

    tree.get_by_role("button", name="notebook.html", exact=True).click()
    frame = page.get_by_test_id("html-preview")
    assert frame.get_attribute("sandbox") == ""
    inner = page.frame_locator("[data-testid=html-preview]")
    expect_text(inner.locator("#title"), "Training notebook")  # the script did not run
    assert page.title() == "mlox"

    tree.get_by_role("button", name="plots", exact=True).click()
    tree.get_by_role("button", name="residuals.png", exact=True).click()
    image = page.get_by_role("img", name="plots/residuals.png")
    page.wait_for_function("(img) => img.complete && img.naturalWidth === 40", arg=image.element_handle())

    shot(page, "artifacts")

    # A deep link opens the file directly.
    page.goto(f"/#/experiments/{filled['exp_id']}/runs/{run}/artifacts/reports/scores.csv")
    page.get_by_role("table", name="Table reports/scores.csv").wait_for()


XSS = '<img src=x onerror="window.__xss=(window.__xss||0)+1">'


def test_cve_2024_27132_markup_in_logged_strings_renders_inert(page, server_url):
    """Run names, params, tags, dataset names and model descriptions are the user's text:
    shown as text, never interpreted as markup (MLflow's recipe-card and dataset XSS)."""
    from mlflow import MlflowClient
    from mlflow.entities import Dataset, DatasetInput, InputTag

    client = MlflowClient(server_url, registry_uri=server_url)
    exp_id = client.create_experiment(f"xss-{os.urandom(3).hex()} {XSS}")
    run = client.create_run(exp_id, run_name=f"run {XSS}")
    run_id = run.info.run_id
    client.log_param(run_id, "payload", XSS)
    client.set_tag(run_id, "note", XSS)
    dataset = Dataset(name=f"data {XSS}", digest="d1", source_type="local", source=XSS)
    client.log_inputs(run_id, [DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])])
    client.set_terminated(run_id)
    model = f"xss-model-{os.urandom(3).hex()}"
    client.create_registered_model(model, description=XSS)

    page.goto(f"/#/experiments/{exp_id}")
    expect(page.get_by_text(f"run {XSS}")).to_be_visible()
    page.goto(f"/#/experiments/{exp_id}/runs/{run_id}")
    expect_text(page.get_by_role("table", name="Parameters"), XSS)
    expect(page.get_by_text(f"data {XSS}").first).to_be_visible()
    page.goto(f"/#/models/{model}")
    expect(page.get_by_text(XSS).first).to_be_visible()
    page.goto("/#/experiments")
    expect(page.get_by_text(f"{XSS}").first).to_be_visible()
    assert page.evaluate("window.__xss") is None
    assert page.locator("img[src='x']").count() == 0


def test_registry_pages_link_versions_runs_and_logged_models(page, filled):
    name = filled["model_name"]
    page.goto("/#/models")
    page.get_by_label("Search models").fill(name)
    page.get_by_role("button", name="Search", exact=True).click()
    listing = page.get_by_role("table", name="Registered models")
    expect_text(listing, "@champion: v2")
    shot(page, "models")
    listing.get_by_role("link", name=name).click()
    page.wait_for_url(re.compile(f"#/models/{name}$"))
    versions = page.get_by_role("table", name="Versions")
    expect_text(versions.locator("[data-version='1']"), "Staging")
    expect_text(versions.locator("[data-version='2']"), "@champion")
    expect_text(page.get_by_role("region", name="Description"), "Predicts wine quality")
    shot(page, "model")

    page.get_by_role("button", name="Edit Description", exact=True).click()
    page.get_by_role("textbox", name="Description").fill("Predicts wine quality from 3 features")
    page.get_by_role("button", name="Save", exact=True).click()
    # The editor closes once the server has answered; the textarea alone shows the typed text sooner.
    expect(page.get_by_role("button", name="Edit Description", exact=True)).to_be_visible()
    expect_text(page.get_by_role("region", name="Description"), "from 3 features")
    assert filled["client"].get_registered_model(name).description.endswith("3 features")

    page.get_by_label("Alias", exact=True).fill("challenger")
    page.get_by_label("Alias version").select_option("1")
    page.get_by_role("button", name="Set alias", exact=True).click()
    page.locator("[data-alias=challenger]").wait_for()
    assert filled["client"].get_model_version_by_alias(name, "challenger").version == "1"

    versions.get_by_role("link", name="Version 2").click()
    page.wait_for_url(re.compile(f"#/models/{name}/versions/2$"))
    details = page.get_by_role("table", name="Version details")
    expect_text(details, "@champion")
    page.get_by_label("Stage").select_option("Production")
    page.wait_for_function("() => document.querySelector('select[aria-label=Stage]').value === 'Production'")
    assert filled["client"].get_model_version(name, "2").current_stage == "Production"
    shot(page, "model-version")
    details.locator("tr", has_text="Logged model").get_by_role("link").click()
    page.wait_for_url(re.compile(f"models/{filled['model_id']}$"))
    page.go_back()
    details.locator("tr", has_text="Source run").get_by_role("link").click()
    page.wait_for_url(re.compile(f"runs/{filled['best']}$"))
    expect_text(page.get_by_role("heading", level=1), "best-model")


def test_every_page_is_a_deep_link_and_keyboard_reachable(page, filled):
    page.goto(f"/#/experiments/{filled['exp_id']}/runs/{filled['best']}/metrics")
    page.locator("[data-metric=rmse] [data-rendered=true]").wait_for()
    page.goto("/#/no/such/page")
    page.get_by_role("heading", name="Page not found").wait_for()

    # From the top of the page, Tab reaches the main navigation and then the page's controls.
    page.goto(f"/#/experiments/{filled['exp_id']}")
    rows(page).first.wait_for()
    focused = []
    for _ in range(12):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.textContent || document.activeElement.getAttribute('aria-label') || ''"))
    assert "Models" in focused and "Filter runs" in focused, focused
    page.get_by_role("link", name="best-model").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(f"runs/{filled['best']}$"))


def test_assets_are_served_by_mlox_with_caching(api):
    index = api.get("/")
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    assert index.headers["cache-control"] == "no-cache"
    assets = re.findall(r'(?:src|href)="\./(static-files/[^"]+)"', index.text)
    assert assets, index.text
    for asset in assets:
        r = api.get("/" + asset)
        assert r.status_code == 200, asset
        assert "immutable" in r.headers["cache-control"]
    assert not re.search(r'(?:src|href)="https?://', index.text)


def expect_text(locator, text: str) -> None:
    expect(locator).to_contain_text(text)


@pytest.mark.standalone
def test_mlox_ui_is_mlox_server_as_mlflow_ui_is_mlflow_server(tmp_path):
    import requests

    from conftest import _free_port, launch, mlox_binary

    port = _free_port()
    cmd = [mlox_binary(), "ui", "--port", str(port), "--backend-store-uri", f"sqlite:///{tmp_path}/ui.db"]
    srv = launch(cmd, tmp_path, port)
    try:
        page = requests.get(srv.url + "/", timeout=10)
        assert page.status_code == 200 and '<div id="root">' in page.text
        experiments = requests.get(srv.url + "/api/2.0/mlflow/experiments/search?max_results=10", timeout=10).json()
        assert [e["name"] for e in experiments["experiments"]] == ["Default"]
    finally:
        srv.stop()
