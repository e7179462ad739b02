"""FASS: filtered active submodular selection (Wei, Iyer & Bilmes, ICML 2015).

Compose, do not special-case: an uncertainty filter (any measure of
:data:`strategies.uncertainty.UNCERTAINTY`) keeps the ``beta * b`` most
uncertain unlabeled items, then a class-conditional submodular function picks
``b`` of them. The objective is ``sum_y f_y((A + L) intersect V_y) - f_y(L intersect V_y)``:
one function per class ``y`` over the items of that class (predicted label for
unlabeled items, true label for labeled ones), with the labeled set ``L``
counted as already selected, so the batch covers what the labels do not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from al_loop.errors import ConfigError
from al_loop.registry import STRATEGIES
from al_loop.strategy import Strategy, top_k
from al_loop.types import QueryContext, Selection
from al_loop.view import ModelView
from strategies.submodular.base import PartitionSum, SetFunction
from strategies.submodular.information import build_function
from strategies.submodular.maximizers import maximize
from strategies.submodular.selection import check_pick_params
from strategies.uncertainty import UNCERTAINTY

if TYPE_CHECKING:
    from al_loop.config import RunConfig

FASS_FUNCTIONS = ("fl", "gc", "logdet")


def fass_select(X_unl: np.ndarray, pred_unl: np.ndarray, uncertainty: np.ndarray, X_lab: np.ndarray,
                y_lab: np.ndarray, budget: int, *, beta: float = 10.0, function: str = "fl",
                optimizer: str = "lazy", rng: np.random.Generator | None = None, epsilon: float = 0.01,
                **build: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The FASS algorithm on positions.

    Parameters
    ----------
    X_unl : ndarray, shape (n_u, d)
        Embeddings of the unlabeled items (positions ``0 .. n_u-1``, in
        ascending global-id order so that ties favour the smaller id).
    pred_unl : ndarray of int64, shape (n_u,)
        Predicted class of each unlabeled item.
    uncertainty : ndarray, shape (n_u,)
        Higher = more uncertain.
    X_lab : ndarray, shape (n_l, d)
    y_lab : ndarray of int64, shape (n_l,)
        True classes of the labeled items.
    budget : int
        ``b``, at most ``n_u``.
    beta : float
        Filter size factor: keep ``min(n_u, ceil(beta * b))`` items (``beta >= 1``).
    function : {"fl", "gc", "logdet"}
    optimizer, rng, epsilon : see :func:`strategies.submodular.maximize`.
    **build : keyword arguments of :func:`strategies.submodular.build_function`.

    Returns
    -------
    positions : ndarray of int64, shape (b,)
        Positions into the unlabeled arrays, in pick order.
    gains : ndarray of float64, shape (b,)
    info : dict
    """
    if function not in FASS_FUNCTIONS:
        raise ConfigError(f"FASS function must be one of {', '.join(FASS_FUNCTIONS)}, got {function!r}")
    if not beta >= 1:
        raise ConfigError(f"FASS beta must be >= 1 (the filter keeps beta * batch items), got {beta}")
    n_u = len(X_unl)
    m = min(n_u, max(budget, math.ceil(beta * budget)))
    keep = top_k(np.arange(n_u), uncertainty, m, what="uncertainty scores").ids  # positions, most uncertain first
    keep = np.sort(keep)
    X = np.concatenate([np.asarray(X_unl)[keep].reshape(m, -1), np.asarray(X_lab).reshape(len(X_lab), -1)])
    cls = np.concatenate([np.asarray(pred_unl, dtype=np.int64)[keep], np.asarray(y_lab, dtype=np.int64)])
    parts: list[tuple[np.ndarray, SetFunction]] = []
    for c in np.unique(cls[:m]):
        members = np.flatnonzero(cls == c)  # filtered unlabeled first, then labeled
        pre = np.flatnonzero(members >= m)
        parts.append((members, build_function(function, X[members], preselect=pre, rng=rng, **build)))
    f = PartitionSum(len(X), parts)
    res = maximize(f, budget, optimizer, candidates=np.arange(m), rng=rng, epsilon=epsilon)
    info = {"function": function, "objective": res.value, "filtered": int(m), "classes": len(parts),
            "evaluations": int(res.evaluations)}
    return keep[res.positions], res.gains, info


@STRATEGIES.register("fass")
@dataclass
class FASS(Strategy):
    """Uncertainty filter then class-conditional submodular pick, the labeled set counted as selected.

    Parameters
    ----------
    beta : float
        Keep the ``beta * b`` most uncertain unlabeled items (``>= 1``).
    function : {"fl", "gc", "logdet"}
        Facility location (default), graph cut or log-determinant.
    measure : {"entropy", "margin", "least_confidence"}
    optimizer : {"lazy", "naive", "stochastic"}
    lam, reg, metric, n_neighbors, epsilon : see :func:`strategies.submodular.build_function`.
    """

    name = "fass"
    use_when: ClassVar[str] = (
        "you want uncertain items that also cover the pool, class by class (uncertainty filter, then "
        "a submodular pick).")
    requires = frozenset({"proba", "embed", "labels"})

    beta: float = 10.0
    function: str = "fl"
    measure: str = "entropy"
    optimizer: str = "lazy"
    lam: float = 0.5
    reg: float = 1.0
    metric: str = "cosine"
    n_neighbors: int = 10
    epsilon: float = 0.01

    def check_config(self, config: RunConfig) -> None:
        """The checks of :func:`fass_select` and the kernel, before the run is stored."""
        del config
        if self.measure not in UNCERTAINTY:
            raise ConfigError(f"unknown uncertainty measure {self.measure!r}; valid: {', '.join(UNCERTAINTY)}")
        if self.function not in FASS_FUNCTIONS:
            raise ConfigError(f"FASS function must be one of {', '.join(FASS_FUNCTIONS)}, got {self.function!r}")
        if not self.beta >= 1:
            raise ConfigError(f"FASS beta must be >= 1 (the filter keeps beta * batch items), got {self.beta}")
        check_pick_params(self.name, "embed", self.metric, self.optimizer, self.n_neighbors, lam=self.lam,
                          reg=self.reg)

    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        if self.measure not in UNCERTAINTY:
            raise ConfigError(f"unknown uncertainty measure {self.measure!r}; valid: {', '.join(UNCERTAINTY)}")
        unl = np.asarray(ctx.unlabeled_ids, dtype=np.int64)
        lab = np.asarray(ctx.labeled_ids, dtype=np.int64)
        proba = view.proba(unl)
        pos, gains, info = fass_select(
            view.embed(unl), proba.argmax(axis=1), UNCERTAINTY[self.measure](proba),
            view.embed(lab) if lab.size else np.zeros((0, view.embed(unl[:1]).shape[1])),
            np.asarray(ctx.labels, dtype=np.int64), budget, beta=self.beta, function=self.function,
            optimizer=self.optimizer, rng=ctx.rng, epsilon=self.epsilon, lam=self.lam, reg=self.reg,
            metric=self.metric, n_neighbors=self.n_neighbors)
        return Selection(ids=unl[pos], scores=gains, info=info)
