"""CLI manners: start-up imports, one-line usage errors (rc 2), Ctrl-C (rc 130) and SIGTERM (rc 143)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from al_loop.cli import _plugin_args
from tests.test_cli import one_line_error, run_cli

CLI = [sys.executable, "-c", "from al_loop.cli import main; main()"]
ROOT = Path(__file__).resolve().parents[1]


def test_building_the_cli_imports_neither_torch_nor_sklearn_nor_numpy() -> None:
    code = ("import sys; import al_loop.cli; from al_loop.cli.app import build_app; build_app(); "
            "print(json.dumps(sorted(m for m in ('torch', 'sklearn', 'numpy', 'scipy', 'matplotlib', 'sqlmodel', "
            "'fastapi', 'starlette', 'uvicorn') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("args, names", [
    (["simulate", "--strategies", "random"], ["--strategies", "--strategy"]),
    (["simulate", "--batch", "ten"], ["--batch", "integer"]),
    (["status"], ["--db"]),
    (["export", "--db"], ["--db"]),
    (["campaign", "run", "--bogus"], ["--bogus"]),
])
def test_usage_errors_are_one_line_with_rc_2(args, names, capsys, monkeypatch) -> None:
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2
    line = one_line_error(err)
    assert all(n in line for n in names), line
    assert "Traceback" not in err


def test_an_unknown_strategy_name_says_did_you_mean(tmp_path, capsys, monkeypatch) -> None:
    db = tmp_path / "s.sqlite"
    code, _, err = run_cli(["simulate", "--strategy", "entropi", "--db", str(db)], capsys, monkeypatch)
    assert code == 2
    assert "did you mean 'entropy'?" in one_line_error(err)
    assert not db.exists()


def test_no_arguments_prints_help_and_help_is_rc_0(capsys, monkeypatch) -> None:
    code, out, _ = run_cli([], capsys, monkeypatch)
    assert code == 0 and "simulate" in out and "Usage" in out
    code, out, _ = run_cli(["simulate", "--help"], capsys, monkeypatch)
    assert code == 0 and "--strategy" in out


def test_plugin_options_are_taken_from_anywhere_on_the_line() -> None:
    assert _plugin_args(["--plugin", "a", "simulate", "--plugin=b", "--db", "x"]) == (["a", "b"],
                                                                                     ["simulate", "--db", "x"])
    assert _plugin_args(["simulate", "--", "--plugin", "c"]) == ([], ["simulate", "--", "--plugin", "c"])


def test_an_interrupt_while_the_cli_is_imported_prints_one_line(capsys, monkeypatch) -> None:
    import al_loop.cli.app as app_module

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(app_module, "build_app", interrupted)
    code, out, err = run_cli(["status", "--db", "x"], capsys, monkeypatch)
    assert code == 130
    assert [ln for ln in err.splitlines() if ln.strip()] == ["interrupted (Ctrl-C)"]


def _labels_in(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT count(*) FROM labels").fetchone()[0])
        finally:
            con.close()
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def _start_and_signal(db: Path, sig: int) -> subprocess.CompletedProcess[str]:
    args = ["simulate", "--dataset", "digits", "--strategy", "margin", "--strategy", "entropy", "--seeds", "2",
            "--rounds", "15", "--batch", "5", "--init", "20", "--db", str(db)]
    proc = subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 120
    while _labels_in(db) < 40 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "the simulation ended before it could be interrupted"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.slow
@pytest.mark.parametrize("sig, rc, name", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_a_signal_during_simulate_exits_with_its_code_and_resume_finishes(sig, rc, name, tmp_path) -> None:
    db = tmp_path / "s.sqlite"
    proc = _start_and_signal(db, sig)
    assert proc.returncode == rc, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"interrupted ({name}): simulate stopped"), last
    assert f"the store {db} is consistent" in last and f"`al-loop resume --db {db}`" in last
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0] >= 1
    con.close()
    done = subprocess.run(CLI + ["resume", "--db", str(db)], capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-2000:]
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 4
    con.close()


@pytest.mark.slow
def test_ctrl_c_soon_after_start_prints_no_traceback(tmp_path) -> None:
    proc = subprocess.Popen(CLI + ["strategies"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    time.sleep(0.3)  # inside the imports of the CLI or of the strategies
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 0:  # the machine was fast enough to finish first: nothing to check
        assert "random" in out
        return
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted")


def test_a_closed_pipe_ends_export_quietly(tmp_path) -> None:
    db = tmp_path / "s.sqlite"
    made = subprocess.run(CLI + ["simulate", "--dataset", "digits", "--strategy", "random", "--rounds", "3",
                                 "--batch", "100", "--init", "600", "--db", str(db)], capture_output=True, text=True,
                          cwd=ROOT)
    assert made.returncode == 0, made.stderr
    proc = subprocess.Popen(CLI + ["export", "--db", str(db), "--what", "labels"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout is not None and proc.stdout.readline()  # like `| head -1`
    proc.stdout.close()
    err = proc.communicate(timeout=60)[1].decode()
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert proc.returncode == 141


@pytest.mark.parametrize("command", [["campaign", "run"], ["campaign", "status"], ["resume"]])
def test_a_missing_store_is_named_and_never_created(command, tmp_path, capsys, monkeypatch) -> None:
    db = tmp_path / "typo.sqlite"
    code, _, err = run_cli([*command, "--db", str(db)], capsys, monkeypatch)
    assert code == 2
    assert f"{db} does not exist" in one_line_error(err)
    assert not list(tmp_path.iterdir())


def test_resume_says_which_unfinished_runs_are_not_simulations(tmp_path, capsys, monkeypatch) -> None:
    from al_loop import api
    from al_loop.store import Store

    db = tmp_path / "q.sqlite"
    store = Store(db)
    run_id = store.create_run(api.RunConfig(dataset="iris", strategy="random", oracle="labels_file"))
    store.close()
    code, _, err = run_cli(["resume", "--db", str(db)], capsys, monkeypatch)
    assert code == 0
    assert f"not simulations: run {run_id} (labels_file: go on with `al-loop query`" in err
