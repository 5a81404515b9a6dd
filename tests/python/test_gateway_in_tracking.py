"""MLflow 3's AI gateway inside ``mlox server``, driven by the real MLflow client.

* The configuration API (``/api/3.0/mlflow/gateway/*``) through the client's own store methods:
  secrets (sealed at rest, shown masked), model definitions, endpoints with primary and
  fallback models, attach/detach, bindings, tags, and the rules between them (a deleted secret
  orphans its definitions, a definition in use cannot be deleted, an endpoint that tracks usage
  gets its ``gateway/<name>`` experiment).
* Calls to stored endpoints: ``/gateway/{endpoint}/mlflow/invocations`` and OpenAI's
  ``/gateway/mlflow/v1/chat/completions`` (the real ``openai`` SDK), answered by an
  OpenAI-compatible stub (a paid API cannot run here) that fails on demand, so the fallback
  model is seen to answer; each call traced into the endpoint's experiment.
* A scorer whose judge is ``gateway:/<endpoint>`` is bound to the endpoint, survives a rename,
  and gets an online-scoring config; a base URL on a private address is refused unless allowed.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

from conftest import BACKEND, PgDatabase, launch_mlox
from test_gateway import STUB_KEY, OpenAIStub

pytestmark = [pytest.mark.mlox_only, pytest.mark.standalone]

PASSPHRASE = "gateway-test-passphrase-at-least-32-characters"


@pytest.fixture(scope="module")
def openai_stub():
    stub = OpenAIStub()
    yield stub
    stub.close()


@pytest.fixture(scope="module")
def gateway_server(tmp_path_factory):
    """A tracking server of its own: a known passphrase, and private base URLs allowed (the
    stub listens on 127.0.0.1)."""
    workdir = tmp_path_factory.mktemp("gateway-in-tracking")
    database = PgDatabase() if BACKEND == "postgresql" else None
    uri = database.uri if database else f"sqlite:///{workdir}/mlflow.db"
    server = launch_mlox(
        workdir, uri, env_extra={
            "MLFLOW_CRYPTO_KEK_PASSPHRASE": PASSPHRASE,
            "MLFLOW_GATEWAY_API_BASE_ALLOW_PRIVATE_IPS": "true",
        },
    )
    server.backend_uri = uri
    yield server
    server.stop()
    if database:
        database.close()


@pytest.fixture
def store(gateway_server):
    from mlflow import MlflowClient

    return MlflowClient(gateway_server.url)._tracking_client.store


def _names():
    suffix = uuid.uuid4().hex[:8]
    return lambda base: f"{base}-{suffix}"


def _api_error(excinfo) -> str:
    return str(excinfo.value)


def test_configuration_api_through_the_mlflow_client(gateway_server, store):
    from mlflow import MlflowClient
    from mlflow.entities import (
        FallbackConfig, FallbackStrategy, GatewayEndpointModelConfig, GatewayEndpointTag,
        GatewayModelLinkageType, GatewayResourceType, RoutingStrategy,
    )
    from mlflow.exceptions import MlflowException

    name = _names()
    secret = store.create_gateway_secret(
        secret_name=name("aws"), provider="bedrock",
        secret_value={"aws_access_key_id": "AKIATEST1234", "aws_secret_access_key": "secret123abc"},
        auth_config={"auth_mode": "access_keys", "aws_region_name": "us-east-1"},
    )
    assert secret.secret_id.startswith("s-")
    assert secret.masked_values == {"aws_access_key_id": "AKI...1234", "aws_secret_access_key": "sec...3abc"}
    assert store.get_secret_info(secret_name=name("aws")).secret_id == secret.secret_id
    with pytest.raises(MlflowException, match="already exists") as e:
        store.create_gateway_secret(secret_name=name("aws"), secret_value={"api_key": "x" * 10})
    assert e.value.error_code == "RESOURCE_ALREADY_EXISTS"
    rotated = store.update_gateway_secret(secret.secret_id, secret_value={"api_key": "rotated-key-5678"})
    assert rotated.masked_values == {"api_key": "rot...5678"}
    assert rotated.last_updated_at >= secret.created_at
    # Sealed at rest: the value is nowhere in the database.
    if gateway_server.backend_uri.startswith("sqlite:///"):
        db = gateway_server.backend_uri.removeprefix("sqlite:///")
        blob = b"".join(open(p, "rb").read() for p in [db, db + "-wal"] if __import__("os").path.exists(p))
        assert b"rotated-key-5678" not in blob and b"secret123abc" not in blob

    openai_secret = store.create_gateway_secret(secret_name=name("openai"), secret_value={"api_key": "sk-test-12345"}, provider="openai")
    assert [s.secret_id for s in store.list_secret_infos(provider="openai") if s.secret_name == name("openai")] == [openai_secret.secret_id]

    primary = store.create_gateway_model_definition(name=name("gpt"), secret_id=openai_secret.secret_id, provider="openai", model_name="gpt-4")
    fallback = store.create_gateway_model_definition(name=name("claude"), secret_id=secret.secret_id, provider="anthropic", model_name="claude-3")
    assert primary.secret_name == name("openai")
    with pytest.raises(MlflowException) as e:
        store.create_gateway_model_definition(name=name("nosecret"), secret_id="s-missing", provider="openai", model_name="m")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    updated = store.update_gateway_model_definition(fallback.model_definition_id, provider="openai", model_name="gpt-4o")
    assert (updated.provider, updated.model_name) == ("openai", "gpt-4o")

    endpoint = store.create_gateway_endpoint(
        name=name("chat"),
        model_configs=[
            GatewayEndpointModelConfig(model_definition_id=primary.model_definition_id,
                                       linkage_type=GatewayModelLinkageType.PRIMARY, weight=1.0),
            GatewayEndpointModelConfig(model_definition_id=fallback.model_definition_id,
                                       linkage_type=GatewayModelLinkageType.FALLBACK, weight=1.0, fallback_order=0),
        ],
        routing_strategy=RoutingStrategy.REQUEST_BASED_TRAFFIC_SPLIT,
        fallback_config=FallbackConfig(strategy=FallbackStrategy.SEQUENTIAL, max_attempts=2),
    )
    assert endpoint.endpoint_id.startswith("e-")
    assert [m.linkage_type for m in endpoint.model_mappings] == [GatewayModelLinkageType.PRIMARY, GatewayModelLinkageType.FALLBACK]
    assert endpoint.model_mappings[0].model_definition.model_name == "gpt-4"
    assert endpoint.fallback_config.strategy == FallbackStrategy.SEQUENTIAL and endpoint.fallback_config.max_attempts == 2
    # Usage tracking is on by default: an experiment named after the endpoint, marked as the gateway's.
    experiment = MlflowClient(gateway_server.url).get_experiment(endpoint.experiment_id)
    assert experiment.name == f"gateway/{name('chat')}"
    assert experiment.tags["mlflow.experiment.sourceType"] == "GATEWAY"
    assert experiment.tags["mlflow.experiment.sourceId"] == endpoint.endpoint_id

    plain = store.create_gateway_endpoint(
        name=name("plain"), usage_tracking=False,
        model_configs=[GatewayEndpointModelConfig(model_definition_id=primary.model_definition_id,
                                                  linkage_type=GatewayModelLinkageType.PRIMARY, weight=1.0)],
    )
    assert plain.routing_strategy is None and plain.fallback_config is None and plain.experiment_id is None
    listed = {e.endpoint_id for e in store.list_gateway_endpoints()}
    assert {endpoint.endpoint_id, plain.endpoint_id} <= listed
    by_secret = {e.endpoint_id for e in store.list_gateway_endpoints(provider="openai")}
    assert {endpoint.endpoint_id, plain.endpoint_id} <= by_secret

    with pytest.raises(MlflowException, match="Invalid endpoint name"):
        store.create_gateway_endpoint(name="bad name", model_configs=[
            GatewayEndpointModelConfig(model_definition_id=primary.model_definition_id,
                                       linkage_type=GatewayModelLinkageType.PRIMARY, weight=1.0)])
    with pytest.raises(MlflowException, match="Model definitions not found: d-missing"):
        store.create_gateway_endpoint(name=name("missing"), model_configs=[
            GatewayEndpointModelConfig(model_definition_id="d-missing", linkage_type=GatewayModelLinkageType.PRIMARY, weight=1.0)])

    mapping = store.attach_model_to_endpoint(plain.endpoint_id, GatewayEndpointModelConfig(
        model_definition_id=fallback.model_definition_id, linkage_type=GatewayModelLinkageType.PRIMARY, weight=2.0))
    assert mapping.endpoint_id == plain.endpoint_id and mapping.weight == 2.0
    assert len(store.get_gateway_endpoint(plain.endpoint_id).model_mappings) == 2
    store.detach_model_from_endpoint(plain.endpoint_id, fallback.model_definition_id)
    assert len(store.get_gateway_endpoint(plain.endpoint_id).model_mappings) == 1
    with pytest.raises(MlflowException, match="is not attached"):
        store.detach_model_from_endpoint(plain.endpoint_id, fallback.model_definition_id)

    store.set_gateway_endpoint_tag(plain.endpoint_id, GatewayEndpointTag(key="team", value="search"))
    assert [(t.key, t.value) for t in store.get_gateway_endpoint(plain.endpoint_id).tags] == [("team", "search")]
    store.delete_gateway_endpoint_tag(plain.endpoint_id, "team")
    assert store.get_gateway_endpoint(plain.endpoint_id).tags == []

    binding = store.create_endpoint_binding(plain.endpoint_id, GatewayResourceType.SCORER, "job-1")
    assert binding.resource_type == GatewayResourceType.SCORER
    assert [b.resource_id for b in store.list_endpoint_bindings(resource_id="job-1")] == ["job-1"]
    store.delete_endpoint_binding(plain.endpoint_id, "scorer", "job-1")
    assert store.list_endpoint_bindings(endpoint_id=plain.endpoint_id) == []

    renamed = store.update_gateway_endpoint(plain.endpoint_id, name=name("renamed"))
    assert renamed.name == name("renamed") and len(renamed.model_mappings) == 1

    # A definition in use stays; a deleted secret leaves its definitions without one.
    with pytest.raises(MlflowException, match="currently in use by endpoints") as e:
        store.delete_gateway_model_definition(primary.model_definition_id)
    assert e.value.error_code == "INVALID_STATE"
    store.delete_gateway_secret(openai_secret.secret_id)
    orphan = store.get_gateway_endpoint(plain.endpoint_id).model_mappings[0].model_definition
    assert orphan.secret_id is None and orphan.secret_name is None
    store.delete_gateway_endpoint(plain.endpoint_id)
    store.delete_gateway_endpoint(endpoint.endpoint_id)
    assert not {plain.endpoint_id, endpoint.endpoint_id} & {e.endpoint_id for e in store.list_gateway_endpoints()}
    store.delete_gateway_model_definition(primary.model_definition_id)
    with pytest.raises(MlflowException) as e:
        store.get_gateway_model_definition(primary.model_definition_id)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_ui_helper_routes(gateway_server):
    base = f"{gateway_server.url}/ajax-api/3.0/mlflow/gateway"
    providers = requests.get(f"{base}/supported-providers").json()["providers"]
    assert "openai" in providers and "mlflow-model-serving" in providers and providers == sorted(providers)
    config = requests.get(f"{base}/provider-config", params={"provider": "groq"}).json()
    assert config["default_mode"] == "api_key"
    assert [f["name"] for f in config["auth_modes"][0]["secret_fields"]] == ["api_key"]
    assert config["auth_modes"][0]["config_fields"][0]["name"] == "api_base"
    missing = requests.get(f"{base}/provider-config")
    assert missing.status_code == 400 and missing.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert requests.get(f"{base}/secrets/config").json() == {"secrets_available": True, "using_default_passphrase": False}
    # The test servers' model catalog is off (MLFLOW_MODEL_CATALOG_URI=""): no models to list.
    assert requests.get(f"{base}/supported-models").json() == {"models": []}
    guardrails = requests.get(f"{gateway_server.url}/api/3.0/mlflow/gateway/guardrails/list")
    assert guardrails.status_code == 501 and guardrails.json()["error_code"] == "NOT_IMPLEMENTED"


def _chat_endpoint(store, stub, name, *, fallback_key=STUB_KEY, usage_tracking=True):
    from mlflow.entities import FallbackConfig, FallbackStrategy, GatewayEndpointModelConfig, GatewayModelLinkageType

    secret = store.create_gateway_secret(secret_name=name("stub"), secret_value={"api_key": STUB_KEY},
                                         provider="openai", auth_config={"api_base": f"{stub.base}/v1"})
    backup = store.create_gateway_secret(secret_name=name("stub-backup"), secret_value={"api_key": fallback_key},
                                         provider="groq", auth_config={"api_base": f"{stub.base}/v1"})
    first = store.create_gateway_model_definition(name=name("first"), secret_id=secret.secret_id, provider="openai", model_name="gpt-first")
    second = store.create_gateway_model_definition(name=name("second"), secret_id=backup.secret_id, provider="groq", model_name="llama-second")
    return store.create_gateway_endpoint(
        name=name("chat"), usage_tracking=usage_tracking,
        model_configs=[
            GatewayEndpointModelConfig(model_definition_id=first.model_definition_id, linkage_type=GatewayModelLinkageType.PRIMARY, weight=1.0),
            GatewayEndpointModelConfig(model_definition_id=second.model_definition_id, linkage_type=GatewayModelLinkageType.FALLBACK, weight=1.0, fallback_order=0),
        ],
        fallback_config=FallbackConfig(strategy=FallbackStrategy.SEQUENTIAL, max_attempts=1),
    )


def test_stored_endpoints_answer_with_fallbacks_and_trace_their_calls(gateway_server, store, openai_stub):
    import openai
    from mlflow import MlflowClient

    name = _names()
    endpoint = _chat_endpoint(store, openai_stub, name)
    url = gateway_server.url

    answer = requests.post(f"{url}/gateway/{endpoint.name}/mlflow/invocations",
                           json={"messages": [{"role": "user", "content": "hello"}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "stub says: hello"
    path, headers, body = openai_stub.calls[-1]
    assert path == "/v1/chat/completions" and body["model"] == "gpt-first"
    assert {k.lower(): v for k, v in headers.items()}["authorization"] == f"Bearer {STUB_KEY}"

    # The primary fails once: the fallback model answers the same call.
    openai_stub.fail_next = 1
    calls_before = len(openai_stub.calls)
    sdk = openai.OpenAI(base_url=f"{url}/gateway/mlflow/v1", api_key="unused", max_retries=0)
    chat = sdk.chat.completions.create(model=endpoint.name, messages=[{"role": "user", "content": "again"}])
    assert chat.choices[0].message.content == "stub says: again"
    assert [c[2]["model"] for c in openai_stub.calls[calls_before:]] == ["gpt-first", "llama-second"]

    # Both models failing: the last failure is the answer, in FastAPI's shape.
    openai_stub.fail_next = 2
    failed = requests.post(f"{url}/gateway/{endpoint.name}/mlflow/invocations",
                           json={"messages": [{"role": "user", "content": "x"}]})
    assert failed.status_code == 503 and "overloaded" in failed.json()["detail"]

    streamed = sdk.chat.completions.create(model=endpoint.name, stream=True, messages=[{"role": "user", "content": "a b"}])
    assert "".join(c.choices[0].delta.content or "" for c in streamed).strip() == "stub says: a b"

    models = requests.get(f"{url}/gateway/mlflow/v1/models").json()
    assert endpoint.name in [m["id"] for m in models["data"]] and models["object"] == "list"

    unknown = requests.post(f"{url}/gateway/nope-{uuid.uuid4().hex[:6]}/mlflow/invocations", json={"messages": []})
    assert unknown.status_code == 404 and "detail" in unknown.json()
    neither = requests.post(f"{url}/gateway/{endpoint.name}/mlflow/invocations", json={"prompt": "x"})
    assert neither.status_code == 400 and "either chat or embeddings" in neither.json()["detail"]
    no_model = requests.post(f"{url}/gateway/mlflow/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert no_model.status_code == 400 and "model" in no_model.json()["detail"]

    # Every call that reached the endpoint is a trace in its experiment (the fallback's answer
    # is one call); calls refused before an endpoint was found are not.
    client = MlflowClient(url)
    deadline = time.monotonic() + 30
    traces = []
    while time.monotonic() < deadline:
        traces = client.search_traces(locations=[endpoint.experiment_id])
        if len(traces) >= 4:
            break
        time.sleep(0.5)
    states = sorted(t.info.state for t in traces)
    assert states == ["ERROR", "OK", "OK", "OK"], states
    inputs = sorted(t.data.spans[0].inputs["messages"][0]["content"] for t in traces)
    assert inputs == ["a b", "again", "hello", "x"]
    [failed_trace] = [t for t in traces if t.info.state == "ERROR"]
    assert failed_trace.data.spans[0].span_type == "CHAT_MODEL"


def test_embeddings_through_a_stored_endpoint(store, gateway_server, openai_stub):
    from mlflow.entities import GatewayEndpointModelConfig, GatewayModelLinkageType

    name = _names()
    secret = store.create_gateway_secret(secret_name=name("e"), secret_value={"api_key": STUB_KEY}, auth_config={"api_base": f"{openai_stub.base}/v1"})
    model = store.create_gateway_model_definition(name=name("embed"), secret_id=secret.secret_id, provider="openai", model_name="embed-stub")
    endpoint = store.create_gateway_endpoint(name=name("embed"), usage_tracking=False, model_configs=[
        GatewayEndpointModelConfig(model_definition_id=model.model_definition_id, linkage_type=GatewayModelLinkageType.PRIMARY, weight=1.0)])
    answer = requests.post(f"{gateway_server.url}/gateway/{endpoint.name}/mlflow/invocations", json={"input": ["a", "b"]})
    assert answer.status_code == 200, answer.text
    assert [d["embedding"] for d in answer.json()["data"]] == [[0.0, 1.0], [1.0, 1.0]]


def test_a_scorer_judged_by_a_gateway_endpoint_is_bound_and_scored_online(gateway_server, store, openai_stub):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name = _names()
    endpoint = _chat_endpoint(store, openai_stub, name, usage_tracking=False)
    experiment_id = MlflowClient(gateway_server.url).create_experiment(name("scoring"))
    judge = json.dumps({"instructions_judge_pydantic_data": {"model": f"gateway:/{endpoint.name}", "instructions": "rate {{ outputs }}"}})
    version = store.register_scorer(experiment_id, "quality", judge)
    assert json.loads(version._serialized_scorer)["instructions_judge_pydantic_data"]["model"] == f"gateway:/{endpoint.name}"
    [binding] = store.list_endpoint_bindings(endpoint_id=endpoint.endpoint_id)
    assert binding.resource_id == version.scorer_id and binding.display_name == "quality"

    # The scorer follows its endpoint through a rename.
    store.update_gateway_endpoint(endpoint.endpoint_id, name=name("judge"))
    fetched = store.get_scorer(experiment_id, "quality")
    assert json.loads(fetched._serialized_scorer)["instructions_judge_pydantic_data"]["model"] == f"gateway:/{name('judge')}"

    config = store.upsert_online_scoring_config(experiment_id=experiment_id, scorer_name="quality", sample_rate=0.5, filter_string=None)
    assert (config.scorer_id, config.sample_rate, config.filter_string) == (version.scorer_id, 0.5, None)
    config = store.upsert_online_scoring_config(experiment_id=experiment_id, scorer_name="quality", sample_rate=0.8,
                                                filter_string="trace.status = 'OK'")
    [stored] = store.get_online_scoring_configs([version.scorer_id])
    assert (stored.sample_rate, stored.filter_string, stored.experiment_id) == (0.8, "trace.status = 'OK'", experiment_id)

    store.register_scorer(experiment_id, "plain", json.dumps(
        {"builtin_scorer_class": "Safety", "builtin_scorer_pydantic_data": {"model": "openai:/gpt-4o"}}))
    with pytest.raises(MlflowException, match="does not use a gateway model"):
        store.upsert_online_scoring_config(experiment_id=experiment_id, scorer_name="plain", sample_rate=0.5)
    with pytest.raises(MlflowException, match="between 0.0 and 1.0"):
        store.upsert_online_scoring_config(experiment_id=experiment_id, scorer_name="quality", sample_rate=2.0)
    with pytest.raises(MlflowException) as e:
        store.register_scorer(experiment_id, "lost", json.dumps({"instructions_judge_pydantic_data": {"model": "gateway:/no-such-endpoint"}}))
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_a_private_base_url_is_refused_unless_allowed(server_url, openai_stub):
    """The suite's shared server does not allow private base URLs: a user cannot aim the
    server at its own network through a secret's ``api_base``."""
    from mlflow import MlflowClient
    from mlflow.entities import GatewayEndpointModelConfig, GatewayModelLinkageType

    store = MlflowClient(server_url)._tracking_client.store
    name = _names()
    secret = store.create_gateway_secret(secret_name=name("p"), secret_value={"api_key": STUB_KEY}, auth_config={"api_base": f"{openai_stub.base}/v1"})
    model = store.create_gateway_model_definition(name=name("p"), secret_id=secret.secret_id, provider="openai", model_name="gpt")
    endpoint = store.create_gateway_endpoint(name=name("p"), usage_tracking=False, model_configs=[
        GatewayEndpointModelConfig(model_definition_id=model.model_definition_id, linkage_type=GatewayModelLinkageType.PRIMARY, weight=1.0)])
    calls = len(openai_stub.calls)
    refused = requests.post(f"{server_url}/gateway/{endpoint.name}/mlflow/invocations", json={"messages": [{"role": "user", "content": "x"}]})
    assert refused.status_code == 400, refused.text
    assert "non-public address 127.0.0.1" in refused.json()["detail"]
    assert len(openai_stub.calls) == calls


