"""Fixtures of the distributed tests: a LocalCluster of 2 worker processes on 127.0.0.1, per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("distributed", reason="install al-loop[dask] to run the distributed tests")

from al_loop.distributed import DaskRunner, make_client  # noqa: E402


@pytest.fixture(scope="module")
def cluster2() -> Iterator[DaskRunner]:
    """``local:2``: two worker processes, one thread each; always closed."""
    runner = make_client("local:2")
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture(scope="module")
def sync_runner() -> Iterator[DaskRunner]:
    with make_client("sync") as runner:
        yield runner
