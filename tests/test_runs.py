"""No run may get stuck: checks before the first write, failed runs, `runs abandon` / `runs retry`, resume.

Integration-style: real SQLite stores in ``tmp_path``, the CLI through
``main()`` (``run_cli``), and a strategy of this module that fails on demand.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from al_loop import api
from al_loop.errors import ConfigError, RunFailedError, RunLockedError
from al_loop.lease import RunLease
from al_loop.registry import STRATEGIES
from al_loop.store import Store
from al_loop.strategy import Strategy
from al_loop.types import QueryContext, Selection
from tests.test_cli import one_line_error, run_cli

SMALL = ["--rounds", "2", "--batch", "5", "--init", "10"]
FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class FailingStrategy(Strategy):
    """Random picks, except while the file ``marker`` exists: then it raises (``kind``) in round >= 1."""

    name = "h2_failing"

    marker: str = ""
    kind: str = "config"  # config: ConfigError; bug: RuntimeError; interrupt: KeyboardInterrupt
    from_round: int = 1

    def _select(self, view: object, ctx: QueryContext, budget: int) -> Selection:
        if self.marker and Path(self.marker).exists() and ctx.round >= self.from_round:
            if self.kind == "bug":
                raise RuntimeError(f"boom in round {ctx.round}\nsecond line")
            if self.kind == "interrupt":
                raise KeyboardInterrupt
            raise ConfigError(f"h2_failing cannot select in round {ctx.round}; remove {self.marker}")
        ids = np.sort(ctx.rng.choice(np.asarray(ctx.unlabeled_ids), size=budget, replace=False))
        return Selection(ids=ids, scores=np.zeros(budget))


if "h2_failing" not in STRATEGIES:
    STRATEGIES.add("h2_failing", FailingStrategy)


def _runs(db: Path) -> list[tuple[int, str, str | None]]:
    store = Store(db, readonly=True)
    try:
        return [(r.id, r.status, r.note) for r in store.runs()]  # type: ignore[misc]
    finally:
        store.close()


def _snapshot(db: Path) -> list[tuple]:
    """Every row of the store's run-facing tables (to check that nothing was written)."""
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [(t, con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall())
                for t in ("runs", "rounds", "selections", "labels", "metrics", "leases")]
    finally:
        con.close()


def error_after_progress(err: str) -> str:
    """The one ``error:`` line of a command that failed after its progress bar had started (no traceback)."""
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "fail-now"
    path.write_text("while this file exists, h2_failing raises\n")
    return path


# -- 1. everything that can be checked is checked before the first write ----------------------

@pytest.mark.parametrize("args, needle", [
    (["--strategy", "prism"], "prism needs exemplars or items to avoid; pass --query-ids"),
    (["--strategy", "prism", "--query-ids", "1,2", "--param", "prism.function=flcg"],
     "function 'flcg' is a scg function, not smi"),
    (["--dataset", "wine", "--init", "10", "--learner", "cnn"],
     "learner cnn needs square images (n, H, H) or H*H features; this data has 13 features; "
     "use --learner logreg or mlp"),
    (["--strategy", "similar", "--param", "similar.target=rarest"], "unknown SIMILAR target 'rarest'"),
    (["--strategy", "similar", "--param", "similar.metric=cos"], "got metric='cos'"),
    (["--strategy", "fass", "--param", "fass.measure=entropi"], "unknown uncertainty measure 'entropi'"),
    (["--strategy", "badge", "--param", "badge.gradients=outer"],
     "strategy 'badge' got gradients='outer'; use one of factored, whole"),
    (["--strategy", "kcenter", "--param", "kcenter.prune=maybe"],
     "--param kcenter.prune='maybe' is not a bool; write true or false"),
    (["--strategy", "cal", "--param", "cal.k=2.5"], "--param cal.k='2.5' is not an int"),
    (["--strategy", "kcenter", "--param", "kcenter.prun=true"], "has no parameter 'prun'; did you mean 'prune'?"),
    (["--strategy", "kcenter", "--param", "prun=true"], "did you mean 'prune' (kcenter)?"),
    (["--seeds", "0"], "no seed to run (--seeds must be 1 or more)"),
    (["--seeds", "-2"], "no seed to run (--seeds must be 1 or more)"),
])
def test_refused_before_the_store_exists(args, needle, tmp_path, capsys, monkeypatch) -> None:
    db = tmp_path / "never.sqlite"
    code, _, err = run_cli(["simulate", "--db", str(db), "--rounds", "1", *args], capsys, monkeypatch)
    assert code == 2
    assert needle in one_line_error(err)
    assert not db.exists()


