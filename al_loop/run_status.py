"""What ``al-loop status`` shows, read with the standard library only.

``status`` must answer in well under a second, so it reads the store with
:mod:`sqlite3` (read-only URI, plain ``BEGIN``: it never blocks the writer)
and imports neither numpy nor SQLAlchemy. Whatever the fast path does not
recognise (a missing file, a file that is not SQLite, a foreign database, a
schema version other than :data:`EXPECTED_SCHEMA_VERSION`) is handed to
:class:`al_loop.store.Store`, which gives the one-line error, or reads the
store itself: the fast path decides speed, never correctness.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from al_loop.config import dataset_key  # stdlib only
from al_loop.sqlite_file import is_sqlite_file, ro_uri  # stdlib only

#: the schema the fast path reads; a test checks it equals :data:`al_loop.schema.SCHEMA_VERSION`
EXPECTED_SCHEMA_VERSION = 6
_OPEN_ENDED = 1_000_000  # campaign runs are configured with this many rounds
_NAMED_SKIPPED = 5  # the skipped files a status names (the count covers all)


@dataclass(frozen=True)
class RunLine:
    """One run as ``status`` shows it.

    Attributes
    ----------
    run_id, strategy, seed, dataset : int, str, int, str
        The run.
    status : str
        ``running``, ``finished``, ``exhausted``, ``failed`` or ``abandoned``.
    note : str or None
        Why a run failed or was abandoned (``runs.note``).
    round_idx : int
        Index of the run's current (last) round.
    state : str
        That round's state (``TRAINING`` ... ``LABELED``).
    rounds : int
        Query rounds the run was configured for.
    labeled, skipped : int
        Answers so far.
    last_accuracy, last_macro_f1 : float or None
        Test metrics of the last evaluation (None before the first).
    encoder : str or None
        The encoder that made the features (``dataset_params["encoder"]``; None: the data itself).
    source : str or None
        The folder or file of the data (``root`` / ``path`` / ``features``).
    unreadable : tuple of (str, str)
        Files of the run's dataset left out as unreadable (``--skip-bad``): (path, reason).
    """

    run_id: int
    strategy: str
    seed: int
    dataset: str
    status: str
    note: str | None
    round_idx: int
    state: str
    rounds: int
    labeled: int
    skipped: int
    last_accuracy: float | None
    last_macro_f1: float | None
    encoder: str | None = None
    source: str | None = None
    unreadable: tuple[tuple[str, str], ...] = ()

    @property
    def running(self) -> bool:
        return self.status == "running"

    def state_text(self) -> str:
        """The round state while the run goes on; the run's status once it ended (``finished``, ``failed``, ...)."""
        return self.state if self.running else self.status

    def round_text(self) -> str:
        """``current/rounds`` while running; query rounds done ``/rounds`` once ended.

        Round ``r >= 1`` trains, evaluates and selects; the run ends in round
        ``rounds + 1``, which only evaluates. A finished run therefore shows
        ``rounds/rounds``, never ``rounds + 1``.
        """
        done = self.round_idx if self.running else max(self.round_idx - 1, 0)
        if self.rounds >= _OPEN_ENDED:  # a campaign runs until enough labels, not for a number of rounds
            return str(done)
        return f"{min(done, self.rounds)}/{self.rounds}"


def _fast_lines(path: Path) -> list[RunLine] | None:
    """The runs read with sqlite3, or None when the store is not one the fast path knows."""
    if not path.is_file():
        return None
    if not is_sqlite_file(path):  # never an open()/close() while a store of it is open: al_loop/sqlite_file.py
        return None
    try:
        con = sqlite3.connect(ro_uri(path), uri=True, timeout=30, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        con.execute("PRAGMA busy_timeout=30000")
        con.execute("BEGIN")
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"al_meta", "runs", "rounds", "labels", "metrics"} <= tables:
            return None
        row = con.execute("SELECT value FROM al_meta WHERE key='schema_version'").fetchone()
        if row is None or str(row[0]) != str(EXPECTED_SCHEMA_VERSION):
            return None
        runs = con.execute("SELECT id, strategy, seed, dataset, status, note, config_json FROM runs ORDER BY id")
        runs = runs.fetchall()
        current = {r: (i, s) for r, i, s in con.execute(
            "SELECT run_id, idx, state FROM rounds AS o WHERE idx = "
            "(SELECT max(idx) FROM rounds WHERE run_id = o.run_id)")}
        answers: dict[tuple[int, str], int] = {(r, s): n for r, s, n in con.execute(
            "SELECT run_id, status, count(*) FROM labels GROUP BY run_id, status")}
        last = {r: (a, f) for r, a, f in con.execute(
            "SELECT run_id, accuracy, macro_f1 FROM metrics AS o WHERE round = "
            "(SELECT max(round) FROM metrics WHERE run_id = o.run_id)")}
        unreadable: dict[str, list[tuple[str, str]]] = {}
        for key, fpath, reason in con.execute("SELECT dataset_key, path, reason FROM skipped_items ORDER BY path"):
            unreadable.setdefault(key, []).append((fpath, reason))
        con.execute("COMMIT")
    except sqlite3.Error:
        return None
    finally:
        con.close()
    lines = []
    for run_id, strategy, seed, dataset, status, note, config_json in runs:
        idx, state = current.get(run_id, (0, "TRAINING"))
        acc, f1 = last.get(run_id, (None, None))
        key, encoder, source = _data_of(config_json)
        lines.append(RunLine(run_id=run_id, strategy=strategy, seed=seed, dataset=dataset, status=status, note=note,
                             round_idx=idx, state=state, rounds=_rounds(config_json),
                             labeled=answers.get((run_id, "labeled"), 0), skipped=answers.get((run_id, "skipped"), 0),
                             last_accuracy=acc, last_macro_f1=f1, encoder=encoder, source=source,
                             unreadable=tuple(unreadable.get(key or "", ()))))
    return lines


