"""Where an encode reports its progress, without the API printing anything.

The embedding cache (:func:`al_loop.encoders.cache.embed`) calls
``progress(done, total)`` after each chunk. Its callers (dataset loaders,
``api.build_pool``) take no progress argument: a pool is built from a
:class:`~al_loop.config.RunConfig` alone, and a callable is not part of a
dataset's parameters. So the one who shows progress (the CLI) sets a callback
for the duration of a command with :func:`reporting_progress`, and ``embed``
falls back to :func:`current_progress` when it was given none. A
:class:`contextvars.ContextVar` keeps the callback to the block that set it
(threads and other tasks see none). Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

ProgressCallback = Callable[[int, int], None]

_PROGRESS: ContextVar[ProgressCallback | None] = ContextVar("al_loop_encode_progress", default=None)


@contextmanager
def reporting_progress(callback: ProgressCallback | None) -> Iterator[None]:
    """Send the progress of every encode in the block to ``callback(done, total)`` (items, not chunks)."""
    token = _PROGRESS.set(callback)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def current_progress(explicit: ProgressCallback | None = None) -> ProgressCallback | None:
    """``explicit`` when given, else the callback of the enclosing :func:`reporting_progress` (or None)."""
    return explicit if explicit is not None else _PROGRESS.get()
