"""Two-round partitioned greedy (GreeDi) for diversity selection on a chunked pool.

Round 1 splits the candidates into ``m`` random partitions (Barbosa, Ene,
Nguyen & Ward 2015: random partitioning gives GreeDi its guarantee) and runs
the single-machine greedy on every partition in its own task, each seeded
with the labeled set (initial centers for k-center, the preselected set of
``f(A | L)`` for facility location). Round 2 runs the same greedy on the
union of the ``m`` partial solutions (Mirzasoleiman, Karbasi, Sarkar &
Krause 2013). Only ``m * k`` rows reach round 2.

Partitioning: row ``r`` of chunk ``i`` goes to partition
``default_rng([seed, i]).integers(m)`` (drawn for every row of the chunk in
order), with ``seed`` drawn from the round's Generator. The result therefore
depends on the seed, the chunking and ``m``, never on the number of workers
or the scheduler.

Facility location in round 2 is evaluated on the union plus a uniform random
sample of the candidates (``sample_size`` rows; Mirzasoleiman et al. 2013,
decomposable functions evaluated on local data), since the whole pool cannot
be the represented set of one task.

Id frame: inputs are chunked global ids; the result is a
:class:`~al_loop.types.Selection` of global ids. Positions exist only inside
the partition tasks, whose rows are sorted by id so ties go to the smaller id.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from al_loop.distributed._deps import dask
from al_loop.distributed.chunked import gather_rows, row_blocks
from al_loop.distributed.greedy import facility_location, k_center
from al_loop.errors import ConfigError, DataError
from al_loop.types import Selection

#: Target rows per partition when ``n_partitions`` is not given.
DEFAULT_PARTITION_ROWS = 262_144

_EMPTY = (np.zeros(0, np.int64), np.zeros((0, 0)))


def n_partitions_for(n_rows: int, partition_rows: int = DEFAULT_PARTITION_ROWS) -> int:
    """``ceil(n_rows / partition_rows)``, at least 1: a function of the pool size only."""
    if partition_rows < 1:
        raise ConfigError(f"partition_rows must be positive, got {partition_rows}")
    return max(1, math.ceil(n_rows / partition_rows))


def _split_chunk(X: np.ndarray, ids: np.ndarray, index: int, seed: int, m: int, exclude: np.ndarray | None,
                 sample_rate: float) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    X = np.asarray(X).reshape(len(X), -1)
    ids = np.asarray(ids, dtype=np.int64)
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(axis=1).sum())
        raise DataError(f"the vectors of a distributed selection contain NaN or Inf in {bad} row(s); check the "
                        "features or the learner's embeddings")
    rng = np.random.default_rng([seed, index])
    part = rng.integers(0, m, size=len(ids))
    u = rng.random(len(ids)) if sample_rate > 0 else None
    keep = np.ones(len(ids), dtype=bool) if exclude is None else ~np.isin(ids, exclude)
    out = []
    for p in range(m):
        mask = keep & (part == p)
        out.append((ids[mask], X[mask]))
    mask = keep & (u < sample_rate) if u is not None else np.zeros(len(ids), dtype=bool)
    out.append((ids[mask], X[mask]))
    return tuple(out)


def _concat(parts: tuple[tuple[np.ndarray, np.ndarray], ...]) -> tuple[np.ndarray, np.ndarray]:
    parts = tuple(p for p in parts if len(p[0]))
    if not parts:
        return _EMPTY
    ids = np.concatenate([p[0] for p in parts])
    X = np.concatenate([p[1] for p in parts], axis=0)
    order = np.argsort(ids, kind="stable")
    return ids[order], X[order]


def random_partition(X: Any, ids: Any, n_partitions: int, seed: int, exclude_ids: np.ndarray | None = None,
                     sample_rate: float = 0.0) -> tuple[list[list[Any]], list[Any]]:
    """Split the candidate rows into random partitions (lazily: Delayed pieces per chunk).

    Parameters
    ----------
    X : dask.array.Array, shape (N, d)
    ids : dask.array.Array of int64, shape (N,)
        Global ids, same row chunks as ``X``.
    n_partitions : int
    seed : int
        Partition seed (non-negative).
    exclude_ids : ndarray of int64, optional
        Global ids that are not candidates.
    sample_rate : float
        Each candidate also joins a uniform sample with this probability.

    Returns
    -------
    pieces : list (per partition) of list (per chunk) of Delayed (ids, X)
    sample : list (per chunk) of Delayed (ids, X)
    """
    exclude = None
    if exclude_ids is not None and len(exclude_ids):
        exclude = dask.delayed(np.unique(np.asarray(exclude_ids, dtype=np.int64)), traverse=False)
    m = int(n_partitions)
    splits = [dask.delayed(_split_chunk, pure=True, nout=m + 1)(x, i, index, int(seed), m, exclude, sample_rate)
              for index, (x, i) in enumerate(row_blocks(X, ids))]
    pieces = [[s[p] for s in splits] for p in range(m)]
    return pieces, [s[m] for s in splits]


def _stack(*parts: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Rows of the non-empty ``(ids, X)`` parts stacked in order, shape (sum n_i, d)."""
    full = [np.asarray(p[1]).reshape(len(p[0]), -1) for p in parts if len(p[0])]
    if not full:
        return np.zeros((0, 0))
    return np.concatenate(full, axis=0).astype(np.result_type(*full), copy=False)