def _rounds(config_json: str) -> int:
    try:
        return int(json.loads(config_json).get("rounds", 0))
    except (ValueError, TypeError, AttributeError):
        return 0


def _data_of(config_json: str) -> tuple[str | None, str | None, str | None]:
    """The run's dataset key (of the ``items`` tables), its encoder and its folder or file, from its config."""
    try:
        cfg = json.loads(config_json)
        params = dict(cfg.get("dataset_params") or {})
        key = dataset_key(cfg["dataset"], params, cfg.get("inputs_digest"))
    except (ValueError, TypeError, AttributeError, KeyError):
        return None, None, None
    source = params.get("root") or params.get("path") or params.get("features")
    encoder = params.get("encoder")
    return key, None if encoder is None else str(encoder), None if source is None else str(source)


def _store_lines(path: Path) -> list[RunLine]:
    """The same lines through :class:`al_loop.store.Store` (raises its one-line errors)."""
    from al_loop.store import Store

    store = Store(path, readonly=True)
    try:
        lines = []
        for run in store.runs():
            assert run.id is not None
            rnd = store.current_round(run.id)
            labels = store.labels(run.id)
            metrics = store.metrics(run.id)
            key, encoder, source = _data_of(run.config_json)
            lines.append(RunLine(run_id=run.id, strategy=run.strategy, seed=run.seed, dataset=run.dataset,
                                 status=run.status, note=run.note, round_idx=rnd.idx, state=rnd.state,
                                 rounds=_rounds(run.config_json),
                                 labeled=sum(r.status == "labeled" for r in labels),
                                 skipped=sum(r.status == "skipped" for r in labels),
                                 last_accuracy=metrics[-1].accuracy if metrics else None,
                                 last_macro_f1=metrics[-1].macro_f1 if metrics else None,
                                 encoder=encoder, source=source,
                                 unreadable=tuple(store.skipped_items(key)) if key else ()))
        return lines
    finally:
        store.close()


def read_status(db: str | Path) -> list[RunLine]:
    """Every run of ``db``, oldest first, read-only.

    Raises
    ------
    StoreError
        The file is missing, not SQLite, another application's, or of another
        schema version (the messages of :class:`al_loop.store.Store`).
    """
    path = Path(db)
    lines = _fast_lines(path)
    return lines if lines is not None else _store_lines(path)


def status_rows(lines: Iterable[RunLine]) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of the ``status`` table.

    An ``encoder`` column only when some run's features came from an encoder
    (a text run without one shows ``tfidf``, the text loader's default); a
    ``note`` column only when some run has a note.
    """
    lines = list(lines)
    headers = ["run", "strategy", "seed", "dataset", "state", "round", "labels", "skipped", "last acc",
               "last macro-F1"]
    with_encoder = any(ln.encoder for ln in lines)
    if with_encoder:
        headers.insert(4, "encoder")
    with_note = any(ln.note for ln in lines)
    if with_note:
        headers.append("note")
    rows = []
    for ln in lines:
        cells = [str(ln.run_id), ln.strategy, str(ln.seed), ln.dataset, ln.state_text(), ln.round_text(),
                 str(ln.labeled), str(ln.skipped),
                 "-" if ln.last_accuracy is None else f"{ln.last_accuracy:.4f}",
                 "-" if ln.last_macro_f1 is None else f"{ln.last_macro_f1:.4f}"]
        if with_encoder:
            cells.insert(4, ln.encoder or ("tfidf" if ln.dataset == "text" else "-"))
        if with_note:
            cells.append(ln.note or "")
        rows.append(cells)
    return headers, rows


def unreadable_lines(lines: Iterable[RunLine]) -> list[str]:
    """One line per dataset with files left out as unreadable (at most five named), e.g.

    ``runs 1, 2 (photos): 3 file(s) skipped as unreadable: a/b.jpg (cannot identify image file), ...``
    """
    groups: dict[tuple[str | None, tuple[tuple[str, str], ...]], list[int]] = {}
    for ln in lines:
        if ln.unreadable:
            groups.setdefault((ln.source, ln.unreadable), []).append(ln.run_id)
    out = []
    for (source, files), run_ids in groups.items():
        named = ", ".join(f"{p} ({reason})" for p, reason in files[:_NAMED_SKIPPED])
        more = f", and {len(files) - _NAMED_SKIPPED} more" if len(files) > _NAMED_SKIPPED else ""
        runs = ("run " if len(run_ids) == 1 else "runs ") + ", ".join(map(str, run_ids))
        where = f" ({source})" if source else ""
        out.append(f"{runs}{where}: {len(files)} file(s) skipped as unreadable: {named}{more}")
    return out
