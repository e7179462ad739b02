"""The examples run as a user would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_custom_strategy_example(tmp_path) -> None:
    db = tmp_path / "ex.sqlite"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "custom_strategy.py"), "--db", str(db)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == ["entropy_density", "random"]
    from al_loop.store import Store

    store = Store(db, readonly=True)
    assert {r.strategy for r in store.runs()} == {"random", "entropy_density"}
    assert all(r.status == "finished" for r in store.runs())
    assert store.config(store.runs()[-1].id).learner == "forest"
