"""``al-loop serve``: bad input in one line (rc 2), the run's lease, a real uvicorn answering, Ctrl-C and SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from al_loop import api
from al_loop.store import Store
from tests.backend.test_app import CAMPAIGN, campaign_store
from tests.test_cli import one_line_error, run_cli

CLI = [sys.executable, "-c", "from al_loop.cli import main; main()"]
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def campaign_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A store holding a simulated run (run 1) and a campaign run waiting in round 1 (run 2)."""
    db = tmp_path_factory.mktemp("serve-cli") / "c.sqlite"
    api.simulate(str(db), dataset="digits", strategies=["random"], rounds=1, batch=5, init=10)
    store, run = campaign_store(db, "margin", upto=1)
    store.close()
    return db, run


def start(db: Path, port: int, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, "serve", "--db", str(db), "--port", str(port), *extra], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})


def wait_up(proc: subprocess.Popen[str], port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code in (200, 401):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    pytest.fail("serve did not answer /health in time")


def stop(proc: subprocess.Popen[str], sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


def test_serve_answers_holds_the_runs_lease_and_sigterm_is_143(campaign_db: tuple[Path, int]) -> None:
    db, run = campaign_db
    port = free_port()
    proc = start(db, port, "--basic-auth-env", "AL_TEST_BACKEND_AUTH", env={"AL_TEST_BACKEND_AUTH": "ls:pw"})
    try:
        wait_up(proc, port)
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 401
        task = {"id": 1, "data": {"al_campaign": CAMPAIGN, "al_run": run, "al_pool_id": 3}}
        reply = httpx.post(f"http://127.0.0.1:{port}/predict", json={"tasks": [task]}, auth=("ls", "pw"), timeout=30)
        assert reply.status_code == 200
        (pred,) = reply.json()["results"]
        assert pred["model_version"] == f"al-loop run {run} round 1" and len(pred["result"]) == 1
        # one writer per run: a second serve and a campaign run of the same run are refused, naming the holder
        second = subprocess.run([*CLI, "serve", "--db", str(db), "--port", str(free_port())], cwd=ROOT, text=True,
                                capture_output=True, timeout=120)
        assert second.returncode == 2
        line = one_line_error(second.stderr)
        assert f"run {run} is being written by process {proc.pid}" in line and "stop that process first" in line
        pull = subprocess.run([*CLI, "campaign", "run", "--db", str(db)], cwd=ROOT, text=True, capture_output=True,
                              timeout=120, env={**os.environ, "LABEL_STUDIO_API_KEY": "unused"})
        assert pull.returncode == 2, pull.stderr
        assert f"being written by process {proc.pid}" in pull.stderr.strip().splitlines()[-1]
    finally:
        code, err = stop(proc, signal.SIGTERM)
    assert code == 143, err
    assert err.strip().splitlines()[-1] == (
        f"interrupted (SIGTERM): serving run {run} stopped; the store {db} is consistent (every committed step is "
        f"kept); run `al-loop serve --db {db} --run {run} --host 127.0.0.1 --port {port}` to go on")


def test_ctrl_c_is_130_and_the_next_serve_takes_the_lease_over(campaign_db: tuple[Path, int]) -> None:
    db, run = campaign_db
    port = free_port()
    proc = start(db, port, "--run", str(run))
    wait_up(proc, port)
    code, err = stop(proc, signal.SIGINT)
    assert code == 130, err
    assert err.strip().splitlines()[-1].startswith(f"interrupted (Ctrl-C): serving run {run} stopped;")
    again = start(db, port)
    try:
        wait_up(again, port)
    finally:
        assert stop(again, signal.SIGINT)[0] == 130


def test_serve_of_a_missing_store_is_one_line_and_creates_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    db = tmp_path / "typo.sqlite"
    code, _, err = run_cli(["serve", "--db", str(db)], capsys, monkeypatch)
    assert code == 2
    assert one_line_error(err) == (f"error: {db} does not exist; start a campaign with `al-loop campaign init --db "
                                   f"{db} ...` or pass the --db of an existing one")
    assert not db.exists()


def test_serve_of_a_store_without_a_campaign_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    db = tmp_path / "sim.sqlite"
    api.simulate(str(db), dataset="digits", strategies=["random"], rounds=1, batch=5, init=10)
    code, _, err = run_cli(["serve", "--db", str(db), "--port", str(free_port())], capsys, monkeypatch)
    assert code == 2
    assert one_line_error(err) == f"error: {db} has no unfinished campaign; start one with `al-loop campaign init`"
    code, _, err = run_cli(["serve", "--db", str(db), "--run", "1", "--port", str(free_port())], capsys, monkeypatch)
    assert code == 2
    assert one_line_error(err) == f"error: run 1 is not a campaign run of {db} (campaign runs: none)"


def test_serve_refuses_bad_auth_variables_and_a_busy_port(campaign_db: tuple[Path, int], capsys,
                                                          monkeypatch) -> None:
    db, _run = campaign_db
    before = Store(db, readonly=True)
    leases = before.engine.connect().exec_driver_sql("SELECT COUNT(*) FROM leases").scalar()
    before.close()
    monkeypatch.delenv("AL_TEST_NO_SUCH_VAR", raising=False)
    monkeypatch.setenv("AL_TEST_HALF_AUTH", "only-a-user")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        for args, line in [
            (["--basic-auth-env", "AL_TEST_NO_SUCH_VAR"],
             "error: --basic-auth-env AL_TEST_NO_SUCH_VAR: the variable is not set; set AL_TEST_NO_SUCH_VAR="
             "user:password (the credentials the backend is registered with in Label Studio)"),
            (["--basic-auth-env", "AL_TEST_HALF_AUTH"],
             "error: --basic-auth-env AL_TEST_HALF_AUTH: the variable must hold user:password (both non-empty)"),
            (["--port", str(taken)], f"error: cannot listen on 127.0.0.1:{taken} (Address already in use); pass "
                                     "another --port, or stop what listens there"),
            (["--port", "70000"], "error: --port 70000 is not a TCP port; pass 1..65535"),
        ]:
            full = ["serve", "--db", str(db), *(args if "--port" in args else [*args, "--port", str(free_port())])]
            code, _, err = run_cli(full, capsys, monkeypatch)
            assert (code, one_line_error(err)) == (2, line)
    after = Store(db, readonly=True)
    assert after.engine.connect().exec_driver_sql("SELECT COUNT(*) FROM leases").scalar() == leases
    after.close()
