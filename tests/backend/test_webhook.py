"""Label Studio webhook events into a real store (``oracles.ls_backend.webhook.handle_event``).

The payloads have the shapes Label Studio 1.23 sends (``webhooks/models.py``,
``serializers_for_hooks.py``); ``tests/integration/test_backend_webhook.py``
has Label Studio itself post them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from al_loop.config import RunConfig
from al_loop.controller import withdrawn_ids
from al_loop.store import Store
from al_loop.types import RoundState
from oracles.label_studio import answer_from_annotations
from oracles.ls_backend.webhook import WebhookPayloadError, handle_event

CLASSES = ("cat", "dog")
CAMPAIGN = "c0ffee000001"
PROJECT = 77


def campaign_store(path: Path, n: int = 4) -> tuple[Store, int]:
    """A campaign run with round 0 of ``n`` items sent as tasks 100.. (as ``campaign init`` leaves it)."""
    store = Store(path)
    run = store.create_run(RunConfig(dataset="digits", strategy="margin", seed=3, oracle="label_studio",
                                     oracle_params={"url": "http://127.0.0.1:1", "title": "t", "kind": "text",
                                                    "campaign_id": CAMPAIGN}))
    store.set_oracle_state(run, "project_id", str(PROJECT))
    store.commit_selection(run, 0, np.arange(n), np.zeros(n), [None] * n, None)
    store.mark_sent(run, 0, {f"{run}:0:{i}": str(100 + i) for i in range(n)})
    store.set_state(run, 0, RoundState.DISPATCHED, RoundState.AWAITING)
    return store, run


def task(run: int, pool_id: int, round_: int = 0, campaign: str = CAMPAIGN) -> dict[str, Any]:
    return {"id": 100 + pool_id, "project": PROJECT, "data": {
        "text": f"item {pool_id}", "al_key": f"{campaign}:{run}:{round_}:{pool_id}", "al_campaign": campaign,
        "al_run": run, "al_round": round_, "al_pool_id": pool_id}}


def annotation(ann_id: int, pool_id: int, choice: str | None, at: str, *, cancelled: bool = False,
               user: int = 1) -> dict[str, Any]:
    result = [] if choice is None else [{"from_name": "label", "to_name": "text", "type": "choices",
                                         "value": {"choices": [choice]}}]
    return {"id": ann_id, "task": 100 + pool_id, "project": PROJECT, "result": result, "was_cancelled": cancelled,
            "completed_by": user, "created_at": at, "updated_at": at, "lead_time": 1.5}


def event(action: str, run: int, pool_id: int, ann: dict[str, Any]) -> dict[str, Any]:
    return {"action": action, "annotation": ann, "task": task(run, pool_id), "project": {"id": PROJECT}}


T1, T2 = "2026-12-01T10:00:00.000001Z", "2026-12-01T10:05:00.000002Z"


def rows(store: Store, run: int) -> list[tuple[Any, ...]]:
    return [(r.pool_id, r.round, r.status, r.label, r.annotation_id, r.updated_at, r.annotator)
            for r in store.labels(run)]


@pytest.fixture
def camp(tmp_path: Path) -> tuple[Store, int]:
    store, run = campaign_store(tmp_path / "c.sqlite")
    yield store, run
    store.close()


def test_an_annotation_is_recorded_as_the_pull_records_it(camp: tuple[Store, int], tmp_path: Path) -> None:
    store, run = camp
    ann = annotation(5, 1, "dog", "2026-12-01T10:00:00.5+00:00")
    got = handle_event(store, run, event("ANNOTATION_CREATED", run, 1, ann), classes=CLASSES,
                       annotators={1: "ann@x"})
    assert (got["status"], got["labeled"], got["rounds"]) == ("ok", 1, [0])
    # the pull's path: the same annotation through answer_from_annotations and the store's upsert
    other, run2 = campaign_store(tmp_path / "pull.sqlite")
    other.apply_answers(run2, 0, [answer_from_annotations(1, [ann], CLASSES, {1: "ann@x"})], CLASSES)
    assert rows(store, run) == rows(other, run2) == [(1, 0, "labeled", "dog", "5", "2026-12-01T10:00:00.500000Z",
                                                      "ann@x")]
    other.close()


def test_a_replayed_event_changes_nothing(camp: tuple[Store, int]) -> None:
    store, run = camp
    ev = event("ANNOTATION_CREATED", run, 0, annotation(5, 0, "cat", T1))
    handle_event(store, run, ev, classes=CLASSES)
    before = rows(store, run)
    again = handle_event(store, run, ev, classes=CLASSES)
    assert (again["labeled"], again["unchanged"], again["rounds"]) == (0, 1, [])
    assert rows(store, run) == before


def test_an_older_update_after_a_newer_one_changes_nothing(camp: tuple[Store, int]) -> None:
    store, run = camp
    handle_event(store, run, event("ANNOTATION_UPDATED", run, 0, annotation(5, 0, "dog", T2)), classes=CLASSES)
    late = handle_event(store, run, event("ANNOTATION_CREATED", run, 0, annotation(5, 0, "cat", T1)),
                        classes=CLASSES)
    assert late["status"] == "ignored" and "older than the one recorded" in late["reason"]
    assert [(r.label, r.updated_at) for r in store.labels(run)] == [("dog", T2)]


def test_a_late_valid_answer_does_not_undo_a_newer_invalid_one(camp: tuple[Store, int]) -> None:
    # another annotator's newer answer is invalid: the item is quarantined, as a pull of both would leave it
    store, run = camp
    handle_event(store, run, event("ANNOTATION_CREATED", run, 2, annotation(9, 2, "zebra", T2, user=2)),
                 classes=CLASSES)
    handle_event(store, run, event("ANNOTATION_CREATED", run, 2, annotation(8, 2, "cat", T1)), classes=CLASSES)
    assert store.labels(run) == []
    (q,) = store.quarantine(run)
    assert (q.pool_id, q.answer, q.annotation_id) == (2, None, "9") and "zebra" in q.reason


def test_an_invalid_choice_is_quarantined_and_a_skip_recorded(camp: tuple[Store, int]) -> None:
    store, run = camp
    got = handle_event(store, run, event("ANNOTATION_CREATED", run, 0, annotation(5, 0, "zebra", T1)),
                       classes=CLASSES)
    assert got["quarantined"] == 1 and store.labels(run) == []
    handle_event(store, run, event("ANNOTATION_CREATED", run, 1, annotation(6, 1, None, T1, cancelled=True)),
                 classes=CLASSES)
    assert [(r.pool_id, r.status) for r in store.labels(run)] == [(1, "skipped")]
    assert store.round_progress(run, 0)["quarantined"] == 1


def test_bulk_created_annotations_pair_with_their_tasks(camp: tuple[Store, int]) -> None:
    store, run = camp
    ev = {"action": "ANNOTATIONS_CREATED", "project": {"id": PROJECT},
          "annotation": [annotation(5, 0, "cat", T1), annotation(6, 3, "dog", T1)],
          "task": [task(run, 3), task(run, 0)]}
    assert handle_event(store, run, ev, classes=CLASSES)["labeled"] == 2
    assert [(r.pool_id, r.label) for r in store.labels(run)] == [(0, "cat"), (3, "dog")]


def test_a_deleted_annotation_is_withdrawn_and_a_late_edit_of_it_ignored(camp: tuple[Store, int]) -> None:
    store, run = camp
    handle_event(store, run, event("ANNOTATION_CREATED", run, 0, annotation(5, 0, "cat", T1)), classes=CLASSES)
    gone = {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 5}], "project": {"id": PROJECT}}
    got = handle_event(store, run, gone, classes=CLASSES)
    assert (got["deleted"], got["pull"]) == (1, [0]) and store.labels(run) == []
    assert handle_event(store, run, gone, classes=CLASSES)["status"] == "ignored"  # replayed: a no-op
    late = handle_event(store, run, event("ANNOTATION_UPDATED", run, 0, annotation(5, 0, "dog", T2)),
                        classes=CLASSES)
    assert late["status"] == "ignored" and "was deleted" in late["reason"] and store.labels(run) == []


def test_deleting_an_unknown_annotation_is_a_no_op(camp: tuple[Store, int]) -> None:
    store, run = camp
    handle_event(store, run, event("ANNOTATION_CREATED", run, 0, annotation(5, 0, "cat", T1)), classes=CLASSES)
    got = handle_event(store, run, {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 4242}]},
                       classes=CLASSES)
    assert got == {"status": "ignored", "action": "ANNOTATIONS_DELETED",
                   "reason": "annotation 4242 is no answer this run holds"}
    assert [(r.pool_id, r.label) for r in store.labels(run)] == [(0, "cat")]


def test_a_deleted_task_withdraws_its_answer_and_a_closed_round_records_it(camp: tuple[Store, int]) -> None:
    store, run = camp
    handle_event(store, run, event("ANNOTATION_CREATED", run, 1, annotation(5, 1, "cat", T1)), classes=CLASSES)
    store.set_state(run, 0, RoundState.AWAITING, RoundState.LABELED)
    said: list[str] = []
    got = handle_event(store, run, {"action": "TASKS_DELETED", "tasks": [{"id": 101}, {"id": 999}],
                                    "project": {"id": PROJECT}}, classes=CLASSES, log=said.append)
    assert got["deleted"] == 1 and got["ignored"] == ["task 999 is no task this run sent"]
    assert store.labels(run) == [] and withdrawn_ids(store, run, 0) == [1]
    assert "withdrawn in Label Studio (pool ids 1)" in said[0]


@pytest.mark.parametrize(("change", "reason"), [
    (lambda ev: ev["project"].update(id=PROJECT + 1), "project 78 is not the project of run 1 (77)"),
    (lambda ev: ev["task"]["data"].update(al_campaign="other"), "task 100 belongs to campaign other, not"),
    (lambda ev: ev["task"]["data"].update(al_run=9), "task 100 belongs to run 9, not run 1"),
    (lambda ev: ev["task"]["data"].pop("al_key"), "task 100 is a pool task no round has selected yet"),
    (lambda ev: [ev["task"]["data"].pop(k) for k in ("al_key", "al_pool_id")],
     "task 100 is not an al-loop task (no al_key)"),
    (lambda ev: ev["task"]["data"].update(al_round="pool"), "task 100 is not a task of a round"),
    (lambda ev: ev["task"]["data"].update(al_round=3, al_key=f"{CAMPAIGN}:1:3:0"),
     "task 100: item 0 was not sent in round 3 of run 1"),
    (lambda ev: ev.update(action="PROJECT_UPDATED"), "action PROJECT_UPDATED is not one al-loop acts on"),
])
def test_an_event_of_another_project_campaign_or_run_is_ignored(camp: tuple[Store, int], change: Any,
                                                                  reason: str) -> None:
    store, run = camp
    ev = event("ANNOTATION_CREATED", run, 0, annotation(5, 0, "cat", T1))
    change(ev)
    got = handle_event(store, run, ev, classes=CLASSES)
    assert got["status"] == "ignored" and got["reason"].startswith(reason), got
    assert store.labels(run) == [] and store.quarantine(run) == []


def test_a_finished_run_takes_no_answers(camp: tuple[Store, int]) -> None:
    from al_loop.types import RunStatus

    store, run = camp
    store.finish_run(run, RunStatus.ABANDONED)
    got = handle_event(store, run, event("ANNOTATION_CREATED", run, 0, annotation(5, 0, "cat", T1)),
                       classes=CLASSES)
    assert got["status"] == "ignored" and got["reason"] == f"run {run} is abandoned"


@pytest.mark.parametrize(("payload", "line"), [
    ([1, 2], "a webhook body is a JSON object with an 'action'; got list"),
    ({"task": {}}, "the webhook body has no 'action'"),
    ({"action": "ANNOTATION_CREATED"}, "ANNOTATION_CREATED event without 'annotation' objects"),
    ({"action": "ANNOTATIONS_DELETED", "annotations": "5"}, "ANNOTATIONS_DELETED event without 'annotations'"),
])
def test_a_body_that_is_no_event_is_one_line(camp: tuple[Store, int], payload: Any, line: str) -> None:
    store, run = camp
    with pytest.raises(WebhookPayloadError) as err:
        handle_event(store, run, payload, classes=CLASSES)
    assert str(err.value).startswith(line) and "\n" not in str(err.value)
    assert store.labels(run) == []


def test_start_training_asks_for_a_round(camp: tuple[Store, int]) -> None:
    store, run = camp
    got = handle_event(store, run, {"action": "START_TRAINING", "project": {"id": PROJECT}}, classes=CLASSES)
    assert got["train"] is True and got["status"] == "ok"


def test_classes_come_from_the_run_when_not_given(camp: tuple[Store, int]) -> None:
    store, run = camp  # a digits run: classes "0".."9", so "cat" is invalid
    got = handle_event(store, run, event("ANNOTATION_CREATED", run, 0, annotation(5, 0, "cat", T1)))
    assert got["quarantined"] == 1
    assert json.loads(store.oracle_state(run, "webhook:item:0") or "[]") == ["5", T1]


def test_subscribers_hear_of_each_event_taken_and_unsubscribe(camp: tuple[Store, int]) -> None:
    from oracles.ls_backend.webhook import subscribe

    store, run = camp
    heard: list[tuple[str, str]] = []
    stop = subscribe(store, run, lambda result, payload: heard.append((result["status"], payload["action"])))
    handle_event(store, run, event("ANNOTATION_CREATED", run, 0, annotation(5, 0, "cat", T1)), classes=CLASSES)
    handle_event(store, run, {"action": "PROJECT_UPDATED", "project": {"id": PROJECT}}, classes=CLASSES)
    stop()
    handle_event(store, run, event("ANNOTATION_UPDATED", run, 0, annotation(5, 0, "dog", T2)), classes=CLASSES)
    assert heard == [("ok", "ANNOTATION_CREATED")]  # an ignored event wakes nobody


def test_recorded_annotator_names_are_used(camp: tuple[Store, int]) -> None:
    store, run = camp
    store.set_oracle_state(run, "annotators", json.dumps({"1": "ann@x"}))
    handle_event(store, run, event("ANNOTATION_CREATED", run, 0, annotation(5, 0, "cat", T1)), classes=CLASSES)
    handle_event(store, run, event("ANNOTATION_CREATED", run, 1, annotation(6, 1, "cat", T1, user=9)),
                 classes=CLASSES)
    assert [r.annotator for r in store.labels(run)] == ["ann@x", "user 9"]
