"""The loop controller: one persisted state machine step at a time.

``TRAINING -> SELECTED -> DISPATCHED -> AWAITING -> LABELED -> (next round)``

The controller keeps no state between steps that the store does not have:
every :meth:`Controller.step` reads the current round from the store, does
one transition and commits it. A process killed anywhere resumes from the
store; what was committed is never redone and what was not is redone with the
same seeds, so it gives the same result.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

import numpy as np
from sklearn.metrics import f1_score

from al_loop.faults import crash_point
from al_loop.learners.base import Learner
from al_loop.multilabel import metric_columns, parse_set, set_string
from al_loop.oracle import Oracle
from al_loop.pool import Pool
from al_loop.schedules import batch_for_round, stop_reason
from al_loop.schema import MetricRow, StopSignalRow
from al_loop.stopping import Signals, first_reason, parse_rule, round_signals, stop_set_ids
from al_loop.store import Store
from al_loop.strategy import Strategy
from al_loop.types import OutboxItem, QueryContext, RoundState, RunStatus
from al_loop.view import ModelView


def withdrawn_ids(store: Store, run_id: int, idx: int) -> list[int]:
    """Pool ids of round ``idx`` whose answer a person withdrew after the round closed (and not answered again).

    Kept in the ``oracle_state`` table (key ``withdrawn:<round>``): such an item is
    not asked again (it was selected once); ``campaign status`` shows it.
    """
    raw = store.oracle_state(run_id, f"withdrawn:{idx}")
    ids = [int(p) for p in json.loads(raw)] if raw else []
    if not ids:
        return []
    answered = set(store.round_answers(run_id, idx))
    return [p for p in ids if p not in answered]


def apply_round_answers(store: Store, run_id: int, idx: int, answers: list, classes: Sequence[str],
                        log: Callable[[str], None] | None = None) -> dict[str, int]:
    """Apply answers to round ``idx`` as a pull does (newest ``updated_at`` wins, skips, deletions, quarantine).

    An answer withdrawn from a closed (LABELED) round is recorded under
    ``withdrawn:<round>`` in ``oracle_state`` and said through ``log``. Used by
    :meth:`Controller.pull` and by the Label Studio webhook (``oracles.ls_backend.webhook``).
    Returns the counts of :meth:`Store.apply_answers`.
    """
    before = store.round_answers(run_id, idx)
    counts = store.apply_answers(run_id, idx, answers, classes)
    gone = sorted(a.pool_id for a in answers
                  if a.status == "deleted" and a.annotation_id is not None and before.get(a.pool_id) == a.annotation_id)
    state = next((r.state for r in store.rounds(run_id) if r.idx == idx), None)
    if gone and state == RoundState.LABELED.value:
        known = set(withdrawn_ids(store, run_id, idx))
        store.set_oracle_state(run_id, f"withdrawn:{idx}", json.dumps(sorted(known | set(gone))))
        shown = ", ".join(map(str, gone[:5])) + (", ..." if len(gone) > 5 else "")
        (log or (lambda _m: None))(
            f"run {run_id} round {idx}: {len(gone)} answer(s) withdrawn in Label Studio (pool ids "
            f"{shown}); they leave the campaign and `campaign status` counts them as withdrawn")
    return counts


def derived_seed(seed: int, round_: int) -> int:
    """A 32-bit seed for round ``round_`` of a run (learner fits)."""
    return int(np.random.SeedSequence([seed, round_]).generate_state(1)[0])


class Controller:
    """Drive one run of a store.

    Parameters
    ----------
    store : Store
    run_id : int
    pool : Pool
    learner : Learner
    strategy : Strategy
    oracle : Oracle
    log : callable, optional
        Receives one-line progress messages.
    round_timeout : float, optional
        Seconds after dispatch after which an incomplete round counts as labeled.
    min_fraction : float, optional
        Overrides the run's ``min_fraction`` (share of a round that must be answered).
    """

    def __init__(self, store: Store, run_id: int, pool: Pool, learner: Learner, strategy: Strategy,
                 oracle: Oracle, log: Callable[[str], None] | None = None,
                 round_timeout: float | None = None, min_fraction: float | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.pool = pool
        self.learner = learner
        self.strategy = strategy
        self.oracle = oracle
        self.config = store.config(run_id)
        self.log = log or (lambda _msg: None)
        self.round_timeout = round_timeout
        self.min_fraction = self.config.min_fraction if min_fraction is None else min_fraction
        self._reconciled = False
        self._last_reconcile = 0.0
        #: seconds between checks that every item of a waiting round is still at the oracle
        #: (a person may delete a task); only for asynchronous oracles
        self.reconcile_every = 60.0
        #: seconds between pulls of every closed round before training (edits, deletions); see :meth:`_pull_all`
        self.full_pull_every = 600.0
        self._last_full_pull: float | None = None
        self._class_index = {c: i for i, c in enumerate(pool.classes)}
        self._stop_set: np.ndarray | None = None

    # -- the loop ---------------------------------------------------------------------
    def step(self) -> str:
        """Do one transition. Returns ``"advanced"``, ``"waiting"`` or ``"done"``."""
        if self.store.run(self.run_id).status != RunStatus.RUNNING.value:
            return "done"
        rnd = self.store.current_round(self.run_id)
        state = RoundState(rnd.state)
        if state is RoundState.TRAINING:
            self._train_and_select(rnd.idx)
        elif state is RoundState.SELECTED:
            self._dispatch(rnd.idx)
        elif state is RoundState.DISPATCHED:
            self.store.set_state(self.run_id, rnd.idx, RoundState.DISPATCHED, RoundState.AWAITING)
            crash_point("after_awaiting")
        elif state is RoundState.AWAITING:
            return self._await(rnd.idx, rnd.updated_at)
        elif state is RoundState.LABELED:
            self.store.next_round(self.run_id, rnd.idx)
            crash_point("after_next_round")
        return "advanced"

    def run(self, wait: Callable[[], None] | None = None, should_stop: Callable[[], bool] | None = None) -> None:
        """Step until the run is done (``wait`` is called while answers are outstanding)."""
        while True:
            if should_stop is not None and should_stop():
                return
            result = self.step()
            if result == "done":
                return
            if result == "waiting":
                if wait is None:
                    raise RuntimeError("the oracle has not answered and no wait function was given")
                wait()

    # -- TRAINING -> SELECTED -----------------------------------------------------------
    def _labeled(self) -> tuple[np.ndarray, np.ndarray]:
        rows = [r for r in self.store.labels(self.run_id) if r.status == "labeled" and r.label is not None]
        rows.sort(key=lambda r: r.pool_id)
        ids = np.asarray([r.pool_id for r in rows], dtype=np.int64)
        if self.pool.multilabel:  # (n_l, L) 0/1; the store holds canonical sets only (apply_answers checks them)
            labels = np.zeros((len(rows), self.pool.n_classes), dtype=np.uint8)
            for i, r in enumerate(rows):
                row = parse_set(r.label, self.pool.classes)
                if row is not None:
                    labels[i] = row
            return ids, labels
        labels = np.asarray([self._class_index[r.label] for r in rows], dtype=np.int64)
        return ids, labels

    def _train_and_select(self, idx: int) -> None:
        cfg = self.config
        if getattr(self.oracle, "asynchronous", False) and idx > 0:
            self._pull_all(idx)
        unlabeled = np.setdiff1d(self.pool.ids, self.store.selected_ids(self.run_id))
        rng = np.random.default_rng([cfg.seed, idx])
        if idx == 0:
            budget = min(cfg.init, len(unlabeled))
            if budget == 0:
                self.store.finish_run(self.run_id, RunStatus.EXHAUSTED)
                return
            if cfg.init_strategy == "random":
                ids, scores = np.sort(rng.choice(unlabeled, size=budget, replace=False)), np.zeros(budget)
                info = None
            else:  # a cold-start strategy picks the seed batch from the features alone
                from al_loop.api import build_strategy

                empty = np.zeros((0, self.pool.n_classes) if self.pool.multilabel else 0, dtype=np.int64)
                ctx = QueryContext(round=0, seed=cfg.seed, labeled_ids=np.array([], dtype=np.int64),
                                   labels=empty, unlabeled_ids=unlabeled,
                                   classes=self.pool.classes, rng=rng)
                sel = build_strategy(cfg.init_strategy, cfg.init_params).select(ModelView(self.pool, None), ctx,
                                                                                 budget)
                ids, scores, info = sel.ids, sel.scores, sel.info
            crash_point("before_select_commit")
            self.store.commit_selection(self.run_id, 0, ids, scores, [None] * budget, None, info=info)
            crash_point("after_select_commit")
            return
        labeled_ids, labels = self._labeled()
        metric, view = self._train(idx, labeled_ids, labels)
        crash_point("after_train")
        signals, history = self._stop_signals(idx, view, len(labeled_ids), unlabeled)
        spent = len(self.pool.ids) - len(unlabeled)
        end = self._end_reason(idx, metric, spent, len(unlabeled), history)
        if end is not None:
            status, note = end
            if idx <= cfg.rounds:
                self.log(f"run {self.run_id}: {note}; the run ends")
            self.store.record_final_metric(self.run_id, metric, status, note, signals=signals)
            return
        budget = batch_for_round(cfg.batch_schedule, cfg.batch, idx)
        if cfg.max_labels is not None and budget > cfg.max_labels - spent:
            budget = cfg.max_labels - spent
            self.log(f"run {self.run_id}: the label budget leaves {budget} item(s) for round {idx}")
        if budget > len(unlabeled):
            self.log(f"run {self.run_id}: batch {budget} is larger than the {len(unlabeled)} unlabeled items "
                     f"left; selecting {len(unlabeled)}")
            budget = len(unlabeled)
        ctx = QueryContext(round=idx, seed=cfg.seed, labeled_ids=labeled_ids, labels=labels,
                           unlabeled_ids=unlabeled, classes=self.pool.classes, rng=rng,
                           query_ids=np.asarray(cfg.query_ids, dtype=np.int64) if cfg.query_ids else None,
                           private_ids=np.asarray(cfg.private_ids, dtype=np.int64) if cfg.private_ids else None)
        t0 = time.perf_counter()
        strategy = self.strategy
        if view is None:  # nothing labeled yet (all skipped): fall back to random
            from al_loop.registry import STRATEGIES

            strategy = STRATEGIES.get("random")()
            view = ModelView(self.pool, None)
        sel = strategy.select(view, ctx, budget)
        metric_row = metric
        if metric_row is not None:
            metric_row.select_seconds = time.perf_counter() - t0
        predictions = self._predictions(view, sel.ids)
        crash_point("before_select_commit")
        self.store.commit_selection(self.run_id, idx, sel.ids, sel.scores, predictions, metric_row, info=sel.info,
                                    signals=signals)
        crash_point("after_select_commit")

    def _stop_signals(self, idx: int, view: ModelView | None, n_labels: int,
                      unlabeled: np.ndarray) -> tuple[StopSignalRow | None, list[Signals]]:
        """This round's stopping signals (None when the run does not track them) and the run's history with them."""
        if not self.config.tracks_stopping or view is None or view.learner is None:
            return None, []
        if self._stop_set is None:
            self._stop_set = stop_set_ids(self.pool.ids, self.config.stop_set, self.config.seed)
        rows = [r for r in self.store.stop_signals(self.run_id) if r.round < idx]
        previous = None
        if rows:
            previous = np.frombuffer(rows[-1].predictions, dtype=np.int16).astype(np.int64)
            if len(previous) != len(self._stop_set):
                previous = None
        proba = view.proba_of(self._stop_set)
        sig, pred = round_signals(idx, n_labels, proba, np.isin(self._stop_set, unlabeled), previous)
        row = StopSignalRow(run_id=self.run_id, round=idx, n_labels=n_labels, kappa=sig.kappa, changed=sig.changed,
                            max_uncertainty=sig.max_uncertainty, mean_uncertainty=sig.mean_uncertainty,
                            predictions=pred.astype(np.int16).tobytes())
        return row, [Signals.of(r) for r in rows] + [sig]

    def _end_reason(self, idx: int, metric: MetricRow | None, spent: int,
                    n_unlabeled: int, history: Sequence[Signals] = ()) -> tuple[RunStatus, str] | None:
        cfg = self.config
        if idx > cfg.rounds:
            return RunStatus.FINISHED, f"all {cfg.rounds} rounds done"
        if cfg.max_labels is not None and spent >= cfg.max_labels:
            return RunStatus.FINISHED, f"label budget {cfg.max_labels} reached"
        if n_unlabeled == 0:
            return RunStatus.EXHAUSTED, f"the unlabeled pool is exhausted after round {idx - 1}"
        if metric is not None and (cfg.stop_target is not None or cfg.plateau_rounds is not None):
            key = "val_" + cfg.stop_metric
            history = [getattr(m, key) for m in self.store.metrics(self.run_id) if m.round < idx]
            history = [h for h in history if h is not None] + [getattr(metric, key)]
            reason = stop_reason(history, cfg.stop_target, cfg.plateau_rounds, cfg.plateau_delta)
            if reason is not None:
                return RunStatus.FINISHED, f"stopped: {reason}"
        if cfg.stop and history:
            reason = first_reason([parse_rule(r) for r in cfg.stop], history)
            if reason is not None:
                last = history[-1]
                return RunStatus.FINISHED, f"stopped at round {last.round} with {last.n_labels} labels by {reason}"
        return None

    def _evaluate(self, X: np.ndarray | None, y: np.ndarray | None,
                  paths: list[str] | None = None) -> dict[str, float] | None:
        """The metrics of the fitted learner on one split: accuracy and macro F1; for a multi-label pool the
        subset accuracy (as ``accuracy``), macro and micro F1 and Hamming loss (:func:`al_loop.multilabel.metric_columns`)."""
        if X is None or y is None or len(X) == 0:
            return None
        ids = np.arange(len(X), dtype=np.int64)
        # the split's files go along: a learner that reads the images (finetune) predicts from them
        split = Pool(X=X, ids=ids, classes=self.pool.classes, y=y, kind=self.pool.kind, name=self.pool.name,
                     paths=paths, media_root=self.pool.media_root if paths is not None else None,
                     encoder=self.pool.encoder, encoder_options=self.pool.encoder_options,
                     multilabel=self.pool.multilabel)
        proba = self.learner.predict_proba(split, ids)
        y = np.asarray(y)
        if self.pool.multilabel:
            return metric_columns(y, proba)
        pred = proba.argmax(axis=1)
        return {"accuracy": float((pred == y).mean()),
                "macro_f1": float(f1_score(y, pred, average="macro", labels=np.arange(self.pool.n_classes),
                                           zero_division=0))}

    def _train(self, idx: int, ids: np.ndarray, labels: np.ndarray) -> tuple[MetricRow | None, ModelView | None]:
        if len(ids) == 0:
            return None, None
        t0 = time.perf_counter()
        crash_point("during_train")
        self.learner.fit(self.pool, ids, labels, seed=derived_seed(self.config.seed, idx))
        train_s = time.perf_counter() - t0
        test = self._evaluate(self.pool.X_test, self.pool.y_test, self.pool.test_paths) or {}  # none: no score
        val = self._evaluate(self.pool.X_val, self.pool.y_val, self.pool.val_paths) or {}
        metric = MetricRow(run_id=self.run_id, round=idx, n_labels=len(ids), accuracy=test.get("accuracy"),
                           macro_f1=test.get("macro_f1"), micro_f1=test.get("micro_f1"),
                           hamming_loss=test.get("hamming_loss"), train_seconds=train_s, select_seconds=0.0,
                           val_accuracy=val.get("accuracy"), val_macro_f1=val.get("macro_f1"))
        return metric, ModelView(self.pool, self.learner)

    def _predictions(self, view: ModelView, ids: np.ndarray) -> list[dict[str, object] | None]:
        if view.learner is None or "proba" not in view.learner.capabilities:
            return [None] * len(ids)
        proba = view.proba_of(ids)
        if self.pool.multilabel:  # the labels the model gives, and its least sure decision's max(p, 1 - p)
            return [{"label": set_string(row >= 0.5, self.pool.classes),
                     "score": round(float(np.maximum(row, 1.0 - row).min()), 6)} for row in proba]
        best = proba.argmax(axis=1)
        return [{"label": self.pool.classes[int(b)], "score": round(float(p[b]), 6)} for b, p in zip(best, proba, strict=False)]

    # -- SELECTED -> DISPATCHED -----------------------------------------------------------
    def _items(self, rows: list) -> list[OutboxItem]:
        wants = getattr(self.oracle, "wants_payload", True)
        return [OutboxItem(run_id=r.run_id, round=r.round, pool_id=r.pool_id,
                           payload=self.pool.payload(r.pool_id) if wants else None,
                           prediction=json.loads(r.prediction_json) if r.prediction_json else None) for r in rows]

    def _dispatch(self, idx: int) -> None:
        unsent = [r for r in self.store.outbox(self.run_id, idx) if r.sent_at is None]
        # look before re-sending: an earlier attempt may have reached the oracle
        existing = self.oracle.lookup([r.key for r in unsent]) if unsent else {}
        to_send = [r for r in unsent if r.key not in existing]
        crash_point("before_send")
        receipts = dict(existing)
        if to_send:
            receipts.update(self.oracle.submit(self._items(to_send)))
        crash_point("after_send")
        self.store.mark_sent(self.run_id, idx, receipts)
        self._reconciled = True
        crash_point("after_dispatch_commit")

    # -- AWAITING -> LABELED -----------------------------------------------------------------
    def _reconcile(self, idx: int) -> None:
        """After a restart: make sure every sent item of the round is at the oracle."""
        rows = self.store.outbox(self.run_id, idx)
        found = self.oracle.lookup([r.key for r in rows])
        missing = [r for r in rows if r.key not in found]
        if missing:
            self.log(f"run {self.run_id} round {idx}: {len(missing)} item(s) not at the oracle; sending them again")
            self.store.update_remote_ids(self.run_id, self.oracle.submit(self._items(missing)))
        self._reconciled = True
        self._last_reconcile = time.monotonic()

    def _pull_all(self, upto: int) -> None:
        """Pull answers of earlier rounds (late labels, edits, deletions) before training round ``upto``.

        Each time: the round just closed and every round with items still unanswered. The other
        rounds (only edits and deletions can change them) at the first training of this process
        and then every ``full_pull_every`` seconds, so a pull does not grow with the number of rounds.
        """
        now = time.monotonic()
        full = self._last_full_pull is None or now - self._last_full_pull >= self.full_pull_every
        rounds = list(range(upto)) if full else [
            r for r in range(upto) if r == upto - 1 or self.store.round_progress(self.run_id, r)["waiting"] > 0]
        self.pull(rounds)
        if full:
            self._last_full_pull = now

    def pull(self, rounds: Iterable[int]) -> dict[str, int]:
        """Collect and apply the answers of ``rounds``; no state changes. Counts of what changed."""
        total = {"labeled": 0, "skipped": 0, "quarantined": 0, "deleted": 0}
        for r in rounds:
            answers = self.oracle.collect(self.run_id, r)
            if answers:
                for k, v in self._apply(r, answers).items():
                    if k in total:
                        total[k] += v
        return total

    def _apply(self, idx: int, answers: list) -> dict[str, int]:
        """Apply answers to round ``idx``; an answer withdrawn from a closed round is recorded and said."""
        return apply_round_answers(self.store, self.run_id, idx, answers, self.pool.classes, self.log)

    def _await(self, idx: int, since: str) -> str:
        stale = (getattr(self.oracle, "asynchronous", False)
                 and time.monotonic() - self._last_reconcile >= self.reconcile_every)
        if not self._reconciled or stale:
            self._reconcile(idx)
        answers = self.oracle.collect(self.run_id, idx)
        crash_point("after_pull")
        if answers:
            self.store.apply_answers(self.run_id, idx, answers, self.pool.classes)
        crash_point("after_apply")
        prog = self.store.round_progress(self.run_id, idx)
        answered = prog["labeled"] + prog["skipped"] + prog["quarantined"]
        need = math.ceil(self.min_fraction * prog["selected"])
        timed_out = False
        if self.round_timeout is not None:
            started = datetime.fromisoformat(since)
            timed_out = (datetime.now(UTC) - started).total_seconds() >= self.round_timeout
        if answered >= need or timed_out:
            if timed_out and answered < need:
                self.log(f"run {self.run_id} round {idx}: round timeout with {answered}/{prog['selected']} answered")
            self.store.set_state(self.run_id, idx, RoundState.AWAITING, RoundState.LABELED)
            crash_point("after_labeled")
            return "advanced"
        return "waiting"
