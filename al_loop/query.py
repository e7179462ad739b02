"""``al-loop query``: the next batch for the user's own labelling pipeline.

No simulator and no Label Studio: the user keeps their labels in a CSV file
(their item ID and a label), and each call

1. reads the features and the labels file and checks both (nothing is
   written if anything is wrong);
2. finds the run of this configuration in the store (same features file, ID
   column, strategy with its parameters, learner, init strategy and seed) or
   starts a new one;
3. upserts the file's labels through the round state machine: the items al-loop
   asked for get their answers through the ``labels_file`` oracle's
   ``collect``; labels of items al-loop never asked for are recorded as *seed*
   labels (``labels.source = "seed"``);
4. closes the waiting round (``AWAITING -> LABELED``) and opens the next, trains
   the learner on every label, selects with the strategy (with the init
   strategy while nothing is labeled), commits the round and dispatches it;
5. returns (and writes to ``--out``) every item al-loop asked for that is still
   unlabeled, oldest first: what is left of earlier batches, then the new picks.

Unlabeled items of earlier batches are re-offered, not dropped: they stay
reserved to the round that selected them, are listed first, and the new round
selects only ``batch`` minus their number. A call that finds ``batch`` or more
items still unlabeled selects nothing and lists them again, so calling twice
without labelling gives the same file. A label equal to ``skip_label`` marks an
item as skipped (never offered again, never trained on).

Classes are fixed by the first call of a run: the labels seen then plus
``classes``. A label outside them later is refused (declare every class on the
first call); the learner's class columns, stored predictions and exports then
mean the same thing in every round.

The features file must not change under a run (its rows are the run's pool
ids): a digest of the item IDs and features is recorded with the run and
checked by every later call.

Id frame: ``ids`` are global pool ids (row numbers of the features file);
``item_ids`` are the user's own IDs.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from al_loop.config import RunConfig
from al_loop.errors import ConfigError, DataError
from al_loop.faults import crash_point
from al_loop.registry import ORACLES, STRATEGIES, plugins_for
from al_loop.store import Store, check_sqlite_file
from al_loop.types import OutboxItem, QueryContext, RoundState, RunStatus

ORACLE = "labels_file"
#: key of the features digest in the run's oracle state
DIGEST_KEY = "features_digest"
#: fields of RunConfig that identify a query run (everything the user chooses but the classes and the batch size)
_RUN_KEY = ("dataset", "strategy", "strategy_params", "learner", "seed", "init_strategy", "init_params")
_RUN_KEY_PARAMS = ("features", "id_column")


@dataclass(frozen=True)
class QueryRequest:
    """What one ``query`` call is asked to do.

    Attributes
    ----------
    features : str
        Features file (``.npy``, ``.npz``, ``.csv``, ...; read by the ``file`` dataset loader).
    labeled : str or None
        The user's labels file (CSV with ``labeled_id_column`` and ``label_column``);
        None on a first call with nothing labeled.
    strategy : str
        Query strategy (``al-loop strategies`` lists them).
    batch : int
        Items to list: the unlabeled rest of earlier batches plus new picks.
    seed : int
        Run seed (round ``r`` uses ``numpy.random.default_rng([seed, r])``).
    id_column : str or None
        Column of the features file holding the user's item IDs (None: the row number is the ID).
    labeled_id_column : str or None
        ID column of the labels file (default: ``id_column``, or ``item_id``).
    label_column : str
        Label column of the labels file.
    learner : str
        Learner name.
    init_strategy : str
        Strategy of a batch chosen before anything is labeled (``random``, ``typiclust``, ``probcover``).
    strategy_params : dict
        Parameters of the strategy.
    classes : tuple of str
        Classes to declare beyond those in the labels (first call of a run only).
    skip_label : str or None
        A label value meaning "skipped".
    out : str or None
        CSV file the batch is written to.
    dataset_params : dict
        Further options of the features loader (e.g. ``drop_columns``).
    """

    features: str
    labeled: str | None
    strategy: str
    batch: int
    seed: int = 0
    id_column: str | None = None
    labeled_id_column: str | None = None
    label_column: str = "label"
    learner: str = "logreg"
    init_strategy: str = "random"
    strategy_params: dict[str, Any] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    skip_label: str | None = None
    out: str | None = None
    dataset_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise ConfigError(f"batch size must be a positive integer, got {self.batch!r}; pass --batch 1 or more")
        if len(set(self.classes)) != len(self.classes):
            raise ConfigError(f"--classes repeats a class ({', '.join(self.classes)}); name each class once")


@dataclass(frozen=True)
class QueryResult:
    """The batch of one call, in the order of the ``--out`` file.

    Attributes
    ----------
    run_id, round : int
        The run and its newest round.
    new_run : bool
        True when this call started the run.
    ids : ndarray of int64, shape (b,)
        Global pool ids still waiting for a label: earlier batches first, then the new picks.
    item_ids : tuple of str, length b
        The user's ID of each item.
    rounds, ranks : ndarray of int64, shape (b,)
        The round that selected each item and its rank in that round.
    scores : ndarray of float64, shape (b,)
        The strategy's score of each item when it was selected.
    predictions : tuple of (str or None), length b
        The label predicted by the model that selected it (None before any model).
    probabilities : ndarray of float64, shape (b,)
        The probability of that label (NaN where there is no prediction).
    selected : int
        Items newly selected by this call (the last ``selected`` entries).
    n_labeled, n_new_labels, n_seed_labels : int
        Labels of the run after the call; labels this call added or changed; of those, seed labels.
    notes : tuple of str
        One-line notes (a clamped batch, a pool used up, ...).
    """

    run_id: int
    round: int
    new_run: bool
    ids: np.ndarray
    item_ids: tuple[str, ...]
    rounds: np.ndarray
    ranks: np.ndarray
    scores: np.ndarray
    predictions: tuple[str | None, ...]
    probabilities: np.ndarray
    selected: int
    n_labeled: int
    n_new_labels: int
    n_seed_labels: int
    strategy: str
    notes: tuple[str, ...] = ()

    def summary(self, out: str | None = None) -> str:
        """One line: the run, its labels, what was selected and where it went."""
        again = len(self.ids) - self.selected
        head = f"{'new ' if self.new_run else ''}run {self.run_id} round {self.round}"
        labels = f"{self.n_labeled} labeled ({self.n_new_labels} new, {self.n_seed_labels} of them seed)"
        batch = f"{self.selected} selected by {self.strategy}"
        if again:
            batch += f", {again} still unlabeled from earlier batches"
        return f"{head}: {labels}; {batch}" + (f" -> {out}" if out else "")


# -- inputs ------------------------------------------------------------------------------
def _check_out(out: str | None) -> None:
    if out is None:
        return
    path = Path(out)
    if path.is_dir():
        raise ConfigError(f"--out {out} is a folder; pass a file name such as {path / 'next.csv'}")
    if not path.parent.exists():
        raise ConfigError(f"the folder of --out {out} does not exist; create {path.parent} first or pass another path")


def _dataset_params(req: QueryRequest, classes: Sequence[str]) -> dict[str, Any]:
    params: dict[str, Any] = {**req.dataset_params, "features": str(Path(req.features).resolve()),
                              "unlabeled": True, "classes": list(classes), "label_column": None}
    if req.id_column:
        params["id_column"] = req.id_column
    return params


def _run_key(config: RunConfig) -> str:
    data = dataclasses.asdict(config)
    key = {k: data[k] for k in _RUN_KEY}
    key["dataset_params"] = {k: config.dataset_params.get(k) for k in _RUN_KEY_PARAMS}
    return json.dumps(key, sort_keys=True, default=str)


def _item_ids(pool: Any) -> list[str]:
    ids = getattr(pool, "item_ids", None)
    if ids is None:
        return [str(int(i)) for i in pool.ids]
    return [str(i) for i in ids]


def _digest(pool: Any, item_ids: Sequence[str]) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(pool.ids, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(pool.X, dtype=np.float64).tobytes())
    h.update("\x00".join(item_ids).encode())
    return h.hexdigest()


def _needs_model(name: str, params: dict[str, Any]) -> bool:
    from al_loop.api import build_strategy

    strategy = build_strategy(name, params)
    try:
        strategy.check_learner(frozenset())
    except ConfigError:
        return True
    return "labels" in strategy.requires


def _find_run(db: str, key: str) -> tuple[int, RunConfig] | None:
    path = Path(db)
    if not path.exists() or path.stat().st_size == 0:
        return None
    store = Store(db, readonly=True)
    try:
        found = None
        for run in store.runs():
            config = RunConfig.from_json(run.config_json)
            # a run given up (`al-loop runs abandon`) or failed is not continued: a new one starts
            if config.oracle == ORACLE and run.status == RunStatus.RUNNING.value and _run_key(config) == key:
                found = (int(run.id or 0), config)
        return found
    finally:
        store.close()


def _classes_for(req: QueryRequest, seen: set[str], existing: tuple[int, RunConfig] | None) -> tuple[str, ...]:
    """The run's classes: fixed by its first call (labels seen then plus ``--classes``)."""
    if existing is not None:
        run_id, config = existing
        classes = tuple(config.dataset_params.get("classes") or ())
        for source, names in ((f"labeled file {req.labeled}", seen), ("--classes", set(req.classes))):
            new = sorted(names - set(classes))
            if new:
                raise DataError(f"{source} uses class(es) {new[:5]} that the classes {list(classes)} of run "
                                f"{run_id} lack; declare every class with --classes on the first call (or pass a "
                                "new --db to start again)")
        return classes
    declared = list(req.classes)
    classes = tuple(declared + sorted(seen - set(declared)))
    if not classes:
        raise ConfigError("nothing is labeled yet, so the classes are unknown; pass --classes a,b,c "
                          "(every class, on the first call)")
    if len(classes) == 1:
        raise ConfigError(f"only the class {classes[0]!r} is known; pass every class with --classes "
                          f"{classes[0]},OTHER (classes cannot be added to a run later)")
    return classes


