"""The round's Data Manager view and bulk predictions against the real Label Studio (``oracles.ls_backend.rounds``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from al_loop.campaign import CampaignOptions, _open_run, init_campaign
from al_loop.store import Store
from oracles.ls_backend.rounds import (
    PREDICTIONS_KEY,
    ensure_round_view,
    show_model_version,
    tasks_without,
    write_predictions,
)
from tests.integration.conftest import Server

pytestmark = pytest.mark.labelstudio

CLASSES = [str(i) for i in range(10)]


@pytest.fixture
def camp(ls_server: Server, tmp_path: Path) -> Iterator[tuple[Store, int, Any]]:
    db = tmp_path / "c.sqlite"
    init_campaign(str(db), data="digits", classes=CLASSES, strategy="margin", batch=3, init=6,
                  options=CampaignOptions(url=ls_server.url, title=f"al-loop-b2-view-{uuid.uuid4().hex[:8]}",
                                          kind="image"))
    store = Store(db)
    run, _params, _key, oracle = _open_run(store, str(db), None, {})
    try:
        yield store, run, oracle
    finally:
        httpx.delete(f"{ls_server.url}/api/projects/{oracle.project_id}",
                     headers={"Authorization": f"Token {ls_server.api_key}"}, timeout=60)
        oracle.close()
        store.close()


def api(oracle: Any, path: str) -> Any:
    return oracle._rest("GET", path, "read", oracle._backoff())


def test_the_round_view_shows_the_batch_in_al_loops_order_once(camp: tuple[Store, int, Any]) -> None:
    store, run, oracle = camp
    view = ensure_round_view(oracle, store, run, 0)
    assert ensure_round_view(oracle, store, run, 0) == view  # idempotent: one view per round
    views = [v for v in api(oracle, f"/api/dm/views?project={oracle.project_id}")
             if v["data"].get("title") == "al-loop round 0"]
    assert [v["id"] for v in views] == [view]
    shown = api(oracle, f"/api/tasks?view={view}&page_size=100&include=id,data")["tasks"]
    order = [s.pool_id for s in sorted((s for s in store.selections(run) if s.round == 0), key=lambda s: s.rank)]
    assert [t["data"]["al_pool_id"] for t in shown] == order
    assert [t["data"]["al_rank"] for t in shown] == list(range(len(order)))
    assert store.oracle_state(run, "view:0") == str(view)


def test_predictions_are_written_in_chunks_once_per_model_version(camp: tuple[Store, int, Any]) -> None:
    store, run, oracle = camp
    lines: list[str] = []

    def predict(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"result": [{"from_name": "label", "to_name": "image", "type": "choices",
                             "value": {"choices": [CLASSES[t["data"]["al_pool_id"] % 10]]}}],
                 "score": 0.75} for t in tasks]

    version = f"al-loop run {run} round 0"
    assert write_predictions(oracle, store, run, version, predict, chunk=4, log=lines.append) == 6
    assert len(lines) == 2 and "6/6 task(s)" in lines[-1]
    assert json.loads(store.oracle_state(run, PREDICTIONS_KEY) or "{}") == {
        "model_version": version, "written": 6, "total": 6}
    assert tasks_without(oracle, run, version) == []
    assert write_predictions(oracle, store, run, version, predict) == 0  # a second pass writes nothing
    for task in api(oracle, f"/api/tasks?project={oracle.project_id}&page_size=100&fields=all")["tasks"]:
        ours = [p for p in task["predictions"] if p["model_version"] == version]
        assert len(ours) == 1 and ours[0]["score"] == 0.75  # /predict's score, written as it is
    # annotators see (and the score column counts) only the project's model version: it becomes the served one
    assert show_model_version(oracle, version)
    assert api(oracle, f"/api/projects/{oracle.project_id}")["model_version"] == version


def test_a_chunk_committed_then_dropped_is_not_written_twice(camp: tuple[Store, int, Any], ls_server: Server) -> None:
    from oracles.label_studio import LabelStudioOracle
    from tests.integration.faultproxy import FaultProxy

    store, run, oracle = camp
    version = f"al-loop run {run} round 0"

    def predict(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"result": [{"from_name": "label", "to_name": "image", "type": "choices",
                             "value": {"choices": ["1"]}}], "score": 0.2} for _ in tasks]

    with FaultProxy(ls_server.url) as proxy:
        via = LabelStudioOracle(proxy.url, ls_server.api_key, oracle.project_id, CLASSES,
                                campaign_id=oracle.campaign_id)
        proxy.inject("commit_then_drop", "POST", "/import/predictions", times=1)
        lines: list[str] = []
        write_predictions(via, store, run, version, predict, chunk=4, log=lines.append)
        via.close()
    assert proxy.outcomes("/import/predictions")[0] != "forwarded"
    assert any("did not confirm" in line for line in lines)
    for task in api(oracle, f"/api/tasks?project={oracle.project_id}&page_size=100&fields=all")["tasks"]:
        assert len([p for p in task["predictions"] if p["model_version"] == version]) == 1
