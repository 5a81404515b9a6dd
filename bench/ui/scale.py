#!/usr/bin/env python3
"""How the web UI copes at scale: 100k runs and a 1M-point metric, in headless Chromium.

Starts `mlox server` (release build) on a fresh SQLite store, fills it through the REST API
(runs with params, metrics and tags; one run with a million-step metric), then opens the UI in
Chromium and reports how long each view takes to become usable:

* runs table: navigation -> first rows rendered; and a scroll to the end of the loaded rows ->
  the next page rendered;
* filtered + sorted table: a filter and a metric order-by, answered by the server;
* metric chart: navigation -> the 1M-point history drawn (sampled on the server).

Usage: bench/ui/scale.py [--runs 100000] [--points 1000000] [--mlox target/release/mlox]
Needs the suite's venv (playwright) and Chromium; see bench/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
API = "/api/2.0/mlflow"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive connection per thread."""

    local = threading.local()

    def __init__(self, port: int):
        self.port = port

    def post(self, path: str, body: dict) -> dict:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.request("POST", API + path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{path}: {resp.status} {data[:300]!r}")
        return json.loads(data or b"{}")


def fill(client: Client, runs: int, points: int, threads: int) -> tuple[str, str]:
    exp = client.post("/experiments/create", {"name": f"scale-{os.getpid()}"})["experiment_id"]
    start = int(time.time() * 1000) - runs * 1000
    models = ["tree", "linear", "boost", "forest"]
    done = [0]
    lock = threading.Lock()

    def one(i: int) -> None:
        rng = random.Random(i)
        run = client.post(
            "/runs/create",
            {"experiment_id": exp, "run_name": f"run-{i:06d}", "start_time": start + i * 1000},
        )["run"]["info"]["run_id"]
        ts = start + i * 1000 + 500
        client.post(
            "/runs/log-batch",
            {
                "run_id": run,
                "params": [
                    {"key": "lr", "value": str(round(rng.uniform(0.001, 0.1), 4))},
                    {"key": "depth", "value": str(rng.randint(2, 12))},
                    {"key": "model", "value": models[i % 4]},
                ],
                "metrics": [
                    {"key": "rmse", "value": rng.uniform(0.1, 2.0), "timestamp": ts, "step": 0},
                    {"key": "r2", "value": rng.uniform(0, 1), "timestamp": ts, "step": 0},
                    {"key": "loss", "value": rng.uniform(0, 5), "timestamp": ts, "step": 0},
                ],
                "tags": [{"key": "team", "value": "scale"}],
            },
        )
        client.post("/runs/update", {"run_id": run, "status": "FINISHED", "end_time": ts + 400})
        with lock:
            done[0] += 1
            if done[0] % 10000 == 0:
                log(f"  {done[0]} runs")

    t0 = time.time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(runs)))
    log(f"filled {runs} runs in {time.time() - t0:.0f} s")

    long_run = client.post("/runs/create", {"experiment_id": exp, "run_name": "long-history", "start_time": start})["run"]["info"]["run_id"]
    t0 = time.time()

    def chunk(first: int) -> None:
        client.post(
            "/runs/log-batch",
            {
                "run_id": long_run,
                "metrics": [
                    {"key": "train_loss", "value": 5.0 / (1 + s / 1000) + 0.05 * ((s * 7919) % 13) / 13, "timestamp": start + s, "step": s}
                    for s in range(first, min(first + 1000, points))
                ],
            },
        )

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(chunk, range(0, points, 1000)))
    log(f"logged {points} points in {time.time() - t0:.0f} s")
    return exp, long_run


def measure(base: str, exp: str, long_run: str, chromium: str) -> dict:
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(120_000)

        def timed(name: str, action, ready: str) -> None:
            t0 = time.perf_counter()
            action()
            page.wait_for_function(ready)
            out[name] = round(time.perf_counter() - t0, 3)
            log(f"{name}: {out[name]:.3f} s")

        page.goto(base + "/#/experiments")  # warm the asset cache as a returning user has it
        page.wait_for_selector("table")
        timed(
            "runs_table_first_rows_s",
            lambda: page.goto(f"{base}/#/experiments/{exp}"),
            "document.querySelectorAll('[data-testid=run-row]').length > 10",
        )
        loaded = page.evaluate("document.querySelector('[data-testid=run-count]').textContent")
        timed(
            "runs_table_next_page_s",
            lambda: page.evaluate("document.querySelector('.runs-scroll').scrollTop = 1e9"),
            "parseInt(document.querySelector('[data-testid=run-count]').textContent) > " + str(int(loaded.split()[0])),
        )
        query = "searchFilter=" + "params.model+%3D+%27boost%27+and+metrics.r2+%3E+0.5" + "&orderBy=metrics.rmse+ASC"
        timed(
            "runs_table_filtered_sorted_s",
            lambda: page.goto(f"{base}/#/experiments/{exp}?{query}"),
            "document.querySelectorAll('[data-testid=run-row]').length > 10 && location.hash.includes('rmse')",
        )
        timed(
            "metric_chart_1m_points_s",
            lambda: page.goto(f"{base}/#/metric/train_loss?runs=" + json.dumps([long_run])),
            "document.querySelector('[data-testid=metric-chart][data-rendered=true]') !== null",
        )
        out["metric_chart_points_drawn"] = int(page.get_attribute("[data-testid=metric-chart]", "data-points"))
        shots = REPO / "target" / "ui-screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "scale-metric-1m.png"))
        page.goto(f"{base}/#/experiments/{exp}")
        page.wait_for_function("document.querySelectorAll('[data-testid=run-row]').length > 10")
        page.screenshot(path=str(shots / "scale-runs-100k.png"))
        browser.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--mlox", default=str(REPO / "target" / "release" / "mlox"))
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--no-build", action="store_true", help="use the --mlox binary as it is")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "mlox-cli"], cwd=REPO, check=True)
    work = Path(tempfile.mkdtemp(prefix="mlox-ui-scale-"))
    port = free_port()
    server = subprocess.Popen(
        [args.mlox, "server", "--port", str(port), "--backend-store-uri", f"sqlite:///{work}/mlruns.db", "--artifacts-destination", str(work / "artifacts")],
        cwd=work,
        stdout=open(work / "server.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/health")
                break
            except OSError:
                time.sleep(0.1)
        exp, long_run = fill(Client(port), args.runs, args.points, args.threads)
        result = {"runs": args.runs, "points": args.points, **measure(f"http://127.0.0.1:{port}", exp, long_run, args.chromium)}
        print(json.dumps(result, indent=2))
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
