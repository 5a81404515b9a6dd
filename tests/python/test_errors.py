"""Error behaviour: exact HTTP statuses and ``error_code`` values the client relies
on, input limits, and artifact path traversal. Bad input is never a 5xx (the
client retries 5xx responses for minutes)."""

import http.client
import json
import os
import urllib.parse
import uuid
from pathlib import Path

import pytest

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException, RestException

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
MISSING_RUN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def run_id(client, experiment_id):
    return client.create_run(experiment_id).info.run_id


def _raises(fn, *args, **kwargs) -> MlflowException:
    with pytest.raises(MlflowException) as ei:
        fn(*args, **kwargs)
    return ei.value


# ------------------------------------------------------------ not found


def test_missing_run(client, api, check):
    err = _raises(client.get_run, MISSING_RUN)
    assert err.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert isinstance(err, RestException) and err.get_http_status_code() == 404
    body = check.assert_error(api.get(f"{API}/runs/get", params={"run_id": MISSING_RUN}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert body["message"] == f"Run with id={MISSING_RUN} not found"
    # the legacy parameter name is accepted too
    check.assert_error(api.get(f"{API}/runs/get", params={"run_uuid": MISSING_RUN}), 404, "RESOURCE_DOES_NOT_EXIST")
    # not-a-run-id strings are simply not found
    check.assert_error(api.get(f"{API}/runs/get", params={"run_id": "../../etc"}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_missing_run_on_writes(api, check):
    for path, body in (
        ("runs/log-parameter", {"run_id": MISSING_RUN, "key": "a", "value": "1"}),
        ("runs/log-metric", {"run_id": MISSING_RUN, "key": "a", "value": 1, "timestamp": 1, "step": 0}),
        ("runs/set-tag", {"run_id": MISSING_RUN, "key": "a", "value": "1"}),
        ("runs/log-batch", {"run_id": MISSING_RUN, "params": [{"key": "a", "value": "1"}]}),
        ("runs/update", {"run_id": MISSING_RUN, "status": "FINISHED"}),
        ("runs/delete", {"run_id": MISSING_RUN}),
    ):
        check.assert_error(api.post(f"{API}/{path}", json=body), 404, "RESOURCE_DOES_NOT_EXIST")


def test_missing_experiment(client, api, check, unique_name):
    err = _raises(client.get_experiment, "999999999")
    assert err.error_code == "RESOURCE_DOES_NOT_EXIST"
    body = check.assert_error(
        api.get(f"{API}/experiments/get", params={"experiment_id": "999999999"}), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    assert body["message"] == "No Experiment with id=999999999 exists"

    name = unique_name("nope")
    assert client.get_experiment_by_name(name) is None  # the client maps the 404 to None
    body = check.assert_error(
        api.get(f"{API}/experiments/get-by-name", params={"experiment_name": name}), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    assert body["message"] == f"Could not find experiment with name '{name}'"

    check.assert_error(api.post(f"{API}/runs/create", json={"experiment_id": "999999999"}), 404, "RESOURCE_DOES_NOT_EXIST")
    check.assert_error(api.post(f"{API}/experiments/delete", json={"experiment_id": "999999999"}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_set_experiment_creates_missing_experiment(unique_name, client):
    name = unique_name("created-on-demand")
    exp = mlflow.set_experiment(name)
    assert client.get_experiment_by_name(name).experiment_id == exp.experiment_id


# ------------------------------------------------------------ conflicts


def test_duplicate_experiment_name(client, api, check, unique_name):
    name = unique_name("dup")
    client.create_experiment(name)
    err = _raises(client.create_experiment, name)
    assert err.error_code == "RESOURCE_ALREADY_EXISTS"
    body = check.assert_error(api.post(f"{API}/experiments/create", json={"name": name}), 400, "RESOURCE_ALREADY_EXISTS")
    assert body["message"].startswith(f"Experiment(name={name}) already exists")


def test_deleted_experiment_name_is_still_taken(client, unique_name):
    name = unique_name("deleted-dup")
    exp = client.create_experiment(name)
    client.delete_experiment(exp)
    err = _raises(client.create_experiment, name)
    assert err.error_code == "RESOURCE_ALREADY_EXISTS"


def test_param_overwrite_with_different_value_is_rejected(client, api, check, run_id):
    client.log_param(run_id, "a", "1")
    client.log_param(run_id, "a", "1")  # same value: fine
    err = _raises(client.log_param, run_id, "a", "2")
    assert err.error_code == "INVALID_PARAMETER_VALUE"
    r = api.post(f"{API}/runs/log-parameter", json={"run_id": run_id, "key": "a", "value": "2"})
    body = check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert body["message"].startswith("Changing param values is not allowed. Param with key='a' was already logged with value='1'")
    # through log-batch as well, and the batch is not partially applied
    r = api.post(f"{API}/runs/log-batch", json={"run_id": run_id, "params": [{"key": "b", "value": "x"}, {"key": "a", "value": "3"}]})
    check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert client.get_run(run_id).data.params["a"] == "1"
    # same value in a batch is fine
    r = api.post(f"{API}/runs/log-batch", json={"run_id": run_id, "params": [{"key": "a", "value": "1"}]})
    assert r.status_code == 200, r.text


def test_logging_to_deleted_run_is_rejected(client, api, check, run_id):
    client.delete_run(run_id)
    for fn, args in (
        (client.log_param, ("p", "1")),
        (client.log_metric, ("m", 1.0)),
        (client.set_tag, ("t", "1")),
    ):
        err = _raises(fn, run_id, *args)
        assert err.error_code == "INVALID_PARAMETER_VALUE"
    r = api.post(f"{API}/runs/log-parameter", json={"run_id": run_id, "key": "p", "value": "1"})
    body = check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert body["message"] == f"The run {run_id} must be in the 'active' state. Current state is deleted."
    r = api.post(f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": [{"key": "m", "value": 1, "timestamp": 1, "step": 0}]})
    check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    r = api.post(f"{API}/runs/update", json={"run_id": run_id, "status": "FINISHED"})
    check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    # reading a deleted run is fine
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"


def test_fluent_logging_into_a_deleted_run_fails(experiment_id, client):
    run = mlflow.start_run()
    client.delete_run(run.info.run_id)
    err = _raises(mlflow.log_metric, "m", 1.0)
    assert err.error_code == "INVALID_PARAMETER_VALUE"
    # ending it fails the same way, but the client still leaves the run
    err = _raises(mlflow.end_run)
    assert err.error_code == "INVALID_PARAMETER_VALUE"
    assert mlflow.active_run() is None


# ------------------------------------------------------------ bad filters / queries


@pytest.mark.parametrize(
    "bad_filter",
    [
        "metrics.rmse <<< 1",
        "metrics.rmse < 'abc'",
        "params.alpha = 0.1",  # params compare with strings only
        "unknown_entity.x = '1'",
        "attributes.no_such_attribute = 'x'",
        "tags.a = 'x' OR tags.b = 'y'",
        "run_id IN 'abc'",
        "(",
    ],
)
def test_bad_run_filter_is_invalid_parameter_value(experiment_id, api, check, bad_filter):
    err = _raises(mlflow.search_runs, [experiment_id], filter_string=bad_filter)
    assert err.error_code == "INVALID_PARAMETER_VALUE"
    r = api.post(f"{API}/runs/search", json={"experiment_ids": [experiment_id], "filter": bad_filter})
    check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")


def test_bad_comparator_message(experiment_id, api, check):
    r = api.post(f"{API}/runs/search", json={"experiment_ids": [experiment_id], "filter": "metrics.rmse <<< 1"})
    body = check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert body["message"].startswith("Invalid comparator '<<<' not one of ")


@pytest.mark.parametrize(
    "payload",
    [
        {"order_by": ["metrics.x SIDEWAYS"]},
        {"max_results": -1},
        {"max_results": 100000},  # above the 50000 cap
        {"page_token": "garbage"},
    ],
    ids=["order_by", "negative-max", "huge-max", "page-token"],
)
def test_bad_search_arguments(experiment_id, api, check, payload):
    r = api.post(f"{API}/runs/search", json={"experiment_ids": [experiment_id], **payload})
    check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")


def test_bad_experiment_filter(client, api, check):
    err = _raises(client.search_experiments, filter_string="name <<< 'x'")
    assert err.error_code == "INVALID_PARAMETER_VALUE"
    r = api.post(f"{API}/experiments/search", json={"filter": "nonsense.key = 'x'", "max_results": 10})
    check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")


def test_search_runs_in_unknown_experiment_is_empty(api):
    r = api.post(f"{API}/runs/search", json={"experiment_ids": ["999999999"]})
    assert r.status_code == 200
    assert r.json().get("runs", []) == []


# ------------------------------------------------------------ ids that are not numbers


@pytest.mark.parametrize(
    "method,path,payload",
    [
        ("GET", "experiments/get", {"experiment_id": "abc"}),
        ("POST", "runs/create", {"experiment_id": "abc"}),
        ("POST", "runs/search", {"experiment_ids": ["abc"]}),
        ("POST", "experiments/delete", {"experiment_id": "abc"}),
        ("POST", "experiments/restore", {"experiment_id": "abc"}),
    ],
)
def test_experiment_id_must_be_an_integer(api, check, method, path, payload):
    if method == "GET":
        r = api.get(f"{API}/{path}", params=payload)
    else:
        r = api.post(f"{API}/{path}", json=payload)
    body = check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert body["message"] == "Invalid experiment ID 'abc'. Experiment ID must be a valid integer."


def test_experiment_id_not_a_number_via_client(client):
    err = _raises(client.get_experiment, "not-a-number")
    assert err.error_code == "INVALID_PARAMETER_VALUE"


# ------------------------------------------------------------ missing / malformed input


@pytest.mark.parametrize(
    "method,path,payload,missing",
    [
        ("GET", "runs/get", {}, "run_id"),
        ("GET", "experiments/get", {}, "experiment_id"),
        ("POST", "experiments/create", {}, "name"),
        ("POST", "experiments/create", {"name": ""}, "name"),
        ("POST", "runs/log-metric", {"run_id": MISSING_RUN, "key": "m", "value": 1}, "timestamp"),
        ("POST", "registered-models/create", {"name": ""}, "name"),
    ],
)
def test_missing_required_parameter(api, check, method, path, payload, missing):
    r = api.get(f"{API}/{path}", params=payload) if method == "GET" else api.post(f"{API}/{path}", json=payload)
    body = check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert body["message"] == (
        f"Missing value for required parameter '{missing}'. See the API docs for more information about request parameters."
    )


@pytest.mark.parametrize(
    "body",
    [
        {"key": "v", "value": "abc", "timestamp": 1, "step": 0},
        {"key": "v", "value": 1, "timestamp": 1, "step": "x"},
        {"key": "v", "value": 1, "timestamp": "yesterday", "step": 0},
    ],
    ids=["value-str", "step-str", "timestamp-str"],
)
def test_wrong_json_types_are_invalid_parameter_value(api, check, run_id, body):
    r = api.post(f"{API}/runs/log-metric", json={"run_id": run_id, **body})
    message = check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")["message"]
    field, value = next((k, v) for k, v in body.items() if isinstance(v, str) and k != "key")
    assert message == (
        f"Invalid value {json.dumps(value)} for parameter '{field}' supplied:  Hint: Value was of type 'str'. "
        "See the API docs for more information about request parameters."
    )


def test_wrong_type_for_name(api, check):
    r = api.post(f"{API}/experiments/create", json={"name": 123})
    body = check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert body["message"] == (
        "Invalid value 123 for parameter 'name' supplied:  Hint: Value was of type 'int'. "
        "See the API docs for more information about request parameters."
    )


def test_nan_as_string_is_accepted(api, client, run_id):
    r = api.post(f"{API}/runs/log-metric", json={"run_id": run_id, "key": "n", "value": "NaN", "timestamp": 1, "step": 0})
    assert r.status_code == 200, r.text
    import math

    assert math.isnan(client.get_run(run_id).data.metrics["n"])


def test_malformed_json_is_a_client_error(api, check):
    r = api.post(f"{API}/experiments/create", data="{not json", headers={"Content-Type": "application/json"})
    check.assert_not_5xx(r)
    assert r.status_code == 400


@pytest.mark.mlox_only
def test_json_array_body_is_a_client_error(api, check):
    # MLflow answers 500 here
    r = api.post(f"{API}/experiments/create", json=[1, 2])
    check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")


@pytest.mark.mlox_only
def test_status_update_with_unknown_status_is_rejected(api, check, run_id):
    # MLflow silently ignores an unknown status and answers 200
    r = api.post(f"{API}/runs/update", json={"run_id": run_id, "status": "WHATEVER"})
    check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")


# ------------------------------------------------------------ limits


def test_param_value_limit_is_6000_chars_and_longer_values_are_truncated(api, client, run_id):
    """MLflow (MLFLOW_TRUNCATE_LONG_VALUES, on by default) stores the first 6000 chars."""
    ok = "v" * 6000
    long = "".join(chr(ord("a") + i % 26) for i in range(6500))
    assert api.post(f"{API}/runs/log-parameter", json={"run_id": run_id, "key": "ok", "value": ok}).status_code == 200
    r = api.post(f"{API}/runs/log-parameter", json={"run_id": run_id, "key": "long", "value": long})
    assert r.status_code == 200, r.text
    r = api.post(f"{API}/runs/log-batch", json={"run_id": run_id, "params": [{"key": "blong", "value": long}]})
    assert r.status_code == 200, r.text
    params = client.get_run(run_id).data.params
    assert params["ok"] == ok
    assert params["long"] == long[:6000]
    assert params["blong"] == long[:6000]


def test_tag_value_limit_is_8000_chars_and_longer_values_are_truncated(api, client, run_id):
    long = "t" * 8000 + "overflow"
    r = api.post(f"{API}/runs/set-tag", json={"run_id": run_id, "key": "long", "value": long})
    assert r.status_code == 200, r.text
    assert client.get_run(run_id).data.tags["long"] == "t" * 8000


@pytest.mark.parametrize(
    "path,body,entity",
    [
        ("runs/log-parameter", {"value": "1"}, "Param key"),
        ("runs/log-metric", {"value": 1, "timestamp": 1, "step": 0}, "Metric name"),
        ("runs/set-tag", {"value": "1"}, "key"),
    ],
)
def test_keys_longer_than_250_chars_are_rejected(api, check, run_id, path, body, entity):
    r = api.post(f"{API}/{path}", json={"run_id": run_id, "key": "k" * 250, **body})
    assert r.status_code == 200, r.text
    r = api.post(f"{API}/{path}", json={"run_id": run_id, "key": "k" * 251, **body})
    err = check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert err["message"] == f"'{entity}' exceeds the maximum length of 250 characters"


def test_experiment_name_longer_than_500_chars_is_rejected(api, check):
    r = api.post(f"{API}/experiments/create", json={"name": "x" * 501})
    body = check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert body["message"] == "'name' exceeds the maximum length of 500 characters"


def test_log_batch_limits(api, check, client, run_id):
    metrics = [{"key": "m", "value": i, "timestamp": 1, "step": i} for i in range(1001)]
    r = api.post(f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": metrics})
    body = check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert body["message"].startswith("A batch logging request can contain at most 1000 metrics. Got 1001 metrics.")
    params = [{"key": f"p{i}", "value": "1"} for i in range(101)]
    r = api.post(f"{API}/runs/log-batch", json={"run_id": run_id, "params": params})
    body = check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert body["message"].startswith("A batch logging request can contain at most 100 params. Got 101 params.")
    tags = [{"key": f"t{i}", "value": "1"} for i in range(101)]
    r = api.post(f"{API}/runs/log-batch", json={"run_id": run_id, "tags": tags})
    body = check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert body["message"].startswith("A batch logging request can contain at most 100 tags. Got 101 tags.")
    # 1000 entities in total
    r = api.post(f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": metrics[:1000], "params": params[:1]})
    check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    # nothing from the rejected batches was stored
    data = client.get_run(run_id).data
    assert data.metrics == {} and data.params == {}
    # exactly at the limits is fine
    r = api.post(f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": metrics[:1000]})
    assert r.status_code == 200, r.text
    r = api.post(f"{API}/runs/log-batch", json={"run_id": run_id, "params": params[:100], "tags": tags[:100]})
    assert r.status_code == 200, r.text


def test_client_splits_big_batches(client, run_id):
    """MlflowClient.log_batch chunks by itself; the server sees only valid batches."""
    client.log_batch(
        run_id,
        metrics=[Metric("m", float(i), 1, i) for i in range(2500)],
        params=[Param(f"p{i}", "1") for i in range(250)],
        tags=[RunTag(f"t{i}", "1") for i in range(250)],
    )
    assert len(client.get_metric_history(run_id, "m")) == 2500
    assert len(client.get_run(run_id).data.params) == 250


@pytest.mark.parametrize("key", ["bad key!", "a/../b", "../x", "/abs", "a\\b", "tab\tx"])
def test_invalid_metric_names_are_rejected(api, check, run_id, key):
    r = api.post(f"{API}/runs/log-metric", json={"run_id": run_id, "key": key, "value": 1, "timestamp": 1, "step": 0})
    body = check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert body["message"].startswith(f"Invalid value {json.dumps(key)} for parameter 'name' supplied")


@pytest.mark.parametrize("key", ["with space", "colon:ok", "sl/ash", "dots..", "é", "a-b_c.d"])
def test_valid_unusual_metric_names_are_accepted(api, client, run_id, key):
    r = api.post(f"{API}/runs/log-metric", json={"run_id": run_id, "key": key, "value": 1, "timestamp": 1, "step": 0})
    assert r.status_code == 200, r.text
    assert key in client.get_run(run_id).data.metrics


def test_invalid_param_name_is_rejected(api, check, run_id):
    r = api.post(f"{API}/runs/log-parameter", json={"run_id": run_id, "key": "../p", "value": "1"})
    check.assert_error(r, 400, "INVALID_PARAMETER_VALUE")


# ------------------------------------------------------------ routing


def test_unknown_route_is_404(api, check):
    for path in (f"{API}/no/such/endpoint", "/api/3.0/mlflow/nothing", "/api/2.0/mlflow/runs/gett"):
        r = api.get(path)
        check.assert_not_5xx(r)
        assert r.status_code == 404, path


def test_wrong_method_is_405(api, check):
    r = api.post(f"{API}/runs/get")
    check.assert_not_5xx(r)
    assert r.status_code == 405


def test_registry_errors(api, check, unique_name):
    name = unique_name("no-model")
    body = check.assert_error(api.get(f"{API}/registered-models/get", params={"name": name}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert body["message"] == f"Registered Model with name={name} not found"
    body = check.assert_error(
        api.get(f"{API}/model-versions/get", params={"name": name, "version": "1"}), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    assert body["message"] == f"Model Version (name={name}, version=1) not found"
    body = check.assert_error(
        api.get(f"{API}/model-versions/get", params={"name": name, "version": "abc"}), 400, "INVALID_PARAMETER_VALUE"
    )
    assert body["message"] == "Parameter 'version' must be an integer, got 'abc'."


# ------------------------------------------------------------ artifact path traversal


def _raw(server_url, method, path, body=None):
    """Send a request line byte-for-byte (no client-side dot-segment normalisation)."""
    u = urllib.parse.urlsplit(server_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


class _Snapshot:
    """Files outside the artifact root, to prove nothing got written there."""

    def __init__(self, server):
        self.server = server
        self.root = server.workdir
        self.before = self._scan()

    def _scan(self):
        if self.server.external:
            return set()
        art = self.server.artifacts_dir.resolve() if self.server.artifacts_dir else None
        seen = set()
        for dirpath, dirnames, filenames in os.walk(self.root.parent):
            p = Path(dirpath).resolve()
            if art is not None and (p == art or art in p.parents):
                dirnames[:] = []
                continue
            for f in filenames:
                seen.add(str(p / f))
        return seen

    def assert_unchanged(self, marker):
        after = self._scan()
        ignore = ("mlox.db", "server.log")
        new = {f for f in after - self.before if not any(os.path.basename(f).startswith(i) for i in ignore)}
        assert not new, f"files appeared outside the artifact root: {sorted(new)}"
        assert not Path("/tmp", marker).exists()
        assert not Path("/", marker).exists()


def _traversal_paths(marker):
    return [
        f"../../../../../../../../tmp/{marker}",
        f"../{marker}",
        f"0/../../{marker}",
        f"%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/tmp/{marker}",
        f"..%2f..%2f..%2f..%2f..%2f..%2ftmp%2f{marker}",
        f"%2E%2E/{marker}",
        f"/tmp/{marker}",
        f"%2ftmp%2f{marker}",
    ]


@pytest.fixture
def traversal(server):
    marker = f"mlox-escape-{uuid.uuid4().hex}"
    snap = _Snapshot(server)
    yield marker, _traversal_paths(marker)
    snap.assert_unchanged(marker)


@pytest.mark.proxied_artifacts
def test_artifact_upload_traversal_is_rejected(server_url, traversal):
    marker, paths = traversal
    for p in paths:
        status, body = _raw(server_url, "PUT", f"{ARTIFACTS}/{p}", b"pwned")
        assert 400 <= status < 500, (p, status, body[:200])


@pytest.mark.proxied_artifacts
def test_artifact_download_traversal_is_rejected(server_url, traversal):
    _, paths = traversal
    for p in paths + ["../../../../../../../../etc/passwd", "%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd"]:
        status, body = _raw(server_url, "GET", f"{ARTIFACTS}/{p}")
        assert 400 <= status < 500, (p, status, body[:200])
        assert b"root:" not in body


@pytest.mark.proxied_artifacts
def test_artifact_list_traversal_is_rejected(server_url, traversal):
    _, paths = traversal
    for p in paths + ["../../../../../../etc", "/etc", "..", "0/../.."]:
        decoded = urllib.parse.unquote(p)
        status, body = _raw(server_url, "GET", f"{ARTIFACTS}?path={urllib.parse.quote(decoded, safe='')}")
        assert 400 <= status < 500, (p, status, body[:200])
        body_json = json.loads(body)
        assert body_json["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "passwd" not in body.decode()


@pytest.mark.proxied_artifacts
def test_artifact_traversal_error_body(server_url):
    status, body = _raw(server_url, "GET", f"{ARTIFACTS}/../../etc/passwd")
    assert status == 400
    err = json.loads(body)
    assert err["error_code"] == "INVALID_PARAMETER_VALUE"
    assert err["message"] == "Invalid path"


@pytest.mark.proxied_artifacts
def test_double_encoded_dots_never_escape(server_url, traversal):
    """``%252e%252e`` decodes once to the literal name ``%2e%2e``: a request for it
    must not be decoded twice into ``..``."""
    marker, _ = traversal
    for method, body in (("PUT", b"pwned"), ("GET", None)):
        status, _resp = _raw(server_url, method, f"{ARTIFACTS}/%252e%252e/%252e%252e/%252e%252e/tmp/{marker}", body)
        assert status < 500
    status, _ = _raw(server_url, "GET", f"{ARTIFACTS}?path=%252e%252e%2f%252e%252e")
    assert status < 500


@pytest.mark.proxied_artifacts
def test_backslash_paths_never_escape(server_url, traversal):
    marker, _ = traversal
    for p in (f"..\\..\\..\\tmp\\{marker}", f"..%5c..%5c..%5ctmp%5c{marker}"):
        for method, body in (("PUT", b"pwned"), ("GET", None)):
            status, _resp = _raw(server_url, method, f"{ARTIFACTS}/{p}", body)
            assert status < 500, (p, method, status)


@pytest.mark.mlox_only
@pytest.mark.proxied_artifacts
def test_backslash_paths_are_rejected(server_url, traversal):
    # MLflow on POSIX accepts these and writes a file literally named "..\..\x" in the root
    marker, _ = traversal
    for p in (f"..\\..\\{marker}", f"..%5c..%5c{marker}", f"0\\..\\..\\{marker}"):
        for method, body in (("PUT", b"pwned"), ("GET", None)):
            status, _resp = _raw(server_url, method, f"{ARTIFACTS}/{p}", body)
            assert status == 400, (p, method, status)
        status, _ = _raw(server_url, "GET", f"{ARTIFACTS}?path={urllib.parse.quote(p, safe='')}")
        assert status == 400


@pytest.mark.proxied_artifacts
def test_multipart_and_delete_traversal_rejected(server_url, traversal):
    marker, _ = traversal
    status, _ = _raw(
        server_url, "POST", f"/api/2.0/mlflow-artifacts/mpu/create/../../{marker}", json.dumps({"path": "x", "num_parts": 1}).encode()
    )
    assert 400 <= status < 500
    status, _ = _raw(server_url, "DELETE", f"{ARTIFACTS}/../../{marker}")
    assert 400 <= status < 500


@pytest.mark.mlox_only
def test_artifact_routes_say_why_when_artifacts_are_not_served(server_url):
    """With ``--no-serve-artifacts`` the proxy answers a non-retryable error naming the flag
    (MLflow answers 503, which the client retries for minutes before giving up)."""
    from conftest import ARTIFACTS as MODE

    if MODE != "s3-direct":
        pytest.skip("artifacts are served in this configuration")
    for method, path in (("GET", f"{ARTIFACTS}?path=x"), ("PUT", f"{ARTIFACTS}/0/x.txt"), ("POST", "/api/2.0/mlflow-artifacts/mpu/create/0/x")):
        status, body = _raw(server_url, method, path, b"x" if method != "GET" else None)
        assert status == 501, (method, path, status)
        err = json.loads(body)
        assert err["error_code"] == "NOT_IMPLEMENTED"
        assert "--no-serve-artifacts" in err["message"]
