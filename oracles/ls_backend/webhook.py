"""Label Studio webhook events into the store, with the semantics of a pull.

Label Studio 1.23 posts ``{"action": A, ...}`` to a webhook (``send_payload``
adds the objects; the shapes come from ``label_studio/webhooks/models.py``
``WebhookAction.ACTIONS`` and ``serializers_for_hooks.py``):

- ``ANNOTATION_CREATED`` / ``ANNOTATION_UPDATED``: ``annotation`` (every field
  of the annotation: ``id``, ``result``, ``was_cancelled``, ``updated_at``,
  ``completed_by`` (a user id), ``task`` (a task id)) and ``task`` (every field
  of the task, ``data`` included; no annotations);
- ``ANNOTATIONS_CREATED`` (bulk): ``annotation`` and ``task`` as lists;
- ``ANNOTATIONS_DELETED``: ``annotations``: ``[{"id": N}, ...]`` (ids only);
- ``TASKS_DELETED``: ``tasks``: ``[{"id": N}, ...]`` (ids only);
- ``START_TRAINING`` (the project's *Start training* button, to an ML backend);
- every one with ``project`` (the project's fields) when it has a project.

:func:`handle_event` turns an event into the :class:`~al_loop.types.Answer`
the pull (:meth:`oracles.label_studio.LabelStudioOracle.collect`) makes of
the same annotation (:func:`oracles.label_studio.answer_from_annotations`) and
applies it with :func:`al_loop.controller.apply_round_answers`, the upsert of
``campaign run`` (newest ``updated_at`` wins, skips, deletions, quarantine of
invalid choices, withdrawn answers of closed rounds).

Idempotency and order
---------------------
A webhook carries one annotation, while the pull sees all of a task's
annotations; so that events delivered twice, late or out of order give what a
pull gives, the newest annotation stamp applied per item is kept in the run's
``oracle_state`` (``webhook:item:<pool_id>``: ``[annotation_id, updated_at]``)
and an event older than it changes nothing; a deleted annotation is kept under
``webhook:deleted:<annotation_id>``, so a late event about it changes nothing
either. A deletion names only ids: the store finds the item by its answer's
annotation id (annotations) or by the task id recorded at dispatch (tasks);
an unknown id is a no-op. When a deletion leaves a task with other
annotations, only a pull knows which is now the newest: the result lists the
round under ``"pull"`` and the backend driver pulls it.

An event of another project, another campaign or another run, or about an item
the round never sent, is answered ``{"status": "ignored", "reason": ...}``
(the app answers 200 so that Label Studio does not send it again); a payload
that is no Label Studio event raises :class:`WebhookPayloadError` (one line;
the app answers HTTP 400).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from al_loop.backend_driver import ANNOTATORS_KEY
from al_loop.controller import apply_round_answers
from al_loop.errors import DataError
from al_loop.faults import crash_point
from al_loop.store import _older
from al_loop.types import Answer, RunStatus
from oracles.label_studio import answer_from_annotations, remote_key

#: actions whose payload holds annotations with their tasks
ANSWER_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED")
#: actions that withdraw answers
DELETE_ACTIONS = ("ANNOTATIONS_DELETED", "TASKS_DELETED")
#: the project's "Start training" button: close the round on what it has and train
TRAIN_ACTIONS = ("START_TRAINING",)
#: every action :func:`handle_event` acts on (register the webhook for these)
ACTIONS = ANSWER_ACTIONS + DELETE_ACTIONS
#: ``oracle_state`` key prefixes (see the module docstring)
ITEM_KEY = "webhook:item:"
DELETED_KEY = "webhook:deleted:"


_LISTENERS: dict[tuple[str, int], list[Callable[[dict[str, Any], Any], None]]] = {}
_LISTENERS_LOCK = threading.Lock()


def subscribe(store: Any, run_id: int, listener: Callable[[dict[str, Any], Any], None]) -> Callable[[], None]:
    """Call ``listener(result, payload)`` after each event of run ``run_id`` of ``store`` that :func:`handle_event` took.

    ``al-loop serve`` subscribes its :class:`~al_loop.backend_driver.BackendDriver`'s
    ``notify`` (it only queues, so the request is answered at once). Returns
    the function that unsubscribes.
    """
    key = (str(Path(store.path).resolve()), int(run_id))
    with _LISTENERS_LOCK:
        _LISTENERS.setdefault(key, []).append(listener)

    def unsubscribe() -> None:
        with _LISTENERS_LOCK:
            if listener in _LISTENERS.get(key, []):
                _LISTENERS[key].remove(listener)

    return unsubscribe


def _tell(store: Any, run_id: int, result: dict[str, Any], payload: Any) -> None:
    with _LISTENERS_LOCK:
        listeners = list(_LISTENERS.get((str(Path(store.path).resolve()), int(run_id)), ()))
    for listener in listeners:
        listener(result, payload)


def recorded_annotators(store: Any, run_id: int) -> dict[int, str]:
    """The user names the backend driver recorded for the run (``{user id: e-mail}``)."""
    raw = store.oracle_state(run_id, ANNOTATORS_KEY)
    return {int(k): str(v) for k, v in json.loads(raw).items()} if raw else {}


class WebhookPayloadError(DataError):
    """A request body that is no Label Studio webhook event (the app answers HTTP 400 with its one line)."""


def _ignored(reason: str, action: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"status": "ignored", "reason": reason}
    if action is not None:
        out["action"] = action
    return out


def _as_list(value: Any, what: str, action: str) -> list[Mapping[str, Any]]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, Mapping) for v in items):
        raise WebhookPayloadError(f"{action} event without {what!r} objects; Label Studio sends them when the "
                                  "webhook has send_payload: true")
    return items


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class _Run:
    """What an event is checked against: the run's project, campaign, status and sent items."""

    def __init__(self, store: Any, run_id: int, classes: Sequence[str] | None) -> None:
        self.store = store
        self.run_id = run_id
        config = store.config(run_id)
        self.campaign_id = config.oracle_params.get("campaign_id") or None
        project = store.oracle_state(run_id, "project_id")
        self.project_id = int(project) if project is not None else None
        self.status = store.run(run_id).status
        self.classes = tuple(classes) if classes is not None else _classes(config)
        self.multiple = bool(config.multilabel)
        self._sent: dict[int, dict[int, str | None]] | None = None

    def sent(self) -> dict[int, dict[int, str | None]]:
        """``{round: {pool_id: task id}}`` of every item the run put in a round's outbox."""
        if self._sent is None:
            self._sent = {r.idx: {o.pool_id: o.remote_id for o in self.store.outbox(self.run_id, r.idx)}
                          for r in self.store.rounds(self.run_id)}
        return self._sent


