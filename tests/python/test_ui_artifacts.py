"""The artifact routes MLflow's web UI reads from, checked against what the official client
logged: a run's listing (``artifacts/list``) and files (``/get-artifact``), a logged model's
listing and files (``logged-models/<id>/artifacts/...``) and a registered version's files
(``/model-versions/get-artifact``). They run on every storage combination: behind the proxy
the server reads its artifacts destination, with ``s3-direct`` it opens the bucket itself."""

import json

import pytest
import yaml

import mlflow
import mlflow.sklearn

AJAX = "/ajax-api/2.0/mlflow"
SKLEARN_REQS = ["scikit-learn"]


def _entries(files):
    return {(f["path"], f["is_dir"], f.get("file_size")) for f in files}


def _client_entries(infos):
    return {(f.path, f.is_dir, f.file_size) for f in infos}


def _list_run(api, run_id, path=None, param="run_uuid", prefix=AJAX):
    params = {param: run_id}
    if path is not None:
        params["path"] = path
    r = api.get(f"{prefix}/artifacts/list", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _media_type(r):
    return r.headers["Content-Type"].split(";")[0].strip()


def _get_run_file(api, run_id, path):
    r = api.get("/get-artifact", params={"path": path, "run_uuid": run_id})
    assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:300]}"
    return r


def test_run_listing_and_files_match_what_was_logged(experiment_id, client, api):
    text = "hello, мир, 世界\n"
    params = {"lr": 0.1, "layers": [1, 2]}
    with mlflow.start_run() as run:
        mlflow.log_text(text, "notes/sub/hello.txt")
        mlflow.log_dict(params, "config.json")
    rid = run.info.run_id

    root = _list_run(api, rid)
    assert root["root_uri"] == run.info.artifact_uri
    assert _entries(root["files"]) == _client_entries(client.list_artifacts(rid))
    assert {f["path"] for f in root["files"]} == {"notes", "config.json"}
    # Every spelling of the route and of the run id answers the same.
    assert _list_run(api, rid, param="run_id", prefix="/api/2.0/mlflow") == root

    # One level at a time, paths from the run's root.
    notes = _list_run(api, rid, "notes")
    assert _entries(notes["files"]) == {("notes/sub", True, None)}
    sub = _list_run(api, rid, "notes/sub")
    assert _entries(sub["files"]) == _client_entries(client.list_artifacts(rid, "notes/sub"))
    assert [f["path"] for f in sub["files"]] == ["notes/sub/hello.txt"]
    # A file or a missing directory lists as nothing.
    assert _list_run(api, rid, "config.json").get("files", []) == []
    assert _list_run(api, rid, "absent").get("files", []) == []

    r = _get_run_file(api, rid, "notes/sub/hello.txt")
    assert r.content == text.encode()
    assert _media_type(r) == "text/plain"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert int(r.headers["Content-Length"]) == len(text.encode())
    r = _get_run_file(api, rid, "config.json")
    assert json.loads(r.content) == params
    assert _media_type(r) == "text/plain"


