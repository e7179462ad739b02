"""Embeddings computed once per pool and encoder, in chunks, cached on disk and resumable.

Layout of the cache folder (:func:`cache_root`)::

    <root>/<key>/embeddings.npy   float32 (n, d), memory-mapped (np.lib.format.open_memmap)
    <root>/<key>/progress.json    {"n", "d", "done", "complete", "bad", ...}: the truth about the entry
    <root>/sources/<hash>.json    per source (folder or texts file) + encoder: the last key and inputs digest

``key = blake2b(inputs_digest, encoder.name, encoder.version())``. Rows
``0..done-1`` of ``embeddings.npy`` are final: a chunk's rows are flushed to
disk before ``progress.json`` (written to a temporary name, fsynced,
``os.replace``-d) says they are done, so an encode killed at any moment
(``kill -9``) resumes from its last finished chunk. A complete entry is read
without building the encoder's model: the cache calls only ``encoder.name``
and ``encoder.version()``, which are cheap by contract.

Row frame: item ``i`` of ``load`` is row ``i`` of the entry; items that could
not be read (``skip_bad``) keep a zero row in the file and are left out of the
matrix returned.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from al_loop.encode_progress import current_progress
from al_loop.encoders.base import Encoder
from al_loop.errors import ConfigError, DataError

ENTRY_FORMAT = 1


@dataclass(frozen=True)
class ItemFailure:
    """What ``load`` returns in place of an item it could not read.

    Attributes
    ----------
    path : str
        The item's file relative to its folder (or ``"row 12"`` of a texts file).
    reason : str
        Why, in a few words (``"cannot identify image file"``).
    """

    path: str
    reason: str


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``cache_dir``, else $AL_LOOP_CACHE_DIR, else $XDG_CACHE_HOME/al-loop/embeddings,
    else ~/.cache/al-loop/embeddings."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("AL_LOOP_CACHE_DIR"):
        return Path(os.environ["AL_LOOP_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "al-loop" / "embeddings"


def entry_key(inputs_digest: str, encoder: Encoder) -> str:
    """The cache key of ``encoder``'s embeddings of inputs with digest ``inputs_digest`` (24 hex digits)."""
    h = hashlib.blake2b(digest_size=12)
    for part in (inputs_digest, encoder.name, encoder.version()):
        h.update(part.encode("utf-8") + b"\x00")
    return h.hexdigest()


def _unwritable(root: Path, exc: OSError) -> ConfigError:
    return ConfigError(f"cannot write the embedding cache in {root} ({exc.strerror or exc}); free space there or set "
                       "AL_LOOP_CACHE_DIR to a writable folder")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically: a temporary file in the same folder, fsync, os.replace, fsync of the folder."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _display(source: str) -> str:
    p = Path(source)
    return p.name + "/" if p.is_dir() else p.name


def _note_source(root: Path, source: str | None, encoder: Encoder, inputs_digest: str, key: str,
                 log: Callable[[str], None] | None) -> None:
    """Remember ``source``'s last key; say so when its digest changed since."""
    if source is None:
        return
    ident = hashlib.blake2b(f"{source}\x00{encoder.name}".encode(), digest_size=12).hexdigest()
    record_path = root / "sources" / f"{ident}.json"
    old = _read_json(record_path)
    if old and old.get("key") == key:
        return
    if old and old.get("inputs_digest") and old["inputs_digest"] != inputs_digest and log is not None:
        log(f"{_display(source)} changed since its embeddings were cached (digest {old['inputs_digest'][:8]} -> "
            f"{inputs_digest[:8]}); encoding again")
    record_path.parent.mkdir(parents=True, exist_ok=True)
    _write_json(record_path, {"source": source, "encoder": encoder.name, "key": key, "inputs_digest": inputs_digest})


def _failure_error(encoder: Encoder, failure: ItemFailure) -> DataError:
    what = "image" if encoder.modality == "image" else "text"
    return DataError(f"cannot read {what} {failure.path} ({failure.reason}); fix or remove it, or pass --skip-bad")


