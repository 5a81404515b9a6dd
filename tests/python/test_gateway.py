"""``mlox gateway start`` end to end, as seed 004 runs MLflow's deployments server.

* ``mlflow-model-serving`` endpoints in front of real ``mlox serve`` model servers (small pyfunc
  models this module logs itself), with seed 004's config shape, queried through the real
  ``mlflow.deployments.get_deploy_client`` (``predict``, ``get_endpoint``, ``list_endpoints``);
* ``openai`` endpoints in front of an OpenAI-compatible stub server run by this module (a paid
  API cannot run here), with failure injection (N x 503, delays), queried through the real
  ``openai`` SDK: chat, completions, embeddings, streaming, ``/v1/models``, error classes;
* the CLI: ``mlox deployments start-server`` with ``MLFLOW_GATEWAY_CONFIG``, and a bad config
  refused with the field and line.
"""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

import mlflow
from conftest import _free_port, launch, mlox_binary
from test_serve import ServeProcess, serve_env

pytestmark = [pytest.mark.mlox_only, pytest.mark.heavy, pytest.mark.standalone]

STUB_KEY = "sk-stub-key"


class TextModel(mlflow.pyfunc.PythonModel):
    """A completions / single-message chat model: each input text, reversed and tagged."""

    def predict(self, context, model_input, params=None):
        import numpy as np
        import pandas as pd

        if isinstance(model_input, pd.DataFrame):
            texts = model_input.iloc[:, 0].tolist()
        else:
            texts = np.asarray(model_input, dtype=object).ravel().tolist()
        return [f"served: {str(t)[::-1]}" for t in texts]


class EmbeddingModel(mlflow.pyfunc.PythonModel):
    """One vector per input text: its length, its word count and a constant."""

    def predict(self, context, model_input, params=None):
        import numpy as np
        import pandas as pd

        if isinstance(model_input, pd.DataFrame):
            texts = model_input.iloc[:, 0].tolist()
        else:
            texts = np.asarray(model_input, dtype=object).ravel().tolist()
        return [[float(len(str(t))), float(len(str(t).split())), 0.5] for t in texts]


import cloudpickle  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])


# --------------------------------------------------------------------------- OpenAI stub