def test_refused_config_leaves_an_existing_store_unchanged(tmp_path, capsys, monkeypatch) -> None:
    db = tmp_path / "s.sqlite"
    assert run_cli(["simulate", "--db", str(db), *SMALL], capsys, monkeypatch)[0] == 0
    before = _snapshot(db)
    code, _, err = run_cli(["simulate", "--db", str(db), "--strategy", "prism", *SMALL], capsys, monkeypatch)
    assert code == 2 and "prism needs exemplars" in one_line_error(err)
    assert _snapshot(db) == before


def test_strategy_check_config_sees_the_run_config() -> None:
    from al_loop.config import RunConfig

    prism = api.build_strategy("prism", {})
    with pytest.raises(ConfigError, match="prism needs exemplars"):
        prism.check_config(RunConfig(dataset="digits", strategy="prism"))
    prism.check_config(RunConfig(dataset="digits", strategy="prism", private_ids=(3,)))  # scg: fine
    api.build_strategy("margin", {}).check_config(RunConfig(dataset="digits", strategy="margin"))  # base: no-op


@pytest.mark.parametrize("shape, ok", [((5, 64), True), ((5, 8, 8), True), ((5, 1, 8, 6), True),
                                       ((5, 13), False), ((5, 3, 8, 8), False), ((5,), False)])
def test_cnn_check_pool_by_input_shape(shape, ok) -> None:
    from al_loop.pool import Pool

    pool = Pool(X=np.zeros(shape, dtype=np.float32), ids=np.arange(shape[0]), classes=("a", "b"))
    learner = api.build_learner("cnn", pool)
    if ok:
        learner.check_pool(pool)
    else:
        with pytest.raises(ConfigError, match="learner cnn") as err:
            learner.check_pool(pool)
        assert "\n" not in str(err.value) and "logreg or mlp" in str(err.value)
    api.build_learner("mlp", pool).check_pool(pool)  # flattens anything
    api.build_learner("logreg", pool).check_pool(pool)


# -- 2. a run that fails anyway is marked failed; resume skips it and finishes the others ------

def test_failing_step_marks_the_run_failed_and_exits_2(tmp_path, marker, capsys, monkeypatch) -> None:
    db = tmp_path / "f.sqlite"
    code, _, err = run_cli(["simulate", "--db", str(db), "--strategy", "h2_failing", "--seeds", "2",
                            "--param", f"h2_failing.marker={marker}", *SMALL], capsys, monkeypatch)
    line = error_after_progress(err)
    assert code == 2
    assert "run 1 failed and is marked failed: h2_failing cannot select in round 1" in line
    assert f"`al-loop resume --db {db}` runs them" in line
    (r1, s1, n1), (r2, s2, _) = _runs(db)
    assert (r1, s1) == (1, "failed") and n1.startswith("h2_failing cannot select in round 1")
    assert (r2, s2) == (2, "running")  # not started: resume runs it
    code, out, _ = run_cli(["status", "--db", str(db)], capsys, monkeypatch)
    assert code == 0 and "failed" in out and "h2_failing cannot select" in out.replace("\n", " ").replace("│", "")


def test_unexpected_exception_keeps_its_traceback_but_the_run_is_failed(tmp_path, marker) -> None:
    db = tmp_path / "u.sqlite"
    with pytest.raises(RuntimeError, match="boom in round 1"):
        api.simulate(str(db), "digits", ["h2_failing"], rounds=2, batch=5, init=10,
                     strategy_params={"h2_failing": {"marker": str(marker), "kind": "bug"}})
    assert _runs(db) == [(1, "failed", "RuntimeError: boom in round 1")]


def test_interrupt_leaves_the_run_running(tmp_path, marker) -> None:
    db = tmp_path / "i.sqlite"
    with pytest.raises(KeyboardInterrupt):
        api.simulate(str(db), "digits", ["h2_failing"], rounds=2, batch=5, init=10,
                     strategy_params={"h2_failing": {"marker": str(marker), "kind": "interrupt"}})
    assert _runs(db) == [(1, "running", None)]


