"""One writer per run: the lease refuses a second writer and is taken over when stale."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from al_loop.config import RunConfig
from al_loop.errors import RunLockedError
from al_loop.lease import RunLease
from al_loop.schema import LeaseRow
from al_loop.store import Store


@pytest.fixture
def store_and_run(tmp_path):
    store = Store(tmp_path / "l.sqlite")
    run_id = store.create_run(RunConfig(dataset="digits", strategy="random"))
    yield store, run_id
    store.close()


def test_second_writer_refused_while_first_beats(store_and_run) -> None:
    store, run_id = store_and_run
    with RunLease(store, run_id, stale_after=30, interval=0.1) as first:
        time.sleep(0.3)
        with pytest.raises(RunLockedError, match=f"run {run_id} is being written by process {os.getpid()}"):
            RunLease(store, run_id, stale_after=30).acquire()
        first.check()
    RunLease(store, run_id).acquire()  # released: free again


def test_heartbeat_moves(store_and_run) -> None:
    store, run_id = store_and_run
    with RunLease(store, run_id, interval=0.05):
        with store.read() as s:
            t0 = s.get(LeaseRow, run_id).heartbeat_at
        time.sleep(0.4)
        with store.read() as s:
            assert s.get(LeaseRow, run_id).heartbeat_at > t0


def test_stale_lease_is_taken_over_and_old_holder_notices(store_and_run) -> None:
    store, run_id = store_and_run
    old = RunLease(store, run_id, stale_after=0.2, interval=100)  # never beats again
    old.acquire()
    time.sleep(0.4)
    new = RunLease(store, run_id, stale_after=0.2, interval=100)
    new.acquire()
    with pytest.raises(RunLockedError, match="taken over"):
        old.check()
    new.check()


def test_lease_of_a_killed_process_is_taken_over_at_once(store_and_run, tmp_path) -> None:
    store, run_id = store_and_run
    code = ("import sys, time; from al_loop.store import Store; from al_loop.lease import RunLease;"
            f"s = Store({str(store.path)!r}); l = RunLease(s, {run_id}, stale_after=3600); l.acquire();"
            "print('ok', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ok"
    with pytest.raises(RunLockedError):
        RunLease(store, run_id, stale_after=3600).acquire()
    proc.kill()
    proc.wait()
    RunLease(store, run_id, stale_after=3600).acquire()  # holder is dead: taken over


def test_a_lease_left_by_an_interrupt_in_this_process_is_taken_over(tmp_path) -> None:
    """Ctrl-C in a notebook: the interrupted drive leaves its row; the next call in the same process goes on."""
    db = tmp_path / "l.sqlite"
    store = Store(db)
    run_id = store.create_run(RunConfig(dataset="iris", strategy="random"))
    with pytest.raises(KeyboardInterrupt):
        with RunLease(store, run_id):
            raise KeyboardInterrupt
    with store.read() as s:
        assert s.get(LeaseRow, run_id) is not None  # left behind: nothing is written on the way out
    with RunLease(store, run_id) as lease:
        lease.check()
    other = RunLease(store, run_id)
    with RunLease(store, run_id):
        with pytest.raises(RunLockedError):
            other.acquire()  # a lease this process holds now is still refused
    store.close()


def test_an_alive_holder_is_named_without_a_wait_figure(store_and_run) -> None:
    """Issue #14.15: while the holder lives on this host, waiting cannot help; only another host's holder
    (whose life this host cannot see) gets the seconds until its lease goes stale."""
    import socket

    store, run_id = store_and_run
    with RunLease(store, run_id, stale_after=60, interval=100):
        with pytest.raises(RunLockedError) as alive:
            RunLease(store, run_id, stale_after=60).acquire()
    msg = str(alive.value)
    assert f"process {os.getpid()} on {socket.gethostname()}, which is alive" in msg and "stop that process first" in msg
    assert "wait" not in msg
    with store.write() as s:  # a holder on another host, beating a moment ago
        s.add(LeaseRow(run_id=run_id, owner="elsewhere:1:x", host="elsewhere", pid=1, acquired_at="now",
                       heartbeat_at=time.time()))
    with pytest.raises(RunLockedError, match=r"process 1 on elsewhere .*if it died, wait \d+ s"):
        RunLease(store, run_id, stale_after=60).acquire()
