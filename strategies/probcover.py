"""ProbCover: greedy maximum coverage of delta-balls (low-budget active learning).

Yehuda, Dekel, Hacohen and Weinshall, "Active learning through a covering
lens", NeurIPS 2022. Points are the vertices of a directed graph with an edge
``x -> y`` when ``||x - y|| < delta`` (every point reaches itself). A point is
*covered* when it lies in the ball of a labeled or selected point. Greedily,
pick the unlabeled point whose ball holds the most points not yet covered
(ties: the smaller global id), then mark its ball covered. Points within delta
of a labeled point are covered from the start. When every point is covered
(no pick gains anything) the rest of the budget is drawn uniformly from
``ctx.rng``, as in the paper.

``delta="auto"`` follows the paper's rule: cluster the points with k-means
(k = number of classes) and take the largest delta whose *purity* - the share
of balls whose points all share one cluster - is at least ``alpha`` (0.95).
A ball around ``x`` is pure exactly when ``delta <= d*(x)``, the distance
from ``x`` to the nearest point of another cluster, so purity falls with
delta and the largest admissible delta is an order statistic of ``d*``: no
grid search is needed. The rule's k-means uses the fixed seed
:data:`DELTA_SEED`, so delta depends on the points alone, as in the paper,
where it is chosen once before the first round; radius and ball graph are
kept per process (keyed by a digest of the points), so later rounds on the
same pool only run the greedy.

The graph is built in row blocks as a sparse matrix; nothing N x N is held.

Id frame: the pure functions work on row positions; :class:`ProbCover` maps
them to global ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from al_loop.errors import ConfigError, DataError
from al_loop.registry import STRATEGIES
from al_loop.strategy import Strategy
from al_loop.types import QueryContext, Selection
from al_loop.view import ModelView
from strategies._embedding_space import (
    DigestCache,
    check_space,
    derived_key,
    digest_key,
    kmeans_labels,
    round_points,
    row_blocks,
    space_requires,
    squared_distances,
)

#: Ball centres used to estimate purity for ``delta="auto"`` (a uniform sample above this).
PURITY_CENTRES = 20000
#: Seed of the purity rule's k-means and centre sample: fixed, so delta is a function of the points alone.
DELTA_SEED = 0
#: Radii and ball graphs kept per process: the pool does not change between rounds, so both are built once.
_RADIUS_CACHE = DigestCache(4)
_GRAPH_CACHE = DigestCache(2)


def ball_graph(X: np.ndarray, delta: float) -> sp.csr_matrix:
    """Sparse adjacency of the delta-ball graph, built block by block.

    Parameters
    ----------
    X : ndarray of float, shape (n, d)
    delta : float
        Ball radius (> 0); the edge ``i -> j`` exists iff ``||X_i - X_j|| < delta``.

    Returns
    -------
    scipy.sparse.csr_matrix of bool, shape (n, n)
        Symmetric, with every diagonal entry set.
    """
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    sq = np.einsum("ij,ij->i", X, X)
    d2max = float(delta) ** 2
    rows_parts, cols_parts = [], []
    for rows in row_blocks(n, n):
        d2 = squared_distances(X[rows], X, sq)
        d2[np.arange(rows.stop - rows.start), np.arange(rows.start, rows.stop)] = 0.0  # exact self-distance
        r, c = np.nonzero(d2 < d2max)
        rows_parts.append(r + rows.start)
        cols_parts.append(c)
    r = np.concatenate(rows_parts) if rows_parts else np.empty(0, dtype=np.int64)
    c = np.concatenate(cols_parts) if cols_parts else np.empty(0, dtype=np.int64)
    return sp.csr_matrix((np.ones(len(r), dtype=bool), (r, c)), shape=(n, n))


def probcover_greedy(graph: sp.csr_matrix, labeled: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy max coverage on a ball graph.

    Parameters
    ----------
    graph : csr_matrix, shape (n, n)
        Symmetric ball graph (:func:`ball_graph`); rows in ascending
        global-id order so that ties go to the smaller id.
    labeled : ndarray of bool, shape (n,)
        Rows with a label: their balls are covered from the start; never picked.
    budget : int
        Most rows to pick.

    Returns
    -------
    rows : ndarray of int64, shape (m,), m <= budget
        Picked rows in order; fewer than ``budget`` once everything is covered.
    gains : ndarray of float64, shape (m,)
        Newly covered points of each pick (marginal gain), non-increasing.
    """
    graph = sp.csr_matrix(graph, dtype=bool)
    n = graph.shape[0]
    indptr, indices = graph.indptr, graph.indices
    labeled = np.asarray(labeled, dtype=bool)
    covered = np.zeros(n, dtype=bool)
    if labeled.any():
        covered[graph[np.flatnonzero(labeled)].indices] = True
    # out-degree into uncovered points; -1 marks rows that can no longer be picked
    degree = (graph.astype(np.int64) @ (~covered).astype(np.int64)).astype(np.int64)
    degree[labeled] = -1
    rows_out: list[int] = []
    gains: list[float] = []
    for _ in range(int(budget)):
        best = int(np.argmax(degree))  # first maximum = smallest row = smallest global id
        if degree[best] <= 0:
            break
        ball = indices[indptr[best]:indptr[best + 1]]
        fresh = ball[~covered[ball]]
        rows_out.append(best)
        gains.append(float(fresh.size))
        covered[fresh] = True
        # a newly covered y no longer counts for any x with x -> y; symmetric graph: x in ball(y)
        if fresh.size:
            degree -= np.bincount(graph[fresh].indices, minlength=n)
        degree[best] = -1
        degree[labeled] = -1
        np.maximum(degree, -1, out=degree)
    return np.asarray(rows_out, dtype=np.int64), np.asarray(gains, dtype=np.float64)


