"""``campaign init --mode backend`` against real Label Studio servers (issue #16, lane B3).

Label Studio 1.23 refuses to register a webhook or an ML backend at a local
address unless it runs with ``SSRF_PROTECTION_ENABLED=false`` and
``ML_BLOCK_LOCAL_IP=false``: the shared test server does not (the refusal is
tested on it); the registrations are tested on the session's server started
with both (``local_ls`` in conftest). Label Studio calls a model's ``/health`` and ``/setup``
while it registers it, so the model must answer then: here a small HTTP model
(``Model``) stands at the backend URL and records what Label Studio sent it.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from al_loop.api import build_pool
from al_loop.campaign import WEBHOOK_ACTIONS, connect_backend
from al_loop.errors import OracleError
from al_loop.store import Store
from tests.harness.campaign_crash_table import BATCH, CLASSES, INIT, delete_project
from tests.integration.conftest import Server
from tests.integration.test_campaign import CLI, cli, free_port, one_line_error, title
from tests.integration.test_campaign_recovery import Private

pytestmark = pytest.mark.labelstudio

#: what a Label Studio on the same machine as ``al-loop serve`` needs (it calls 127.0.0.1)


def init_args(db: Path, url: str, name: str, backend: str) -> list[Any]:
    return ["campaign", "init", "--db", db, "--data", "digits", "--labels", ",".join(CLASSES), "--label-studio-url",
            url, "--batch", BATCH, "--init", INIT, "--title", name, "--mode", "backend", "--backend-url", backend]


def api(server: Private | Server, path: str) -> Any:
    key = server.key if isinstance(server, Private) else server.api_key
    reply = httpx.get(f"{server.url}{path}", headers={"Authorization": f"Token {key}"}, timeout=30)
    reply.raise_for_status()
    return reply.json()


def run_state(db: Path) -> tuple[dict[str, Any], dict[str, str | None]]:
    store = Store(db, readonly=True)
    try:
        run_id = max(r.id for r in store.runs() if r.id is not None)
        state = {k: store.oracle_state(run_id, k) for k in ("project_id", "webhook_id", "ml_backend_id")}
        return dict(store.config(run_id).oracle_params), state
    finally:
        store.close()


class Model:
    """An HTTP model at ``url``: answers ``/health``, ``/setup`` and ``/webhook``, records each request.

    ``auth`` (``user:password``) makes it answer 401 without that basic auth, as ``al-loop serve`` does.
    """

    def __init__(self, auth: str | None = None, port: int = 0) -> None:
        self.requests: list[tuple[str, Any]] = []
        expected = "Basic " + base64.b64encode(auth.encode()).decode() if auth else None
        model = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def reply(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def serve(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(size) or b"null") if size else None
                model.requests.append((self.path, body))
                if expected and self.headers.get("Authorization") != expected:
                    return self.reply(401, {"detail": "basic auth required"})
                if self.path.startswith("/health"):
                    return self.reply(200, {"status": "UP", "model_class": "al-loop"})
                self.reply(200, {"model_version": "al-loop"} if self.path.startswith("/setup") else {})

            do_GET = do_POST = serve  # noqa: N815 - http.server's names

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def paths(self) -> list[str]:
        return [p.split("?")[0] for p, _ in self.requests]

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture(scope="module")
def lsb(local_ls: Private) -> Private:
    """The session's Label Studio that may call local addresses (``local_ls`` in conftest)."""
    return local_ls


def env_of(server: Private, **extra: str) -> dict[str, str]:
    return {**os.environ, "LABEL_STUDIO_API_KEY": server.key, **extra}


# --------------------------------------------------------------------------- flags, before anything is made


