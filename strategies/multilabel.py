"""Multi-label strategies: binary-relevance uncertainty, MMC and CVIRS.

They read per-label probabilities (a learner with capability ``multilabel``:
``view.proba`` is (n, L), column ``j`` the probability that ``classes[j]``
applies) and, for MMC and CVIRS, the labeled items' label matrix
``ctx.labels`` (n_l, L). The pure scores are in :mod:`strategies._multilabel_scores`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from al_loop.errors import ConfigError
from al_loop.registry import STRATEGIES
from al_loop.strategy import Strategy, top_k
from al_loop.types import QueryContext, Selection
from al_loop.view import ModelView
from strategies._multilabel_scores import br_uncertainty, cvirs_scores, mmc_label_counts, mmc_scores

_MULTI: frozenset[str] = frozenset({"multi"})


def _labels(ctx: QueryContext) -> np.ndarray:
    return np.asarray(ctx.labels).reshape(len(ctx.labeled_ids), len(ctx.classes))


@STRATEGIES.register("br_uncertainty")
@dataclass
class BinaryRelevanceUncertainty(Strategy):
    """Top-b by binary-relevance uncertainty: ``1 - |2 p - 1|`` per label, reduced by the mean or the max.

    Parameters
    ----------
    reduce : {"mean", "max"}
        ``mean``: items unsure about many labels; ``max``: items unsure about at least one.
    """

    reduce: str = "mean"
    name = "br_uncertainty"
    requires = frozenset({"proba"})
    tasks: ClassVar[frozenset[str]] = _MULTI
    use_when: ClassVar[str] = (
        "multi-label data and a fair per-label model: the cheapest multi-label uncertainty (reduce=max for rare "
        "labels, mean otherwise).")

    def __post_init__(self) -> None:
        if self.reduce not in ("mean", "max"):
            raise ConfigError(f"br_uncertainty takes reduce=mean or reduce=max, got {self.reduce!r}; pass "
                              "--param reduce=mean")

    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        scores = br_uncertainty(view.proba(ctx.unlabeled_ids), self.reduce)
        return top_k(ctx.unlabeled_ids, scores, budget, what="binary-relevance uncertainty")


@STRATEGIES.register("mmc")
@dataclass
class MMC(Strategy):
    """Maximum loss reduction with maximal confidence (Yang et al. 2009).

    The candidate's label count is predicted by a logistic regression on its
    sorted, normalised probabilities (fitted on the labeled items' predictions
    and true counts); its most probable labels up to that count are taken as
    +1, and the score is the expected loss reduction ``sum_l (1 - y_l f_l) / 2``
    with ``f = 2 p - 1`` (see :func:`strategies._multilabel_scores.mmc_scores`).
    """

    name = "mmc"
    requires = frozenset({"proba", "labels"})
    tasks: ClassVar[frozenset[str]] = _MULTI
    use_when: ClassVar[str] = (
        "multi-label text or tabular data where items differ in how many labels they carry (Yang et al.'s "
        "setting); past the first few dozen labels.")

    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        P = view.proba(ctx.unlabeled_ids)
        if len(ctx.labeled_ids) == 0:
            counts = np.ones(len(P), dtype=np.int64)
        else:
            counts = mmc_label_counts(view.proba(ctx.labeled_ids), _labels(ctx), P, seed=int(ctx.seed))
        return top_k(ctx.unlabeled_ids, mmc_scores(P, counts), budget, what="MMC scores")


@STRATEGIES.register("cvirs")
@dataclass
class CVIRS(Strategy):
    """Category vector inconsistency and ranking of scores (Reyes et al. 2018).

    Rank-aggregated per-label uncertainty among the candidates, times how far
    the candidate's predicted label vector is from the labeled items' vectors
    (see :func:`strategies._multilabel_scores.cvirs_scores`).
    """

    name = "cvirs"
    requires = frozenset({"proba", "labels"})
    tasks: ClassVar[frozenset[str]] = _MULTI
    use_when: ClassVar[str] = (
        "multi-label data where some label combinations are rare: prefers uncertain items whose predicted "
        "label set the labeled items do not have yet.")

    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        scores = cvirs_scores(view.proba(ctx.unlabeled_ids), _labels(ctx))
        return top_k(ctx.unlabeled_ids, scores, budget, what="CVIRS scores")
