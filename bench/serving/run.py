#!/usr/bin/env python3
"""Side-by-side serving benchmark: `mlox serve` vs MLServer vs `mlflow models serve`.

Builds three MLflow models (seed 001's ElasticNet wine regressor, seed 003's XGBoost breast-cancer
classifier, an echo pyfunc), then starts each server in turn on 127.0.0.1, measures its start-up
(spawn -> every model ready), drives every model with the `mlox-bench` load generator (1 and 100
rows per request, 1 and 16 concurrent connections), records the server's CPU time and memory
(over its whole process tree) and stops it. Finally prints one table with the figures of every
server and the mlox/MLServer and mlox/MLflow ratios. Servers run one after the other so none
competes with another for CPU. The full JSON result lands in bench/out/.

Standard library only; the models are built and the other servers run in their own Python
environments. See bench/README.md for the knobs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import importlib.util
import json
import math
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OUT_DIR = REPO / "bench" / "out"
SERVERS = ["mlox", "mlserver", "mlflow"]
MODELS = ["wine", "cancer", "echo"]
# Models mlox may serve without Python, and the throughput ratio over MLServer at the highest
# concurrency that counts as met; the pyfunc always needs Python, so its bar is lower.
GOALS = {"wine": 50, "cancer": 50, "echo": 3}
STARTUP_GOAL_S = 1.0
# Under this share of one core per client thread the load generator is not what limits req/s.
CLIENT_BUSY = 0.85
MLSERVER_PACKAGES = ["mlserver==1.7.1", "mlserver-mlflow==1.7.1", "uvloop<0.22", "mlflow==3.17.2",
                     "scikit-learn==1.9.1", "xgboost==3.2.0", "pandas", "numpy"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _load_tracking():
    """The tracking benchmark's process-tree memory functions, so both benchmarks measure memory
    the same way."""
    spec = importlib.util.spec_from_file_location("bench_tracking_run", REPO / "bench" / "tracking" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tracking = _load_tracking()
log = tracking.log
tree_memory = tracking.tree_memory
process_tree = tracking.process_tree
MemorySampler = tracking.MemorySampler
free_port = tracking.free_port
MIB = tracking.MIB
fmt_rate = tracking.fmt_rate
fmt_ms = tracking.fmt_ms
fmt_ratio = tracking.fmt_ratio


def tree_cpu_s(roots: list[int]) -> float:
    """User + system seconds of every process below the roots, including children they have
    already reaped, so a worker that exits mid-scenario still counts."""
    total = 0
    for pid in (p for r in roots for p in process_tree(r)):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        # utime, stime, cutime, cstime: fields 14-17 of proc(5), 11-14 after the command name.
        total += sum(int(v) for v in fields[11:15])
    return total / CLK_TCK


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------------------------
# environments


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release"


def model_python() -> Path:
    """The interpreter that builds the models and runs mlox's Python workers and `mlflow models
    serve`: one environment, so all three servers load the same library versions."""
    if os.environ.get("MLOX_PYTHON"):
        return Path(os.environ["MLOX_PYTHON"])
    return Path(os.environ.get("MLFLOW_VENV", REPO / ".venv")) / "bin" / "python"


def mlserver_venv() -> Path:
    return Path(os.environ.get("MLSERVER_VENV", HERE / ".venv-mlserver"))


def setup_mlserver_venv() -> None:
    """MLServer gets an environment of its own: with uvloop 0.22 or newer every MLServer 1.7.1
    worker crashes at start, and the mlflow environment may well have a newer one."""
    venv = mlserver_venv()
    if not (venv / "bin" / "python").exists():
        log(f"$ {sys.executable} -m venv {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, stdout=sys.stderr)
    argv = [str(venv / "bin" / "pip"), "install", *MLSERVER_PACKAGES]
    log(f"$ {shlex.join(argv)}")
    # Progress goes to stderr with the rest of the log: stdout carries only the table.
    subprocess.run(argv, check=True, stdout=sys.stderr)


def cargo_build(packages: list[str]) -> bool:
    argv = ["cargo", "build", "--release"] + [a for p in packages for a in ("-p", p)]
    log(f"$ {shlex.join(argv)}")
    return subprocess.run(argv, cwd=REPO).returncode == 0


def build_models(workdir: Path, models: list[str], rows: list[int]) -> dict:
    python = model_python()
    if not python.exists():
        raise SystemExit(f"{python} missing: create the mlflow environment (see bench/README.md) "
                         "or point MLFLOW_VENV / MLOX_PYTHON at one")
    argv = [str(python), str(HERE / "build_models.py"), str(workdir),
            ",".join(map(str, rows)), ",".join(models)]
    log(f"$ {shlex.join(argv)}")
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"building the models failed:\n{proc.stderr[-4000:]}")
    log(f"models built in {time.monotonic() - started:.1f}s")
    return json.loads((workdir / "expected.json").read_text())


def write_repository(root: Path, models: list[str], model_dir: Path) -> None:
    """An MLServer model repository, read unchanged by `mlox serve` and `mlserver start`."""
    root.mkdir(parents=True, exist_ok=True)
    for name in models:
        (root / name).mkdir(exist_ok=True)
        (root / name / "model-settings.json").write_text(json.dumps({
            "name": name,
            "implementation": "mlserver_mlflow.MLflowRuntime",
            "parameters": {"uri": str(model_dir / name)},
        }, indent=2))


def write_settings(root: Path) -> int:
    """Fresh ports for each server; MLServer's metrics port would otherwise be 8082 for all."""
    http_port = free_port()
    (root / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
    }, indent=2))
    return http_port


# --------------------------------------------------------------------------------------------
# servers


def get_status(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        conn.close()


def post_json(port: int, path: str, body: bytes, timeout: float = 60) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Server:
    """One server process (and whatever it forks) answering on one HTTP port."""

    def __init__(self, label: str, argv: list[str], port: int, ready_path: str, live_path: str,
                 workdir: Path, env: dict[str, str], model_ready: dict[str, str] | None = None):
        self.label, self.argv, self.port = label, argv, port
        self.ready_path, self.live_path = ready_path, live_path
        # Per model, the route that answers 200 once that model is loaded.
        self.model_ready = model_ready or {}
        self.workdir, self.env = workdir, env
        self.logfile = workdir / f"{label}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float) -> dict:
        """Spawns the server; returns seconds from spawn to the first 200 on the live route, on
        each model's ready route and on the server's ready route (every model loaded)."""
        log(f"[{self.label}] start: {shlex.join(self.argv)}")
        t0 = time.monotonic()
        with open(self.logfile, "wb") as out:
            # A session of its own lets stop() reach every process the server forks.
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         cwd=self.workdir, env=self.env)
        live = None
        models: dict[str, float] = {}
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}\n{self.log_tail()}")
            if live is None and get_status(self.port, self.live_path) == 200:
                live = time.monotonic() - t0
            if live is not None:
                for name, path in self.model_ready.items():
                    if name not in models and get_status(self.port, path) == 200:
                        models[name] = time.monotonic() - t0
                if get_status(self.port, self.ready_path) == 200:
                    ready = time.monotonic() - t0
                    return {"live_s": live, "ready_s": ready,
                            "model_ready_s": {n: models.get(n, ready) for n in self.model_ready}}
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout:.0f}s\n{self.log_tail()}")
            time.sleep(0.005)

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            tracking.stop_sessions([self.proc])


# --------------------------------------------------------------------------------------------
# answers


def _close(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)
    return a == b


def check_answer(api: str, body: bytes, model: str, expected: list) -> str | None:
    """None when the answer holds the model's own predictions for the request's rows, else what
    is wrong. A benchmark of wrong answers is worthless."""
    try:
        answer = json.loads(body)
    except ValueError:
        return f"answer is not JSON: {body[:200]!r}"
    n = len(expected)
    if api == "invocations":
        got = answer.get("predictions") if isinstance(answer, dict) else None
        if not isinstance(got, list) or len(got) != n:
            return f"expected {n} predictions, got {str(answer)[:200]}"
        if model == "echo":
            if not all(isinstance(r, dict) and r.keys() == expected[0].keys() for r in got):
                return f"echo returned other columns: {str(got[0])[:200]}"
            # Records are JSON objects: their keys' order carries no meaning.
            columns = list(expected[0].keys())
            flat = [r[c] for r in got for c in columns], [r[c] for r in expected for c in columns]
        else:
            flat = got, expected
    else:
        outputs = answer.get("outputs") if isinstance(answer, dict) else None
        if not outputs:
            return f"no outputs: {str(answer)[:200]}"
        if model == "echo":
            # A frame comes back as one output per column.
            by_name = {o.get("name"): o.get("data") or [] for o in outputs}
            columns = list(expected[0].keys())
            if set(by_name) != set(columns):
                return f"echo returned outputs {sorted(by_name)[:5]}…, not the input's columns"
            flat = ([v for c in columns for v in by_name[c]],
                    [r[c] for c in columns for r in expected])
        else:
            data = outputs[0].get("data")
            if not isinstance(data, list) or len(data) != n:
                return f"expected {n} values in the first output, got {str(outputs[0])[:200]}"
            flat = data, expected
    if len(flat[0]) != len(flat[1]):
        return f"{len(flat[0])} values where {len(flat[1])} were expected"
    for got_v, want in zip(*flat):
        if not _close(got_v, want):
            return f"answer {got_v!r} differs from the model's own prediction {want!r}"
    return None


# --------------------------------------------------------------------------------------------
# driver


def scenario_plan(args) -> list[tuple[int, int]]:
    return [(rows, c) for rows in args.rows for c in args.concurrency]


def run_load(label: str, server: Server, roots: list[int], api: str, model: str, rows: int,
             concurrency: int, args, workdir: Path, loadgen: Path, expected: dict) -> dict:
    """One scenario: a checked request, then the load generator; the server's CPU seconds over
    the load generator's whole run are divided by every request it sent, warm-up included."""
    if api == "v2":
        path = f"/v2/models/{model}/infer"
    elif label == "mlox":
        # A server holding several models needs the model named; `/invocations` alone is
        # refused as ambiguous.
        path = f"/models/{model}/invocations"
    else:
        path = "/invocations"
    body_file = workdir / "bodies" / f"{model}-{rows}.{api}.json"
    entry: dict = {"server": label, "api": api, "model": model, "rows": rows,
                   "concurrency": concurrency, "path": path}
    try:
        status, answer = post_json(server.port, path, body_file.read_bytes())
    except OSError as e:
        entry["error"] = f"check request failed: {e}"
        return entry
    if status != 200:
        entry["error"] = f"check request: status {status}: {answer[:300].decode(errors='replace')}"
        return entry
    entry["check"] = check_answer(api, answer, model, expected[model][str(rows)]) or "ok"
    argv = [str(loadgen), "--label", label, "--url", f"http://127.0.0.1:{server.port}",
            "--scenarios", "post-body", "--path", path, "--body-file", str(body_file),
            "--concurrency", str(concurrency), "--duration-secs", str(args.duration),
            "--warmup-secs", str(args.warmup), "--timeout-secs", str(args.request_timeout),
            "--threads", str(args.client_threads)]
    cpu0, client0, t0 = tree_cpu_s(roots), children_cpu_s(), time.monotonic()
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=args.duration + args.warmup + args.request_timeout + 60)
    except subprocess.TimeoutExpired:
        entry["error"] = "load generator did not finish; the server stopped answering"
        return entry
    wall = time.monotonic() - t0
    cpu = tree_cpu_s(roots) - cpu0
    client = children_cpu_s() - client0
    if proc.returncode != 0:
        entry["error"] = f"load generator failed with {proc.returncode}: {proc.stderr[-500:]}"
        return entry
    (sc,) = json.loads(proc.stdout)["scenarios"]
    sent = sc["http_requests"] + sc["warmup_requests"]
    lat = sc.get("latency_us") or {}
    entry.update({
        "req_per_s": sc["ops_per_s"] if sc["ops"] else None,
        "ops": sc["ops"], "errors": sc["errors"], "error_samples": sc["error_samples"],
        "elapsed_s": sc["elapsed_s"], "requests_sent": sent,
        "latency_us": lat, "p50_us": lat.get("p50"), "p99_us": lat.get("p99"),
        "server_cpu_s": cpu,
        "server_cpu_ms_per_req": 1000 * cpu / sent if sent else None,
        "server_cores_busy": cpu / wall if wall else None,
        "client_cpu_s": client,
        "client_busy": client / wall / args.client_threads if wall else None,
    })
    log(f"[{label}] {model:<7} {api:<11} rows={rows:<4} c={concurrency:<3} "
        f"{fmt_rate(entry['req_per_s']):>8} req/s  p50 {fmt_ms(entry['p50_us']):>8}  "
        f"cpu {fmt_cpu(entry['server_cpu_ms_per_req']):>7} ms/req  client {entry['client_busy']:.0%}"
        + (f"  errors {sc['errors']}" if sc["errors"] else "")
        + ("" if entry["check"] == "ok" else f"  WRONG: {entry['check']}"))
    return entry


def measure_server(label: str, server: Server, models: list[str], apis: list[str], args,
                   workdir: Path, loadgen: Path, expected: dict) -> dict:
    result: dict = {"label": label, "command": server.argv, "models": models}
    try:
        try:
            result.update(server.start(args.startup_timeout))
        except (RuntimeError, OSError) as e:
            log(f"[{label}] did not start: {e}")
            result["log_tail"] = server.log_tail()
            last = result["log_tail"].strip().splitlines()[-1:] or [""]
            result["error"] = f"did not start: {str(e).splitlines()[0]}: {last[0].strip()[:200]}"
            return result
        per_model = ", ".join(f"{n} {t:.3f}s" for n, t in result["model_ready_s"].items())
        log(f"[{label}] ready after {result['ready_s']:.3f}s (live after {result['live_s']:.3f}s"
            + (f"; {per_model}" if per_model else "") + ")")
        roots = [server.proc.pid]
        time.sleep(args.settle)
        result["memory_idle"] = tree_memory(roots)
        sampler = MemorySampler(roots)
        sampler.start()
        scenarios = []
        try:
            for model in models:
                for api in apis:
                    for rows, c in scenario_plan(args):
                        scenarios.append(run_load(label, server, roots, api, model, rows, c, args,
                                                  workdir, loadgen, expected))
        finally:
            peak = sampler.stop()
        result["scenarios"] = scenarios
        time.sleep(args.settle)
        result["memory_end"] = tree_memory(roots)
        result["rss_peak_bytes"] = max(peak, result["memory_end"]["rss_bytes"])
        failed = [s for s in scenarios if "error" in s]
        if failed:
            result["log_tail"] = server.log_tail()
        return result
    finally:
        server.stop()


def bench_mlox(args, workdir: Path, repo: Path, loadgen: Path, expected: dict) -> list[dict]:
    cmd = os.environ.get("MLOX_CMD")
    base = shlex.split(cmd) if cmd else [str(target_dir() / "mlox"), "serve"]
    port = write_settings(repo)
    env = dict(os.environ, MLOX_PYTHON=str(model_python()), MLOX_CACHE_DIR=str(workdir / "mlox-cache"))
    argv = base + [str(repo)] + shlex.split(os.environ.get("MLOX_EXTRA_ARGS", ""))
    server = Server("mlox", argv, port, "/v2/health/ready", "/v2/health/live", workdir, env,
                    {m: f"/v2/models/{m}/ready" for m in args.models})
    return [measure_server("mlox", server, args.models, ["v2", "invocations"], args, workdir,
                           loadgen, expected)]


def bench_mlserver(args, workdir: Path, repo: Path, loadgen: Path, expected: dict) -> list[dict]:
    venv = mlserver_venv()
    exe = venv / "bin" / "mlserver"
    if not exe.exists():
        msg = f"{exe} missing: run bench/serving/run.py --setup (or point MLSERVER_VENV at one)"
        log(f"[mlserver] {msg}")
        return [{"label": "mlserver", "models": args.models, "error": msg}]
    for dist in venv.glob("lib/python*/site-packages/uvloop-*.dist-info"):
        version = tuple(int(x) for x in dist.name.split("-")[1].split(".")[:2] if x.isdigit())
        if version >= (0, 22):
            log(f"[mlserver] WARNING: {dist.name} in {venv}: MLServer 1.7.1's workers crash with "
                "uvloop 0.22 or newer; run with --setup")
    port = write_settings(repo)
    env = dict(os.environ)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("VIRTUAL_ENV", None)
    argv = [str(exe), "start", str(repo)] + shlex.split(os.environ.get("MLSERVER_EXTRA_ARGS", ""))
    server = Server("mlserver", argv, port, "/v2/health/ready", "/v2/health/live", workdir, env,
                    {m: f"/v2/models/{m}/ready" for m in args.models})
    return [measure_server("mlserver", server, args.models, ["v2"], args, workdir, loadgen,
                           expected)]


def bench_mlflow(args, workdir: Path, model_dir: Path, loadgen: Path, expected: dict) -> list[dict]:
    """`mlflow models serve` serves one model, so each model gets its own process, measured on
    its own; the summary adds them up as what serving all of them costs."""
    mlflow_exe = model_python().parent / "mlflow"
    results = []
    for model in args.models:
        port = free_port()
        argv = [str(mlflow_exe), "models", "serve", "-m", str(model_dir / model),
                "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
        argv += shlex.split(os.environ.get("MLFLOW_EXTRA_ARGS", ""))
        label = f"mlflow:{model}"
        env = dict(os.environ)
        # It execs `uvicorn` by name, which only its environment's bin/ provides.
        env["PATH"] = f"{mlflow_exe.parent}{os.pathsep}{env.get('PATH', '')}"
        server = Server(label, argv, port, "/ping", "/ping", workdir, env)
        results.append(measure_server(label, server, [model], ["invocations"], args, workdir,
                                      loadgen, expected))
    return results


# --------------------------------------------------------------------------------------------
# report


def fmt_cpu(ms):
    if ms is None:
        return "n/a"
    return f"{ms:.0f}" if ms >= 100 else (f"{ms:.2f}" if ms >= 0.1 else f"{ms:.3f}")


def ratio(a, b):
    return a / b if a and b else None


def render(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def index_scenarios(results: list[dict]) -> dict:
    """(server kind, api, model, rows, concurrency) -> scenario entry."""
    index = {}
    for res in results:
        kind = res["label"].split(":")[0]
        for sc in res.get("scenarios", []):
            index[(kind, sc["api"], sc["model"], sc["rows"], sc["concurrency"])] = sc
    return index


def cells(sc: dict | None) -> list[str]:
    if sc is None:
        return ["-", "-", "-", "-"]
    if "error" in sc:
        return ["failed", "", "", ""]
    rate = fmt_rate(sc["req_per_s"]) + (f" ({sc['errors']} err)" if sc["errors"] else "")
    if sc.get("check") not in (None, "ok"):
        rate += " WRONG"
    return [rate, fmt_ms(sc["p50_us"]), fmt_ms(sc["p99_us"]), fmt_cpu(sc["server_cpu_ms_per_req"])]


def answered_right(sc: dict | None) -> bool:
    return bool(sc) and "error" not in sc and sc.get("check") == "ok"


def comparison(title: str, api: str, other: str, other_name: str, index: dict, args,
               with_goals: bool, ratios: dict) -> list[str]:
    """Rows of one protocol: mlox beside the server that speaks it too."""
    have = {k[0] for k in index if k[1] == api}
    if not have:
        return []
    head = ["model", "rows", "conc", "mlox req/s", "p50", "p99", "cpu ms/req",
            f"{other_name} req/s", "p50", "p99", "cpu ms/req", "ratio", "cpu ratio"]
    if with_goals:
        head.append("goal")
    head.append("client")
    rows = [head]
    top_c = max(args.concurrency)
    for model in args.models:
        for n, c in scenario_plan(args):
            a = index.get(("mlox", api, model, n, c))
            b = index.get((other, api, model, n, c))
            both = answered_right(a) and answered_right(b)
            r = ratio(a["req_per_s"], b["req_per_s"]) if both else None
            cr = ratio(b["server_cpu_ms_per_req"], a["server_cpu_ms_per_req"]) if both else None
            ratios[f"{api}/{model}/rows={n}/c={c}"] = {"throughput": r, "cpu_per_request": cr}
            row = [model, str(n), str(c), *cells(a), *cells(b), fmt_ratio(r), fmt_ratio(cr)]
            if with_goals:
                goal = GOALS.get(model)
                row.append("" if goal is None or c != top_c or (a is None or b is None) else
                           f">={goal}x " + ("met" if r and r >= goal else "MISSED"))
            # Only the faster server can be held back by the client: show its load on the client.
            busy = [s.get("client_busy") for s in (a, b) if s and s.get("client_busy") is not None]
            row.append(f"{max(busy):.0%}" if busy else "")
            rows.append(row)
    return [title, *render(rows)]


def summary(results: list[dict]) -> list[str]:
    mib = lambda v: "n/a" if v is None else f"{v / MIB:.1f}MiB"  # noqa: E731
    rows = [["server", "models", "live", "ready", "RSS idle", "RSS peak", "RSS end", "PSS end",
             "procs", "checks"]]
    mlflow_sum: dict = {}
    for res in results:
        label = res["label"]
        models = ",".join(res["models"])
        if "ready_s" not in res:
            rows.append([label, models, "failed", "", "", "", "", "", "", res.get("error", "")[:100]])
            continue
        idle, end = res.get("memory_idle", {}), res.get("memory_end", {})
        scenarios = res.get("scenarios", [])
        bad = [s for s in scenarios if "error" in s or s.get("check") != "ok"]
        check = "ok" if scenarios and not bad else (
            f"{len(bad)} of {len(scenarios)} failed: " + (bad[0].get("error") or bad[0].get("check", ""))[:80]
            if bad else "no scenarios")
        rows.append([label, models, f"{res['live_s']:.3f}s", f"{res['ready_s']:.3f}s",
                     mib(idle.get("rss_bytes")), mib(res.get("rss_peak_bytes")),
                     mib(end.get("rss_bytes")), mib(end.get("pss_bytes")),
                     str(idle.get("processes", "")), check])
        if label.startswith("mlflow:"):
            for key, value in (("ready_s", res["ready_s"]), ("idle", idle.get("rss_bytes")),
                               ("peak", res.get("rss_peak_bytes")), ("end", end.get("rss_bytes")),
                               ("pss", end.get("pss_bytes")), ("procs", idle.get("processes"))):
                mlflow_sum[key] = (mlflow_sum.get(key) or 0) + (value or 0)
    if sum(1 for r in results if r["label"].startswith("mlflow:") and "ready_s" in r) > 1:
        rows.append(["mlflow (sum)", "", "", f"{mlflow_sum['ready_s']:.3f}s", mib(mlflow_sum["idle"]),
                     mib(mlflow_sum["peak"]), mib(mlflow_sum["end"]), mib(mlflow_sum["pss"]),
                     str(mlflow_sum["procs"]), "one process per model, started one after another"])
    return render(rows)


def python_import_floor() -> float | None:
    """Seconds the models' interpreter takes to start and import what every pyfunc worker
    imports (the best of three), or None when it cannot run."""
    best = None
    for _ in range(3):
        started = time.monotonic()
        done = subprocess.run([str(model_python()), "-c", "import mlflow.pyfunc, pandas, pyarrow"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if done.returncode != 0:
            return None
        took = time.monotonic() - started
        best = took if best is None else min(best, took)
    return best


def goal_lines(results: list[dict], index: dict, args) -> list[str]:
    lines = []
    mlox = next((r for r in results if r["label"] == "mlox"), None)
    if mlox and "ready_s" in mlox:
        su = mlox["ready_s"]
        lines.append(f"start-up mlox (spawn -> all models ready): {su:.3f}s "
                     f"(goal <{STARTUP_GOAL_S:g}s: {'met' if su < STARTUP_GOAL_S else 'MISSED'}); "
                     f"live after {mlox['live_s']:.3f}s")
        floor = python_import_floor()
        if floor is not None:
            lines.append(f"  a Python model cannot be ready before its interpreter has imported "
                         f"mlflow.pyfunc: {floor:.3f}s here")
    top_c = max(args.concurrency)
    for other, name, api in (("mlserver", "MLServer", "v2"), ("mlflow", "mlflow", "invocations")):
        per_model = []
        for model in args.models:
            pairs = [(index.get(("mlox", api, model, n, top_c)), index.get((other, api, model, n, top_c)))
                     for n in args.rows]
            if not all(a and b for a, b in pairs):
                continue
            if not all(answered_right(a) and answered_right(b) for a, b in pairs):
                per_model.append(f"  {model}: no ratio, a scenario failed or answered wrongly")
                continue
            rs = [ratio(a["req_per_s"], b["req_per_s"]) for a, b in pairs]
            cs = [ratio(b["server_cpu_ms_per_req"], a["server_cpu_ms_per_req"]) for a, b in pairs]
            if None in rs:
                continue
            goal = GOALS.get(model) if other == "mlserver" else None
            verdict = "" if goal is None else (
                f" (goal >={goal}x: {'met' if min(rs) >= goal else 'MISSED'})")
            cpu = "" if None in cs else f"; {name} uses {'/'.join(fmt_ratio(c) for c in cs)} mlox's CPU per request"
            per_model.append(f"  {model}: {'/'.join(fmt_ratio(r) for r in rs)} the req/s{verdict}{cpu}")
        if per_model:
            lines.append(f"mlox vs {name} at c={top_c}, rows {'/'.join(map(str, args.rows))} "
                         f"({'V2 REST' if api == 'v2' else '/invocations'}):")
            lines.extend(per_model)
    busy = [sc for sc in index.values() if (sc.get("client_busy") or 0) > CLIENT_BUSY]
    if busy:
        lines.append(f"WARNING: the load generator used over {CLIENT_BUSY:.0%} of its "
                     f"{args.client_threads} thread(s) in {len(busy)} scenario(s): those req/s are a "
                     "floor for the server, not its ceiling (try --client-threads 2)")
    return lines


def build_report(results: list[dict], args) -> tuple[str, dict]:
    index = index_scenarios(results)
    ratios: dict = {}
    lines = []
    v2 = comparison("V2 REST  POST /v2/models/<model>/infer  (mlox vs MLServer)", "v2", "mlserver",
                    "MLServer", index, args, True, ratios)
    inv = comparison("MLflow scoring  POST /invocations  (mlox vs mlflow models serve)", "invocations",
                     "mlflow", "mlflow", index, args, False, ratios)
    for block in (v2, inv):
        if block:
            lines += block + [""]
    lines += summary(results)
    for res in results:
        if res.get("model_ready_s"):
            lines.append(f"{res['label']} models ready after: "
                         + ", ".join(f"{n} {t:.3f}s" for n, t in res["model_ready_s"].items()))
    lines.append("")
    lines += goal_lines(results, index, args)
    lines.append("")
    lines.append("ratio = mlox req/s / other req/s; cpu ratio = other's server CPU per request / mlox's; "
                 "client = load generator's busy share of its threads")
    return "\n".join(lines), ratios


def parse_list(value: str, known: list[str] | None = None) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if known is not None:
        unknown = [v for v in items if v not in known]
        if unknown:
            raise SystemExit(f"unknown {unknown}; known: {', '.join(known)}")
    if len(items) != len(set(items)):
        raise SystemExit(f"{value!r} names something twice")
    return items


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--servers", default=",".join(SERVERS), help="comma-separated, run in this order")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--concurrency", default="1,16", help="concurrent connections per scenario")
    p.add_argument("--rows", default="1,100", help="rows per request")
    p.add_argument("--duration", type=float, help="measured seconds per scenario (default 5)")
    p.add_argument("--warmup", type=float, help="unmeasured seconds per scenario (default 1)")
    p.add_argument("--quick", action="store_true",
                   help="1 s per scenario after 0.5 s of warm-up, to check the setup works; "
                        "figures are not comparable to a full run")
    p.add_argument("--client-threads", type=int, default=1, help="load generator threads")
    p.add_argument("--setup", action="store_true",
                   help="create or update MLServer's virtualenv ($MLSERVER_VENV, default "
                        "bench/serving/.venv-mlserver), then run")
    p.add_argument("--no-build", action="store_true",
                   help="use the binaries already built in target/release")
    p.add_argument("--startup-timeout", type=float, default=300.0)
    p.add_argument("--request-timeout", type=float, default=60.0)
    p.add_argument("--settle", type=float, default=1.0,
                   help="idle seconds before the idle and end memory readings")
    p.add_argument("--keep-tmp", action="store_true", help="keep the models, bodies and server logs")
    args = p.parse_args()
    defaults = {"duration": 1.0, "warmup": 0.5} if args.quick else {"duration": 5.0, "warmup": 1.0}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    servers = parse_list(args.servers, SERVERS)
    args.models = parse_list(args.models, MODELS)
    args.concurrency = [int(c) for c in parse_list(args.concurrency)]
    args.rows = [int(r) for r in parse_list(args.rows)]
    if min(args.concurrency) < 1 or min(args.rows) < 1:
        raise SystemExit("--concurrency and --rows take positive numbers")

    if args.setup:
        setup_mlserver_venv()
    if not args.no_build:
        if not cargo_build(["mlox-bench"]):
            return 1
        if "mlox" in servers and not os.environ.get("MLOX_CMD") and not cargo_build(["mlox-cli"]):
            log("building mlox failed; its columns will be empty")
    loadgen = target_dir() / "mlox-bench"
    if not loadgen.exists():
        raise SystemExit(f"{loadgen} missing; run without --no-build")

    workdir = Path(tempfile.mkdtemp(prefix="mlox-serving-bench-"))
    results: list[dict] = []
    started = dt.datetime.now()
    try:
        expected = build_models(workdir, args.models, args.rows)
        model_dir, repo = workdir / "models", workdir / "repository"
        write_repository(repo, args.models, model_dir)
        for name in servers:
            if name == "mlox":
                results += bench_mlox(args, workdir, repo, loadgen, expected)
            elif name == "mlserver":
                results += bench_mlserver(args, workdir, repo, loadgen, expected)
            else:
                results += bench_mlflow(args, workdir, model_dir, loadgen, expected)
    finally:
        if args.keep_tmp:
            log(f"models, request bodies and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    report, ratios = build_report(results, args)
    print()
    print(report)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    out = OUT_DIR / f"serving-{stamp}.json"
    out.write_text(json.dumps({"started": started.isoformat(timespec="seconds"),
                               "settings": {**vars(args), "servers": servers},
                               "servers": results, "ratios": ratios}, indent=2))
    (OUT_DIR / f"serving-{stamp}.txt").write_text(report + "\n")
    print(f"\nresults: {out.relative_to(REPO)}")
    complete = all("ready_s" in r and all("error" not in s and s.get("check") == "ok"
                                          for s in r.get("scenarios", [])) for r in results)
    return 0 if complete else 2


if __name__ == "__main__":
    sys.exit(main())
