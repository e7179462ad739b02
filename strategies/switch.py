"""Budget-aware switch: a typicality strategy while labels are few, uncertainty after.

Hacohen, Dekel and Weinshall (ICML 2022) show that typical/diverse picks win
at low budgets and uncertainty wins at high budgets; TCM (Doucet, Estermann,
Aczel and Wattenhofer, "Bridging diversity and uncertainty in active learning
with self-supervised pre-training", 2024) composes exactly TypiClust then
Margin. This strategy composes any two registered strategies by name
(``STRATEGIES.get(name)(**params)``): the loop needs no special case.

The switch point
----------------
``switch_at`` is one of

- ``"auto"`` (the default): use ``first`` while the labeled set holds fewer
  than ``labels_per_class`` labels per class, i.e. ``len(ctx.labeled_ids) <
  labels_per_class * len(ctx.classes)``, and ``then`` from there on. Hacohen
  et al. state the low-budget regime in labels per class; on the benchmark
  settings (``benchmarks/label_efficiency.md``, 5 seeds, paired) margin's
  curve overtakes TypiClust's between 80 and 90 labels on digits (8-9 per
  class) and between 120 and 140 on Fashion-MNIST PCA-50 (12-14 per class),
  so the default of 10 per class fires near the crossover on both. It needs
  no test labels, is monotone in the label count (it never switches back),
  and on two classes it starts margin at 20 labels, where on Rotten Tomatoes
  margin beats TypiClust from the first round;
- an int: use ``first`` while ``len(ctx.labeled_ids) < switch_at``;
- ``"loo"``: the earlier rule, use ``first`` while the leave-one-out accuracy
  of a 1-nearest-neighbour classifier on the labeled set (in ``space``) is
  below ``min_accuracy``. It never fired on Fashion-MNIST (below 0.7 up to
  220 labels) or text (chance), and on digits it switched back and forth,
  because margin's picks near class boundaries lower the very accuracy it
  watches.

Every rule reads ``ctx`` and the view alone, so nothing is remembered between
rounds and a resumed run decides exactly as the uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from al_loop.errors import ConfigError
from al_loop.registry import STRATEGIES
from al_loop.strategy import Strategy
from al_loop.types import QueryContext, Selection
from al_loop.view import ModelView
from strategies._embedding_space import check_space, round_points, row_blocks, squared_distances


def loo_nn_accuracy(X: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out accuracy of 1-nearest-neighbour on labeled points.

    Parameters
    ----------
    X : ndarray of float, shape (n, d)
        Labeled points.
    labels : ndarray of int, shape (n,)
        Their classes.

    Returns
    -------
    float
        Share of points whose nearest *other* point has the same label
        (ties: the lower row); 0 for fewer than two points.
    """
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    n = len(X)
    if n < 2:
        return 0.0
    sq = np.einsum("ij,ij->i", X, X)
    hits = 0
    for rows in row_blocks(n, n):
        d2 = squared_distances(X[rows], X, sq)
        d2[np.arange(rows.stop - rows.start), np.arange(rows.start, rows.stop)] = np.inf
        hits += int((labels[d2.argmin(axis=1)] == labels[rows]).sum())
    return hits / n


RULES = ("auto", "loo")