def test_the_uis_deployments_proxy_reaches_only_the_deployments_server(tmp_path, openai_stub):
    """``/ajax-api/2.0/mlflow/gateway-proxy`` (MLflow's UI to a deployments server named by
    ``MLFLOW_DEPLOYMENTS_TARGET``): endpoint listing and invocations pass through; any other
    path is refused before anything is sent."""
    from conftest import _free_port, launch, mlox_binary

    config = tmp_path / "config.yaml"
    config.write_text(f"""
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-stub
      config:
        openai_api_key: {STUB_KEY}
        openai_api_base: {openai_stub.base}/v1
""")
    port = _free_port()
    deployments = launch([mlox_binary(), "gateway", "start", "--config-path", str(config), "--host", "127.0.0.1",
                          "--port", str(port)], tmp_path, port, log_name="deployments.log")
    tracking = launch_mlox(tmp_path, f"sqlite:///{tmp_path}/proxy.db", log_name="proxy-server.log",
                           env_extra={"MLFLOW_DEPLOYMENTS_TARGET": f"http://127.0.0.1:{port}"})
    try:
        proxy = f"{tracking.url}/ajax-api/2.0/mlflow/gateway-proxy"
        listed = requests.get(proxy, params={"gateway_path": "api/2.0/endpoints/"})
        assert listed.status_code == 200, listed.text
        assert [e["name"] for e in listed.json()["endpoints"]] == ["chat"]
        answer = requests.post(proxy, json={"gateway_path": "gateway/chat/invocations",
                                            "json_data": {"messages": [{"role": "user", "content": "hi"}]}})
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == "stub says: hi"
        missing = requests.post(proxy, json={"gateway_path": "gateway/nope/invocations", "json_data": {"messages": []}})
        assert missing.status_code == 400 and "error code 404" in missing.json()["message"]
        for method, path in (("post", ""), ("post", "foo/bar"), ("get", "hello/world"),
                             ("get", "http://169.254.169.254/latest"), ("post", "gateway/a/b/invocations")):
            kwargs = {"params": {"gateway_path": path}} if method == "get" else {"json": {"gateway_path": path}}
            refused = getattr(requests, method)(proxy, **kwargs)
            assert refused.status_code == 400, (method, path, refused.text)
            assert refused.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert requests.delete(proxy).status_code == 405
    finally:
        tracking.stop()
        deployments.stop()


