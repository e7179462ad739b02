"""k-center greedy: brute force, 2-approximation, frames, pruning, cosine, contract."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from al_loop.errors import ConfigError, DataError
from strategies.kcenter import KCenterGreedy, k_center_greedy
from tests.contracts.strategy_contract import StrategyContract, digits_pool, make_context


def brute_kcenter(X: np.ndarray, centers: np.ndarray, k: int, dist=None) -> tuple[list[int], list[float]]:
    """O(N k) reference: recompute every point's nearest-center distance from scratch each step."""
    X = np.asarray(X, dtype=np.float64)
    if dist is None:
        def dist(a, b):
            return np.sqrt(((a - b) ** 2).sum(axis=-1))
    chosen = list(np.asarray(centers, dtype=np.int64).tolist())
    picks, scores = [], []
    for _ in range(k):
        best, best_d = -1, -np.inf
        for i in range(len(X)):
            if i in chosen:
                continue
            d = min((dist(X[i], X[c]) for c in chosen), default=np.inf)
            if d > best_d:  # strict: ties keep the smaller position
                best, best_d = i, d
        picks.append(best)
        scores.append(best_d)
        chosen.append(best)
    return picks, scores


int_points = st.integers(2, 25).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.integers(-3, 3), min_size=3, max_size=3), min_size=n, max_size=n),
    st.sets(st.integers(0, n - 1), max_size=4),
    st.integers(1, n),
    st.integers(1, 8),
))


@settings(max_examples=80, deadline=None)
@given(int_points)
def test_equals_brute_force_with_ties_by_position(case) -> None:
    """Integer grids make exact ties common; float32 arithmetic on them is exact."""
    pts, centers, k, groups = case
    X = np.array(pts, dtype=np.float64)
    centers = np.array(sorted(centers), dtype=np.int64)
    k_eff = min(k, len(X) - len(centers))
    ref, ref_s = brute_kcenter(X, centers, k_eff)
    for prune in (False, True):
        for dtype in ("float64", "float32"):
            got, got_s = k_center_greedy(X, centers, k, prune=prune, n_groups=groups, dtype=dtype)
            assert got.tolist() == ref, (prune, dtype)
            if centers.size:
                np.testing.assert_allclose(got_s, ref_s, rtol=1e-6)


def test_random_gaussian_equals_brute_force() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 7))
    centers = np.array([3, 50, 77])
    ref, ref_s = brute_kcenter(X, centers, 30)
    got, got_s = k_center_greedy(X, centers, 30)
    assert got.tolist() == ref
    np.testing.assert_allclose(got_s, ref_s, rtol=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(4, 9), st.integers(0, 2), st.integers(1, 3))
def test_covering_radius_at_most_twice_optimum(seed, n, n_lab, k) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    labeled = list(range(n_lab))
    k = min(k, n - n_lab)
    picks, _ = k_center_greedy(X, np.array(labeled, dtype=np.int64), k, dtype="float64")
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))

    def radius(centers: list[int]) -> float:
        return float(D[:, centers].min(axis=1).max())

    candidates = [i for i in range(n) if i not in labeled]
    opt = min(radius(labeled + list(S)) for S in itertools.combinations(candidates, k))
    assert radius(labeled + picks.tolist()) <= 2 * opt + 1e-12


def test_labeled_points_are_never_chosen_and_k_clamps() -> None:
    X = np.zeros((6, 2))  # all distances 0: the greedy has no geometric reason to avoid centers
    picks, scores = k_center_greedy(X, [1, 4], 100)
    assert sorted(picks.tolist()) == [0, 2, 3, 5]
    assert picks.tolist() == [0, 2, 3, 5]  # ties by position
    np.testing.assert_array_equal(scores, 0.0)
    assert k_center_greedy(X, np.arange(6), 3)[0].size == 0


def test_no_initial_center_starts_at_row_zero_with_a_finite_score() -> None:
    X = np.array([[0.0], [1.0], [5.0]])
    picks, scores = k_center_greedy(X, [], 3)
    assert picks.tolist() == [0, 2, 1]
    np.testing.assert_allclose(scores, [5.0, 5.0, 1.0])


@pytest.mark.parametrize("n_groups", [1, 7, 64, 500])
def test_pruned_identical_to_plain_on_clustered_data(n_groups) -> None:
    rng = np.random.default_rng(n_groups)
    means = rng.normal(size=(12, 16)) * 8
    X = (means[rng.integers(0, 12, 3000)] + rng.normal(size=(3000, 16))).astype(np.float32)
    centers = rng.choice(3000, 20, replace=False)
    a, sa = k_center_greedy(X, centers, 150)
    b, sb = k_center_greedy(X, centers, 150, prune=True, n_groups=n_groups)
    np.testing.assert_array_equal(a, b)
    # BLAS may round one row's dot product differently by its place in the matrix (last bit only)
    np.testing.assert_allclose(sa, sb, rtol=1e-5)


def _clustered(n: int, d: int, n_clusters: int, scale: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n_clusters, d)) * scale
    return (means[rng.integers(0, n_clusters, n)] + rng.normal(size=(n, d))).astype(np.float32)


def test_pruning_skips_rows_on_clustered_data(monkeypatch) -> None:
    """The bound must actually skip groups (else the identity test above proves nothing about the skips)."""
    from strategies import kcenter as mod

    monkeypatch.setattr(mod, "GROUP_OVERHEAD_BYTES", 0)  # visiting a group costs only its rows: the bound decides
    import torch

    Xt = torch.from_numpy(_clustered(4000, 8, 20, 50))
    state = mod._PrunedState(Xt, Xt.dtype, 64, mod.BLOCK_BYTES)
    for c in range(0, 4000, 400):
        state.add(c)
    read_before = state.rows_read
    state.add(5)
    assert state.rows_read - read_before < 4000 // 2
    assert state.whole_passes == 0


