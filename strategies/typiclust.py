"""TypiClust: typical points of the largest uncovered clusters (low-budget active learning).

Hacohen, Dekel and Weinshall, "Active learning on a budget: opposite
strategies suit high and low budgets", ICML 2022. With few labels, the most
*typical* examples (dense regions) help more than the most uncertain ones.
The algorithm, per round with labeled set L and budget B:

1. cluster all points (labeled and unlabeled) into ``min(|L| + B,
   max_clusters)`` clusters with k-means (exact ``KMeans`` up to 50 clusters,
   ``MiniBatchKMeans`` above, as the authors do for large budgets; the cap,
   500 by default, is theirs too);
2. visit clusters that hold no labeled point first, largest first; clusters
   smaller than ``min_cluster_size`` (5 in the authors' code) come last;
3. from each visited cluster pick the unlabeled point of highest typicality

   ``typicality(x) = 1 / mean_{x' in KNN(x)} ||x - x'||``

   with the K nearest neighbours taken inside the cluster, K =
   ``min(k_neighbours, cluster size - 1)`` (K = 20 in the paper).

If the budget exceeds the number of clusters left, clusters are visited again
in the same order (fewest labeled points first, then largest), taking the
next most typical point, as the authors' reference implementation does.

Id frame: the pure functions work on positions of a point matrix; the
:class:`TypiClust` class maps them to global ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from al_loop.errors import ConfigError
from al_loop.registry import STRATEGIES
from al_loop.strategy import Strategy
from al_loop.types import QueryContext, Selection
from al_loop.view import ModelView
from strategies._embedding_space import (
    check_space,
    kmeans_labels,
    round_points,
    row_blocks,
    seed_from,
    space_requires,
    squared_distances,
)


def typicality(X: np.ndarray, k: int) -> np.ndarray:
    """Inverse mean Euclidean distance to the ``k`` nearest other rows, shape (n,).

    Parameters
    ----------
    X : ndarray of float, shape (n, d)
    k : int
        Neighbours, excluding the point itself; clipped to ``n - 1``.

    Returns
    -------
    ndarray of float64, shape (n,)
        ``1 / mean distance``; ``0`` for a lone point (no neighbours) and
        ``inf`` when all ``k`` neighbours coincide with the point.
    """
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    k = min(int(k), n - 1)
    if k <= 0:
        return np.zeros(n)
    out = np.empty(n)
    sq = np.einsum("ij,ij->i", X, X)
    for rows in row_blocks(n, n):
        d2 = squared_distances(X[rows], X, sq)
        d2[np.arange(rows.stop - rows.start), np.arange(rows.start, rows.stop)] = np.inf  # not its own neighbour
        nearest = np.partition(d2, k - 1, axis=1)[:, :k]
        with np.errstate(divide="ignore"):
            out[rows] = 1.0 / np.sqrt(nearest).mean(axis=1)
    return out


def typiclust_pick(X: np.ndarray, clusters: np.ndarray, labeled: np.ndarray, budget: int,
                   k_neighbours: int = 20, min_cluster_size: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TypiClust's pick given a clustering.

    Parameters
    ----------
    X : ndarray of float, shape (n, d)
        Points, rows in ascending global-id order (ties go to the smaller row).
    clusters : ndarray of int, shape (n,)
        Cluster index of each row.
    labeled : ndarray of bool, shape (n,)
        True for rows that have a label (never picked; they mark their cluster covered).
    budget : int
        Rows to pick (at most the number of unlabeled rows).
    k_neighbours : int
        K of the typicality (``min(K, cluster size - 1)`` is used).
    min_cluster_size : int
        Clusters with fewer points are visited after all others.

    Returns
    -------
    rows : ndarray of int64, shape (budget,)
        Picked row positions, in pick order.
    typ : ndarray of float64, shape (budget,)
        Typicality of each pick within its cluster.
    cluster : ndarray of int64, shape (budget,)
        Cluster index of each pick.
    """
    clusters = np.asarray(clusters, dtype=np.int64)
    labeled = np.asarray(labeled, dtype=bool)
    budget = min(int(budget), int((~labeled).sum()))
    ids, first_row, sizes = np.unique(clusters, return_index=True, return_counts=True)
    n_labeled = np.bincount(np.searchsorted(ids, clusters[labeled]), minlength=len(ids))
    small = sizes < min_cluster_size
    # small clusters last; then fewest labeled points; then largest; then the smallest first row (id)
    order = np.lexsort((first_row, -sizes, n_labeled, small))
    queues: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # cluster -> (candidate rows by typicality, typicality)
    taken = np.zeros(len(ids), dtype=np.int64)
    rows_out: list[int] = []
    typ_out: list[float] = []
    cl_out: list[int] = []
    while len(rows_out) < budget:
        progressed = False
        for c in order:
            if len(rows_out) == budget:
                break
            if c not in queues:
                members = np.flatnonzero(clusters == ids[c])
                typ = typicality(X[members], k_neighbours)
                cand = ~labeled[members]
                # highest typicality first, ties by the smaller row (= smaller global id)
                rank = np.lexsort((members[cand], -typ[cand]))
                queues[c] = (members[cand][rank], typ[cand][rank])
            cand_rows, cand_typ = queues[c]
            if taken[c] >= len(cand_rows):
                continue
            rows_out.append(int(cand_rows[taken[c]]))
            typ_out.append(float(cand_typ[taken[c]]))
            cl_out.append(int(ids[c]))
            taken[c] += 1
            progressed = True
        if not progressed:  # cannot happen while budget <= unlabeled rows; guards an endless loop
            break
    return np.asarray(rows_out, dtype=np.int64), np.asarray(typ_out), np.asarray(cl_out, dtype=np.int64)


