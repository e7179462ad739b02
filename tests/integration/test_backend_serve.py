"""Label Studio itself calls ``al-loop serve``'s ``/predict`` (issue #16, lane B1).

Label Studio 1.23 refuses an ML backend at a local address unless it runs
with ``ML_BLOCK_LOCAL_IP=false`` (and webhooks with
``SSRF_PROTECTION_ENABLED=false``); the shared test server does not, so this
module uses the session's server started with both (``local_ls`` in conftest).
A campaign on digits is made by ``campaign init``, its seed batch answered with
the ground truth and round 1 sent by ``campaign run``; then ``al-loop serve``
runs on the store, the backend is registered through the API (``POST
/api/ml``) and the Data Manager's *Retrieve Predictions* action
(``POST /api/dm/actions?id=retrieve_tasks_predictions``) makes Label Studio
post the project's tasks to ``/predict`` in one batch.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from al_loop.api import build_pool
from al_loop.campaign import CampaignOptions, init_campaign, run_campaign
from al_loop.store import Store
from tests.harness.campaign_crash_table import BATCH, CLASSES, INIT, TruthAnnotator
from tests.integration.test_campaign import CLI, free_port, title
from tests.integration.test_campaign_recovery import Private

pytestmark = pytest.mark.labelstudio

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lsp(local_ls: Private) -> Private:
    """The session's Label Studio that may call local addresses (``local_ls`` in conftest)."""
    return local_ls


def rest(server: Private, method: str, path: str, body: Any = None) -> Any:
    reply = httpx.request(method, f"{server.url}{path}", json=body, timeout=120,
                          headers={"Authorization": f"Token {server.key}"})
    assert reply.status_code < 400, (path, reply.status_code, reply.text[:500])
    return reply.json() if reply.content else None


def tasks_of(server: Private, project: int) -> list[dict[str, Any]]:
    got = rest(server, "GET", f"/api/tasks?project={project}&fields=all&page_size=1000")
    return list(got["tasks"] if isinstance(got, dict) else got)


def test_label_studio_asks_serve_for_predictions_and_stores_our_score_and_model_version(
        lsp: Private, tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    run_id = init_campaign(str(db), data="digits", classes=CLASSES, strategy="margin", batch=BATCH, init=INIT,
                           options=CampaignOptions(url=lsp.url, title=title(), kind="image", api_key_env=None,
                                                   api_key_file=str(lsp.dir / "token")))
    store = Store(db, readonly=True)
    project = int(store.oracle_state(run_id, "project_id") or -1)
    pool = build_pool(store.config(run_id))
    store.close()
    TruthAnnotator(lsp.url, lsp.key, project, pool).answer_pending()

    def round_1_sent() -> bool:
        view = Store(db, readonly=True)
        try:
            rnd = view.current_round(run_id)
            return rnd.idx == 1 and rnd.state == "AWAITING"
        finally:
            view.close()

    run_campaign(str(db), poll=0.2, should_stop=round_1_sent)
    assert round_1_sent()
    # a task that is none of al-loop's: Label Studio asks for it in the same batch
    rest(lsp, "POST", f"/api/projects/{project}/import", [{"image": "https://example.invalid/x.png"}])

    port = free_port()
    serve = subprocess.Popen([*CLI, "serve", "--db", str(db), "--port", str(port)], cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert serve.poll() is None, serve.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)
        backend = rest(lsp, "POST", "/api/ml", {"url": f"http://127.0.0.1:{port}", "project": project,
                                                "title": "al-loop"})
        assert backend["state"] == "CO" and backend["model_version"] == f"al-loop run {run_id} round 1", backend
        done = rest(lsp, "POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={project}",
                    {"project": project, "selectedItems": {"all": True, "excluded": []}})
        assert done is not None
        tasks = tasks_of(lsp, project)
    finally:
        serve.send_signal(signal.SIGINT)
        _, err = serve.communicate(timeout=30)
    assert serve.returncode == 130, err

    version = f"al-loop run {run_id} round 1"
    store = Store(db, readonly=True)
    ranks = {s.pool_id: s.rank for s in store.selections(run_id) if s.round == 1}
    guesses = {o.pool_id: json.loads(o.prediction_json)["label"] for o in store.outbox(run_id, 1)}
    store.close()
    ours = {}
    for t in tasks:
        preds = [p for p in t.get("predictions") or [] if p.get("model_version") == version]
        if "al_pool_id" not in t["data"]:  # the foreign task: an empty prediction, the batch went on
            assert [p["result"] for p in preds] == [[]] and preds[0]["score"] is None, t.get("predictions")
            continue
        assert len(preds) == 1, (t["id"], t.get("predictions"))
        ours[int(t["data"]["al_pool_id"])] = preds[0]
    assert set(ranks) <= set(ours) and len(ours) == INIT + BATCH
    for pool_id, rank in ranks.items():
        pred = ours[pool_id]
        assert pred["score"] == pytest.approx(0.5 * rank / BATCH)
        assert pred["result"][0]["value"]["choices"] == [guesses[pool_id]]
        assert (pred["result"][0]["from_name"], pred["result"][0]["to_name"]) == ("label", "image")
    seed = [p for p in ours if p not in ranks]
    assert all(0.5 < ours[p]["score"] <= 1.0 for p in seed)
    order = sorted(ours, key=lambda p: ours[p]["score"])
    assert order[:BATCH] == sorted(ranks, key=ranks.get)  # sorted by score: al-loop's order first


def test_serve_registers_a_backend_mode_campaign_once_it_listens(lsp: Private, tmp_path: Path) -> None:
    db = tmp_path / "b.sqlite"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run_id = init_campaign(str(db), data="digits", classes=CLASSES, strategy="margin", batch=BATCH, init=INIT,
                           options=CampaignOptions(url=lsp.url, title=title(), kind="image", api_key_env=None,
                                                   api_key_file=str(lsp.dir / "token"), mode="backend",
                                                   backend_url=url))
    serve = subprocess.Popen([*CLI, "serve", "--db", str(db), "--port", str(port)], cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert serve.poll() is None, serve.communicate()[1]
            view = Store(db, readonly=True)
            backend_id = view.oracle_state(run_id, "ml_backend_id")
            project = int(view.oracle_state(run_id, "project_id") or -1)
            view.close()
            if backend_id is not None:
                break
            assert time.monotonic() < deadline, "serve did not register the backend"
            time.sleep(0.3)
        registered = rest(lsp, "GET", f"/api/ml/{backend_id}")
        assert (registered["url"].rstrip("/"), registered["project"], registered["state"]) == (url, project, "CO")
        assert registered["model_version"] == f"al-loop run {run_id} round 0"
    finally:
        serve.send_signal(signal.SIGTERM)
        _, err = serve.communicate(timeout=30)
    assert serve.returncode == 143, err
    assert f"run {run_id}: registered in Label Studio (" in err