def _classes(config: Any) -> tuple[str, ...]:
    """The run's classes without building its pool when the dataset parameters name them."""
    named = config.dataset_params.get("classes")
    if named:
        return tuple(str(c) for c in named)
    from al_loop.api import build_pool

    return tuple(build_pool(config).classes)


def handle_event(store: Any, run_id: int, payload: Any, *, classes: Sequence[str] | None = None,
                 annotators: Mapping[int, str] | None = None,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Record one Label Studio webhook event of campaign run ``run_id`` in ``store``.

    Parameters
    ----------
    store : Store
        The campaign's store (writable).
    run_id : int
        The campaign run the webhook serves.
    payload : Any
        The decoded JSON body Label Studio posted.
    classes : sequence of str, optional
        The run's classes (default: from its dataset parameters, else its pool).
    annotators : mapping, optional
        User id -> name (e-mail), as the pull names annotators; default: the names the
        backend driver recorded (:func:`recorded_annotators`), else "user ID".
    log : callable, optional
        One-line messages (answers withdrawn from a closed round).

    Returns
    -------
    dict
        ``{"status": "ok", "action", "labeled", "skipped", "quarantined",
        "deleted", "unchanged", "rounds": [...], "pull": [...], "train":
        bool, "ignored": [reasons]}``, or ``{"status": "ignored", "reason"}``
        for an event that is not this campaign's. ``rounds``: rounds whose
        answers changed; ``pull``: rounds a pull should look at again;
        ``train``: the *Start training* button was pressed.

    Raises
    ------
    WebhookPayloadError
        The body is no Label Studio event (not an object, no ``action``, or an
        action without the objects it names).
    """
    if not isinstance(payload, Mapping):
        raise WebhookPayloadError(f"a webhook body is a JSON object with an 'action'; got {type(payload).__name__}")
    action = payload.get("action")
    if not isinstance(action, str) or not action:
        raise WebhookPayloadError("the webhook body has no 'action'; Label Studio sends {\"action\": ..., ...}")
    run = _Run(store, run_id, classes)
    project = payload.get("project")
    project_id = _int(project.get("id")) if isinstance(project, Mapping) else None
    if project_id is not None and run.project_id is not None and project_id != run.project_id:
        return _ignored(f"project {project_id} is not the project of run {run_id} ({run.project_id})", action)
    if action not in ACTIONS + TRAIN_ACTIONS:
        return _ignored(f"action {action} is not one al-loop acts on ({', '.join(ACTIONS + TRAIN_ACTIONS)})", action)
    if run.status != RunStatus.RUNNING.value:
        return _ignored(f"run {run_id} is {run.status}", action)
    result: dict[str, Any] = {"status": "ok", "action": action, "labeled": 0, "skipped": 0, "quarantined": 0,
                              "deleted": 0, "unchanged": 0, "rounds": [], "pull": [], "train": False,
                              "ignored": []}
    if action in TRAIN_ACTIONS:
        result["train"] = True
        _tell(store, run_id, result, payload)
        return result
    if action in ANSWER_ACTIONS:
        names = recorded_annotators(store, run_id) if annotators is None else annotators
        by_round = _answers(run, payload, action, names, result["ignored"])
    elif action == "ANNOTATIONS_DELETED":
        by_round = _deleted_annotations(run, _as_list(payload.get("annotations"), "annotations", action),
                                        result["ignored"])
    else:
        by_round = _deleted_tasks(run, _as_list(payload.get("tasks"), "tasks", action), result["ignored"])
    for idx in sorted(by_round):
        counts = apply_round_answers(store, run_id, idx, [a for a, _ in by_round[idx]], run.classes, log)
        for k in ("labeled", "skipped", "quarantined", "deleted", "unchanged"):
            result[k] += counts.get(k, 0)
        if sum(v for k, v in counts.items() if k != "unchanged"):
            result["rounds"].append(idx)
        for answer, stamp in by_round[idx]:  # after the upsert: a crash between leaves the guard behind, never ahead
            if answer.status == "deleted":
                store.set_oracle_state(run_id, DELETED_KEY + str(answer.annotation_id), "1")
                if idx not in result["pull"]:
                    result["pull"].append(idx)
            else:
                store.set_oracle_state(run_id, ITEM_KEY + str(answer.pool_id),
                                       json.dumps([answer.annotation_id, stamp]))
    if not by_round and result["ignored"]:
        return _ignored("; ".join(result["ignored"]), action)
    crash_point("webhook_after_record")  # recorded, not answered yet: Label Studio sees a failed delivery
    _tell(store, run_id, result, payload)
    return result


def _answers(run: _Run, payload: Mapping[str, Any], action: str, annotators: Mapping[int, str],
             ignored: list[str]) -> dict[int, list[tuple[Answer, str | None]]]:
    """The answers of an annotation event, by round (with each annotation's stamp)."""
    annotations = _as_list(payload.get("annotation"), "annotation", action)
    tasks = {_int(t.get("id")): t for t in _as_list(payload.get("task"), "task", action)}
    by_round: dict[int, list[tuple[Answer, str | None]]] = {}
    for ann in annotations:
        task_id = _int(ann.get("task"))
        task = tasks.get(task_id) if task_id is not None else (next(iter(tasks.values())) if len(tasks) == 1 else None)
        if task is None:
            raise WebhookPayloadError(f"{action} event: annotation {ann.get('id')} names task {ann.get('task')!r} "
                                      "that the event does not carry")
        where = _item_of(run, task, ignored)
        if where is None:
            continue
        idx, pool_id = where
        ann_id = str(ann.get("id"))
        if run.store.oracle_state(run.run_id, DELETED_KEY + ann_id) is not None:
            ignored.append(f"annotation {ann_id} was deleted (a late event)")
            continue
        answer = answer_from_annotations(pool_id, [ann], run.classes, annotators, multiple=run.multiple)
        if answer is None:
            continue
        seen = run.store.oracle_state(run.run_id, ITEM_KEY + str(pool_id))
        if seen is not None:
            seen_id, seen_at = json.loads(seen)
            if _older(answer.updated_at, seen_at):  # the same annotation's older version, or an older annotation
                ignored.append(f"annotation {ann_id} of item {pool_id} is older than the one recorded "
                               f"({seen_id} at {seen_at})")
                continue
        by_round.setdefault(idx, []).append((answer, answer.updated_at))
    return by_round


def _item_of(run: _Run, task: Mapping[str, Any], ignored: list[str]) -> tuple[int, int] | None:
    """``(round, pool_id)`` of a task of this run's rounds, else None with the reason in ``ignored``."""
    data = task.get("data") if isinstance(task.get("data"), Mapping) else {}
    tid = task.get("id")
    key, campaign = data.get("al_key"), data.get("al_campaign")
    if key is None:
        if data.get("al_pool_id") is not None and _int(data.get("al_run")) == run.run_id and (
                not run.campaign_id or campaign == run.campaign_id):
            ignored.append(f"task {tid} is a pool task no round has selected yet (--import-pool): its annotation "
                           "becomes an answer if a round selects the item; label the round's view for this round")
        else:
            ignored.append(f"task {tid} is not an al-loop task (no al_key)")
        return None
    if run.campaign_id and campaign != run.campaign_id:
        ignored.append(f"task {tid} belongs to campaign {campaign or 'none'}, not {run.campaign_id}")
        return None
    run_of, idx, pool_id = _int(data.get("al_run")), _int(data.get("al_round")), _int(data.get("al_pool_id"))
    if run_of != run.run_id:
        ignored.append(f"task {tid} belongs to run {data.get('al_run')}, not run {run.run_id}")
        return None
    if idx is None or pool_id is None or key != remote_key(f"{run_of}:{idx}:{pool_id}", run.campaign_id):
        ignored.append(f"task {tid} is not a task of a round (al_key {key!r})")
        return None
    if pool_id not in run.sent().get(idx, {}):
        ignored.append(f"task {tid}: item {pool_id} was not sent in round {idx} of run {run.run_id}")
        return None
    return idx, pool_id


def _deleted_annotations(run: _Run, objs: list[Mapping[str, Any]],
                         ignored: list[str]) -> dict[int, list[tuple[Answer, str | None]]]:
    """Deletions of annotations the store holds as answers (found by annotation id); others are no-ops."""
    ids = {str(o.get("id")) for o in objs if o.get("id") is not None}
    by_round: dict[int, list[tuple[Answer, str | None]]] = {}
    held = {lab.annotation_id: lab for lab in run.store.labels(run.run_id) if lab.annotation_id in ids}
    for ann_id in sorted(ids):
        lab = held.get(ann_id)
        if lab is None:
            ignored.append(f"annotation {ann_id} is no answer this run holds")
            # a deleted annotation the store does not hold may be a late-arriving edit's target: guard it
            run.store.set_oracle_state(run.run_id, DELETED_KEY + ann_id, "1")
            continue
        by_round.setdefault(lab.round, []).append(
            (Answer(pool_id=lab.pool_id, status="deleted", annotation_id=ann_id,
                    reason="the annotation was deleted in Label Studio"), None))
    return by_round


def _deleted_tasks(run: _Run, objs: list[Mapping[str, Any]],
                   ignored: list[str]) -> dict[int, list[tuple[Answer, str | None]]]:
    """Deletions of tasks the run sent (found by the task id recorded at dispatch); others are no-ops."""
    ids = {str(o.get("id")) for o in objs if o.get("id") is not None}
    by_round: dict[int, list[tuple[Answer, str | None]]] = {}
    for idx, items in sorted(run.sent().items()):
        answers = run.store.round_answers(run.run_id, idx)
        for pool_id, task_id in items.items():
            if task_id is None or task_id not in ids:
                continue
            ids.discard(task_id)
            if pool_id in answers:
                by_round.setdefault(idx, []).append(
                    (Answer(pool_id=pool_id, status="deleted", annotation_id=answers[pool_id],
                            reason="the task was deleted in Label Studio"), None))
    for task_id in sorted(ids):
        ignored.append(f"task {task_id} is no task this run sent")
    return by_round
