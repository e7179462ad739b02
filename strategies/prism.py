"""PRISM: user-guided targeted selection with submodular information measures.

Kothawade, Kaushal, Ramakrishnan, Bilmes & Iyer, "PRISM: A Rich Class of
Parameterized Submodular Information Measures for Guided Data Subset
Selection", AAAI 2022.

The user gives exemplars ``Q = ctx.query_ids`` ("find more like these") and/or
items to stay away from ``P = ctx.private_ids``; the measure follows from
which sets are given: ``Q`` only -> mutual information ``I_f(A; Q)``, ``P``
only -> conditional gain ``f(A | P)``, both -> conditional mutual information
``I_f(A; Q | P)``. ``eta`` trades query relevance against diversity, ``nu``
sets how hard ``P`` is avoided.
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
from strategies.submodular.information import resolve
from strategies.submodular.selection import check_pick_params, embed, requires_for, submodular_pick

if TYPE_CHECKING:
    from al_loop.config import RunConfig


def prism_mode(query_ids: np.ndarray | None, private_ids: np.ndarray | None) -> str:
    """``smi`` (Q only), ``scg`` (P only) or ``scmi`` (both); neither is a ConfigError."""
    has_q = query_ids is not None and len(query_ids) > 0
    has_p = private_ids is not None and len(private_ids) > 0
    if has_q and has_p:
        return "scmi"
    if has_q:
        return "smi"
    if has_p:
        return "scg"
    raise ConfigError("prism needs exemplars or items to avoid; pass --query-ids/--query-file or "
                      "--private-ids/--private-file")


@STRATEGIES.register("prism")
@dataclass
class Prism(Strategy):
    """Guided selection: more like ``ctx.query_ids``, away from ``ctx.private_ids``.

    Parameters
    ----------
    function : str
        Family ``fl`` (FLVMI / FLCG / FLCMI, default), ``flq`` (FLQMI),
        ``gc`` (GCMI / GCCG), ``logdet`` (LogDetMI / LogDetCG / LogDetCMI) or
        ``com``; the form follows from the sets given.
    eta : float
        Query relevance vs diversity (larger = closer to the exemplars).
    nu : float
        Private-set hardness (larger = further from ``P``).
    embedding : {"embed", "grad", "features"}
        What represents an item (penultimate features by default).
    lam, reg, metric, n_neighbors : see :func:`strategies.submodular.build_function`.
    optimizer, epsilon : see :func:`strategies.submodular.maximize`.
    """

    name = "prism"
    use_when: ClassVar[str] = (
        "you hold examples of what you need (--query-ids) or must avoid (--private-ids) and want more"
        " like them.")

    function: str = "fl"
    eta: float = 1.0
    nu: float = 1.0
    embedding: str = "embed"
    lam: float = 0.5
    reg: float = 1.0
    metric: str = "cosine"
    n_neighbors: int = 10
    optimizer: str = "lazy"
    epsilon: float = 0.01

    @property  # type: ignore[override]
    def requires(self) -> frozenset[str]:  # depends on the embedding parameter
        return requires_for(self.embedding)

    def check_config(self, config: RunConfig) -> None:
        """Prism needs a query or private set, and a function that has the form those sets ask for."""
        mode = prism_mode(np.asarray(config.query_ids, dtype=np.int64),
                          np.asarray(config.private_ids, dtype=np.int64))
        resolve(self.function, mode)
        check_pick_params(self.name, self.embedding, self.metric, self.optimizer, self.n_neighbors,
                          eta=self.eta, nu=self.nu, lam=self.lam, reg=self.reg)

    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        mode = prism_mode(ctx.query_ids, ctx.private_ids)
        name = resolve(self.function, mode)
        q = np.unique(np.asarray(ctx.query_ids if ctx.query_ids is not None else [], dtype=np.int64))
        p = np.unique(np.asarray(ctx.private_ids if ctx.private_ids is not None else [], dtype=np.int64))
        unl = np.asarray(ctx.unlabeled_ids, dtype=np.int64)
        cand = unl[~np.isin(unl, np.concatenate([q, p]))]  # exemplars and avoided items are not picked
        if cand.size < budget:
            cand = unl
        sel = submodular_pick(
            embed(view, cand, self.embedding), cand, budget, name,
            embed(view, q, self.embedding) if mode in ("smi", "scmi") else None,
            embed(view, p, self.embedding) if mode in ("scg", "scmi") else None,
            optimizer=self.optimizer, rng=ctx.rng, epsilon=self.epsilon, eta=self.eta, nu=self.nu, lam=self.lam,
            reg=self.reg, metric=self.metric, n_neighbors=self.n_neighbors)
        return Selection(ids=sel.ids, scores=sel.scores, info=dict(sel.info, mode=mode))
