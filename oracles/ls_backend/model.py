"""The model view of ``al-loop serve``: a prediction and a score for each Label Studio task, from the store.

What a prediction holds
-----------------------
For a task of the served run (its data carries ``al_pool_id``, and the run's
campaign id in ``al_campaign`` or as the prefix of ``al_key``; an ``al_run``,
if present, must be the run's id):

- ``result``: the model's class (a multi-label run: every label with
  probability >= 0.5) as a pre-annotation of the project's labeling
  config: one ``choices`` region whose ``from_name``/``to_name`` are those of
  the config's ``<Choices>`` control (``name="label"`` preferred) and the object
  it points to (al-loop's own config when the request has none);
- ``score`` (below) and ``model_version`` = ``"al-loop run RUN round ROUND"``.

A task al-loop does not know (no ``al_pool_id``, another campaign's or another
run's, a pool id the run's pool does not hold) gets an empty prediction
(``result: []``, no score) with a one-line ``reason``; the other tasks of the
batch are predicted as usual. So does a task when no model exists yet (round
0: nothing is labeled) or the class is not a choice of the config, but those
keep their score.

The score: sorting by it ascending gives al-loop's selection order
------------------------------------------------------------------
ROUND is the newest round that has a selection. For a task in ROUND's batch,
``score = 0.5 * rank / batch_size`` (rank 0 = picked first, from the
``selections`` table), in ``[0, 0.5)``; whatever the strategy (uncertainty,
k-center, BADGE, SIMILAR, TypiClust), the batch sorts first, in the order
al-loop picked it. For any other item, ``score = 0.5 + 0.5 * p`` where ``p`` is
the model's probability of its predicted class (multi-label: the smallest
``max(q, 1 - q)`` over the labels' probabilities ``q``; ``p = 1`` without a model), in
``(0.5, 1]``: those sort after the batch, least confident first. Every score
lies in ``[0, 1]``: Label Studio 1.23 drops (silently) an imported prediction
scored outside it, so the bulk predictions write these same scores. Label Studio's Data Manager sorts by
"Prediction score" ascending to show the tasks in that order.

The model
---------
ROUND's learner is the run's learner fitted on the labels of the rounds before
ROUND (the labels the controller trained on when it selected ROUND's batch),
with the controller's seed for ROUND, so its classes are the pre-annotations
``campaign run`` attaches. It is rebuilt from the store and cached in the
process per ``(run, ROUND, digest of those labels)``: a later round, or an edit
of an earlier answer, fits again; probabilities are kept per pool id.
"""

from __future__ import annotations

import hashlib
import threading
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func
from sqlmodel import select

from al_loop.errors import AlLoopError, OracleError
from al_loop.schema import LabelRow, SelectionRow
from al_loop.store import Store
from oracles.label_studio import CONTROL_NAME, KINDS, parse_labeling_config


def prediction_score(rank: int | None, batch: int, confidence: float | None) -> float:
    """The score of one task's prediction (module docstring): ascending order = al-loop's order.

    Parameters
    ----------
    rank : int or None
        The item's rank in the current round's batch (0 = picked first), None outside the batch.
    batch : int
        Size of that batch (>= 1).
    confidence : float or None
        The model's probability of its predicted class, None without a model.

    Returns
    -------
    float
        ``0.5 * rank / batch`` in ``[0, 0.5)`` for the batch, ``0.5 + 0.5 * confidence`` in
        ``(0.5, 1]`` otherwise.
    """
    if rank is not None:
        return 0.5 * rank / max(batch, 1)
    return 0.5 + 0.5 * (1.0 if confidence is None else float(confidence))

class BadRequest(ValueError):
    """A request body the backend cannot use; its message is the one line of the HTTP 400 answer."""


def model_version(run_id: int, round_: int) -> str:
    """The ``model_version`` of the predictions of ``round_`` of run ``run_id``."""
    return f"al-loop run {run_id} round {round_}"


@dataclass(frozen=True)
class ChoicesTarget:
    """Where a class goes in a labeling config: the ``<Choices>`` control, its object and its choices."""

    from_name: str
    to_name: str
    choices: tuple[str, ...]


