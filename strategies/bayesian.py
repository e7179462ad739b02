"""Deep Bayesian strategies: BALD, BatchBALD, variation ratios, mean STD.

They read posterior predictive samples from a learner with the ``posterior``
capability (``mlp_dropout``/``cnn_dropout``: MC dropout; ``mlp_ensemble``/
``cnn_ensemble``: deep ensembles). The score functions are in
:mod:`strategies._bayes_scores`; here they are mapped to global ids.

The MC dropout masks of a round come from the run's seed and the round
(:func:`posterior_seed`), not from ``ctx.rng``: every Bayesian strategy of a
round sees the same weight samples, and the pool's scores are computed once
(streamed in chunks, so the (n, K, C) tensor is never held whole).

Deliberate difference from the BatchBALD paper: by default the greedy search
runs over the ``candidates`` (2,000) unlabeled items of highest BALD, not the
whole pool (``candidates=0`` restores it). Each greedy step costs
``candidates x configs x K x C`` multiply-adds, so the whole of a 60,000-item
pool would take minutes per step on a CPU; an item outside the top 2,000 by
BALD adds little joint information to any batch of a few dozen.
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
from strategies._bayes_scores import POSTERIOR_SCORES, bald_scores, batchbald_greedy


def posterior_seed(ctx: QueryContext) -> int:
    """The seed of a round's weight samples: from the run's seed and the round only."""
    return int(np.random.SeedSequence([int(ctx.seed), int(ctx.round), 0xBA1D]).generate_state(1)[0])


def _positive(strategy: str, field_name: str, value: object, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        what = "a non-negative" if allow_zero else "a positive"
        raise ConfigError(f"{strategy} {field_name} must be {what} integer, got {value!r}; "
                          f"pass e.g. --param {strategy}.{field_name}=20")


class _PosteriorStrategy(Strategy):
    requires: ClassVar[frozenset[str]] = frozenset({"posterior"})
    learner_fix: ClassVar[str] = ("use a learner with a posterior: --learner mlp_dropout, cnn_dropout, mlp_ensemble "
                                  "or cnn_ensemble")


@dataclass
class _ScoredPosterior(_PosteriorStrategy):
    passes: int = 20
    measure: ClassVar[str] = "bald"

    def __post_init__(self) -> None:
        _positive(self.name, "passes", self.passes)

    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        scores = view.posterior_scores(self.measure, POSTERIOR_SCORES[self.measure], ctx.unlabeled_ids,
                                       self.passes, posterior_seed(ctx))
        return top_k(ctx.unlabeled_ids, scores, budget, what=f"{self.measure} scores")


@STRATEGIES.register("bald")
@dataclass
class BALD(_ScoredPosterior):
    """Top-b by BALD, the mutual information between the label and the weights (Houlsby et al. 2011).

    ``H(E_k p_k) - E_k H(p_k)`` over ``K`` posterior samples (Gal et al. 2017).

    Parameters
    ----------
    passes : int
        MC dropout passes ``K`` (an ensemble gives one sample per member instead).
    """

    name = "bald"
    use_when: ClassVar[str] = (
        "a deep learner with a posterior (MC dropout, an ensemble) and batches small next to the pool: items the "
        "weight samples disagree on, not those that are only noisy.")
    measure = "bald"


@STRATEGIES.register("variation_ratio")
@dataclass
class VariationRatio(_ScoredPosterior):
    """Top-b by variation ratio ``1 - f_mode / K``, the share of samples not voting the modal class.

    Freeman 1965; Gal et al. 2017.

    Parameters
    ----------
    passes : int
        MC dropout passes ``K`` (an ensemble gives one sample per member instead).
    """

    name = "variation_ratio"
    use_when: ClassVar[str] = (
        "as bald, when only the votes matter; coarse (K + 1 values), so many ties are broken by the smaller id.")
    measure = "variation_ratio"


@STRATEGIES.register("mean_std")
@dataclass
class MeanSTD(_ScoredPosterior):
    """Top-b by the standard deviation of the class probabilities over samples, averaged over classes.

    Kampffmeyer et al. 2016; Gal et al. 2017.

    Parameters
    ----------
    passes : int
        MC dropout passes ``K`` (an ensemble gives one sample per member instead).
    """

    name = "mean_std"
    use_when: ClassVar[str] = "as bald; a baseline of the Bayesian family that Gal et al. 2017 compare against."
    measure = "mean_std"


@STRATEGIES.register("batchbald")
@dataclass
class BatchBALD(_PosteriorStrategy):
    """Greedy batch by joint mutual information with the weights (Kirsch et al. 2019).

    Picks one item at a time, the one that most raises
    ``I(y_1, ..., y_n; omega)``; unlike top-b BALD it does not take b copies of
    the same information. Batch 1 is BALD.

    Parameters
    ----------
    passes : int
        MC dropout passes ``K`` (an ensemble gives one sample per member instead).
    configs : int
        Label configurations of the batch: enumerated exactly while there are at
        most this many (``C ** (n - 1)``), past that this many are sampled (the
        paper's estimator).
    candidates : int
        The greedy search runs over this many unlabeled items of highest BALD;
        0 = the whole pool (the paper's setting, slow on large pools).
    """

    name = "batchbald"
    use_when: ClassVar[str] = (
        "a deep learner with a posterior and batches of 5 or more: BALD's top-b repeats itself, BatchBALD picks "
        "items that are informative together; slower (seconds per item picked).")
    passes: int = 20
    configs: int = 10_000
    candidates: int = 2_000

    def __post_init__(self) -> None:
        _positive(self.name, "passes", self.passes)
        _positive(self.name, "configs", self.configs)
        _positive(self.name, "candidates", self.candidates, allow_zero=True)

    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        seed = posterior_seed(ctx)
        pool_ids = np.asarray(ctx.unlabeled_ids, dtype=np.int64)
        limit = max(self.candidates, budget)
        if self.candidates and pool_ids.size > limit:
            bald = view.posterior_scores("bald", bald_scores, pool_ids, self.passes, seed)
            pool_ids = np.sort(top_k(pool_ids, bald, limit, what="bald scores").ids)
        P = view.posterior(pool_ids, self.passes, seed)
        picked, gains = batchbald_greedy(P, budget, self.configs, ctx.rng, order_key=pool_ids)
        return Selection(ids=pool_ids[picked], scores=gains, info={"candidates": int(pool_ids.size)})
