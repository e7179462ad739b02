"""Contract suite every Strategy inherits.

Subclass :class:`StrategyContract` in a test module and override
``make_strategy`` (and ``make_learner`` / ``extra_context`` where needed);
pytest then runs every test below against that strategy. Pool ids are
deliberately non-contiguous (``1000 + 7 * row``) so that a strategy that
confuses row positions with global ids fails.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from al_loop.errors import ConfigError
from al_loop.learners import Learner, SklearnLearner
from al_loop.pool import Pool
from al_loop.registry import STRATEGIES
from al_loop.strategy import Strategy
from al_loop.types import QueryContext
from al_loop.view import ModelView


def digits_pool(n: int = 300) -> Pool:
    X, y = load_digits(return_X_y=True)
    X, y = X[:n].astype(np.float64), y[:n].astype(np.int64)
    return Pool(X=X, ids=1000 + 7 * np.arange(n, dtype=np.int64), classes=tuple(str(c) for c in range(10)), y=y,
                kind="image", name="digits-small")


def make_context(pool: Pool, labeled: np.ndarray, round_: int = 1, seed: int = 0, **extra: object) -> QueryContext:
    labeled = np.sort(np.asarray(labeled, dtype=np.int64))
    unlabeled = np.setdiff1d(pool.ids, labeled)
    return QueryContext(round=round_, seed=seed, labeled_ids=labeled, labels=pool.hidden_labels(labeled),
                        unlabeled_ids=unlabeled, classes=pool.classes,
                        rng=np.random.default_rng([seed, round_]), **extra)  # type: ignore[arg-type]


class StrategyContract:
    """Behaviour every strategy must have."""

    budget = 10

    def make_strategy(self) -> Strategy:
        raise NotImplementedError

    def make_learner(self) -> Learner:
        from sklearn.linear_model import LogisticRegression

        return SklearnLearner(LogisticRegression(max_iter=300))

    def extra_context(self, pool: Pool, labeled: np.ndarray) -> dict[str, object]:
        """Extra QueryContext fields (query/private sets) a strategy needs."""
        return {}

    @pytest.fixture(scope="class")
    @classmethod
    def setup(cls) -> tuple[Pool, ModelView, np.ndarray]:
        pool = digits_pool()
        labeled = pool.ids[np.arange(0, 300, 10)]  # 30 labeled, all classes
        learner = cls().make_learner()
        learner.fit(pool, labeled, pool.hidden_labels(labeled), seed=0)
        return pool, ModelView(pool, learner), labeled

    def ctx(self, pool: Pool, labeled: np.ndarray, seed: int = 0) -> QueryContext:
        return make_context(pool, labeled, seed=seed, **self.extra_context(pool, labeled))

    def test_registered_under_its_name(self) -> None:
        strat = self.make_strategy()
        assert strat.name, "a strategy needs a registry name"
        assert STRATEGIES.get(strat.name) is type(strat)

    def test_returns_budget_unique_unlabeled_global_ids(self, setup) -> None:
        pool, view, labeled = setup
        sel = self.make_strategy().select(view, self.ctx(pool, labeled), self.budget)
        assert sel.ids.dtype == np.int64
        assert len(sel.ids) == self.budget
        assert len(np.unique(sel.ids)) == self.budget
        assert np.isin(sel.ids, pool.ids).all()
        assert not np.isin(sel.ids, labeled).any()
        assert sel.scores.shape == sel.ids.shape

    def test_same_seed_same_selection(self, setup) -> None:
        pool, view, labeled = setup
        a = self.make_strategy().select(view, self.ctx(pool, labeled, seed=3), self.budget)
        b = self.make_strategy().select(view, self.ctx(pool, labeled, seed=3), self.budget)
        np.testing.assert_array_equal(a.ids, b.ids)

    def test_budget_larger_than_unlabeled_is_clamped(self, setup) -> None:
        pool, view, _ = setup
        labeled = pool.ids[:-5]
        # keep every class labeled so class-conditional strategies have data
        sel = self.make_strategy().select(view, self.ctx(pool, labeled), 50)
        assert sorted(sel.ids.tolist()) == sorted(pool.ids[-5:].tolist())

    def test_non_positive_budget_is_refused(self, setup) -> None:
        pool, view, labeled = setup
        with pytest.raises(ConfigError, match="batch size"):
            self.make_strategy().select(view, self.ctx(pool, labeled), 0)

    def test_requires_checked_against_learner(self) -> None:
        strat = self.make_strategy()
        from al_loop.strategy import CAPABILITIES

        learner_caps = {name for name, method in CAPABILITIES.items() if method}
        needs = {r for r in strat.requires if r in learner_caps}
        strat.check_learner(frozenset(learner_caps))
        if needs:
            with pytest.raises(ConfigError, match="needs learner capability"):
                strat.check_learner(frozenset())
        else:
            strat.check_learner(frozenset())

    def test_params_are_json_serialisable(self) -> None:
        import json

        json.dumps(self.make_strategy().params())
