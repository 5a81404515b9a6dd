"""`mlox up`: seed 000's platform (tracking and web UI, a model server, the gateway and
notebooks) from one command and one `mlox.yaml`, with auth on.

The notebook part is JupyterLab: the seed's own notebook code runs in one of its kernels,
through the Jupyter server's REST and kernel websocket API, as a browser tab would run it,
with no `set_tracking_uri` and no credentials typed: the platform gave the kernel both. Then
the registered model is served by the platform's model server, a killed part comes back, and
Ctrl-C leaves no process behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import _free_port, mlox_binary

pytestmark = [pytest.mark.mlox_only, pytest.mark.standalone, pytest.mark.timeout(600)]

ADMIN = "admin"
ADMIN_PASSWORD = "admin-password-for-the-platform"

# Seed 000's notebook cell, as written but for two lines: no `mlflow.set_tracking_uri(...)`,
# since under `mlox up` the kernel already knows where the tracking server is and who is signed
# in; and `run.info.run_id` for `run.info.run_uuid`, which the MLflow 3 client no longer has
# (the seed was written for MLflow 2; the 3.17.2 client fails on it against any server).
SEED_000_CELL = '''
import mlflow

#  создем класс модели на основе базового класса для моделей Python, совместимых с MLflow
class MyModel(mlflow.pyfunc.PythonModel):
# Метод predict в данном контексте является интерфейсом модели
    def predict(self, context, model_input):
        return self.my_custom_function(model_input)
# Здесь описывается код, который выполняет модель, то есть алгоритм ее работы. Им и пользуется предикт.
    def my_custom_function(self, model_input):
        res = f"This is your input: {model_input}"
        return res
# Создаем экземпляр модели
my_model = MyModel()

# Путь по которому будет доступна модель и название директории.
model_path = "path_test_model1"
# Имя модели для регистрации
reg_model_name = "name_test_model1"
# начинает новый запуск MLflow с именем "test_model_run" и присваивает его переменной run.
with mlflow.start_run(run_name="test_model_run") as run:
    model_path = f"{model_path}-{run.info.run_id}"
# Сохраняетм модель my_model в указанный путь model_path с использованием MLflow.
    mlflow.pyfunc.save_model(path=model_path, python_model=my_model)
# Регистрируем модель в MLflow под указанным именем reg_model_name и сохраняем ее артефакты по указанному пути model_path.
    mlflow.pyfunc.log_model(artifact_path=model_path, python_model=my_model, registered_model_name=reg_model_name)
print("RUN", run.info.run_id)
'''

SEED_000_LOAD_CELL = '''
model_uri = f"models:/{reg_model_name}/1"
# Скачиваем модель
loaded_model = mlflow.pyfunc.load_model(model_uri)
# Передает ей через predict входные данные и сохраняем ее рез-тат в result
result = loaded_model.predict(100)
print(result)
'''


# The test's own cell: a text model like seed 004's served LLMs, for the gateway to answer with.
TEXT_MODEL_CELL = '''
class TextModel(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        texts = model_input.iloc[:, 0].tolist() if hasattr(model_input, "iloc") else list(model_input)
        return [f"served: {str(t)[::-1]}" for t in texts]

with mlflow.start_run(run_name="text-model"):
    mlflow.pyfunc.log_model(name="text", python_model=TextModel(), registered_model_name="text_model")
print("REGISTERED")
'''


class Platform:
    def __init__(self, directory: Path, env: dict[str, str]):
        self.dir = directory
        self.log = directory / "up.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [mlox_binary(), "up", str(directory), "--ready-timeout", "20"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_started(self, timeout: float = 180) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        state = self.dir / ".mlox" / "up.json"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"mlox up exited with {self.proc.returncode}:\n{self.text()[-5000:]}")
            if state.exists() and "Ctrl-C stops every part." in self.text():
                return {p["name"]: p["address"] for p in json.loads(state.read_text())["parts"]}
            time.sleep(0.25)
        pytest.fail(f"mlox up did not start in {timeout} s:\n{self.text()[-5000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                return self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout=10)


def _processes_naming(marker: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if "pgrep" not in line]


async def _execute(base: str, token: str, kernel_id: str, code: str) -> str:
    """Runs one cell in a kernel of the running JupyterLab; returns what it printed."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    ws_url = base.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
    conn = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {token}"}))
    msg_id = uuid.uuid4().hex
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": True,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }))
    printed = []
    try:
        while True:
            raw = await asyncio.wait_for(conn.read_message(), timeout=300)
            if raw is None:
                raise AssertionError("the kernel's websocket closed")
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "stream":
                printed.append(msg["content"]["text"])
            elif kind == "error":
                raise AssertionError("\n".join(msg["content"]["traceback"]))
            elif kind == "execute_reply":
                assert msg["content"]["status"] == "ok", msg["content"]
                return "".join(printed)
    finally:
        conn.close()


