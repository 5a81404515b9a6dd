"""MLflow 3 webhooks through the official client: management (create, list, get, update,
delete, test) and delivery of every model-registry event to a local receiver that checks the
HMAC signature, the payload, that each event arrives exactly once, and how fast.

The server under test must allow http:// and loopback webhook URLs (the conftest sets the
allowance for both targets). Delivery within a second is what mlox promises; the reference
server caches its webhook list (a minute by default), so that check is mlox-only. For the
reference server, its webhook secrets must be readable by every worker: set
``MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY`` to one Fernet key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlflow.entities.webhook import WebhookEvent, WebhookStatus
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from conftest import TARGET

SECRET = "webhook-test-secret"

MODEL_EVENTS = [
    "registered_model.created",
    "model_version.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
]


class Receiver:
    """A threaded HTTP server on loopback that records every POST it gets."""

    def __init__(self):
        self.lock = threading.Lock()
        self.received: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode("utf-8")
                with receiver.lock:
                    receiver.received.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                            "at": time.monotonic(),
                        }
                    )
                    status = receiver.status
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                payload = b"received"
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.received if r["path"] == path]

    def wait_for(self, path: str, n: int, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.on(path)
            if len(got) >= n:
                return got
            time.sleep(0.01)
        return self.on(path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def webhooks_to_clean(client):
    ids: list[str] = []
    yield ids
    for webhook_id in ids:
        try:
            client.delete_webhook(webhook_id)
        except MlflowException:
            pass


def expected_signature(secret: str, delivery_id: str, timestamp: str, body: str) -> str:
    digest = hmac.new(
        secret.encode(), f"{delivery_id}.{timestamp}.{body}".encode(), hashlib.sha256
    ).digest()
    return "v1," + base64.b64encode(digest).decode()


def assert_signed(req: dict, secret: str = SECRET) -> dict:
    h = req["headers"]
    assert h["content-type"] == "application/json"
    delivery_id = h["x-mlflow-delivery-id"]
    timestamp = h["x-mlflow-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    assert h["x-mlflow-signature"] == expected_signature(secret, delivery_id, timestamp, req["body"])
    return json.loads(req["body"])


def _event_names(webhook) -> list[str]:
    return sorted(str(e) for e in webhook.events)


# --------------------------------------------------------------------------- management


def test_webhook_crud(client, receiver, unique_name, webhooks_to_clean):
    name = unique_name("hook")
    created = client.create_webhook(
        name=name,
        url=receiver.url("/crud"),
        events=["model_version.created", WebhookEvent("registered_model", "created")],
        description="first",
        secret=SECRET,
    )
    webhooks_to_clean.append(created.webhook_id)
    assert created.name == name
    assert created.url == receiver.url("/crud")
    assert created.description == "first"
    assert created.status == WebhookStatus.ACTIVE
    assert _event_names(created) == ["model_version.created", "registered_model.created"]
    assert created.creation_timestamp > 0
    assert created.last_updated_timestamp == created.creation_timestamp
    # The secret is write-only, as in MLflow.
    assert created.secret is None

    got = client.get_webhook(created.webhook_id)
    assert got.webhook_id == created.webhook_id
    assert got.name == name and got.url == created.url
    assert _event_names(got) == _event_names(created)

    page = client.list_webhooks(max_results=1000)
    assert created.webhook_id in [w.webhook_id for w in page]

    updated = client.update_webhook(
        created.webhook_id,
        name=name + "-2",
        description="second",
        events=["model_version_tag.set", "model_version_tag.deleted"],
        status="DISABLED",
    )
    assert updated.name == name + "-2"
    assert updated.description == "second"
    assert updated.status == WebhookStatus.DISABLED
    assert _event_names(updated) == ["model_version_tag.deleted", "model_version_tag.set"]
    assert updated.url == created.url
    assert updated.last_updated_timestamp >= created.last_updated_timestamp

    client.delete_webhook(created.webhook_id)
    with pytest.raises(MlflowException, match="not found") as e:
        client.get_webhook(created.webhook_id)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException, match="not found"):
        client.delete_webhook(created.webhook_id)


def test_list_pages(client, receiver, unique_name, webhooks_to_clean):
    for _ in range(3):
        w = client.create_webhook(
            name=unique_name("page"), url=receiver.url("/page"), events=["model_version.created"]
        )
        webhooks_to_clean.append(w.webhook_id)
    seen: list[str] = []
    token = None
    while True:
        page = client.list_webhooks(max_results=2, page_token=token)
        assert len(page) <= 2
        seen.extend(w.webhook_id for w in page)
        token = page.token
        if not token:
            break
    assert set(webhooks_to_clean) <= set(seen)
    assert len(seen) == len(set(seen))


def test_webhook_validation_errors(client, receiver, unique_name, server_url):
    import requests

    # Unknown events are refused by the client itself, bad schemes by the server.
    with pytest.raises(MlflowException) as e:
        client.create_webhook(name="bad", url=receiver.url("/x"), events=["no_such.event"])
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as e:
        client.create_webhook(name="bad", url="ftp://example.com/x", events=["model_version.created"])
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"

    with pytest.raises(MlflowException, match="Webhook name") as e:
        client.create_webhook(name="-bad", url=receiver.url("/x"), events=["model_version.created"])
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match="scheme"):
        client.create_webhook(
            name=unique_name("h"), url="ftp://127.0.0.1/x", events=["model_version.created"]
        )
    # The client leaves an empty list out of the request, so it is reported as missing.
    with pytest.raises(MlflowException, match="events"):
        client.create_webhook(name=unique_name("h"), url=receiver.url("/x"), events=[])
    with pytest.raises(MlflowException, match="max_results"):
        client.list_webhooks(max_results=1001)
    with pytest.raises(MlflowException, match="not found"):
        client.update_webhook("no-such-webhook", description="x")

    api = server_url + "/api/2.0/mlflow/webhooks"
    r = requests.post(
        api,
        json={
            "name": unique_name("h"),
            "url": receiver.url("/x"),
            "events": [{"entity": "MODEL_VERSION", "action": "SET"}],
        },
        timeout=30,
    )
    assert r.status_code == 400
    assert r.json()["message"] == (
        "Invalid action 'set' for entity 'model_version'. Valid actions are: ['created']"
    )
    r = requests.post(api, json={"url": receiver.url("/x"), "events": []}, timeout=30)
    assert r.status_code == 400
    assert "'name'" in r.json()["message"]


def test_webhook_test_delivery_is_signed(client, receiver, unique_name, webhooks_to_clean):
    w = client.create_webhook(
        name=unique_name("test"),
        url=receiver.url("/test"),
        events=["model_version_alias.created"],
        secret=SECRET,
    )
    webhooks_to_clean.append(w.webhook_id)

    result = client.test_webhook(w.webhook_id)
    assert result.success is True
    assert result.response_status == 200
    assert result.response_body == "received"
    got = receiver.wait_for("/test", 1, 5)
    body = assert_signed(got[0])
    assert body["entity"] == "model_version_alias" and body["action"] == "created"
    assert body["data"] == {"name": "example_model", "alias": "example_alias", "version": "1"}

    result = client.test_webhook(w.webhook_id, event=WebhookEvent("registered_model", "created"))
    assert result.success is True
    body = assert_signed(receiver.wait_for("/test", 2, 5)[1])
    assert body["entity"] == "registered_model"
    assert body["data"]["name"] == "example_model"

    receiver.status = 500
    result = client.test_webhook(w.webhook_id)
    assert result.success is False
    assert result.response_status == 500


def test_test_webhook_reports_unreachable_endpoint(client, unique_name, webhooks_to_clean):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    w = client.create_webhook(
        name=unique_name("dead"), url=f"http://127.0.0.1:{port}/x", events=["model_version.created"]
    )
    webhooks_to_clean.append(w.webhook_id)
    result = client.test_webhook(w.webhook_id)
    assert result.success is False
    assert result.error_message.startswith("Failed to test webhook")


# --------------------------------------------------------------------------- delivery


def _changes(client, name: str):
    """Each registry change paired with the event and data it must produce."""
    yield (
        lambda: client.create_registered_model(name, tags={"team": "ml"}, description="d"),
        "registered_model.created",
        {"name": name, "tags": {"team": "ml"}, "description": "d"},
    )
    yield (
        lambda: client.create_model_version(
            name, "s3://bucket/path/model", tags={"k": "v"}, description="v1"
        ),
        "model_version.created",
        {
            "name": name,
            "version": "1",
            "source": "s3://bucket/path/model",
            "tags": {"k": "v"},
            "description": "v1",
        },
    )
    yield (
        lambda: client.set_model_version_tag(name, "1", "stage", "qa"),
        "model_version_tag.set",
        {"name": name, "version": "1", "key": "stage", "value": "qa"},
    )
    yield (
        lambda: client.delete_model_version_tag(name, "1", "stage"),
        "model_version_tag.deleted",
        {"name": name, "version": "1", "key": "stage"},
    )
    yield (
        lambda: client.set_registered_model_alias(name, "champion", "1"),
        "model_version_alias.created",
        {"name": name, "alias": "champion", "version": "1"},
    )
    yield (
        lambda: client.delete_registered_model_alias(name, "champion"),
        "model_version_alias.deleted",
        {"name": name, "alias": "champion"},
    )


def test_every_registry_event_is_delivered_once_signed(
    client, receiver, unique_name, webhooks_to_clean
):
    path = "/events-" + unique_name("p")
    w = client.create_webhook(
        name=unique_name("events"), url=receiver.url(path), events=MODEL_EVENTS, secret=SECRET
    )
    webhooks_to_clean.append(w.webhook_id)
    # The reference server only sees a new webhook once its webhook cache expires (the
    # conftest shortens it to 1 s; by default it is a minute).
    time.sleep(0 if TARGET == "mlox" else 2)

    model = unique_name("wh-model")
    changed_at: dict[str, float] = {}
    expected: dict[str, dict] = {}
    for change, event, data in _changes(client, model):
        changed_at[event] = time.monotonic()
        change()
        expected[event] = data

    got = receiver.wait_for(path, len(expected), 10)
    time.sleep(0.8)  # anything sent twice shows up by now
    got = receiver.on(path)
    events = []
    for req in got:
        body = assert_signed(req)
        assert set(body) >= {"entity", "action", "timestamp", "data"}
        event = f"{body['entity']}.{body['action']}"
        events.append(event)
        for k, v in expected[event].items():
            assert body["data"][k] == v, (event, k, body["data"])
        if TARGET == "mlox":
            latency = req["at"] - changed_at[event]
            assert latency < 1.0, f"{event} arrived after {latency:.2f}s"
    assert sorted(events) == sorted(expected), events
    delivery_ids = [r["headers"]["x-mlflow-delivery-id"] for r in got]
    assert len(set(delivery_ids)) == len(delivery_ids)


@pytest.mark.mlox_only
def test_only_subscribed_active_webhooks_receive(client, receiver, unique_name, webhooks_to_clean):
    subscribed = client.create_webhook(
        name=unique_name("sub"), url=receiver.url("/sub"), events=["registered_model.created"]
    )
    other = client.create_webhook(
        name=unique_name("other"), url=receiver.url("/other"), events=["model_version.created"]
    )
    disabled = client.create_webhook(
        name=unique_name("off"),
        url=receiver.url("/off"),
        events=["registered_model.created"],
        status="DISABLED",
    )
    webhooks_to_clean.extend([subscribed.webhook_id, other.webhook_id, disabled.webhook_id])

    client.create_registered_model(unique_name("only"))
    got = receiver.wait_for("/sub", 1, 5)
    time.sleep(0.6)
    assert len(receiver.on("/sub")) == 1
    assert assert_unsigned(got[0])["entity"] == "registered_model"
    assert receiver.on("/other") == []
    assert receiver.on("/off") == []


def assert_unsigned(req: dict) -> dict:
    assert "x-mlflow-signature" not in req["headers"]
    assert req["headers"]["x-mlflow-delivery-id"]
    return json.loads(req["body"])


@pytest.mark.mlox_only
def test_failed_deliveries_are_retried(client, receiver, unique_name, webhooks_to_clean):
    w = client.create_webhook(
        name=unique_name("retry"), url=receiver.url("/retry"), events=["registered_model.created"],
        secret=SECRET,
    )
    webhooks_to_clean.append(w.webhook_id)
    receiver.status = 503
    client.create_registered_model(unique_name("retry-model"))
    first = receiver.wait_for("/retry", 1, 5)
    assert len(first) == 1
    receiver.status = 200
    got = receiver.wait_for("/retry", 2, 10)
    assert len(got) == 2, "the 503 was not retried"
    time.sleep(0.6)
    got = receiver.on("/retry")
    assert len(got) == 2, "delivered again after a success"
    # A retry is the same delivery: receivers can de-duplicate on the id.
    assert got[0]["headers"]["x-mlflow-delivery-id"] == got[1]["headers"]["x-mlflow-delivery-id"]
    for req in got:
        assert_signed(req)


def test_registry_events_are_delivered(client, receiver, unique_name, webhooks_to_clean):
    """A model version registered from a run: the payload carries the source as given."""
    path = "/events-" + unique_name("run")
    wh = client.create_webhook(
        name=unique_name("hook"),
        url=receiver.url(path),
        events=[
            "registered_model.created",
            "model_version.created",
            "model_version_tag.set",
            "model_version_alias.created",
        ],
        secret=SECRET,
    )
    webhooks_to_clean.append(wh.webhook_id)
    time.sleep(0 if TARGET == "mlox" else 2)

    name = unique_name("hooked-model")
    exp_id = client.create_experiment(unique_name("wh-exp"))
    run_id = client.create_run(exp_id).info.run_id
    client.create_registered_model(name)
    client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
    client.set_model_version_tag(name, "1", "k", "v")
    client.set_registered_model_alias(name, "champion", "1")

    got = receiver.wait_for(path, 4, 10)
    by_event = {}
    for req in got:
        body = assert_signed(req)
        by_event.setdefault(f"{body['entity']}.{body['action']}", []).append(body["data"])
    assert sorted(by_event) == sorted(str(e) for e in wh.events)
    assert by_event["registered_model.created"][0]["name"] == name
    mv = by_event["model_version.created"][0]
    assert mv["name"] == name
    assert str(mv["version"]) == "1"
    assert mv["source"] == f"runs:/{run_id}/model"
    assert mv["run_id"] == run_id
    tag = by_event["model_version_tag.set"][0]
    assert (tag["key"], tag["value"]) == ("k", "v")
    assert by_event["model_version_alias.created"][0]["alias"] == "champion"
    assert all(len(v) == 1 for v in by_event.values()), by_event


def test_disabled_webhook_gets_nothing(client, receiver, unique_name, webhooks_to_clean):
    wh = client.create_webhook(
        name=unique_name("off"),
        url=receiver.url("/off"),
        events=["registered_model.created"],
        status="DISABLED",
    )
    webhooks_to_clean.append(wh.webhook_id)
    time.sleep(1.5)
    client.create_registered_model(unique_name("quiet-model"))
    assert receiver.wait_for("/off", 1, 3) == []


@pytest.mark.mlox_only
@pytest.mark.standalone
def test_secrets_are_sealed_at_rest_with_the_kek_passphrase(receiver, tmp_path, monkeypatch):
    import sqlite3

    from conftest import launch_mlox

    db = tmp_path / "sealed.db"
    monkeypatch.setenv("MLFLOW_CRYPTO_KEK_PASSPHRASE", "first passphrase for the test")
    server = launch_mlox(tmp_path, f"sqlite:///{db}", log_name="sealed.log")
    try:
        client = MlflowClient(server.url, registry_uri=server.url)
        w = client.create_webhook(name="sealed", url=receiver.url("/sealed"),
                                  events=["registered_model.created"], secret=SECRET)
        stored = sqlite3.connect(db).execute(
            "SELECT secret FROM webhooks WHERE webhook_id = ?", (w.webhook_id,)).fetchone()[0]
        assert SECRET not in stored and stored.startswith("mlox-sealed:v1:")
        assert client.test_webhook(w.webhook_id).success is True
        assert_signed(receiver.wait_for("/sealed", 1, 5)[0])
    finally:
        server.stop()

    monkeypatch.setenv("MLFLOW_CRYPTO_KEK_PASSPHRASE", "another passphrase")
    server = launch_mlox(tmp_path, f"sqlite:///{db}", log_name="sealed-2.log")
    try:
        result = MlflowClient(server.url, registry_uri=server.url).test_webhook(w.webhook_id)
        assert result.success is False
        assert "MLFLOW_CRYPTO_KEK_PASSPHRASE" in result.error_message
    finally:
        server.stop()


def test_prompt_events_are_delivered_as_prompt_events(client, receiver, unique_name, webhooks_to_clean):
    """A prompt's registry changes arrive as MLflow's prompt events (with the template and
    without the tags that make it a prompt), never as model events."""
    import mlflow

    path = "/prompts-" + unique_name("p")
    events = ["prompt.created", "prompt_version.created", "prompt_tag.set", "prompt_tag.deleted",
              "prompt_version_tag.set", "prompt_alias.created", "prompt_alias.deleted",
              "registered_model.created", "model_version.created", "model_version_alias.created"]
    wh = client.create_webhook(name=unique_name("hook"), url=receiver.url(path), events=events, secret=SECRET)
    webhooks_to_clean.append(wh.webhook_id)
    time.sleep(0 if TARGET == "mlox" else 2)

    name = unique_name("greet")
    mlflow.genai.register_prompt(name=name, template="Hello {{name}}!", commit_message="first",
                                 tags={"team": "qa"})
    client.set_prompt_tag(name, "owner", "ana")
    client.delete_prompt_tag(name, "owner")
    client.set_prompt_version_tag(name, "1", "stage", "test")
    mlflow.genai.set_prompt_alias(name, alias="prod", version=1)
    mlflow.genai.delete_prompt_alias(name, alias="prod")

    expected = events[:7]
    # One more: the client also tags the new prompt with the experiment it belongs to.
    got = receiver.wait_for(path, len(expected) + 1, 30)
    by_event = {}
    for req in got:
        body = assert_signed(req)
        by_event.setdefault(f"{body['entity']}.{body['action']}", []).append(body["data"])
    assert sorted(by_event) == sorted(expected), sorted(by_event)
    # The client links a new prompt to the active experiment with a tag of its own.
    tag_sets = by_event.pop("prompt_tag.set")
    assert {"name": name, "key": "owner", "value": "ana"} in tag_sets
    assert all(t["key"] in ("owner", "_mlflow_experiment_ids") for t in tag_sets), tag_sets
    assert all(len(v) == 1 for v in by_event.values()), by_event
    assert by_event["prompt.created"][0] == {"name": name, "tags": {"team": "qa"}, "description": "first"}
    version = by_event["prompt_version.created"][0]
    assert (version["name"], str(version["version"]), version["template"]) == (name, "1", "Hello {{name}}!")
    assert "mlflow.prompt.is_prompt" not in version["tags"] and "mlflow.prompt.text" not in version["tags"]
    assert by_event["prompt_tag.deleted"][0] == {"name": name, "key": "owner"}
    assert by_event["prompt_version_tag.set"][0] == {"name": name, "version": "1", "key": "stage", "value": "test"}
    assert by_event["prompt_alias.created"][0] == {"name": name, "alias": "prod", "version": "1"}
    assert by_event["prompt_alias.deleted"][0] == {"name": name, "alias": "prod"}