@STRATEGIES.register("typiclust")
@dataclass
class TypiClust(Strategy):
    """TypiClust (Hacohen et al., ICML 2022): the most typical point of each large uncovered cluster.

    Parameters
    ----------
    k_neighbours : int
        K of the typicality (20 in the paper).
    max_clusters : int
        Cap on the number of k-means clusters (500 in the authors' code).
    space : {"features", "pca", "embed"}
        Where distances are measured (see :mod:`strategies._embedding_space`).
        Default ``"pca"``: the authors cluster self-supervised embeddings;
        without such a model, 50 principal components of the inputs are our
        stand-in (k-means on raw 784-d pixels or 5,000-d TF-IDF rows is both
        slower and noisier). ProbCover and ``switch`` use the same default.
    min_cluster_size : int
        Clusters smaller than this are visited last (5 in the authors' code).

    Notes
    -----
    ``Selection.scores`` holds each pick's typicality inside its cluster;
    the pick order follows cluster size, so scores are not sorted.
    ``info`` has the number of clusters and how many picks came from
    clusters without a labeled point.
    """

    name = "typiclust"
    tasks: ClassVar[frozenset[str]] = frozenset({"single", "multi"})
    use_when: ClassVar[str] = (
        "the budget is tiny (cold start): the most typical item of each cluster; also a seed batch "
        "(--init-strategy typiclust).")
    requires = frozenset()
    k_neighbours: int = 20
    max_clusters: int = 500
    space: str = "pca"
    min_cluster_size: int = 5

    def __post_init__(self) -> None:
        check_space(self.space, self.name)
        for field_name in ("k_neighbours", "max_clusters", "min_cluster_size"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"typiclust {field_name} must be a positive integer, got {value!r}; "
                                  f"pass e.g. --param typiclust.{field_name}=20")

    def check_learner(self, capabilities: frozenset[str]) -> None:
        super().check_learner(capabilities)
        missing = sorted(space_requires(self.space) - capabilities)
        if missing:
            raise ConfigError(f"strategy {self.name!r} needs learner capability {missing} for space={self.space!r} "
                              f"that the learner does not have; use space='pca' or a learner with embed")

    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        ids, X = round_points(view, ctx, self.space)
        labeled = np.isin(ids, ctx.labeled_ids)
        n_clusters = min(int(labeled.sum()) + budget, self.max_clusters, len(ids))
        clusters = kmeans_labels(X, n_clusters, seed_from(ctx.rng))
        rows, typ, picked_clusters = typiclust_pick(X, clusters, labeled, budget, self.k_neighbours,
                                                    self.min_cluster_size)
        covered = np.unique(clusters[labeled])
        fresh = int((~np.isin(picked_clusters, covered)).sum())
        return Selection(ids=ids[rows], scores=np.minimum(typ, 1e300),  # coincident neighbours give inf
                         info={"n_clusters": int(len(np.unique(clusters))), "picks_from_uncovered_clusters": fresh,
                               "space": self.space})