def test_resume_skips_a_failed_run_with_a_note_and_finishes_the_others(tmp_path, marker, capsys,
                                                                        monkeypatch) -> None:
    db = tmp_path / "r.sqlite"
    code, _, _ = run_cli(["simulate", "--db", str(db), "--strategy", "h2_failing", "--strategy", "random",
                          "--param", f"h2_failing.marker={marker}", *SMALL], capsys, monkeypatch)
    assert code == 2 and [s for _, s, _ in _runs(db)] == ["failed", "running"]
    code, _, err = run_cli(["resume", "--db", str(db)], capsys, monkeypatch)
    assert code == 0
    assert "run 1 failed earlier: h2_failing cannot select in round 1" in err and "runs abandon" in err
    assert [s for _, s, _ in _runs(db)] == ["failed", "finished"]


def test_run_failing_during_resume_is_marked_and_resume_goes_on(tmp_path, marker, capsys, monkeypatch) -> None:
    db = tmp_path / "g.sqlite"
    configs = api.plan_simulation("digits", ["h2_failing", "random"], rounds=2, batch=5, init=10,
                                  strategy_params={"h2_failing": {"marker": str(marker)}})
    store = Store(db)
    for cfg in configs:
        store.create_run(cfg)  # as a killed simulate leaves them: running, round 0
    store.close()
    code, _, err = run_cli(["resume", "--db", str(db)], capsys, monkeypatch)
    line = error_after_progress(err)
    assert code == 2
    assert "1 run(s) failed during resume and are marked failed (run 1: h2_failing cannot select" in line
    assert "the other 1 finished" in line
    assert [s for _, s, _ in _runs(db)] == ["failed", "finished"]


def test_retry_puts_a_failed_run_back_and_resume_finishes_it(tmp_path, marker, capsys, monkeypatch) -> None:
    db = tmp_path / "t.sqlite"
    run_cli(["simulate", "--db", str(db), "--strategy", "h2_failing", "--param", f"h2_failing.marker={marker}",
             *SMALL], capsys, monkeypatch)
    assert _runs(db)[0][1] == "failed"
    marker.unlink()  # the cause is fixed
    code, _, err = run_cli(["runs", "retry", "--db", str(db), "--run", "1"], capsys, monkeypatch)
    assert code == 0 and "running again" in err and _runs(db) == [(1, "running", None)]
    assert run_cli(["resume", "--db", str(db)], capsys, monkeypatch)[0] == 0
    assert _runs(db)[0][1] == "finished"
    before = _snapshot(db)
    code, _, err = run_cli(["runs", "retry", "--db", str(db), "--run", "1"], capsys, monkeypatch)
    assert code == 2 and "run 1 is finished, not failed; only a failed run can be retried" in one_line_error(err)
    assert _snapshot(db) == before


# -- runs abandon ---------------------------------------------------------------------------

@pytest.fixture
def unfinished(tmp_path) -> Path:
    """A store with run 1 finished and run 2 running (created, never driven)."""
    db = tmp_path / "a.sqlite"
    api.simulate(str(db), "digits", ["random"], rounds=1, batch=5, init=10)
    store = Store(db)
    store.create_run(api.plan_simulation("digits", ["margin"], rounds=1, batch=5, init=10)[0])
    store.close()
    return db


def test_abandon_a_running_run_keeps_its_rows_and_resume_leaves_it(unfinished, capsys, monkeypatch) -> None:
    code, _, err = run_cli(["runs", "abandon", "--db", str(unfinished), "--run", "2", "--reason", "wrong data"],
                           capsys, monkeypatch)
    assert code == 0 and "run 2 (running) is abandoned" in err
    assert _runs(unfinished)[1] == (2, "abandoned", "abandoned: wrong data")
    code, _, err = run_cli(["resume", "--db", str(unfinished)], capsys, monkeypatch)
    assert code == 0 and "nothing to resume" in err
    code, out, _ = run_cli(["export", "--db", str(unfinished), "--what", "metrics"], capsys, monkeypatch)
    assert code == 0 and {json.loads(ln)["run_id"] for ln in out.splitlines()} == {1}  # run 2 never trained
    code, out, _ = run_cli(["status", "--db", str(unfinished)], capsys, monkeypatch)
    assert code == 0 and "abandoned" in out


