"""Scale-out: several mlox replicas on one PostgreSQL database behave as one server, and a
server killed with SIGKILL in the middle of heavy logging loses nothing it acknowledged.

These tests start their own servers (always PostgreSQL for the replicas; both backends for the
crash test), so they run the same whatever the session server is configured with."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from conftest import PgDatabase, launch_mlox

pytestmark = [pytest.mark.mlox_only, pytest.mark.heavy, pytest.mark.standalone]

CLIENTS = 32
RUNS_PER_CLIENT = 3
STEPS_PER_RUN = 20
METRICS_PER_STEP = 5


@pytest.fixture
def pg():
    db = PgDatabase()
    yield db
    db.close()


@pytest.fixture
def replicas(pg, tmp_path):
    started = []
    try:
        for i in range(2):
            started.append(launch_mlox(tmp_path, pg.uri, log_name=f"replica-{i}.log"))
        yield started
    finally:
        for srv in started:
            srv.stop()


def test_two_replicas_on_one_database_count_exactly(replicas):
    a, b = replicas
    experiment_id = MlflowClient(a.url).create_experiment(f"replicas-{uuid.uuid4().hex[:8]}")
    model = f"replicated-{uuid.uuid4().hex[:8]}"
    MlflowClient(b.url).create_registered_model(model)

    def work(worker: int) -> list[str]:
        # Alternate replicas per worker so both see writes to the same runs and model.
        client = MlflowClient(replicas[worker % 2].url)
        other = MlflowClient(replicas[(worker + 1) % 2].url)
        run_ids = []
        for r in range(RUNS_PER_CLIENT):
            run = client.create_run(experiment_id, run_name=f"w{worker}-r{r}")
            run_id = run.info.run_id
            for step in range(STEPS_PER_RUN):
                writer = client if step % 2 == 0 else other
                now = int(time.time() * 1000)
                writer.log_batch(
                    run_id,
                    metrics=[Metric(f"m{k}", float(step * k), now, step) for k in range(METRICS_PER_STEP)],
                )
            other.log_batch(run_id, params=[Param("worker", str(worker))], tags=[RunTag("replica", str(worker % 2))])
            client.set_terminated(run_id)
            run_ids.append(run_id)
        source = f"runs:/{run_ids[0]}/model"
        client.create_model_version(model, source, run_id=run_ids[0])
        return run_ids

    with ThreadPoolExecutor(CLIENTS) as pool:
        all_runs = [r for runs in pool.map(work, range(CLIENTS)) for r in runs]

    expected_runs = CLIENTS * RUNS_PER_CLIENT
    assert len(set(all_runs)) == expected_runs
    for srv in replicas:
        client = MlflowClient(srv.url)
        found = client.search_runs([experiment_id], max_results=1000)
        assert len(found) == expected_runs
        assert all(r.info.status == "FINISHED" for r in found)
        assert {r.data.params["worker"] for r in found} == {str(w) for w in range(CLIENTS)}
        # Latest values are the last step's, whichever replica wrote it.
        assert all(r.data.metrics["m3"] == float((STEPS_PER_RUN - 1) * 3) for r in found)
        finished = client.search_runs([experiment_id], "metrics.m1 = 19 and params.worker = '7'")
        assert len(finished) == RUNS_PER_CLIENT

        versions = client.search_model_versions(f"name = '{model}'", max_results=1000)
        assert sorted(int(v.version) for v in versions) == list(range(1, CLIENTS + 1))

    # No metric row lost or doubled: every run has exactly its history, on either replica.
    client = MlflowClient(b.url)
    for run_id in all_runs[:: max(1, expected_runs // 12)]:
        for k in range(METRICS_PER_STEP):
            history = client.get_metric_history(run_id, f"m{k}")
            assert sorted(m.step for m in history) == list(range(STEPS_PER_RUN)), (run_id, k)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_loses_no_acknowledged_write(backend, tmp_path, pg):
    uri = f"sqlite:///{tmp_path / 'crash.db'}" if backend == "sqlite" else pg.uri
    srv = launch_mlox(tmp_path, uri, log_name="before-kill.log")
    port = int(srv.url.rsplit(":", 1)[1])
    client = MlflowClient(srv.url)
    experiment_id = client.create_experiment(f"crash-{uuid.uuid4().hex[:8]}")

    acknowledged: dict[str, set[int]] = {}
    acked_params: dict[str, list[str]] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(worker: int) -> None:
        try:
            run_id = client.create_run(experiment_id).info.run_id
        except Exception:
            return
        with lock:
            acknowledged[run_id] = set()
            acked_params[run_id] = []
        step = 0
        while not stop.is_set():
            now = int(time.time() * 1000)
            try:
                client.log_batch(
                    run_id,
                    metrics=[Metric("loss", 1.0 / (step + 1), now, step), Metric("acc", step / 1e6, now, step)],
                    params=[Param(f"p{step}", str(step))],
                )
            except Exception:
                return  # the server is gone; this write was never acknowledged
            with lock:
                acknowledged[run_id].add(step)
                acked_params[run_id].append(f"p{step}")
            step += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    time.sleep(3)
    srv.kill()
    stop.set()
    for t in threads:
        t.join(timeout=30)

    total = sum(len(s) for s in acknowledged.values())
    assert total > 50, f"too few writes before the kill to prove anything ({total})"

    again = launch_mlox(tmp_path, uri, port=port, log_name="after-kill.log")
    try:
        client = MlflowClient(again.url)
        for run_id, steps in acknowledged.items():
            run = client.get_run(run_id)
            loss = {m.step for m in client.get_metric_history(run_id, "loss")}
            acc = {m.step for m in client.get_metric_history(run_id, "acc")}
            assert steps <= loss, f"lost loss steps {sorted(steps - loss)[:10]} of run {run_id}"
            assert steps <= acc, f"lost acc steps {sorted(steps - acc)[:10]} of run {run_id}"
            assert set(acked_params[run_id]) <= set(run.data.params), run_id
            # A write in flight at the kill may have landed, but nothing beyond it.
            assert len(loss) <= len(steps) + 1
    finally:
        again.stop()
