"""Chunked pool scoring and the exact top-b tree: the cluster answers what one machine answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from al_loop.distributed import (
    DaskRunner,
    embed_array,
    from_pool,
    learner_in_graph,
    proba_array,
    synthetic_pool,
    top_k_tree,
    uncertainty_top_k,
)
from al_loop.distributed._deps import da
from al_loop.errors import DataError
from al_loop.learners import SklearnLearner
from al_loop.pool import Pool
from al_loop.registry import STRATEGIES
from al_loop.strategy import top_k
from al_loop.types import QueryContext
from al_loop.view import ModelView
from tests.contracts.strategy_contract import digits_pool, make_context
from tests.distributed.helpers import LinearSoftmax, TableLearner

MEASURES = ("entropy", "margin", "least_confidence")


def tie_pool(n: int = 503, levels: int = 6, seed: int = 0) -> tuple[Pool, TableLearner]:
    """Rows whose column 0 is one of a few levels; ids shuffled and non-contiguous, so ties span chunks."""
    rng = np.random.default_rng(seed)
    level = rng.integers(0, levels, size=n)
    X = np.column_stack([level.astype(np.float64), rng.normal(size=n)])
    ids = 10_000 + 3 * rng.permutation(n).astype(np.int64)
    table = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.4, 0.3, 0.3], [1 / 3, 1 / 3, 1 / 3],
                      [0.6, 0.2, 0.2], [0.5, 0.25, 0.25]])[:levels]
    return Pool(X=X, ids=ids, classes=("a", "b", "c")), TableLearner(table)


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("budget", [1, 7, 60, 200])
def test_top_b_with_constructed_ties_equals_one_machine(cluster2: DaskRunner, measure: str, budget: int) -> None:
    pool, learner = tie_pool()
    labeled = pool.ids[:40]
    ctx = make_context_plain(pool, labeled)
    expected = STRATEGIES.get(measure)().select(ModelView(pool, learner), ctx, budget)
    exclude = np.setdiff1d(pool.ids, ctx.unlabeled_ids)
    got = uncertainty_top_k(cluster2, from_pool(pool, chunk_rows=41), learner, measure, budget, exclude)
    np.testing.assert_array_equal(got.ids, expected.ids)
    np.testing.assert_array_equal(got.scores, expected.scores)
    # the batch really cuts through a tie group, and the tie goes to the smaller ids
    cut = got.scores[-1]
    tied = np.setdiff1d(ctx.unlabeled_ids, got.ids)
    tied_scores = STRATEGIES.get(measure)().select(ModelView(pool, learner), ctx, len(ctx.unlabeled_ids))
    losers = tied_scores.ids[tied_scores.scores == cut]
    losers = np.intersect1d(losers, tied)
    if losers.size:
        assert got.ids[got.scores == cut].max() < losers.min()


def make_context_plain(pool: Pool, labeled: np.ndarray) -> QueryContext:
    """A round-1 context for a pool without hidden labels."""
    labeled = np.sort(labeled)
    return QueryContext(round=1, seed=0, labeled_ids=labeled, labels=np.zeros(len(labeled), np.int64),
                        unlabeled_ids=np.setdiff1d(pool.ids, labeled), classes=pool.classes,
                        rng=np.random.default_rng([0, 1]))


@pytest.mark.parametrize("measure", MEASURES)
def test_logistic_regression_top_b_equals_one_machine(cluster2: DaskRunner, measure: str) -> None:
    pool = digits_pool(300)
    labeled = pool.ids[::10]
    learner = SklearnLearner(LogisticRegression(max_iter=300))
    learner.fit(pool, labeled, pool.hidden_labels(labeled), seed=0)
    ctx = make_context(pool, labeled)
    expected = STRATEGIES.get(measure)().select(ModelView(pool, learner), ctx, 15)
    got = uncertainty_top_k(cluster2, from_pool(pool, chunk_rows=64), learner, measure, 15,
                            np.setdiff1d(pool.ids, ctx.unlabeled_ids))
    np.testing.assert_array_equal(got.ids, expected.ids)
    np.testing.assert_allclose(got.scores, expected.scores, rtol=0, atol=1e-12)


@pytest.mark.parametrize("split_every", [2, 3, 16])
def test_tree_reduction_matches_top_k_for_any_fan_in(sync_runner: DaskRunner, split_every: int) -> None:
    rng = np.random.default_rng(3)
    ids = rng.permutation(1000).astype(np.int64) * 5
    scores = np.round(rng.random(1000), 1)  # 11 distinct values: many ties
    got_ids, got_scores = sync_runner.compute(top_k_tree(da.from_array(ids, chunks=37),
                                                         da.from_array(scores, chunks=37), 120,
                                                         split_every=split_every))
    ref = top_k(ids, scores, 120)
    np.testing.assert_array_equal(got_ids, ref.ids)
    np.testing.assert_array_equal(got_scores, ref.scores)


def test_sync_and_cluster_agree_on_a_synthetic_pool(cluster2: DaskRunner, sync_runner: DaskRunner) -> None:
    pool = synthetic_pool(20_000, 8, n_classes=4, chunk_rows=3000, seed=5)
    linear = LinearSoftmax(np.random.default_rng(0).normal(size=(8, 4)))
    a = uncertainty_top_k(cluster2, pool, linear, "entropy", 50, exclude_ids=np.arange(0, 20_000, 7))
    b = uncertainty_top_k(sync_runner, pool, linear, "entropy", 50, exclude_ids=np.arange(0, 20_000, 7))
    np.testing.assert_array_equal(a.ids, b.ids)
    assert not np.isin(a.ids, np.arange(0, 20_000, 7)).any()


def test_probabilities_and_embeddings_are_row_aligned(cluster2: DaskRunner) -> None:
    pool = digits_pool(200)
    learner = SklearnLearner(LogisticRegression(max_iter=300))
    learner.fit(pool, pool.ids[::5], pool.hidden_labels(pool.ids[::5]), seed=0)
    cp = from_pool(pool, chunk_rows=33)
    model = learner_in_graph(learner)
    P, E = cluster2.compute(proba_array(cp, model), embed_array(cp, model, 64))
    np.testing.assert_allclose(P, learner.predict_proba(pool, pool.ids), atol=1e-12)
    np.testing.assert_array_equal(E, learner.embed(pool, pool.ids))
    # the learner is one key of the graph, shared by every chunk task
    graph = dict(proba_array(cp, model).__dask_graph__())
    assert sum(1 for k in graph if "al-loop-learner" in str(k)) == 1


def test_nan_probabilities_raise_a_data_error_in_the_driver(cluster2: DaskRunner) -> None:
    pool, _ = tie_pool(60)
    bad = TableLearner(np.array([[np.nan, 0.5, 0.5]] * 6))
    with pytest.raises(DataError, match="NaN or Inf probabilities"):
        uncertainty_top_k(cluster2, from_pool(pool, chunk_rows=20), bad, "entropy", 5)
