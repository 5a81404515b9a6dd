"""Run artifacts through the server's artifact proxy (``--serve-artifacts``):
upload, list, download (three addressing styles), text/dict helpers, a large
file with and without proxy multipart upload."""

import hashlib
import json
import os
from pathlib import Path

import pytest

import mlflow
from mlflow.exceptions import MlflowException


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _listing(client, run_id, path=None):
    return {(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(run_id, path)}


def test_artifact_uri_points_at_the_proxy(experiment_id, client, artifact_root):
    exp = client.get_experiment(experiment_id)
    assert exp.artifact_location == f"{artifact_root}/{experiment_id}"
    with mlflow.start_run() as run:
        uri = mlflow.get_artifact_uri()
        assert uri == f"{artifact_root}/{experiment_id}/{run.info.run_id}/artifacts"
        assert mlflow.get_artifact_uri("a/b.txt") == uri + "/a/b.txt"
    assert run.info.artifact_uri == uri


def test_text_dict_and_files_round_trip(experiment_id, client, tmp_dir):
    src = tmp_dir / "src"
    (src / "nested" / "deeper").mkdir(parents=True)
    (src / "top.txt").write_text("top level\n")
    (src / "nested" / "n.bin").write_bytes(bytes(range(256)) * 4)
    (src / "nested" / "deeper" / "d.json").write_text('{"x": 1}')
    single = tmp_dir / "single.csv"
    single.write_text("a,b\n1,2\n")

    with mlflow.start_run() as run:
        mlflow.log_text("hello, мир, 世界\n", "notes/hello.txt")
        mlflow.log_dict({"lr": 0.1, "layers": [1, 2]}, "config/params.json")
        mlflow.log_dict({"name": "x", "list": ["a", "b"]}, "config/params.yaml")
        mlflow.log_artifact(str(single))  # to the artifact root
        mlflow.log_artifact(str(single), artifact_path="tables")
        mlflow.log_artifacts(str(src), artifact_path="tree")
        mlflow.log_artifacts(str(src / "nested"))  # contents at the root
    rid = run.info.run_id
    base = run.info.artifact_uri

    # listing: one level at a time, paths relative to the run root, dirs without size
    assert _listing(client, rid) == {
        ("notes", True, None),
        ("config", True, None),
        ("single.csv", False, 8),
        ("tables", True, None),
        ("tree", True, None),
        ("n.bin", False, 1024),
        ("deeper", True, None),
    }
    assert _listing(client, rid, "tree") == {
        ("tree/top.txt", False, 10),
        ("tree/nested", True, None),
    }
    assert _listing(client, rid, "tree/nested/deeper") == {("tree/nested/deeper/d.json", False, 8)}
    # a file path or a missing path lists as empty
    assert _listing(client, rid, "tree/top.txt") == set()
    assert _listing(client, rid, "does/not/exist") == set()

    # load helpers
    assert mlflow.artifacts.load_text(f"{base}/notes/hello.txt") == "hello, мир, 世界\n"
    assert mlflow.artifacts.load_dict(f"{base}/config/params.json") == {"lr": 0.1, "layers": [1, 2]}
    # log_dict writes YAML for .yaml names; load_dict only parses JSON
    import yaml

    assert yaml.safe_load(mlflow.artifacts.load_text(f"{base}/config/params.yaml")) == {
        "name": "x",
        "list": ["a", "b"],
    }

    # download a whole directory tree
    out = Path(mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="tree", dst_path=str(tmp_dir / "dl")))
    assert (out / "top.txt").read_text() == "top level\n"
    assert (out / "nested" / "n.bin").read_bytes() == bytes(range(256)) * 4
    assert json.loads((out / "nested" / "deeper" / "d.json").read_text()) == {"x": 1}

    # the whole run
    everything = Path(mlflow.artifacts.download_artifacts(run_id=rid, dst_path=str(tmp_dir / "all")))
    assert (everything / "tables" / "single.csv").read_text() == "a,b\n1,2\n"
    assert (everything / "deeper" / "d.json").exists()


def test_download_artifacts_three_ways(experiment_id, tmp_dir):
    with mlflow.start_run() as run:
        mlflow.log_text("a,b\n1,2\n", "datasets/train.csv")
        mlflow.log_text("a,b\n3,4\n", "datasets/test.csv")
    rid = run.info.run_id
    # 1. run_id + artifact_path (the pipeline's way)
    p1 = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="datasets/train.csv", dst_path=str(tmp_dir / "1"))
    # (the 3.x client puts a single downloaded file directly into dst_path)
    assert Path(p1).is_relative_to(tmp_dir / "1") and Path(p1).name == "train.csv"
    assert Path(p1).read_text() == "a,b\n1,2\n"
    # 2. runs:/ URI
    p2 = mlflow.artifacts.download_artifacts(f"runs:/{rid}/datasets/test.csv", dst_path=str(tmp_dir / "2"))
    assert Path(p2).read_text() == "a,b\n3,4\n"
    # 3. the artifact URI itself
    p3 = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{run.info.artifact_uri}/datasets", dst_path=str(tmp_dir / "3")
    )
    assert sorted(os.listdir(p3)) == ["test.csv", "train.csv"]
    # MlflowClient flavour
    p4 = mlflow.MlflowClient().download_artifacts(rid, "datasets/train.csv", str(tmp_dir / "4"))
    assert Path(p4).read_text() == "a,b\n1,2\n"