# -- the call ----------------------------------------------------------------------------
def query(db: str, req: QueryRequest, log: Callable[[str], None] | None = None) -> QueryResult:
    """Record the user's labels, select the next batch, write ``req.out``; see the module docstring.

    Every check on the inputs runs before the store is opened for writing: a
    bad input leaves the store (or its absence) as it was.
    """
    from al_loop.api import build_learner, build_strategy, record_items, validate
    from al_loop.datasets import load_dataset, make_pool

    say = log or (lambda _msg: None)
    _check_out(req.out)
    check_sqlite_file(Path(db))
    STRATEGIES.get(req.strategy)
    STRATEGIES.get(req.init_strategy)
    features = Path(req.features)
    if not features.exists():
        raise DataError(f"features file {features} does not exist; check the --features path")

    probe = RunConfig(dataset="file", strategy=req.strategy, seed=req.seed, batch=req.batch, init=req.batch,
                      rounds=0, learner=req.learner, strategy_params=dict(req.strategy_params), oracle=ORACLE,
                      dataset_params=_dataset_params(req, ()), init_strategy=req.init_strategy,
                      plugins=plugins_for([req.strategy, req.init_strategy], req.learner, "file", ORACLE))
    existing = _find_run(db, _run_key(probe))
    placeholder = list(existing[1].dataset_params.get("classes") or ()) if existing else ["?", "??"]
    dataset = load_dataset("file", **_dataset_params(req, placeholder))
    loader_notes = list(getattr(dataset, "notes", ()))
    for text in loader_notes:
        say(text)
    raw_pool = make_pool(dataset)
    item_ids = _item_ids(raw_pool)

    oracle_cls = ORACLES.get(ORACLE)
    id_col = req.labeled_id_column or req.id_column or "item_id"
    if req.labeled is not None:
        oracle = oracle_cls.from_file(raw_pool, req.labeled, id_col, req.label_column, item_ids, req.skip_label)
    else:
        oracle = oracle_cls(raw_pool)
    seen = {a.label for a in oracle.answers.values() if a.status == "labeled" and a.label is not None}
    classes = _classes_for(req, seen, existing)

    config = dataclasses.replace(probe, dataset_params=_dataset_params(req, classes))
    if existing is not None:
        config = existing[1]
    pool = make_pool(dataclasses.replace(dataset, classes=classes))
    oracle.pool = pool
    learner = build_learner(config.learner, pool)
    strategy = build_strategy(config.strategy, config.strategy_params)
    validate(config, pool, learner, strategy)
    digest = _digest(pool, item_ids)

    store_labels = 0
    if existing is not None:
        store = Store(db, readonly=True)
        try:
            recorded = store.oracle_state(existing[0], DIGEST_KEY)
            store_labels = sum(r.status == "labeled" for r in store.labels(existing[0]))
        finally:
            store.close()
        if recorded is not None and recorded != digest:
            raise DataError(f"features file {features} changed since run {existing[0]} began (its rows are the "
                            "run's items); restore it, or pass a new --db to start afresh")
    if (req.labeled is not None and not seen and store_labels == 0 and existing is None
            and _needs_model(config.strategy, config.strategy_params)):
        raise DataError(f"labeled file {req.labeled} holds no labels and strategy {config.strategy!r} needs a "
                        "trained model; label some items in it, or leave out --labeled for a first batch from "
                        f"--init-strategy {config.init_strategy}")

    from al_loop.lease import RunLease

    store = Store(db)
    try:
        new_run = existing is None
        run_id = store.create_run(config) if new_run else existing[0]  # type: ignore[index]
        if new_run:
            store.set_oracle_state(run_id, DIGEST_KEY, digest)
            record_items(store, config, pool)
        with RunLease(store, run_id):
            driver = _Driver(store, run_id, config, pool, learner, strategy, oracle, say)
            driver.notes.extend(loader_notes)
            result = driver.call(req.batch, new_run, item_ids)
    finally:
        store.close()
    if req.out is not None:
        write_batch(req.out, result, req.id_column or "item_id")
    return result


