"""Two helpers for the call sites in :mod:`al_loop.api` / :mod:`al_loop.cli`; Dask is imported only when used.

>>> with cluster_session(cluster) as runner:          # cluster: str | None (the --cluster value)
...     strategy = maybe_distribute(strategy, runner)  # unchanged when runner is None
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from al_loop.distributed.client import DaskRunner
    from al_loop.strategy import Strategy


@contextmanager
def cluster_session(spec: str | None) -> Iterator[DaskRunner | None]:
    """Yield a :class:`DaskRunner` for ``spec`` (closed on exit), or None when ``spec`` is None/empty.

    Raises a one-line ConfigError for a bad spec or a missing Dask install.
    """
    if not spec:
        yield None
        return
    from al_loop.distributed.client import make_client

    with make_client(spec) as runner:
        yield runner


def maybe_distribute(strategy: Strategy, runner: DaskRunner | None, **options: Any) -> Strategy:
    """``strategy`` wrapped in :class:`~al_loop.distributed.strategy.DistributedSelection`, or as is without a runner."""
    if runner is None:
        return strategy
    from al_loop.distributed.strategy import distribute

    return distribute(strategy, runner, **options)