def test_abandon_a_failed_run_keeps_the_failure_in_the_note(tmp_path, marker, capsys, monkeypatch) -> None:
    db = tmp_path / "af.sqlite"
    run_cli(["simulate", "--db", str(db), "--strategy", "h2_failing", "--param", f"h2_failing.marker={marker}",
             "--param", "h2_failing.from_round=2", *SMALL], capsys, monkeypatch)
    assert run_cli(["runs", "abandon", "--db", str(db), "--run", "1"], capsys, monkeypatch)[0] == 0
    (_, status, note), = _runs(db)
    assert status == "abandoned" and note.startswith("abandoned by the user (it had failed: h2_failing")
    code, out, _ = run_cli(["export", "--db", str(db), "--what", "metrics"], capsys, monkeypatch)
    # round 1 was committed before round 2 failed: its metric row stays readable
    assert code == 0 and [json.loads(ln)["round"] for ln in out.splitlines()] == [1]


@pytest.mark.parametrize("args, needle", [
    (["--run", "1"], "run 1 is finished (all 1 rounds done); only a running or failed run can be abandoned"),
    (["--run", "9"], "run 9 is not in"),
])
def test_abandon_refusals_leave_the_store_unchanged(args, needle, unfinished, capsys, monkeypatch) -> None:
    before = _snapshot(unfinished)
    code, _, err = run_cli(["runs", "abandon", "--db", str(unfinished), *args], capsys, monkeypatch)
    assert code == 2 and needle in one_line_error(err)
    assert _snapshot(unfinished) == before


def test_abandon_refuses_a_run_another_process_writes(unfinished, capsys, monkeypatch) -> None:
    store = Store(unfinished)
    try:
        with RunLease(store, 2):
            code, _, err = run_cli(["runs", "abandon", "--db", str(unfinished), "--run", "2"], capsys, monkeypatch)
            assert code == 2 and "run 2 is being written by process" in one_line_error(err)
    finally:
        store.close()
    assert _runs(unfinished)[1] == (2, "running", None)


def test_abandon_a_campaign_run(tmp_path) -> None:
    from al_loop.config import RunConfig

    db = tmp_path / "c.sqlite"
    store = Store(db)
    run_id = store.create_run(RunConfig(dataset="digits", strategy="margin", oracle="label_studio",
                                        rounds=1_000_000))
    store.close()
    assert api.abandon_run(str(db), run_id, "project deleted") == "running"
    assert _runs(db) == [(run_id, "abandoned", "abandoned: project deleted")]


def test_lease_holder_error_is_not_a_run_failure(unfinished) -> None:
    store = Store(unfinished)
    try:
        with RunLease(store, 2), pytest.raises(RunLockedError):
            api.resume(str(unfinished))
    finally:
        store.close()
    assert _runs(unfinished)[1] == (2, "running", None)


# -- 4. a missing store is an error, never an empty new one -------------------------------------

@pytest.mark.parametrize("command", [["resume"], ["runs", "abandon", "--run", "1"], ["runs", "retry", "--run", "1"]])
def test_missing_store_is_named_and_not_created(command, tmp_path, capsys, monkeypatch) -> None:
    db = tmp_path / "typo.sqlite"
    code, _, err = run_cli([*command, "--db", str(db)], capsys, monkeypatch)
    assert code == 2
    assert f"{db} does not exist; pass the --db of an existing store" in one_line_error(err)
    assert not db.exists()


def test_api_resume_of_a_missing_store_raises_and_creates_nothing(tmp_path) -> None:
    from al_loop.errors import StoreError

    with pytest.raises(StoreError, match="does not exist"):
        api.resume(str(tmp_path / "nope.sqlite"))
    assert list(tmp_path.iterdir()) == []


def test_run_failed_error_is_an_al_loop_error() -> None:
    from al_loop.errors import AlLoopError

    assert issubclass(RunFailedError, AlLoopError)
    assert api.failure_reason(ValueError("x\ny")) == "ValueError: x"
    assert api.failure_reason(ConfigError("one line")) == "one line"
    assert api.failure_reason(RuntimeError()) == "RuntimeError"


# -- 5. a read-only store: one line, nothing written --------------------------------------------

