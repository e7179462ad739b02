"""Two-round (GreeDi) k-center and facility location against the single-machine greedy."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from al_loop.distributed import (
    DaskRunner,
    from_arrays,
    make_client,
    two_round_facility_location,
    two_round_kcenter,
)
from strategies.kcenter import k_center_greedy
from strategies.submodular import build_function, maximize
from tests.distributed.helpers import blobs, covering_radius


@pytest.fixture(scope="module")
def cluster1() -> Iterator[DaskRunner]:
    """``local:1``, for the 1-vs-2-workers comparison; always closed."""
    runner = make_client("local:1")
    try:
        yield runner
    finally:
        runner.close()


def instance(n: int, d: int, seed: int, n_labeled: int = 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features (n, d), non-contiguous shuffled global ids (n,), labeled ids (n_labeled,)."""
    X = blobs(n, d, centres=12, seed=seed)
    rng = np.random.default_rng(seed + 100)
    ids = 500 + 2 * rng.permutation(n).astype(np.int64)
    return X, ids, np.sort(rng.choice(ids, size=n_labeled, replace=False))


def single_machine_kcenter(X: np.ndarray, ids: np.ndarray, labeled: np.ndarray, k: int) -> np.ndarray:
    """Picks of the one-machine greedy, as row positions of ``X``."""
    pos_l = np.flatnonzero(np.isin(ids, labeled))
    picks, _ = k_center_greedy(X.astype(np.float64), pos_l, k)
    return picks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_round_kcenter_radius_within_twice_single_machine(cluster2: DaskRunner, seed: int) -> None:
    X, ids, labeled = instance(4000, 8, seed)
    k = 25
    cp = from_arrays(X, ids, ("x",), chunk_rows=700)
    sel = two_round_kcenter(cluster2, cp.X, cp.ids, k, np.random.default_rng([seed, 1]), labeled_ids=labeled,
                            exclude_ids=labeled, n_partitions=4)
    assert sel.ids.size == k and np.unique(sel.ids).size == k and not np.isin(sel.ids, labeled).any()
    assert sel.info["partitions"] == 4 and sum(sel.info["partial_sizes"]) == 4 * k
    pos_l = np.flatnonzero(np.isin(ids, labeled))
    pos_sel = np.flatnonzero(np.isin(ids, sel.ids))
    r_two = covering_radius(X, np.concatenate([pos_l, pos_sel]))
    r_one = covering_radius(X, np.concatenate([pos_l, single_machine_kcenter(X, ids, labeled, k)]))
    assert r_two <= 2.0 * r_one, (r_two, r_one)


def test_one_partition_equals_single_machine_kcenter(cluster2: DaskRunner) -> None:
    X, ids, labeled = instance(1500, 6, 7)
    cp = from_arrays(X, ids, ("x",), chunk_rows=400)
    sel = two_round_kcenter(cluster2, cp.X, cp.ids, 12, np.random.default_rng(0), labeled_ids=labeled,
                            exclude_ids=labeled, n_partitions=1, dtype="float64")
    order = np.argsort(ids)  # the single-machine strategy works on rows sorted by id
    Xs, ids_s = X[order], ids[order]
    picks, scores = k_center_greedy(Xs, np.searchsorted(ids_s, labeled), 12)
    np.testing.assert_array_equal(sel.ids, ids_s[picks])
    np.testing.assert_allclose(sel.scores, scores, rtol=1e-9)


def fl_objective(X: np.ndarray, labeled_pos: np.ndarray, picks: np.ndarray) -> float:
    """``f(A | L)`` of facility location (cosine, clipped) over every row of ``X``."""
    f = build_function("fl", X, kernel="dense", preselect=labeled_pos)
    return f.evaluate(picks)


@pytest.mark.parametrize("seed", [0, 1])
def test_two_round_facility_location_keeps_90_percent_of_the_objective(cluster2: DaskRunner, seed: int) -> None:
    X, ids, labeled = instance(3000, 16, seed)
    X = X + 2.0  # off the origin, so cosine similarity separates the clusters like an embedding does
    k = 20
    pos_l = np.flatnonzero(np.isin(ids, labeled))
    f = build_function("fl", X, kernel="dense", preselect=pos_l)
    one = maximize(f, k, "lazy")
    cp = from_arrays(X, ids, ("x",), chunk_rows=500)
    sel = two_round_facility_location(cluster2, cp.X, cp.ids, k, np.random.default_rng([seed, 2]),
                                      labeled_ids=labeled, exclude_ids=labeled, n_partitions=4, sample_size=1000)
    assert sel.ids.size == k and not np.isin(sel.ids, labeled).any()
    two = fl_objective(X, pos_l, np.flatnonzero(np.isin(ids, sel.ids)))
    assert two >= 0.9 * fl_objective(X, pos_l, one.positions), (two, one.value)


def test_selection_is_identical_with_one_and_two_workers(cluster1: DaskRunner, cluster2: DaskRunner) -> None:
    X, ids, labeled = instance(2500, 8, 11)
    cp = from_arrays(X, ids, ("x",), chunk_rows=300)
    results = []
    for runner in (cluster1, cluster2):
        assert runner.n_workers in (1, 2)
        kc = two_round_kcenter(runner, cp.X, cp.ids, 15, np.random.default_rng(42), labeled_ids=labeled,
                               exclude_ids=labeled, n_partitions=5)
        fl = two_round_facility_location(runner, cp.X, cp.ids, 15, np.random.default_rng(42), labeled_ids=labeled,
                                         exclude_ids=labeled, n_partitions=5, metric="rbf", sample_size=500)
        results.append((kc, fl))
    (kc1, fl1), (kc2, fl2) = results
    np.testing.assert_array_equal(kc1.ids, kc2.ids)
    np.testing.assert_array_equal(kc1.scores, kc2.scores)
    np.testing.assert_array_equal(fl1.ids, fl2.ids)
    np.testing.assert_array_equal(fl1.scores, fl2.scores)


def test_partitioning_follows_the_seed(cluster2: DaskRunner) -> None:
    X, ids, labeled = instance(2000, 4, 3)
    cp = from_arrays(X, ids, ("x",), chunk_rows=500)
    a = two_round_kcenter(cluster2, cp.X, cp.ids, 10, np.random.default_rng(1), labeled, labeled, n_partitions=4)
    b = two_round_kcenter(cluster2, cp.X, cp.ids, 10, np.random.default_rng(1), labeled, labeled, n_partitions=4)
    np.testing.assert_array_equal(a.ids, b.ids)