class _Driver:
    """One call's walk through the round state machine of a query run."""

    def __init__(self, store: Store, run_id: int, config: RunConfig, pool: Any, learner: Any, strategy: Any,
                 oracle: Any, log: Callable[[str], None]) -> None:
        self.store, self.run_id, self.config = store, run_id, config
        self.pool, self.learner, self.strategy, self.oracle, self.log = pool, learner, strategy, oracle, log
        self.notes: list[str] = []
        #: (round, number of items) selected by this call, if any
        self.selected: tuple[int, int] | None = None

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.log(text)

    def _held(self) -> None:
        """Hand the oracle every item al-loop asked for (their keys are stable), so it can answer them."""
        rounds = [r.idx for r in self.store.rounds(self.run_id)]
        items = [OutboxItem(run_id=row.run_id, round=row.round, pool_id=row.pool_id)
                 for idx in rounds for row in self.store.outbox(self.run_id, idx)]
        if items:
            self.oracle.submit(items)

    def _apply(self, target_round: int) -> tuple[int, int]:
        """Upsert the file's answers; returns (labels added or changed, of them seed labels)."""
        classes = self.pool.classes
        changed = 0
        for rnd in self.store.rounds(self.run_id):
            answers = self.oracle.collect(self.run_id, rnd.idx)
            if answers:
                counts = self.store.apply_answers(self.run_id, rnd.idx, answers, classes)
                changed += counts["labeled"] + counts["skipped"]
        seeds = self.oracle.unsolicited(self.store.selected_ids(self.run_id))
        seed_changed = 0
        if seeds:
            counts = self.store.apply_answers(self.run_id, target_round, seeds, classes, source="seed")
            seed_changed = counts["labeled"] + counts["skipped"]
        return changed + seed_changed, seed_changed

    def _waiting(self) -> list[Any]:
        """Selections still without an answer, oldest round first."""
        answered = {r.pool_id for r in self.store.labels(self.run_id)}
        return [s for s in self.store.selections(self.run_id) if s.pool_id not in answered]

    def call(self, batch: int, new_run: bool, item_ids: Sequence[str]) -> QueryResult:
        self._held()
        rnd = self.store.current_round(self.run_id)
        idx, state = rnd.idx, RoundState(rnd.state)
        waiting_before = {s.pool_id for s in self._waiting()}
        answered_now = {a.pool_id for a in self.oracle.answers.values()}
        still = len(waiting_before - answered_now)
        known = set(self.store.selected_ids(self.run_id).tolist()) | {r.pool_id for r in self.store.labels(self.run_id)}
        candidates = len(set(self.pool.ids.tolist()) - known - answered_now)
        want = batch - still
        opens = state in (RoundState.AWAITING, RoundState.LABELED) and want > 0 and candidates > 0
        target = idx + 1 if opens else idx
        n_new, n_seed = self._apply(target)
        crash_point("after_apply")
        if state in (RoundState.SELECTED, RoundState.DISPATCHED):
            self.note(f"round {idx} was selected by an interrupted call; its batch is offered now")
            self._dispatch(idx)
        elif state is RoundState.TRAINING:
            self._select(idx, want)
        elif opens:
            if state is RoundState.AWAITING:
                self.store.set_state(self.run_id, idx, RoundState.AWAITING, RoundState.LABELED)
            self.store.next_round(self.run_id, idx)
            idx += 1
            self._select(idx, want)
        elif candidates == 0:
            self.note("every item is labeled or waiting for a label; nothing new to select")
        else:
            self.note(f"{still} item(s) of earlier batches are still unlabeled (--batch {batch}); "
                      "label them to get new items")
        return self._result(idx, new_run, item_ids, n_new, n_seed)

    def _labeled(self) -> tuple[np.ndarray, np.ndarray]:
        index = {c: i for i, c in enumerate(self.pool.classes)}
        rows = sorted((r for r in self.store.labels(self.run_id) if r.status == "labeled" and r.label is not None),
                      key=lambda r: r.pool_id)
        return (np.asarray([r.pool_id for r in rows], dtype=np.int64),
                np.asarray([index[r.label] for r in rows], dtype=np.int64))

    def _select(self, idx: int, want: int) -> None:
        """TRAINING -> SELECTED -> DISPATCHED -> AWAITING for round ``idx``."""
        from al_loop.api import build_strategy
        from al_loop.controller import derived_seed
        from al_loop.view import ModelView

        cfg = self.config
        known = np.union1d(self.store.selected_ids(self.run_id),
                           np.asarray([r.pool_id for r in self.store.labels(self.run_id)], dtype=np.int64))
        unlabeled = np.setdiff1d(self.pool.ids, known)
        if want <= 0 or unlabeled.size == 0:
            return
        if want > unlabeled.size:
            self.note(f"batch {want} is larger than the {unlabeled.size} unlabeled item(s) left; "
                      f"selecting {unlabeled.size}")
            want = int(unlabeled.size)
        labeled_ids, labels = self._labeled()
        rng = np.random.default_rng([cfg.seed, idx])
        ctx = QueryContext(round=idx, seed=cfg.seed, labeled_ids=labeled_ids, labels=labels,
                           unlabeled_ids=unlabeled, classes=self.pool.classes, rng=rng)
        predictions: list[dict[str, Any] | None] = [None] * want
        if labeled_ids.size == 0:
            if cfg.init_strategy == "random":
                ids, scores, info = np.sort(rng.choice(unlabeled, size=want, replace=False)), np.zeros(want), None
            else:
                sel = build_strategy(cfg.init_strategy, cfg.init_params).select(ModelView(self.pool, None), ctx, want)
                ids, scores, info = sel.ids, sel.scores, sel.info
        else:
            t0 = time.perf_counter()
            self.learner.fit(self.pool, labeled_ids, labels, seed=derived_seed(cfg.seed, idx))
            view = ModelView(self.pool, self.learner)
            sel = self.strategy.select(view, ctx, want)
            ids, scores, info = sel.ids, sel.scores, dict(sel.info)
            info["fit_select_seconds"] = round(time.perf_counter() - t0, 6)
            if "proba" in self.learner.capabilities:
                proba = view.proba_of(ids)
                best = proba.argmax(axis=1)
                predictions = [{"label": self.pool.classes[int(b)], "score": round(float(p[b]), 6)}
                               for b, p in zip(best, proba, strict=True)]
        self.store.commit_selection(self.run_id, idx, ids, scores, predictions, None, info=info)
        crash_point("after_select_commit")
        self.selected = (idx, want)
        self._dispatch(idx)

    def _dispatch(self, idx: int) -> None:
        rows = self.store.outbox(self.run_id, idx)
        unsent = [r for r in rows if r.sent_at is None]
        if unsent:
            receipts = self.oracle.submit([OutboxItem(run_id=r.run_id, round=r.round, pool_id=r.pool_id)
                                           for r in unsent])
            self.store.mark_sent(self.run_id, idx, receipts)
        if RoundState(self.store.current_round(self.run_id).state) is RoundState.DISPATCHED:
            self.store.set_state(self.run_id, idx, RoundState.DISPATCHED, RoundState.AWAITING)

    def _result(self, idx: int, new_run: bool, item_ids: Sequence[str], n_new: int, n_seed: int) -> QueryResult:
        by_pool = dict(zip(self.pool.ids.tolist(), item_ids, strict=True))
        waiting = self._waiting()
        preds: dict[int, dict[str, Any] | None] = {}
        for r in {s.round for s in waiting}:
            for row in self.store.outbox(self.run_id, r):
                preds[row.pool_id] = json.loads(row.prediction_json) if row.prediction_json else None
        labels = self.store.labels(self.run_id)
        selected_now = self.selected[1] if self.selected is not None else 0
        prob = [preds.get(s.pool_id) for s in waiting]
        status = self.store.run(self.run_id).status
        if status != RunStatus.RUNNING.value:
            self.note(f"run {self.run_id} is {status}")
        return QueryResult(
            run_id=self.run_id, round=idx, new_run=new_run,
            ids=np.asarray([s.pool_id for s in waiting], dtype=np.int64),
            item_ids=tuple(by_pool[s.pool_id] for s in waiting),
            rounds=np.asarray([s.round for s in waiting], dtype=np.int64),
            ranks=np.asarray([s.rank for s in waiting], dtype=np.int64),
            scores=np.asarray([s.score for s in waiting], dtype=np.float64),
            predictions=tuple(p["label"] if p else None for p in prob),
            probabilities=np.asarray([p["score"] if p else math.nan for p in prob], dtype=np.float64),
            selected=selected_now, n_labeled=sum(r.status == "labeled" for r in labels), n_new_labels=n_new,
            n_seed_labels=n_seed, strategy=self.config.strategy, notes=tuple(self.notes))


