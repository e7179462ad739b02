"""Uncertainty sampling: random, entropy, margin and least confidence.

Pure score functions (``entropy_scores`` ...) take a probability matrix of
shape (n, C) and return (n,) scores where higher means more uncertain; the
strategy classes take the top-b with ties broken by the smaller global id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from al_loop.registry import STRATEGIES
from al_loop.strategy import Strategy, top_k
from al_loop.types import QueryContext, Selection
from al_loop.view import ModelView


def entropy_scores(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy ``-sum_c p_c log p_c`` (0 log 0 = 0), shape (n,)."""
    p = np.asarray(proba, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1)


def margin_scores(proba: np.ndarray) -> np.ndarray:
    """Negative margin ``-(p_(1) - p_(2))`` between the two largest probabilities."""
    p = np.asarray(proba, dtype=np.float64)
    if p.shape[1] < 2:
        return np.zeros(len(p))
    top2 = np.partition(p, -2, axis=1)[:, -2:]
    return -(top2[:, 1] - top2[:, 0])


def least_confidence_scores(proba: np.ndarray) -> np.ndarray:
    """``1 - max_c p_c``."""
    return 1.0 - np.asarray(proba, dtype=np.float64).max(axis=1)


UNCERTAINTY = {
    "entropy": entropy_scores,
    "margin": margin_scores,
    "least_confidence": least_confidence_scores,
}


@STRATEGIES.register("random")
@dataclass
class RandomSampling(Strategy):
    """Uniform sample without replacement from ``ctx.rng``."""

    name = "random"
    tasks: ClassVar[frozenset[str]] = frozenset({"single", "multi"})
    use_when: ClassVar[str] = (
        "a baseline to beat, or when the model is too weak for its scores to mean anything (the first"
        " few dozen labels).")

    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        ids = ctx.rng.choice(np.asarray(ctx.unlabeled_ids, dtype=np.int64), size=budget, replace=False)
        return Selection(ids=ids, scores=np.zeros(budget))


@dataclass
class _UncertaintyStrategy(Strategy):
    requires = frozenset({"proba"})
    measure = "entropy"

    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        proba = view.proba(ctx.unlabeled_ids)
        return top_k(ctx.unlabeled_ids, UNCERTAINTY[self.measure](proba), budget, what=f"{self.measure} scores")


@STRATEGIES.register("entropy")
@dataclass
class EntropySampling(_UncertaintyStrategy):
    """Top-b by predictive entropy."""

    name = "entropy"
    use_when: ClassVar[str] = (
        "the model is already fair and there are many classes: items whose whole predicted "
        "distribution is spread out.")
    measure = "entropy"


@STRATEGIES.register("margin")
@dataclass
class MarginSampling(_UncertaintyStrategy):
    """Top-b by smallest margin between the two most likely classes."""

    name = "margin"
    use_when: ClassVar[str] = (
        "past the cold start (a fair model): items nearest the boundary of the two likeliest classes;"
        " cheap and hard to beat.")
    measure = "margin"


@STRATEGIES.register("least_confidence")
@dataclass
class LeastConfidenceSampling(_UncertaintyStrategy):
    """Top-b by smallest top-class probability."""

    name = "least_confidence"
    use_when: ClassVar[str] = "as margin, when only the top class matters; the cheapest uncertainty score."
    measure = "least_confidence"
