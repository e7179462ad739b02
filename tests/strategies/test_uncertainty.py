"""Uncertainty strategies: hand-computed scores, tie-breaking, and the contract suite."""

from __future__ import annotations

import numpy as np
import pytest

from al_loop.errors import DataError
from al_loop.strategy import top_k
from strategies.uncertainty import (
    EntropySampling,
    LeastConfidenceSampling,
    MarginSampling,
    RandomSampling,
    entropy_scores,
    least_confidence_scores,
    margin_scores,
)
from tests.contracts.strategy_contract import StrategyContract

P = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.6, 0.3, 0.1], [1 / 3, 1 / 3, 1 / 3]])


def test_entropy_by_hand() -> None:
    expected = [0.0, np.log(2), -(0.6 * np.log(0.6) + 0.3 * np.log(0.3) + 0.1 * np.log(0.1)), np.log(3)]
    np.testing.assert_allclose(entropy_scores(P), expected)


def test_margin_by_hand() -> None:
    np.testing.assert_allclose(margin_scores(P), [-1.0, 0.0, -0.3, 0.0])


def test_least_confidence_by_hand() -> None:
    np.testing.assert_allclose(least_confidence_scores(P), [0.0, 0.5, 0.4, 2 / 3])


def test_top_k_breaks_ties_by_smaller_global_id() -> None:
    sel = top_k(np.array([30, 10, 20, 5]), np.array([1.0, 2.0, 2.0, 0.5]), 3)
    assert sel.ids.tolist() == [10, 20, 30]


def test_top_k_refuses_nan_so_nan_never_wins() -> None:
    with pytest.raises(DataError, match="NaN"):
        top_k(np.array([1, 2]), np.array([np.nan, 0.1]), 1)


class TestRandom(StrategyContract):
    def make_strategy(self):
        return RandomSampling()

    def test_different_seeds_differ(self, setup) -> None:
        pool, view, labeled = setup
        a = RandomSampling().select(view, self.ctx(pool, labeled, seed=1), 10)
        b = RandomSampling().select(view, self.ctx(pool, labeled, seed=2), 10)
        assert a.ids.tolist() != b.ids.tolist()


class TestEntropy(StrategyContract):
    def make_strategy(self):
        return EntropySampling()

    def test_picks_the_highest_entropy(self, setup) -> None:
        pool, view, labeled = setup
        ctx = self.ctx(pool, labeled)
        sel = EntropySampling().select(view, ctx, 5)
        ent = entropy_scores(view.proba(ctx.unlabeled_ids))
        assert np.min(sel.scores) >= np.sort(ent)[-5] - 1e-12


class TestMargin(StrategyContract):
    def make_strategy(self):
        return MarginSampling()


class TestLeastConfidence(StrategyContract):
    def make_strategy(self):
        return LeastConfidenceSampling()