class OpenAIStub:
    """An OpenAI-compatible server in this process. ``fail_next`` answers that many calls with
    ``fail_status``; ``delay`` waits before answering; every call is recorded."""

    def __init__(self):
        self.fail_next = 0
        self.fail_status = 503
        self.delay = 0.0
        self.calls: list[tuple[str, dict, dict]] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, status, body, extra_headers=()):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in extra_headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with stub.lock:
                    stub.calls.append((self.path, dict(self.headers), body))
                    failing = stub.fail_next > 0
                    if failing:
                        stub.fail_next -= 1
                if stub.delay:
                    time.sleep(stub.delay)
                if failing:
                    return self._json(
                        stub.fail_status, {"error": {"message": "overloaded", "type": "server_error"}}
                    )
                path, model = self.path, body.get("model")
                # Azure OpenAI: the deployment in the path is the model, the key in `api-key`.
                azure = re.fullmatch(r"/openai/deployments/([^/]+)/(chat/completions|embeddings)\?api-version=[\w.-]+", path)
                if azure:
                    if self.headers.get("api-key") != STUB_KEY or "model" in body:
                        return self._json(401, {"error": {"message": "bad azure request", "type": "invalid_request_error"}})
                    path, model = f"/v1/{azure.group(2)}", azure.group(1)
                elif self.headers.get("Authorization") != f"Bearer {STUB_KEY}":
                    return self._json(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
                if path == "/v1/chat/completions":
                    text = "stub says: " + str(body["messages"][-1]["content"])
                    if body.get("stream"):
                        chunks = [
                            {
                                "id": "chatcmpl-1",
                                "object": "chat.completion.chunk",
                                "created": 1,
                                "model": model,
                                "choices": [{"index": 0, "delta": {"content": w + " "}, "finish_reason": None}],
                            }
                            for w in text.split(" ")
                        ]
                        # As OpenAI does: the tokens used, in a last chunk without choices, when asked.
                        if (body.get("stream_options") or {}).get("include_usage"):
                            chunks.append({
                                "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
                                "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
                            })
                        return self._stream(chunks)
                    return self._json(
                        200,
                        {
                            "id": "chatcmpl-1",
                            "object": "chat.completion",
                            "created": 1,
                            "model": model,
                            "choices": [
                                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                            ],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
                        },
                    )
                if path == "/v1/completions":
                    return self._json(
                        200,
                        {
                            "id": "cmpl-1",
                            "object": "text_completion",
                            "created": 1,
                            "model": model,
                            "choices": [{"index": 0, "text": "stub completes " + body["prompt"], "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
                        },
                    )
                if path == "/v1/embeddings":
                    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    return self._json(
                        200,
                        {
                            "object": "list",
                            "data": [
                                {"object": "embedding", "embedding": [float(i), 1.0], "index": i}
                                for i in range(len(inputs))
                            ],
                            "model": model,
                            "usage": {"prompt_tokens": 1, "total_tokens": 1},
                        },
                    )
                return self._json(404, {"error": {"message": "no such route"}})

            def _stream(self, chunks):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                # Like some OpenAI-compatible servers, this one never sends [DONE]: the gateway adds it.
                for c in chunks:
                    event = f"data: {json.dumps(c)}\n\n".encode()
                    self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                    self.wfile.flush()
                    time.sleep(0.01)
                self.wfile.write(b"0\r\n\r\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model_servers(tmp_path_factory):
    """Two `mlox serve -m <logged model>` servers: a text model and an embeddings model."""
    mlflow.set_experiment(f"gateway-{int(time.time() * 1000)}")
    with mlflow.start_run():
        text_uri = mlflow.pyfunc.log_model(name="text", python_model=TextModel()).model_uri
        embed_uri = mlflow.pyfunc.log_model(name="embed", python_model=EmbeddingModel()).model_uri
    servers = {}
    try:
        for name, uri in (("text", text_uri), ("embed", embed_uri)):
            workdir = tmp_path_factory.mktemp(f"serve-{name}")
            port = _free_port()
            server = ServeProcess(["-m", uri, "-h", "127.0.0.1", "-p", str(port), "-w", "1"], workdir, port, serve_env(workdir))
            servers[name] = server
        for server in servers.values():
            server.wait_loaded()
        yield {name: s.base for name, s in servers.items()}
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def openai_stub():
    stub = OpenAIStub()
    yield stub
    stub.close()


def gateway_config(model_servers, stub_base: str) -> str:
    # Seed 004's endpoints (model servers behind mlflow-model-serving), plus OpenAI-compatible ones.
    return f"""
endpoints:
  - name: embeddings
    endpoint_type: llm/v1/embeddings
    model:
      provider: mlflow-model-serving
      name: sentence-transformer
      config:
        model_server_url: {model_servers['embed']}
  - name: fillmask
    endpoint_type: llm/v1/completions
    model:
      provider: mlflow-model-serving
      name: fill-mask
      config:
        model_server_url: {model_servers['text']}
  - name: served-chat
    endpoint_type: llm/v1/chat
    model:
      provider: mlflow-model-serving
      name: text-model
      config:
        model_server_url: {model_servers['text']}
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-stub
      config:
        openai_api_key: $STUB_OPENAI_KEY
        openai_api_base: {stub_base}/v1
  - name: completions
    endpoint_type: llm/v1/completions
    model:
      provider: groq
      name: llama-stub
      config:
        api_key: $STUB_OPENAI_KEY
        api_base: {stub_base}/v1
  - name: stub-embeddings
    endpoint_type: llm/v1/embeddings
    model:
      provider: openai
      name: embed-stub
      config:
        openai_api_key: $STUB_OPENAI_KEY
        openai_api_base: {stub_base}/v1
  - name: limited
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-stub
      config:
        openai_api_key: $STUB_OPENAI_KEY
        openai_api_base: {stub_base}/v1
    limit:
      calls: 2
      renewal_period: minute
routes:
  - name: chat-route
    task_type: llm/v1/chat
    destinations:
      - name: chat
        traffic_percentage: 100
      - name: limited
        traffic_percentage: 0
    routing_strategy: TRAFFIC_SPLIT
"""


@pytest.fixture(scope="module")
def gateway(model_servers, openai_stub, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gateway")
    config = workdir / "config.yaml"
    config.write_text(gateway_config(model_servers, openai_stub.base))
    port = _free_port()
    os.environ["STUB_OPENAI_KEY"] = STUB_KEY
    try:
        server = launch(
            [mlox_binary(), "gateway", "start", "--config-path", str(config), "--host", "127.0.0.1", "--port", str(port)],
            workdir,
            port,
            log_name="gateway.log",
        )
    finally:
        os.environ.pop("STUB_OPENAI_KEY", None)
    yield server
    server.stop()


@pytest.fixture
def openai_client(gateway):
    import openai

    # No client-side retries: the gateway's own retries are under test.
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, timeout=60)


# --------------------------------------------------------------------------- MLflow's client


def test_seed_004_deploy_client_against_model_servers(gateway):
    from mlflow.deployments import get_deploy_client

    client = get_deploy_client(gateway.url)
    names = [e.name for e in client.list_endpoints()]
    assert names == ["embeddings", "fillmask", "served-chat", "chat", "completions", "stub-embeddings", "limited"]

    endpoint = client.get_endpoint("embeddings")
    assert endpoint.endpoint_type == "llm/v1/embeddings"
    assert (endpoint.model.name, endpoint.model.provider) == ("sentence-transformer", "mlflow-model-serving")
    assert endpoint.endpoint_url == f"{gateway.url}/gateway/embeddings/invocations"
    limit = client.get_endpoint("limited").limit
    assert (limit.calls, limit.key, limit.renewal_period) == (2, None, "minute")

    # Seed 004's example.py queries.
    texts = ["Do you carry the Storm Trooper costume in size 2T?", "hi"]
    embedded = client.predict(endpoint="embeddings", inputs={"input": texts})
    assert embedded["object"] == "list"
    assert [d["embedding"] for d in embedded["data"]] == [[float(len(t)), float(len(t.split())), 0.5] for t in texts]
    assert embedded["model"] == "sentence-transformer"

    filled = client.predict(endpoint="fillmask", inputs={"prompt": "Exploring the [MASK]", "temperature": 0.2})
    assert filled["object"] == "text_completion"
    assert filled["choices"][0]["text"] == "served: " + "Exploring the [MASK]"[::-1]
    assert filled["model"] == "fill-mask"

    chat = client.predict(endpoint="served-chat", inputs={"messages": [{"role": "user", "content": "abc"}]})
    assert chat["choices"][0]["message"] == {"role": "assistant", "content": "served: cba", "tool_calls": None, "refusal": None}

    # An OpenAI-compatible endpoint and a route through the same client.
    assert client.predict(endpoint="chat", inputs={"messages": [{"role": "user", "content": "x"}]})["choices"][0]["message"][
        "content"
    ] == "stub says: x"
    assert client.predict(endpoint="chat-route", inputs={"messages": [{"role": "user", "content": "y"}]})["choices"][0][
        "message"
    ]["content"] == "stub says: y"


def test_mlflow_client_sees_mlflow_errors(gateway):
    from mlflow.deployments import get_deploy_client

    client = get_deploy_client(gateway.url)
    # The client raises the HTTP error with the server's detail, as against MLflow's server.
    with pytest.raises(requests.HTTPError, match="not present or active"):
        client.get_endpoint("nope")
    # Two messages to a single-message model server: MLflow's 422.
    r = requests.post(
        f"{gateway.url}/endpoints/served-chat/invocations",
        json={"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]},
        timeout=30,
    )
    assert r.status_code == 422
    assert "2 queries" in r.json()["detail"]


# --------------------------------------------------------------------------- OpenAI's SDK


def test_openai_sdk_chat_completions_embeddings(gateway, openai_client, openai_stub):
    chat = openai_client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hello"}])
    assert chat.choices[0].message.content == "stub says: hello"
    path, _headers, sent = openai_stub.calls[-1]
    assert path == "/v1/chat/completions" and sent["model"] == "gpt-stub"

    completion = openai_client.completions.create(model="completions", prompt="once")
    assert completion.choices[0].text == "stub completes once"

    embeddings = openai_client.embeddings.create(model="stub-embeddings", input=["a", "b"])
    assert [d.embedding for d in embeddings.data] == [[0.0, 1.0], [1.0, 1.0]]

    # Model-serving endpoints through the OpenAI API too.
    served = openai_client.chat.completions.create(model="served-chat", messages=[{"role": "user", "content": "xyz"}])
    assert served.choices[0].message.content == "served: zyx"
    served_embeddings = openai_client.embeddings.create(model="embeddings", input="four")
    assert served_embeddings.data[0].embedding == [4.0, 1.0, 0.5]

    ids = [m.id for m in openai_client.models.list()]
    assert ids == ["embeddings", "fillmask", "served-chat", "chat", "completions", "stub-embeddings", "limited", "chat-route"]


def test_openai_sdk_streaming_ends_with_done(gateway, openai_client):
    stream = openai_client.chat.completions.create(
        model="chat-route", messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "stub says: one two three "

    # On the wire: one event per upstream chunk, then [DONE] (which the stub never sends).
    with requests.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "a b"}], "stream": True},
        stream=True,
        timeout=30,
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        data = [line[len("data: "):] for line in r.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert len(data) == len("stub says: a b".split(" ")) + 1

    # A model server has no streams: its whole answer arrives as one chunk.
    served = openai_client.chat.completions.create(
        model="served-chat", messages=[{"role": "user", "content": "abc"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in served) == "served: cba"


def test_openai_sdk_errors(gateway, openai_client):
    import openai

    with pytest.raises(openai.NotFoundError) as missing:
        openai_client.chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="not an embeddings endpoint"):
        openai_client.embeddings.create(model="chat", input="x")
    with pytest.raises(openai.UnprocessableEntityError):
        openai_client.chat.completions.create(model="chat", messages=[])


def test_server_side_retries_and_rate_limits(gateway, openai_client, openai_stub):
    import openai

    before = len(openai_stub.calls)
    openai_stub.fail_status = 503
    openai_stub.fail_next = 2
    chat = openai_client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "retry"}])
    assert chat.choices[0].message.content == "stub says: retry"
    assert len(openai_stub.calls) - before == 3

    # limit: {calls: 2, renewal_period: minute} holds on /v1 as on MLflow's routes.
    openai_client.chat.completions.create(model="limited", messages=[{"role": "user", "content": "1"}])
    r = requests.post(f"{gateway.url}/endpoints/limited/invocations", json={"messages": [{"role": "user", "content": "2"}]}, timeout=30)
    assert r.status_code == 200
    with pytest.raises(openai.RateLimitError) as limited:
        openai_client.chat.completions.create(model="limited", messages=[{"role": "user", "content": "3"}])
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
    assert limited.value.body["code"] == "rate_limit_exceeded"


# --------------------------------------------------------------------------- the CLI


def test_deployments_start_server_alias_reads_mlflow_gateway_config(gateway, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "endpoints:\n  - name: only\n    endpoint_type: llm/v1/completions\n"
        "    model: {provider: mlflow-model-serving, name: m, config: {model_server_url: 'http://127.0.0.1:9'}}\n"
    )
    port = _free_port()
    os.environ["MLFLOW_GATEWAY_CONFIG"] = str(config)
    try:
        server = launch([mlox_binary(), "deployments", "start-server", "--port", str(port)], tmp_path, port, log_name="alias.log")
    finally:
        os.environ.pop("MLFLOW_GATEWAY_CONFIG", None)
    try:
        from mlflow.deployments import get_deploy_client

        assert [e.name for e in get_deploy_client(server.url).list_endpoints()] == ["only"]
        # Nothing listens on the upstream's port: a 502 that names the cause, after retries.
        r = requests.post(f"{server.url}/endpoints/only/invocations", json={"prompt": "x"}, timeout=30)
        assert r.status_code == 502
        assert "cannot reach the upstream" in r.json()["detail"]
    finally:
        server.stop()


def test_a_bad_config_is_refused_with_field_and_line(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "endpoints:\n  - name: a\n    endpoint_type: llm/v1/chat\n"
        "    model: {provider: gemini, config: {gemini_api_key: k}}\n"
    )
    done = subprocess.run(
        [mlox_binary(), "gateway", "start", "--config-path", str(config), "--port", str(_free_port())],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "line 4, endpoints[0].model.provider" in done.stderr
    assert "not implemented in mlox yet" in done.stderr


def test_calls_are_recorded_as_traces_in_the_tracking_server(model_servers, openai_stub, server_url, tmp_path):
    """`--trace-experiment`: every call to an endpoint becomes a trace in that experiment of the
    tracking server, made on first use, found with the MLflow client's own trace search."""
    from mlflow import MlflowClient

    experiment = f"gateway-traces-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "config.yaml"
    config.write_text(gateway_config(model_servers, openai_stub.base))
    port = _free_port()
    server = launch(
        [mlox_binary(), "gateway", "start", "--config-path", str(config), "--host", "127.0.0.1", "--port", str(port),
         "--trace-experiment", experiment, "--tracking-uri", server_url],
        tmp_path, port, log_name="gateway.log", env_extra={"STUB_OPENAI_KEY": STUB_KEY},
    )
    try:
        from mlflow.deployments import get_deploy_client

        client = get_deploy_client(server.url)
        client.predict(endpoint="fillmask", inputs={"prompt": "traced prompt"})
        client.predict(endpoint="chat", inputs={"messages": [{"role": "user", "content": "traced chat"}]})
        bad = requests.post(f"{server.url}/gateway/fillmask/invocations", json={"prompt": 7})
        assert bad.status_code == 422
        assert requests.post(f"{server.url}/gateway/nope/invocations", json={"prompt": "x"}).status_code == 404
    finally:
        server.stop()

    tracking = MlflowClient(server_url)
    deadline = time.monotonic() + 30
    traces = []
    while time.monotonic() < deadline:
        found = tracking.get_experiment_by_name(experiment)
        if found is not None:
            traces = tracking.search_traces(locations=[found.experiment_id])
            if len(traces) >= 3:
                break
        time.sleep(0.5)
    by_name = {}
    for trace in traces:
        [span] = trace.data.spans
        by_name.setdefault(span.name, []).append((trace, span))
    assert sorted((name, len(v)) for name, v in by_name.items()) == [("chat", 1), ("fillmask", 2)]
    (chat_trace, chat_span), = by_name["chat"]
    assert chat_span.span_type == "CHAT_MODEL" and chat_trace.info.state == "OK"
    assert chat_span.inputs["messages"][0]["content"] == "traced chat"
    assert chat_span.outputs["choices"][0]["message"]["content"] == "stub says: traced chat"
    states = sorted((t.info.state, s.span_type) for t, s in by_name["fillmask"])
    assert states == [("ERROR", "LLM"), ("OK", "LLM")]
    ok_span = next(s for t, s in by_name["fillmask"] if t.info.state == "OK")
    assert ok_span.inputs["prompt"] == "traced prompt"
    assert ok_span.outputs["choices"][0]["text"] == "served: " + "traced prompt"[::-1]


def test_a_config_change_is_served_without_dropping_a_request(openai_stub, tmp_path):
    """The config is mounted as Kubernetes mounts a ConfigMap (`config.yaml` -> `..data/…`,
    `..data` swapped to a new directory); a change is served within seconds, a request under
    way finishes on the config it started with, and a broken config is refused."""

    def version(name: str, body: str) -> None:
        target = tmp_path / name
        target.mkdir()
        (target / "config.yaml").write_text(body)
        staged = tmp_path / "..data_tmp"
        staged.symlink_to(name)
        staged.rename(tmp_path / "..data")

    def endpoint(name: str, provider: str = "openai") -> str:
        return f"""endpoints:
  - name: {name}
    endpoint_type: llm/v1/chat
    model:
      provider: {provider}
      name: gpt-stub
      config:
        openai_api_key: {STUB_KEY}
        openai_api_base: {openai_stub.base}/v1
"""

    version("v1", endpoint("chat"))
    (tmp_path / "config.yaml").symlink_to("..data/config.yaml")
    port = _free_port()
    server = launch([mlox_binary(), "gateway", "start", "--config-path", str(tmp_path / "config.yaml"),
                     "--host", "127.0.0.1", "--port", str(port)], tmp_path, port, log_name="reload.log")
    try:
        url = server.url
        slow = {}
        openai_stub.delay = 3.0

        def call():
            slow["answer"] = requests.post(f"{url}/endpoints/chat/invocations", timeout=60,
                                           json={"messages": [{"role": "user", "content": "slow"}]})

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)
        version("v2", endpoint("chat-v2"))
        deadline = time.monotonic() + 15
        names = []
        while time.monotonic() < deadline:
            names = [e["name"] for e in requests.get(f"{url}/api/2.0/endpoints/").json()["endpoints"]]
            if names == ["chat-v2"]:
                break
            time.sleep(0.2)
        assert names == ["chat-v2"]
        caller.join(30)
        openai_stub.delay = 0.0
        assert slow["answer"].status_code == 200, slow["answer"].text
        assert slow["answer"].json()["choices"][0]["message"]["content"] == "stub says: slow"
        assert requests.post(f"{url}/endpoints/chat/invocations",
                             json={"messages": [{"role": "user", "content": "x"}]}).status_code == 404

        version("v3", endpoint("broken", provider="no-such-provider"))
        deadline = time.monotonic() + 15
        while "change refused" not in server.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "change refused" in server.log_path.read_text()
        assert [e["name"] for e in requests.get(f"{url}/api/2.0/endpoints/").json()["endpoints"]] == ["chat-v2"]
        answer = requests.post(f"{url}/endpoints/chat-v2/invocations",
                               json={"messages": [{"role": "user", "content": "still"}]})
        assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == "stub says: still"
        # The calls' metrics outlive the reloads.
        metrics = requests.get(f"{url}/metrics").text
        assert 'mlox_gateway_calls_total{endpoint="chat",status="200"} 1' in metrics, metrics
        assert 'mlox_gateway_calls_total{endpoint="chat-v2",status="200"} 1' in metrics, metrics
        assert 'mlox_gateway_tokens_total{endpoint="chat-v2",kind="completion"} 2' in metrics, metrics
    finally:
        openai_stub.delay = 0.0
        server.stop()


def test_limits_hold_across_replicas_sharing_a_store(openai_stub, tmp_path):
    """Two gateway replicas given one --limits-store (PostgreSQL, as in production) count an
    endpoint's calls together, on MLflow's routes and OpenAI's alike; in-process limits would
    let each replica take its own share."""
    import openai

    from conftest import PgDatabase

    config = tmp_path / "config.yaml"
    config.write_text(f"""endpoints:
  - name: shared
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-stub
      config:
        openai_api_key: {STUB_KEY}
        openai_api_base: {openai_stub.base}/v1
    limit:
      renewal_period: minute
      calls: 3
""")
    database = PgDatabase()
    replicas = []
    try:
        for i in range(2):
            port = _free_port()
            replicas.append(launch(
                [mlox_binary(), "gateway", "start", "--config-path", str(config), "--host", "127.0.0.1",
                 "--port", str(port), "--limits-store", database.uri],
                tmp_path, port, log_name=f"replica-{i}.log",
            ))
        body = {"messages": [{"role": "user", "content": "hi"}]}
        answers = [
            requests.post(f"{replicas[i % 2].url}/endpoints/shared/invocations", json=body, timeout=30).status_code
            for i in range(3)
        ]
        assert answers == [200, 200, 200]
        refused = requests.post(f"{replicas[1].url}/endpoints/shared/invocations", json=body, timeout=30)
        assert refused.status_code == 429
        assert "3 per 1 minute" in refused.text
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        client = openai.OpenAI(base_url=f"{replicas[0].url}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="shared", messages=[{"role": "user", "content": "x"}])
    finally:
        for replica in replicas:
            replica.stop()
        database.close()


def test_the_gateway_describes_itself_at_openapi_json_and_docs(gateway):
    """As MLflow's gateway (a FastAPI app) does: the OpenAPI document at /openapi.json and a
    page rendering it at /docs, here listing the config's own endpoint names."""
    doc = requests.get(f"{gateway.url}/openapi.json", timeout=30).json()
    assert doc["openapi"].startswith("3.")
    invoke = doc["paths"]["/endpoints/{name}/invocations"]["post"]
    assert "limited" in invoke["parameters"][0]["schema"]["enum"]
    chat_models = doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["model"]["enum"]
    assert "chat" in chat_models and "embeddings" not in chat_models
    page = requests.get(f"{gateway.url}/docs", timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "openapi.json" in page.text


def test_azure_openai_endpoints_call_their_deployment(openai_stub, tmp_path):
    """MLflow's `azure` provider (OpenAI's config with openai_api_type azure): the deployment and
    API version in the URL, the key in `api-key`, no model in the body."""
    import openai

    config = tmp_path / "config.yaml"
    config.write_text(f"""endpoints:
  - name: azure-chat
    endpoint_type: llm/v1/chat
    model:
      provider: azure
      name: gpt-4o
      config:
        openai_api_type: azure
        openai_api_key: {STUB_KEY}
        openai_api_base: {openai_stub.base}
        openai_deployment_name: prod-gpt4o
        openai_api_version: "2024-06-01"
""")
    port = _free_port()
    server = launch([mlox_binary(), "gateway", "start", "--config-path", str(config), "--host", "127.0.0.1",
                     "--port", str(port)], tmp_path, port, log_name="azure.log")
    try:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        answer = client.chat.completions.create(model="azure-chat", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "stub says: hi"
        path, headers, body = openai_stub.calls[-1]
        assert path == "/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-06-01"
        assert "model" not in body and {k.lower(): v for k, v in headers.items()}["api-key"] == STUB_KEY
    finally:
        server.stop()


def test_text_generation_inference_completions(tmp_path):
    """MLflow's `huggingface-text-generation-inference` provider, against a stand-in for TGI's
    `/generate`: MLflow's request mapping (max_new_tokens, scaled temperature, details) and
    its completions answer with the token counts TGI reports."""
    from mlflow.deployments import get_deploy_client

    seen = []

    def generate(path, headers, body):
        seen.append((path, body))
        return "application/json", json.dumps({"generated_text": " world", "details": {
            "finish_reason": "length", "generated_tokens": 2, "prefill": [{"id": 1}, {"id": 2}]}}).encode()

    tgi = _stand_in(generate)
    server = _gateway_with(f"""endpoints:
  - name: tgi
    endpoint_type: llm/v1/completions
    model:
      provider: huggingface-text-generation-inference
      name: falcon-7b
      config:
        hf_server_url: http://127.0.0.1:{tgi.server_address[1]}
""", tmp_path, "tgi")
    try:
        answer = get_deploy_client(server.url).predict(
            endpoint="tgi", inputs={"prompt": "Hello", "max_tokens": 5, "temperature": 0.2})
        assert answer["choices"][0]["text"] == " world" and answer["model"] == "falcon-7b"
        assert answer["usage"] == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
        path, body = seen[-1]
        assert path == "/generate" and body["inputs"] == "Hello"
        assert body["parameters"]["max_new_tokens"] == 5
        assert body["parameters"]["temperature"] == pytest.approx(10.0)
        refused = requests.post(f"{server.url}/endpoints/tgi/invocations", json={"prompt": "x", "n": 2}, timeout=30)
        assert refused.status_code == 422 and "'n' must be '1'" in refused.json()["detail"]
    finally:
        server.stop()
        tgi.shutdown()


def test_anthropic_chat_through_openai_shapes(tmp_path):
    """MLflow's `anthropic` provider against a stand-in for Anthropic's Messages API (a paid API
    cannot run here): the request as MLflow maps it (system, max_tokens, halved temperature,
    x-api-key and anthropic-version), the answer and a stream in OpenAI's shapes."""
    import openai

    seen = []

    def messages(path, headers, body):
        seen.append((path, headers, body))
        if not body.get("stream"):
            return "application/json", json.dumps({
                "id": "msg_2", "type": "message", "role": "assistant", "model": body["model"],
                "content": [{"type": "text", "text": "Hello!"}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 9, "output_tokens": 3}}).encode()
        events = [
            {"type": "message_start", "message": {"id": "msg_1", "model": body["model"],
                                                   "usage": {"input_tokens": 9, "output_tokens": 0}}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "ping"},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
            {"type": "message_stop"},
        ]
        return "text/event-stream", "".join(
            f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()

    upstream = _stand_in(messages)
    server = _gateway_with(f"""endpoints:
  - name: claude
    endpoint_type: llm/v1/chat
    model:
      provider: anthropic
      name: claude-test
      config:
        anthropic_api_key: ant-key
        anthropic_api_base: http://127.0.0.1:{upstream.server_address[1]}/v1
""", tmp_path, "anthropic")
    try:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        answer = client.chat.completions.create(
            model="claude", temperature=1.0,
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
        assert answer.choices[0].message.content == "Hello!"
        assert answer.choices[0].finish_reason == "stop"
        assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (9, 3)
        path, headers, body = seen[-1]
        assert path == "/v1/messages"
        assert headers["x-api-key"] == "ant-key" and headers["anthropic-version"] == "2023-06-01"
        assert body["system"] == "Be brief." and body["messages"] == [{"role": "user", "content": "Hi"}]
        assert (body["model"], body["max_tokens"], body["temperature"]) == ("claude-test", 8192, 0.5)

        chunks = list(client.chat.completions.create(
            model="claude", stream=True, messages=[{"role": "user", "content": "Hi"}]))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
        assert chunks[-1].choices[0].finish_reason == "stop"
        refused = requests.post(f"{server.url}/endpoints/claude/invocations", timeout=30,
                                json={"messages": [{"role": "user", "content": "x"}], "temperature": 1, "top_p": 0.5})
        assert refused.status_code == 422 and "temperature" in refused.json()["detail"]
    finally:
        server.stop()
        upstream.shutdown()


def _stand_in(answer):
    """A local stand-in for a provider's API: ``answer(path, headers, body)`` returns the
    content type and the bytes of each POST's answer. Returns the server (``shutdown()`` it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            content_type, data = answer(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _gateway_with(config_text: str, tmp_path, name: str):
    config = tmp_path / f"{name}.yaml"
    config.write_text(config_text)
    port = _free_port()
    return launch([mlox_binary(), "gateway", "start", "--config-path", str(config), "--host", "127.0.0.1",
                   "--port", str(port)], tmp_path, port, log_name=f"{name}.log")