def _run_cell(base: str, token: str, kernel_id: str, code: str) -> str:
    """`_execute` on a thread of its own: Playwright's sync API keeps an event loop running on
    the test's thread, where `asyncio.run` may not start another."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _execute(base, token, kernel_id, code)).result()


def _gateway_config(path: Path, serving_port: int) -> None:
    path.write_text(f"""
endpoints:
  - name: completions
    endpoint_type: llm/v1/completions
    model:
      provider: mlflow-model-serving
      name: text_model
      config:
        model_server_url: http://127.0.0.1:{serving_port}
        # The model server admits callers by token; the gateway signs in with the platform's.
        mlox_model_server_token: $MLFLOW_TRACKING_TOKEN
""")


def test_the_platform_runs_the_seeds_notebook_serves_its_model_and_stops_cleanly(tmp_path):
    tracking, serving, grpc, gateway, notebooks, text_serving = (_free_port() for _ in range(6))
    _gateway_config(tmp_path / "gateway.yaml", text_serving)
    (tmp_path / "mlox.yaml").write_text(f"""
tracking:
  port: {tracking}
  auth: true
serving:
  - name: seed-model
    port: {serving}
    grpc_port: {grpc}
    model_uri: models:/name_test_model1/1
  - name: text-model
    port: {text_serving}
    model_uri: models:/text_model/1
gateway:
  config_path: gateway.yaml
  port: {gateway}
notebooks:
  port: {notebooks}
  python: {sys.executable}