def choices_target(label_config: str | None, classes: Sequence[str], kind: str) -> ChoicesTarget:
    """The ``<Choices>`` control of ``label_config`` (None or empty: al-loop's own config for ``kind``).

    Raises
    ------
    BadRequest
        The config is not XML, or it has no ``<Choices>`` control with a ``toName``.
    """
    if not label_config:
        return ChoicesTarget(CONTROL_NAME, kind if kind in KINDS else "text", tuple(str(c) for c in classes))
    try:
        _, choices = parse_labeling_config(label_config)
        root = ET.fromstring(label_config)
    except (OracleError, ET.ParseError) as exc:
        raise BadRequest(f"label_config is not a labeling config ({str(exc).split(';')[0]})") from None
    controls = [el for el in root.iter() if el.tag == "Choices"]
    if not controls:
        raise BadRequest("label_config has no <Choices> control; al-loop predicts one class per task")
    control = next((el for el in controls if el.get("name") == CONTROL_NAME), controls[0])
    if not control.get("name") or not control.get("toName"):
        raise BadRequest("the <Choices> control of label_config needs a name and a toName")
    return ChoicesTarget(str(control.get("name")), str(control.get("toName")), tuple(choices))


@dataclass
class _Fitted:
    """One round's model view: the fitted learner (None: nothing labeled), the batch's ranks, probabilities."""

    round: int
    learner: Any
    ranks: dict[int, int]
    note: str | None = None
    # pool id -> (the predicted class indices, the model's confidence): one class and its probability, or for a
    # multi-label run every class with p >= 0.5 and the least sure decision's max(p, 1 - p)
    best: dict[int, tuple[tuple[int, ...], float]] = field(default_factory=dict)


