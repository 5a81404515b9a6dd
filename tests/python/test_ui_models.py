"""The model pages of the web UI, as an MLflow 3 user reaches them.

Scikit-learn models are logged through the real ``mlflow`` client: two with an input example, so
MLflow infers a signature and writes it into their MLmodel files, one without. The first is
registered; the second has the same metric (``accuracy``) evaluated on two datasets. The pages
must show the signature's columns and types (or say there is none), tell a metric's datasets
apart, and list the models with their metrics in the experiment's Models tab.
"""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from test_ui import page, shot  # noqa: F401  (the browser page fixture and screenshots of test_ui)

pytestmark = pytest.mark.mlox_only


@pytest.fixture(scope="module")
def models(server_url):
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(server_url)
    client = MlflowClient(server_url, registry_uri=server_url)
    suffix = os.urandom(4).hex()
    exp_id = client.create_experiment(f"ui-models-{suffix}")
    mlflow.set_experiment(experiment_id=exp_id)

    rng = np.random.default_rng(1)
    X = pd.DataFrame(
        {
            "sepal_length": rng.normal(5.8, 0.8, size=80),
            "petal_width": rng.normal(1.2, 0.7, size=80),
            "leaf_count": rng.integers(1, 9, size=80).astype("int64"),
        }
    )
    y = (X["petal_width"] > 1.2).astype(int)
    train, held_out = X.iloc[:60], X.iloc[60:]
    train_ds = mlflow.data.from_pandas(train.assign(label=y.iloc[:60]), name="iris-train", targets="label")
    eval_ds = mlflow.data.from_pandas(held_out.assign(label=y.iloc[60:]), name="iris-eval", targets="label")

    with mlflow.start_run(run_name="fit-baseline") as baseline:
        first = mlflow.sklearn.log_model(LogisticRegression(C=1.0).fit(train, y.iloc[:60]), name="baseline", input_example=train.head(3))
        mlflow.log_metric("accuracy", 0.8012, model_id=first.model_id, dataset=eval_ds)
    model_name = f"ui-iris-{suffix}"
    version = mlflow.register_model(first.model_uri, model_name)

    with mlflow.start_run(run_name="fit-tuned") as tuned:
        second = mlflow.sklearn.log_model(
            LogisticRegression(C=0.1).fit(train, y.iloc[:60]), name="tuned", input_example=train.head(3), params={"C": "0.1", "solver": "lbfgs"}
        )
        mlflow.log_metric("accuracy", 0.9125, model_id=second.model_id, dataset=train_ds)
        mlflow.log_metric("accuracy", 0.8455, model_id=second.model_id, dataset=eval_ds)
        mlflow.log_metric("log_loss", 0.3321, model_id=second.model_id, dataset=eval_ds)
    # A model logged into a run copies the run's metrics, so this one has a run of its own.
    with mlflow.start_run(run_name="fit-unsigned"):
        # Without an input example MLflow infers no signature.
        unsigned = mlflow.sklearn.log_model(LogisticRegression().fit(train, y.iloc[:60]), name="unsigned")
    return {
        "client": client,
        "exp_id": exp_id,
        "model_name": model_name,
        "version": version.version,
        "first": first.model_id,
        "second": second.model_id,
        "unsigned": unsigned.model_id,
        "baseline_run": baseline.info.run_id,
        "tuned_run": tuned.info.run_id,
        "train_digest": train_ds.digest,
        "eval_digest": eval_ds.digest,
    }


def expect_signature(page, inputs: dict[str, str]) -> None:
    section = page.get_by_role("region", name="Signature")
    table = section.get_by_role("table", name="Signature inputs")
    expect(table.locator("tbody tr")).to_have_count(len(inputs))
    for column, dtype in inputs.items():
        row = table.locator(f"tr[data-column={column}]")
        expect(row.locator("td").nth(1)).to_have_text(dtype)
        expect(row.locator("td").nth(2)).to_have_text("required")
    # A classifier's predict() gives one unnamed integer column.
    outputs = section.get_by_role("table", name="Signature outputs")
    expect(outputs.locator("tbody tr")).to_have_count(1)
    expect(outputs.locator("tbody td")).to_have_text(["—", "long", "required"])


IRIS_INPUTS = {"sepal_length": "double", "petal_width": "double", "leaf_count": "long"}


def test_model_version_page_shows_the_signature_of_the_registered_model(page, models):
    from mlflow.models import get_model_info

    # What the client itself reads from the version's MLmodel.
    info = get_model_info(f"models:/{models['model_name']}/{models['version']}")
    assert {c["name"]: c["type"] for c in info.signature.inputs.to_dict()} == IRIS_INPUTS
    assert [c["type"] for c in info.signature.outputs.to_dict()] == ["long"]

    page.goto(f"/#/models/{models['model_name']}/versions/{models['version']}")
    expect_signature(page, IRIS_INPUTS)
    shot(page, "model-version-signature")