@pytest.mark.parametrize(("extra", "says"), [
    (["--mode", "push"], "unknown --mode 'push'; use pull"),
    (["--mode", "backend"], "--mode backend needs --backend-url URL"),
    (["--backend-url", "http://127.0.0.1:9090"], "--backend-url and --basic-auth-env go with --mode backend"),
    (["--mode", "backend", "--backend-url", "127.0.0.1:9090"], "--backend-url '127.0.0.1:9090' is not an http(s)"),
    (["--mode", "backend", "--backend-url", "http://127.0.0.1:9090", "--basic-auth-env", "AL_B3_UNSET"],
     "environment variable AL_B3_UNSET (--basic-auth-env) is not set"),
    (["--mode", "backend", "--backend-url", "http://127.0.0.1:9090", "--basic-auth-env", "AL_B3_NOCOLON"],
     "(--basic-auth-env) is not user:password"),
    (["--import-pool"], "--import-pool goes with --mode backend"),
])
def test_backend_flags_are_one_line_before_anything_is_made(ls_server: Server, tmp_path: Path, extra: list[str],
                                                             says: str) -> None:
    db = tmp_path / "c.sqlite"
    name = title()
    args = ["campaign", "init", "--db", db, "--data", "digits", "--labels", ",".join(CLASSES),
            "--label-studio-url", ls_server.url, "--title", name, *extra]
    env = {k: v for k, v in os.environ.items() if k != "AL_B3_UNSET"}
    line = one_line_error(cli(args, env={**env, "AL_B3_NOCOLON": "justauser"}), ls_server.api_key)
    assert says in line, line
    assert not db.exists()
    assert not any(p["title"] == name for p in api(ls_server, "/api/projects?page_size=1000")["results"])


def test_a_server_that_blocks_local_addresses_says_how_to_allow_them(ls_server: Server, tmp_path: Path) -> None:
    """The shared server runs with Label Studio's defaults: it refuses the webhook at 127.0.0.1 (HTTP 403)."""
    db = tmp_path / "c.sqlite"
    name = title()
    proc = cli(init_args(db, ls_server.url, name, f"http://127.0.0.1:{free_port()}"))
    try:
        line = one_line_error(proc, ls_server.api_key)
        assert "refuses to call a local address" in line and "SSRF_PROTECTION_ENABLED=false ML_BLOCK_LOCAL_IP=false" \
            in line and "API key" not in line, line
        assert not db.exists()
    finally:
        for p in api(ls_server, "/api/projects?page_size=1000")["results"]:
            if p["title"] == name:  # made before the refusal; a rerun with the fix adopts it by title
                delete_project(ls_server.url, ls_server.api_key, int(p["id"]))


# --------------------------------------------------------------------------- registrations (private server)


