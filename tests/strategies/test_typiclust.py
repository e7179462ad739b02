"""TypiClust: typicality by hand, the paper's pick on three blobs, the contract suite."""

from __future__ import annotations

import numpy as np
import pytest

from al_loop.errors import ConfigError
from al_loop.pool import Pool
from al_loop.view import ModelView
from strategies.typiclust import TypiClust, typicality, typiclust_pick
from tests.contracts.strategy_contract import StrategyContract, make_context


def brute_typicality(X: np.ndarray, k: int) -> np.ndarray:
    out = []
    for i, x in enumerate(X):
        d = sorted(float(np.linalg.norm(x - y)) for j, y in enumerate(X) if j != i)
        out.append(1.0 / np.mean(d[:k]))
    return np.asarray(out)


def test_typicality_by_hand() -> None:
    X = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    # K=1: nearest other point; K=2: mean of both others
    np.testing.assert_allclose(typicality(X, 1), [1.0, 1.0, 1 / 2])
    np.testing.assert_allclose(typicality(X, 2), [1 / 2, 1 / 1.5, 1 / 2.5])
    np.testing.assert_allclose(typicality(X, 20), typicality(X, 2))  # K clipped to cluster size - 1
    assert typicality(X[:1], 20).tolist() == [0.0]  # a lone point has no neighbours


def test_typicality_matches_brute_force() -> None:
    X = np.random.default_rng(0).normal(size=(40, 3))
    np.testing.assert_allclose(typicality(X, 5), brute_typicality(X, 5))


def three_blobs() -> tuple[np.ndarray, np.ndarray]:
    """Blobs of 50, 30 and 20 points far apart; each has a known densest point (a tight core)."""
    rng = np.random.default_rng(1)
    blobs, owner = [], []
    for b, (centre, size) in enumerate(((0.0, 50), (100.0, 30), (200.0, 20))):
        pts = centre + rng.uniform(-3, 3, size=(size, 2))
        pts[:6] = centre + rng.uniform(-0.05, 0.05, size=(6, 2))  # the dense core
        blobs.append(pts)
        owner += [b] * size
    return np.concatenate(blobs), np.asarray(owner)


def test_pick_goes_to_the_largest_uncovered_cluster_and_its_most_typical_point() -> None:
    X, owner = three_blobs()
    labeled = np.zeros(len(X), dtype=bool)
    labeled[10] = True  # blob 0 (the largest) is covered
    rows, typ, clusters = typiclust_pick(X, owner, labeled, budget=2, k_neighbours=20)
    assert clusters.tolist() == [1, 2]  # the larger uncovered blob first
    for row, blob in zip(rows, (1, 2), strict=True):
        members = np.flatnonzero(owner == blob)
        expected = members[np.argmax(brute_typicality(X[members], min(20, len(members) - 1)))]
        assert row == expected
        assert row in members[:6]  # inside the dense core


def test_class_clusters_pool_into_labeled_plus_budget_and_picks_the_blob_cores() -> None:
    X, owner = three_blobs()
    ids = 500 + 3 * np.arange(len(X), dtype=np.int64)
    pool = Pool(X=X, ids=ids, classes=("a", "b", "c"), y=owner)
    ctx = make_context(pool, ids[[10]])  # |L| + B = 3 clusters = the three blobs
    sel = TypiClust(space="features").select(ModelView(pool, None), ctx, 2)
    rows = pool.rows(sel.ids)
    assert owner[rows].tolist() == [1, 2]
    assert all(r in np.flatnonzero(owner == owner[r])[:6] for r in rows)
    assert sel.info["n_clusters"] == 3 and sel.info["picks_from_uncovered_clusters"] == 2


def test_budget_beyond_uncovered_clusters_revisits_fewest_labeled_first() -> None:
    X, owner = three_blobs()
    labeled = np.zeros(len(X), dtype=bool)
    labeled[[10, 11]] = True  # blob 0 has two labels
    labeled[60] = True  # blob 1 has one
    rows, _, clusters = typiclust_pick(X, owner, labeled, budget=4)
    assert clusters.tolist() == [2, 1, 0, 2]  # uncovered; then fewest labeled; cycle again
    assert len(set(rows.tolist())) == 4 and not labeled[rows].any()


def test_small_clusters_come_last() -> None:
    X, owner = three_blobs()
    clusters = owner.copy()
    clusters[99] = 7  # a lone outlier cluster, uncovered
    rows, _, picked = typiclust_pick(X, clusters, np.zeros(len(X), dtype=bool), budget=4, min_cluster_size=5)
    assert picked.tolist() == [0, 1, 2, 7]


def test_bad_parameters_are_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="space"):
        TypiClust(space="pixels")
    with pytest.raises(ConfigError, match="k_neighbours"):
        TypiClust(k_neighbours=0)
    with pytest.raises(ConfigError, match="embed"):
        TypiClust(space="embed").check_learner(frozenset({"proba"}))


class TestTypiClust(StrategyContract):
    def make_strategy(self):
        return TypiClust()

    def test_same_seed_same_selection_in_pca_space(self, setup) -> None:
        pool, view, labeled = setup
        a = TypiClust(space="pca").select(view, self.ctx(pool, labeled, seed=5), 10)
        b = TypiClust(space="pca").select(view, self.ctx(pool, labeled, seed=5), 10)
        np.testing.assert_array_equal(a.ids, b.ids)

    def test_embed_space_runs(self, setup) -> None:
        pool, view, labeled = setup
        sel = TypiClust(space="embed").select(view, self.ctx(pool, labeled), 5)
        assert len(sel.ids) == 5
