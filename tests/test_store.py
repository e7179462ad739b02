"""The SQLite store: contract suite plus file-level checks (pragmas, bad files, schema)."""

from __future__ import annotations

import sqlite3

import pytest

from al_loop.config import RunConfig
from al_loop.errors import StoreError
from al_loop.schema import SCHEMA_VERSION
from al_loop.store import Store
from tests.contracts.store_contract import StoreContract


class TestSQLiteStore(StoreContract):
    def make_store(self, tmp_path) -> Store:
        return Store(tmp_path / "store.sqlite")


def test_pragmas(tmp_path) -> None:
    store = Store(tmp_path / "s.sqlite")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    store.close()


def test_not_sqlite_file_is_refused_and_untouched(tmp_path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_text("these are my notes, not a database\n" * 10)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="is not a SQLite database"):
        Store(path)
    assert path.read_bytes() == before


def test_foreign_sqlite_file_is_refused(tmp_path) -> None:
    path = tmp_path / "other.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="another application"):
        Store(path)
    con = sqlite3.connect(path)
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == ["customers"]
    con.close()


def test_newer_schema_is_refused_with_version(tmp_path) -> None:
    path = tmp_path / "new.sqlite"
    Store(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE al_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade al-loop"):
        Store(path)


def test_truncated_database_is_refused(tmp_path) -> None:
    path = tmp_path / "t.sqlite"
    store = Store(path)
    for seed in range(30):
        store.create_run(RunConfig(dataset="digits", strategy="random", seed=seed, strategy_params={"x": "y" * 500}))
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError):
        s = Store(path)
        s.runs()  # pragma: no cover - reached only if opening did not fail
        assert s.integrity_ok()


def test_readonly_store_refuses_missing_file(tmp_path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "missing.sqlite", readonly=True)
    assert not (tmp_path / "missing.sqlite").exists()


def test_reader_works_while_writer_holds_transaction(tmp_path) -> None:
    path = tmp_path / "c.sqlite"
    writer = Store(path)
    run_id = writer.create_run(RunConfig(dataset="digits", strategy="random"))
    reader = Store(path, readonly=True)
    with writer.write() as s:  # an open write transaction
        from al_loop.schema import RunRow

        row = s.get(RunRow, run_id)
        row.note = "busy"
        s.add(row)
        s.flush()
        assert [r.id for r in reader.runs()] == [run_id]  # WAL: readers are not blocked
    reader.close()
    writer.close()



def _read_in_another_process(path) -> None:
    """Open ``path`` in another process, read, close (the close of a WAL store's last user removes its WAL files)."""
    import subprocess
    import sys

    code = ("import sqlite3, sys\n"
            "con = sqlite3.connect(sys.argv[1])\n"
            "con.execute('SELECT count(*) FROM runs').fetchone()\n"
            "con.close()\n")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)


@pytest.mark.parametrize("second", ["writer", "reader", "status"])
def test_opening_a_store_again_in_a_process_keeps_its_locks(tmp_path, second: str) -> None:
    """A second open of an open store (``serve`` opens it more than once) keeps the first one's SQLite locks.

    Checking the file's header with ``open()``/``close()`` did not: POSIX drops a process's ``fcntl`` locks on a
    file when any descriptor of it closes, so another process closing its connection found the store unused,
    checkpointed and removed ``-wal``/``-shm`` under our open connections ("disk I/O error" in ``al-loop serve``).
    """
    from al_loop.run_status import read_status

    path = tmp_path / "c.sqlite"
    first = Store(path)
    run_id = first.create_run(RunConfig(dataset="digits", strategy="random"))
    wal = path.with_name(path.name + "-wal")
    assert wal.exists()  # the first store's pooled connection keeps the store in use
    if second == "status":
        read_status(path)
    else:
        Store(path, readonly=second == "reader").close()
    _read_in_another_process(path)
    assert wal.exists() and path.with_name(path.name + "-shm").exists(), "the WAL files were removed under us"
    first.create_run(RunConfig(dataset="digits", strategy="random", seed=1))  # no disk I/O error
    assert [r.id for r in first.runs()] == [run_id, run_id + 1]
    first.close()
