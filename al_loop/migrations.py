"""Schema upgrades: ``al-loop db upgrade --db PATH``.

Each released schema version ``v`` has one function that moves a store from
``v`` to ``v + 1`` inside a single transaction. Before any migration the
file is copied with ``VACUUM INTO`` (a consistent backup even in WAL mode).
Stores are never upgraded implicitly: opening an older store is refused with
the command to run.

Released versions:

- 1: the foundation schema (runs, rounds, selections, outbox, labels,
  quarantine, metrics, oracle_state).
- 2: ``metrics.val_accuracy`` / ``metrics.val_macro_f1`` (validation split of
  the stopping rules) and the ``leases`` table (one writer per run).
- 3: ``rounds.info_json`` (the selection's diagnostics per round, e.g. the
  phase of ``switch``) and the ``items`` table (the user's own item IDs, texts
  and file paths, per dataset); ``metrics.accuracy``/``macro_f1`` may be NULL
  (a campaign on unlabeled data has no test split to measure on).
- 4: the ``skipped_items`` table (files of an image folder left out as
  unreadable with ``--skip-bad``, per dataset); ``items.path`` now holds each
  item's file.
- 5: the ``stop_signals`` table (per-round stopping signals on the stop set:
  kappa, classification change, max and overall uncertainty, and the stop
  set's predictions; :mod:`al_loop.stopping`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from al_loop.errors import StoreError
from al_loop.schema import SCHEMA_VERSION
from al_loop.store import check_sqlite_file, check_writable


def _v1_to_v2(con: sqlite3.Connection) -> None:
    con.execute("ALTER TABLE metrics ADD COLUMN val_accuracy FLOAT")
    con.execute("ALTER TABLE metrics ADD COLUMN val_macro_f1 FLOAT")
    con.execute("CREATE TABLE leases (run_id INTEGER NOT NULL PRIMARY KEY REFERENCES runs (id), "
                "owner VARCHAR NOT NULL, host VARCHAR NOT NULL, pid INTEGER NOT NULL, "
                "acquired_at VARCHAR NOT NULL, heartbeat_at FLOAT NOT NULL)")


def _v2_to_v3(con: sqlite3.Connection) -> None:
    con.execute("ALTER TABLE rounds ADD COLUMN info_json VARCHAR")
    con.execute("CREATE TABLE items (dataset_key VARCHAR NOT NULL, pool_id INTEGER NOT NULL, item_id VARCHAR, "
                "text VARCHAR, path VARCHAR, PRIMARY KEY (dataset_key, pool_id))")
    # SQLite cannot drop a NOT NULL constraint in place: rebuild the table, keeping every row
    con.execute("CREATE TABLE metrics_v3 (run_id INTEGER NOT NULL REFERENCES runs (id), round INTEGER NOT NULL, "
                "n_labels INTEGER NOT NULL, accuracy FLOAT, macro_f1 FLOAT, train_seconds FLOAT NOT NULL, "
                "select_seconds FLOAT NOT NULL, val_accuracy FLOAT, val_macro_f1 FLOAT, PRIMARY KEY (run_id, round))")
    con.execute("INSERT INTO metrics_v3 SELECT run_id, round, n_labels, accuracy, macro_f1, train_seconds, "
                "select_seconds, val_accuracy, val_macro_f1 FROM metrics")
    con.execute("DROP TABLE metrics")
    con.execute("ALTER TABLE metrics_v3 RENAME TO metrics")


def _v3_to_v4(con: sqlite3.Connection) -> None:
    con.execute("CREATE TABLE skipped_items (dataset_key VARCHAR NOT NULL, path VARCHAR NOT NULL, "
                "reason VARCHAR NOT NULL, PRIMARY KEY (dataset_key, path))")


def _v4_to_v5(con: sqlite3.Connection) -> None:
    con.execute("CREATE TABLE stop_signals (run_id INTEGER NOT NULL REFERENCES runs (id), round INTEGER NOT NULL, "
                "n_labels INTEGER NOT NULL, kappa FLOAT, changed FLOAT, max_uncertainty FLOAT, "
                "mean_uncertainty FLOAT, predictions BLOB NOT NULL, PRIMARY KEY (run_id, round))")


def _v5_to_v6(con: sqlite3.Connection) -> None:
    con.execute("ALTER TABLE metrics ADD COLUMN micro_f1 FLOAT")
    con.execute("ALTER TABLE metrics ADD COLUMN hamming_loss FLOAT")


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4,
                                                                4: _v4_to_v5, 5: _v5_to_v6}


def schema_version(path: Path) -> int:
    """The schema version recorded in an al-loop store (raises for foreign files)."""
    check_sqlite_file(path)
    if not path.exists():
        raise StoreError(f"{path} does not exist; pass the --db of an existing store")
    con = sqlite3.connect(path)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "al_meta" not in tables:
            raise StoreError(f"{path} is not an al-loop store (no al_meta table); pass the right --db")
        row = con.execute("SELECT value FROM al_meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} cannot be read ({exc}); restore it from a backup") from None
    finally:
        con.close()


def upgrade(path: str | Path, backup_dir: str | Path | None = None) -> tuple[int, int, Path | None]:
    """Back up then migrate ``path`` to the current schema.

    Returns
    -------
    (old_version, new_version, backup_path)
        ``backup_path`` is None when the store was already current.
    """
    path = Path(path)
    if path.exists():
        check_writable(path)  # before reading: a WAL store in a read-only place cannot even be read by sqlite3
    old = schema_version(path)
    if old > SCHEMA_VERSION:
        raise StoreError(f"{path} has schema version {old}, newer than this al-loop's {SCHEMA_VERSION}; "
                         f"upgrade al-loop instead")
    if old == SCHEMA_VERSION:
        return old, old, None
    if old not in MIGRATIONS:
        raise StoreError(f"{path} has schema version {old}, which this al-loop cannot upgrade; "
                         "export it with the al-loop release that wrote it")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    backup = Path(backup_dir or path.parent) / f"{path.name}.v{old}-{stamp}.bak"
    if not os.access(backup.parent, os.W_OK | os.X_OK):
        raise StoreError(f"cannot write the backup into {backup.parent} (read-only folder); pass "
                         "--backup-dir with a writable folder")
    con = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        con.execute("PRAGMA busy_timeout=30000")
        con.execute("VACUUM INTO ?", (str(backup),))
        con.execute("BEGIN IMMEDIATE")
        try:
            version = old
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](con)
                version += 1
            con.execute("UPDATE al_meta SET value=? WHERE key='schema_version'", (str(version),))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        if con.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise StoreError(f"{path} failed its integrity check after the upgrade; the backup is {backup}")
    finally:
        con.close()
    return old, SCHEMA_VERSION, backup
