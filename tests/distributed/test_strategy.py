"""DistributedSelection inside the loop: same batches as one machine, through the real controller."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from al_loop import api
from al_loop.controller import Controller
from al_loop.distributed import DaskRunner, DistributedSelection, maybe_distribute
from al_loop.learners import SklearnLearner
from al_loop.pool import Pool
from al_loop.registry import STRATEGIES
from al_loop.store import Store
from al_loop.view import ModelView
from tests.contracts.strategy_contract import digits_pool, make_context


def fitted(pool: Pool, labeled: np.ndarray) -> SklearnLearner:
    """Logistic regression fitted on ``labeled`` (global ids)."""
    learner = SklearnLearner(LogisticRegression(max_iter=300))
    learner.fit(pool, labeled, pool.hidden_labels(labeled), seed=0)
    return learner


@pytest.mark.parametrize(("name", "params"), [
    ("entropy", {}), ("margin", {}), ("least_confidence", {}),
    ("kcenter", {"space": "embed"}), ("kcenter", {"space": "features", "metric": "cosine"}),
    ("fass", {"beta": 3.0}),
])
def test_wrapped_strategy_selects_what_the_single_machine_strategy_selects(cluster2: DaskRunner, name: str,
                                                                           params: dict) -> None:
    pool = digits_pool(300)
    labeled = pool.ids[::12]
    learner = fitted(pool, labeled)
    strategy = STRATEGIES.get(name)(**params)
    expected = strategy.select(ModelView(pool, learner), make_context(pool, labeled), 12)
    # pools up to partition_rows are one partition: two-round k-center is then the one-machine greedy
    wrapped = DistributedSelection(strategy, cluster2, chunk_rows=50)
    got = wrapped.select(ModelView(pool, learner), make_context(pool, labeled), 12)
    np.testing.assert_array_equal(got.ids, expected.ids)
    np.testing.assert_allclose(got.scores, expected.scores, rtol=1e-6, atol=1e-9)
    assert got.info["distributed"] is True
    assert wrapped.params() == strategy.params()


def test_kcenter_with_partitions_stays_in_the_unlabeled_pool(cluster2: DaskRunner) -> None:
    pool = digits_pool(300)
    labeled = pool.ids[::12]
    wrapped = DistributedSelection(STRATEGIES.get("kcenter")(space="features"), cluster2, chunk_rows=50,
                                   n_partitions=3)
    ctx = make_context(pool, labeled)
    sel = wrapped.select(ModelView(pool, fitted(pool, labeled)), ctx, 10)
    assert sel.info["partitions"] == 3
    assert np.isin(sel.ids, ctx.unlabeled_ids).all()


@pytest.mark.parametrize("strategy", ["entropy", "kcenter"])
def test_controller_run_through_the_cluster_matches_the_local_run(cluster2: DaskRunner, tmp_path: Path,
                                                                  strategy: str) -> None:
    config = api.plan_simulation("digits", [strategy], seeds=[0], rounds=3, batch=5, init=20)[0]
    selections = []
    for runner in (None, cluster2):
        store = Store(str(tmp_path / f"{strategy}-{runner is not None}.sqlite"))
        try:
            run_id = store.create_run(config)
            pool = api.build_pool(config)
            learner = api.build_learner(config.learner, pool)
            chosen = maybe_distribute(api.build_strategy(config.strategy, config.strategy_params), runner)
            api.validate(config, pool, learner, chosen)
            Controller(store, run_id, pool, learner, chosen, api.build_oracle(config, pool)).run()
            selections.append([(r.round, r.pool_id, r.rank) for r in store.selections(run_id)])
            assert store.run(run_id).status == "finished"
        finally:
            store.close()
    assert selections[0] == selections[1]
