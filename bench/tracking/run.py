#!/usr/bin/env python3
"""Side-by-side tracking benchmark: mlox vs `mlflow server`.

Starts each server in turn on 127.0.0.1 with a fresh backend store, measures its start-up time
(spawn -> first 200 on /health) and memory (VmRSS/VmHWM of its whole process tree), drives it with
the `mlox-bench` load generator, stops it, and finally prints one table with both servers and the
mlox/MLflow ratios. Servers run one after the other so neither competes with the other for CPU.
The full JSON result lands in bench/out/.

Standard library only. See bench/README.md for the knobs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "bench" / "out"
SCENARIOS = ["log-batch-10", "log-batch-1000", "log-metric", "create-run", "search-runs", "get-history",
             "search-traces", "ingest-spans"]
# The goals, by scenario: mlox/MLflow throughput ratio that counts as met (for
# ingest-spans, of spans per second).
GOALS = {"log-batch-10": 20, "log-batch-1000": 20, "log-metric": 20, "search-runs": 50,
         "search-traces": 50, "ingest-spans": 20}
# The issue asks for 100k traces, but MLflow takes a trace tag one request at a time (about 110
# a second on two cores), so that fixture alone would keep it busy over 20 minutes; 60k keeps it
# near 12. See bench/README.md.
FULL_SEARCH_TRACES = 60_000
STARTUP_GOAL_S = 0.5
RSS_GOAL_FRACTION = 0.10
MIB = 1024 * 1024


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# process memory


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        # The command name may contain spaces and parentheses; fields resume after the last ')'.
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(root: int) -> list[int]:
    children = _children_map()
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(roots: list[int]) -> dict:
    """RSS and high-water mark summed over every process each root spawned (MLflow runs a CLI,
    a uvicorn master, its workers and a job runner; all of them are the cost of the server).
    Summed RSS counts pages shared between those processes once per process, so PSS (shared
    pages split between their users) is recorded too as the stricter figure."""
    pids = [p for r in roots for p in process_tree(r)]
    return {
        "processes": len(pids),
        "rss_bytes": sum(_status_kib(p, "VmRSS") for p in pids) * 1024,
        "hwm_bytes": sum(_status_kib(p, "VmHWM") for p in pids) * 1024,
        "pss_bytes": sum(_pss_kib(p) for p in pids) * 1024,
    }


class MemorySampler(threading.Thread):
    """Samples the summed RSS of the server's tree a few times a second; the maximum is the peak
    of the whole tree, which per-process VmHWM values cannot give (their peaks need not coincide)."""

    def __init__(self, roots: list[int], interval: float = 0.2):
        super().__init__(daemon=True)
        self.roots, self.interval = roots, interval
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, tree_memory(self.roots)["rss_bytes"])
            self._stop_event.wait(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join(timeout=5)
        return self.peak


# --------------------------------------------------------------------------------------------
# servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_ok(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


class Server:
    """One or more processes of one server kind sharing one backend store."""

    def __init__(self, name: str, cmd: list[str], extra: list[str], store_uri: str, workdir: Path,
                 replicas: int):
        self.name, self.cmd, self.extra = name, cmd, extra
        self.store_uri, self.workdir, self.replicas = store_uri, workdir, replicas
        self.procs: list[subprocess.Popen] = []
        self.ports: list[int] = []
        self.logs: list[Path] = []

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def start(self, timeout: float) -> float:
        """Spawns every replica and returns seconds from the first spawn to the last /health 200."""
        t0 = time.monotonic()
        for i in range(self.replicas):
            port = free_port()
            art = self.workdir / f"artifacts-{i}" if self.replicas > 1 else self.workdir / "artifacts"
            argv = self.cmd + ["--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", self.store_uri,
                               "--artifacts-destination", str(art)] + self.extra
            logf = self.workdir / f"server-{i}.log"
            log(f"[{self.name}] start: {shlex.join(argv)}")
            with open(logf, "wb") as out:
                # A session of its own lets stop() reach every process the server forks.
                proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        cwd=self.workdir)
            self.procs.append(proc)
            self.ports.append(port)
            self.logs.append(logf)
        pending = set(range(self.replicas))
        deadline = t0 + timeout
        while pending:
            for i in list(pending):
                if self.procs[i].poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.procs[i].returncode}\n"
                                       + self.log_tail(i))
                if health_ok(self.ports[i]):
                    pending.discard(i)
            if not pending:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not healthy after {timeout:.0f}s\n" + self.log_tail(0))
            time.sleep(0.005)
        return time.monotonic() - t0

    def log_tail(self, i: int, lines: int = 20) -> str:
        try:
            return "\n".join(self.logs[i].read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        stop_sessions(self.procs)


def stop_sessions(procs: list[subprocess.Popen]) -> None:
    """Stops servers started with `start_new_session=True`: SIGTERM to each session, a grace
    period, then SIGKILL to the session either way, since workers may outlive their parent and the
    next server should have the machine to itself."""
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


# --------------------------------------------------------------------------------------------
# driver


def cargo_build(packages: list[str]) -> bool:
    argv = ["cargo", "build", "--release"] + [a for p in packages for a in ("-p", p)]
    log(f"$ {shlex.join(argv)}")
    return subprocess.run(argv, cwd=REPO).returncode == 0


# `<server>-auth` runs that server with its basic-auth app; the load comes from a plain
# (non-admin) user, so every request pays sign-in and the permission check.
AUTH_SUFFIX = "-auth"
BENCH_ADMIN_PASSWORD = "bench-admin-password"
BENCH_USER = ("bench-user", "bench-user-password")


def split_auth(name: str) -> tuple[str, bool]:
    if name.endswith(AUTH_SUFFIX):
        return name[: -len(AUTH_SUFFIX)], True
    return name, False


def auth_environment(workdir: Path, base: str) -> dict[str, str]:
    """The environment that turns a server's basic-auth app on, with its own admin password.
    MLflow keeps users in a SQLite file of its own; mlox in the tracking database."""
    ini = workdir / "basic_auth.ini"
    lines = ["[mlflow]", "default_permission = READ", "admin_username = admin"]
    if base == "mlflow":
        lines.append(f"database_uri = sqlite:///{workdir / 'basic_auth.db'}")
    ini.write_text("\n".join(lines) + "\n")
    return {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_PASSWORD": BENCH_ADMIN_PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "bench-secret-key"}


def create_bench_user(url: str) -> None:
    import base64
    from urllib.parse import urlparse

    target = urlparse(url)
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
    token = base64.b64encode(f"admin:{BENCH_ADMIN_PASSWORD}".encode()).decode()
    body = json.dumps({"username": BENCH_USER[0], "password": BENCH_USER[1]})
    conn.request("POST", "/api/2.0/mlflow/users/create", body=body,
                 headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"})
    response = conn.getresponse()
    text = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"creating the bench user failed: {response.status} {text[:300]!r}")


def server_command(name: str, args) -> tuple[list[str], list[str]]:
    name, auth = split_auth(name)
    if auth:
        base, extra = server_command(name, args)
        return base, extra + ["--app-name", "basic-auth"]
    if name == "mlox":
        cmd = os.environ.get("MLOX_CMD")
        base = shlex.split(cmd) if cmd else [str(REPO / "target" / "release" / "mlox"), "server"]
        extra = shlex.split(os.environ.get("MLOX_EXTRA_ARGS", ""))
        return base, extra
    if name == "mlflow":
        cmd = os.environ.get("MLFLOW_CMD")
        if cmd:
            base = shlex.split(cmd)
        else:
            venv = Path(os.environ.get("MLFLOW_VENV", REPO / ".venv"))
            base = [str(venv / "bin" / "mlflow"), "server"]
        extra = ["--serve-artifacts"] + shlex.split(os.environ.get("MLFLOW_EXTRA_ARGS", ""))
        return base, extra
    raise SystemExit(f"unknown server {name!r} (known: mlox, mlflow, and either with -auth)")


def store_uri(name: str, args, workdir: Path) -> str:
    if args.backend == "sqlite":
        return f"sqlite:///{workdir / (name + '.db')}"
    if not args.dsn:
        raise SystemExit("--backend postgresql needs --dsn (may contain {server})")
    # Each server needs an empty database of its own; the template keeps them apart.
    return args.dsn.format(server=name)


def bench_one(name: str, args, loadgen: Path, root_tmp: Path) -> dict:
    workdir = root_tmp / name
    workdir.mkdir(parents=True)
    cmd, extra = server_command(name, args)
    replicas = args.replicas if name == "mlox" else 1
    server = Server(name, cmd, extra, store_uri(name, args, workdir), workdir, replicas)
    base, auth = split_auth(name)
    saved_env = dict(os.environ)
    if auth:
        os.environ.update(auth_environment(workdir, base))
    result: dict = {"name": name, "command": cmd + extra, "replicas": replicas,
                    "backend": args.backend}
    try:
        try:
            result["startup_s"] = server.start(args.startup_timeout)
        except (RuntimeError, OSError) as e:
            log(f"[{name}] did not start: {e}")
            result["error"] = f"did not start: {e}"
            return result
        log(f"[{name}] healthy after {result['startup_s']:.3f}s on {','.join(server.urls)}")
        urls = server.urls
        if auth:
            create_bench_user(urls[0])
            user, password = BENCH_USER
            urls = [u.replace("http://", f"http://{user}:{password}@", 1) for u in urls]
        roots = [p.pid for p in server.procs]
        time.sleep(args.settle)
        result["memory_idle"] = tree_memory(roots)
        sampler = MemorySampler(roots)
        sampler.start()
        argv = [str(loadgen), "--label", name, "--url", ",".join(urls),
                "--scenarios", ",".join(args.scenarios),
                "--concurrency", str(args.concurrency),
                "--duration-secs", str(args.duration), "--warmup-secs", str(args.warmup),
                "--search-runs", str(args.search_runs),
                "--history-points", str(args.history_points),
                "--search-traces", str(args.search_traces),
                "--timeout-secs", str(args.request_timeout)]
        if args.requests:
            argv += ["--requests", str(args.requests)]
        log(f"[{name}] $ {shlex.join(argv)}")
        try:
            proc = subprocess.run(argv, stdout=subprocess.PIPE, timeout=args.loadgen_timeout)
        finally:
            peak = sampler.stop()
        if proc.returncode != 0:
            result["error"] = f"load generator failed with {proc.returncode}"
            log(f"[{name}] {result['error']}\n{server.log_tail(0)}")
        else:
            result["report"] = json.loads(proc.stdout)
        time.sleep(args.settle)
        end = tree_memory(roots)
        result["memory_end"] = end
        result["rss_peak_bytes"] = max(peak, end["rss_bytes"])
        return result
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved_env)


def fmt_rate(v):
    if v is None:
        return "n/a"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def fmt_ms(us):
    if us is None:
        return "n/a"
    ms = us / 1000
    return f"{ms:.0f}ms" if ms >= 100 else f"{ms:.2f}ms"


def fmt_ratio(r):
    if r is None:
        return "n/a"
    return f"{r:.0f}x" if r >= 10 else f"{r:.2f}x"


def scenario_row(result: dict, scenario: str):
    """Throughput (spans/s for a scenario that sends spans, else operations/s), p50, p99, errors."""
    report = result.get("report") or {}
    for s in report.get("scenarios", []):
        if s["name"] == scenario:
            lat = s.get("latency_us") or {}
            rate = s.get("spans_per_s", s["ops_per_s"]) if s["ops"] else None
            return rate, lat.get("p50"), lat.get("p99"), s["errors"]
    return None, None, None, None


def scenario_label(results: dict[str, dict], scenario: str) -> str:
    """The scenario's name, marked when its rate column counts spans rather than requests."""
    for res in results.values():
        for s in (res.get("report") or {}).get("scenarios", []):
            if s["name"] == scenario and s.get("spans_per_op"):
                return f"{scenario} (spans/s)"
    return scenario