def test_init_registers_the_webhook_and_the_model_and_a_rerun_adopts_them(lsb: Private, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", lsb.key)
    model = Model()
    try:
        db = tmp_path / "c.sqlite"
        proc = cli(init_args(db, lsb.url, title(), model.url), env=env_of(lsb))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"al-loop serve --db {db}" in " ".join(proc.stderr.split())
        params, state = run_state(db)
        assert params["mode"] == "backend" and params["backend_url"] == model.url and "basic_auth_env" not in params
        project = int(state["project_id"] or -1)
        hooks = [h for h in api(lsb, f"/api/webhooks?project={project}") if h["project"] == project]
        assert [(h["id"], h["url"], h["send_payload"], h["send_for_all_actions"]) for h in hooks] == [
            (int(state["webhook_id"] or -1), f"{model.url}/webhook", True, False)]
        assert sorted(hooks[0]["actions"]) == sorted(WEBHOOK_ACTIONS)
        backends = api(lsb, f"/api/ml?project={project}")
        assert [(b["id"], b["url"], b["is_interactive"], b["title"]) for b in backends] == [
            (int(state["ml_backend_id"] or -1), model.url, False, "al-loop")]
        assert "/health" in model.paths() and "/setup" in model.paths()  # Label Studio checked the model
        assert api(lsb, f"/api/ml/{state['ml_backend_id']}")["readable_state"] == "Connected"
        # again (what `al-loop serve` does when it starts): the same registrations, none added
        assert connect_backend(str(db)) == {"webhook_id": state["webhook_id"], "ml_backend_id": state["ml_backend_id"]}
        assert len([h for h in api(lsb, f"/api/webhooks?project={project}") if h["project"] == project]) == 1
        assert len(api(lsb, f"/api/ml?project={project}")) == 1
        # Label Studio calls the registered webhook when a person answers
        task = api(lsb, f"/api/tasks?project={project}&page_size=1")["tasks"][0]
        reply = httpx.post(f"{lsb.url}/api/tasks/{task['id']}/annotations",
                           headers={"Authorization": f"Token {lsb.key}"}, timeout=30,
                           json={"result": [{"from_name": "label", "to_name": "image", "type": "choices",
                                             "value": {"choices": [CLASSES[0]]}}]})
        assert reply.status_code == 201, reply.text
        for _ in range(100):
            if any(p == "/webhook" and (b or {}).get("action") == "ANNOTATION_CREATED" for p, b in model.requests):
                break
            time.sleep(0.1)
        sent = [b for p, b in model.requests if p == "/webhook" and (b or {}).get("action") == "ANNOTATION_CREATED"]
        assert sent and sent[0]["task"]["id"] == task["id"] and sent[0]["annotation"]["id"] == reply.json()["id"]
    finally:
        model.close()


def test_init_before_serve_leaves_the_model_to_register_when_it_listens(lsb: Private, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", lsb.key)
    port = free_port()
    db = tmp_path / "c.sqlite"
    proc = cli(init_args(db, lsb.url, title(), f"http://127.0.0.1:{port}"), env=env_of(lsb))
    assert proc.returncode == 0, proc.stderr[-2000:]
    said = " ".join(proc.stderr.split())
    assert "`al-loop serve` registers the model with project" in said and "once it listens" in said, said
    params, state = run_state(db)
    project = int(state["project_id"] or -1)
    assert state["webhook_id"] is not None and state["ml_backend_id"] is None
    assert api(lsb, f"/api/ml?project={project}") == []
    with pytest.raises(OracleError, match=f"could not reach the model at http://127.0.0.1:{port}"):
        connect_backend(str(db))
    line = one_line_error(cli(["campaign", "connect", "--db", db], env=env_of(lsb)), lsb.key)
    assert f"could not reach the model at http://127.0.0.1:{port}; check that `al-loop serve` listens" in line
    assert run_state(db)[1] == state  # nothing new recorded, nothing registered twice
    assert len([h for h in api(lsb, f"/api/webhooks?project={project}") if h["project"] == project]) == 1
    model = Model(port=port)  # serve comes up at the run's backend URL
    try:
        proc = cli(["campaign", "connect", "--db", db], env=env_of(lsb))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "Model settings show it connected" in " ".join(proc.stderr.split())
        got = connect_backend(str(db))  # again: adopted, nothing added
        assert got["webhook_id"] == state["webhook_id"] and run_state(db)[1]["ml_backend_id"] == got["ml_backend_id"]
        assert [b["id"] for b in api(lsb, f"/api/ml?project={project}")] == [int(got["ml_backend_id"])]
        assert params["backend_url"] == model.url
    finally:
        model.close()


def test_wrong_basic_auth_at_init_is_one_line_and_the_right_one_registers(lsb: Private, tmp_path: Path) -> None:
    model = Model(auth="al:s3cret")
    try:
        db = tmp_path / "c.sqlite"
        name = title()
        args = init_args(db, lsb.url, name, model.url) + ["--basic-auth-env", "AL_B3_AUTH"]
        line = one_line_error(cli(args, env=env_of(lsb, AL_B3_AUTH="al:wrong")), lsb.key)
        assert "the backend refused Label Studio's basic auth" in line and "--basic-auth-env" in line, line
        assert "wrong" not in line and not db.exists()
        proc = cli(args, env=env_of(lsb, AL_B3_AUTH="al:s3cret"))  # the project made above is adopted by title
        assert proc.returncode == 0, proc.stderr[-2000:]
        params, state = run_state(db)
        assert params["basic_auth_env"] == "AL_B3_AUTH" and "s3cret" not in json.dumps(params)
        backend = api(lsb, f"/api/ml/{state['ml_backend_id']}")
        assert backend["auth_method"] == "BASIC_AUTH" and backend["basic_auth_user"] == "al"
        assert backend["readable_state"] == "Connected"
    finally:
        model.close()


# --------------------------------------------------------------------------- with al-loop serve itself


def start_serve(db: Path, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    """``al-loop serve`` on ``port``, returned once it registered the run (its ``ml_backend_id`` is recorded)."""
    serve = subprocess.Popen([*CLI, "serve", "--db", str(db), "--port", str(port)], text=True, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while run_state(db)[1]["ml_backend_id"] is None:
        if serve.poll() is not None:
            raise AssertionError(serve.communicate()[1][-2000:])
        if time.monotonic() > deadline:
            serve.kill()
            raise AssertionError(f"serve did not register the model: {serve.communicate()[1][-2000:]}")
        time.sleep(0.3)
    return serve


def test_init_then_serve_label_studio_sends_each_answer_to_the_store(lsb: Private, tmp_path: Path) -> None:
    """The user's order: init --mode backend (nothing listens yet), serve; an answer reaches the store by webhook."""
    port = free_port()
    db = tmp_path / "c.sqlite"
    proc = cli(init_args(db, lsb.url, title(), f"http://127.0.0.1:{port}"), env=env_of(lsb))
    assert proc.returncode == 0, proc.stderr[-2000:]
    serve = start_serve(db, port, env_of(lsb))
    try:
        _, state = run_state(db)
        project = int(state["project_id"] or -1)
        assert api(lsb, f"/api/ml/{state['ml_backend_id']}")["readable_state"] == "Connected"
        # the round's Data Manager view (made by serve) shows the batch in al-loop's order
        deadline = time.monotonic() + 60
        while not (views := [v for v in api(lsb, f"/api/dm/views?project={project}")
                             if v["data"].get("title") == "al-loop round 0"]):
            assert time.monotonic() < deadline, "no view of round 0"
            time.sleep(0.3)
        shown = api(lsb, f"/api/tasks?project={project}&view={views[0]['id']}&page_size=100&fields=all")["tasks"]
        store = Store(db, readonly=True)
        try:
            pool = build_pool(store.config(1))
            ranks = {sel.pool_id: sel.rank for sel in store.selections(1) if sel.round == 0}
        finally:
            store.close()
        assert [int(t["data"]["al_pool_id"]) for t in shown] == sorted(ranks, key=ranks.get)
        tasks = api(lsb, f"/api/tasks?project={project}&page_size=100")["tasks"]
        truth = dict(zip(pool.ids.tolist(), pool.hidden_labels(pool.ids).tolist(), strict=True))
        given = {}
        for task in tasks[:3]:
            pool_id = int(task["data"]["al_pool_id"])
            label = CLASSES[int(truth[pool_id])]
            reply = httpx.post(f"{lsb.url}/api/tasks/{task['id']}/annotations",
                               headers={"Authorization": f"Token {lsb.key}"}, timeout=30,
                               json={"result": [{"from_name": "label", "to_name": "image", "type": "choices",
                                                 "value": {"choices": [label]}}]})
            assert reply.status_code == 201, reply.text
            given[pool_id] = (label, str(reply.json()["id"]))
        deadline = time.monotonic() + 30
        while True:  # no `campaign run`, no pull: only Label Studio's webhook calls brought them
            store = Store(db, readonly=True)
            try:
                got = {lab.pool_id: (lab.label, lab.annotation_id) for lab in store.labels(1)
                       if lab.status == "labeled"}
            finally:
                store.close()
            if got == given or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert got == given
    finally:
        serve.send_signal(signal.SIGTERM)
        _, err = serve.communicate(timeout=30)
    assert serve.returncode == 143, err
