"""Crash-point harness: kill -9 at every named point, restart, finish, check invariants.

Run ``python -m tests.harness.crash_table --trials 10`` for the full table.
Each trial forks a child that runs a simulation with ``AL_LOOP_CRASH_AT`` set
(it SIGKILLs itself at the point), then forks a second child that resumes,
then checks the invariants against an uninterrupted reference run with the
same seed:

- every selected item has one outbox row and the run's selections are unique;
- every answered label is in the store exactly once (one row per pool id);
- rounds only move forward (contiguous, every round but the last LABELED);
- selections, labels and metrics after resume equal the reference;
- ``PRAGMA integrity_check`` is ok.

Forked children share the parent's imports, so a trial costs a fraction of a
second instead of a fresh interpreter.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

CRASH_POINTS = [
    "before_select_commit", "after_select_commit", "during_train", "after_train", "before_send", "after_send",
    "after_dispatch_commit", "after_awaiting", "after_pull", "after_apply", "after_labeled", "after_next_round",
]
ROUNDS = 3


def _simulate(db: str, seed: int) -> None:
    from al_loop import api

    api.simulate(db, dataset="digits", strategies=["margin"], seeds=[seed], rounds=ROUNDS, batch=6, init=12,
                 skip_rate=0.1, noise_rate=0.1)


def _resume(db: str, seed: int) -> None:
    from al_loop import api

    api.resume(db)


def _fork(fn: Callable[[str, int], None], db: str, seed: int, crash_at: str | None) -> int:
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            if crash_at:
                os.environ["AL_LOOP_CRASH_AT"] = crash_at
            else:
                os.environ.pop("AL_LOOP_CRASH_AT", None)
            fn(db, seed)
        except BaseException:  # pragma: no cover - reported by the exit code
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def snapshot(db: str) -> dict[str, object]:
    con = sqlite3.connect(db)
    try:
        return {
            "selections": con.execute("SELECT round, pool_id, rank FROM selections ORDER BY round, rank").fetchall(),
            "labels": con.execute("SELECT pool_id, round, status, label FROM labels ORDER BY pool_id").fetchall(),
            "metrics": con.execute("SELECT round, n_labels, accuracy, macro_f1 FROM metrics ORDER BY round").fetchall(),
            "status": con.execute("SELECT status FROM runs").fetchall(),
        }
    finally:
        con.close()


def violations(db: str, reference: dict[str, object]) -> list[str]:
    """Invariants of the module docstring; returns the broken ones."""
    out = []
    con = sqlite3.connect(db)
    try:
        if con.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            out.append("integrity_check")
        n_sel = con.execute("SELECT count(*) FROM selections").fetchone()[0]
        n_outbox = con.execute("SELECT count(*) FROM outbox").fetchone()[0]
        if n_sel != n_outbox:
            out.append("selection without exactly one outbox row")
        dup_labels = con.execute("SELECT count(*) FROM (SELECT pool_id FROM labels GROUP BY run_id, pool_id "
                                 "HAVING count(*) > 1)").fetchone()[0]
        if dup_labels:
            out.append("a label stored twice")
        unsent = con.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]
        if unsent:
            out.append("outbox rows never sent")
        rounds = con.execute("SELECT idx, state FROM rounds ORDER BY idx").fetchall()
        if [r[0] for r in rounds] != list(range(len(rounds))) or any(s != "LABELED" for _, s in rounds[:-1]):
            out.append("rounds did not move forward")
    finally:
        con.close()
    snap = snapshot(db)
    for key in ("selections", "labels", "metrics", "status"):
        if snap[key] != reference[key]:
            out.append(f"{key} differ from the uninterrupted run")
    return out


def run_table(trials: int, points: list[str], log: Callable[[str], None] = print) -> list[tuple[str, int, int, int]]:
    """Return rows (point, trials, crashes reached, violations)."""
    import al_loop.api  # noqa: F401  (import once in the parent; children inherit it)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        refs = {}
        for trial in range(trials):
            seed = trial % 5
            if seed not in refs:
                ref_db = str(Path(tmp) / f"ref{seed}.sqlite")
                assert _fork(_simulate, ref_db, seed, None) == 0
                refs[seed] = snapshot(ref_db)
        for point in points:
            reached = bad = 0
            for trial in range(trials):
                seed, nth = trial % 5, 1 + (trial // 5) % ROUNDS
                db = str(Path(tmp) / f"{point}-{trial}.sqlite")
                code = _fork(_simulate, db, seed, f"{point}@{nth}")
                if code == -signal.SIGKILL:
                    reached += 1
                if _fork(_resume, db, seed, None) != 0:
                    bad += 1
                    log(f"{point} trial {trial}: resume failed")
                    continue
                broken = violations(db, refs[seed])
                if broken:
                    bad += 1
                    log(f"{point} trial {trial}: {broken}")
            rows.append((point, trials, reached, bad))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--points", nargs="*", default=CRASH_POINTS)
    args = parser.parse_args()
    rows = run_table(args.trials, args.points, log=lambda m: print(m, file=sys.stderr))
    print("| crash point | trials | killed there | violations |\n|---|---|---|---|")
    for point, n, reached, bad in rows:
        print(f"| {point} | {n} | {reached} | {bad} |")
    return 1 if any(r[3] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
