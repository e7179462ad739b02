"""Every pool item as a Label Studio task (``campaign init --import-pool``), imported once and resumably.

Why
---
Label Studio's Community edition does active learning through the Data Manager:
sort the tasks by prediction score, *Label Tasks As Displayed*. That orders only
the tasks the project holds. A campaign imports a task per *selected* item by
default; with ``--import-pool`` it imports one per pool item first, so ``al-loop
serve``'s bulk predictions score the whole unlabeled pool and the Data Manager
shows the pool in al-loop's order (the round's batch first: see
:mod:`oracles.ls_backend.model`).

Task layout
-----------
A pool task carries :func:`oracles.label_studio.pool_task_data`: the object
(text or image), ``al_run``, ``al_pool_id`` and ``al_campaign``, but no
``al_key`` and no ``al_round``. When a round selects the item,
:meth:`~oracles.label_studio.LabelStudioOracle.submit` adds ``al_key`` and
``al_round`` to that task (one ``PATCH``) instead of creating one, so every
reader of a round (the pull, the webhook, the round's view) sees it as a task
of the round. An annotation made on a pool task before any round selects it is
not an answer yet (the webhook says so in one line); it becomes one if and when
a round selects the item, and the next pull collects it.

Crash safety
------------
The pool is imported in chunks of :data:`CHUNK` consecutive pool ids. Which of
a chunk's items the project holds is asked of the server (a Data Manager filter
on the run, the campaign and the chunk's pool-id range) before anything is
sent, and again after every send, so a send whose reply was lost (a timeout, a
kill) is never repeated blindly; a task that appears twice is deleted down to
the lowest id, as :meth:`submit` does. Once a chunk is complete its ``{pool id:
task id}`` pairs are recorded in the run's ``oracle_state`` (``pool_tasks:<first
pool id>``) with the progress (``pool_import``: ``{"imported", "total"}``), so a
restart reads the recorded chunks and lists only the rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from al_loop.errors import OracleError

#: pool items per import request (and per recorded chunk)
CHUNK = 5000
#: ``oracle_state`` key of the import's progress (``{"imported", "total"}``)
PROGRESS_KEY = "pool_import"
#: ``oracle_state`` key of one chunk's ``[[pool id, task id], ...]`` (by the chunk's first pool id)
TASKS_KEY = "pool_tasks:{start}"


def chunks(ids: np.ndarray, size: int = CHUNK) -> list[np.ndarray]:
    """``ids`` (ascending, shape ``(n,)``) cut into consecutive pieces of at most ``size``."""
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def progress(state: Callable[[str], str | None]) -> dict[str, int] | None:
    """The recorded progress ``{"imported", "total"}`` of a run's pool import (None: none started)."""
    raw = state(PROGRESS_KEY)
    return {k: int(v) for k, v in json.loads(raw).items()} if raw else None


def _range_filter(oracle: Any, run_id: int, lo: int, hi: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        {"filter": "filter:tasks:data.al_run", "operator": "equal", "type": "Number", "value": int(run_id)},
        {"filter": "filter:tasks:data.al_pool_id", "operator": "in", "type": "Number",
         "value": {"min": int(lo), "max": int(hi)}},
    ]
    if oracle.campaign_id:
        items.append(oracle._campaign_filter())
    return items


def held(oracle: Any, run_id: int, ids: np.ndarray, backoff: Any) -> dict[int, list[int]]:
    """``{pool id: sorted task ids}`` of the run's tasks in the project whose pool id is in ``ids``."""
    wanted = {int(p) for p in ids}
    found: dict[int, list[int]] = {}
    if not wanted:
        return found
    for task in oracle._list_tasks(_range_filter(oracle, run_id, min(wanted), max(wanted)), backoff, full=False):
        pid = (task.data or {}).get("al_pool_id")
        if isinstance(pid, int) and pid in wanted:
            found.setdefault(pid, []).append(int(task.id))
    return {p: sorted(t) for p, t in found.items()}


