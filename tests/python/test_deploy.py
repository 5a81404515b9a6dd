"""The Kubernetes manifests in ``deploy/kubernetes``: they render with every placeholder filled
(and refuse to render half-filled), parse as the Kubernetes objects they claim to be, every
container's arguments are ones the mlox binary accepts, and the gateway's ConfigMap is a config
the gateway starts with."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from conftest import _free_port, mlox_binary

pytestmark = [pytest.mark.mlox_only, pytest.mark.standalone]

ROOT = Path(__file__).resolve().parents[2]
RENDER = ROOT / "deploy" / "kubernetes" / "render.py"
VALUES = {
    "IMAGE": "registry.example/mlox:0.1.0", "NAMESPACE": "ml", "DB_HOST": "db", "DB_PASSWORD": "pw",
    "S3_ACCESS_KEY_ID": "key", "S3_SECRET_ACCESS_KEY": "secret", "S3_ENDPOINT_URL": "http://minio:9000",
    "BUCKET": "ml-artifacts", "ADMIN_PASSWORD": "a-long-admin-password", "KEK_PASSPHRASE": "kek",
    "TRACKING_REPLICAS": "3", "PUBLIC_HOST": "mlox.example.com", "MODEL_NAME": "wine",
    "MODEL_STORAGE_URI": "s3://ml-artifacts/artifacts/1/models/m-1/artifacts",
}


def _render(values: dict[str, str]) -> subprocess.CompletedProcess:
    args = [f"{k}={v}" for k, v in values.items()]
    return subprocess.run([sys.executable, str(RENDER), *args], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    done = _render(VALUES)
    assert done.returncode == 0, done.stderr
    assert "${" not in done.stdout
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def test_a_missing_value_stops_the_rendering_with_its_name():
    partial = {k: v for k, v in VALUES.items() if k not in ("DB_HOST", "IMAGE")}
    done = _render(partial)
    assert done.returncode != 0 and done.stdout == ""
    assert "DB_HOST" in done.stderr and "IMAGE" in done.stderr


def test_the_manifests_are_the_objects_the_docs_name(objects):
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
    assert kinds == sorted([
        ("Secret", "mlox-tracking"), ("Deployment", "mlox-tracking"), ("Service", "mlox-tracking"),
        ("ConfigMap", "mlox-gateway"), ("Deployment", "mlox-gateway"), ("Service", "mlox-gateway"),
        ("ServingRuntime", "mlox"), ("InferenceService", "wine"),
    ])
    assert all(o["metadata"]["namespace"] == "ml" for o in objects)
    tracking = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "mlox-tracking")
    assert tracking["spec"]["replicas"] == 3
    selector = tracking["spec"]["selector"]["matchLabels"]
    assert selector.items() <= tracking["spec"]["template"]["metadata"]["labels"].items()


def _containers(objects):
    for o in objects:
        if o["kind"] == "Deployment":
            yield from o["spec"]["template"]["spec"]["containers"]
        elif o["kind"] == "ServingRuntime":
            yield from o["spec"]["containers"]


def test_every_container_runs_arguments_mlox_accepts(objects):
    checked = 0
    for container in _containers(objects):
        assert container["image"] == VALUES["IMAGE"]
        args = [a.replace("$(MLOX_BACKEND_STORE_URI)", "sqlite:///x.db").replace("{{.Name}}", "model")
                for a in container["args"]]
        done = subprocess.run([mlox_binary(), *args, "--help"], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, (args, done.stderr)
        checked += 1
    assert checked == 3


def test_the_gateway_starts_with_the_configmaps_config(objects, tmp_path):
    config = next(o for o in objects if o["kind"] == "ConfigMap")["data"]["config.yaml"]
    (tmp_path / "config.yaml").write_text(config)
    port = _free_port()
    proc = subprocess.Popen([mlox_binary(), "gateway", "start", "--config-path", str(tmp_path / "config.yaml"),
                             "--port", str(port)], env={"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "sk-test"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import time

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        endpoints = requests.get(f"http://127.0.0.1:{port}/api/2.0/endpoints/").json()["endpoints"]
        assert [e["name"] for e in endpoints] == ["chat"]
    finally:
        proc.terminate()
        proc.wait(timeout=15)
