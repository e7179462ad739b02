"""What ``al-loop serve`` adds to a round in Label Studio once its batch is sent: a view and predictions.

The round's view
----------------
:func:`ensure_round_view` gives each task of the batch its rank in al-loop's
selection (``data.al_rank``, 0 = picked first; the tasks are created in pool id
order, so their ids do not give it) and creates one Data Manager view per round,
titled ``"al-loop round N"``, that shows the round's tasks of this campaign
(filters on ``data.al_campaign``, ``data.al_run``, ``data.al_round``) ordered
by ``data.al_rank`` (Label Studio 1.23 orders a view by a data field, numerically,
with ``"ordering": ["tasks:data.al_rank"]``; see ``data_manager/managers.py``
``apply_ordering``). The prediction score is no stable key for this: the
Data Manager averages the scores of all of a task's predictions. Idempotent: a
task that has its rank is not written again and a view of that title is
reused, so a restart after a crash creates nothing twice.

Predictions in bulk
-------------------
:func:`write_predictions` writes one prediction of the current round's model
(``model_version`` ``"al-loop run R round K"``) to every task of the campaign
that has no annotation and no prediction of that version yet, through
``POST /api/projects/ID/import/predictions`` (a list of ``{task, result,
score, model_version}``; 1.23's bulk endpoint), ``chunk`` tasks per request. Label Studio 1.23
drops (silently: ``{"created": 0}``) an imported prediction whose score is outside ``[0, 1]``;
``/predict``'s scores lie in it (:func:`oracles.ls_backend.model.prediction_score`) and are written
as they are; what the server did not take is said in the log.
Which tasks still need one is asked of the server each time (a Data Manager
filter on ``predictions_model_versions``), so a pass cut short by a crash
goes on where it stopped and never writes a task's prediction twice. Progress
is logged per chunk and kept in the run's ``oracle_state`` (``predictions``:
``{"model_version", "written", "total"}``), where ``campaign status`` can show it.

Only tasks the project holds get predictions: by default al-loop imports tasks
only for selected items; a campaign started with ``--import-pool`` holds one per
pool item (:mod:`oracles.ls_pool`), so the whole unlabeled pool is predicted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from al_loop.backend_driver import PREDICTIONS_KEY
from al_loop.faults import crash_point

#: the title of round ``idx``'s Data Manager view
VIEW_TITLE = "al-loop round {idx}"
#: tasks per bulk prediction request (1.23 loads the ids of all the project's tasks per request: larger
#: chunks amortise that; see benchmarks/backend_bulk.py)
CHUNK = 5000


def view_title(idx: int) -> str:
    return VIEW_TITLE.format(idx=idx)


def _filters(oracle: Any, run_id: int, extra: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    items: list[Mapping[str, Any]] = [
        {"filter": "filter:tasks:data.al_run", "operator": "equal", "type": "Number", "value": int(run_id)}]
    if oracle.campaign_id:
        items.append({"filter": "filter:tasks:data.al_campaign", "operator": "equal", "type": "String",
                      "value": str(oracle.campaign_id)})
    items.extend(extra)
    return {"conjunction": "and", "items": items}


def ensure_round_view(oracle: Any, store: Any, run_id: int, idx: int) -> int:
    """Rank the batch tasks of round ``idx`` and return the id of the round's view (created if missing)."""
    backoff = oracle._backoff()
    ranks = {int(s.pool_id): int(s.rank) for s in store.selections(run_id) if s.round == idx}
    for task in oracle._round_tasks(run_id, idx, backoff, full=False):
        data = dict(task.data or {})
        pid = int(data.get("al_pool_id", -1))
        if pid in ranks and data.get("al_rank") != ranks[pid]:
            data["al_rank"] = ranks[pid]
            oracle._rest("PATCH", f"/api/tasks/{int(task.id)}", "rank a task of the round", backoff,
                         {"data": data})
    title = view_title(idx)
    views = oracle._rest("GET", f"/api/dm/views?project={oracle.project_id}", "list the project's views",
                         backoff) or []
    for view in views:
        if (view.get("data") or {}).get("title") == title:
            store.set_oracle_state(run_id, f"view:{idx}", str(view["id"]))
            return int(view["id"])
    round_filter = {"filter": "filter:tasks:data.al_round", "operator": "equal", "type": "Number", "value": idx}
    created = oracle._rest("POST", "/api/dm/views", "create the round's view", backoff, {
        "project": oracle.project_id,
        "data": {"title": title, "filters": _filters(oracle, run_id, [round_filter]),
                 "ordering": ["tasks:data.al_rank"]}})
    store.set_oracle_state(run_id, f"view:{idx}", str(created["id"]))
    return int(created["id"])