def nearest_other_cluster(X: np.ndarray, clusters: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Distance from each centre row to the nearest row of another cluster, shape (len(centres),).

    ``inf`` when every row is in the centre's cluster.
    """
    X = np.asarray(X, dtype=np.float64)
    sq = np.einsum("ij,ij->i", X, X)
    out = np.empty(len(centres))
    for block in row_blocks(len(centres), len(X)):
        rows = centres[block]
        d2 = squared_distances(X[rows], X, sq)
        d2[clusters[rows][:, None] == clusters[None, :]] = np.inf
        out[block] = np.sqrt(d2.min(axis=1))
    return out


def purity(X: np.ndarray, clusters: np.ndarray, delta: float) -> float:
    """Share of the balls ``B(x, delta)`` (strict) whose points all share x's cluster."""
    d_star = nearest_other_cluster(X, np.asarray(clusters), np.arange(len(X)))
    return float(np.mean(d_star >= delta))


def auto_delta(X: np.ndarray, clusters: np.ndarray, alpha: float = 0.95,
               centres: np.ndarray | None = None) -> float:
    """The largest delta whose ball purity is at least ``alpha``.

    Parameters
    ----------
    X : ndarray of float, shape (n, d)
    clusters : ndarray of int, shape (n,)
        Cluster of each row (k-means with k = number of classes in the paper).
    alpha : float
        Purity threshold in (0, 1].
    centres : ndarray of int, optional
        Rows whose balls are counted (all rows by default; a sample on big pools).

    Returns
    -------
    float
        ``delta`` such that ``purity(delta) >= alpha`` and every larger delta
        has purity ``< alpha``; ``inf`` when there is a single cluster.
    """
    centres = np.arange(len(X)) if centres is None else np.asarray(centres)
    d_star = np.sort(nearest_other_cluster(X, np.asarray(clusters), centres))[::-1]
    m = max(1, math.ceil(alpha * len(d_star) - 1e-9))
    return float(d_star[m - 1])  # exactly m of the balls (or more, on ties) are pure at this radius


def purity_radius(X: np.ndarray, n_classes: int, alpha: float) -> float:
    """The paper's ``delta``: k-means with ``max(2, n_classes)`` clusters (seed :data:`DELTA_SEED`), then
    :func:`auto_delta` over all rows (a uniform sample of :data:`PURITY_CENTRES` above that)."""
    rng = np.random.default_rng(DELTA_SEED)
    clusters = kmeans_labels(X, max(2, n_classes), DELTA_SEED)
    centres = np.arange(len(X))
    if len(X) > PURITY_CENTRES:
        centres = np.sort(rng.choice(len(X), size=PURITY_CENTRES, replace=False))
    return auto_delta(X, clusters, alpha, centres)


@STRATEGIES.register("probcover")
@dataclass
class ProbCover(Strategy):
    """ProbCover (Yehuda et al., NeurIPS 2022): greedy maximum coverage of delta-balls.

    Parameters
    ----------
    delta : float or "auto"
        Ball radius in ``space`` (distances are Euclidean), or ``"auto"``
        for the paper's purity rule.
    alpha : float
        Purity threshold of ``delta="auto"`` (0.95 in the paper).
    space : {"features", "pca", "embed"}
        Where distances are measured (see :mod:`strategies._embedding_space`).
        ``"pca"`` by default: as good as raw features on digits and
        Fashion-MNIST in ``benchmarks/cold_start_quick.py`` and ~16x cheaper
        on 784-pixel images.

    Notes
    -----
    ``Selection.scores`` holds each pick's marginal coverage gain (points
    newly covered); random fallback picks score 0. ``info`` has the delta
    used, the coverage before and after, the edge count and the number of
    random fallback picks.
    """

    name = "probcover"
    tasks: ClassVar[frozenset[str]] = frozenset({"single", "multi"})
    use_when: ClassVar[str] = (
        "the budget is tiny (a few labels per class): covers the dense regions of the data; also a "
        "seed batch (--init-strategy probcover).")
    requires = frozenset()
    delta: float | str = "auto"
    alpha: float = 0.95
    space: str = "pca"

    def __post_init__(self) -> None:
        check_space(self.space, self.name)
        if isinstance(self.delta, str):
            if self.delta != "auto":
                raise ConfigError(f"probcover delta={self.delta!r} is not a number; pass a positive float or 'auto'")
        elif isinstance(self.delta, bool) or not (isinstance(self.delta, int | float) and self.delta > 0
                                                   and math.isfinite(self.delta)):
            raise ConfigError(f"probcover delta must be a positive finite radius, got {self.delta!r}; "
                              "pass e.g. --param probcover.delta=0.5 or delta=auto")
        if not (isinstance(self.alpha, int | float) and 0 < self.alpha <= 1):
            raise ConfigError(f"probcover alpha must be in (0, 1], got {self.alpha!r}; the paper uses 0.95")

    def check_learner(self, capabilities: frozenset[str]) -> None:
        super().check_learner(capabilities)
        missing = sorted(space_requires(self.space) - capabilities)
        if missing:
            raise ConfigError(f"strategy {self.name!r} needs learner capability {missing} for space={self.space!r} "
                              f"that the learner does not have; use space='pca' or a learner with embed")

    def radius(self, X: np.ndarray, n_classes: int, points_key: bytes | None = None) -> float:
        """The ball radius for points ``X`` (n, d): ``delta``, or the purity rule's choice.

        ``points_key`` is ``digest_key(X)`` when the caller has it already.

        The rule runs its k-means (and, above :data:`PURITY_CENTRES` points,
        its centre sample) with :data:`DELTA_SEED`, so delta depends on the
        points only, as in the paper, where it is fixed once before the first
        round; it is computed once per process and kept.
        """
        if self.delta != "auto":
            return float(self.delta)
        key = derived_key(points_key or digest_key(X), "radius", n_classes, float(self.alpha), DELTA_SEED)
        delta = float(_RADIUS_CACHE.get_or_compute(key, lambda: purity_radius(X, n_classes, self.alpha)))
        if not (math.isfinite(delta) and delta > 0):
            raise DataError(f"probcover delta='auto' found no usable radius (got {delta}); the points are "
                            "(nearly) identical in this space: pass a fixed delta or another space")
        return delta

    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        ids, X = round_points(view, ctx, self.space)
        labeled = np.isin(ids, ctx.labeled_ids)
        points = digest_key(X)  # one pass over the points keys both caches
        delta = self.radius(X, len(ctx.classes), points)
        graph = _GRAPH_CACHE.get_or_compute(derived_key(points, "ball_graph", delta), lambda: ball_graph(X, delta))
        rows, gains = probcover_greedy(graph, labeled, budget)
        n_greedy = len(rows)
        covered_before = _coverage(graph, labeled)
        if n_greedy < budget:  # everything is covered: random, as in the paper
            rest = np.flatnonzero(~labeled)
            rest = rest[~np.isin(rest, rows)]
            extra = ctx.rng.choice(rest, size=budget - n_greedy, replace=False)
            rows = np.concatenate([rows, extra])
            gains = np.concatenate([gains, np.zeros(len(extra))])
        picked = np.zeros(len(ids), dtype=bool)
        picked[rows] = True
        return Selection(ids=ids[rows], scores=gains,
                         info={"delta": delta, "space": self.space, "n_edges": int(graph.nnz),
                               "coverage_before": covered_before, "coverage_after": _coverage(graph, labeled | picked),
                               "random_fallback": int(budget - n_greedy)})


def _coverage(graph: sp.csr_matrix, centres: np.ndarray) -> float:
    """Share of rows within delta of a row where ``centres`` (bool, (n,)) is set."""
    if not centres.any():
        return 0.0
    hit = np.asarray(graph[np.flatnonzero(centres)].sum(axis=0)).ravel() > 0
    return float(hit.mean())
