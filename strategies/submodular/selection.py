"""Glue between the strategy classes and the core: embed, build, maximise, map back.

Id frame: takes global pool ids (``cand_ids``) and returns global ids in a
:class:`~al_loop.types.Selection`; positions stay inside.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from al_loop.errors import ConfigError, DataError
from al_loop.types import Selection
from al_loop.view import ModelView
from strategies.submodular.information import build_function
from strategies.submodular.maximizers import maximize

EMBEDDINGS = ("grad", "embed", "features")


def embed(view: ModelView, ids: np.ndarray, embedding: str) -> np.ndarray:
    """Rows of ``view`` for global ``ids``: gradient embeddings, penultimate features or inputs.

    Returns
    -------
    ndarray, shape (len(ids), D)
    """
    if embedding == "grad":
        return np.asarray(view.grad_embed(ids))
    if embedding == "embed":
        return np.asarray(view.embed(ids))
    if embedding == "features":
        return np.asarray(view.features(ids))
    raise ConfigError(f"unknown embedding {embedding!r}; valid: {', '.join(EMBEDDINGS)}")


def requires_for(embedding: str) -> frozenset[str]:
    """The learner capability an embedding choice needs (for ``Strategy.requires``)."""
    return frozenset({"grad"} if embedding == "grad" else {"embed"} if embedding == "embed" else set())


def check_pick_params(strategy: str, embedding: str, metric: str, optimizer: str, n_neighbors: int,
                      **weights: float) -> None:
    """The parameter checks :func:`submodular_pick` would make, without any data (for ``check_config``).

    ``weights`` are the non-negative scalars (``eta``, ``nu``, ``lam``, ``reg``).
    """
    from strategies.submodular.kernels import METRICS
    from strategies.submodular.maximizers import METHODS

    if embedding not in EMBEDDINGS:
        raise ConfigError(f"strategy {strategy!r} got embedding={embedding!r}; use one of {', '.join(EMBEDDINGS)}")
    if metric not in METRICS:
        raise ConfigError(f"strategy {strategy!r} got metric={metric!r}; use one of {', '.join(METRICS)}")
    if optimizer not in METHODS:
        raise ConfigError(f"strategy {strategy!r} got optimizer={optimizer!r}; use one of {', '.join(METHODS)}")
    if n_neighbors < 1:
        raise ConfigError(f"strategy {strategy!r} got n_neighbors={n_neighbors}; use 1 or more")
    for pname, val in weights.items():
        if not np.isfinite(val) or val < 0:
            raise ConfigError(f"strategy {strategy!r} got {pname}={val}; use a finite number >= 0")


def submodular_pick(X: np.ndarray, cand_ids: np.ndarray, budget: int, function: str,
                    Xq: np.ndarray | None = None, Xp: np.ndarray | None = None, *, optimizer: str = "lazy",
                    rng: np.random.Generator | None = None, epsilon: float = 0.01,
                    **build: Any) -> Selection:
    """Maximise ``function`` over the candidates and return their global ids in pick order.

    Parameters
    ----------
    X : ndarray, shape (n, d)
        Embeddings of the candidates, row ``i`` for ``cand_ids[i]``.
    cand_ids : ndarray of int64, shape (n,)
        Global ids of the candidates (sorted ascending: ties go to the smaller id).
    budget : int
    function : str
        A name from :data:`strategies.submodular.FUNCTIONS`.
    Xq, Xp : ndarray, optional
        Embeddings of the query / private items.
    optimizer, rng, epsilon : see :func:`strategies.submodular.maximize`.
    **build : keyword arguments of :func:`strategies.submodular.build_function`.

    Returns
    -------
    Selection
        ``scores`` are the marginal gains at pick time.
    """
    t0 = time.perf_counter()
    f = build_function(function, X, Xq, Xp, rng=rng, **build)
    res = maximize(f, budget, optimizer, rng=rng, epsilon=epsilon)
    if not np.isfinite(res.gains).all():
        raise DataError(f"{function} produced a non-finite gain; check the embeddings for extreme values")
    info = {"function": function, "objective": res.value, "evaluations": int(res.evaluations),
            "optimizer": optimizer, "n_query": 0 if Xq is None else len(Xq),
            "n_private": 0 if Xp is None else len(Xp), "seconds": round(time.perf_counter() - t0, 4)}
    return Selection(ids=np.asarray(cand_ids, dtype=np.int64)[res.positions], scores=res.gains, info=info)
