"""What annotators see and what the store makes of their answers, against a real Label Studio server.

Pre-annotations in every round (the project's model_version kept in step), one
rule for answers of several annotators, the kind of data checked before
anything is created, and ``campaign status`` / ``export`` of those answers.
Needs ``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY`` (see ``conftest.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from al_loop.campaign import campaign_status
from al_loop.config import RunConfig
from al_loop.exports import export_records
from al_loop.store import Store
from al_loop.types import OutboxItem
from oracles.label_studio import MODEL_VERSION, LabelStudioOracle, LabelStudioRetry, connect, task_for
from tests.integration.annotator import Annotator
from tests.integration.conftest import Server

pytestmark = pytest.mark.labelstudio

CLASSES = ("cat", "dog", "bird")
FAST = LabelStudioRetry(max_wait=30, initial_delay=0.2, max_delay=2, timeout=30)


def items(round_: int, n: int = 2, run: int = 1) -> list[OutboxItem]:
    start = 10 * round_
    return [OutboxItem(run_id=run, round=round_, pool_id=start + i, payload={"text": f"item {start + i}"},
                       prediction={"label": CLASSES[(start + i) % 3], "score": 0.4 + 0.1 * i}) for i in range(n)]


@pytest.fixture
def oracle_on(ls_server: Server, new_project: Callable[..., int]) -> Iterator[Callable[[], LabelStudioOracle]]:
    made: list[LabelStudioOracle] = []

    def make() -> LabelStudioOracle:
        oracle = LabelStudioOracle(ls_server.url, ls_server.api_key, new_project(CLASSES, "text"), CLASSES,
                                   retry=FAST)
        made.append(oracle)
        return oracle

    yield make
    for oracle in made:
        oracle.close()


def next_task(server: Server, project_id: int) -> dict:
    """The task Label Studio gives an annotator who presses *Label All Tasks* (the labeling stream)."""
    reply = httpx.get(f"{server.url}/api/projects/{project_id}/next",
                      headers={"Authorization": f"Token {server.api_key}"}, timeout=30)
    assert reply.status_code == 200, reply.text[:300]
    return reply.json()


# --------------------------------------------------------------------------- item 7: pre-annotations in every round


@pytest.mark.parametrize("history", ["new project", "project of an older al-loop"])
def test_the_labeling_stream_shows_the_prediction_in_round_3(ls_server: Server,
                                                             oracle_on: Callable[[], LabelStudioOracle],
                                                             history: str) -> None:
    oracle = oracle_on()
    person = Annotator(ls_server.url, ls_server.api_key, oracle.project_id)
    client = connect(ls_server.url, ls_server.api_key)
    first = 0
    if history == "project of an older al-loop":
        # An older al-loop gave every round its own version; Label Studio fixed the project at the first one.
        (old,) = [task_for(it, CLASSES) for it in items(0, n=1)]
        old["predictions"][0]["model_version"] = "al-loop:1:0"
        client.projects.import_tasks(id=oracle.project_id, request=[old], return_task_ids=True)
        assert client.projects.get(id=oracle.project_id).model_version == "al-loop:1:0"
        person.label("1:0:0", "cat")
        first = 1
    for round_ in range(first, 4):
        sent = items(round_)
        oracle.submit(sent)
        if round_ < 3:  # the annotator finishes the round; round 3 waits in the stream
            person.label_all([it.key for it in sent], lambda key: "bird")
    assert client.projects.get(id=oracle.project_id).model_version == MODEL_VERSION
    task = next_task(ls_server, oracle.project_id)
    assert task["data"]["al_round"] == 3, task["data"]
    predictions = task.get("predictions") or []
    assert len(predictions) == 1, f"the annotator sees no pre-annotation in round 3: {task.get('predictions')}"
    expected = next(it for it in items(3) if it.pool_id == task["data"]["al_pool_id"]).prediction
    assert predictions[0]["result"][0]["value"] == {"choices": [expected["label"]]}
    assert predictions[0]["model_version"] == MODEL_VERSION


# --------------------------------------------------------------------------- items 9, 14, 18: two annotators, one rule


def test_two_annotators_one_rule_for_invalid_answers_status_and_export(
        ls_server: Server, oracle_on: Callable[[], LabelStudioOracle], tmp_path: Path) -> None:
    """An invalid answer of a second annotator and an edit to an invalid choice end the same way.

    The newest answer of an item decides: the item goes to quarantine, its label
    is removed, and the disagreement between the annotators is kept.
    """
    oracle = oracle_on()
    db = tmp_path / "c.sqlite"
    store = Store(db)
    run = store.create_run(RunConfig(dataset="digits", strategy="margin", seed=0, oracle="label_studio",
                                     oracle_params={"url": ls_server.url, "title": "t", "kind": "text"}))
    sent = items(0, n=4, run=run)
    store.commit_selection(run, 0, np.array([it.pool_id for it in sent]), np.zeros(4), [None] * 4, None)
    store.mark_sent(run, 0, oracle.submit(sent))
    alice = Annotator(ls_server.url, ls_server.api_key, oracle.project_id)
    alice_email = alice.client.users.whoami().email
    bob = alice.as_user(f"bob-{uuid.uuid4().hex[:6]}@localhost")
    keys = [it.key for it in sent]

    def pull() -> None:
        store.apply_answers(run, 0, oracle.collect(run, 0), CLASSES)

    first = {k: alice.label(k, "cat") for k in keys}
    pull()
    assert [r.label for r in store.labels(run)] == ["cat"] * 4
    bob.label(keys[0], "zebra")  # a second annotator answers what is not a class
    alice.edit(first[keys[1]], "zebra")  # the first annotator edits her label to what is not a class
    time.sleep(0.05)
    bob.label(keys[2], "dog")  # a valid disagreement: the newest (bob's) decides
    pull()

    labels = {r.pool_id: r for r in store.labels(run)}
    assert sorted(labels) == [2, 3], "both invalid newest answers remove the label"
    assert (labels[2].label, labels[2].annotator) == ("dog", bob.email)
    assert labels[2].disagreement == f"dog({bob.email}) vs cat({alice_email})"
    quarantined = {q.pool_id: q for q in store.quarantine(run)}
    assert sorted(quarantined) == [0, 1]
    assert f"annotators differ: invalid({bob.email}) vs cat({alice_email})" in quarantined[0].reason
    assert "'zebra' is not a class" in quarantined[1].reason and "differ" not in quarantined[1].reason
    assert quarantined[1].annotation_id == str(first[keys[1]])
    assert {r.annotator for r in labels.values()} <= {alice_email, bob.email}, "one name per user"
    assert all(r.updated_at.endswith("Z") and len(r.updated_at) == 27 for r in labels.values()), "one time format"
    store.close()

    (row,) = campaign_status(str(db))
    assert {k: row[k] for k in ("selected", "sent", "labeled", "skipped", "quarantined", "waiting")} == {
        "selected": 4, "sent": 4, "labeled": 2, "skipped": 0, "quarantined": 2, "waiting": 0}
    assert row["throughput"] == {alice_email: None, bob.email: None}  # seconds apart: no rate

    exported = export_records(str(db), "labels")
    assert [(r["pool_id"], r["annotator"], r["annotation_id"]) for r in exported] == [
        (2, bob.email, labels[2].annotation_id), (3, alice_email, str(first[keys[3]]))]
    assert exported[0]["disagreement"] == labels[2].disagreement
    rows = export_records(str(db), "quarantine")
    assert [(r["pool_id"], r["annotation_id"], r["labeled_now"]) for r in rows] == [
        (0, quarantined[0].annotation_id, False), (1, str(first[keys[1]]), False)]


# --------------------------------------------------------------------------- item 10: the kind checked first


def test_kind_text_on_images_creates_no_project_and_no_store(ls_server: Server, tmp_path: Path) -> None:
    client = connect(ls_server.url, ls_server.api_key)
    title = f"al-loop-kind-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "c.sqlite"
    env = {**os.environ, "LABEL_STUDIO_API_KEY": ls_server.api_key}
    proc = subprocess.run([sys.executable, "-c", "from al_loop.cli import main; main()", "campaign", "init",
                           "--db", str(db), "--data", "digits", "--kind", "text", "--labels", "0,1,2,3,4,5,6,7,8,9",
                           "--label-studio-url", ls_server.url, "--title", title],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip() == ("error: --kind text does not fit --data digits: its items are images; "
                                   "pass --kind image")
    assert not db.exists()
    assert title not in {p.title for p in client.projects.list(page_size=1000)}