def write_batch(out: str | TextIO, result: QueryResult, id_header: str = "item_id") -> None:
    """Write the batch as CSV: ``id_header``, pool_id, round, rank, score, predicted_label, probability.

    ``out`` is a path or an open text stream. A file is written next to
    ``out`` and renamed over it, so a reader never sees half a file.
    """
    if not isinstance(out, str):
        _write_rows(out, result, id_header)
        return
    path = Path(out)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        _write_rows(fh, result, id_header)
    os.replace(tmp, path)


def _write_rows(fh: TextIO, result: QueryResult, id_header: str) -> None:
    w = csv.writer(fh, lineterminator="\n")
    w.writerow([id_header, "pool_id", "round", "rank", "score", "predicted_label", "probability"])
    for i in range(len(result.ids)):
        p = result.probabilities[i]
        w.writerow([result.item_ids[i], int(result.ids[i]), int(result.rounds[i]), int(result.ranks[i]),
                    f"{result.scores[i]:.6g}", result.predictions[i] or "", "" if math.isnan(p) else f"{p:.6g}"])


def parse_classes(text: str | None) -> tuple[str, ...]:
    """``"a,b,c"`` -> ``("a", "b", "c")`` (spaces around names dropped, empty names refused)."""
    if not text:
        return ()
    names = tuple(n.strip() for n in text.split(","))
    if any(not n for n in names):
        raise ConfigError(f"--classes {text!r} has an empty name; write e.g. --classes cat,dog,bird")
    return names


__all__ = ["QueryRequest", "QueryResult", "parse_classes", "query", "write_batch"]
