"""ProbCover: ball graph, greedy max coverage against brute force, the purity rule, the contract suite."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from al_loop.errors import ConfigError
from al_loop.pool import Pool
from al_loop.view import ModelView
from strategies import _embedding_space
from strategies.probcover import ProbCover, auto_delta, ball_graph, probcover_greedy, purity
from tests.contracts.strategy_contract import StrategyContract, make_context


def graph_from_edges(n: int, edges: list[tuple[int, int]]) -> sp.csr_matrix:
    """Symmetric graph with self-loops (every point is in its own ball)."""
    pairs = edges + [(b, a) for a, b in edges] + [(i, i) for i in range(n)]
    r, c = zip(*pairs, strict=True)
    return sp.csr_matrix((np.ones(len(r), dtype=bool), (r, c)), shape=(n, n))


def brute_greedy(graph: sp.csr_matrix, labeled: np.ndarray, budget: int) -> list[int]:
    dense = graph.toarray()
    covered = dense[labeled].any(axis=0) if labeled.any() else np.zeros(len(dense), dtype=bool)
    picks: list[int] = []
    for _ in range(budget):
        gains = [(-1 if labeled[i] or i in picks else int((dense[i] & ~covered).sum()), -i) for i in range(len(dense))]
        gain, neg_i = max(gains)
        if gain <= 0:
            break
        picks.append(-neg_i)
        covered |= dense[-neg_i]
    return picks


def test_ball_graph_matches_brute_force_and_is_strict() -> None:
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    g = ball_graph(X, 2.0).toarray()
    expected = np.linalg.norm(X[:, None] - X[None], axis=-1) < 2.0
    np.testing.assert_array_equal(g, expected)
    assert not g[0, 2]  # distance exactly delta: not an edge
    Y = np.random.default_rng(0).normal(size=(60, 4))
    np.testing.assert_array_equal(ball_graph(Y, 1.5).toarray(), np.linalg.norm(Y[:, None] - Y[None], axis=-1) < 1.5)


def test_ball_graph_is_built_in_blocks(monkeypatch) -> None:
    monkeypatch.setattr(_embedding_space, "BLOCK_ENTRIES", 37)  # many small blocks, same graph
    Y = np.random.default_rng(1).normal(size=(50, 3))
    np.testing.assert_array_equal(ball_graph(Y, 1.2).toarray(), np.linalg.norm(Y[:, None] - Y[None], axis=-1) < 1.2)


def test_hand_drawn_graph_greedy_steps() -> None:
    # 0 is a hub of {1,2,3}; 4-5-6-7 a path; 8 alone
    g = graph_from_edges(9, [(0, 1), (0, 2), (0, 3), (4, 5), (5, 6), (6, 7)])
    rows, gains = probcover_greedy(g, np.zeros(9, dtype=bool), 4)
    # 0 covers 4; 5 and 6 both cover 3 -> the smaller row 5; then 7 and 8 are left, one each:
    # 6 (covers 7), 7 (covers 7) and 8 tie at 1 -> 6; then 8
    assert rows.tolist() == [0, 5, 6, 8]
    assert gains.tolist() == [4.0, 3.0, 1.0, 1.0]
    assert rows.tolist() == brute_greedy(g, np.zeros(9, dtype=bool), 4)


def test_labeled_balls_count_as_covered_from_the_start() -> None:
    g = graph_from_edges(9, [(0, 1), (0, 2), (0, 3), (4, 5), (5, 6), (6, 7)])
    labeled = np.zeros(9, dtype=bool)
    labeled[1] = True  # covers 0 and 1: the hub now gains only {2, 3}
    rows, gains = probcover_greedy(g, labeled, 1)
    assert rows.tolist() == [5] and gains.tolist() == [3.0]
    assert brute_greedy(g, labeled, 1) == [5]


def test_stops_when_everything_is_covered() -> None:
    g = graph_from_edges(3, [(0, 1), (1, 2)])
    rows, gains = probcover_greedy(g, np.zeros(3, dtype=bool), 3)
    assert rows.tolist() == [1] and gains.tolist() == [3.0]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 12), data=st.data())
def test_greedy_equals_brute_force_on_random_graphs(n: int, data: st.DataObject) -> None:
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    edges = data.draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    labeled = np.asarray(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    budget = data.draw(st.integers(1, n))
    g = graph_from_edges(n, edges)
    rows, gains = probcover_greedy(g, labeled, budget)
    assert rows.tolist() == brute_greedy(g, labeled, budget)
    assert np.all(np.diff(gains) <= 0)  # submodular coverage: gains never rise


def test_auto_delta_is_the_largest_radius_with_purity_at_least_alpha() -> None:
    X = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    clusters = np.array([0, 0, 0, 1, 1])
    # distance to the nearest other-cluster point: 10, 9, 8, 8, 9
    assert auto_delta(X, clusters, alpha=1.0) == 8.0
    assert purity(X, clusters, 8.0) == 1.0 and purity(X, clusters, 8.0 + 1e-9) < 1.0
    assert auto_delta(X, clusters, alpha=0.6) == 9.0
    assert purity(X, clusters, 9.0) == 0.6 and purity(X, clusters, 9.0 + 1e-9) < 0.6


def line_pool() -> Pool:
    X = np.array([[0.0], [0.5], [1.0], [10.0], [10.5], [30.0]])
    return Pool(X=X, ids=np.array([70, 10, 50, 20, 40, 30]), classes=("a", "b"), y=np.array([0, 0, 0, 1, 1, 1]))


def test_class_maps_to_global_ids_breaks_ties_by_smaller_id_and_falls_back_to_random() -> None:
    pool = line_pool()
    view = ModelView(pool, None)
    sel = ProbCover(delta=0.75).select(view, make_context(pool, [], round_=1), 2)
    # balls (< 0.75): 0.5 (id 10) covers {0, 0.5, 1.0}; next 10.0 (id 20) and 10.5 (id 40) tie at 2 -> id 20
    assert sel.ids.tolist() == [10, 20] and sel.scores.tolist() == [3.0, 2.0]
    full = ProbCover(delta=0.75).select(view, make_context(pool, [], round_=1), 5)
    assert full.ids[:3].tolist() == [10, 20, 30] and full.info["random_fallback"] == 2
    assert full.scores[3:].tolist() == [0.0, 0.0]
    labeled = ProbCover(delta=0.75).select(view, make_context(pool, [70]), 1)
    assert labeled.ids.tolist() == [20]  # the ball of id 70 (0.0) covers 0 and 0.5: id 10 gains only 1.0's point


def test_bad_parameters_are_refused_with_the_fix() -> None:
    for bad in (0, -1.0, float("inf"), "big", True):
        with pytest.raises(ConfigError, match="delta"):
            ProbCover(delta=bad)
    with pytest.raises(ConfigError, match="alpha"):
        ProbCover(alpha=1.5)
    with pytest.raises(ConfigError, match="space"):
        ProbCover(space="pixels")


class TestProbCover(StrategyContract):
    def make_strategy(self):
        return ProbCover()

    def test_auto_delta_keeps_purity_and_is_reproducible(self, setup) -> None:
        pool, view, labeled = setup
        a = ProbCover(space="pca").select(view, self.ctx(pool, labeled, seed=4), 10)
        b = ProbCover(space="pca").select(view, self.ctx(pool, labeled, seed=4), 10)
        np.testing.assert_array_equal(a.ids, b.ids)
        assert a.info["delta"] > 0 and a.info["coverage_after"] >= a.info["coverage_before"]
        assert np.all(np.diff(a.scores) <= 0)


def blob_pool(seed: int = 0, n: int = 120) -> Pool:
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(0.0, 1.0, size=(n // 2, 3)), rng.normal(6.0, 1.0, size=(n - n // 2, 3))])
    return Pool(X=X, ids=np.arange(n) * 3 + 1, classes=("a", "b"), y=np.repeat([0, 1], [n // 2, n - n // 2]))


def test_auto_delta_is_a_function_of_the_points_and_is_computed_once_per_pool(monkeypatch) -> None:
    from strategies import probcover as pc

    pc._RADIUS_CACHE.clear()
    pc._GRAPH_CACHE.clear()
    calls = {"radius": 0, "graph": 0}
    real_radius, real_graph = pc.purity_radius, pc.ball_graph

    def counting_radius(*a, **k):
        calls["radius"] += 1
        return real_radius(*a, **k)

    def counting_graph(*a, **k):
        calls["graph"] += 1
        return real_graph(*a, **k)

    monkeypatch.setattr(pc, "purity_radius", counting_radius)
    monkeypatch.setattr(pc, "ball_graph", counting_graph)
    pool = blob_pool()
    view = ModelView(pool, None)
    deltas = [ProbCover(space="features").select(view, make_context(pool, pool.ids[:r], round_=r, seed=s), 5)
              .info["delta"] for r, s in [(1, 0), (2, 0), (3, 7)]]
    # the run seed and the round do not move delta (the paper fixes it before the first round) ...
    assert deltas[0] == deltas[1] == deltas[2]
    assert calls == {"radius": 1, "graph": 1}
    # ... and it equals an uncached computation on the same points
    assert deltas[0] == real_radius(np.asarray(pool.X, dtype=np.float64), 2, 0.95)
    other = blob_pool(seed=1)  # other points: a miss, a new radius and graph
    ProbCover(space="features").select(ModelView(other, None), make_context(other, []), 5)
    assert calls == {"radius": 2, "graph": 2}
    ProbCover(space="features", alpha=0.5).select(view, make_context(pool, []), 5)  # another alpha: another radius
    assert calls["radius"] == 3
    pc._RADIUS_CACHE.clear()
    pc._GRAPH_CACHE.clear()


def test_cached_graph_gives_the_same_selection_as_a_fresh_one() -> None:
    from strategies import probcover as pc

    pool = blob_pool(seed=2)
    view = ModelView(pool, None)
    pc._RADIUS_CACHE.clear()
    pc._GRAPH_CACHE.clear()
    first = ProbCover(space="features").select(view, make_context(pool, pool.ids[:4]), 8)
    again = ProbCover(space="features").select(view, make_context(pool, pool.ids[:4]), 8)  # from the caches
    pc._RADIUS_CACHE.clear()
    pc._GRAPH_CACHE.clear()
    fresh = ProbCover(space="features").select(view, make_context(pool, pool.ids[:4]), 8)
    np.testing.assert_array_equal(first.ids, again.ids)
    np.testing.assert_array_equal(first.ids, fresh.ids)
    assert first.info == again.info == fresh.info
