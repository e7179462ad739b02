"""SIMILAR: submodular information measures for targeted active learning.

Kothawade, Beck, Killamsetty & Iyer, "SIMILAR: Submodular Information
Measures Based Active Learning In Realistic Scenarios", NeurIPS 2021.

The query set ``Q`` and private set ``P`` come from what the loop knows
(:func:`similar_sets`):

- rare-class targeting: ``Q`` = labeled items of the classes whose labeled
  share is below ``rare_share`` (mode ``smi``: maximise ``I_f(A; Q)``);
- redundancy avoidance: ``P`` = the labeled set (mode ``scg``: ``f(A | P)``);
- out-of-distribution avoidance: ``P`` = ``ctx.private_ids``, the items
  annotators marked out of distribution;
- both at once with mode ``scmi``: ``I_f(A; Q | P)``.

Items are represented by gradient embeddings (BADGE-style, the paper's
choice) or by penultimate features (``embedding="embed"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from al_loop.errors import ConfigError
from al_loop.registry import STRATEGIES
from al_loop.strategy import Strategy
from al_loop.types import QueryContext, Selection
from al_loop.view import ModelView
from strategies.submodular.information import resolve_fallback
from strategies.submodular.selection import check_pick_params, embed, requires_for, submodular_pick

if TYPE_CHECKING:
    from al_loop.config import RunConfig

TARGETS = ("rare", "none")
AVOIDS = ("none", "labeled", "ood", "labeled+ood")


def rare_classes(labels: np.ndarray, n_classes: int, rare_share: float | None = None) -> np.ndarray:
    """Classes whose share of the labeled set is below ``rare_share``.

    Parameters
    ----------
    labels : ndarray of int64, shape (n_l,)
    n_classes : int
    rare_share : float, optional
        Threshold on ``count_c / n_l``; default ``0.5 / n_classes`` (half the
        balanced share). Classes with no label cannot be targeted (no
        exemplar). When no labeled class is below the threshold, the least
        frequent labeled classes are returned.

    Returns
    -------
    ndarray of int64, sorted
    """
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64)
    counts = np.bincount(labels, minlength=n_classes)
    share = counts / labels.size
    thr = 0.5 / n_classes if rare_share is None else float(rare_share)
    seen = counts > 0
    rare = np.flatnonzero(seen & (share < thr))
    if rare.size == 0:
        rare = np.flatnonzero(seen & (counts == counts[seen].min()))
    return rare.astype(np.int64)


def similar_sets(labeled_ids: np.ndarray, labels: np.ndarray, n_classes: int, private_ids: np.ndarray | None,
                 target: str = "rare", avoid: str = "none",
                 rare_share: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Build SIMILAR's query set ``Q`` and private set ``P`` (global ids) from the round's snapshot.

    Parameters
    ----------
    labeled_ids : ndarray of int64, shape (n_l,)
        Global ids with labels.
    labels : ndarray of int64, shape (n_l,)
    n_classes : int
    private_ids : ndarray of int64 or None
        Items marked out of distribution (``ctx.private_ids``).
    target : {"rare", "none"}
        ``rare``: ``Q`` = labeled items of :func:`rare_classes`.
    avoid : {"none", "labeled", "ood", "labeled+ood"}
        What ``P`` holds.
    rare_share : float, optional
        See :func:`rare_classes`.

    Returns
    -------
    query_ids, private_ids : ndarray of int64
        Sorted global ids (possibly empty).
    """
    if target not in TARGETS:
        raise ConfigError(f"unknown SIMILAR target {target!r}; valid: {', '.join(TARGETS)}")
    if avoid not in AVOIDS:
        raise ConfigError(f"unknown SIMILAR avoid {avoid!r}; valid: {', '.join(AVOIDS)}")
    labeled_ids = np.asarray(labeled_ids, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    q = np.zeros(0, dtype=np.int64)
    if target == "rare":
        q = np.sort(labeled_ids[np.isin(labels, rare_classes(labels, n_classes, rare_share))])
    parts = []
    if avoid in ("labeled", "labeled+ood"):
        parts.append(labeled_ids)
    if avoid in ("ood", "labeled+ood") and private_ids is not None:
        parts.append(np.asarray(private_ids, dtype=np.int64))
    p = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
    return q, p


def effective_mode(mode: str, n_query: int, n_private: int) -> str:
    """The mode that the available sets allow: a missing set drops its term (scmi -> smi/scg -> base)."""
    has_q, has_p = n_query > 0, n_private > 0
    if mode == "scmi":
        return "scmi" if has_q and has_p else "smi" if has_q else "scg" if has_p else "base"
    if mode == "smi":
        return "smi" if has_q else "base"
    if mode == "scg":
        return "scg" if has_p else "base"
    raise ConfigError(f"unknown SIMILAR mode {mode!r}; valid: smi, scg, scmi")


@STRATEGIES.register("similar")
@dataclass
class Similar(Strategy):
    """SIMILAR with modes SMI, SCG, SCMI over gradient (or penultimate) embeddings.

    Parameters
    ----------
    mode : {"smi", "scg", "scmi"}
        Which measure; when a set it needs is empty this round (no private
        items yet) the term is dropped and ``info["mode"]`` says so.
    function : str
        A family (``fl``, ``flq``, ``gc``, ``logdet``, ``com``) resolved per
        mode, or an explicit name (``flqmi``, ``logdetcmi`` ...).
    target, avoid, rare_share : see :func:`similar_sets`.
    embedding : {"grad", "embed"}
        ``grad`` (default) needs a learner with gradient embeddings.
    eta, nu, lam, reg, metric, n_neighbors : see :func:`strategies.submodular.build_function`.
    optimizer, epsilon : see :func:`strategies.submodular.maximize`.
    """

    name = "similar"
    use_when: ClassVar[str] = (
        "rare classes or out-of-distribution items must be found (or avoided), with or without query "
        "and private sets.")

    mode: str = "smi"
    function: str = "flq"
    target: str = "rare"
    avoid: str = "none"
    rare_share: float | None = None
    embedding: str = "grad"
    eta: float = 1.0
    nu: float = 1.0
    lam: float = 0.5
    reg: float = 1.0
    metric: str = "cosine"
    n_neighbors: int = 10
    optimizer: str = "lazy"
    epsilon: float = 0.01

    @property  # type: ignore[override]
    def requires(self) -> frozenset[str]:  # depends on the embedding parameter
        return requires_for(self.embedding) | {"labels"}

    def check_config(self, config: RunConfig) -> None:
        """Valid ``mode``/``target``/``avoid``, a function with a form for ``mode``, sane kernel parameters."""
        del config  # SIMILAR builds its sets from the labels of each round
        if self.target not in TARGETS:
            raise ConfigError(f"unknown SIMILAR target {self.target!r}; valid: {', '.join(TARGETS)}")
        if self.avoid not in AVOIDS:
            raise ConfigError(f"unknown SIMILAR avoid {self.avoid!r}; valid: {', '.join(AVOIDS)}")
        effective_mode(self.mode, 0, 0)  # raises on an unknown mode
        resolve_fallback(self.function, self.mode, "base")
        check_pick_params(self.name, self.embedding, self.metric, self.optimizer, self.n_neighbors,
                          eta=self.eta, nu=self.nu, lam=self.lam, reg=self.reg)

    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        q_ids, p_ids = similar_sets(ctx.labeled_ids, ctx.labels, len(ctx.classes), ctx.private_ids,
                                    self.target, self.avoid, self.rare_share)
        mode = effective_mode(self.mode, q_ids.size, p_ids.size)
        name = resolve_fallback(self.function, self.mode, mode)
        unl = np.asarray(ctx.unlabeled_ids, dtype=np.int64)
        cand = unl[~np.isin(unl, p_ids)]
        if cand.size < budget:
            cand = unl
        sel = submodular_pick(
            embed(view, cand, self.embedding), cand, budget, name,
            embed(view, q_ids, self.embedding) if mode in ("smi", "scmi") else None,
            embed(view, p_ids, self.embedding) if mode in ("scg", "scmi") else None,
            optimizer=self.optimizer, rng=ctx.rng, epsilon=self.epsilon, eta=self.eta, nu=self.nu, lam=self.lam,
            reg=self.reg, metric=self.metric, n_neighbors=self.n_neighbors)
        info = dict(sel.info, mode=mode, rare_query=int(q_ids.size))
        return Selection(ids=sel.ids, scores=sel.scores, info=info)