@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder the unprivileged user ``nobody`` can reach (tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="al-loop-ro-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for p in [path, *path.rglob("*")]:
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(path)


def _as_nobody(argvs: list[list[str]]) -> list[tuple[int, str]]:
    """Run CLI command lines in a forked child that dropped to the user ``nobody`` (root ignores file modes).

    The interpreter lives under /root (closed to ``nobody``), so the child
    does not exec: it runs ``main()`` in the modules this process already
    imported (each command line is run once as root on a scratch store first,
    by the caller, so every module its path needs is loaded).
    """
    import contextlib
    import io
    import pwd

    from al_loop.cli import main

    nobody = pwd.getpwnam("nobody")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, run, report, exit without cleanup
        os.close(read_fd)
        out = []
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            for argv in argvs:
                err = io.StringIO()
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    try:
                        code = main(argv)
                    except SystemExit as exc:
                        code = exc.code
                    except BaseException as exc:  # report it instead of dying silently
                        code, err = 99, io.StringIO(f"{type(exc).__name__}: {exc}")
                out.append([code if isinstance(code, int) else 1, err.getvalue()])
        finally:
            os.write(write_fd, json.dumps(out).encode())
            os._exit(0)
    os.close(write_fd)
    data = b""
    while chunk := os.read(read_fd, 65536):
        data += chunk
    os.close(read_fd)
    os.waitpid(pid, 0)
    return [(code, err) for code, err in json.loads(data)]


def _ro_commands(db: Path, old: Path) -> list[list[str]]:
    """Every command that writes a store: simulate, runs abandon, resume, db upgrade (of an older store)."""
    return [["simulate", "--db", str(db), "--rounds", "1", "--batch", "5", "--init", "10"],
            ["runs", "abandon", "--db", str(db), "--run", "2"],
            ["resume", "--db", str(db)],
            ["db", "upgrade", "--db", str(old)]]


def _make_stores(folder: Path) -> tuple[Path, Path]:
    """``ro.sqlite`` (run 1 finished, run 2 running) and ``old.sqlite`` (schema v2) in ``folder``."""
    db, old = folder / "ro.sqlite", folder / "old.sqlite"
    api.simulate(str(db), "digits", ["random"], rounds=1, batch=5, init=10)
    s = Store(db)
    s.create_run(api.plan_simulation("digits", ["margin"], rounds=1, batch=5, init=10)[0])
    s.close()
    shutil.copy(FIXTURES / "schema_v2.sqlite", old)
    return db, old


@pytest.mark.parametrize("what", ["file", "folder"])
def test_read_only_store_is_one_line_for_every_writer(what, shared_dir, capsys, monkeypatch) -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    scratch = shared_dir / "scratch"  # the same command lines once as root: every module they need is loaded
    scratch.mkdir()
    for argv in _ro_commands(*_make_stores(scratch)):
        assert run_cli(argv, capsys, monkeypatch)[0] == 0, argv
    stores = shared_dir / "stores"
    stores.mkdir()
    db, old = _make_stores(stores)
    for p in (stores, db, old):
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
    if what == "file":
        db.chmod(0o444)
        old.chmod(0o444)
    else:
        stores.chmod(0o555)
    before = {p.name: p.read_bytes() for p in (db, old)}
    for (code, err), argv in zip(_as_nobody(_ro_commands(db, old)), _ro_commands(db, old), strict=True):
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1, (argv, err)
        expect = "(read-only file)" if what == "file" else "(read-only folder"
        assert lines[0].startswith("error: cannot write to") and expect in lines[0], (argv, lines[0])
    assert {p.name: p.read_bytes() for p in (db, old)} == before
    assert sorted(p.name for p in stores.iterdir()) == ["old.sqlite", "ro.sqlite"]  # no -wal, no backup


# -- curves and compare read around runs that ended early ------------------------------------------

def test_failed_run_is_left_out_of_the_averages_with_a_note(tmp_path, marker, capsys, monkeypatch) -> None:
    from al_loop import reports

    db = tmp_path / "cv.sqlite"
    run_cli(["simulate", "--db", str(db), "--strategy", "h2_failing", "--seeds", "2", "--param",
             f"h2_failing.marker={marker}", "--param", "h2_failing.from_round=2", *SMALL], capsys, monkeypatch)
    marker.unlink()
    assert run_cli(["resume", "--db", str(db)], capsys, monkeypatch)[0] == 0
    assert [s for _, s, _ in _runs(db)] == ["failed", "finished"]
    notes: list[str] = []
    groups = reports.group_curves(reports.load_curves([str(db)], log=notes.append))
    assert [r.run_id for g in groups for r in g.runs] == [2]
    xs, _ = groups[0].aligned()
    assert xs.tolist() == [10.0, 15.0, 20.0]  # the failed run's one point would have cut this to [10]
    assert len(notes) == 1 and "left out run(s) 1 (failed)" in notes[0]
    code, _, err = run_cli(["curves", "--db", str(db), "--out", str(tmp_path / "c.png")], capsys, monkeypatch)
    assert code == 0 and "left out run(s) 1 (failed)" in err and (tmp_path / "c.png").exists()
