"""Whether a file is a SQLite database, without dropping this process's locks on it (standard library only).

SQLite's locks are POSIX advisory locks (``fcntl``), and closing *any*
descriptor of a file drops every such lock the process holds on it. A header
check by ``open()``/``close()`` in a process that already has the store open
(``al-loop serve`` opens it more than once; a test or a notebook holds a
:class:`~al_loop.store.Store` and calls the API) silently dropped the locks of
its open connections; another process then saw the store unused, checkpointed
and removed ``NAME-wal`` and ``NAME-shm`` under them, and their next query
failed with ``disk I/O error``. So the header is read only while no store of
that file is open in this process (:func:`opened` / :func:`closed` count them);
an open one is SQLite already. Asking SQLite instead (a read-only connection)
would create ``-wal``/``-shm`` beside a read-only store, which the read-only
checks must not do.
"""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import quote

SQLITE_MAGIC = b"SQLite format 3\x00"
_open: dict[str, int] = {}
_guard = threading.Lock()


def _key(path: Path) -> str:
    return str(Path(path).resolve())


def opened(path: Path) -> None:
    """A store of ``path`` is open in this process (until :func:`closed`)."""
    with _guard:
        _open[_key(path)] = _open.get(_key(path), 0) + 1


def closed(path: Path) -> None:
    with _guard:
        left = _open.get(_key(path), 0) - 1
        if left > 0:
            _open[_key(path)] = left
        else:
            _open.pop(_key(path), None)


def ro_uri(path: Path) -> str:
    """The ``file:`` URI that opens ``path`` read-only (characters such as ``?`` and ``#`` escaped)."""
    return f"file:{quote(str(Path(path).resolve()))}?mode=ro"


def is_sqlite_file(path: Path) -> bool:
    """Whether ``path`` (an existing file) starts with SQLite's header; True while a store of it is open here."""
    with _guard:
        if _open.get(_key(path)):
            return True
        with open(path, "rb") as fh:  # no connection of this process has it open: no lock to drop
            return fh.read(16) == SQLITE_MAGIC
