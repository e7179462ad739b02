"""Label Studio itself calls our webhook: answers recorded as a pull records them, rounds advanced (issue #16, B2).

The session's Label Studio that may call 127.0.0.1 (``local_ls`` in conftest:
SSRF protection off, as ``tests/integration/test_backend_campaign.py`` explains) posts its
events to the FastAPI app of ``oracles.ls_backend.app`` served by uvicorn in
this process, with a :class:`~al_loop.backend_driver.BackendDriver` subscribed
to the webhook (what ``al-loop serve`` runs). People answer through the API
(:class:`tests.integration.annotator.Annotator`), so every event is one Label
Studio made. Label Studio 1.23 without a job queue posts a webhook inside the
request that caused it, so an annotation's event has been handled when the
API call returns.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from al_loop.api import build_learner, build_pool, build_strategy
from al_loop.backend_driver import BackendDriver
from al_loop.campaign import CampaignOptions, _open_run, init_campaign
from al_loop.controller import Controller
from al_loop.store import Store
from oracles.ls_backend import webhook
from oracles.ls_backend.webhook import ACTIONS
from tests.integration.annotator import Annotator
from tests.integration.conftest import LOCAL_KEY_ENV
from tests.integration.test_campaign import free_port
from tests.integration.test_campaign_recovery import Private

pytestmark = pytest.mark.labelstudio

CLASSES = [str(i) for i in range(10)]
INIT, BATCH = 4, 3


@pytest.fixture(scope="module")
def lsw(local_ls: Private) -> Private:
    """The session's Label Studio that may call local addresses (``local_ls`` in conftest)."""
    return local_ls


