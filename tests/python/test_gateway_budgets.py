"""Budget policies of the AI gateway in ``mlox server``, driven by the real MLflow client.

* The policy API (``/api/3.0/mlflow/gateway/budgets/*``) through the client's own store methods,
  with MLflow's checks and words: this part runs against real ``mlflow server`` too.
* Spend: each call a stored endpoint answers is priced from MLflow's model catalog (a catalog
  file in MLflow's published format, served by ``file://`` as an air-gapped site would), from the
  tokens the answer reports; streams are priced from the usage chunk the gateway asks for. A
  REJECT policy refuses calls with 429 and MLflow's message once its window's spend reaches the
  limit; an ALERT policy sends ``budget_policy.exceeded`` once per window; the spend shows in the
  policy's window and the cost on the call's trace.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

from conftest import BACKEND, PgDatabase, launch_mlox
from test_gateway import STUB_KEY
from test_gateway_in_tracking import openai_stub  # noqa: F401 (a fixture)
from test_webhooks import Receiver

PASSPHRASE = "gateway-test-passphrase-at-least-32-characters"
# USD per million tokens: the stub reports 1 prompt and 2 completion tokens per call, so a
# call costs 1 * 1.0 + 2 * 2.0 = 5.0 USD.
CATALOG = {
    "schema_version": "1",
    "models": {
        "gpt-priced": {
            "mode": "chat",
            "context_window": {"max_input": 8000, "max_output": 1000},
            "pricing": {"input_per_million_tokens": 1_000_000.0, "output_per_million_tokens": 2_000_000.0},
            "capabilities": {"function_calling": True, "vision": False},
        },
        "text-embedding-priced": {"mode": "embedding", "pricing": {"input_per_million_tokens": 10.0}},
        "dall-e-priced": {"mode": "image_generation", "pricing": {"input_per_million_tokens": 1.0}},
    },
}
CALL_COST = 5.0


def _policy_api(url: str) -> str:
    return f"{url}/api/3.0/mlflow/gateway/budgets"


def _duration(hours: int = 1):
    from mlflow.entities.gateway_budget_policy import BudgetDuration, BudgetDurationUnit

    return BudgetDuration(unit=BudgetDurationUnit.HOURS, value=hours)


def test_budget_policies_are_kept_and_checked_as_mlflow_keeps_them(server_url):
    from mlflow import MlflowClient
    from mlflow.entities.gateway_budget_policy import BudgetAction, BudgetTargetScope, BudgetUnit
    from mlflow.exceptions import MlflowException

    store = MlflowClient(server_url)._tracking_client.store
    created = store.create_budget_policy(
        budget_unit=BudgetUnit.USD, budget_amount=12.5, duration=_duration(2),
        target_scope=BudgetTargetScope.GLOBAL, budget_action=BudgetAction.ALERT, created_by="alice",
    )
    assert created.budget_policy_id.startswith("bp-")
    assert (created.budget_amount, created.duration.value, created.created_by) == (12.5, 2, "alice")
    assert created.target_value is None
    fetched = store.get_budget_policy(created.budget_policy_id)
    assert (fetched.budget_action, fetched.target_scope) == (BudgetAction.ALERT, BudgetTargetScope.GLOBAL)

    updated = store.update_budget_policy(created.budget_policy_id, budget_amount=20.0,
                                         budget_action=BudgetAction.REJECT, updated_by="bob")
    assert (updated.budget_amount, updated.budget_action, updated.last_updated_by) == (20.0, BudgetAction.REJECT, "bob")
    assert updated.duration.value == 2 and updated.created_by == "alice"
    assert created.budget_policy_id in [p.budget_policy_id for p in store.list_budget_policies()]

    windows = requests.get(f"{_policy_api(server_url)}/windows").json()["windows"]
    mine = [w for w in windows if w["budget_policy_id"] == created.budget_policy_id]
    assert len(mine) == 1
    window = mine[0]
    # A 2-hour window aligned to the epoch, holding now.
    assert window["window_end_ms"] - window["window_start_ms"] == 2 * 3_600_000
    assert window["window_start_ms"] % (2 * 3_600_000) == 0
    assert window["window_start_ms"] <= time.time() * 1000 < window["window_end_ms"]

    with pytest.raises(MlflowException, match="target_value is required when target_scope is ENDPOINT") as e:
        store.create_budget_policy(budget_unit=BudgetUnit.USD, budget_amount=1.0, duration=_duration(),
                                   target_scope=BudgetTargetScope.ENDPOINT, budget_action=BudgetAction.REJECT)
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match="can only be set when target_scope is ENDPOINT or USER"):
        store.create_budget_policy(budget_unit=BudgetUnit.USD, budget_amount=1.0, duration=_duration(),
                                   target_scope=BudgetTargetScope.GLOBAL, budget_action=BudgetAction.REJECT,
                                   target_value="x")
    # Without sign-in no call has a user: a USER policy would never count anything.
    with pytest.raises(MlflowException, match="require server authentication"):
        store.create_budget_policy(budget_unit=BudgetUnit.USD, budget_amount=1.0, duration=_duration(),
                                   target_scope=BudgetTargetScope.USER, budget_action=BudgetAction.REJECT,
                                   target_value="alice")
    with pytest.raises(MlflowException, match="duration.value must be a positive integer, got 0"):
        store.create_budget_policy(budget_unit=BudgetUnit.USD, budget_amount=1.0, duration=_duration(0),
                                   target_scope=BudgetTargetScope.GLOBAL, budget_action=BudgetAction.REJECT)
    with pytest.raises(MlflowException) as e:
        store.create_budget_policy(budget_unit=BudgetUnit.USD, budget_amount=1.0, duration=_duration(),
                                   target_scope=BudgetTargetScope.ENDPOINT, budget_action=BudgetAction.REJECT,
                                   target_value=f"e-{uuid.uuid4().hex}")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    missing = requests.post(f"{_policy_api(server_url)}/create", json={"budget_amount": 1.0})
    assert missing.status_code == 400 and missing.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "budget_unit" in missing.json()["message"]

    store.delete_budget_policy(created.budget_policy_id)
    with pytest.raises(MlflowException) as e:
        store.get_budget_policy(created.budget_policy_id)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"


# ------------------------------------------------------------------------------- spend (mlox)


@pytest.fixture(scope="module")
def priced_server(tmp_path_factory):
    """A tracking server whose model catalog is a local file (an air-gapped site's setting)."""
    workdir = tmp_path_factory.mktemp("gateway-budgets")
    catalog = workdir / "catalog"
    catalog.mkdir()
    (catalog / "openai.json").write_text(json.dumps(CATALOG))
    database = PgDatabase() if BACKEND == "postgresql" else None
    uri = database.uri if database else f"sqlite:///{workdir}/mlflow.db"
    server = launch_mlox(
        workdir, uri, env_extra={
            "MLFLOW_CRYPTO_KEK_PASSPHRASE": PASSPHRASE,
            "MLFLOW_GATEWAY_API_BASE_ALLOW_PRIVATE_IPS": "true",
            "MLFLOW_MODEL_CATALOG_URI": f"file://{catalog}",
        },
    )
    yield server
    server.stop()
    if database:
        database.close()


def _priced_endpoint(store, stub):
    from mlflow.entities import GatewayEndpointModelConfig, GatewayModelLinkageType

    suffix = uuid.uuid4().hex[:8]
    secret = store.create_gateway_secret(secret_name=f"stub-{suffix}", secret_value={"api_key": STUB_KEY},
                                         provider="openai", auth_config={"api_base": f"{stub.base}/v1"})
    model = store.create_gateway_model_definition(name=f"priced-{suffix}", secret_id=secret.secret_id,
                                                  provider="openai", model_name="gpt-priced")
    return store.create_gateway_endpoint(
        name=f"priced-{suffix}",
        model_configs=[GatewayEndpointModelConfig(model_definition_id=model.model_definition_id,
                                                  linkage_type=GatewayModelLinkageType.PRIMARY, weight=1.0)],
    )


def _spend(url: str, policy_id: str) -> float:
    windows = requests.get(f"{_policy_api(url)}/windows").json()["windows"]
    return next(w["current_spend"] for w in windows if w["budget_policy_id"] == policy_id)


def _wait_for_spend(url: str, policy_id: str, at_least: float) -> float:
    # A call's cost is counted just after its answer, off the request path.
    deadline = time.monotonic() + 10
    spend = _spend(url, policy_id)
    while spend < at_least - 1e-9 and time.monotonic() < deadline:
        time.sleep(0.05)
        spend = _spend(url, policy_id)
    return spend


def _events(streamed) -> list[dict]:
    return [json.loads(line[6:]) for line in streamed.text.splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"]


def _chat(url: str, endpoint: str, **extra):
    return requests.post(f"{url}/gateway/{endpoint}/mlflow/invocations",
                         json={"messages": [{"role": "user", "content": "hello"}], **extra}, timeout=30)


@pytest.mark.mlox_only
@pytest.mark.standalone
def test_a_reject_budget_refuses_calls_once_its_window_is_spent(priced_server, openai_stub):
    from mlflow import MlflowClient
    from mlflow.entities.gateway_budget_policy import BudgetAction, BudgetTargetScope, BudgetUnit

    url = priced_server.url
    store = MlflowClient(url)._tracking_client.store
    endpoint = _priced_endpoint(store, openai_stub)
    other = _priced_endpoint(store, openai_stub)
    policy = store.create_budget_policy(
        budget_unit=BudgetUnit.USD, budget_amount=2 * CALL_COST - 0.5, duration=_duration(),
        target_scope=BudgetTargetScope.ENDPOINT, budget_action=BudgetAction.REJECT,
        target_value=endpoint.endpoint_id,
    )

    assert _chat(url, endpoint.name).status_code == 200
    assert _wait_for_spend(url, policy.budget_policy_id, CALL_COST) == pytest.approx(CALL_COST)
    # A stream is priced from the usage chunk the gateway asks the upstream for; a client that
    # did not ask for that chunk does not get it.
    streamed = _chat(url, endpoint.name, stream=True)
    assert streamed.status_code == 200
    assert [e for e in _events(streamed) if "usage" in e] == []
    assert _wait_for_spend(url, policy.budget_policy_id, 2 * CALL_COST) == pytest.approx(2 * CALL_COST)

    refused = _chat(url, endpoint.name)
    assert refused.status_code == 429
    detail = refused.json()["detail"]
    assert detail.startswith("Budget limit exceeded. Limit: $9.50 USD per 1 hour. Budget resets at ")
    assert detail.endswith("Z. Request rejected.")
    assert 0 < int(refused.headers["retry-after"]) <= 3600
    openai_refused = requests.post(f"{url}/gateway/mlflow/v1/chat/completions",
                                   json={"model": endpoint.name, "messages": [{"role": "user", "content": "hi"}]})
    assert openai_refused.status_code == 429
    # Another endpoint is not counted by this policy.
    assert _chat(url, other.name).status_code == 200

    # Raising the limit lets calls through again, at once.
    store.update_budget_policy(policy.budget_policy_id, budget_amount=100.0)
    asked = _chat(url, endpoint.name, stream=True, stream_options={"include_usage": True})
    assert _events(asked)[-1]["usage"]["completion_tokens"] == 2
    assert _wait_for_spend(url, policy.budget_policy_id, 3 * CALL_COST) == pytest.approx(3 * CALL_COST)

    # The call's trace carries the model, its tokens and its cost, as MLflow's spans do.
    traces = MlflowClient(url).search_traces(locations=[endpoint.experiment_id], max_results=50)
    costs = []
    for trace in traces:
        attributes = trace.data.spans[0].attributes
        if "mlflow.llm.cost" in attributes:
            assert attributes["mlflow.llm.model"] == "gpt-priced"
            assert attributes["mlflow.chat.tokenUsage"] == {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}
            costs.append(attributes["mlflow.llm.cost"]["total_cost"])
    assert costs and all(c == pytest.approx(CALL_COST) for c in costs)
    refused_traces = [t for t in traces if t.info.state.value == "ERROR"]
    assert refused_traces, "a refused call is traced as an error"


@pytest.mark.mlox_only
@pytest.mark.standalone
def test_an_alert_budget_sends_one_webhook_per_window(priced_server, openai_stub):
    from mlflow import MlflowClient
    from mlflow.entities.gateway_budget_policy import BudgetAction, BudgetTargetScope, BudgetUnit
    from mlflow.entities.webhook import WebhookAction, WebhookEntity, WebhookEvent

    url = priced_server.url
    client = MlflowClient(url, registry_uri=url)
    store = client._tracking_client.store
    receiver = Receiver()
    try:
        hook = client.create_webhook(name=f"budgets-{uuid.uuid4().hex[:6]}", url=receiver.url("/budget"),
                                     events=[WebhookEvent(WebhookEntity.BUDGET_POLICY, WebhookAction.EXCEEDED)])
        endpoint = _priced_endpoint(store, openai_stub)
        policy = store.create_budget_policy(
            budget_unit=BudgetUnit.USD, budget_amount=CALL_COST * 1.5, duration=_duration(),
            target_scope=BudgetTargetScope.ENDPOINT, budget_action=BudgetAction.ALERT,
            target_value=endpoint.endpoint_id,
        )
        for _ in range(3):
            # ALERT never refuses.
            assert _chat(url, endpoint.name).status_code == 200
        assert _wait_for_spend(url, policy.budget_policy_id, 3 * CALL_COST) == pytest.approx(3 * CALL_COST)
        got = receiver.wait_for("/budget", 1, timeout=10)
        time.sleep(0.5)
        got = receiver.on("/budget")
        assert len(got) == 1, "one alert per window"
        body = json.loads(got[0]["body"])
        assert (body["entity"], body["action"]) == ("budget_policy", "exceeded")
        data = body["data"]
        assert data["budget_policy_id"] == policy.budget_policy_id
        assert data["current_spend"] == pytest.approx(2 * CALL_COST)
        assert (data["budget_amount"], data["budget_unit"], data["duration_unit"], data["duration_value"]) == (
            CALL_COST * 1.5, "USD", "HOURS", 1)
        assert (data["target_scope"], data["target_value"], data["workspace"]) == (
            "ENDPOINT", endpoint.endpoint_id, "default")
        assert data["window_start"] % 3_600_000 == 0
        client.delete_webhook(hook.webhook_id)
    finally:
        receiver.close()


@pytest.mark.mlox_only
@pytest.mark.standalone
def test_the_ui_lists_the_catalogs_models_of_the_providers_mlox_calls(priced_server):
    base = f"{priced_server.url}/ajax-api/3.0/mlflow/gateway/supported-models"
    models = requests.get(base, params={"provider": "openai"}).json()["models"]
    assert [m["model"] for m in models] == ["gpt-priced", "text-embedding-priced"]
    chat = models[0]
    assert (chat["provider"], chat["mode"], chat["max_input_tokens"]) == ("openai", "chat", 8000)
    assert chat["input_cost_per_token"] == pytest.approx(1.0)
    assert chat["supports_function_calling"] is True and chat["supports_vision"] is False
    # Providers without a catalog file, or that mlox does not call, list nothing.
    assert requests.get(base, params={"provider": "groq"}).json() == {"models": []}
    assert requests.get(base, params={"provider": "nonsense"}).json() == {"models": []}


@pytest.mark.mlox_only
@pytest.mark.standalone
def test_with_sign_in_calls_need_use_on_the_endpoint_and_user_budgets_count_each_user(tmp_path, openai_stub):
    from mlflow import MlflowClient
    from mlflow.entities.gateway_budget_policy import BudgetAction, BudgetTargetScope, BudgetUnit

    from test_auth import ADMIN, ADMIN_PASSWORD, new_user

    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "openai.json").write_text(json.dumps(CATALOG))
    server = launch_mlox(
        tmp_path, f"sqlite:///{tmp_path}/auth.db", "--app-name", "basic-auth", log_name="auth.log",
        env_extra={
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD, "MLFLOW_AUTH_ADMIN_USERNAME": None,
            "MLFLOW_AUTH_CONFIG_PATH": None, "MLFLOW_CRYPTO_KEK_PASSPHRASE": PASSPHRASE,
            "MLFLOW_GATEWAY_API_BASE_ALLOW_PRIVATE_IPS": "true", "MLFLOW_MODEL_CATALOG_URI": f"file://{catalog}",
        },
    )
    try:
        url = server.url
        admin = (ADMIN, ADMIN_PASSWORD)
        import os

        previous = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = admin
        try:
            store = MlflowClient(url)._tracking_client.store
            endpoint = _priced_endpoint(store, openai_stub)
            policy = store.create_budget_policy(
                budget_unit=BudgetUnit.USD, budget_amount=CALL_COST, duration=_duration(),
                target_scope=BudgetTargetScope.USER, budget_action=BudgetAction.REJECT, target_value="alice-gw",
            )
        finally:
            for k, v in previous.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        alice = ("alice-gw", "alice-password-123")
        requests.post(f"{url}/api/2.0/mlflow/users/create", auth=admin,
                      json={"username": alice[0], "password": alice[1]}).raise_for_status()
        bob = new_user(url, "gw-bob")
        carol = new_user(url, "gw-carol")
        for user in (alice[0], bob[0]):
            requests.post(f"{url}/api/3.0/mlflow/users/permissions/grant", auth=admin,
                          json={"username": user, "resource_type": "gateway_endpoint",
                                "resource_id": endpoint.endpoint_id, "permission": "USE"}).raise_for_status()

        def chat(who):
            return requests.post(f"{url}/gateway/{endpoint.name}/mlflow/invocations", auth=who,
                                 json={"messages": [{"role": "user", "content": "hi"}]})

        assert requests.post(f"{url}/gateway/{endpoint.name}/mlflow/invocations",
                             json={"messages": []}).status_code == 401
        assert chat(carol).status_code == 403, "READ (the default) does not let a user call"
        openai_body = {"model": endpoint.name, "messages": [{"role": "user", "content": "hi"}]}
        assert requests.post(f"{url}/gateway/mlflow/v1/chat/completions", json=openai_body,
                             auth=carol).status_code == 403
        assert requests.get(f"{url}/gateway/mlflow/v1/models", auth=carol).status_code == 200
        nowhere = f"{url}/gateway/no-such-endpoint/mlflow/invocations"
        assert requests.post(nowhere, json={"messages": []}, auth=carol).status_code == 403
        assert requests.post(nowhere, json={"messages": []}, auth=admin).status_code == 404
        # The budget policies themselves are for administrators.
        assert requests.get(f"{_policy_api(url)}/list", auth=bob).status_code == 403

        assert chat(alice).status_code == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            windows = requests.get(f"{_policy_api(url)}/windows", auth=admin).json()["windows"]
            if next(w["current_spend"] for w in windows if w["budget_policy_id"] == policy.budget_policy_id) >= CALL_COST:
                break
            time.sleep(0.05)
        refused = chat(alice)
        assert refused.status_code == 429 and "Budget limit exceeded" in refused.json()["detail"]
        # Alice's budget is hers: Bob and the administrator still get answers.
        assert requests.post(f"{url}/gateway/mlflow/v1/chat/completions", json=openai_body,
                             auth=bob).status_code == 200
        assert chat(admin).status_code == 200
    finally:
        server.stop()


@pytest.mark.mlox_only
@pytest.mark.standalone
def test_spans_naming_their_model_and_tokens_are_priced_when_stored(priced_server):
    """As MLflow's server does: the client leaves pricing to the server, which prices a span from
    its model and token usage and sums the costs into the trace's ``mlflow.trace.cost``; a
    parent's figure already holds its children's, which are not counted again."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(priced_server.url)
    session_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(priced_server.url)
    try:
        _log_priced_trace(client, priced_server)
    finally:
        mlflow.set_tracking_uri(session_uri)


def _log_priced_trace(client, priced_server):
    import mlflow

    experiment = client.create_experiment(f"priced-{uuid.uuid4().hex[:8]}")
    mlflow.set_experiment(experiment_id=experiment)
    with mlflow.start_span(name="agent", span_type="AGENT") as agent:
        with mlflow.start_span(name="llm", span_type="CHAT_MODEL") as llm:
            llm.set_attribute("mlflow.llm.model", "gpt-priced")
            llm.set_attribute("mlflow.llm.provider", "openai")
            llm.set_attribute("mlflow.chat.tokenUsage", {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4})
        with mlflow.start_span(name="unpriced", span_type="CHAT_MODEL") as other:
            other.set_attribute("mlflow.llm.model", "gateway:/some-endpoint")
            other.set_attribute("mlflow.chat.tokenUsage", {"input_tokens": 5, "output_tokens": 5, "total_tokens": 10})
        with mlflow.start_span(name="no-provider", span_type="CHAT_MODEL") as guessed:
            # No provider named: the model is looked for among the usual providers' files.
            guessed.set_attribute("mlflow.llm.model", "gpt-priced")
            guessed.set_attribute("mlflow.chat.tokenUsage", {"input_tokens": 1, "output_tokens": 0, "total_tokens": 1})
        agent.set_inputs({"q": "hi"})
    trace_id = agent.trace_id
    mlflow.flush_trace_async_logging()
    trace = client.get_trace(trace_id)
    spans = {s.name: s for s in trace.data.spans}
    assert spans["llm"].attributes["mlflow.llm.cost"] == pytest.approx(
        {"input_cost": 3.0, "output_cost": 2.0, "total_cost": 5.0})
    assert spans["no-provider"].attributes["mlflow.llm.cost"]["total_cost"] == pytest.approx(1.0)
    assert "mlflow.llm.cost" not in spans["unpriced"].attributes
    assert "mlflow.llm.cost" not in spans["agent"].attributes
    cost = json.loads(trace.info.trace_metadata["mlflow.trace.cost"])
    assert cost == pytest.approx({"input_cost": 4.0, "output_cost": 2.0, "total_cost": 6.0})
