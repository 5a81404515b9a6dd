#!/usr/bin/env python3
"""Side-by-side LLM gateway benchmark: `mlox gateway start` vs `mlflow gateway start`, both in
front of the same fast OpenAI-compatible upstream on the same machine.

For each gateway in turn (never two at once) it measures start-up time and the memory of the
whole process tree, then, at each open-loop rate, the latency of the upstream called directly
and the latency through the gateway (their difference is the gateway's overhead), then the
closed-loop throughput at a fixed concurrency. One table with both gateways and their ratios
goes to stdout and every number to bench/out/gateway-<timestamp>.json.

Standard library only. See bench/gateway/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import importlib.util
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OUT_DIR = REPO / "bench" / "out"
MIB = 1024 * 1024

# The goals of the issue.
OVERHEAD_GOAL_RATE = 5000
OVERHEAD_P50_GOAL_MS = 0.2
OVERHEAD_P99_GOAL_MS = 1.0
THROUGHPUT_GOAL = 20
RSS_GOAL_FRACTION = 0.10

ENDPOINT = "chat"
UPSTREAM_MODEL = "gpt-4o-mini"
API_KEY_VAR = "BENCH_OPENAI_API_KEY"
MESSAGES = [{"role": "user", "content": "Hello! Say hello back in one short sentence."}]
# What each gateway is asked, per --api, and what it then sends the upstream; the direct runs
# send the upstream that same request, so both sides of the subtraction do the same exchange.
GATEWAY_REQUESTS = {
    "invocations": (f"/endpoints/{ENDPOINT}/invocations", {"messages": MESSAGES}),
    "openai": ("/v1/chat/completions", {"model": ENDPOINT, "messages": MESSAGES}),
}
DIRECT_REQUEST = ("/v1/chat/completions", {"model": UPSTREAM_MODEL, "messages": MESSAGES})
# Fraction of the direct ceiling above which a gateway's throughput says more about the client
# and the upstream sharing its cores than about the gateway.
CEILING_FRACTION = 0.8
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# processes: memory and CPU of a whole tree


def _load_tracking():
    """The tracking benchmark's process-tree memory functions, so every benchmark measures memory
    the same way."""
    spec = importlib.util.spec_from_file_location("bench_tracking_run", REPO / "bench" / "tracking" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tracking = _load_tracking()


def tree_memory(root: int) -> dict:
    """VmRSS (and the stricter PSS) summed over the process and everything it spawned: MLflow's
    gateway is a CLI process, a gunicorn master and its workers, and all of them are its cost."""
    return tracking.tree_memory([root])


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of the live processes of a tree."""
    total = 0
    for pid in tracking.process_tree(root):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def load_average() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


