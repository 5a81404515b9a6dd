"""A SQLite store over its life, as users handle it: stopped with SIGTERM and copied as one
file (as MLflow users copy ``mlflow.db``), backed up while the server runs, and an MLflow
database pointed at by mistake, which mlox must recognise and leave untouched; and relative
artifact roots, which are stored as absolute locations.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import mlflow
from conftest import _free_port, launch_mlox, mlox_binary

pytestmark = [pytest.mark.mlox_only, pytest.mark.standalone]


def _log_a_run(url: str) -> tuple[str, list[float]]:
    client = mlflow.MlflowClient(tracking_uri=url)
    experiment = client.create_experiment(f"lifecycle-{time.time_ns()}")
    run = client.create_run(experiment)
    values = [float(i) / 7 for i in range(500)]
    metrics = [mlflow.entities.Metric("loss", v, 1000 + i, i) for i, v in enumerate(values)]
    client.log_batch(run.info.run_id, metrics=metrics, params=[mlflow.entities.Param("alpha", "0.5")])
    return run.info.run_id, values


def _read_run(url: str, run_id: str) -> tuple[dict, list[float]]:
    client = mlflow.MlflowClient(tracking_uri=url)
    run = client.get_run(run_id)
    history = client.get_metric_history(run_id, "loss")
    return run.data.params, [m.value for m in sorted(history, key=lambda m: m.step)]


def test_sigterm_leaves_one_complete_file(tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    db = live / "mlruns.db"
    server = launch_mlox(live, f"sqlite:///{db}")
    run_id, values = _log_a_run(server.url)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0, server.log_text()
    assert "mlox server stopped" in server.log_text()
    wal = live / "mlruns.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0, "the WAL still holds data after a clean stop"

    # The .db file alone, copied elsewhere, is the whole store.
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(db, copy / "mlruns.db")
    reopened = launch_mlox(copy, f"sqlite:///{copy / 'mlruns.db'}")
    try:
        params, history = _read_run(reopened.url, run_id)
    finally:
        reopened.stop()
    assert params == {"alpha": "0.5"}
    assert history == values


def test_backup_while_the_server_writes(tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    db = live / "mlruns.db"
    server = launch_mlox(live, f"sqlite:///{db}")
    try:
        run_id, values = _log_a_run(server.url)
        backup = tmp_path / "backup.db"
        done = subprocess.run(
            [mlox_binary(), "db", "backup", f"sqlite:///{db}", str(backup)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert "backup written" in done.stderr
        again = subprocess.run(
            [mlox_binary(), "db", "backup", f"sqlite:///{db}", str(backup)], capture_output=True, text=True, timeout=120
        )
        assert again.returncode != 0 and "never overwrites" in again.stderr
        # The server still answers while and after the copy is taken.
        assert _read_run(server.url, run_id)[1] == values
    finally:
        server.stop()
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copy(backup, restored / "mlruns.db")
    reopened = launch_mlox(restored, f"sqlite:///{restored / 'mlruns.db'}")
    try:
        assert _read_run(reopened.url, run_id) == ({"alpha": "0.5"}, values)
    finally:
        reopened.stop()
    postgres = subprocess.run(
        [mlox_binary(), "db", "backup", "postgresql://u@127.0.0.1/db", str(tmp_path / "pg.dump")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert postgres.returncode != 0 and "pg_dump" in postgres.stderr


def _mlflow_database(path: Path) -> None:
    """A database created by MLflow itself (its SQLAlchemy store runs all its migrations)."""
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}")
    client.create_experiment("made-by-mlflow")
    # Let MLflow's engine go, so nothing of it is still open on the file.
    import gc

    gc.collect()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_mlflow_database_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "mlflow.db"
    _mlflow_database(path)
    before = _digest(path)
    uri = f"sqlite:///{path}"
    done = subprocess.run(
        [mlox_binary(), "server", "--port", str(_free_port()), "--backend-store-uri", uri],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "is an MLflow database" in done.stderr
    assert f"mlox import --from {uri} --to sqlite:///mlruns.db" in done.stderr
    assert _digest(path) == before
    assert not (tmp_path / "mlflow.db-wal").exists()
    assert not (tmp_path / "mlartifacts").exists() or not any((tmp_path / "mlartifacts").iterdir())


def test_starting_on_the_default_beside_an_mlflow_database_says_how_to_import_it(tmp_path):
    _mlflow_database(tmp_path / "mlflow.db")
    before = _digest(tmp_path / "mlflow.db")
    port = _free_port()
    server = launch_mlox(tmp_path, "sqlite:///mlruns.db", port=port)
    try:
        log = server.log_text()
    finally:
        server.stop()
    assert "./mlflow.db here is an MLflow database" in log
    assert "mlox import --from sqlite:///mlflow.db --to sqlite:///mlruns.db" in log
    assert _digest(tmp_path / "mlflow.db") == before


def test_relative_artifact_roots_are_taken_against_the_working_directory(tmp_path):
    # As MLflow stores them: the server's and the client's relative locations become absolute
    # once, so they mean the same wherever they are read later.
    srv = launch_mlox(
        tmp_path, "sqlite:///rel.db", "--no-serve-artifacts", "--default-artifact-root", "roots"
    )
    try:
        client = mlflow.MlflowClient(srv.url)
        default = client.get_experiment(client.create_experiment("default-root"))
        assert default.artifact_location == str(tmp_path / "roots" / default.experiment_id)
        chosen = client.get_experiment(client.create_experiment("own", artifact_location="mine"))
        assert chosen.artifact_location == str(tmp_path / "mine")
    finally:
        srv.stop()