class Serve:
    """What ``al-loop serve`` runs for one campaign run: the app (uvicorn, a thread) and the driver."""

    def __init__(self, db: Path, port: int) -> None:
        self.db, self.port = db, port
        self.url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self.events: list[tuple[dict[str, Any], Any]] = []

    def start(self) -> Serve:
        import uvicorn

        from oracles.ls_backend.app import create_app

        self.store = Store(self.db)
        self.run_id, _params, _key, self.oracle = _open_run(self.store, str(self.db), None, {})
        config = self.store.config(self.run_id)
        pool = build_pool(config)
        ctl = Controller(self.store, self.run_id, pool, build_learner(config.learner, pool),
                         build_strategy(config.strategy, config.strategy_params), self.oracle, log=self.lines.append)
        self.driver = BackendDriver(ctl, pull_every=3600, log=self.lines.append)  # no tick: events drive it
        self.unsubscribe = [webhook.subscribe(self.store, self.run_id, self.driver.notify),
                            webhook.subscribe(self.store, self.run_id, lambda r, p: self.events.append((r, p)))]
        self.server = uvicorn.Server(uvicorn.Config(create_app(self.store, self.run_id), host="127.0.0.1",
                                                    port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        until(lambda: self.server.started, "uvicorn started")
        self.driver.start()
        self.driver.drain()
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.driver.stop(60)
        for unsubscribe in self.unsubscribe:
            unsubscribe()
        self.oracle.close()
        self.store.close()

    def post(self, payload: Any) -> dict[str, Any]:
        reply = httpx.post(f"{self.url}/webhook", json=payload, timeout=30)
        assert reply.status_code == 200, reply.text
        return reply.json()


def until(cond: Callable[[], Any], what: str, seconds: float = 120.0) -> Any:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds:.0f} s: {what}")


@pytest.fixture
def camp(lsw: Private, tmp_path: Path) -> Iterator[tuple[Serve, Annotator]]:
    """A campaign (seed batch sent), its webhook registered, served; the project deleted afterwards."""
    db = tmp_path / "c.sqlite"
    run = init_campaign(str(db), data="digits", classes=CLASSES, strategy="margin", batch=BATCH, init=INIT,
                        options=CampaignOptions(url=lsw.url, title=f"al-loop-b2-{uuid.uuid4().hex[:8]}",
                                                kind="image", api_key_env=LOCAL_KEY_ENV))
    store = Store(db, readonly=True)
    project = int(store.oracle_state(run, "project_id") or -1)
    store.close()
    serve = Serve(db, free_port()).start()
    headers = {"Authorization": f"Token {lsw.key}"}
    hook = httpx.post(f"{lsw.url}/api/webhooks", headers=headers, timeout=30, json={
        "project": project, "url": f"{serve.url}/webhook", "send_payload": True, "actions": list(ACTIONS)})
    assert hook.status_code == 201, hook.text
    try:
        yield serve, Annotator(lsw.url, lsw.key, project)
    finally:
        serve.stop()
        httpx.delete(f"{lsw.url}/api/projects/{project}", headers=headers, timeout=60)


def key(serve: Serve, round_: int, pool_id: int) -> str:
    cid = serve.store.config(serve.run_id).oracle_params["campaign_id"]
    return f"{cid}:{serve.run_id}:{round_}:{pool_id}"


def sent(serve: Serve, round_: int) -> list[int]:
    return [r.pool_id for r in serve.store.outbox(serve.run_id, round_)]


def label_rows(serve: Serve) -> list[tuple[Any, ...]]:
    return [(r.pool_id, r.status, r.label, r.annotation_id, r.updated_at, r.annotator)
            for r in serve.store.labels(serve.run_id)]


def test_an_annotation_is_recorded_from_its_webhook_as_a_pull_records_it(camp: tuple[Serve, Annotator]) -> None:
    serve, person = camp
    first, second = sent(serve, 0)[:2]
    ann = person.label(key(serve, 0, first), "3")
    rows = until(lambda: label_rows(serve), "the webhook recorded the answer")
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [(first, "labeled", "3", str(ann))]
    (pulled,) = [a for a in serve.oracle.collect(serve.run_id, 0) if a.pool_id == first]
    assert rows[0] == (pulled.pool_id, pulled.status, pulled.label, pulled.annotation_id, pulled.updated_at,
                       pulled.annotator)
    assert pulled.annotator and "@" in pulled.annotator  # the e-mail, as the pull names people
    created = next(p for r, p in serve.events if p["action"] == "ANNOTATION_CREATED")

    # a replayed event and an older one after a newer one change nothing
    assert serve.post(created)["unchanged"] == 1
    person.edit(ann, "5")
    until(lambda: label_rows(serve)[0][2] == "5", "the edit recorded")
    late = serve.post(created)
    assert late["status"] == "ignored" and "older than the one recorded" in late["reason"]
    assert label_rows(serve)[0][2] == "5"

    # an invalid class is quarantined, a skip recorded, a deletion applied
    person.label(key(serve, 0, second), "zebra")
    until(lambda: serve.store.quarantine(serve.run_id), "the invalid answer quarantined")
    person.delete(ann)
    until(lambda: not label_rows(serve), "the deletion applied")
    assert [q.pool_id for q in serve.store.quarantine(serve.run_id)] == [second]


def test_the_round_advances_when_its_batch_is_answered(camp: tuple[Serve, Annotator]) -> None:
    serve, person = camp
    ids = sent(serve, 0)
    truth = build_pool(serve.store.config(serve.run_id)).hidden_labels(np.asarray(ids))
    for pid, y in zip(ids, truth, strict=True):
        person.label(key(serve, 0, pid), CLASSES[int(y)])
    until(lambda: serve.store.current_round(serve.run_id).idx == 1
          and serve.store.current_round(serve.run_id).state == "AWAITING", "round 1 sent")
    nxt = sent(serve, 1)
    assert len(nxt) == BATCH and not set(nxt) & set(ids)
    for pid in nxt:  # the next batch is in Label Studio, once each
        assert len(person.tasks(key(serve, 1, pid))) == 1
    assert [(r.idx, r.state) for r in serve.store.rounds(serve.run_id)] == [(0, "LABELED"), (1, "AWAITING")]


def test_a_missed_webhook_is_collected_by_the_pull_on_restart(camp: tuple[Serve, Annotator]) -> None:
    serve, person = camp
    ids = sent(serve, 0)
    keys = {pid: key(serve, 0, pid) for pid in ids}
    truth = build_pool(serve.store.config(serve.run_id)).hidden_labels(np.asarray(ids))
    serve.stop()  # serve is down: Label Studio's posts fail (it logs them and does not retry)
    for pid, y in zip(ids, truth, strict=True):
        person.label(keys[pid], CLASSES[int(y)])
    serve.start()  # the worker reconciles first, then advances
    assert sorted(r.pool_id for r in serve.store.labels(serve.run_id)) == sorted(ids)
    assert serve.events == []  # no event brought them
    until(lambda: serve.store.current_round(serve.run_id).state == "AWAITING"
          and serve.store.current_round(serve.run_id).idx == 1, "round 1 sent after the restart")
    assert any("the reconciling pull found" in line for line in serve.lines)


def test_al_loop_serve_advances_every_n_answers_with_a_view_and_predictions(lsw: Private, tmp_path: Path) -> None:
    """The CLI: ``al-loop serve --train-every 2``; kill -9 and a restart make nothing twice."""
    import subprocess
    import sys

    db = tmp_path / "c.sqlite"
    run = init_campaign(str(db), data="digits", classes=CLASSES, strategy="margin", batch=BATCH, init=INIT,
                        options=CampaignOptions(url=lsw.url, title=f"al-loop-b2-{uuid.uuid4().hex[:8]}",
                                                kind="image", api_key_env=LOCAL_KEY_ENV))
    store = Store(db, readonly=True)
    project = int(store.oracle_state(run, "project_id") or -1)
    cid = store.config(run).oracle_params["campaign_id"]
    first = [r.pool_id for r in store.outbox(run, 0)]
    store.close()
    headers = {"Authorization": f"Token {lsw.key}"}
    port = free_port()

    def serve() -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", "from al_loop.cli import main; main()", "serve", "--db",
                                 str(db), "--port", str(port), "--train-every", "2"], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        until(lambda: _up(port) or proc.poll() is not None, "serve answers /health")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        return proc

    def rounds() -> list[tuple[int, str]]:
        s = Store(db, readonly=True)
        try:
            return [(r.idx, r.state) for r in s.rounds(run)]
        finally:
            s.close()

    def ls(path: str) -> Any:
        return httpx.get(f"{lsw.url}{path}", headers=headers, timeout=60).json()

    proc = serve()
    try:
        hook = httpx.post(f"{lsw.url}/api/webhooks", headers=headers, timeout=30, json={
            "project": project, "url": f"http://127.0.0.1:{port}/webhook", "send_payload": True,
            "actions": list(ACTIONS)})
        assert hook.status_code == 201, hook.text
        person = Annotator(lsw.url, lsw.key, project)
        for pid in first[:2]:
            person.label(f"{cid}:{run}:0:{pid}", "1")
        until(lambda: rounds() == [(0, "LABELED"), (1, "AWAITING")], "round 1 sent after 2 answers")
        version = f"al-loop run {run} round 1"

        def predicted() -> list[int]:
            tasks = ls(f"/api/tasks?project={project}&page_size=100&fields=all")["tasks"]
            return sorted(t["id"] for t in tasks for p in t["predictions"] if p["model_version"] == version)

        until(lambda: len(predicted()) == len(first) - 2 + BATCH, "predictions for every unlabeled task")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        proc = serve()  # reconciles, finds nothing to do
        time.sleep(3)
        assert rounds() == [(0, "LABELED"), (1, "AWAITING")]
        views = [v["data"]["title"] for v in ls(f"/api/dm/views?project={project}")]
        assert sorted(t for t in views if t.startswith("al-loop round")) == ["al-loop round 0", "al-loop round 1"]
        assert len(predicted()) == len(first) - 2 + BATCH  # none written twice
        assert len(ls(f"/api/tasks?project={project}&page_size=100&include=id")["tasks"]) == len(first) + BATCH
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        httpx.delete(f"{lsw.url}/api/projects/{project}", headers=headers, timeout=60)


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
