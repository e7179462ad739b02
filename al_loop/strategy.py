"""The Strategy interface and the input checks every strategy shares.

A strategy is a small dataclass holding its parameters (no fitted state) with
``_select(view, ctx, budget)`` implemented. :meth:`Strategy.select` checks the
inputs once, calls ``_select`` and checks the output, so concrete strategies
stay pure and short.

Id frame: ``Selection.ids`` are global pool ids drawn from ``ctx.unlabeled_ids``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from al_loop.errors import ConfigError, DataError
from al_loop.types import QueryContext, Selection

if TYPE_CHECKING:
    from al_loop.config import RunConfig
    from al_loop.view import ModelView

#: What a strategy may declare in ``requires`` and the learner capability it needs.
CAPABILITIES = {
    "proba": "predict_proba",
    "embed": "embed",
    "grad": "grad_embed",
    "posterior": "posterior_proba",
    "labels": None,  # needs labeled data only
}


class Strategy:
    """Base class: ``select(view, ctx, budget) -> Selection``.

    Subclasses set ``name`` (registry key), ``requires`` (subset of
    :data:`CAPABILITIES`) and implement ``_select``. Parameters are dataclass
    fields; :meth:`params` returns them for the run record.
    """

    name: ClassVar[str] = ""
    requires: ClassVar[frozenset[str]] = frozenset()
    #: The fix :meth:`check_learner` names when the learner lacks a capability.
    learner_fix: ClassVar[str] = "choose a learner that provides it"
    #: The tasks the strategy works for: ``"single"`` (one class per item) and/or ``"multi"`` (a set of
    #: labels per item, :mod:`al_loop.multilabel`). Strategies that read only the inputs or embeddings
    #: take both; one that reads softmax probabilities takes ``"single"`` only.
    tasks: ClassVar[frozenset[str]] = frozenset({"single"})

    def params(self) -> dict[str, Any]:
        """Parameters as a JSON-serialisable dict (dataclass fields)."""
        import dataclasses

        if dataclasses.is_dataclass(self):
            return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {}

    def check_learner(self, capabilities: frozenset[str]) -> None:
        """Raise :class:`ConfigError` if the learner lacks what this strategy needs."""
        missing = sorted(r for r in self.requires if CAPABILITIES.get(r) and r not in capabilities)
        if missing:
            raise ConfigError(
                f"strategy {self.name!r} needs learner capability {missing} that the learner "
                f"does not have (it has {sorted(capabilities)}); {self.learner_fix}"
            )

    def check_task(self, multilabel: bool) -> None:
        """Raise :class:`ConfigError` if this strategy does not work for the pool's task."""
        task = "multi" if multilabel else "single"
        if task in self.tasks:
            return
        if multilabel:
            raise ConfigError(f"strategy {self.name!r} reads single-label (softmax) probabilities and this dataset is "
                              "multi-label; use br_uncertainty, mmc, cvirs, random, kcenter, typiclust or probcover")
        raise ConfigError(f"strategy {self.name!r} is for multi-label data and this dataset has one class per item; "
                          "use a single-label strategy (see al-loop strategies)")

    def check_config(self, config: RunConfig) -> None:
        """Raise :class:`ConfigError` if this strategy cannot run with ``config``.

        Called by :func:`al_loop.api.validate` before anything is written, so a
        precondition that needs the run's context (a query set, a parameter
        value only ``_select`` would reject) fails at once instead of after the
        run was stored. The base accepts every config; a strategy whose
        ``_select`` can raise :class:`ConfigError` checks the same thing here.
        """
        del config

    def select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        """Pick ``min(budget, len(ctx.unlabeled_ids))`` unlabeled ids.

        Parameters
        ----------
        view : ModelView
            Per-round cached model outputs over the pool.
        ctx : QueryContext
            Frozen snapshot of labeled/unlabeled ids and the round's RNG.
        budget : int
            Number of items to pick (> 0).

        Returns
        -------
        Selection
            ``ids`` unique global ids from ``ctx.unlabeled_ids``, rank order.
        """
        if budget <= 0:
            raise ConfigError(f"batch size must be positive, got {budget}; pass --batch 1 or more")
        unlabeled = np.asarray(ctx.unlabeled_ids, dtype=np.int64)
        if unlabeled.size == 0:
            raise DataError("the unlabeled pool is empty; nothing is left to select")
        budget = min(int(budget), int(unlabeled.size))
        sel = self._select(view, ctx, budget)
        ids = np.asarray(sel.ids, dtype=np.int64)
        if ids.size != budget:
            raise RuntimeError(f"strategy {self.name!r} returned {ids.size} ids for a budget of {budget}")
        if np.unique(ids).size != ids.size:
            raise RuntimeError(f"strategy {self.name!r} returned duplicate ids")
        if not np.isin(ids, unlabeled).all():
            raise RuntimeError(f"strategy {self.name!r} returned ids outside the unlabeled pool")
        scores = np.asarray(sel.scores, dtype=np.float64)
        if scores.shape != ids.shape:
            raise RuntimeError(f"strategy {self.name!r} returned {scores.size} scores for {ids.size} ids")
        return Selection(ids=ids, scores=scores, info=dict(sel.info))

    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        raise NotImplementedError


def top_k(ids: np.ndarray, scores: np.ndarray, k: int, what: str = "scores") -> Selection:
    """The ``k`` highest scores, ties broken by the smaller global id.

    Parameters
    ----------
    ids : ndarray of int64, shape (n,)
        Global ids of the candidates.
    scores : ndarray of float, shape (n,)
        Higher is better. NaN/Inf raise :class:`DataError` (a NaN never wins).
    k : int
        Number to keep (``<= n``).
    """
    ids = np.asarray(ids, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        n_bad = int((~np.isfinite(scores)).sum())
        raise DataError(
            f"{what} contain NaN or Inf for {n_bad} candidate(s); check the learner's outputs "
            "(features with NaN, a diverged model)"
        )
    order = np.lexsort((ids, -scores))[:k]
    return Selection(ids=ids[order], scores=scores[order])