def embed(encoder: Encoder, n: int, load: Callable[[int, int], Sequence[Any]], inputs_digest: str, *,
          cache_dir: str | os.PathLike[str] | None = None, chunk: int = 1024,
          progress: Callable[[int, int], None] | None = None, skip_bad: bool = False,
          log: Callable[[str], None] | None = None, source: str | None = None,
          ) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Embed ``n`` items through ``encoder``, once: later calls with the same inputs read the cache.

    Parameters
    ----------
    encoder : Encoder
        Built but not yet loaded: on a cache hit only ``name`` and ``version()`` are used.
    n : int
        Number of items.
    load : callable (i0, i1) -> sequence of length i1 - i0
        Items ``i0..i1-1`` ready for ``encoder.encode`` (RGB images or texts), or an
        :class:`ItemFailure` in place of one that cannot be read. It may raise DataError itself.
    inputs_digest : str
        Digest of everything the items are made of (:func:`al_loop.media.files_digest`).
    cache_dir : path, optional
        The cache folder (default: :func:`cache_root`).
    chunk : int
        Items per finished, recorded chunk (the unit of resume).
    progress : callable (done, total), optional
        Called after each chunk (and once at the start with the rows already done); None: the
        callback a caller up the stack set with :func:`al_loop.encode_progress.reporting_progress`
        (the CLI's bar), if any.
    skip_bad : bool
        Leave unreadable items out (returned in ``bad``) instead of raising DataError.
    log : callable (str), optional
        Gets one line when ``source``'s inputs changed since they were cached.
    source : str, optional
        The absolute folder or file the items come from (for that line).

    Returns
    -------
    matrix : ndarray of float32, shape (n - len(bad), d)
        Row ``j`` embeds the ``j``-th readable item (items in order); a read-only memory map
        of the cache file when nothing was skipped.
    bad : list of (str, str)
        The unreadable items (path, reason), in item order; the same list on a hit.

    Raises
    ------
    DataError
        An unreadable item without ``skip_bad``; no readable item at all.
    ConfigError
        The cache folder cannot be written (read-only, full): names AL_LOOP_CACHE_DIR.
    """
    if n <= 0:
        raise DataError("there are no items to embed; give at least one image or text")
    progress = current_progress(progress)
    root = cache_root(cache_dir)
    key = entry_key(inputs_digest, encoder)
    entry = root / key
    try:
        entry.mkdir(parents=True, exist_ok=True)
        _note_source(root, source, encoder, inputs_digest, key, log)
        with _entry_lock(entry):
            return _embed_entry(entry, encoder, n, load, key, chunk=max(1, int(chunk)), progress=progress,
                                skip_bad=skip_bad)
    except _NotTheCache as wrapped:
        raise wrapped.error from None
    except OSError as exc:
        raise _unwritable(root, exc) from None


class _NotTheCache(Exception):
    """Carries an error of ``load`` or of the encoder past the cache's own OSError handling."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


@contextlib.contextmanager
def _entry_lock(entry: Path) -> Iterator[None]:
    """One process encodes an entry at a time: a second one waits, then finds it complete (a hit)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): two encodes of one entry at once are not guarded
        yield
        return
    with open(entry / "lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _result(mm: np.ndarray, bad: list[list[Any]]) -> tuple[np.ndarray, list[tuple[str, str]]]:
    pairs = [(str(p), str(r)) for _, p, r in bad]
    if not bad:
        return mm, pairs
    keep = np.ones(len(mm), dtype=bool)
    keep[[int(i) for i, _, _ in bad]] = False
    return np.ascontiguousarray(mm[keep]), pairs


def _embed_entry(entry: Path, encoder: Encoder, n: int, load: Callable[[int, int], Sequence[Any]], key: str, *,
                 chunk: int, progress: Callable[[int, int], None] | None, skip_bad: bool,
                 ) -> tuple[np.ndarray, list[tuple[str, str]]]:
    state_path, data_path = entry / "progress.json", entry / "embeddings.npy"
    state = _read_json(state_path)
    if state is not None and (state.get("format") != ENTRY_FORMAT or state.get("n") != n):
        state = None  # an entry of another shape (foreign, or an older format): start over
    if state is not None and state.get("bad") and not skip_bad:
        # the same bytes cannot read better now (the key holds their digest)
        first = state["bad"][0]
        raise _failure_error(encoder, ItemFailure(str(first[1]), str(first[2])))
    if state is not None and state.get("complete") and data_path.exists():
        mm = np.load(data_path, mmap_mode="r")
        if progress is not None:
            progress(n, n)
        return _result(mm, state["bad"])
    done = int(state["done"]) if state is not None and state.get("d") and data_path.exists() else 0
    bad: list[list[Any]] = [b for b in state["bad"] if int(b[0]) < done] if state is not None and done else []
    d = int(state["d"]) if done else None
    mm: np.ndarray | None = np.lib.format.open_memmap(data_path, mode="r+") if done else None
    if mm is not None and mm.shape != (n, d):
        mm, done, bad, d = None, 0, [], None
    step = n if encoder.corpus_fitted else chunk
    if progress is not None:
        progress(done, n)
    while done < n:
        i1 = min(n, done + step)
        try:
            items = list(load(done, i1))
        except OSError as exc:
            raise _NotTheCache(exc) from exc
        if len(items) != i1 - done:
            raise DataError(f"the loader gave {len(items)} items for rows {done}..{i1 - 1}; expected {i1 - done}")
        good = [j for j, it in enumerate(items) if not isinstance(it, ItemFailure)]
        for j, it in enumerate(items):
            if isinstance(it, ItemFailure):
                if not skip_bad:
                    raise _failure_error(encoder, it)
                bad.append([done + j, it.path, it.reason])
        if good:
            try:
                rows = np.asarray(encoder.encode([items[j] for j in good]), dtype=np.float32)
            except OSError as exc:  # e.g. a weights file that cannot be read: the encoder's to name
                raise _NotTheCache(exc) from exc
            if rows.ndim != 2 or len(rows) != len(good):
                raise DataError(f"encoder {encoder.name} returned shape {rows.shape} for {len(good)} items; "
                                "an encoder returns (n, d)")
            if not np.isfinite(rows).all():
                raise DataError(f"encoder {encoder.name} returned NaN or Inf for rows {done}..{i1 - 1}; check "
                                "its weights and inputs")
            if mm is None:
                d = rows.shape[1]
                mm = np.lib.format.open_memmap(data_path, mode="w+", dtype=np.float32, shape=(n, d))
            mm[np.asarray(good) + done] = rows
            mm.flush()
        done = i1
        if mm is not None:
            _write_json(entry / "progress.json", {"format": ENTRY_FORMAT, "key": key, "encoder": encoder.name,
                                                  "n": n, "d": d, "done": done, "complete": done >= n,
                                                  "bad": bad})
        if progress is not None:
            progress(done, n)
    if mm is None:
        raise DataError(f"none of the {n} items could be read (first: {bad[0][1]}: {bad[0][2]}); fix the files")
    del mm
    return _result(np.load(data_path, mmap_mode="r"), bad)