def test_logged_model_page_shows_signature_and_metrics_by_dataset(page, models):
    page.goto(f"/#/experiments/{models['exp_id']}/models/{models['second']}")
    metrics = page.get_by_role("table", name="Metrics")
    expect(metrics.locator("tbody tr")).to_have_count(3)
    # Sorted by key, then dataset; the same key once per dataset, each with its own value.
    keys = [metrics.locator("tbody tr").nth(i).get_attribute("data-metric") for i in range(3)]
    datasets = [metrics.locator("tbody tr").nth(i).get_attribute("data-dataset") for i in range(3)]
    assert keys == ["accuracy", "accuracy", "log_loss"]
    assert datasets == ["iris-eval", "iris-train", "iris-eval"]
    train_row = metrics.locator("tr[data-metric=accuracy][data-dataset=iris-train]")
    expect(train_row).to_contain_text("0.9125")
    expect(train_row).to_contain_text(models["train_digest"][:8])
    eval_row = metrics.locator("tr[data-metric=accuracy][data-dataset=iris-eval]")
    expect(eval_row).to_contain_text("0.8455")
    expect(eval_row).to_contain_text(models["eval_digest"][:8])
    expect(train_row.get_by_role("link", name="fit-tuned")).to_have_attribute("href", f"#/experiments/{models['exp_id']}/runs/{models['tuned_run']}")
    expect(page.get_by_role("table", name="Parameters")).to_contain_text("lbfgs")
    expect_signature(page, IRIS_INPUTS)
    shot(page, "logged-model")

    page.goto(f"/#/experiments/{models['exp_id']}/models/{models['first']}")
    expect_signature(page, IRIS_INPUTS)
    first_metrics = page.get_by_role("table", name="Metrics")
    expect(first_metrics.locator("tbody tr")).to_have_count(1)
    expect(first_metrics.locator("tr[data-metric=accuracy][data-dataset=iris-eval]")).to_contain_text("0.8012")
    details = page.get_by_role("table", name="Logged model details")
    details.locator("tr", has_text="Registered versions").get_by_role("link", name=f"{models['model_name']} v{models['version']}").click()
    page.wait_for_url(re.compile(f"#/models/{models['model_name']}/versions/{models['version']}$"))

    page.goto(f"/#/experiments/{models['exp_id']}/models/{models['unsigned']}")
    expect(page.get_by_test_id("no-signature")).to_have_text("This model was logged without a signature.")
    expect(page.get_by_role("region", name="Metrics")).to_contain_text("No metrics.")


def test_experiment_models_tab_lists_models_with_metrics_by_dataset(page, models):
    page.goto(f"/#/experiments/{models['exp_id']}/models")
    table = page.get_by_role("table", name="Logged models")
    expect(table.locator("tbody tr")).to_have_count(3)
    first = table.locator(f"tr[data-model-id='{models['first']}']")
    second = table.locator(f"tr[data-model-id='{models['second']}']")
    expect(first.get_by_role("link", name="baseline", exact=True)).to_be_visible()
    expect(second.get_by_role("link", name="tuned", exact=True)).to_be_visible()

    # One column per (metric, dataset), the dataset named in the header.
    headers = table.locator("thead th[data-metric-column]")
    expect(headers).to_have_count(3)
    assert [(headers.nth(i).get_attribute("data-metric-column"), headers.nth(i).get_attribute("data-dataset")) for i in range(3)] == [
        ("accuracy", "iris-eval"),
        ("accuracy", "iris-train"),
        ("log_loss", "iris-eval"),
    ]
    expect(headers.nth(1)).to_contain_text("iris-train")
    expect(second.locator("td[data-metric-column=accuracy][data-dataset=iris-train]")).to_have_text("0.9125")
    expect(second.locator("td[data-metric-column=accuracy][data-dataset=iris-eval]")).to_have_text("0.8455")
    expect(second.locator("td[data-metric-column=log_loss]")).to_have_text("0.3321")
    expect(first.locator("td[data-metric-column=accuracy][data-dataset=iris-eval]")).to_have_text("0.8012")
    expect(first.locator("td[data-metric-column=accuracy][data-dataset=iris-train]")).to_have_text("—")
    expect(first.get_by_role("link", name="fit-baseline")).to_have_attribute("href", f"#/experiments/{models['exp_id']}/runs/{models['baseline_run']}")

    expect(second.locator("[data-param=solver]")).to_have_text("solver=lbfgs")
    version_link = first.get_by_role("link", name=f"{models['model_name']} v{models['version']}")
    expect(version_link).to_have_attribute("href", f"#/models/{models['model_name']}/versions/{models['version']}")
    shot(page, "experiment-models")

    second.get_by_role("link", name="tuned", exact=True).click()
    page.wait_for_url(re.compile(f"models/{models['second']}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("tuned")