def test_a_prompt_lab_run_keeps_the_try_and_the_prompt_as_a_model(server_url, tmp_path):
    """The UI's prompt lab (``/ajax-api/2.0/mlflow/runs/create-promptlab-run``): a finished run
    with the route, template and model parameters as params, the try's table, and the prompt as
    a model MLflow itself can read."""
    import yaml
    from mlflow import MlflowClient
    from mlflow.models import Model

    client = MlflowClient(server_url)
    experiment_id = client.create_experiment(f"promptlab-{uuid.uuid4().hex[:8]}")
    url = f"{server_url}/ajax-api/2.0/mlflow/runs/create-promptlab-run"
    body = {
        "experiment_id": experiment_id, "run_name": "try-1",
        "prompt_template": "Write about {{ city }}", "prompt_parameters": [{"key": "city", "value": "Oslo"}],
        "model_route": "chat", "model_parameters": [{"key": "temperature", "value": 0.1}],
        "model_input": "Write about Oslo", "model_output": "A city by a fjord.",
        "model_output_parameters": [{"key": "latency", "value": "100"}],
        "mlflow_version": "3.17.2", "user_id": "ana", "start_time": 456,
    }
    for missing in ("experiment_id", "prompt_template", "prompt_parameters", "model_route", "model_input", "mlflow_version"):
        refused = requests.post(url, json={k: v for k, v in body.items() if k != missing})
        assert refused.status_code == 400, missing
        assert refused.json()["message"] == f"CreatePromptlabRun request must specify {missing}."
    answer = requests.post(url, json=body)
    assert answer.status_code == 200, answer.text
    info = answer.json()["run"]["info"]
    assert (info["run_name"], info["user_id"], info["status"], info["start_time"]) == ("try-1", "ana", "FINISHED", 456)
    run = client.get_run(info["run_id"])
    assert run.data.params == {"model_route": "chat", "prompt_template": "Write about {{ city }}", "temperature": "0.1"}
    assert run.data.tags["mlflow.runSourceType"] == "PROMPT_ENGINEERING"
    assert json.loads(run.data.tags["mlflow.loggedArtifacts"]) == [{"path": "eval_results_table.json", "type": "table"}]

    local = client.download_artifacts(run.info.run_id, "", str(tmp_path))
    table = json.loads(open(f"{local}/eval_results_table.json").read())
    assert table == {"columns": ["city", "prompt", "output", "latency"],
                     "data": [["Oslo", "Write about Oslo", "A city by a fjord.", "100"]]}
    parameters = yaml.safe_load(open(f"{local}/model/parameters.yaml"))
    assert parameters == {"prompt_template": "Write about {{ city }}", "prompt_parameters": {"city": "Oslo"},
                          "model_parameters": {"temperature": "0.1"}, "model_route": "chat"}
    model = Model.load(f"{local}/model")
    assert model.flavors["python_function"]["loader_module"] == "mlflow._promptlab"
    assert model.run_id == run.info.run_id
    assert [c.name for c in model.signature.inputs.inputs] == ["city"]