@STRATEGIES.register("switch")
@dataclass
class Switch(Strategy):
    """``first`` while labels are few, ``then`` afterwards.

    Parameters
    ----------
    first, then : str
        Registered strategy names (defaults: TypiClust, then margin).
    switch_at : int, "auto" or "loo"
        Labels from which ``then`` is used, ``"auto"`` (``labels_per_class``
        labels per class) or ``"loo"`` (leave-one-out 1-NN rule); see the
        module docstring.
    first_params, then_params : dict
        Keyword parameters of the two strategies.
    labels_per_class : int
        ``"auto"`` switches once the labeled set holds this many labels per class.
    min_accuracy : float
        ``"loo"`` switches once the labeled set's leave-one-out 1-NN accuracy reaches this.
    space : {"features", "pca", "embed"}
        Space of the ``"loo"`` nearest-neighbour measure.

    Notes
    -----
    ``requires`` declares what the default composition needs (``proba`` for
    margin); :meth:`check_learner` checks both strategies actually chosen.
    ``info`` records the round's decision: ``"phase"`` (the name of the
    strategy that ran, e.g. ``"typiclust"`` or ``"margin"``), ``"stage"``
    (``"first"`` / ``"then"``), ``"rule"``, ``"n_labeled"``, the signal the
    rule compared (``"switch_at_labels"``, or ``"loo_nn_accuracy"`` with
    ``"min_accuracy"``) and the inner strategy's info under ``"inner"``.
    """

    name = "switch"
    use_when: ClassVar[str] = (
        "you do not know which budget regime you are in: typicality while labels are few, then "
        "margin.")
    requires = frozenset({"proba"})
    first: str = "typiclust"
    then: str = "margin"
    switch_at: int | str = "auto"
    first_params: dict[str, Any] = field(default_factory=dict)
    then_params: dict[str, Any] = field(default_factory=dict)
    labels_per_class: int = 10
    min_accuracy: float = 0.85
    space: str = "pca"

    def __post_init__(self) -> None:
        if isinstance(self.switch_at, str):
            if self.switch_at not in RULES:
                raise ConfigError(f"switch switch_at={self.switch_at!r} is not a label count or a rule; "
                                  "pass a number, 'auto' (labels per class) or 'loo' (1-NN accuracy)")
        elif isinstance(self.switch_at, bool) or not isinstance(self.switch_at, int) or self.switch_at < 0:
            raise ConfigError(f"switch switch_at must be a label count >= 0, 'auto' or 'loo', got "
                              f"{self.switch_at!r}; pass e.g. --param switch.switch_at=100")
        if (isinstance(self.labels_per_class, bool) or not isinstance(self.labels_per_class, int)
                or self.labels_per_class < 1):
            raise ConfigError(f"switch labels_per_class must be an integer >= 1, got {self.labels_per_class!r}; "
                              "pass e.g. --param switch.labels_per_class=10")
        if not (isinstance(self.min_accuracy, int | float) and 0 < self.min_accuracy <= 1):
            raise ConfigError(f"switch min_accuracy must be in (0, 1], got {self.min_accuracy!r}; "
                              "pass e.g. --param switch.min_accuracy=0.9")
        check_space(self.space, self.name)
        for which in ("first", "then"):
            if getattr(self, which) == self.name:
                raise ConfigError(f"switch {which}='switch' would nest the switch in itself; name another strategy")
            self._inner(which)  # unknown names and bad parameters fail at construction

    def _inner(self, which: str) -> Strategy:
        name, params = (self.first, self.first_params) if which == "first" else (self.then, self.then_params)
        cls = STRATEGIES.get(name)
        try:
            return cls(**dict(params))  # type: ignore[no-any-return]
        except TypeError as exc:
            valid = [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
            raise ConfigError(f"bad {which}_params {sorted(params)} for strategy {name!r} ({exc}); "
                              f"valid parameters: {valid or 'none'}") from None

    def check_learner(self, capabilities: frozenset[str]) -> None:
        self._inner("first").check_learner(capabilities)
        self._inner("then").check_learner(capabilities)

    def labeled_accuracy(self, view: ModelView, ctx: QueryContext) -> float:
        """Leave-one-out 1-NN accuracy of the labeled set in ``space`` (the ``"loo"`` rule)."""
        ids, X = round_points(view, ctx, self.space)
        rows = np.searchsorted(ids, ctx.labeled_ids)  # ids ascending and holding every labeled id
        return loo_nn_accuracy(X[rows], ctx.labels)

    def switch_labels(self, n_classes: int) -> int | None:
        """Label count from which ``then`` runs (None for the ``"loo"`` rule, which watches no count)."""
        if self.switch_at == "loo":
            return None
        if self.switch_at == "auto":
            return self.labels_per_class * n_classes
        return int(self.switch_at)

    def decide(self, view: ModelView, ctx: QueryContext) -> dict[str, Any]:
        """The round's stage (``"first"`` or ``"then"``), the rule and the signal it compared."""
        n_labeled = len(ctx.labeled_ids)
        rule = self.switch_at if isinstance(self.switch_at, str) else "labels"
        decision: dict[str, Any] = {"rule": rule, "n_labeled": n_labeled}
        threshold = self.switch_labels(len(ctx.classes))
        if threshold is None:
            acc = self.labeled_accuracy(view, ctx)
            decision.update(loo_nn_accuracy=acc, min_accuracy=float(self.min_accuracy))
            decision["stage"] = "first" if acc < self.min_accuracy else "then"
        else:
            decision["switch_at_labels"] = threshold
            decision["stage"] = "first" if n_labeled < threshold else "then"
        return decision

    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        info = self.decide(view, ctx)
        inner = self._inner(info["stage"])
        sel = inner.select(view, ctx, budget)
        info.update(phase=inner.name, inner=sel.info)
        return Selection(ids=sel.ids, scores=sel.scores, info=info)
