"""Switch: composes two registered strategies and changes at the configured point."""

from __future__ import annotations

import numpy as np
import pytest

from al_loop.errors import ConfigError
from strategies.switch import Switch, loo_nn_accuracy
from strategies.typiclust import TypiClust
from strategies.uncertainty import MarginSampling
from tests.contracts.strategy_contract import StrategyContract


class TestSwitch(StrategyContract):
    def make_strategy(self):
        return Switch()

    def test_uses_first_below_switch_at_and_then_from_it(self, setup) -> None:
        pool, view, labeled = setup  # 30 labels
        before = Switch(switch_at=31).select(view, self.ctx(pool, labeled, seed=2), 10)
        at = Switch(switch_at=30).select(view, self.ctx(pool, labeled, seed=2), 10)
        assert before.info["phase"] == "first" and before.info["strategy"] == "typiclust"
        assert at.info["phase"] == "then" and at.info["strategy"] == "margin"
        np.testing.assert_array_equal(before.ids, TypiClust().select(view, self.ctx(pool, labeled, seed=2), 10).ids)
        np.testing.assert_array_equal(at.ids, MarginSampling().select(view, self.ctx(pool, labeled, seed=2), 10).ids)

    def test_passes_parameters_to_the_inner_strategies(self, setup) -> None:
        pool, view, labeled = setup
        sel = Switch(first="probcover", first_params={"delta": 20.0}, switch_at=1000).select(
            view, self.ctx(pool, labeled), 5)
        assert sel.info["strategy"] == "probcover" and sel.info["inner"]["delta"] == 20.0

    def test_auto_switches_once_labels_predict_each_other(self, setup) -> None:
        pool, view, labeled = setup
        few = Switch(switch_at="auto").select(view, self.ctx(pool, labeled[:12]), 5)
        most = Switch(switch_at="auto").select(view, self.ctx(pool, pool.ids[:-20]), 5)
        threshold = Switch().min_accuracy
        assert few.info["phase"] == "first" and few.info["loo_nn_accuracy"] < threshold
        assert most.info["phase"] == "then" and most.info["loo_nn_accuracy"] >= threshold
        assert most.info["strategy"] == "margin"


    def test_bad_configuration_fails_at_construction(self) -> None:
        with pytest.raises(ConfigError, match="unknown strategy"):
            Switch(then="nope")
        with pytest.raises(ConfigError, match="switch_at"):
            Switch(switch_at="later")
        with pytest.raises(ConfigError, match="switch_at"):
            Switch(switch_at=-1)
        with pytest.raises(ConfigError, match="first_params"):
            Switch(first_params={"bogus": 1})
        with pytest.raises(ConfigError, match="nest"):
            Switch(first="switch")

    def test_checks_the_learner_for_both_strategies(self) -> None:
        with pytest.raises(ConfigError, match="needs learner capability"):
            Switch(first="random", then="margin").check_learner(frozenset())
        Switch(first="typiclust", then="random").check_learner(frozenset())


def test_loo_nn_accuracy_by_hand() -> None:
    X = np.array([[0.0], [1.0], [5.0], [6.0], [20.0]])
    # nearest other point: 1, 0, 3, 2, 3 -> labels agree for rows 0, 1, 2, 3 (row 4's neighbour is row 3)
    assert loo_nn_accuracy(X, np.array([0, 0, 1, 1, 0])) == 4 / 5
    assert loo_nn_accuracy(X, np.array([0, 1, 1, 1, 1])) == 3 / 5
    assert loo_nn_accuracy(X[:1], np.array([0])) == 0.0