def test_download_of_missing_artifact_fails_cleanly(experiment_id, tmp_dir):
    with mlflow.start_run() as run:
        mlflow.log_text("x", "present.txt")
    with pytest.raises(MlflowException):
        mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="absent.txt", dst_path=str(tmp_dir)
        )


def test_overwriting_an_artifact_replaces_its_content(experiment_id):
    with mlflow.start_run() as run:
        mlflow.log_text("first", "f.txt")
        mlflow.log_text("second, longer", "f.txt")
    assert mlflow.artifacts.load_text(f"{run.info.artifact_uri}/f.txt") == "second, longer"


def test_empty_file_round_trip(experiment_id, tmp_dir, client):
    empty = tmp_dir / "empty.dat"
    empty.write_bytes(b"")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(empty), "e")
    # a zero size may be sent explicitly or omitted (proto3 default)
    assert _listing(client, run.info.run_id, "e") in ({("e/empty.dat", False, 0)}, {("e/empty.dat", False, None)})
    got = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="e/empty.dat", dst_path=str(tmp_dir / "o"))
    assert Path(got).read_bytes() == b""


def test_log_table_and_load_table(experiment_id):
    import pandas as pd

    df = pd.DataFrame({"q": ["a", "b"], "score": [0.5, 0.75]})
    with mlflow.start_run() as run:
        mlflow.log_table(df, "eval/results.json")
    back = mlflow.load_table("eval/results.json", run_ids=[run.info.run_id])
    assert list(back["q"]) == ["a", "b"]
    assert list(back["score"]) == [0.5, 0.75]


def _big_file(path: Path, size: int) -> str:
    # deterministic, incompressible-ish content
    block = hashlib.sha256(b"mlox").digest() * 2048  # 64 KiB
    with open(path, "wb") as f:
        written = 0
        i = 0
        while written < size:
            chunk = hashlib.sha256(i.to_bytes(8, "little")).digest() + block
            chunk = chunk[: size - written]
            f.write(chunk)
            written += len(chunk)
            i += 1
    return _sha256(path)


@pytest.mark.heavy
def test_12mb_artifact_round_trip(experiment_id, client, tmp_dir):
    size = 12 * 1024 * 1024 + 123
    src = tmp_dir / "big.bin"
    digest = _big_file(src, size)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src), "big")
    assert _listing(client, run.info.run_id, "big") == {("big/big.bin", False, size)}
    out = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="big/big.bin", dst_path=str(tmp_dir / "out")
    )
    assert os.path.getsize(out) == size
    assert _sha256(out) == digest


@pytest.mark.heavy
def test_12mb_artifact_with_proxy_multipart_upload_enabled(experiment_id, client, tmp_dir, monkeypatch):
    """With MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD the client first asks the proxy for a
    multipart upload; a server may implement it or answer 501 (client falls back
    to a single PUT). Either way the bytes must arrive intact."""
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(5 * 1024 * 1024))
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(5 * 1024 * 1024))
    size = 12 * 1024 * 1024 + 7
    src = tmp_dir / "mpu.bin"
    digest = _big_file(src, size)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src), "mpu")
    assert _listing(client, run.info.run_id, "mpu") == {("mpu/mpu.bin", False, size)}
    out = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="mpu/mpu.bin", dst_path=str(tmp_dir / "out")
    )
    assert _sha256(out) == digest


# ------------------------------------------------------------ raw artifact protocol