def tasks_without(oracle: Any, run_id: int, version: str, page_size: int = 1000) -> list[dict[str, Any]]:
    """Tasks of the campaign (id + data) with no annotation and no prediction of ``version``."""
    backoff = oracle._backoff()
    query = json.dumps({"filters": _filters(oracle, run_id, [
        {"filter": "filter:tasks:total_annotations", "operator": "equal", "type": "Number", "value": 0},
        {"filter": "filter:tasks:predictions_model_versions", "operator": "not_contains", "type": "List",
         "value": [version]}])})
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        got = oracle._rest("GET", f"/api/tasks?project={oracle.project_id}&page={page}&page_size={page_size}"
                           f"&include=id,data&query={_quote(query)}", "list tasks without predictions", backoff)
        tasks = got.get("tasks", []) if isinstance(got, Mapping) else []
        out.extend({"id": int(t["id"]), "data": t.get("data") or {}} for t in tasks)
        total = got.get("total") if isinstance(got, Mapping) else None
        if not tasks or (isinstance(total, int) and len(out) >= total) or len(tasks) < page_size:
            return out
        page += 1


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def _post_once(oracle: Any, path: str, body: Any) -> Any | None:
    """One POST, never repeated here (an import is not idempotent); None when its fate is unknown.

    A dropped connection, a timeout or a 5xx may come after the server
    committed: the caller lists again what still lacks a prediction instead.
    """
    import httpx

    from oracles.label_studio import _rest_error

    try:
        with httpx.Client(timeout=oracle.retry.timeout) as http:
            reply = http.post(f"{oracle.url}{path}", json=body, headers={"Authorization": f"Token {oracle._api_key}"})
    except httpx.TransportError:
        return None
    if reply.status_code >= 500 or reply.status_code in (408, 429):
        return None
    if reply.status_code >= 400:
        raise _rest_error(oracle.url, "write predictions", reply)
    return reply.json() if reply.content else {}


def write_predictions(oracle: Any, store: Any, run_id: int, version: str,
                      predict: Callable[[list[dict[str, Any]]], list[dict[str, Any]]], *, chunk: int = CHUNK,
                      log: Callable[[str], None] | None = None, passes: int = 5) -> int:
    """Write a ``version`` prediction (``predict(tasks)``: one per task, in order) to every task lacking one.

    Returns the number written; an empty prediction (``result: []``, a task
    the model cannot predict) is not written. A request whose fate is unknown
    (timeout, dropped connection, 5xx) is not sent again: the tasks still
    without a prediction are listed again and the pass goes on with those, at
    most ``passes`` times.
    """
    from al_loop.errors import OracleError

    log = log or (lambda _m: None)
    written = 0
    for _attempt in range(passes):
        todo = tasks_without(oracle, run_id, version)
        total = len(todo)
        t0 = time.perf_counter()
        unsure = False
        for start in range(0, total, chunk):
            part = todo[start:start + chunk]
            preds = predict(part)
            body = [{"task": t["id"], "result": p["result"], "score": _unit(p.get("score")),
                     "model_version": version} for t, p in zip(part, preds, strict=True) if p.get("result")]
            if body:
                got = _post_once(oracle, f"/api/projects/{oracle.project_id}/import/predictions", body)
                if got is None:
                    log(f"run {run_id}: Label Studio did not confirm {len(body)} prediction(s) of {version}; "
                        "listing the tasks that still lack one")
                    unsure = True
                    time.sleep(1.0)
                    break
                created = int(got.get("created", len(body))) if isinstance(got, Mapping) else len(body)
                if created < len(body):
                    log(f"run {run_id}: Label Studio took {created} of {len(body)} prediction(s) of {version} "
                        "(it drops those it finds invalid)")
                written += created
                crash_point("after_prediction_chunk")  # written at the server, progress not recorded
            store.set_oracle_state(run_id, PREDICTIONS_KEY, json.dumps(
                {"model_version": version, "written": written, "total": total}))
            rate = (start + len(part)) / max(time.perf_counter() - t0, 1e-9)
            log(f"run {run_id}: predictions of {version}: {start + len(part)}/{total} task(s) ({rate:.0f} tasks/s)")
        if not unsure:
            return written
    raise OracleError(f"Label Studio at {oracle.url} did not confirm the predictions of {version} in {passes} "
                      "passes; the backend writes the rest at the next round or restart")