# --------------------------------------------------------------------------------------------
# servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, timeout: float = 1.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Process:
    """A server in a session of its own, so that stop() reaches every process it forks."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path):
        self.name, self.argv, self.env, self.workdir = name, argv, env, workdir
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, port: int, timeout: float) -> float:
        """Spawns the server; seconds from spawn to the first 200 on GET /health."""
        log(f"[{self.name}] start: {shlex.join(self.argv)}")
        t0 = time.monotonic()
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         cwd=self.workdir, env=self.env)
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}\n{self.tail()}")
            try:
                if get(port, "/health")[0] == 200:
                    return time.monotonic() - t0
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"not healthy after {timeout:.0f}s\n{self.tail()}")
            time.sleep(0.005)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            tracking.stop_sessions([self.proc])


class Upstream:
    """upstream.py in a process of its own; answers every POST with one canned completion."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> None:
        argv = [sys.executable, str(HERE / "upstream.py"), "--port", "0"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("listening "):
            raise SystemExit(f"the upstream did not start: {line}")
        self.port = int(line.split()[1])
        log(f"[upstream] listening on 127.0.0.1:{self.port}")

    def stats(self) -> tuple[int, int]:
        """POSTs answered and connections accepted so far; the /stats request's own
        connection is not counted."""
        stats = json.loads(get(self.port, "/stats", timeout=5)[1])
        return stats["requests"], stats["connections"] - 1

    def cpu_s(self) -> float:
        return tree_cpu_s(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def write_config(path: Path, upstream_port: int, literal_key: bool) -> None:
    """An `llm/v1/chat` endpoint of provider `openai` in MLflow's gateway schema; both gateways
    read the same file. The key is read from the environment (`$VAR`) unless asked otherwise,
    as deployments usually do."""
    key = "sk-bench-literal-key" if literal_key else f"${API_KEY_VAR}"
    path.write_text(f"""endpoints:
  - name: {ENDPOINT}
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: {UPSTREAM_MODEL}
      config:
        openai_api_key: "{key}"
        openai_api_base: http://127.0.0.1:{upstream_port}/v1
""")


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env[API_KEY_VAR] = "sk-bench-not-a-real-key"
    # Both gateways refuse private upstream addresses unless told otherwise.
    env["MLFLOW_GATEWAY_API_BASE_ALLOW_PRIVATE_IPS"] = "true"
    # No usage reports leave the machine while it is being measured.
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["DO_NOT_TRACK"] = "true"
    return env


def server_argv(name: str, args, config: Path, port: int) -> list[str]:
    if name == "mlox":
        return [str(args.mlox_bin), "gateway", "start", "--config-path", str(config),
                "--host", "127.0.0.1", "--port", str(port)]
    if name == "mlflow":
        argv = [str(args.mlflow), "gateway", "start", "--config-path", str(config),
                "--host", "127.0.0.1", "--port", str(port)]
        if args.mlflow_workers:
            argv += ["--workers", str(args.mlflow_workers)]
        return argv
    raise SystemExit(f"unknown server {name!r} (known: mlox, mlflow)")


def check_mlflow(mlflow: Path) -> str | None:
    """Why `mlflow gateway start` cannot run, or None. The command exists only when MLflow's
    `gateway` extra is installed (its imports fail silently otherwise)."""
    if not mlflow.exists():
        return f"{mlflow} not found (give --mlflow)"
    try:
        proc = subprocess.run([str(mlflow), "gateway", "start", "--help"], capture_output=True,
                              timeout=120, env=server_env())
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot run {mlflow}: {e}"
    if proc.returncode != 0:
        return ("`mlflow gateway` is not available; install MLflow's gateway extra "
                "(pip install 'mlflow[gateway]==<version>'): "
                + proc.stderr.decode(errors="replace").strip().splitlines()[-1][:200])
    return None


# --------------------------------------------------------------------------------------------
# load


def python_load(port: int, path: str, body: dict, args, *, rate: float | None = None,
                concurrency: int | None = None, duration: float, warmup: float) -> dict:
    argv = [sys.executable, str(HERE / "loadgen.py"), "--url", f"http://127.0.0.1:{port}",
            "--path", path, "--body", json.dumps(body, separators=(",", ":")),
            "--duration", str(duration), "--warmup", str(warmup),
            "--timeout", str(args.request_timeout)]
    if rate:
        argv += ["--rate", str(rate), "--connections", str(args.connections),
                 "--max-connections", str(args.max_connections),
                 "--max-backlog", str(args.max_backlog)]
    else:
        argv += ["--concurrency", str(concurrency)]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=duration + warmup + args.request_timeout + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed: {proc.stderr.decode(errors='replace')[-500:]}")
    report = json.loads(proc.stdout)
    report["client"] = "python"
    return report


def rust_load(loadgen: Path, port: int, path: str, body: dict, args, workdir: Path, *,
              concurrency: int, duration: float, warmup: float) -> dict:
    """The closed loop through `mlox-bench post-body`, which costs the shared cores less CPU per
    request than the Python client; its report is mapped onto loadgen.py's fields."""
    body_file = workdir / "body.json"
    body_file.write_text(json.dumps(body, separators=(",", ":")))
    argv = [str(loadgen), "--url", f"http://127.0.0.1:{port}", "--label", "gateway-bench",
            "--scenarios", "post-body", "--path", path, "--body-file", str(body_file),
            "--concurrency", str(concurrency), "--duration-secs", str(duration),
            "--warmup-secs", str(warmup), "--timeout-secs", str(args.request_timeout),
            "--threads", "1"]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=duration + warmup + args.request_timeout + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"mlox-bench failed: {proc.stderr.decode(errors='replace')[-500:]}")
    s = json.loads(proc.stdout)["scenarios"][0]
    return {"client": "mlox-bench", "mode": "closed", "concurrency": concurrency,
            "ok": s["ops"], "errors": s["errors"], "error_samples": s["error_samples"],
            "window_s": s["elapsed_s"], "rate": s["ops_per_s"], "latency_us": s["latency_us"],
            "sent_total": s["http_requests"] + s["warmup_requests"]}


def pick_throughput_client(choice: str) -> Path | None:
    """The mlox-bench binary to use for the closed loop, or None for the Python client."""
    if choice == "python":
        return None
    loadgen = REPO / "target" / "release" / "mlox-bench"
    usable = False
    if loadgen.exists():
        help_text = subprocess.run([str(loadgen), "--help"], capture_output=True).stdout
        usable = b"--body-file" in help_text
    if choice == "mlox-bench" and not usable:
        raise SystemExit(f"{loadgen} missing or without post-body; build it with "
                         "`cargo build --release -p mlox-bench`")
    return loadgen if usable else None


def closed_loop(port: int, path: str, body: dict, args, rust_loadgen: Path | None,
                workdir: Path) -> dict:
    if rust_loadgen is not None:
        return rust_load(rust_loadgen, port, path, body, args, workdir,
                         concurrency=args.concurrency, duration=args.throughput_duration,
                         warmup=args.warmup)
    return python_load(port, path, body, args, concurrency=args.concurrency,
                       duration=args.throughput_duration, warmup=args.warmup)


class Measured:
    """Runs one load and attributes CPU time and upstream calls to it."""

    def __init__(self, upstream: Upstream, server: Process | None):
        self.upstream, self.server = upstream, server

    def run(self, fn, **kw) -> dict:
        up_cpu0, (up_n0, up_c0) = self.upstream.cpu_s(), self.upstream.stats()
        gw_cpu0 = tree_cpu_s(self.server.proc.pid) if self.server else 0.0
        report = fn(**kw)
        report["upstream_cpu_s"] = self.upstream.cpu_s() - up_cpu0
        up_n1, up_c1 = self.upstream.stats()
        report["upstream_calls"] = up_n1 - up_n0
        # Minus the connection of the first /stats request.
        report["upstream_connections"] = up_c1 - up_c0 - 1
        if self.server:
            report["gateway_cpu_s"] = tree_cpu_s(self.server.proc.pid) - gw_cpu0
        return report


def summarize_run(tag: str, r: dict) -> str:
    lat = r.get("latency_us") or {}
    extra = ""
    if r.get("overloaded"):
        extra = f"  OVERLOADED after {r['overloaded_after_s']:.1f}s"
    cpu = r.get("client_cpu_fraction")
    return (f"{tag:<22} {r['rate']:>9.1f} req/s  err {r['errors']:<5} "
            f"p50 {lat.get('p50', 0) / 1e3:8.3f} ms  p99 {lat.get('p99', 0) / 1e3:8.3f} ms"
            + ("" if cpu is None else f"  client CPU {cpu:.0%}") + extra)


def bench_server(name: str, args, upstream: Upstream, root_tmp: Path, rust_loadgen: Path | None,
                 gw_path: str, gw_body: dict) -> dict:
    workdir = root_tmp / name
    workdir.mkdir(parents=True)
    config = workdir / "config.yaml"
    write_config(config, upstream.port, args.literal_key)
    port = free_port()
    argv = server_argv(name, args, config, port)
    result: dict = {"name": name, "command": argv, "rates": [], "load_average_before": load_average()}
    if name == "mlflow":
        problem = check_mlflow(args.mlflow)
        if problem:
            log(f"[mlflow] {problem}")
            result["error"] = problem
            return result
    server = Process(name, argv, server_env(), workdir)
    try:
        try:
            result["startup_s"] = server.start(port, args.startup_timeout)
        except (RuntimeError, OSError) as e:
            log(f"[{name}] did not start: {e}")
            result["error"] = f"did not start: {e}"
            return result
        log(f"[{name}] healthy after {result['startup_s']:.3f}s on port {port}")
        # One request first: a gateway that cannot reach the upstream fails here, not in a run.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("POST", gw_path, body=json.dumps(gw_body),
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            status, answer = response.status, response.read()
        except OSError as e:
            status, answer = 0, str(e).encode()
        finally:
            conn.close()
        result["probe"] = {"status": status, "body": answer[:500].decode(errors="replace")}
        if status != 200:
            result["error"] = f"probe request answered {status or 'nothing'}: {answer[:300]!r}"
            log(f"[{name}] {result['error']}\n{server.tail()}")
            return result
        time.sleep(args.settle)
        result["memory_idle"] = tree_memory(server.proc.pid)
        sampler = tracking.MemorySampler([server.proc.pid])
        sampler.start()
        direct = Measured(upstream, None)
        through = Measured(upstream, server)
        try:
            for rate in args.rates:
                d = direct.run(python_load, port=upstream.port, path=DIRECT_REQUEST[0],
                               body=DIRECT_REQUEST[1], args=args, rate=rate,
                               duration=args.duration, warmup=args.warmup)
                log(summarize_run(f"[{name}] direct @{rate:g}", d))
                g = through.run(python_load, port=port, path=gw_path, body=gw_body, args=args,
                                rate=rate, duration=args.duration, warmup=args.warmup)
                log(summarize_run(f"[{name}] gateway @{rate:g}", g))
                result["rates"].append({"rate": rate, "direct": d, "gateway": g})
            if args.concurrency:
                d = direct.run(closed_loop, port=upstream.port, path=DIRECT_REQUEST[0],
                               body=DIRECT_REQUEST[1], args=args, rust_loadgen=rust_loadgen,
                               workdir=workdir)
                log(summarize_run(f"[{name}] direct c={args.concurrency}", d))
                g = through.run(closed_loop, port=port, path=gw_path, body=gw_body, args=args,
                                rust_loadgen=rust_loadgen, workdir=workdir)
                log(summarize_run(f"[{name}] gateway c={args.concurrency}", g))
                result["throughput"] = {"direct": d, "gateway": g}
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
            result["error"] = str(e)
            log(f"[{name}] {e}\n{server.tail()}")
        finally:
            peak = sampler.stop()
        time.sleep(args.settle)
        end = tree_memory(server.proc.pid)
        result["memory_end"] = end
        result["rss_peak_bytes"] = max(peak, end["rss_bytes"])
        result["load_average_after"] = load_average()
        return result
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# report


def ms(us) -> str:
    return "n/a" if us is None else f"{us / 1e3:.3f}"


def signed_ms(us) -> str:
    return "n/a" if us is None else f"{us / 1e3:+.3f}"


def pct(lat: dict | None, key: str):
    return None if not lat else lat.get(key)


def diff(a, b):
    return None if a is None or b is None else a - b


def run_notes(r: dict) -> list[str]:
    notes = []
    if r.get("overloaded"):
        notes.append(f"OVERLOADED: stopped after {r['overloaded_after_s']:.1f}s, "
                     f"{r['unsent']} not sent")
    elif r.get("target_rate") and r["rate"] < 0.95 * r["target_rate"]:
        notes.append(f"rate NOT sustained ({r['rate'] / r['target_rate']:.0%} of it)")
    if not r.get("overloaded") and r.get("scheduled") and r.get("queued"):
        share = r["queued"] / max(r["sent_total"], 1)
        if share >= 0.01:
            notes.append(f"{share:.0%} waited for a connection")
    late = pct(r.get("lateness_us"), "p99")
    if late is not None and late > 2000:
        notes.append(f"client late p99 {late / 1e3:.1f}ms")
    if r.get("client_cpu_fraction", 0) > 0.8:
        notes.append(f"client CPU {r['client_cpu_fraction']:.0%}")
    sent = r.get("sent_total")
    calls = r.get("upstream_calls")
    if sent is not None and calls is not None and calls != sent and "gateway_cpu_s" in r:
        notes.append(f"upstream saw {calls} of {sent}")
    return notes


def clean(r: dict) -> bool:
    """Whether an open-loop run kept its schedule: the rate served, no error, and (almost) no
    request waiting for a connection, so that its latencies are those of the server alone."""
    return (not r.get("overloaded") and r["errors"] == 0
            and r["rate"] >= 0.95 * r["target_rate"]
            and r.get("queued", 0) < 0.01 * max(r.get("sent_total", 0), 1))


def cpu_per_request_us(r: dict) -> str:
    sent = r.get("sent_total") or 0
    if "gateway_cpu_s" not in r or not sent:
        return ""
    return f"{r['gateway_cpu_s'] / sent * 1e6:.0f}"


def table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def build_report(results: dict[str, dict], args, ceiling: dict | None) -> tuple[str, dict]:
    verdicts: dict = {}
    lines = []
    names = list(results)

    lines.append(f"Open loop (constant arrival rate), {args.duration:g}s per run after "
                 f"{args.warmup:g}s warm-up; latency in ms from writing the request to reading "
                 "the whole answer. 'direct' is the upstream called without a gateway just "
                 "before; +p50/+p99 = gateway percentile - direct percentile at the same rate.")
    head = ["rate", "run", "req/s", "err", "p50", "p90", "p99", "max", "+p50", "+p99",
            "gw CPU us/req", "upstream conns", "notes"]
    rows = [head]
    for rate in args.rates:
        for name in names:
            entry = next((e for e in results[name].get("rates", []) if e["rate"] == rate), None)
            if entry is None:
                continue
            d, g = entry["direct"], entry["gateway"]
            dl, gl = d.get("latency_us"), g.get("latency_us")
            for label, r, lat in ((f"direct ({name})", d, dl), (name, g, gl)):
                is_gw = r is g
                notes = run_notes(r)
                if is_gw and not clean(d):
                    notes.insert(0, "direct run not clean: difference unreliable")
                rows.append([
                    f"{rate:g}", label, f"{r['rate']:.0f}", str(r["errors"]),
                    ms(pct(lat, "p50")), ms(pct(lat, "p90")), ms(pct(lat, "p99")),
                    ms(pct(lat, "max")),
                    signed_ms(diff(pct(gl, "p50"), pct(dl, "p50"))) if is_gw else "",
                    signed_ms(diff(pct(gl, "p99"), pct(dl, "p99"))) if is_gw else "",
                    cpu_per_request_us(r) if is_gw else "",
                    str(r.get("upstream_connections", "")),
                    "; ".join(notes),
                ])
    lines += table(rows) if len(rows) > 1 else ["(no open-loop run completed)"]

    mlox = results.get("mlox", {})
    at_goal = next((e for e in mlox.get("rates", []) if e["rate"] == OVERHEAD_GOAL_RATE), None)
    if at_goal:
        d, g = at_goal["direct"], at_goal["gateway"]
        o50 = diff(pct(g.get("latency_us"), "p50"), pct(d.get("latency_us"), "p50"))
        o99 = diff(pct(g.get("latency_us"), "p99"), pct(d.get("latency_us"), "p99"))
        # A gateway that falls behind fails the goal, unless the direct run fell behind too:
        # then the machine was busy and the difference means nothing either way.
        gateway_clean, direct_clean = clean(g), clean(d)
        ok50 = o50 is not None and o50 / 1e3 <= OVERHEAD_P50_GOAL_MS
        ok99 = o99 is not None and o99 / 1e3 <= OVERHEAD_P99_GOAL_MS

        def word(ok: bool) -> str:
            if not direct_clean:
                return "inconclusive"
            return "met" if ok and gateway_clean else "MISSED"

        verdicts["overhead_at_5000"] = {
            "p50_ms": None if o50 is None else o50 / 1e3,
            "p99_ms": None if o99 is None else o99 / 1e3,
            "gateway_clean": gateway_clean, "direct_clean": direct_clean,
            "met": gateway_clean and direct_clean and ok50 and ok99}
        lines.append("")
        lines.append(f"mlox overhead at {OVERHEAD_GOAL_RATE} req/s: p50 {signed_ms(o50)} ms "
                     f"(goal <= {OVERHEAD_P50_GOAL_MS} ms: {word(ok50)}), "
                     f"p99 {signed_ms(o99)} ms (goal <= {OVERHEAD_P99_GOAL_MS} ms: {word(ok99)})"
                     + ("" if gateway_clean else
                        "; mlox did NOT keep the rate without errors and queueing")
                     + ("" if direct_clean else
                        "; the direct run did not keep its schedule (busy machine?): run again"))

    if args.concurrency:
        lines.append("")
        client = next((r["throughput"]["gateway"]["client"] for r in results.values()
                       if "throughput" in r), "n/a")
        lines.append(f"Closed loop, {args.concurrency} connections, {args.throughput_duration:g}s "
                     f"after {args.warmup:g}s warm-up (client: {client}); latency in ms.")
        rows = [["run", "req/s", "err", "p50", "p90", "p99", "max", "gw CPU us/req",
                 "upstream conns", "notes"]]
        if ceiling:
            lat = ceiling.get("latency_us")
            rows.append(["direct (before the gateways)", f"{ceiling['rate']:.0f}",
                         str(ceiling["errors"]), ms(pct(lat, "p50")), ms(pct(lat, "p90")),
                         ms(pct(lat, "p99")), ms(pct(lat, "max")), "",
                         str(ceiling.get("upstream_connections", "")),
                         "; ".join(run_notes(ceiling))])
        for name in names:
            t = results[name].get("throughput")
            if not t:
                continue
            for label, r in ((f"direct ({name})", t["direct"]), (name, t["gateway"])):
                lat = r.get("latency_us")
                notes = run_notes(r)
                if r is t["gateway"] and r["rate"] >= CEILING_FRACTION * t["direct"]["rate"]:
                    notes.append("near the client+upstream ceiling: a lower bound")
                rows.append([label, f"{r['rate']:.0f}", str(r["errors"]), ms(pct(lat, "p50")),
                             ms(pct(lat, "p90")), ms(pct(lat, "p99")), ms(pct(lat, "max")),
                             cpu_per_request_us(r) if r is t["gateway"] else "",
                             str(r.get("upstream_connections", "")), "; ".join(notes)])
        lines += table(rows)
        ta = results.get("mlox", {}).get("throughput")
        tb = results.get("mlflow", {}).get("throughput")
        if ta and tb and tb["gateway"]["rate"]:
            ratio = ta["gateway"]["rate"] / tb["gateway"]["rate"]
            errors = ta["gateway"]["errors"] + tb["gateway"]["errors"]
            met = ratio >= THROUGHPUT_GOAL and errors == 0
            verdicts["throughput_ratio"] = {"ratio": ratio, "errors": errors, "met": met}
            lines.append(f"throughput mlox/mlflow: {ratio:.1f}x (goal >= {THROUGHPUT_GOAL}x with "
                         f"0 errors: {'met' if met else 'MISSED'})")

    lines.append("")
    lines.append(f"{'server':<8} {'start-up':>9} {'RSS idle':>10} {'RSS peak':>10} "
                 f"{'RSS end':>10} {'PSS end':>10} {'procs':>5}  load avg before/after")
    mib = lambda v: "n/a" if v is None else f"{v / MIB:.1f}MiB"  # noqa: E731
    for name, res in results.items():
        if "memory_idle" not in res:
            lines.append(f"{name:<8} {'failed':>9}  {res.get('error', '')[:200]}")
            continue
        before = "/".join(f"{x:.1f}" for x in res.get("load_average_before", [])[:1])
        after = "/".join(f"{x:.1f}" for x in res.get("load_average_after", [])[:1])
        lines.append(f"{name:<8} {res['startup_s']:>8.3f}s {mib(res['memory_idle']['rss_bytes']):>10}"
                     f" {mib(res.get('rss_peak_bytes')):>10}"
                     f" {mib(res.get('memory_end', {}).get('rss_bytes')):>10}"
                     f" {mib(res.get('memory_end', {}).get('pss_bytes')):>10}"
                     f" {res['memory_idle']['processes']:>5}  {before} / {after}"
                     + (f"  ERROR: {res['error'][:150]}" if res.get("error") else ""))
    a, b = results.get("mlox", {}), results.get("mlflow", {})
    if a.get("memory_end") and b.get("memory_end"):
        peak = a["rss_peak_bytes"] / b["rss_peak_bytes"]
        end = a["memory_end"]["rss_bytes"] / b["memory_end"]["rss_bytes"]
        met = max(peak, end) <= RSS_GOAL_FRACTION
        verdicts["rss_fraction"] = {"peak": peak, "end": end, "met": met}
        lines.append(f"RSS mlox/mlflow: peak {peak:.3f}, end {end:.3f} "
                     f"(goal <= {RSS_GOAL_FRACTION}: {'met' if met else 'MISSED'})")
        verdicts["startup_ratio"] = a["startup_s"] / b["startup_s"]
    return "\n".join(lines), verdicts


# --------------------------------------------------------------------------------------------
# main


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the None of options whose default depends on --quick."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--servers", default="mlox,mlflow", help="gateways to run, in order")
    p.add_argument("--mlox-bin", type=Path, default=REPO / "target" / "release" / "mlox",
                   help="the mlox executable")
    p.add_argument("--mlflow", type=Path, default=REPO / ".venv" / "bin" / "mlflow",
                   help="the mlflow executable (its `gateway` extra installed)")
    p.add_argument("--mlflow-workers", type=int,
                   help="--workers for mlflow gateway start (default: MLflow's own default)")
    p.add_argument("--rates", default="100,1000,5000", help="open-loop rates, requests/s")
    p.add_argument("--duration", type=float, help="measured seconds per open-loop run (default 10, --quick 2)")
    p.add_argument("--warmup", type=float, help="unmeasured seconds before each run (default 2, --quick 0.5)")
    p.add_argument("--throughput-duration", type=float,
                   help="measured seconds of the closed-loop runs (default 10, --quick 3)")
    p.add_argument("--concurrency", type=int, default=32,
                   help="connections of the closed-loop throughput run (0 skips it)")
    p.add_argument("--throughput-client", choices=["auto", "python", "mlox-bench"], default="auto",
                   help="client of the closed loop; auto takes target/release/mlox-bench when "
                        "it is built, else the Python client")
    p.add_argument("--api", choices=sorted(GATEWAY_REQUESTS), default="invocations",
                   help="gateway route: MLflow's /endpoints/<name>/invocations or OpenAI's "
                        "/v1/chat/completions")
    p.add_argument("--connections", type=int, default=32,
                   help="open loop: connections opened before the clock starts")
    p.add_argument("--max-connections", type=int, default=64,
                   help="open loop: connections at most; further due requests wait for one")
    p.add_argument("--max-backlog", type=float, default=2.0,
                   help="open loop: give up on a rate once a due request has waited this many "
                        "seconds for a connection (the server cannot keep up)")
    p.add_argument("--literal-key", action="store_true",
                   help="write the API key into the config instead of `$" + API_KEY_VAR + "`")
    p.add_argument("--quick", action="store_true",
                   help="2 s runs after 0.5 s warm-up, to check the setup; not comparable to a "
                        "full run")
    p.add_argument("--settle", type=float, default=1.0,
                   help="idle seconds before the idle and end memory readings")
    p.add_argument("--startup-timeout", type=float, default=120.0)
    p.add_argument("--request-timeout", type=float, default=30.0)
    p.add_argument("--keep-tmp", action="store_true", help="keep configs and server logs")
    args = p.parse_args()
    defaults = ({"duration": 2.0, "warmup": 0.5, "throughput_duration": 3.0} if args.quick else
                {"duration": 10.0, "warmup": 2.0, "throughput_duration": 10.0})
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    try:
        args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        raise SystemExit(f"--rates takes numbers, got {args.rates!r}")
    if any(r <= 0 for r in args.rates):
        raise SystemExit("--rates must be positive")
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if len(servers) != len(set(servers)) or set(servers) - {"mlox", "mlflow"}:
        raise SystemExit("--servers takes mlox and/or mlflow, each once")
    if "mlox" in servers and not args.mlox_bin.exists():
        raise SystemExit(f"{args.mlox_bin} not found: build it with "
                         "`cargo build --release -p mlox-cli`, or give --mlox-bin")
    rust_loadgen = pick_throughput_client(args.throughput_client) if args.concurrency else None
    gw_path, gw_body = GATEWAY_REQUESTS[args.api]

    cpus = os.cpu_count()
    load = load_average()
    if load and cpus and load[0] > 0.5 * cpus:
        log(f"warning: load average {load[0]:.1f} on {cpus} CPUs; other work on the machine "
            "will show in the latencies")

    started = dt.datetime.now()
    root_tmp = Path(tempfile.mkdtemp(prefix="mlox-gateway-bench-"))
    upstream = Upstream(root_tmp)
    results: dict[str, dict] = {}
    ceiling = None
    try:
        upstream.start()
        if args.concurrency:
            # How fast the client and the upstream go on their own: no gateway can be measured
            # above this on the same cores.
            try:
                ceiling = Measured(upstream, None).run(
                    closed_loop, port=upstream.port, path=DIRECT_REQUEST[0],
                    body=DIRECT_REQUEST[1], args=args, rust_loadgen=rust_loadgen,
                    workdir=root_tmp)
                log(summarize_run(f"[upstream] c={args.concurrency}", ceiling))
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                log(f"[upstream] the direct closed-loop run failed: {e}")
        for name in servers:
            results[name] = bench_server(name, args, upstream, root_tmp, rust_loadgen, gw_path,
                                         gw_body)
    finally:
        upstream.stop()
        if args.keep_tmp:
            log(f"configs and logs kept in {root_tmp}")
        else:
            shutil.rmtree(root_tmp, ignore_errors=True)

    text, verdicts = build_report(results, args, ceiling)
    header = (f"gateway benchmark {started.isoformat(timespec='seconds')}, {cpus} CPUs, "
              f"load average at start {load[0] if load else 'n/a'}; api={args.api}")
    print()
    print(header)
    print(text)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    out = OUT_DIR / f"gateway-{stamp}.json"
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings["servers"] = servers
    out.write_text(json.dumps({"started": started.isoformat(timespec="seconds"), "cpus": cpus,
                               "settings": settings, "upstream_ceiling": ceiling,
                               "servers": results, "verdicts": verdicts}, indent=2))
    (OUT_DIR / f"gateway-{stamp}.txt").write_text(header + "\n" + text + "\n")
    print(f"\nresults: {out.relative_to(REPO)}")
    return 0 if all("error" not in r for r in results.values()) else 2


if __name__ == "__main__":
    sys.exit(main())