@pytest.mark.heavy
def test_logged_model_and_model_version_files(experiment_id, client, api, unique_name, target):
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge(alpha=0.5).fit(X, y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=SKLEARN_REQS)
    model_id = info.model_id
    logged = mlflow.get_logged_model(model_id)

    r = api.get(f"{AJAX}/logged-models/{model_id}/artifacts/directories")
    assert r.status_code == 200, r.text
    listing = r.json()
    assert listing["root_uri"] == logged.artifact_location
    assert _entries(listing["files"]) == _client_entries(client.list_logged_model_artifacts(model_id))
    paths = {f["path"] for f in listing["files"]}
    assert {"MLmodel", "requirements.txt"} <= paths

    expected_mlmodel = mlflow.artifacts.load_text(f"{logged.artifact_location}/MLmodel")
    r = api.get(f"{AJAX}/logged-models/{model_id}/artifacts/files", params={"artifact_file_path": "MLmodel"})
    assert r.status_code == 200, r.text
    assert r.text == expected_mlmodel
    assert _media_type(r) == "text/plain"
    assert "sklearn" in yaml.safe_load(r.text)["flavors"]

    # The serialized model itself: binary, and as long as the listing says.
    weights = [
        f for f in listing["files"] if not f["is_dir"] and f["path"].rsplit(".", 1)[-1] in ("pkl", "skops")
    ]
    assert weights, listing
    r = api.get(
        f"{AJAX}/logged-models/{model_id}/artifacts/files", params={"artifact_file_path": weights[0]["path"]}
    )
    assert r.status_code == 200, r.text
    assert len(r.content) == weights[0]["file_size"]
    assert _media_type(r) == "application/octet-stream"

    name = unique_name("ui-model")
    version = mlflow.register_model(f"models:/{model_id}", name).version
    routes = ["/model-versions/get-artifact"]
    if target == "mlox":
        # An API-prefixed twin MLflow lacks, so a UI can keep every call under one prefix.
        routes.append(f"{AJAX}/model-versions/get-artifact")
    for route in routes:
        r = api.get(route, params={"path": "MLmodel", "name": name, "version": version})
        assert r.status_code == 200, f"{route}: {r.text}"
        assert r.text == expected_mlmodel


def test_bad_paths_and_unknown_entities(experiment_id, api, check):
    with mlflow.start_run() as run:
        mlflow.log_text("x", "a/b.txt")
    rid = run.info.run_id
    for path in ("../secret", "a/../../secret", "%2e%2e/secret", "/etc/passwd"):
        r = api.get(f"{AJAX}/artifacts/list", params={"run_uuid": rid, "path": path})
        check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
        r = api.get("/get-artifact", params={"run_uuid": rid, "path": path})
        check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    unknown = "0" * 32
    check.assert_error(
        api.get(f"{AJAX}/artifacts/list", params={"run_uuid": unknown}), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    check.assert_error(
        api.get("/get-artifact", params={"run_uuid": unknown, "path": "a/b.txt"}), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    check.assert_error(
        api.get(f"{AJAX}/logged-models/m-{unknown}/artifacts/directories"), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    r = api.get("/get-artifact", params={"run_uuid": rid, "path": "a/absent.txt"})
    assert r.status_code == 404


@pytest.mark.mlox_only
def test_missing_files_and_backslashes_are_json_errors(experiment_id, api, check):
    with mlflow.start_run() as run:
        mlflow.log_text("x", "a/b.txt")
    rid = run.info.run_id
    r = api.get("/get-artifact", params={"run_uuid": rid, "path": "a/absent.txt"})
    check.assert_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    # A separator on other systems and to many URL normalisers, so never part of a name.
    for route, params in (
        (f"{AJAX}/artifacts/list", {"run_uuid": rid, "path": "a\\..\\..\\x"}),
        ("/get-artifact", {"run_uuid": rid, "path": "a\\b.txt"}),
    ):
        check.assert_error(api.get(route, params=params), 400, "INVALID_PARAMETER_VALUE")


@pytest.mark.mlox_only
def test_html_is_previewed_as_sandboxed_text(experiment_id, api):
    page = "<html><script>document.title = 'pwned'</script></html>"
    with mlflow.start_run() as run:
        mlflow.log_text(page, "report.html")
        mlflow.log_text("naïve\n", "notes.txt")
    r = _get_run_file(api, run.info.run_id, "notes.txt")
    assert r.headers["Content-Type"] == "text/plain"
    assert r.headers["Content-Security-Policy"] == "sandbox"
    r = _get_run_file(api, run.info.run_id, "report.html")
    assert r.text == page
    assert r.headers["Content-Type"] == "text/plain"
    assert r.headers["Content-Security-Policy"] == "sandbox"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