def ratio(a, b):
    return a / b if a and b else None


def build_table(results: dict[str, dict], args) -> tuple[str, dict]:
    names = list(results)
    a = names[0]
    b = names[1] if len(names) > 1 else None
    ratios: dict = {}
    head = ["scenario", f"{a} req/s", "p50", "p99"]
    if b:
        head += [f"{b} req/s", "p50", "p99", f"{a}/{b}", "goal"]
    rows = [head]
    for sc in args.scenarios:
        ra, p50a, p99a, ea = scenario_row(results[a], sc)
        row = [scenario_label(results, sc), fmt_rate(ra) + (f" ({ea} err)" if ea else ""),
               fmt_ms(p50a), fmt_ms(p99a)]
        if b:
            rb, p50b, p99b, eb = scenario_row(results[b], sc)
            r = ratio(ra, rb)
            ratios[sc] = r
            goal = GOALS.get(sc)
            verdict = "" if goal is None else (f">={goal}x " + ("met" if r and r >= goal else "MISSED"))
            row += [fmt_rate(rb) + (f" ({eb} err)" if eb else ""), fmt_ms(p50b), fmt_ms(p99b),
                    fmt_ratio(r), verdict]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))

    lines.append("")
    lines.append(f"{'server':<8} {'start-up':>9} {'RSS idle':>10} {'RSS peak':>10} {'RSS end':>10}"
                 f" {'PSS end':>10} {'procs':>5}  checks")
    for name, res in results.items():
        if "startup_s" not in res:
            lines.append(f"{name:<8} {'failed':>9}  {res.get('error', '')[:100]}")
            continue
        idle = res.get("memory_idle", {}).get("rss_bytes")
        end = res.get("memory_end", {}).get("rss_bytes")
        pss = res.get("memory_end", {}).get("pss_bytes")
        peak = res.get("rss_peak_bytes")
        procs = res.get("memory_idle", {}).get("processes", 0)
        checks = (res.get("report") or {}).get("checks", {})
        problems = checks.get("problems") or []
        check = "ok" if res.get("report") and not problems else ("; ".join(problems) or res.get("error", ""))
        mib = lambda v: "n/a" if v is None else f"{v / MIB:.1f}MiB"  # noqa: E731
        lines.append(f"{name:<8} {res['startup_s']:>8.3f}s {mib(idle):>10} {mib(peak):>10}"
                     f" {mib(end):>10} {mib(pss):>10} {procs:>5}  {check}")
    fixture_lines = []
    for name, res in results.items():
        fixture = (res.get("report") or {}).get("fixture") or {}
        if fixture.get("trace_ingest_s") is not None:
            retried = fixture.get("trace_setup_retries") or 0
            fixture_lines.append(f"trace fixture {name}: {fixture['search_traces']:,} traces exported in "
                                 f"{fixture['trace_ingest_s']:.1f}s, tagged in {fixture['trace_tag_s']:.1f}s"
                                 + (f" ({retried} busy answers retried)" if retried else ""))
    if fixture_lines:
        lines.append("")
        lines.extend(fixture_lines)
    if b and "startup_s" in results[a] and "startup_s" in results[b]:
        ra, rb = results[a], results[b]
        peak_frac = ratio(ra.get("rss_peak_bytes"), rb.get("rss_peak_bytes"))
        end_frac = ratio(ra.get("memory_end", {}).get("rss_bytes"), rb.get("memory_end", {}).get("rss_bytes"))
        ratios["startup"] = ratio(ra["startup_s"], rb["startup_s"])
        ratios["rss_peak_fraction"] = peak_frac
        ratios["rss_end_fraction"] = end_frac
        lines.append("")
        su = ra["startup_s"]
        lines.append(f"start-up {a}: {su:.3f}s (goal <{STARTUP_GOAL_S}s: "
                     f"{'met' if su < STARTUP_GOAL_S else 'MISSED'}); {b}: {rb['startup_s']:.3f}s")
        if peak_frac is not None and end_frac is not None:
            lines.append(f"RSS {a}/{b}: peak {peak_frac:.3f}, end {end_frac:.3f} "
                         f"(goal <={RSS_GOAL_FRACTION}: "
                         f"{'met' if max(peak_frac, end_frac) <= RSS_GOAL_FRACTION else 'MISSED'})")
    return "\n".join(lines), ratios


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--servers", default="mlox,mlflow",
                   help="comma-separated servers, first is the numerator of the ratio")
    p.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--dsn", help="PostgreSQL URI template for --backend postgresql; '{server}' "
                   "is replaced by the server name so each server gets its own empty database")
    p.add_argument("--replicas", type=int, default=1,
                   help="mlox processes sharing one backend store; load is spread over them")
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--duration", type=float, help="measured seconds per scenario (default 5)")
    p.add_argument("--warmup", type=float, help="unmeasured seconds per scenario (default 1)")
    p.add_argument("--requests", type=int, help="cap on measured operations per scenario")
    p.add_argument("--search-runs", type=int, help="runs searched by search-runs (default 10000)")
    p.add_argument("--history-points", type=int,
                   help="points read back by get-history (default 100000)")
    p.add_argument("--search-traces", type=int,
                   help=f"traces searched by search-traces (default {FULL_SEARCH_TRACES})")
    p.add_argument("--quick", action="store_true",
                   help="small fixtures and short scenarios, for trying the setup out "
                        "(1000 runs, 10k points, 2000 traces, 2 s); figures are not comparable to "
                        "a full run")
    p.add_argument("--no-build", action="store_true", help="use the binaries already in target/release")
    p.add_argument("--startup-timeout", type=float, default=180.0)
    p.add_argument("--request-timeout", type=float, default=300.0)
    p.add_argument("--loadgen-timeout", type=float, default=3 * 3600.0)
    p.add_argument("--settle", type=float, default=1.0,
                   help="idle seconds before the idle and end memory readings")
    p.add_argument("--keep-tmp", action="store_true", help="keep the stores and server logs")
    args = p.parse_args()
    # --quick only changes what was not given explicitly.
    defaults = ({"search_runs": 1000, "history_points": 10_000, "search_traces": 2000,
                 "duration": 2.0, "warmup": 0.5}
                if args.quick else
                {"search_runs": 10_000, "history_points": 100_000,
                 "search_traces": FULL_SEARCH_TRACES, "duration": 5.0, "warmup": 1.0})
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios: {sorted(unknown)}")
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if len(servers) != len(set(servers)):
        raise SystemExit("each server may appear once in --servers")

    if not args.no_build:
        if not cargo_build(["mlox-bench"]):
            return 1
        if any(split_auth(s)[0] == "mlox" for s in servers) and not os.environ.get("MLOX_CMD") and not cargo_build(["mlox-cli"]):
            log("building mlox failed; its column will be empty")
    loadgen = REPO / "target" / "release" / "mlox-bench"
    if not loadgen.exists():
        raise SystemExit(f"{loadgen} missing; run without --no-build")

    root_tmp = Path(tempfile.mkdtemp(prefix="mlox-bench-"))
    results: dict[str, dict] = {}
    started = dt.datetime.now()
    try:
        for name in servers:
            results[name] = bench_one(name, args, loadgen, root_tmp)
    finally:
        if args.keep_tmp:
            log(f"stores and logs kept in {root_tmp}")
        else:
            shutil.rmtree(root_tmp, ignore_errors=True)

    table, ratios = build_table(results, args)
    print()
    print(table)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    out = OUT_DIR / f"tracking-{args.backend}-{stamp}.json"
    settings = {k: v for k, v in vars(args).items() if k not in ("dsn",)}
    out.write_text(json.dumps({"started": started.isoformat(timespec="seconds"),
                               "settings": settings, "servers": results, "ratios": ratios},
                              indent=2))
    (OUT_DIR / f"tracking-{args.backend}-{stamp}.txt").write_text(table + "\n")
    print(f"\nresults: {out.relative_to(REPO)}")
    return 0 if all("report" in r for r in results.values()) else 2


if __name__ == "__main__":
    sys.exit(main())
