#!/usr/bin/env python3
"""How fast the traces pages draw at scale, in headless Chromium.

Starts `mlox server` on a fresh SQLite store, fills one experiment with 100,000 traces (the
tracking benchmark's search-traces fixture, built by `mlox-bench`: single-span traces exported
over OTLP/HTTP protobuf in batches of 500, then tagged) and adds one trace of 2,000 spans
(one OTLP export), then opens the UI and measures:

* traces list: navigation to the experiment's traces tab -> its first rows drawn;
* trace page: navigation to the 2,000-span trace -> its span tree, waterfall and first span drawn.

Each figure is the median of --repeat navigations, printed against the goal of 1 s. This is a
measurement, not a test: nothing is asserted.

Usage: bench/ui/run.py [--traces 100000] [--spans 2000] [--no-build]
Needs the suite's venv (playwright, mlflow's opentelemetry-proto) and Chromium; see README.md.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[2]
GOAL_S = 1.0


def _tracking_bench():
    """bench/tracking/run.py, for its server handling and build step."""
    spec = importlib.util.spec_from_file_location("tracking_bench", REPO / "bench" / "tracking" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tracking = _tracking_bench()
log = tracking.log


def fill_traces(loadgen: Path, url: str, count: int) -> tuple[str, dict]:
    """The tracking benchmark's trace fixture (`count` traces, each tagged `bucket`), built by
    its load generator; runs the search scenario once, which checks what was stored."""
    argv = [str(loadgen), "--label", "ui", "--url", url, "--scenarios", "search-traces",
            "--search-traces", str(count), "--requests", "1", "--warmup-secs", "0",
            "--duration-secs", "1", "--timeout-secs", "300"]
    log(f"$ {' '.join(argv)}")
    proc = subprocess.run(argv, stdout=subprocess.PIPE, check=True)
    report = json.loads(proc.stdout)
    fixture = report["fixture"]
    for problem in report.get("checks", {}).get("problems", []):
        log(f"  fixture check: {problem}")
    return fixture["trace_experiment"], fixture


def big_trace_export(spans: int, now_ns: int) -> tuple[bytes, str]:
    """One OTLP export of an agent-like trace of `spans` spans: every span has four children
    until the count is reached (a tree six levels deep for 2,000), typed, with inputs and
    outputs as JSON text; every fifth span is a chat model call holding a conversation."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

    def text(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    trace_id = random.randbytes(16)
    step = 1_000_000  # 1 ms between span starts
    total_ns = (spans + 1) * step
    start0 = now_ns - total_ns
    out = []
    # A parent's index is below its children's, so walking down the indices settles each
    # span's end before it stretches its parent's: every child lies inside its parent.
    ends = [start0 + total_ns] + [start0 + i * step + 3 * step for i in range(1, spans)]
    for i in range(spans - 1, 0, -1):
        parent = (i - 1) // 4
        ends[parent] = max(ends[parent], ends[i] + step // 10)
    for i in range(spans):
        kind = "AGENT" if i == 0 else ("CHAT_MODEL" if i % 5 == 0 else ("TOOL" if i % 2 else "RETRIEVER"))
        if kind == "CHAT_MODEL":
            inputs = json.dumps({"messages": [{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": f"Step {i}: what next?"}]})
            outputs = json.dumps({"choices": [{"message": {"role": "assistant", "content": f"Do step {i + 1}."}}]})
        else:
            inputs = json.dumps({"query": f"step {i}", "k": 4})
            outputs = json.dumps({"result": f"output of step {i}", "documents": ["d1", "d2"]})
        out.append(Span(
            trace_id=trace_id,
            span_id=(i + 1).to_bytes(8, "big"),
            parent_span_id=b"" if i == 0 else ((i - 1) // 4 + 1).to_bytes(8, "big"),
            name="agent" if i == 0 else f"{kind.lower()}-{i}",
            kind=Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=start0 + i * step,
            end_time_unix_nano=ends[i],
            attributes=[text("mlflow.spanType", kind), text("mlflow.spanInputs", inputs),
                        text("mlflow.spanOutputs", outputs)],
            status=Status(code=Status.STATUS_CODE_OK),
        ))
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[text("service.name", "mlox-ui-bench")]),
        scope_spans=[ScopeSpans(scope=InstrumentationScope(name="mlox-ui-bench"), spans=out)],
    )])
    return request.SerializeToString(), "tr-" + trace_id.hex()


def add_big_trace(port: int, experiment_id: str, spans: int) -> str:
    body, trace_id = big_trace_export(spans, time.time_ns())
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf",
                                              "x-mlflow-experiment-id": experiment_id})
    response = conn.getresponse()
    answer = response.read()
    if response.status != 200:
        raise RuntimeError(f"exporting the {spans}-span trace failed: {response.status} {answer[:300]!r}")
    conn.request("GET", f"/ajax-api/3.0/mlflow/traces/get?trace_id={trace_id}")
    response = conn.getresponse()
    stored = json.loads(response.read() or b"{}")
    got = len(stored.get("trace", {}).get("spans", []))
    if got != spans:
        raise RuntimeError(f"the server holds {got} spans of {trace_id}, not {spans}")
    conn.close()
    return trace_id


def measure(base: str, experiment_id: str, trace_id: str, spans: int, chromium: str, repeat: int) -> dict:
    from playwright.sync_api import sync_playwright

    results: dict[str, list[float]] = {"traces_list_first_rows_s": [], "trace_page_drawn_s": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(120_000)
        page.goto(base + "/#/experiments")  # the assets cached, as a returning user has them
        page.wait_for_selector("table")

        def timed(name: str, url: str, ready: str) -> None:
            page.goto("about:blank")
            t0 = time.perf_counter()
            page.goto(url, wait_until="commit")
            page.wait_for_function(ready, polling="raf")
            results[name].append(time.perf_counter() - t0)
            log(f"  {name}: {results[name][-1]:.3f} s")

        for _ in range(repeat):
            timed("traces_list_first_rows_s", f"{base}/#/experiments/{experiment_id}/traces",
                  "document.querySelectorAll('[data-testid=trace-row]').length >= 10")
            timed("trace_page_drawn_s", f"{base}/#/experiments/{experiment_id}/traces/{trace_id}",
                  "document.querySelectorAll('[data-testid=span-row]').length >= 10"
                  " && document.querySelector('.span-detail') !== null")
        shown = page.evaluate("document.querySelectorAll('[data-testid=span-row]').length")
        shots = REPO / "target" / "ui-screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / f"bench-trace-{spans}-spans.png"))
        page.goto(f"{base}/#/experiments/{experiment_id}/traces")
        page.wait_for_function("document.querySelectorAll('[data-testid=trace-row]').length >= 10")
        page.screenshot(path=str(shots / "bench-traces-list.png"))
        browser.close()
    out: dict = {name: {"median": round(statistics.median(v), 3), "all": [round(x, 3) for x in v]}
                 for name, v in results.items()}
    out["span_rows_in_dom"] = shown
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--traces", type=int, default=100_000, help="traces in the listed experiment")
    ap.add_argument("--spans", type=int, default=2000, help="spans of the one large trace")
    ap.add_argument("--repeat", type=int, default=5, help="navigations measured per page")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already in target/release")
    ap.add_argument("--loadgen", type=Path, default=REPO / "target" / "release" / "mlox-bench",
                    help="the tracking benchmark's load generator, which builds the trace fixture")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--startup-timeout", type=float, default=120.0)
    ap.add_argument("--keep-tmp", action="store_true", help="keep the store and the server log")
    args = ap.parse_args()

    if not args.no_build:
        if not tracking.cargo_build(["mlox-bench"]):
            return 1
        if not os.environ.get("MLOX_CMD") and not tracking.cargo_build(["mlox-cli"]):
            return 1
    loadgen = args.loadgen
    if not loadgen.exists():
        raise SystemExit(f"{loadgen} missing; run without --no-build")

    work = Path(tempfile.mkdtemp(prefix="mlox-ui-bench-"))
    cmd, extra = tracking.server_command("mlox", SimpleNamespace())
    server = tracking.Server("mlox", cmd, extra, f"sqlite:///{work / 'mlox.db'}", work, 1)
    try:
        log(f"healthy after {server.start(args.startup_timeout):.2f} s")
        url = server.urls[0]
        t0 = time.monotonic()
        experiment_id, fixture = fill_traces(loadgen, url, args.traces)
        log(f"{args.traces:,} traces stored in {time.monotonic() - t0:.0f} s (experiment {experiment_id})")
        trace_id = add_big_trace(server.ports[0], experiment_id, args.spans)
        log(f"{args.spans:,}-span trace {trace_id} stored")
        result = {"traces": args.traces, "spans": args.spans, "experiment_id": experiment_id,
                  "trace_id": trace_id,
                  "fixture": {k: fixture.get(k) for k in ("search_traces", "trace_ingest_s", "trace_tag_s")},
                  **measure(url, experiment_id, trace_id, args.spans, args.chromium, args.repeat)}
    finally:
        server.stop()
        if args.keep_tmp:
            log(f"store and log kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print(json.dumps(result, indent=2))
    print()
    for name, label in (("traces_list_first_rows_s", f"traces list of {args.traces:,} traces, first rows"),
                        ("trace_page_drawn_s", f"trace page of {args.spans:,} spans, drawn")):
        median = result[name]["median"]
        verdict = "met" if median < GOAL_S else "MISSED"
        print(f"{label:<48} {median:6.3f} s   goal < {GOAL_S:.0f} s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
