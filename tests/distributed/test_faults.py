"""A worker process dies in the middle of a computation: the scheduler reruns its tasks, the answer is unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from al_loop.distributed import DaskRunner, from_pool, make_client, uncertainty_top_k
from al_loop.learners import SklearnLearner
from tests.contracts.strategy_contract import digits_pool
from tests.distributed.helpers import DieOnceLearner


@pytest.fixture(scope="module")
def fragile_cluster() -> Iterator[DaskRunner]:
    """A ``local:2`` of its own: one of its workers is killed (and restarted by its nanny)."""
    runner = make_client("local:2")
    try:
        yield runner
    finally:
        runner.close()


def test_worker_killed_mid_computation_leaves_the_result_unchanged(fragile_cluster: DaskRunner,
                                                                   sync_runner: DaskRunner, tmp_path: Path) -> None:
    pool = digits_pool(300)
    labeled = pool.ids[::10]
    inner = SklearnLearner(LogisticRegression(max_iter=300))
    inner.fit(pool, labeled, pool.hidden_labels(labeled), seed=0)
    cp = from_pool(pool, chunk_rows=30)
    expected = uncertainty_top_k(sync_runner, cp, inner, "margin", 20, labeled)

    marker = tmp_path / "worker-killed"
    trigger = int(pool.ids[155])  # a chunk in the middle of the pool
    fragile = DieOnceLearner(inner, trigger, str(marker))
    got = uncertainty_top_k(fragile_cluster, cp, fragile, "margin", 20, labeled)

    assert marker.exists(), "the worker was not killed: the test did not test anything"
    np.testing.assert_array_equal(got.ids, expected.ids)
    np.testing.assert_array_equal(got.scores, expected.scores)
