"""What an operator reads in ``mlox server``'s log file: one line per request (method, path,
status, latency, request id), client errors with their MLflow ``error_code``, no terminal
colour codes in a file, JSON lines on request, and a taken port failing before any database
is created.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest
import requests

from conftest import _free_port, launch_mlox, mlox_binary

pytestmark = [pytest.mark.mlox_only, pytest.mark.standalone]


def _requests(url: str) -> None:
    assert requests.get(f"{url}/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"},
                        headers={"X-Request-Id": "req-ok-1"}).status_code == 200
    r = requests.get(f"{url}/api/2.0/mlflow/experiments/get", params={"experiment_id": "424242"},
                     headers={"X-Request-Id": "req-missing-1"})
    assert r.status_code == 404 and r.headers["x-request-id"] == "req-missing-1"
    assert requests.get(f"{url}/api/2.0/mlflow/no-such-route").status_code == 404
    r = requests.post(f"{url}/api/2.0/mlflow/runs/create", json={"experiment_id": "0"})
    assert r.headers["x-request-id"]  # a fresh id when the caller sent none


def _wait_for(log, text: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log()
        if text in content:
            return content
        time.sleep(0.1)
    return log()


def test_one_plain_line_per_request_in_a_log_file(tmp_path):
    server = launch_mlox(tmp_path, f"sqlite:///{tmp_path / 'mlruns.db'}")
    try:
        _requests(server.url)
        log = _wait_for(server.log_text, "req-missing-1")
    finally:
        server.stop()
    assert "\x1b[" not in log, "terminal colour codes in a log file"
    lines = log.splitlines()
    ok = next(line for line in lines if "request_id=req-ok-1" in line)
    assert " INFO " in ok and "method=GET" in ok and "path=/api/2.0/mlflow/experiments/get" in ok
    assert "status=200" in ok and "latency_ms=" in ok
    missing = next(line for line in lines if "request_id=req-missing-1" in line)
    assert " INFO " in missing and "status=404" in missing and "error_code=RESOURCE_DOES_NOT_EXIST" in missing
    route = next(line for line in lines if "path=/api/2.0/mlflow/no-such-route" in line)
    assert "error_code=ENDPOINT_NOT_FOUND" in route or "error_code=RESOURCE_DOES_NOT_EXIST" in route
    assert any("path=/api/2.0/mlflow/runs/create" in line and "status=200" in line for line in lines)


def test_json_lines_with_mlox_log_format(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOX_LOG_FORMAT", "json")
    server = launch_mlox(tmp_path, f"sqlite:///{tmp_path / 'mlruns.db'}")
    try:
        _requests(server.url)
        log = _wait_for(server.log_text, "req-missing-1")
    finally:
        server.stop()
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert events, log
    missing = next(e for e in events if e.get("fields", {}).get("request_id") == "req-missing-1")
    assert missing["level"] == "INFO"
    assert missing["fields"]["status"] == 404
    assert missing["fields"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert missing["fields"]["method"] == "GET"


def test_a_taken_port_fails_fast_and_creates_no_database(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        done = subprocess.run(
            [mlox_binary(), "server", "--port", str(port), "--backend-store-uri", f"sqlite:///{tmp_path / 'new.db'}",
             "--artifacts-destination", str(tmp_path / "artifacts")],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert time.monotonic() - started < 10
    assert not (tmp_path / "new.db").exists()
    assert not (tmp_path / "artifacts").exists()