""")
    printed = subprocess.run([mlox_binary(), "up", str(tmp_path), "--print-config"],
                             capture_output=True, text=True, timeout=30)
    assert printed.returncode == 0, printed.stderr
    assert f"sqlite:///{tmp_path}/mlruns.db" in printed.stdout
    assert f"{tmp_path}/gateway.yaml" in printed.stdout

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "MLFLOW_AUTH"))}
    env.update({"MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD, "MLOX_PYTHON": sys.executable,
                "MLOX_CACHE_DIR": str(tmp_path / "cache")})
    platform = Platform(tmp_path, env)
    try:
        addresses = platform.wait_started()
        assert set(addresses) == {"tracking", "seed-model", "text-model", "gateway", "notebooks"}
        url = addresses["tracking"]
        assert requests.get(f"{url}/health").status_code == 200
        assert requests.get(f"{url}/api/2.0/mlflow/experiments/search").status_code == 401
        # The web UI links to the notebooks, on whatever host the browser uses.
        links = requests.get(f"{url}/platform-links.json", auth=(ADMIN, ADMIN_PASSWORD)).json()["links"]
        assert links == [{"name": "Notebooks", "url": f":{notebooks}/lab"}]
        assert requests.get(f"http://127.0.0.1:{gateway}/health").status_code == 200
        listed = requests.get(f"http://127.0.0.1:{gateway}/api/2.0/endpoints/", auth=(ADMIN, ADMIN_PASSWORD))
        assert listed.status_code == 200 and listed.json()["endpoints"][0]["name"] == "completions"

        lab = addresses["notebooks"]
        base, token = lab.split("/lab?token=")
        assert requests.get(f"{base}/api/status", params={"token": token}).status_code == 200
        kernel = requests.post(f"{base}/api/kernels", headers={"Authorization": f"token {token}"}, json={})
        assert kernel.status_code == 201, kernel.text
        kernel_id = kernel.json()["id"]
        output = _run_cell(base, token, kernel_id, SEED_000_CELL)
        run_id = output.split("RUN ")[1].split()[0]
        assert "This is your input: 100" in _run_cell(base, token, kernel_id, SEED_000_LOAD_CELL)
        assert "REGISTERED" in _run_cell(base, token, kernel_id, TEXT_MODEL_CELL)

        run = requests.get(f"{url}/api/2.0/mlflow/runs/get", params={"run_id": run_id},
                           auth=(ADMIN, ADMIN_PASSWORD)).json()["run"]
        assert run["info"]["user_id"] == ADMIN
        assert run["info"]["run_name"] == "test_model_run"
        # The notebook's relative paths are in the notebook directory, not where `mlox up` ran.
        assert (tmp_path / "notebooks" / f"path_test_model1-{run_id}" / "MLmodel").is_file()
        assert not (Path.cwd() / f"path_test_model1-{run_id}").exists()

        # The model server was waiting for the model the notebook registered; it serves it now,
        # to signed-in callers only.
        invocations = f"http://127.0.0.1:{serving}/invocations"
        deadline = time.monotonic() + 120
        answer = None
        while time.monotonic() < deadline:
            try:
                answer = requests.post(invocations, json={"inputs": [100]}, auth=(ADMIN, ADMIN_PASSWORD), timeout=30)
                if answer.status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        assert answer is not None and answer.status_code == 200, platform.text()[-4000:]
        assert "This is your input" in answer.text
        assert requests.post(invocations, json={"inputs": [100]}).status_code == 401

        # The gateway answers an endpoint backed by the platform's model server, and records the
        # call as a trace in the tracking server.
        completions = f"http://127.0.0.1:{gateway}/gateway/completions/invocations"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            answer = requests.post(completions, json={"prompt": "hello"}, auth=(ADMIN, ADMIN_PASSWORD), timeout=30)
            if answer.status_code == 200:
                break
            time.sleep(1)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["text"] == "served: olleh"
        # The trace is sent after the answer, so it is looked for until it arrives.
        from mlflow import MlflowClient

        ok = []
        deadline = time.monotonic() + 30
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN, ADMIN_PASSWORD
        try:
            while not ok and time.monotonic() < deadline:
                experiment = MlflowClient(url).get_experiment_by_name("gateway")
                traced = MlflowClient(url).search_traces(locations=[experiment.experiment_id]) if experiment else []
                ok = [t for t in traced if t.info.state == "OK" and t.data.spans[0].name == "completions"]
                if not ok:
                    time.sleep(0.5)
        finally:
            del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
        assert ok and ok[0].data.spans[0].outputs["choices"][0]["text"] == "served: olleh", platform.text()[-3000:]

        # A part that dies is started again.
        [gateway_process] = _processes_naming(f"gateway start --config-path {tmp_path}/gateway.yaml")
        os.kill(int(gateway_process.split()[0]), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "gateway" not in [
            line.split("|")[0].strip() for line in platform.text().splitlines() if "restarting in" in line
        ]:
            time.sleep(0.2)
        back = None
        while time.monotonic() < deadline:
            try:
                back = requests.get(f"http://127.0.0.1:{gateway}/health", timeout=2)
                break
            except requests.RequestException:
                time.sleep(0.3)
        assert back is not None and back.status_code == 200, platform.text()[-3000:]
    finally:
        code = platform.stop()
    assert code == 0, platform.text()[-3000:]
    assert "mlox up: stopped" in platform.text()
    assert _processes_naming(str(tmp_path)) == []


def test_the_hub_signs_mlox_users_in_and_their_notebooks_log_as_them(tmp_path, browser):
    """JupyterHub with mlox's authenticator: a user signs in with their mlox password, their
    notebook server starts signed in to the tracking server as them, and a run started in it
    is theirs. A wrong password gets no hub session."""
    tracking, hub, hub_api, proxy_api = (_free_port() for _ in range(4))
    (tmp_path / "mlox.yaml").write_text(f"""
tracking:
  port: {tracking}
  auth: true