def _unit(score: Any) -> float | None:
    """A score Label Studio takes (1.23 drops imported predictions scored outside [0, 1]): clipped to it.

    ``/predict``'s scores are in ``[0, 1]`` already (:func:`oracles.ls_backend.model.prediction_score`);
    the clip guards a plugin model's.
    """
    if not isinstance(score, int | float):
        return None
    return min(max(float(score), 0.0), 1.0)


def show_model_version(oracle: Any, version: str, log: Callable[[str], None] | None = None) -> bool:
    """Make ``version`` the project's model version; False (with a log line) if Label Studio refuses it.

    With the model-version switch off (1.23's default) annotators see, and the
    Data Manager's *Prediction score* column counts, only predictions of the
    project's version. Pull mode keeps it at ``al-loop``; in backend mode the
    served predictions carry ``al-loop run R round K``, so after a round's
    predictions are written the project shows that version (1.23 accepts the
    change only once predictions of it exist: call this after
    :func:`write_predictions`).
    """
    from al_loop.errors import OracleError

    try:
        oracle._rest("PATCH", f"/api/projects/{oracle.project_id}", "set the project's model version",
                     oracle._backoff(), {"model_version": version})
    except OracleError as exc:
        if log:
            log(f"Label Studio kept the project's model version ({exc}); annotators see the pull-mode predictions")
        return False
    return True


def after_dispatch(oracle: Any, store: Any, run_id: int, predictor: Any = None,
                   log: Callable[[str], None] | None = None) -> Callable[[int], None]:
    """The backend driver's ``after_dispatch`` for Label Studio: the round's view, then bulk predictions."""

    def hook(idx: int) -> None:
        ensure_round_view(oracle, store, run_id, idx)
        crash_point("after_round_view")
        if predictor is not None:
            version = predictor.model_version()
            written = write_predictions(oracle, store, run_id, version, predictor.predict, log=log)
            # 1.23 refuses a version without predictions; after a restart they may all be written already
            if written or has_predictions(oracle, run_id, version):
                show_model_version(oracle, version, log=log)

    return hook



def has_predictions(oracle: Any, run_id: int, version: str) -> bool:
    """Whether some task of the campaign holds a prediction of ``version`` (one short Data Manager query)."""
    backoff = oracle._backoff()
    query = json.dumps({"filters": _filters(oracle, run_id, [
        {"filter": "filter:tasks:predictions_model_versions", "operator": "contains", "type": "List",
         "value": [version]}])})
    got = oracle._rest("GET", f"/api/tasks?project={oracle.project_id}&page=1&page_size=1&include=id"
                       f"&query={_quote(query)}", "look for predictions of the round", backoff)
    return bool(got.get("tasks")) if isinstance(got, Mapping) else False
