"""Property tests of every set function: f(empty) = 0, gains, memo, monotonicity, diminishing returns."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.submodular import maximize
from tests.strategies.submodular.helpers import ALL, MONOTONE_SUBMODULAR, SUBMODULAR, instance

seeds = st.integers(0, 2**31 - 1)
subsets = st.lists(st.integers(0, 8), max_size=5, unique=True)
kernels = st.sampled_from(["dense", "sparse"])


@pytest.mark.parametrize("name", ALL)
@settings(max_examples=15, deadline=None)
@given(seed=seeds, kernel=kernels)
def test_empty_set_is_zero(name, seed, kernel) -> None:
    assert instance(name, seed, kernel=kernel).evaluate([]) == 0.0


@pytest.mark.parametrize("name", ALL)
@settings(max_examples=15, deadline=None)
@given(seed=seeds, A=subsets, kernel=kernels)
def test_memoised_gain_equals_difference_of_closed_forms(name, seed, A, kernel) -> None:
    f = instance(name, seed, kernel=kernel)
    for e in A:
        f.add(e)
    rest = np.setdiff1d(np.arange(f.n), A)
    memo = f.gain(rest)
    naive = np.array([f.evaluate(list(A) + [int(e)]) - f.evaluate(A) for e in rest])
    np.testing.assert_allclose(memo, naive, rtol=1e-5, atol=1e-5)
    assert f.value == pytest.approx(f.evaluate(A), rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("name", ALL)
@settings(max_examples=10, deadline=None)
@given(seed=seeds, A=subsets)
def test_batched_gain_equals_one_at_a_time(name, seed, A) -> None:
    f = instance(name, seed)
    for e in A:
        f.add(e)
    rest = np.setdiff1d(np.arange(f.n), A)
    one = np.array([f.gain(np.array([e]))[0] for e in rest])
    np.testing.assert_allclose(f.gain(rest), one, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", MONOTONE_SUBMODULAR)
@settings(max_examples=15, deadline=None)
@given(seed=seeds, A=subsets, kernel=kernels)
def test_monotone(name, seed, A, kernel) -> None:
    f = instance(name, seed, kernel=kernel)
    for e in A:
        f.add(e)
    assert (f.gain(np.setdiff1d(np.arange(f.n), A)) >= -1e-6).all()


@pytest.mark.parametrize("name", SUBMODULAR)
@settings(max_examples=15, deadline=None)
@given(seed=seeds, A=subsets, extra=subsets, kernel=kernels)
def test_diminishing_returns(name, seed, A, extra, kernel) -> None:
    """gain(e | A) >= gain(e | B) for A subset of B."""
    f = instance(name, seed, kernel=kernel)
    B = sorted(set(A) | set(extra))
    rest = np.setdiff1d(np.arange(f.n), B)
    if rest.size == 0:
        return
    gA = np.array([f.evaluate(A + [int(e)]) - f.evaluate(A) for e in rest])
    gB = np.array([f.evaluate(B + [int(e)]) - f.evaluate(B) for e in rest])
    assert (gA >= gB - 1e-5).all()


def test_log_det_mi_is_not_always_submodular_so_it_is_flagged() -> None:
    assert not instance("logdetmi", 0).submodular
    assert instance("logdetcg", 0).submodular


@pytest.mark.parametrize("name", MONOTONE_SUBMODULAR)
@settings(max_examples=10, deadline=None)
@given(seed=seeds, k=st.integers(1, 4))
def test_greedy_reaches_1_minus_1_over_e_of_the_optimum(name, seed, k) -> None:
    f = instance(name, seed, n=8)
    opt = max(f.evaluate(c) for c in itertools.combinations(range(8), k))
    for method in ("naive", "lazy"):
        assert maximize(f, k, method).value >= (1 - 1 / np.e) * opt - 1e-6


@pytest.mark.parametrize("name", SUBMODULAR)
@settings(max_examples=15, deadline=None)
@given(seed=seeds, k=st.integers(1, 9), kernel=kernels)
def test_lazy_picks_exactly_what_naive_picks(name, seed, k, kernel) -> None:
    f = instance(name, seed, kernel=kernel)
    naive, lazy = maximize(f, k, "naive"), maximize(f, k, "lazy", batch=1)
    np.testing.assert_array_equal(lazy.positions, naive.positions)
    assert lazy.value == pytest.approx(naive.value, rel=1e-6, abs=1e-9)


def test_lazy_equals_naive_with_exact_ties() -> None:
    # duplicated points make exact ties everywhere; both must take the smaller position
    rng = np.random.default_rng(4)
    X = np.repeat(rng.random((5, 3)), 3, axis=0)
    from strategies.submodular import build_function

    f = build_function("fl", X)
    naive, lazy = maximize(f, 6, "naive"), maximize(f, 6, "lazy")
    assert naive.positions.tolist() == lazy.positions.tolist()
    assert all(p % 3 == 0 for p in naive.positions[:5])  # one per cluster, its first copy


@pytest.mark.parametrize("name", ["fl", "flvmi", "gc", "logdet"])
def test_stochastic_is_seeded_by_the_generator_and_close_to_lazy(name) -> None:
    from strategies.submodular import build_function

    X = np.random.default_rng(1).random((400, 6))
    f = build_function(name, X, X[:5], eta=1.0)
    a = maximize(f, 20, "stochastic", rng=np.random.default_rng(7), epsilon=0.01)
    b = maximize(f, 20, "stochastic", rng=np.random.default_rng(7), epsilon=0.01)
    np.testing.assert_array_equal(a.positions, b.positions)
    lazy = maximize(f, 20, "lazy")
    assert a.value >= 0.95 * lazy.value
    assert a.evaluations < lazy.evaluations or name == "logdet" or a.evaluations < 20 * 400