# --- k-center ------------------------------------------------------------------------------------------
def _kcenter_part(centers: tuple[np.ndarray, np.ndarray], k: int, opts: dict[str, Any],
                  *pieces: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids, scores, X = k_center(_concat(pieces), centers, k, **opts)
    return ids, X, scores


def _kcenter_final(centers: tuple[np.ndarray, np.ndarray], k: int, opts: dict[str, Any],
                   *partials: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    sizes = [len(p[0]) for p in partials]
    if len(partials) == 1:  # one partition: round 1 already was the single-machine greedy
        return partials[0][0], partials[0][2], sizes
    ids, scores, _ = k_center(_concat(tuple((p[0], p[1]) for p in partials)), centers, k, **opts)
    return ids, scores, sizes


def _prepare(X: Any, ids: Any, k: int, rng: np.random.Generator, labeled_ids: np.ndarray | None,
             n_partitions: int | None, partition_rows: int) -> tuple[int, int, np.ndarray]:
    if k < 1:
        raise ConfigError(f"batch size must be positive, got {k}; pass --batch 1 or more")
    if X.ndim != 2 or X.chunks[0] != ids.chunks[0]:
        raise DataError("a distributed selection needs 2-d vectors (N, d) with the same row chunks as the ids")
    m = int(n_partitions) if n_partitions is not None else n_partitions_for(int(X.shape[0]), partition_rows)
    if m < 1:
        raise ConfigError(f"n_partitions must be at least 1, got {n_partitions}")
    seed = int(rng.integers(0, 2**63 - 1))
    labeled = np.zeros(0, np.int64) if labeled_ids is None else np.unique(np.asarray(labeled_ids, np.int64))
    return m, seed, labeled


def two_round_kcenter(runner: Any, X: Any, ids: Any, k: int, rng: np.random.Generator,
                      labeled_ids: np.ndarray | None = None, exclude_ids: np.ndarray | None = None,
                      n_partitions: int | None = None, partition_rows: int = DEFAULT_PARTITION_ROWS,
                      metric: str = "euclidean", dtype: str = "float32", prune: bool = False) -> Selection:
    """Two-round (GreeDi) greedy k-center over a chunked pool.

    Parameters
    ----------
    runner : DaskRunner
    X : dask.array.Array, shape (N, d)
        Vectors of the pool (features or embeddings), row-aligned with ``ids``.
    ids : dask.array.Array of int64, shape (N,)
        Global ids.
    k : int
        Batch size.
    rng : numpy.random.Generator
        The round's Generator; one integer is drawn for the partition seed.
    labeled_ids : ndarray of int64, optional
        Global ids of the initial centers (the labeled set), seeded in every
        partition and in round 2; never picked.
    exclude_ids : ndarray of int64, optional
        Global ids that are not candidates (labeled and already sent).
    n_partitions : int, optional
        ``m``; default :func:`n_partitions_for` the pool size.
    partition_rows : int
        Target rows per partition for the default ``m``.
    metric, dtype, prune : see :func:`strategies.kcenter.k_center_greedy`.

    Returns
    -------
    Selection
        ``k`` global ids in pick order; ``scores`` are the round-2 distances
        to the nearest center at pick time. With ``m = 1`` the picks equal
        the single-machine greedy.
    """
    m, seed, labeled = _prepare(X, ids, k, rng, labeled_ids, n_partitions, partition_rows)
    opts = {"metric": metric, "dtype": dtype, "prune": prune}
    centers = gather_rows(X, ids, labeled)
    pieces, _ = random_partition(X, ids, m, seed, exclude_ids)
    partials = [dask.delayed(_kcenter_part, pure=True)(centers, int(k), opts, *pp) for pp in pieces]
    final = dask.delayed(_kcenter_final, pure=True)(centers, int(k), opts, *partials)
    sel_ids, scores, sizes = runner.compute(final)
    return Selection(ids=np.asarray(sel_ids, np.int64), scores=np.asarray(scores, np.float64),
                     info={"distributed": True, "algorithm": "two-round k-center", "partitions": m,
                           "partial_sizes": [int(s) for s in sizes], "chunks": len(X.chunks[0])})


# --- facility location ---------------------------------------------------------------------------------
def _fl_part(centers: tuple[np.ndarray, np.ndarray], k: int, opts: dict[str, Any], seed: tuple[int, ...],
             *pieces: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids, X = _concat(pieces)
    if ids.size == 0:
        return np.zeros(0, np.int64), np.zeros((0, centers[1].shape[1] if centers[0].size else 0)), np.zeros(0)
    pos, gains, _ = facility_location(_stack((ids, X), centers), len(ids), len(centers[0]), k, seed=seed, **opts)
    return ids[pos], X[pos], gains


def _fl_final(centers: tuple[np.ndarray, np.ndarray], sample: tuple[tuple[np.ndarray, np.ndarray], ...], k: int,
              opts: dict[str, Any], seed: tuple[int, ...],
              *partials: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[int], float,
                                                                            int]:
    sizes = [len(p[0]) for p in partials]
    if len(partials) == 1:  # one partition: round 1 already was the single-machine greedy
        return partials[0][0], partials[0][2], sizes, float(np.sum(partials[0][2])), 0
    ids, X = _concat(tuple((p[0], p[1]) for p in partials))
    if ids.size == 0:
        return np.zeros(0, np.int64), np.zeros(0), sizes, 0.0, 0
    s_ids, s_X = _concat(sample)
    extra = ~np.isin(s_ids, ids) & ~np.isin(s_ids, centers[0])
    rep = (s_ids[extra], s_X[extra])
    pos, gains, value = facility_location(_stack((ids, X), rep, centers), len(ids), len(centers[0]), k,
                                          seed=seed, **opts)
    return ids[pos], gains, sizes, value, int(extra.sum())


def _rbf_gamma(sq_mean: float, mean: np.ndarray) -> float:
    spread = float(sq_mean) - float(np.dot(mean, mean))
    return 1.0 / spread if spread > 0 else 1.0


def two_round_facility_location(runner: Any, X: Any, ids: Any, k: int, rng: np.random.Generator,
                                labeled_ids: np.ndarray | None = None, exclude_ids: np.ndarray | None = None,
                                n_partitions: int | None = None, partition_rows: int = DEFAULT_PARTITION_ROWS,
                                metric: str = "cosine", gamma: float | None = None, sample_size: int = 4096,
                                n_neighbors: int = 10, dense_limit: int = 4096,
                                optimizer: str = "lazy") -> Selection:
    """Two-round (GreeDi) greedy facility location ``f(A | L)`` over a chunked pool.

    Parameters
    ----------
    runner : DaskRunner
    X : dask.array.Array, shape (N, d)
        Vectors of the pool, row-aligned with ``ids``.
    ids : dask.array.Array of int64, shape (N,)
    k : int
    rng : numpy.random.Generator
        One integer is drawn for the partition seed.
    labeled_ids : ndarray of int64, optional
        The preselected set ``L`` of every partition and of round 2.
    exclude_ids : ndarray of int64, optional
        Global ids that are not candidates.
    n_partitions, partition_rows : see :func:`two_round_kcenter`.
    metric : {"cosine", "rbf"}
        Similarity (clipped at 0). For ``rbf`` without ``gamma`` one width
        ``1 / mean |x - mean(x)|^2`` over the whole pool is used everywhere.
    sample_size : int
        Rows of the uniform candidate sample added to round 2's represented set.
    n_neighbors, dense_limit, optimizer : see :func:`al_loop.distributed.greedy.facility_location`.

    Returns
    -------
    Selection
        Global ids in pick order; ``scores`` are round-2 marginal gains.
    """
    m, seed, labeled = _prepare(X, ids, k, rng, labeled_ids, n_partitions, partition_rows)
    n = int(X.shape[0])
    g: Any = gamma
    if metric == "rbf" and gamma is None:
        Xf = X.astype(np.float64)
        g = dask.delayed(_rbf_gamma, pure=True)((Xf ** 2).sum(axis=1).mean(), Xf.mean(axis=0))
    opts = {"metric": metric, "gamma": g, "n_neighbors": n_neighbors, "dense_limit": dense_limit,
            "optimizer": optimizer}
    centers = gather_rows(X, ids, labeled)
    pieces, sample = random_partition(X, ids, m, seed, exclude_ids, sample_rate=min(1.0, sample_size / max(1, n)))
    partials = [dask.delayed(_fl_part, pure=True)(centers, int(k), opts, (seed, 2, p), *pp)
                for p, pp in enumerate(pieces)]
    final = dask.delayed(_fl_final, pure=True)(centers, tuple(sample), int(k), opts, (seed, 3), *partials)
    sel_ids, gains, sizes, value, n_sample = runner.compute(final)
    return Selection(ids=np.asarray(sel_ids, np.int64), scores=np.asarray(gains, np.float64),
                     info={"distributed": True, "algorithm": "two-round facility location", "partitions": m,
                           "partial_sizes": [int(s) for s in sizes], "round2_objective": float(value),
                           "round2_sample": int(n_sample), "chunks": len(X.chunks[0])})
