"""A multi-label campaign against a real Label Studio: several choices per task, sets in the store.

``campaign init --multilabel`` on a file of texts creates a project whose
``Choices`` take several answers; a person (the SDK, as the UI does) picks
each text's labels, one picks a label the run does not have, one submits no
choice (the empty set). The store must hold the canonical sets, quarantine the
unknown label, and the next round's tasks carry the model's label sets as
pre-selected choices.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from al_loop import multilabel as ml
from al_loop.campaign import CampaignOptions, init_campaign, run_campaign
from al_loop.store import Store
from oracles.label_studio import choice_mode
from tests.harness.campaign_crash_table import delete_project
from tests.integration.annotator import Annotator
from tests.integration.conftest import Server

pytestmark = pytest.mark.labelstudio

TAGS = ("action", "comedy", "drama")
WORDS = {"action": "explosion chase", "comedy": "joke laugh", "drama": "tears family"}


def _texts(path: Path, n: int = 60) -> np.ndarray:
    rng = np.random.default_rng(5)
    Y = (rng.random((n, 3)) < 0.45).astype(np.uint8)
    lines = ["text"]
    for i, row in enumerate(Y):
        words = " ".join(WORDS[TAGS[j]] for j in np.flatnonzero(row))
        lines.append(f"\"film {i} about {words or 'nothing much'} today\"")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Y


def _result(choices: list[str]) -> list[dict[str, Any]]:
    return [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": choices}}]


def test_multilabel_campaign_stores_sets_quarantines_unknown_labels_and_preselects_sets(
        ls_server: Server, tmp_path: Path) -> None:
    Y = _texts(tmp_path / "films.csv")
    db = tmp_path / "c.sqlite"
    title = f"al-loop-multilabel-test-{uuid.uuid4().hex[:10]}"
    run_id = init_campaign(str(db), data=str(tmp_path / "films.csv"), classes=TAGS, strategy="br_uncertainty",
                           batch=4, init=6, learner="ovr_logreg", min_fraction=0.8, multilabel=True,
                           options=CampaignOptions(url=ls_server.url, title=title, kind="text"))
    store = Store(db, readonly=True)
    project_id = int(store.oracle_state(run_id, "project_id") or -1)
    assert store.config(run_id).multilabel and not store.config(run_id).track_stopping
    store.close()
    person = Annotator(ls_server.url, ls_server.api_key, project_id)
    try:
        config = person.client.projects.get(id=project_id).label_config or ""
        assert choice_mode(config) == "multiple" and "required" not in config
        seed = sorted(person.all_tasks(), key=lambda t: int(t.data["al_pool_id"]))
        assert len(seed) == 6
        unknown_id, empty_id = int(seed[0].data["al_pool_id"]), int(seed[1].data["al_pool_id"])
        given: set[int] = set()

        def answer(task: Any) -> None:
            pid = int(task.data["al_pool_id"])
            if pid == unknown_id:
                choices = ["comedy", "horror"]
            elif pid == empty_id:
                choices = []
            else:
                choices = [TAGS[j] for j in np.flatnonzero(Y[pid])][::-1]  # any order
            person.client.annotations.create(id=int(task.id), result=_result(choices), completed_by=person.user_id,
                                             was_cancelled=False)
            given.add(int(task.id))

        out: dict[str, Any] = {}

        def target() -> None:
            try:
                out["n"] = run_campaign(str(db), until_labels=5 + 4, poll=0.2)
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                out["error"] = exc

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        while thread.is_alive() and time.monotonic() < deadline:
            for task in person.all_tasks():
                if int(task.id) not in given:
                    answer(task)
            thread.join(0.3)
        assert not thread.is_alive(), "the campaign did not reach 9 labels in 120 s"
        assert "error" not in out, out
        store = Store(db, readonly=True)
        labels = {r.pool_id: r.label for r in store.labels(run_id) if r.status == "labeled"}
        assert labels[empty_id] == "" and unknown_id not in labels
        for pid, label in labels.items():
            if pid != empty_id:
                assert label == ml.set_string(Y[pid], TAGS), (pid, label)
        (q,) = [q for q in store.quarantine(run_id) if q.pool_id == unknown_id]
        assert "'horror'" in q.reason and "not labels of this run" in q.reason
        metrics = store.metrics(run_id)
        assert metrics and all(m.micro_f1 is None for m in metrics)  # a campaign has no test split
        round1 = [o for o in store.outbox(run_id, 1)]
        store.close()
        assert len(round1) == 4
        tasks = {int(t.data["al_pool_id"]): t for t in person.client.tasks.list(project=project_id, fields="all",
                                                                                 page_size=100)}
        shown = 0
        for row in round1:
            expected = ml.split_set(json.loads(row.prediction_json)["label"])
            preds = tasks[row.pool_id].predictions or []
            assert len(preds) == (1 if expected else 0)  # an empty predicted set pre-selects nothing
            if expected:
                result = preds[0]["result"] if isinstance(preds[0], dict) else preds[0].result
                assert result[0]["value"]["choices"] == expected and set(expected) <= set(TAGS)
                shown += 1
        assert shown >= 1
    finally:
        delete_project(ls_server.url, ls_server.api_key, project_id)
