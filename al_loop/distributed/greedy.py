"""Thin adapters to the single-machine greedy algorithms used inside partition tasks.

Id frame: positions of the matrices passed in; callers (the partition tasks
of :mod:`al_loop.distributed.selection`) sort rows by global id first, so a
tie goes to the smaller global id, and map positions back to ids.

The concrete algorithms live in ``strategies`` (``strategies.kcenter``,
``strategies.submodular``); they are imported inside the functions, on the
workers, so the core package never imports a concrete strategy at module
level. Swapping the algorithm is a change of one line here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def k_center(candidates: tuple[np.ndarray, np.ndarray], centers: tuple[np.ndarray, np.ndarray], k: int,
             metric: str = "euclidean", dtype: str = "float32",
             prune: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy k-center over ``candidates`` with ``centers`` as the initial centers.

    Rows of both are merged and sorted by global id before the greedy runs,
    exactly as :class:`strategies.kcenter.KCenterGreedy` does on one machine,
    so one partition holding every candidate gives the single-machine picks
    bit for bit (same working copy, same tie-breaking by the smaller id).

    Parameters
    ----------
    candidates : (ndarray of int64 (n,), ndarray (n, d))
        Global ids and vectors of the points that may be picked.
    centers : (ndarray of int64 (n_c,), ndarray (n_c, d))
        Global ids and vectors of the initial centers (never picked).
    k : int
    metric : {"euclidean", "cosine"}
    dtype : str
        Working dtype (see :func:`strategies.kcenter.k_center_greedy`).
    prune : bool
        Triangle-inequality pruned variant (same picks).

    Returns
    -------
    ids : ndarray of int64, shape (k',)
        Picked global ids in pick order.
    scores : ndarray of float64, shape (k',)
        Distance to the nearest center at pick time.
    X : ndarray, shape (k', d)
        Vectors of the picks.
    """
    from strategies._geometry import DTYPES, working_copy
    from strategies.kcenter import k_center_greedy

    c_ids, c_X = candidates
    if len(c_ids) == 0 or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros((0, 0))
    l_ids, l_X = centers
    d = np.asarray(c_X).reshape(len(c_ids), -1).shape[1]
    ids = np.concatenate([c_ids, l_ids])
    X = np.concatenate([np.asarray(c_X).reshape(len(c_ids), d), np.asarray(l_X).reshape(len(l_ids), d)])
    order = np.argsort(ids, kind="stable")
    ids, X = ids[order], X[order]
    cosine = metric == "cosine"
    W = working_copy(X, "k-center points", DTYPES[dtype], center=not cosine, normalize=cosine)
    picks, scores = k_center_greedy(W, np.searchsorted(ids, np.sort(l_ids)), k, metric, prune=prune)
    return ids[picks], np.asarray(scores, dtype=np.float64), X[picks]


def facility_location(X: np.ndarray, n_candidates: int, n_preselect: int, k: int, *, metric: str = "cosine",
                      gamma: float | None = None, n_neighbors: int = 10, dense_limit: int = 4096,
                      optimizer: str = "lazy", seed: int | tuple[int, ...] = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Greedy facility location: pick ``k`` of the first ``n_candidates`` rows.

    The represented set is every row of ``X``; the last ``n_preselect`` rows
    (the labeled set) count as already selected (``f(A | L)``).

    Parameters
    ----------
    X : ndarray, shape (n, d)
        Candidates first (sorted by global id), then represented-only rows,
        then the ``n_preselect`` preselected rows.
    n_candidates, n_preselect, k : int
    metric, gamma, n_neighbors : kernel options (:mod:`strategies.submodular.kernels`).
    dense_limit : int
        Dense kernel up to this many rows, sparse kNN above.
    optimizer : {"lazy", "naive", "stochastic"}
    seed : int or tuple of int
        Entropy of ``numpy.random.default_rng(seed)``: seeds the approximate kNN cells of large
        sets and stochastic greedy.

    Returns
    -------
    positions : ndarray of int64, shape (k',)
    gains : ndarray of float64, shape (k',)
    value : float
        ``f(picks | preselected)`` on this ground set.
    """
    from strategies.submodular import build_function, maximize

    n = len(X)
    if n_candidates <= 0 or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64), 0.0
    rng = np.random.default_rng(list(seed) if isinstance(seed, tuple) else seed)
    cells = None if n <= 50_000 else max(2, math.ceil(n / 4096))
    f: Any = build_function("fl", np.asarray(X).reshape(n, -1), metric=metric, gamma=gamma,
                            n_neighbors=n_neighbors, dense_limit=dense_limit, cells=cells, rng=rng,
                            preselect=np.arange(n - n_preselect, n))
    res = maximize(f, k, optimizer, candidates=np.arange(n_candidates), rng=rng)
    return np.asarray(res.positions, np.int64), np.asarray(res.gains, np.float64), float(res.value)
