"""``campaign init --import-pool`` against the real Label Studio: every pool item a task, imported once.

The pool import (``oracles.ls_pool``) in chunks, resumed after a crash without
a second copy of any task, the seed batch marked on its pool tasks instead of
created, a later round's submit marking (and a deleted pool task created
anew), and the webhook's word on an annotation of a pool task no round selected.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import oracles.ls_pool as ls_pool
from al_loop.campaign import CampaignOptions, _open_run, init_campaign
from al_loop.run_pool import RunPool
from al_loop.store import Store
from al_loop.types import OutboxItem
from oracles.ls_backend.webhook import handle_event
from tests.integration.conftest import LOCAL_KEY_ENV, Server

pytestmark = pytest.mark.labelstudio

CLASSES = [str(i) for i in range(10)]
CHUNK = 400  # digits' pool (1,437 items) in 4 chunks


def tasks_of(server: Server, project: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        reply = httpx.get(f"{server.url}/api/tasks", params={"project": project, "page": page, "page_size": 1000,
                                                            "include": "id,data"},
                          headers={"Authorization": f"Token {server.api_key}"}, timeout=120)
        if reply.status_code == 404:
            return out
        got = reply.json()["tasks"]
        out.extend(got)
        if len(out) >= reply.json()["total"] or not got:
            return out
        page += 1


@pytest.fixture
def camp(local_ls: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Store, int, Any, list[str]]]:
    monkeypatch.setattr(ls_pool, "CHUNK", CHUNK)
    db = tmp_path / "c.sqlite"
    lines: list[str] = []
    init_campaign(str(db), data="digits", classes=CLASSES, strategy="margin", batch=3, init=6,
                  options=CampaignOptions(url=local_ls.url, title=f"al-loop-pool-{uuid.uuid4().hex[:8]}",
                                          kind="image", api_key_env=LOCAL_KEY_ENV, mode="backend", backend_url="http://127.0.0.1:9",
                                          import_pool=True), log=lines.append)
    store = Store(db)
    run, _params, _key, oracle = _open_run(store, str(db), None, {})
    try:
        yield store, run, oracle, lines
    finally:
        httpx.delete(f"{local_ls.url}/api/projects/{oracle.project_id}",
                     headers={"Authorization": f"Token {local_ls.api_key}"}, timeout=60)
        oracle.close()
        store.close()


def test_every_pool_item_is_one_task_and_the_seed_batch_is_marked_on_them(
        local_ls: Server, camp: tuple[Store, int, Any, list[str]]) -> None:
    store, run, oracle, lines = camp
    n = len(oracle.pool_source.ids())
    tasks = tasks_of(local_ls, oracle.project_id)
    assert sorted(t["data"]["al_pool_id"] for t in tasks) == sorted(int(p) for p in oracle.pool_source.ids())
    assert [ln for ln in lines if ln.startswith("pool import:")][-1].startswith(f"pool import: {n}/{n}")
    assert len([ln for ln in lines if ln.startswith("pool import:")]) == -(-n // CHUNK)
    assert ls_pool.progress(oracle.pool_source.state) == {"imported": n, "total": n}
    seed = {o.pool_id: o.remote_id for o in store.outbox(run, 0)}
    assert len(seed) == 6
    keyed = {t["data"]["al_pool_id"]: t for t in tasks if "al_key" in t["data"]}
    assert set(keyed) == set(seed)  # the seed batch is on its pool tasks, no task was added for it
    for pid, task in keyed.items():
        assert str(task["id"]) == seed[pid]
        assert task["data"]["al_round"] == 0 and task["data"]["al_key"].endswith(f"{run}:0:{pid}")
    assert {k for t in tasks for k in t["data"]} >= {"image", "al_run", "al_pool_id", "al_campaign"}


def test_an_import_cut_short_goes_on_without_a_second_copy(local_ls: Server,
                                                           camp: tuple[Store, int, Any, list[str]]) -> None:
    store, run, oracle, _lines = camp
    source = oracle.pool_source
    before = {t["data"]["al_pool_id"]: t["id"] for t in tasks_of(local_ls, oracle.project_id)}
    last = ls_pool.chunks(source.ids(), CHUNK)[-1]
    third = ls_pool.chunks(source.ids(), CHUNK)[2]
    seed = {o.pool_id for o in store.outbox(run, 0)}
    # A crash after the server took the last chunk, before it was recorded; and one in the third chunk's send
    # that left three of its tasks out (they are deleted here).
    with store.write() as s:
        from al_loop.schema import ProjectRow

        for start in (int(last[0]), int(third[0])):
            s.delete(s.get(ProjectRow, (run, ls_pool.TASKS_KEY.format(start=start))))
    gone = [p for p in map(int, third) if p not in seed][:3]
    for pid in gone:
        httpx.delete(f"{local_ls.url}/api/tasks/{before[pid]}", headers={"Authorization": f"Token {local_ls.api_key}"},
                     timeout=60).raise_for_status()
    lines: list[str] = []
    mapping = ls_pool.ensure_pool_tasks(oracle, RunPool(run, source.pool, store), lines.append)
    after = tasks_of(local_ls, oracle.project_id)
    assert len(after) == len(before)  # only the three deleted were imported again
    assert sorted(t["data"]["al_pool_id"] for t in after) == sorted(before)
    assert {p: t for p, t in mapping.items() if p not in gone} == {p: t for p, t in before.items() if p not in gone}
    assert all(mapping[p] != before[p] for p in gone)
    assert len(lines) == 2  # the two chunks that were not recorded; the others were read from the store


def test_a_later_round_marks_its_pool_tasks_and_a_deleted_one_is_created_anew(
        local_ls: Server, camp: tuple[Store, int, Any, list[str]]) -> None:
    store, run, oracle, _lines = camp
    mapping = oracle.pool_tasks()
    seed = {o.pool_id for o in store.outbox(run, 0)}
    free = [int(p) for p in oracle.pool_source.ids() if int(p) not in seed][:2]
    httpx.delete(f"{local_ls.url}/api/tasks/{mapping[free[1]]}",
                 headers={"Authorization": f"Token {local_ls.api_key}"}, timeout=60).raise_for_status()
    items = [OutboxItem(run_id=run, round=1, pool_id=p, payload=oracle.pool_source.payload(p)) for p in free]
    got = oracle.submit(items)
    assert got[items[0].key] == str(mapping[free[0]])  # marked, not created
    assert got[items[1].key] != str(mapping[free[1]])  # its pool task was deleted: a new task
    assert oracle.submit(items) == got  # idempotent
    tasks = tasks_of(local_ls, oracle.project_id)
    assert len(tasks) == len(oracle.pool_source.ids())
    round1 = {t["data"]["al_pool_id"]: t for t in tasks if t["data"].get("al_round") == 1}
    assert set(round1) == set(free)


def test_an_annotation_on_a_pool_task_no_round_selected_is_not_an_answer_yet(
        camp: tuple[Store, int, Any, list[str]]) -> None:
    store, run, oracle, _lines = camp
    seed = {o.pool_id for o in store.outbox(run, 0)}
    pid = next(int(p) for p in oracle.pool_source.ids() if int(p) not in seed)
    task = {"id": oracle.pool_tasks()[pid], "data": {"al_run": run, "al_pool_id": pid,
                                                     "al_campaign": oracle.campaign_id}}
    ann = {"id": 999, "task": task["id"], "result": [{"from_name": "label", "to_name": "image", "type": "choices",
                                                      "value": {"choices": ["3"]}}],
           "was_cancelled": False, "updated_at": "2026-12-02T10:00:00Z", "completed_by": 1}
    out = handle_event(store, run, {"action": "ANNOTATION_CREATED", "annotation": ann, "task": task,
                                    "project": {"id": oracle.project_id}})
    assert out["status"] == "ignored" and "no round has selected yet" in out["reason"]
    assert pid not in {lab.pool_id for lab in store.labels(run)}


def test_serves_predictions_cover_the_whole_pool_and_the_batch_sorts_first(
        local_ls: Server, camp: tuple[Store, int, Any, list[str]]) -> None:
    """The point of --import-pool: serve's bulk predictions score every pool task; ascending score = batch first."""
    from al_loop.api import build_learner, build_pool, build_strategy
    from al_loop.controller import Controller
    from oracles.ls_backend.model import RunPredictor
    from oracles.ls_backend.rounds import write_predictions
    from tests.integration.annotator import Annotator

    store, run, oracle, _lines = camp
    config = store.config(run)
    pool = build_pool(config)
    person = Annotator(local_ls.url, local_ls.api_key, oracle.project_id)
    for o in store.outbox(run, 0):  # the seed batch answered in Label Studio, then round 1 selected and marked
        person.label(f"{oracle.campaign_id}:{run}:0:{o.pool_id}", CLASSES[o.pool_id % 10])
    ctl = Controller(store, run, pool, build_learner(config.learner, pool),
                     build_strategy(config.strategy, config.strategy_params), oracle)
    while store.current_round(run).idx < 1 or store.current_round(run).state != "AWAITING":
        ctl.step()
    predictor = RunPredictor(store, run)
    assert predictor.current_round() == 1
    written = write_predictions(oracle, store, run, predictor.model_version(), predictor.predict, chunk=500)
    n = len(oracle.pool_source.ids())
    assert written == n - len(store.outbox(run, 0))  # every task without an annotation
    reply = httpx.get(f"{local_ls.url}/api/predictions", params={"project": oracle.project_id},
                      headers={"Authorization": f"Token {local_ls.api_key}"}, timeout=120)
    preds = reply.json()
    preds = preds["results"] if isinstance(preds, dict) else preds
    by_task = {int(p["task"]): float(p["score"]) for p in preds}
    assert len(by_task) == written
    pool_of = {t: p for p, t in oracle.pool_tasks().items()}
    ranked = sorted(by_task, key=lambda t: (by_task[t], t))
    batch = sorted((s for s in store.selections(run) if s.round == 1), key=lambda s: s.rank)
    assert [pool_of[t] for t in ranked[:len(batch)]] == [s.pool_id for s in batch]