class RunPredictor:
    """Predictions for the tasks of one campaign run, rebuilt from the store (see the module docstring).

    Parameters
    ----------
    store : Store
        The run's store (read here; this class writes nothing).
    run_id : int
        A campaign run (``oracle == "label_studio"``).
    """

    def __init__(self, store: Store, run_id: int) -> None:
        from al_loop.api import build_pool, check_inputs

        self.store = store
        self.run_id = int(run_id)
        self.config = store.config(self.run_id)
        self.pool = build_pool(self.config)
        check_inputs(self.config, self.pool, self.run_id)
        self.campaign_id: str | None = self.config.oracle_params.get("campaign_id") or None
        self.kind = str(self.config.oracle_params.get("kind") or self.pool.kind)
        self._known = set(np.asarray(self.pool.ids).tolist())
        self._lock = threading.Lock()
        self._fitted: dict[tuple[int, str], _Fitted] = {}

    # ------------------------------------------------------------------ the round and its model
    def current_round(self) -> int:
        """The newest round with a selection (0 before the first one)."""
        with self.store.read() as s:
            newest = s.exec(select(func.max(SelectionRow.round)).where(SelectionRow.run_id == self.run_id)).one()
        return int(newest or 0)

    def model_version(self) -> str:
        return model_version(self.run_id, self.current_round())

    def _labels_before(self, round_: int) -> list[tuple[int, str]]:
        with self.store.read() as s:
            rows = s.exec(select(LabelRow.pool_id, LabelRow.label).where(
                LabelRow.run_id == self.run_id, LabelRow.round < round_, LabelRow.status == "labeled",
                LabelRow.label.is_not(None)).order_by(LabelRow.pool_id))  # type: ignore[union-attr]
            return [(int(p), str(lab)) for p, lab in rows]

    def _ranks(self, round_: int) -> dict[int, int]:
        with self.store.read() as s:
            rows = s.exec(select(SelectionRow.pool_id, SelectionRow.rank).where(
                SelectionRow.run_id == self.run_id, SelectionRow.round == round_))
            return {int(p): int(r) for p, r in rows}

    def fitted(self) -> _Fitted:
        """The current round's model view (fitted on first use, then cached per round and labels)."""
        from al_loop.api import build_learner
        from al_loop.controller import derived_seed

        round_ = self.current_round()
        labels = self._labels_before(round_)
        digest = hashlib.sha256(repr(labels).encode()).hexdigest()
        key = (round_, digest)
        with self._lock:
            if key in self._fitted:
                return self._fitted[key]
            ranks = self._ranks(round_)
            index = {c: i for i, c in enumerate(self.pool.classes)}
            if self.pool.multilabel:  # label sets as the controller reads them: (n, L) 0/1 rows
                from al_loop.multilabel import parse_set

                parsed = [(p, parse_set(lab, self.pool.classes)) for p, lab in labels]
                usable: list[tuple[int, Any]] = [(p, row) for p, row in parsed if row is not None]
            else:
                usable = [(p, index[lab]) for p, lab in labels if lab in index]
            learner, note = None, None
            if not usable:
                note = f"no model yet: nothing labeled before round {round_}"
            else:
                learner = build_learner(self.config.learner, self.pool)
                ids = np.asarray([p for p, _ in usable], dtype=np.int64)
                y = np.asarray([c for _, c in usable], dtype=np.uint8 if self.pool.multilabel else np.int64)
                learner.fit(self.pool, ids, y, seed=derived_seed(self.config.seed, round_))
            view = _Fitted(round_, learner, ranks, note)
            self._fitted = {key: view}  # older rounds and label sets are not asked for again
            return view

    def warm(self) -> str:
        """Fit the current round's model now (``serve`` does it before it listens); its model version."""
        return model_version(self.run_id, self.fitted().round)

    # ------------------------------------------------------------------ tasks
    def pool_id_of(self, task: Mapping[str, Any]) -> tuple[int | None, str | None]:
        """``(pool id, None)`` for a task of this run, else ``(None, why it is not ours)``."""
        tid = task.get("id")
        name = f"task {tid}" if tid is not None else "the task"
        data = task.get("data")
        if not isinstance(data, Mapping) or "al_pool_id" not in data:
            return None, f"{name} has no al_pool_id in its data: it is not a task of al-loop"
        key = str(data.get("al_key") or "")
        if self.campaign_id is not None:
            owner = data.get("al_campaign") or (key.split(":")[0] if key.count(":") == 3 else None)
            if owner != self.campaign_id:
                return None, (f"{name} belongs to campaign {owner or 'none'}, not to campaign {self.campaign_id} "
                              f"of run {self.run_id}")
        run = data.get("al_run")
        if run is not None and str(run) != str(self.run_id):
            return None, f"{name} belongs to run {run}; this backend serves run {self.run_id}"
        raw = data.get("al_pool_id")
        try:
            pool_id = int(raw)
        except (TypeError, ValueError):
            return None, f"{name} has al_pool_id {raw!r}, which is not a pool id"
        if pool_id not in self._known:
            return None, f"{name} has al_pool_id {pool_id}, which run {self.run_id}'s pool does not hold"
        return pool_id, None

    def _probabilities(self, view: _Fitted, ids: list[int]) -> None:
        todo = sorted({p for p in ids if p not in view.best})
        if not todo or view.learner is None:
            return
        proba = np.asarray(view.learner.predict_proba(self.pool, np.asarray(todo, dtype=np.int64)))
        if self.pool.multilabel:
            for pid, row in zip(todo, proba, strict=True):
                conf = float(np.maximum(row, 1.0 - row).min())
                view.best[pid] = (tuple(int(j) for j in np.flatnonzero(row >= 0.5)), conf if np.isfinite(conf) else 0.0)
            return
        best = proba.argmax(axis=1)
        for pid, b, row in zip(todo, best.tolist(), proba, strict=True):
            p = float(row[b])
            view.best[pid] = ((int(b),), p if np.isfinite(p) else 0.0)

    def predict(self, tasks: Sequence[Mapping[str, Any]], label_config: str | None = None) -> list[dict[str, Any]]:
        """One prediction per task, in order (see the module docstring for the shapes and the score).

        Raises
        ------
        BadRequest
            ``label_config`` is not a labeling config with a ``<Choices>`` control.
        """
        target = choices_target(label_config, self.pool.classes, self.kind)
        view = self.fitted()
        version = model_version(self.run_id, view.round)
        ids: list[int | None] = []
        reasons: list[str | None] = []
        for task in tasks:
            pid, why = self.pool_id_of(task)
            ids.append(pid)
            reasons.append(why)
        try:
            self._probabilities(view, [p for p in ids if p is not None])
        except AlLoopError as exc:
            raise OracleError(f"the model of run {self.run_id} round {view.round} cannot predict: {exc}") from None
        n = max(len(view.ranks), 1)
        out: list[dict[str, Any]] = []
        for pid, why in zip(ids, reasons, strict=True):
            if pid is None:
                out.append({"result": [], "model_version": version, "reason": why})
                continue
            guess = view.best.get(pid)
            score = prediction_score(view.ranks.get(pid), n, guess[1] if guess else None)
            pred: dict[str, Any] = {"result": [], "score": round(float(score), 9), "model_version": version}
            names = [self.pool.classes[j] for j in guess[0]] if guess is not None else []
            outside = [n for n in names if n not in target.choices]
            if guess is None:
                pred["reason"] = view.note or "no model"
            elif outside:
                pred["reason"] = (f"the model's class {outside[0]!r} is not a choice of the "
                                  f"project's <Choices name={target.from_name!r}>")
            elif not names:
                pred["reason"] = "the model gives this item no label (every label's probability is below 0.5)"
            else:
                pred["result"] = [{"from_name": target.from_name, "to_name": target.to_name, "type": "choices",
                                   "value": {"choices": names}}]
            out.append(pred)
        return out