@pytest.mark.proxied_artifacts
def test_raw_proxy_protocol(experiment_id, client, api):
    run = client.create_run(experiment_id)
    rel = f"{experiment_id}/{run.info.run_id}/artifacts"
    base = "/api/2.0/mlflow-artifacts/artifacts"

    r = api.put(f"{base}/{rel}/dir/a.txt", data=b"abc", headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    r = api.put(f"{base}/{rel}/dir/sub/b.bin", data=b"\x00\x01\x02\xff")
    assert r.status_code == 200, r.text
    r = api.put(f"{base}/{rel}/name with spaces %25.txt", data=b"sp")
    assert r.status_code == 200, r.text

    r = api.get(f"{base}/{rel}/dir/a.txt")
    assert r.status_code == 200 and r.content == b"abc"
    r = api.get(f"{base}/{rel}/dir/sub/b.bin")
    assert r.status_code == 200 and r.content == b"\x00\x01\x02\xff"
    r = api.get(f"{base}/{rel}/name with spaces %25.txt")
    assert r.status_code == 200 and r.content == b"sp"

    r = api.get(base, params={"path": f"{rel}/dir"})
    assert r.status_code == 200
    files = sorted(r.json()["files"], key=lambda f: f["path"])
    assert files == [
        {"path": "a.txt", "is_dir": False, "file_size": 3},
        {"path": "sub", "is_dir": True},
    ]
    # listing a file or a missing path: 200 with no files
    for p in (f"{rel}/dir/a.txt", f"{rel}/nope"):
        r = api.get(base, params={"path": p})
        assert r.status_code == 200
        assert r.json().get("files", []) == []

    # downloading a missing file: 404 RESOURCE_DOES_NOT_EXIST
    r = api.get(f"{base}/{rel}/dir/missing.txt")
    assert r.status_code == 404, r.text
    assert r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    # downloading an existing directory is a client error, too
    r = api.get(f"{base}/{rel}/dir")
    assert 400 <= r.status_code < 500, r.text

    # the URL path is percent-decoded exactly once: "%25" names a file called "%"
    assert {f.path for f in client.list_artifacts(run.info.run_id)} == {"dir", "name with spaces %.txt"}


@pytest.mark.proxied_artifacts
def test_raw_delete_artifact(experiment_id, client, api):
    run = client.create_run(experiment_id)
    rel = f"{experiment_id}/{run.info.run_id}/artifacts"
    base = "/api/2.0/mlflow-artifacts/artifacts"
    assert api.put(f"{base}/{rel}/del/x.txt", data=b"x").status_code == 200
    r = api.delete(f"{base}/{rel}/del/x.txt")
    assert r.status_code == 200, r.text
    assert api.get(f"{base}/{rel}/del/x.txt").status_code == 404


@pytest.mark.proxied_artifacts
def test_multipart_create_answers_501_or_a_valid_upload(experiment_id, client, api):
    run = client.create_run(experiment_id)
    rel = f"{experiment_id}/{run.info.run_id}/artifacts/m.bin"
    r = api.post(f"/api/2.0/mlflow-artifacts/mpu/create/{rel}", json={"path": "m.bin", "num_parts": 2})
    if r.status_code == 501:
        assert r.json()["error_code"] == "NOT_IMPLEMENTED"
    else:
        assert r.status_code == 200, r.text
        body = r.json()
        assert body.get("upload_id")
        assert len(body.get("credentials", [])) == 2


# ------------------------------------------------------------ where the bytes land


def test_artifacts_land_in_the_configured_store(experiment_id, server, tmp_dir):
    """The bytes end up where the operator pointed the server (or, in direct mode, the
    client): the local destination directory or the S3 bucket, under the run's path."""
    from conftest import ARTIFACTS as MODE, S3_BUCKET

    src = tmp_dir / "where.txt"
    src.write_text("landed")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src), "check")
    rel = f"{experiment_id}/{run.info.run_id}/artifacts/check/where.txt"
    if MODE == "local":
        if server.artifacts_dir is None:
            pytest.skip("external server")
        assert (server.artifacts_dir / rel).read_text() == "landed"
        return
    s3 = server.storage.s3_client()
    prefix = server.storage.s3_prefix.removeprefix(f"s3://{S3_BUCKET}/")
    body = s3.get_object(Bucket=S3_BUCKET, Key=f"{prefix}/{rel}")["Body"].read()
    assert body == b"landed"


@pytest.mark.mlox_only
@pytest.mark.proxied_artifacts
def test_raw_multipart_upload_through_the_proxy(experiment_id, client, api):
    """The proxy's multipart protocol end to end: create hands out one URL per part on this
    server, parts go up in any order, complete joins them, and the file reads back whole.
    Parts are S3-sized (5 MiB but the last), so the same flow works on every backend."""
    import requests

    run = client.create_run(experiment_id)
    rel = f"{experiment_id}/{run.info.run_id}/artifacts"
    part1 = os.urandom(5 * 1024 * 1024)
    part2 = os.urandom(1234)
    r = api.post(f"/api/2.0/mlflow-artifacts/mpu/create/{rel}", json={"path": "big.bin", "num_parts": 2})
    assert r.status_code == 200, r.text
    created = r.json()
    creds = sorted(created["credentials"], key=lambda c: c["part_number"])
    assert [c["part_number"] for c in creds] == [1, 2]
    etags = {}
    for cred, data in reversed(list(zip(creds, [part1, part2]))):
        resp = requests.put(cred["url"], data=data, headers=cred.get("headers") or {}, timeout=60)
        assert resp.status_code == 200, resp.text
        etags[cred["part_number"]] = resp.headers.get("ETag") or resp.json().get("etag")
    r = api.post(
        f"/api/2.0/mlflow-artifacts/mpu/complete/{rel}",
        json={
            "path": "big.bin",
            "upload_id": created["upload_id"],
            "parts": [{"part_number": n, "etag": etags[n]} for n in (1, 2)],
        },
    )
    assert r.status_code == 200, r.text
    got = api.get(f"/api/2.0/mlflow-artifacts/artifacts/{rel}/big.bin")
    assert got.status_code == 200
    assert got.content == part1 + part2
