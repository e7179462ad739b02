"""Kill -9 at every state transition, resume, and get exactly the uninterrupted result.

Each trial runs ``al-loop simulate`` in a subprocess that kills itself with
SIGKILL at a named crash point (``AL_LOOP_CRASH_AT``), then ``al-loop resume``
finishes the run. Labels, selections and metrics (without timings) must equal
those of an uninterrupted run with the same seed.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from al_loop.exports import export_records

SIM_ARGS = ["simulate", "--dataset", "digits", "--strategy", "entropy", "--strategy", "random", "--seeds", "1",
            "--rounds", "3", "--batch", "7", "--init", "12", "--skip-rate", "0.1", "--noise-rate", "0.1"]
CLI = [sys.executable, "-c", "from al_loop.cli import main; main()"]

CRASH_POINTS = [
    "before_select_commit@1", "after_select_commit@1", "before_select_commit@3", "after_select_commit@4",
    "during_train@2", "after_train@1", "before_send@2", "after_send@2", "after_dispatch_commit@3",
    "after_awaiting@2", "after_pull@3", "after_apply@1", "after_labeled@2", "after_next_round@3",
]


def _cli(args: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(CLI + args, capture_output=True, text=True, env=env, timeout=600)


def _snapshot(db: Path) -> dict[str, list]:
    drop = {"select_seconds", "train_seconds"}
    out = {}
    for what in ("labels", "selections", "metrics"):
        recs = [{k: v for k, v in r.items() if k not in drop} for r in export_records(str(db), what)]
        out[what] = sorted(recs, key=lambda r: sorted((k, str(v)) for k, v in r.items()))
    con = sqlite3.connect(db)
    out["status"] = sorted(con.execute("SELECT id, status FROM runs").fetchall())
    out["integrity"] = con.execute("PRAGMA integrity_check").fetchone()[0]
    out["outbox_unsent"] = con.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]
    con.close()
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, list]:
    db = tmp_path_factory.mktemp("ref") / "ref.sqlite"
    proc = _cli(SIM_ARGS + ["--db", str(db)])
    assert proc.returncode == 0, proc.stderr
    snap = _snapshot(db)
    assert len(snap["metrics"]) == 2 * 4 and snap["integrity"] == "ok"
    return snap


@pytest.mark.slow
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_at_crash_point_then_resume_equals_uninterrupted(point: str, tmp_path: Path, reference) -> None:
    db = tmp_path / "crash.sqlite"
    proc = _cli(SIM_ARGS + ["--db", str(db)], {"AL_LOOP_CRASH_AT": point})
    assert proc.returncode == -signal.SIGKILL, f"crash point {point} was not reached: {proc.stderr[-500:]}"
    partial = _snapshot(db)
    assert partial["status"] != reference["status"] or partial["metrics"] != reference["metrics"]
    res = _cli(["resume", "--db", str(db)])
    assert res.returncode == 0, res.stderr
    assert _snapshot(db) == reference


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.3, 0.9, 1.7])
def test_external_kill_9_at_random_moments(delay: float, tmp_path: Path, reference) -> None:
    db = tmp_path / "kill.sqlite"
    env = {**os.environ}
    proc = subprocess.Popen(CLI + SIM_ARGS + ["--db", str(db)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the runs exist, then let it work a little
        if db.exists():
            try:
                con = sqlite3.connect(db, timeout=5)
                n = con.execute("SELECT count(*) FROM runs").fetchone()[0]
                con.close()
                if n == 2:
                    break
            except sqlite3.DatabaseError:
                pass
        time.sleep(0.05)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    res = _cli(["resume", "--db", str(db)])
    assert res.returncode == 0, res.stderr
    assert _snapshot(db) == reference
