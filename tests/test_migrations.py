"""Schema versions: fixtures of each released schema, refusal, backup and upgrade."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from al_loop import api
from al_loop.errors import StoreError
from al_loop.migrations import MIGRATIONS, schema_version, upgrade
from al_loop.schema import SCHEMA_VERSION
from al_loop.store import Store
from tests.test_cli import one_line_error, run_cli

FIXTURES = Path(__file__).parent / "fixtures"
RELEASED = sorted(int(p.stem.split("_v")[1]) for p in FIXTURES.glob("schema_v*.sqlite"))


def test_a_fixture_for_every_released_schema_below_current() -> None:
    assert RELEASED == list(range(1, SCHEMA_VERSION)), "add tests/fixtures/schema_vN.sqlite for each release"
    assert sorted(MIGRATIONS) == RELEASED


def _copy(version: int, tmp_path: Path) -> Path:
    dst = tmp_path / f"old_v{version}.sqlite"
    shutil.copy(FIXTURES / f"schema_v{version}.sqlite", dst)
    return dst


@pytest.mark.parametrize("version", RELEASED)
def test_older_store_is_refused_with_the_command(version: int, tmp_path: Path) -> None:
    path = _copy(version, tmp_path)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=f"older schema version {version}; run `al-loop db upgrade --db"):
        Store(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("version", RELEASED)
def test_upgrade_backs_up_and_keeps_every_row(version: int, tmp_path: Path) -> None:
    path = _copy(version, tmp_path)
    con = sqlite3.connect(path)
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("runs", "rounds", "selections", "outbox", "labels", "metrics")}
    con.close()
    old, new, backup = upgrade(path)
    assert (old, new) == (version, SCHEMA_VERSION)
    assert backup is not None and schema_version(backup) == version
    store = Store(path)
    assert store.integrity_ok()
    con = sqlite3.connect(path)
    assert counts == {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in counts}
    con.close()
    runs = store.runs()
    assert all(r.status == "finished" for r in runs)
    assert all(m.val_accuracy is None for r in runs for m in store.metrics(r.id))
    store.close()
    assert upgrade(path)[2] is None  # already current: no second backup


def test_upgraded_store_takes_new_runs(tmp_path: Path) -> None:
    path = _copy(1, tmp_path)
    upgrade(path)
    ids = api.simulate(str(path), dataset="iris", strategies=["random"], rounds=1, batch=5, init=6)
    store = Store(path, readonly=True)
    assert store.run(ids[0]).status == "finished" and len(store.runs()) == 3


def test_db_upgrade_cli(tmp_path: Path, capsys, monkeypatch) -> None:
    path = _copy(1, tmp_path)
    code, _, err = run_cli(["status", "--db", str(path)], capsys, monkeypatch)
    assert code == 2 and "al-loop db upgrade" in one_line_error(err)
    code, _, err = run_cli(["db", "upgrade", "--db", str(path)], capsys, monkeypatch)
    assert code == 0 and f"from schema version 1 to {SCHEMA_VERSION}" in err
    code, out, _ = run_cli(["status", "--db", str(path)], capsys, monkeypatch)
    assert code == 0 and "entropy" in out


def test_upgrade_refuses_newer_and_foreign(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    Store(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE al_meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer than this al-loop"):
        upgrade(path)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE x (y)").connection.close()
    with pytest.raises(StoreError, match="not an al-loop store"):
        upgrade(other)


@pytest.mark.parametrize("version", RELEASED)
def test_upgraded_metrics_take_a_run_without_a_test_score(version: int, tmp_path: Path) -> None:
    path = _copy(version, tmp_path)
    upgrade(path)
    con = sqlite3.connect(path)
    run_id = con.execute("SELECT min(id) FROM runs").fetchone()[0]
    con.execute("INSERT INTO metrics (run_id, round, n_labels, accuracy, macro_f1, train_seconds, select_seconds) "
                "VALUES (?, 999, 1, NULL, NULL, 0, 0)", (run_id,))
    con.commit()
    info = {r[1]: r for r in con.execute("PRAGMA table_info(rounds)")}
    assert "info_json" in info
    items = con.execute("SELECT count(*) FROM items").fetchone()[0]
    # the v3 fixture's texts were recorded, the v4 fixture two paths (the v5 fixture is the v4 one
    # upgraded, plus an iris run); older stores had no table
    assert items == {3: 60, 4: 2, 5: 2}.get(version, 0)
    con.close()


def test_v3_store_gains_the_skipped_items_table_and_keeps_its_items(tmp_path: Path) -> None:
    path = _copy(3, tmp_path)
    con = sqlite3.connect(path)
    items_before = con.execute("SELECT dataset_key, pool_id, item_id, text, path FROM items ORDER BY 1, 2").fetchall()
    assert "skipped_items" not in {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    con.close()
    assert upgrade(path)[:2] == (3, SCHEMA_VERSION)
    con = sqlite3.connect(path)
    cols = [r[1] for r in con.execute("PRAGMA table_info(skipped_items)")]
    assert cols == ["dataset_key", "path", "reason"]
    assert con.execute("SELECT dataset_key, pool_id, item_id, text, path FROM items ORDER BY 1, 2").fetchall() == (
        items_before)
    con.close()
    store = Store(path)
    run = store.runs()[0]
    key = store.config(run.id).dataset_key()  # a run without an inputs digest keeps its old key
    assert len(store.items(key)) == 60 and store.skipped_items(key) == []
    assert store.record_items("k", [0, 1], paths=["a/x.png", "a/y.png"], skipped=[("a/z.png", "truncated")])
    assert store.skipped_items("k") == [("a/z.png", "truncated")]
    store.close()


def test_v4_store_gains_the_stop_signals_table_and_its_runs_take_signals(tmp_path: Path) -> None:
    path = _copy(4, tmp_path)
    con = sqlite3.connect(path)
    assert "stop_signals" not in {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    skipped_before = con.execute("SELECT * FROM skipped_items").fetchall()
    con.close()
    assert upgrade(path)[:2] == (4, SCHEMA_VERSION)
    con = sqlite3.connect(path)
    cols = [r[1] for r in con.execute("PRAGMA table_info(stop_signals)")]
    assert cols == ["run_id", "round", "n_labels", "kappa", "changed", "max_uncertainty", "mean_uncertainty",
                    "predictions"]
    assert con.execute("SELECT * FROM skipped_items").fetchall() == skipped_before
    con.close()
    store = Store(path, readonly=True)
    assert all(store.stop_signals(r.id) == [] for r in store.runs())
    store.close()
    ids = api.simulate(str(path), dataset="iris", strategies=["entropy"], rounds=2, batch=5, init=6,
                       options={"track_stopping": True})
    store = Store(path, readonly=True)
    assert [s.round for s in store.stop_signals(ids[0])] == [1, 2, 3]
    store.close()


def test_v5_store_gains_the_multilabel_metric_columns_and_keeps_its_signals(tmp_path: Path) -> None:
    path = _copy(5, tmp_path)
    con = sqlite3.connect(path)
    before = [r[1] for r in con.execute("PRAGMA table_info(metrics)")]
    signals = con.execute("SELECT * FROM stop_signals ORDER BY run_id, round").fetchall()
    metrics = con.execute("SELECT * FROM metrics ORDER BY run_id, round").fetchall()
    con.close()
    assert "micro_f1" not in before and len(signals) == 3
    assert upgrade(path)[:2] == (5, SCHEMA_VERSION)
    con = sqlite3.connect(path)
    cols = [r[1] for r in con.execute("PRAGMA table_info(metrics)")]
    assert cols == before + ["micro_f1", "hamming_loss"]
    assert con.execute("SELECT * FROM stop_signals ORDER BY run_id, round").fetchall() == signals
    rows = con.execute("SELECT * FROM metrics ORDER BY run_id, round").fetchall()
    assert [r[:len(before)] for r in rows] == metrics and all(r[len(before):] == (None, None) for r in rows)
    con.close()
    store = Store(path, readonly=True)
    assert all(m.micro_f1 is None for r in store.runs() for m in store.metrics(r.id))
    store.close()
