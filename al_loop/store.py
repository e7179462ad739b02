"""The store: one SQLite file that is the truth about every run.

Invariants (the controller relies on them; tests check them):

1. A round's selection, its outbox rows, its metric row, its stopping
   signals and the round's move to ``SELECTED`` are written in one
   transaction: either all exist or none.
2. An item is selected at most once per run (primary key ``(run_id, pool_id)``
   of ``selections``); every selected item has exactly one outbox row whose key
   is ``"run:round:pool_id"``.
3. An outbox row gets ``sent_at``/``remote_id`` only after the oracle
   confirmed it holds the key; a round is ``DISPATCHED`` only when all of its
   outbox rows are sent.
4. ``labels`` has at most one row per ``(run_id, pool_id)``; an answer replaces
   it only if its ``updated_at`` is not older; deleted answers remove it.
   Answers that are not a valid class go to ``quarantine``, never to ``labels``;
   the newest answer of an item decides, so an invalid newest answer (an edit,
   or another annotator's) also removes the item's label.
5. Rounds only move forward: ``TRAINING -> SELECTED -> DISPATCHED -> AWAITING
   -> LABELED``, and round ``r + 1`` exists only once round ``r`` is ``LABELED``.
6. One process writes a store at a time; writes use ``BEGIN IMMEDIATE``.
   The database runs in WAL mode with ``synchronous=FULL`` and foreign keys on.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import event, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, create_engine, select

from al_loop.config import RunConfig
from al_loop.errors import StoreError
from al_loop.multilabel import canonical
from al_loop.schema import (
    SCHEMA_VERSION,
    ItemRow,
    LabelRow,
    Meta,
    MetricRow,
    OutboxRow,
    ProjectRow,
    QuarantineRow,
    RoundRow,
    RunRow,
    SelectionRow,
    SkippedItemRow,
    StopSignalRow,
    utcnow,
)
from al_loop.sqlite_file import closed, is_sqlite_file, opened
from al_loop.types import Answer, RoundState, RunStatus

_ORDER = [s.value for s in RoundState]
#: rows per executemany of a bulk insert (bounded memory for the tuples of 10^6 items)
_INSERT_CHUNK = 50_000


def check_sqlite_file(path: Path) -> None:
    """Refuse a file that exists but is not a SQLite database (one-line error)."""
    if not path.exists() or path.stat().st_size == 0:
        return
    if path.is_dir():
        raise StoreError(f"{path} is a directory; pass a file path for --db")
    if not is_sqlite_file(path):  # never an open()/close() while this process has the store open
        raise StoreError(f"{path} is not a SQLite database; pass a new file name or the al-loop store you meant")


def check_writable(path: Path) -> None:
    """Refuse, in one line, a store this process cannot write: a read-only file, or a read-only folder.

    SQLite in WAL mode writes the file and two files beside it
    (``NAME-wal``, ``NAME-shm``); in a read-only folder it cannot create them.
    Without this check the first write fails deep in SQLAlchemy ("attempt to
    write a readonly database") after the command has started.
    """
    path = Path(path)
    folder = path.absolute().parent
    readers = "status, export and compare only read it"
    if not folder.is_dir():
        raise StoreError(f"cannot create {path}: the folder {folder} does not exist; create it or pass another --db")
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise StoreError(f"cannot write to {path} (read-only file); make it writable (chmod u+w {path}) "
                             f"or copy it and pass the copy as --db; {readers}")
        sidecars = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
        for side in sidecars:
            if side.exists() and not os.access(side, os.R_OK | os.W_OK):
                raise StoreError(f"cannot write to {path} (read-only file {side.name} beside it); make it "
                                 f"writable (chmod u+w {side}) or copy the store elsewhere; {readers}")
        if not all(side.exists() for side in sidecars) and not os.access(folder, os.W_OK | os.X_OK):
            raise StoreError(f"cannot write to {path} (read-only folder {folder}: SQLite cannot create the "
                             f"{path.name}-wal journal beside it); make the folder writable or copy the store "
                             f"to a writable folder; {readers}")
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(f"cannot write to {path} (read-only folder {folder}); pass a --db in a writable folder")


def _older(stamp: str | None, than: str | None) -> bool:
    """Whether time stamp ``stamp`` is before ``than`` (False when either is missing).

    Compared as times, not strings: stores hold stamps in the formats the
    oracle gave over time (``...Z``, ``...+00:00``, with or without fractions).
    """
    if stamp is None or than is None:
        return False

    def utc(text: str) -> datetime:  # a stamp without an offset is UTC, as the oracles write them
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo is not None else when

    try:
        return utc(stamp) < utc(than)
    except ValueError:
        return stamp < than


def _jsonable(obj: Any) -> Any:
    """numpy scalars and arrays in a selection's info, as JSON values."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


class Store:
    """Access to one al-loop SQLite file.

    Parameters
    ----------
    path : str or Path
        The database file; created (with the current schema) if missing.
    readonly : bool
        Open for reading only (``status``, ``export``, ``curves``, ``compare``):
        never creates, never migrates, never takes a write lock.
    """

    def __init__(self, path: str | os.PathLike[str], readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        check_sqlite_file(self.path)
        if readonly and not self.path.exists():
            raise StoreError(f"{self.path} does not exist; pass the --db of an existing run")
        if not readonly:
            check_writable(self.path)
        self.engine = self._make_engine()
        self._registered = False
        self._check_integrity_and_schema()
        opened(self.path)  # later header checks of this file in this process must not open()/close() it
        self._registered = True

    # -- connection -----------------------------------------------------------------
    def _make_engine(self) -> Engine:
        if self.readonly:
            url = f"sqlite:///file:{self.path.resolve()}?mode=ro&uri=true"
        else:
            url = f"sqlite:///{self.path}"
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        readonly = self.readonly

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: sqlite3.Connection, _rec: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            if not readonly:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine

    def _check_integrity_and_schema(self) -> None:
        try:
            with self.engine.connect() as conn:
                tables = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")}
                if tables and "al_meta" not in tables:
                    raise StoreError(
                        f"{self.path} is a SQLite database of another application (no al-loop schema); "
                        "pass a new file name for --db"
                    )
                if tables:
                    row = conn.exec_driver_sql("SELECT value FROM al_meta WHERE key='schema_version'").fetchone()
                    version = int(row[0]) if row else 0
                    if version > SCHEMA_VERSION:
                        raise StoreError(
                            f"{self.path} has schema version {version} but this al-loop reads version "
                            f"{SCHEMA_VERSION}; upgrade al-loop to a release that supports schema {version}"
                        )
                    if version < SCHEMA_VERSION:
                        raise StoreError(
                            f"{self.path} has the older schema version {version}; run "
                            f"`al-loop db upgrade --db {self.path}` (it makes a backup first)"
                        )
        except sqlite3.DatabaseError as exc:  # pragma: no cover - wrapped by SQLAlchemy below
            raise StoreError(f"{self.path} is not a usable SQLite database ({exc}); pass another --db") from None
        except StoreError:
            self.engine.dispose()
            raise
        except Exception as exc:
            self.engine.dispose()
            msg = str(getattr(exc, "orig", exc)).splitlines()[0]
            if "readonly" in msg or "read-only" in msg:  # e.g. a read-only mount the checks above cannot see
                raise StoreError(f"cannot write to {self.path} ({msg}); copy the store to a writable folder "
                                 "and pass the copy as --db") from None
            raise StoreError(
                f"{self.path} cannot be read as a SQLite database ({msg}); restore it from a backup "
                "or pass a new --db"
            ) from None
        if not tables:
            if self.readonly:
                raise StoreError(f"{self.path} holds no al-loop runs; pass the --db of an existing run")
            SQLModel.metadata.create_all(self.engine)
            with self.write() as s:
                s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))

    def close(self) -> None:
        self.engine.dispose()
        if getattr(self, "_registered", False):
            self._registered = False
            closed(self.path)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction (``BEGIN IMMEDIATE``), committed on success."""
        if self.readonly:
            raise StoreError(f"{self.path} is opened read-only")
        with Session(self.engine, expire_on_commit=False) as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            yield s

    # -- runs -----------------------------------------------------------------------
    def create_run(self, config: RunConfig) -> int:
        with self.write() as s:
            run = RunRow(dataset=config.dataset, strategy=config.strategy, learner=config.learner,
                         seed=config.seed, config_json=config.to_json(), group_key=config.group_key())
            s.add(run)
            s.flush()
            assert run.id is not None
            s.add(RoundRow(run_id=run.id, idx=0, state=RoundState.TRAINING.value))
            return run.id

    def run(self, run_id: int) -> RunRow:
        with self.read() as s:
            row = s.get(RunRow, run_id)
        if row is None:
            raise StoreError(f"run {run_id} is not in {self.path}; `al-loop status --db {self.path}` lists runs")
        return row

    def config(self, run_id: int) -> RunConfig:
        return RunConfig.from_json(self.run(run_id).config_json)

    def runs(self) -> list[RunRow]:
        with self.read() as s:
            return list(s.exec(select(RunRow).order_by(RunRow.id)))

    def unfinished_runs(self) -> list[int]:
        return [r.id for r in self.runs() if r.status == RunStatus.RUNNING.value and r.id is not None]

    def finish_run(self, run_id: int, status: RunStatus) -> None:
        with self.write() as s:
            run = s.get(RunRow, run_id)
            assert run is not None
            run.status = status.value
            s.add(run)

    def set_run_status(self, run_id: int, status: RunStatus, note: str | None,
                       allowed_from: Sequence[str] = (RunStatus.RUNNING.value,)) -> str:
        """Set a run's status and note in one transaction if its status is one of ``allowed_from``.

        Returns the status the run had before (unchanged when it was not in
        ``allowed_from``): ``failed`` never overwrites ``finished``.
        """
        with self.write() as s:
            run = s.get(RunRow, run_id)
            if run is None:
                raise StoreError(f"run {run_id} is not in {self.path}; `al-loop status --db {self.path}` lists runs")
            before = run.status
            if before in allowed_from:
                run.status, run.note = status.value, note
                s.add(run)
            return before

    # -- rounds ---------------------------------------------------------------------
    def rounds(self, run_id: int) -> list[RoundRow]:
        with self.read() as s:
            return list(s.exec(select(RoundRow).where(RoundRow.run_id == run_id).order_by(RoundRow.idx)))

    def current_round(self, run_id: int) -> RoundRow:
        with self.read() as s:
            row = s.exec(select(RoundRow).where(RoundRow.run_id == run_id).order_by(col(RoundRow.idx).desc())).first()
        assert row is not None, "every run has round 0"
        return row

    @staticmethod
    def _advance(s: Session, run_id: int, idx: int, frm: RoundState, to: RoundState) -> None:
        row = s.exec(select(RoundRow).where(RoundRow.run_id == run_id, RoundRow.idx == idx)).one()
        if row.state != frm.value:
            raise StoreError(f"round {idx} of run {run_id} is {row.state}, expected {frm.value}; "
                             "another process may be writing this store")
        if _ORDER.index(to.value) <= _ORDER.index(frm.value):
            raise AssertionError("rounds only move forward")
        row.state = to.value
        row.updated_at = utcnow()
        s.add(row)

    def set_state(self, run_id: int, idx: int, frm: RoundState, to: RoundState) -> None:
        with self.write() as s:
            self._advance(s, run_id, idx, frm, to)

    def next_round(self, run_id: int, idx: int) -> None:
        """Open round ``idx + 1`` (round ``idx`` must be LABELED)."""
        with self.write() as s:
            row = s.exec(select(RoundRow).where(RoundRow.run_id == run_id, RoundRow.idx == idx)).one()
            if row.state != RoundState.LABELED.value:
                raise StoreError(f"round {idx} of run {run_id} is {row.state}, not LABELED")
            s.add(RoundRow(run_id=run_id, idx=idx + 1, state=RoundState.TRAINING.value))

    def commit_selection(self, run_id: int, idx: int, ids: np.ndarray, scores: np.ndarray,
                         predictions: Sequence[dict[str, Any] | None], metric: MetricRow | None,
                         info: dict[str, Any] | None = None, signals: StopSignalRow | None = None) -> None:
        """Invariant 1: selection + outbox + metric + signals + ``SELECTED`` (+ the selection's ``info``) at once."""
        with self.write() as s:
            self._advance(s, run_id, idx, RoundState.TRAINING, RoundState.SELECTED)
            rnd = s.exec(select(RoundRow).where(RoundRow.run_id == run_id, RoundRow.idx == idx)).one()
            again = s.exec(select(SelectionRow.pool_id).where(
                SelectionRow.run_id == run_id, col(SelectionRow.pool_id).in_([int(i) for i in ids]))).all()
            if again:
                raise StoreError(f"pool ids {sorted(again)[:5]} were already selected in run {run_id}; "
                                 "a strategy must pick from ctx.unlabeled_ids only")
            rnd.budget = len(ids)
            rnd.info_json = json.dumps(info, sort_keys=True, default=_jsonable) if info else None
            s.add(rnd)
            for rank, (pid, score, pred) in enumerate(zip(ids.tolist(), scores.tolist(), predictions, strict=True)):
                s.add(SelectionRow(run_id=run_id, pool_id=int(pid), round=idx, rank=rank, score=float(score)))
                s.add(OutboxRow(key=f"{run_id}:{idx}:{int(pid)}", run_id=run_id, round=idx, pool_id=int(pid),
                                prediction_json=json.dumps(pred) if pred is not None else None))
            if metric is not None:
                s.add(metric)
            if signals is not None:
                s.add(signals)

    def record_final_metric(self, run_id: int, metric: MetricRow | None, status: RunStatus,
                            note: str | None = None, signals: StopSignalRow | None = None) -> None:
        """The last evaluation (and its stopping signals) and the end of the run with the reason, at once."""
        with self.write() as s:
            if metric is not None and s.get(MetricRow, (run_id, metric.round)) is None:
                s.add(metric)
            if signals is not None and s.get(StopSignalRow, (run_id, signals.round)) is None:
                s.add(signals)
            run = s.get(RunRow, run_id)
            assert run is not None
            run.status = status.value
            run.note = note
            s.add(run)

    def round_info(self, run_id: int) -> dict[int, dict[str, Any]]:
        """``{round: Selection.info}`` of the rounds that recorded one."""
        return {r.idx: json.loads(r.info_json) for r in self.rounds(run_id) if r.info_json}

    # -- items ----------------------------------------------------------------------
    def record_items(self, dataset_key: str, pool_ids: Sequence[int], item_ids: Sequence[str | None] | None = None,
                     texts: Sequence[str | None] | None = None, paths: Sequence[str | None] | None = None,
                     skipped: Sequence[tuple[str, str]] = ()) -> bool:
        """Record what the user knows each item by, once per dataset; returns False if already recorded.

        ``pool_ids`` are global pool ids; ``item_ids``, ``texts`` and ``paths``
        are aligned with them (each may be None). ``skipped``: the files left
        out as unreadable, ``(relative path, reason)``, written in the same
        transaction (``skipped_items`` table).
        """
        n = len(pool_ids)
        for name, seq in (("item_ids", item_ids), ("texts", texts), ("paths", paths)):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{name} has {len(seq)} entries for {n} pool ids")
        with self.write() as s:
            if s.exec(select(ItemRow.pool_id).where(ItemRow.dataset_key == dataset_key).limit(1)).first() is not None:
                return False
            # one executemany per chunk of plain tuples: an ORM object per row took ~110 s for 10^6 items
            conn, none = s.connection(), [None] * n
            ids = none if item_ids is None else [None if v is None else str(v) for v in item_ids]
            rows = zip([int(p) for p in pool_ids], ids, none if texts is None else texts,
                       none if paths is None else paths, strict=True)
            sql = (f"INSERT INTO {ItemRow.__tablename__} (dataset_key, pool_id, item_id, text, path) "
                   "VALUES (?, ?, ?, ?, ?)")
            while chunk := [(dataset_key, *row) for row in itertools.islice(rows, _INSERT_CHUNK)]:
                conn.exec_driver_sql(sql, chunk)
            for path, reason in dict(skipped).items():  # one row per file
                s.add(SkippedItemRow(dataset_key=dataset_key, path=str(path), reason=str(reason)))
        return True

    def skipped_items(self, dataset_key: str) -> list[tuple[str, str]]:
        """``[(path, reason)]`` of the files of a dataset left out as unreadable, sorted by path."""
        with self.read() as s:
            rows = s.exec(select(SkippedItemRow).where(SkippedItemRow.dataset_key == dataset_key)
                          .order_by(SkippedItemRow.path))
            return [(r.path, r.reason) for r in rows]

    def items(self, dataset_key: str) -> dict[int, ItemRow]:
        """``{pool_id: ItemRow}`` of a dataset (empty when nothing was recorded)."""
        with self.read() as s:
            return {r.pool_id: r for r in s.exec(select(ItemRow).where(ItemRow.dataset_key == dataset_key))}

    # -- outbox ---------------------------------------------------------------------
    def outbox(self, run_id: int, idx: int) -> list[OutboxRow]:
        with self.read() as s:
            return list(s.exec(select(OutboxRow).where(OutboxRow.run_id == run_id, OutboxRow.round == idx)
                               .order_by(OutboxRow.pool_id)))

    def mark_sent(self, run_id: int, idx: int, remote: dict[str, str]) -> None:
        """Record confirmed keys; move the round to DISPATCHED when all are sent."""
        with self.write() as s:
            rows = list(s.exec(select(OutboxRow).where(OutboxRow.run_id == run_id, OutboxRow.round == idx)))
            now = utcnow()
            for row in rows:
                if row.key in remote and row.sent_at is None:
                    row.remote_id = str(remote[row.key])
                    row.sent_at = now
                    s.add(row)
            if all(r.sent_at is not None for r in rows):
                self._advance(s, run_id, idx, RoundState.SELECTED, RoundState.DISPATCHED)

    def update_remote_ids(self, run_id: int, remote: dict[str, str]) -> None:
        """Record new oracle ids of items sent again (e.g. a task a person deleted)."""
        with self.write() as s:
            for key, rid in remote.items():
                row = s.get(OutboxRow, key)
                if row is not None and row.run_id == run_id:
                    row.remote_id = str(rid)
                    s.add(row)

    # -- answers --------------------------------------------------------------------
    def apply_answers(self, run_id: int, idx: int, answers: Sequence[Answer], classes: Sequence[str],
                      source: str = "oracle") -> dict[str, int]:
        """Upsert answers (invariant 4). Returns counts of what changed.

        ``source`` is recorded with new label rows: ``"oracle"`` for answers to
        items the run selected, ``"seed"`` for labels the user had of items the
        run never selected (``al-loop query``); such items are labeled, so they
        are never selected afterwards.
        """
        counts = {"labeled": 0, "skipped": 0, "quarantined": 0, "deleted": 0, "unchanged": 0}
        valid = set(classes)
        multilabel = self.config(run_id).multilabel
        with self.write() as s:
            for a in answers:
                ok = a.label in valid
                if multilabel and a.status == "labeled":  # a set of the classes, stored canonically
                    canon = canonical(a.label, list(classes))
                    ok = canon is not None
                    if canon is not None:
                        a = dataclasses.replace(a, label=canon)
                existing = s.get(LabelRow, (run_id, a.pool_id))
                if a.status == "deleted":
                    if existing is not None and existing.annotation_id == a.annotation_id:
                        s.delete(existing)
                        counts["deleted"] += 1
                    continue
                if a.status == "rejected" or (a.status == "labeled" and not ok):
                    # The newest answer of an item decides: an invalid one quarantines the item and removes
                    # its label, whether it is an edit of the labelled annotation or another person's answer.
                    what = "names a label outside" if multilabel else "is not one of"
                    reason = a.reason or f"answer {a.label!r} {what} the classes {sorted(valid)}"
                    if a.disagreement:
                        reason = f"{reason}; annotators differ: {a.disagreement}"
                    dup = s.exec(select(QuarantineRow).where(
                        QuarantineRow.run_id == run_id, QuarantineRow.pool_id == a.pool_id,
                        QuarantineRow.annotation_id == a.annotation_id)).first()
                    if dup is None:
                        s.add(QuarantineRow(run_id=run_id, pool_id=a.pool_id, round=idx, answer=a.label,
                                            reason=reason, annotation_id=a.annotation_id))
                        counts["quarantined"] += 1
                    if existing is not None and existing.source == source and (
                            existing.annotation_id == a.annotation_id
                            or not _older(a.updated_at, existing.updated_at)):
                        s.delete(existing)
                    continue
                if existing is not None:
                    same = (existing.status == a.status and existing.label == a.label
                            and existing.annotation_id == a.annotation_id
                            and existing.disagreement == a.disagreement)
                    older = _older(a.updated_at, existing.updated_at)
                    if same or older:
                        counts["unchanged"] += 1
                        continue
                    existing.status, existing.label = a.status, a.label
                    existing.annotation_id, existing.updated_at = a.annotation_id, a.updated_at
                    existing.annotator, existing.disagreement = a.annotator, a.disagreement
                    existing.recorded_at = utcnow()
                    s.add(existing)
                else:
                    s.add(LabelRow(run_id=run_id, pool_id=a.pool_id, round=idx, status=a.status, label=a.label,
                                   source=source, annotation_id=a.annotation_id, updated_at=a.updated_at,
                                   annotator=a.annotator, disagreement=a.disagreement))
                counts[a.status if a.status in counts else "labeled"] += 1
        return counts

    def round_answers(self, run_id: int, idx: int) -> dict[int, str]:
        """``{pool_id: annotation_id}`` of the stored answers to round ``idx``'s items."""
        with self.read() as s:
            ids = select(SelectionRow.pool_id).where(SelectionRow.run_id == run_id, SelectionRow.round == idx)
            rows = s.exec(select(LabelRow).where(LabelRow.run_id == run_id, col(LabelRow.pool_id).in_(ids)))
            return {r.pool_id: r.annotation_id for r in rows if r.annotation_id is not None}

    def labels(self, run_id: int) -> list[LabelRow]:
        with self.read() as s:
            return list(s.exec(select(LabelRow).where(LabelRow.run_id == run_id).order_by(LabelRow.pool_id)))

    def selected_ids(self, run_id: int) -> np.ndarray:
        with self.read() as s:
            ids = s.exec(select(SelectionRow.pool_id).where(SelectionRow.run_id == run_id)).all()
        return np.sort(np.asarray(ids, dtype=np.int64))

    def selections(self, run_id: int) -> list[SelectionRow]:
        with self.read() as s:
            return list(s.exec(select(SelectionRow).where(SelectionRow.run_id == run_id)
                               .order_by(SelectionRow.round, SelectionRow.rank)))

    def round_progress(self, run_id: int, idx: int) -> dict[str, int]:
        """Counts for one round: sent, labeled, skipped, quarantined, waiting (none of the other three)."""
        with self.read() as s:
            sel = s.exec(select(func.count()).select_from(SelectionRow)
                         .where(SelectionRow.run_id == run_id, SelectionRow.round == idx)).one()
            sent = s.exec(select(func.count()).select_from(OutboxRow).where(
                OutboxRow.run_id == run_id, OutboxRow.round == idx, col(OutboxRow.sent_at).is_not(None))).one()
            ids = select(SelectionRow.pool_id).where(SelectionRow.run_id == run_id, SelectionRow.round == idx)
            labeled = s.exec(select(func.count()).select_from(LabelRow).where(
                LabelRow.run_id == run_id, col(LabelRow.pool_id).in_(ids), LabelRow.status == "labeled")).one()
            skipped = s.exec(select(func.count()).select_from(LabelRow).where(
                LabelRow.run_id == run_id, col(LabelRow.pool_id).in_(ids), LabelRow.status == "skipped")).one()
            answered = select(LabelRow.pool_id).where(LabelRow.run_id == run_id)
            quarantined = s.exec(select(func.count(func.distinct(QuarantineRow.pool_id))).where(
                QuarantineRow.run_id == run_id, QuarantineRow.round == idx,
                col(QuarantineRow.pool_id).not_in(answered))).one()
        return {"selected": int(sel), "sent": int(sent), "labeled": int(labeled), "skipped": int(skipped),
                "quarantined": int(quarantined),
                "waiting": int(sel) - int(labeled) - int(skipped) - int(quarantined)}

    def quarantine(self, run_id: int) -> list[QuarantineRow]:
        with self.read() as s:
            return list(s.exec(select(QuarantineRow).where(QuarantineRow.run_id == run_id)))

    # -- metrics --------------------------------------------------------------------
    def metrics(self, run_id: int) -> list[MetricRow]:
        with self.read() as s:
            return list(s.exec(select(MetricRow).where(MetricRow.run_id == run_id).order_by(MetricRow.round)))

    def stop_signals(self, run_id: int) -> list[StopSignalRow]:
        """The run's stopping signals, oldest round first (empty when the run does not track them)."""
        with self.read() as s:
            return list(s.exec(select(StopSignalRow).where(StopSignalRow.run_id == run_id)
                               .order_by(col(StopSignalRow.round))))

    # -- oracle state ---------------------------------------------------------------
    def set_oracle_state(self, run_id: int, key: str, value: str) -> None:
        with self.write() as s:
            row = s.get(ProjectRow, (run_id, key))
            if row is None:
                s.add(ProjectRow(run_id=run_id, key=key, value=value))
            else:
                row.value = value
                s.add(row)

    def oracle_state(self, run_id: int, key: str) -> str | None:
        with self.read() as s:
            row = s.get(ProjectRow, (run_id, key))
        return row.value if row else None

    def integrity_ok(self) -> bool:
        with self.engine.connect() as conn:
            return conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
