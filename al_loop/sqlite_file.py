"""Whether a file is a SQLite database, asked of SQLite itself (standard library only).

Why not read the 16-byte header with ``open()``: SQLite's locks are POSIX
advisory locks (``fcntl``), and closing *any* descriptor of a file drops every
such lock the process holds on it. A header check by ``open()``/``close()`` in
a process that already has the store open (``al-loop serve`` opens it more
than once; a test or a notebook holds a :class:`~al_loop.store.Store` and
calls the API) silently drops the locks of its open connections; another
process then sees the store unused, checkpoints and removes ``NAME-wal`` and
``NAME-shm`` under them, and their next query fails with ``disk I/O error``.
SQLite's own open shares the process's descriptor and lock table of the file
(it never closes a descriptor while the process holds locks on that file), so
asking SQLite is safe at any time.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote


def ro_uri(path: Path) -> str:
    """The ``file:`` URI that opens ``path`` read-only (characters such as ``?`` and ``#`` escaped)."""
    return f"file:{quote(str(Path(path).resolve()))}?mode=ro"


def is_sqlite_file(path: Path) -> bool:
    """False when ``path`` (an existing, non-empty file) is not a SQLite database; True otherwise.

    True also when SQLite cannot tell (the file is locked, or its WAL files
    cannot be opened): the caller's own open then reports that in its words.
    """
    try:
        con = sqlite3.connect(ro_uri(path), uri=True, timeout=1.0, isolation_level=None)
    except sqlite3.Error:
        return True
    try:
        con.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        return "not a database" not in str(exc)
    finally:
        con.close()
    return True
