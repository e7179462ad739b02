"""One writer per run: a lease row with a heartbeat.

A process that drives a run holds its lease; a second process asking for the
same run is refused with a message naming the holder. The holder refreshes
``heartbeat_at`` from a daemon thread every ``interval`` seconds; a lease is
taken over when its heartbeat is older than ``stale_after`` seconds, or at
once when its holder ran on this host and that process no longer exists
(e.g. after ``kill -9``).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from types import TracebackType

from al_loop.errors import RunLockedError
from al_loop.schema import LeaseRow, utcnow

#: owners of the leases this process holds now (a row of this pid with another owner was left behind)
_HELD: set[str] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLease:
    """Context manager holding the write lease of one run.

    Parameters
    ----------
    store : Store
    run_id : int
    stale_after : float
        Seconds without heartbeat after which another process may take over.
    interval : float
        Seconds between heartbeats.
    """

    def __init__(self, store: object, run_id: int, stale_after: float = 60.0, interval: float = 5.0) -> None:
        self.store = store
        self.run_id = run_id
        self.stale_after = stale_after
        self.interval = interval
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        host, pid, now = socket.gethostname(), os.getpid(), time.time()
        with self.store.write() as s:  # type: ignore[attr-defined]
            row = s.get(LeaseRow, self.run_id)
            if row is not None and row.owner != self.owner:
                age = now - row.heartbeat_at
                # a process that died on this host, or a lease this process left behind when interrupted
                dead = row.host == host and (not _alive(row.pid) or (row.pid == pid and row.owner not in _HELD))
                if age < self.stale_after and not dead:
                    if row.host == host:  # alive on this host: waiting would not help, its heartbeat goes on
                        raise RunLockedError(
                            f"run {self.run_id} is being written by process {row.pid} on {row.host}, which is "
                            f"alive (heartbeat {age:.0f} s ago); stop that process first")
                    raise RunLockedError(  # another host: this one cannot tell whether the holder lives
                        f"run {self.run_id} is being written by process {row.pid} on {row.host} (heartbeat "
                        f"{age:.0f} s ago); stop that process, or if it died, wait {self.stale_after - age:.0f} s "
                        "for its lease to go stale")
                s.delete(row)
                s.flush()
            if row is None or row.owner != self.owner:
                s.add(LeaseRow(run_id=self.run_id, owner=self.owner, host=host, pid=pid, acquired_at=utcnow(),
                               heartbeat_at=now))
        _HELD.add(self.owner)
        self._thread = threading.Thread(target=self._beat, name=f"al-loop-lease-{self.run_id}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self.store.write() as s:  # type: ignore[attr-defined]
                    row = s.get(LeaseRow, self.run_id)
                    if row is None or row.owner != self.owner:
                        return  # taken over: the main loop will fail on its next write check
                    row.heartbeat_at = time.time()
                    s.add(row)
            except Exception:  # a busy database: try again at the next beat
                continue

    def check(self) -> None:
        """Raise if another process took the lease over."""
        with self.store.read() as s:  # type: ignore[attr-defined]
            row = s.get(LeaseRow, self.run_id)
        if row is None or row.owner != self.owner:
            raise RunLockedError(f"run {self.run_id}: the write lease was taken over by another process; "
                                 "this process stops without writing")

    def release(self) -> None:
        _HELD.discard(self.owner)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 1)
        with self.store.write() as s:  # type: ignore[attr-defined]
            row = s.get(LeaseRow, self.run_id)
            if row is not None and row.owner == self.owner:
                s.delete(row)

    def __enter__(self) -> RunLease:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _HELD.discard(self.owner)
        if exc_type is not None and not issubclass(exc_type, Exception):
            # Ctrl-C or SIGTERM: the interrupted connection may still hold the write lock it had taken, so
            # writing the release would wait out busy_timeout; a lease whose process died on this host is
            # taken over at once by the next writer, so leave the row
            self._stop.set()
            return
        self.release()