notebooks:
  kind: hub
  port: {hub}
  hub_api_port: {hub_api}
  proxy_api_port: {proxy_api}
  python: {sys.executable}
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "MLFLOW_AUTH", "JUPYTERHUB"))}
    env["MLFLOW_AUTH_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    platform = Platform(tmp_path, env)
    try:
        addresses = platform.wait_started()
        url = addresses["tracking"]
        base = addresses["notebooks"].rstrip("/").removesuffix("/hub")
        # The web UI's top bar links to the hub, on the host the browser uses.
        import base64

        basic = base64.b64encode(f"{ADMIN}:{ADMIN_PASSWORD}".encode()).decode()
        context = browser.new_context(extra_http_headers={"Authorization": f"Basic {basic}"})
        try:
            page = context.new_page()
            page.goto(f"{url}/#/experiments")
            link = page.get_by_test_id("platform-link")
            link.wait_for()
            assert link.inner_text() == "Notebooks"
            assert link.get_attribute("href") == f"http://127.0.0.1:{hub}/hub/"
        finally:
            context.close()
        alice_pw = f"pw-{uuid.uuid4().hex}"
        made = requests.post(f"{url}/api/2.0/mlflow/users/create", auth=(ADMIN, ADMIN_PASSWORD),
                             json={"username": "alice", "password": alice_pw})
        assert made.status_code == 200, made.text

        def sign_in(password: str) -> requests.Session:
            session = requests.Session()
            session.get(f"{base}/hub/login")
            session.post(f"{base}/hub/login", data={"username": "alice", "password": password,
                                                    "_xsrf": session.cookies.get("_xsrf", "")})
            return session

        refused = sign_in("not-her-password")
        assert refused.get(f"{base}/hub/api/user", headers={"X-XSRFToken": refused.cookies.get("_xsrf", "")}).status_code in (401, 403)

        session = sign_in(alice_pw)
        xsrf = {"X-XSRFToken": session.cookies.get("_xsrf", "")}
        me = session.get(f"{base}/hub/api/user", headers=xsrf)
        assert me.status_code == 200 and me.json()["name"] == "alice", me.text
        started = session.post(f"{base}/hub/api/users/alice/server", headers=xsrf)
        assert started.status_code in (201, 202), started.text
        token = session.post(f"{base}/hub/api/users/alice/tokens", headers=xsrf, json={"note": "test"}).json()["token"]
        user_base = f"{base}/user/alice"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = requests.get(f"{user_base}/api/status", headers={"Authorization": f"token {token}"})
            if status.status_code == 200:
                break
            time.sleep(0.5)
        assert status.status_code == 200, platform.text()[-4000:]
        kernel = requests.post(f"{user_base}/api/kernels", headers={"Authorization": f"token {token}"}, json={})
        assert kernel.status_code == 201, kernel.text
        cell = ('import mlflow\nmlflow.set_experiment("hub-notebooks")\n'
                'with mlflow.start_run() as run:\n    mlflow.log_param("who", "notebook")\n'
                'print("RUN", run.info.run_id)\n')
        output = _run_cell(user_base, token, kernel.json()["id"], cell)
        run_id = output.split("RUN ")[1].split()[0]
        run = requests.get(f"{url}/api/2.0/mlflow/runs/get", params={"run_id": run_id},
                           auth=(ADMIN, ADMIN_PASSWORD)).json()["run"]
        assert run["info"]["user_id"] == "alice"
        # The notebook server holds a token of alice's, never the administrator's.
        tokens = requests.get(f"{url}/api/2.0/mlflow/users/tokens/list", auth=("alice", alice_pw)).json()["tokens"]
        assert [t["name"] for t in tokens] == ["jupyterhub"]
    finally:
        code = platform.stop()
    assert code == 0, platform.text()[-3000:]
    assert _processes_naming(str(tmp_path)) == []


@pytest.mark.heavy
def test_notebooks_without_a_python_get_a_venv_of_their_own_once(tmp_path):
    """Without `notebooks.python`, the first `mlox up` makes a venv under `.mlox/notebooks` and
    installs JupyterLab and the MLflow client into it from the package index; the next start
    reuses it."""
    tracking, lab = _free_port(), _free_port()
    (tmp_path / "mlox.yaml").write_text(f"tracking: {{port: {tracking}}}\nnotebooks: {{port: {lab}}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "MLFLOW_AUTH"))}
    env["MLOX_NOTEBOOKS_BASE_PYTHON"] = sys.executable
    for attempt in ("first", "second"):
        platform = Platform(tmp_path, env)
        try:
            addresses = platform.wait_started(timeout=900)
            base, token = addresses["notebooks"].split("/lab?token=")
            assert requests.get(f"{base}/api/status", params={"token": token}).status_code == 200
        finally:
            assert platform.stop() == 0, platform.text()[-3000:]
        installing = "installing jupyterlab" in platform.text().lower()
        assert installing == (attempt == "first"), platform.text()[-3000:]
        platform.log.rename(tmp_path / f"up-{attempt}.log")
    python = tmp_path / ".mlox" / "notebooks" / "bin" / "python"
    versions = subprocess.run([str(python), "-c", "import mlflow, jupyterlab; print(mlflow.__version__)"],
                              capture_output=True, text=True, timeout=120)
    assert versions.stdout.strip() == "3.17.2", versions.stderr