def test_pruned_visits_groups_when_that_reads_less() -> None:
    """At the default overhead, separated clusters of wide rows are pruned (few groups read per add)."""
    import torch

    from strategies import kcenter as mod

    n = 20_000
    Xt = torch.from_numpy(_clustered(n, 256, 20, 50))
    state = mod._PrunedState(Xt, Xt.dtype, 64, mod.BLOCK_BYTES)
    state.add_many(np.arange(0, n, 1000))
    read_before, passes_before = state.rows_read, state.whole_passes
    state.add(5)
    assert state.whole_passes == passes_before
    assert state.rows_read - read_before < n // 2


def test_pruned_falls_back_to_whole_passes_where_pruning_cannot_pay() -> None:
    """Small narrow rows (a group's overhead outweighs a pass) or unclustered data: whole passes, same picks."""
    import torch

    from strategies import kcenter as mod

    for X in (_clustered(4000, 8, 20, 50), np.random.default_rng(1).normal(size=(3000, 64)).astype(np.float32)):
        states: list = []
        orig = mod._PrunedState.__init__

        def spy(self, *a, orig=orig, states=states, **kw):
            orig(self, *a, **kw)
            states.append(self)
        mod._PrunedState.__init__ = spy
        try:
            b, _ = k_center_greedy(torch.from_numpy(X), np.arange(10), 40, prune=True, n_groups=64)
        finally:
            mod._PrunedState.__init__ = orig
        a, _ = k_center_greedy(X, np.arange(10), 40)
        np.testing.assert_array_equal(a, b)
        assert states[0].whole_passes == 40  # every greedy add was one pass over all rows


def test_labeled_centers_in_one_product_equal_one_pass_each() -> None:
    """sq_dist_min_many_ (the labeled centers at once) gives the distances of the per-center addmv loop."""
    import torch

    from strategies._geometry import MinSqDist

    X = torch.from_numpy(np.random.default_rng(4).normal(size=(500, 33)))
    centers = np.array([0, 7, 99, 250, 499])
    one, many = MinSqDist(X), MinSqDist(X)
    for c in centers:
        one.add(int(c))
    many.add_many(torch.from_numpy(centers), block_bytes=4096)  # several row blocks
    np.testing.assert_allclose(many.mind.numpy(), one.mind.numpy(), rtol=1e-12, atol=1e-12)
    assert many.mind[centers].abs().max() <= 1e-12


def test_cosine_metric_matches_direct_cosine_distance() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 5)) * rng.uniform(0.1, 10, size=(80, 1))  # norms differ: cosine != euclidean

    def cos_dist(a, b):
        return 1 - (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))

    ref, ref_s = brute_kcenter(X, np.array([0, 1]), 20, dist=cos_dist)
    got, got_s = k_center_greedy(X, [0, 1], 20, metric="cosine", dtype="float64")
    assert got.tolist() == ref
    np.testing.assert_allclose(got_s, ref_s, rtol=1e-7, atol=1e-12)
    eu, _ = k_center_greedy(X, [0, 1], 20, metric="euclidean", dtype="float64")
    assert eu.tolist() != got.tolist()


def test_half_storage_runs_and_mostly_agrees() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 32)).astype(np.float32)
    a, _ = k_center_greedy(X, [0], 100)
    b, _ = k_center_greedy(X, [0], 100, dtype="float16")
    assert len(set(a.tolist()) & set(b.tolist())) >= 50


def test_nan_raises_and_bad_input_is_named() -> None:
    X = np.ones((4, 2))
    X[2, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        k_center_greedy(X, [0], 2)
    with pytest.raises(DataError, match="positions"):
        k_center_greedy(np.ones((4, 2)), [7], 2)
    with pytest.raises(ConfigError, match="metric"):
        k_center_greedy(np.ones((4, 2)), [0], 2, metric="manhattan")
    with pytest.raises(DataError, match="all-zero"):
        k_center_greedy(np.zeros((4, 2)), [0], 2, metric="cosine")
    with pytest.raises(ConfigError, match="space"):
        KCenterGreedy(space="pixels")


class TestKCenter(StrategyContract):
    def make_strategy(self):
        return KCenterGreedy()

    def test_picks_equal_brute_force_in_global_ids(self, setup) -> None:
        pool, view, labeled = setup
        ctx = self.ctx(pool, labeled)
        ids = np.union1d(ctx.labeled_ids, ctx.unlabeled_ids)
        ref, _ = brute_kcenter(view.embed(ids), np.searchsorted(ids, ctx.labeled_ids), 8)
        sel = self.make_strategy().select(view, ctx, 8)
        assert sel.ids.tolist() == ids[ref].tolist()

    def test_features_space_needs_no_learner_capability(self) -> None:
        KCenterGreedy(space="features").check_learner(frozenset())


class TestKCenterPrunedCosine(StrategyContract):
    def make_strategy(self):
        return KCenterGreedy(prune=True, n_groups=8, metric="cosine")

    def test_same_as_plain(self, setup) -> None:
        pool, view, labeled = setup
        a = KCenterGreedy(metric="cosine").select(view, self.ctx(pool, labeled), 12)
        b = self.make_strategy().select(view, self.ctx(pool, labeled), 12)
        np.testing.assert_array_equal(a.ids, b.ids)


def test_strategy_with_no_labeled_ids() -> None:
    pool = digits_pool(50)
    from al_loop.view import ModelView

    ctx = make_context(pool, np.array([], dtype=np.int64))
    sel = KCenterGreedy(space="features").select(ModelView(pool, None), ctx, 5)
    assert sel.ids[0] == pool.ids[0] and np.isfinite(sel.scores).all()
