"""`--cluster` on the CLI gives the same selections as a run without it."""

from __future__ import annotations

from al_loop.store import Store
from tests.test_cli import run_cli

ARGS = ["simulate", "--strategy", "margin", "--strategy", "kcenter", "--rounds", "2", "--batch", "6", "--init", "12"]


def _selections(db):
    store = Store(db, readonly=True)
    try:
        return [[(s.round, s.pool_id) for s in store.selections(r.id)] for r in store.runs()]
    finally:
        store.close()


def test_cluster_sync_equals_in_process(tmp_path, capsys, monkeypatch) -> None:
    plain, dist = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    assert run_cli([*ARGS, "--db", str(plain)], capsys, monkeypatch)[0] == 0
    assert run_cli([*ARGS, "--db", str(dist), "--cluster", "sync"], capsys, monkeypatch)[0] == 0
    assert _selections(plain) == _selections(dist)
    assert len(_selections(plain)[0]) == 12 + 2 * 6


def test_bad_cluster_spec_is_one_line(tmp_path, capsys, monkeypatch) -> None:
    code, _, err = run_cli([*ARGS, "--db", str(tmp_path / "c.sqlite"), "--cluster", "local:zero"], capsys, monkeypatch)
    assert code == 2 and not (tmp_path / "c.sqlite").exists()
    assert len([ln for ln in err.strip().splitlines() if ln.startswith("error:")]) == 1
