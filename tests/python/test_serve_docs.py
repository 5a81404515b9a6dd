"""``/v2/docs`` of ``mlox serve`` is Swagger UI over the server's OpenAPI document, from files
inside the binary (nothing fetched from elsewhere): in a real browser, a user opens a model's
page, tries its inference operation with the example request the page offers, and reads the
model's answer.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests

import mlflow
from conftest import _free_port
from test_serve import ServeProcess, serve_env

pytestmark = [pytest.mark.mlox_only, pytest.mark.standalone]


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory):
    from sklearn.linear_model import LinearRegression
    from mlflow.models.signature import infer_signature
    import pandas as pd

    tmp = tmp_path_factory.mktemp("docs")
    x = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.0, 1.0, 0.0, 1.0]})
    y = 2 * x["a"] + 3 * x["b"]
    model = LinearRegression().fit(x, y)
    mlflow.sklearn.save_model(model, str(tmp / "model"), signature=infer_signature(x, y))
    port = _free_port()
    srv = ServeProcess(["-m", str(tmp / "model"), "--name", "lin", "-p", str(port)], tmp, port, serve_env(tmp))
    srv.wait_loaded()
    yield srv
    srv.stop()


def test_swagger_ui_files_come_from_the_binary(docs_server):
    server = docs_server
    page = requests.get(f"{server.base}/v2/docs", timeout=10)
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text, page.text[:500]
    bundle = requests.get(f"{server.base}/v2/docs/swagger-ui/swagger-ui-bundle.js", timeout=10)
    assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text[:200000]
    assert bundle.headers["content-type"].startswith("text/javascript")
    css = requests.get(f"{server.base}/v2/docs/swagger-ui/swagger-ui.css", timeout=10)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert requests.get(f"{server.base}/v2/docs/swagger-ui/LICENSE", timeout=10).status_code == 200
    assert requests.get(f"{server.base}/v2/docs/swagger-ui/nope.js", timeout=10).status_code == 404


def test_a_model_is_tried_from_its_docs_page_in_a_browser(docs_server, browser):
    server = docs_server
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: outside.append(r.url)
            if not r.url.startswith((server.base, "data:", "blob:", "about:")) else None)
    page.set_default_timeout(20000)
    try:
        page.goto(f"{server.base}/v2/models/lin/docs")
        infer = page.locator(".opblock-post").filter(has_text="/v2/models/{model_name}/infer").first
        infer.locator(".opblock-summary").click()
        # The page is for one model: its name is the only value the path parameter takes.
        # Swagger UI renders the parameter after the click; wait for it before asking which
        # kind of field it is, or a slow render is taken for "no select".
        infer.locator("tr[data-param-name='model_name'] select, "
                      "tr[data-param-name='model_name'] input").first.wait_for()
        name = infer.locator("tr[data-param-name='model_name'] select")
        if name.count():
            name.select_option("lin")
        else:
            infer.locator("tr[data-param-name='model_name'] input").fill("lin")
        body = infer.locator("textarea.body-param__text")
        example = json.loads(body.input_value())
        assert [i["name"] for i in example["inputs"]] == ["a", "b"], example
        rows = np.array([[1.0, 0.0], [0.0, 1.0]])
        example["inputs"] = [
            {"name": col, "shape": [2], "datatype": "FP64", "data": rows[:, j].tolist()}
            for j, col in enumerate(["a", "b"])
        ]
        body.fill(json.dumps(example))
        infer.locator("button.execute").click()
        status = infer.locator(".live-responses-table .response .response-col_status").first
        status.wait_for()
        assert status.inner_text().strip().startswith("200"), status.inner_text()
        answer = json.loads(infer.locator(".live-responses-table .response-col_description pre").first.inner_text())
        (output,) = answer["outputs"]
        assert np.allclose(output["data"], [2.0, 3.0]), answer
    finally:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
    assert not outside, f"the page fetched from outside the server (no CDN allowed): {outside}"