def ensure_pool_tasks(oracle: Any, source: Any, log: Callable[[str], None] | None = None) -> dict[int, int]:
    """Import a task for every pool item the project does not hold yet; ``{pool id: task id}`` of all of them.

    Parameters
    ----------
    oracle : LabelStudioOracle
        The campaign's oracle (its project, campaign id, media and retry settings).
    source : RunPool
        The run's pool and oracle state (:class:`al_loop.run_pool.RunPool`).
    log : callable, optional
        One line per chunk imported (``pool import: 5000/100000 task(s)``).

    Returns
    -------
    dict
        ``{pool id: task id}`` for every pool item (the lowest task id where a
        lost reply left two).

    Raises
    ------
    OracleError
        The server took a chunk twice in a row without listing its tasks
        (something rewrites their data), or the oracle's own errors.
    """
    from oracles.label_studio import _call, _Transient, pool_task_data

    log = log or (lambda _m: None)
    ids = source.ids()
    total = int(len(ids))
    mapping: dict[int, int] = {}
    done = 0
    backoff = oracle._backoff()
    for chunk in chunks(ids, CHUNK):
        key = TASKS_KEY.format(start=int(chunk[0]))
        raw = source.state(key)
        if raw is not None:
            mapping.update({int(p): int(t) for p, t in json.loads(raw)})
            done += len(chunk)
            continue
        found = held(oracle, source.run_id, chunk, backoff)
        clean_sends = 0
        while missing := [int(p) for p in chunk if int(p) not in found]:
            if clean_sends >= 2:
                raise OracleError(
                    f"Label Studio project {oracle.project_id} accepted {len(missing)} pool task(s) but does not list "
                    f"them (e.g. pool item {missing[0]}); check that the tasks keep their 'al_pool_id' data field")
            clean_sends += 1
            tasks = [{"data": pool_task_data(source.run_id, p, source.payload(p), oracle.campaign_id, oracle.media)}
                     for p in missing]
            try:
                _call(lambda t=tasks: oracle.client.projects.import_tasks(  # type: ignore[misc]
                    id=oracle.project_id, request=t, return_task_ids=True),
                    op="import pool tasks", url=oracle.url, backoff=None)
            except _Transient as failure:
                # Ambiguous: the server may have committed. Wait, then list before sending again.
                backoff.wait("import pool tasks", failure)
                clean_sends = 0
            found = held(oracle, source.run_id, chunk, backoff)
        oracle._drop_duplicates({str(p): t for p, t in found.items() if len(t) > 1}, backoff)
        pairs = [[int(p), found[int(p)][0]] for p in chunk]
        source.set_state(key, json.dumps(pairs))
        mapping.update(dict((p, t) for p, t in pairs))
        done += len(chunk)
        source.set_state(PROGRESS_KEY, json.dumps({"imported": done, "total": total}))
        log(f"pool import: {done}/{total} task(s) in Label Studio project {oracle.project_id}")
    if progress(source.state) != {"imported": total, "total": total}:  # every chunk was recorded before
        source.set_state(PROGRESS_KEY, json.dumps({"imported": total, "total": total}))
    return mapping


def mark_selected(oracle: Any, tasks: Sequence[tuple[int, dict[str, Any]]], backoff: Any) -> list[int]:
    """Give pool tasks their round's ``data`` (``al_key``, ``al_round`` added); the task ids that are gone.

    ``tasks``: ``(task id, data)`` pairs, ``data`` as :func:`oracles.label_studio.task_for`
    builds it. A ``PATCH`` of the same data is idempotent, so a retried or
    repeated call changes nothing more. A task deleted in Label Studio (404) is
    returned, for the caller to create anew.
    """
    from oracles.label_studio import LabelStudioHTTPError

    gone: list[int] = []
    for task_id, data in tasks:
        try:
            oracle._rest("PATCH", f"/api/tasks/{int(task_id)}", "mark a pool task as selected", backoff,
                         {"data": data})
        except LabelStudioHTTPError as exc:
            if exc.status != 404:
                raise
            gone.append(int(task_id))
    return gone
