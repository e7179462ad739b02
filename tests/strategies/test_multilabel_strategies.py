"""The strategy contract on a multi-label pool: br_uncertainty, mmc, cvirs, and the space strategies unchanged.

The pool is scikit-learn's digits with three labels per image derived from the
digit (even, greater than 4, prime), so every label set is real and
overlapping; ids are the contract's non-contiguous ``1000 + 7 * row``.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from al_loop.learners import Learner, make_ovr_logreg
from al_loop.pool import Pool
from al_loop.view import ModelView
from strategies.kcenter import KCenterGreedy
from strategies.multilabel import CVIRS, MMC, BinaryRelevanceUncertainty
from strategies.probcover import ProbCover
from strategies.typiclust import TypiClust
from strategies.uncertainty import RandomSampling
from tests.contracts.strategy_contract import StrategyContract, make_context

TAGS = ("even", "greater_than_4", "prime")


def digits_tags_pool(n: int = 300) -> Pool:
    X, digit = load_digits(return_X_y=True)
    X, digit = X[:n].astype(np.float64), digit[:n]
    Y = np.stack([digit % 2 == 0, digit > 4, np.isin(digit, [2, 3, 5, 7])], axis=1).astype(np.uint8)
    return Pool(X=X, ids=1000 + 7 * np.arange(n, dtype=np.int64), classes=TAGS, y=Y, kind="image",
                name="digits-tags", multilabel=True)


class _MultilabelContract(StrategyContract):
    def make_learner(self) -> Learner:
        return make_ovr_logreg()

    @pytest.fixture(scope="class")
    @classmethod
    def setup(cls) -> tuple[Pool, ModelView, np.ndarray]:
        pool = digits_tags_pool()
        labeled = pool.ids[np.arange(0, 300, 10)]
        learner = cls().make_learner()
        learner.fit(pool, labeled, pool.hidden_labels(labeled), seed=0)
        return pool, ModelView(pool, learner), labeled

    def test_takes_multilabel_pools(self) -> None:
        self.make_strategy().check_task(multilabel=True)


class TestBinaryRelevanceMean(_MultilabelContract):
    def make_strategy(self):
        return BinaryRelevanceUncertainty()

    def test_refuses_single_label_pools(self) -> None:
        from al_loop.errors import ConfigError

        with pytest.raises(ConfigError, match="is for multi-label data"):
            self.make_strategy().check_task(multilabel=False)


class TestBinaryRelevanceMax(_MultilabelContract):
    def make_strategy(self):
        return BinaryRelevanceUncertainty(reduce="max")


class TestMMC(_MultilabelContract):
    def make_strategy(self):
        return MMC()

    def test_no_labels_yet_counts_one_label_each(self, setup) -> None:
        pool, view, _ = setup
        ctx = make_context(pool, np.array([], dtype=np.int64))
        ctx = type(ctx)(**{**ctx.__dict__, "labels": np.zeros((0, 3), dtype=np.uint8)})
        assert len(MMC().select(view, ctx, 5).ids) == 5


class TestCVIRS(_MultilabelContract):
    def make_strategy(self):
        return CVIRS()


class TestKCenterOnMultilabel(_MultilabelContract):
    def make_strategy(self):
        return KCenterGreedy()


class TestTypiClustOnMultilabel(_MultilabelContract):
    def make_strategy(self):
        return TypiClust()


class TestProbCoverOnMultilabel(_MultilabelContract):
    def make_strategy(self):
        return ProbCover()


class TestRandomOnMultilabel(_MultilabelContract):
    def make_strategy(self):
        return RandomSampling()
