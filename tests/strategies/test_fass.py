"""FASS: the contract suite plus the filter and the class-conditional objective."""

from __future__ import annotations

import numpy as np
import pytest

from al_loop.errors import ConfigError
from strategies.fass import FASS, fass_select
from strategies.submodular import build_function
from strategies.uncertainty import entropy_scores
from tests.contracts.strategy_contract import StrategyContract


class TestFASS(StrategyContract):
    def make_strategy(self):
        return FASS()

    def test_picks_only_from_the_uncertainty_filter(self, setup) -> None:
        pool, view, labeled = setup
        ctx = self.ctx(pool, labeled)
        sel = FASS(beta=2.0).select(view, ctx, 10)
        ent = entropy_scores(view.proba(ctx.unlabeled_ids))
        threshold = np.sort(ent)[-20]
        chosen = ent[np.searchsorted(ctx.unlabeled_ids, sel.ids)]
        assert (chosen >= threshold - 1e-12).all()

    def test_beta_one_equals_top_uncertainty_set(self, setup) -> None:
        pool, view, labeled = setup
        ctx = self.ctx(pool, labeled)
        sel = FASS(beta=1.0).select(view, ctx, 10)
        top = np.argsort(-entropy_scores(view.proba(ctx.unlabeled_ids)), kind="stable")[:10]
        assert set(sel.ids.tolist()) == set(ctx.unlabeled_ids[top].tolist())

    @pytest.mark.parametrize("function", ["gc", "logdet"])
    def test_other_functions_run(self, setup, function) -> None:
        pool, view, labeled = setup
        sel = FASS(function=function).select(view, self.ctx(pool, labeled), 10)
        assert len(sel.ids) == 10 and np.isfinite(sel.scores).all()

    def test_unknown_function_and_bad_beta_are_config_errors(self, setup) -> None:
        pool, view, labeled = setup
        with pytest.raises(ConfigError, match="FASS function"):
            FASS(function="flqmi").select(view, self.ctx(pool, labeled), 5)
        with pytest.raises(ConfigError, match="beta"):
            FASS(beta=0.5).select(view, self.ctx(pool, labeled), 5)


def test_class_conditional_objective_is_the_sum_over_classes_given_the_labeled_set() -> None:
    rng = np.random.default_rng(0)
    X_u, X_l = rng.random((30, 4)), rng.random((6, 4))
    pred, y = rng.integers(0, 2, 30), np.array([0, 0, 0, 1, 1, 1])
    unc = rng.random(30)
    pos, gains, info = fass_select(X_u, pred, unc, X_l, y, 5, beta=3.0)
    kept = np.argsort(-unc)[:15]  # the filter: 3 * 5 most uncertain
    assert np.isin(pos, kept).all()
    total = 0.0
    for c in (0, 1):
        members_u = np.sort(kept[pred[kept] == c])
        X = np.concatenate([X_u[members_u], X_l[y == c]])
        f = build_function("fl", X, preselect=np.arange(len(members_u), len(X)))
        total += f.evaluate(np.flatnonzero(np.isin(members_u, pos)))
    assert info["objective"] == pytest.approx(total, rel=1e-6)
    assert gains.sum() == pytest.approx(total, rel=1e-6)


def test_labeled_items_count_as_selected() -> None:
    # an unlabeled duplicate of a labeled item adds nothing, so FASS avoids it
    X_l = np.array([[1.0, 0.0]])
    X_u = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    pos, gains, _ = fass_select(X_u, np.zeros(3, dtype=int), np.ones(3), X_l, np.zeros(1, dtype=int), 1, beta=3.0)
    assert pos.tolist() == [1] or pos.tolist() == [2]
    assert pos[0] != 0
