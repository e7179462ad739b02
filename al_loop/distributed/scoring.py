"""Pool scoring as chunked map tasks, and an exact top-b tree reduction.

Id frame: scores and probabilities are row-aligned with ``ChunkedPool.ids``
(global ids); :func:`top_k_tree` returns global ids. Positions never leave a
chunk task.

The learner travels once: :func:`learner_in_graph` makes it a single key of
the task graph (one pickle), which every chunk task depends on; a worker
fetches it once and reuses it for all its chunks. Each chunk task wraps its
rows in a small :class:`~al_loop.pool.Pool` and calls the learner's own
``predict_proba(pool, ids)`` / ``embed(pool, ids)``, so any learner that
works on one machine works here (it must be picklable).

The top-b reduction is exact: every chunk keeps its own top ``b`` under the
total order (score descending, global id ascending), then groups of
``split_every`` partial results are merged with the same rule, up a tree, to
one. An item of the global top-b is in the top-b of every set that contains
it, so nothing is lost on the way; the answer equals
:func:`al_loop.strategy.top_k` on the whole pool, ties by the smaller id.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from al_loop.distributed._deps import Delayed, da, dask
from al_loop.distributed.chunked import ChunkedPool, row_blocks
from al_loop.errors import ConfigError, DataError
from al_loop.pool import Pool
from al_loop.strategy import top_k
from al_loop.types import Selection

#: Uncertainty measures that can run on the workers (names of the registered strategies).
MEASURES = ("entropy", "margin", "least_confidence")


def learner_in_graph(learner: Any) -> Any:
    """The fitted learner as one Delayed key (pickled once per graph); a Delayed passes through."""
    if isinstance(learner, Delayed):
        return learner
    return dask.delayed(learner, name=f"al-loop-learner-{uuid.uuid4().hex}", traverse=False)


def _chunk_pool(X: np.ndarray, ids: np.ndarray, classes: tuple[str, ...]) -> Pool:
    return Pool(X=np.asarray(X), ids=np.asarray(ids, dtype=np.int64), classes=classes)


def _proba_chunk(X: np.ndarray, ids: np.ndarray, learner: Any, classes: tuple[str, ...]) -> np.ndarray:
    proba = np.asarray(learner.predict_proba(_chunk_pool(X, ids, classes), ids), dtype=np.float64)
    if proba.shape != (len(ids), len(classes)):
        raise DataError(f"the learner returned probabilities of shape {proba.shape} for {len(ids)} items and "
                        f"{len(classes)} classes; it must answer in the pool's class columns")
    if not np.isfinite(proba).all():
        raise DataError("the learner produced NaN or Inf probabilities; check the features for extreme values "
                        "or lower the learning rate")
    return proba


def _embed_chunk(X: np.ndarray, ids: np.ndarray, learner: Any, classes: tuple[str, ...]) -> np.ndarray:
    emb = np.asarray(learner.embed(_chunk_pool(X, ids, classes), ids))
    emb = emb.reshape(len(ids), -1)
    if emb.dtype.kind == "f" and not np.isfinite(emb).all():
        raise DataError("the learner produced NaN or Inf embeddings; check the features for extreme values "
                        "or lower the learning rate")
    return emb


def proba_array(pool: ChunkedPool, learner: Any) -> Any:
    """Class probabilities over the pool, one map task per chunk.

    Parameters
    ----------
    pool : ChunkedPool
    learner : Learner or Delayed
        A fitted learner (or :func:`learner_in_graph` of one, to share its key).

    Returns
    -------
    dask.array.Array of float64, shape (N, n_classes)
        Row-aligned with ``pool.ids``; columns are ``pool.classes``.
    """
    model = learner_in_graph(learner)
    return _rowwise(_proba_chunk, pool, model, pool.n_classes)


def _rowwise(fn: Any, pool: ChunkedPool, model: Any, width: int) -> Any:
    """``fn(X_chunk, ids_chunk, model, classes) -> (n, width)`` as one task per row chunk."""
    x_index = "i" + "abcdefgh"[: pool.X.ndim - 1]  # every axis but rows is a single chunk
    return da.blockwise(fn, "iw", pool.X, x_index, pool.ids, "i", model, None, pool.classes, None,
                        new_axes={"w": int(width)}, concatenate=True, dtype=np.float64,
                        meta=np.empty((0, 0), dtype=np.float64))


def embed_array(pool: ChunkedPool, learner: Any, dim: int) -> Any:
    """Learner embeddings over the pool, one map task per chunk (the forward pass runs on the workers).

    Parameters
    ----------
    pool : ChunkedPool
    learner : Learner or Delayed
    dim : int
        Embedding width ``e`` (e.g. ``learner.embed(pool, ids[:1]).shape[1]``).

    Returns
    -------
    dask.array.Array of float64, shape (N, dim)
        Row-aligned with ``pool.ids``.
    """
    model = learner_in_graph(learner)
    return _rowwise(_embed_chunk, pool, model, dim)


def _measure_fn(measure: str) -> Any:
    # lazy: the core reaches the concrete score functions only inside tasks
    from strategies.uncertainty import UNCERTAINTY

    return UNCERTAINTY[measure]


def check_measure(measure: str) -> None:
    """Raise a one-line ConfigError for a measure the workers cannot compute."""
    if measure not in MEASURES:
        raise ConfigError(f"unknown uncertainty measure {measure!r} for distributed scoring; "
                          f"valid: {', '.join(MEASURES)}")


def _scores_chunk(proba: np.ndarray, measure: str) -> np.ndarray:
    return np.asarray(_measure_fn(measure)(proba), dtype=np.float64)


def uncertainty_array(proba: Any, measure: str) -> Any:
    """Uncertainty scores from a chunked probability matrix (higher = more uncertain).

    Parameters
    ----------
    proba : dask.array.Array, shape (N, C)
    measure : {"entropy", "margin", "least_confidence"}
        Computed with the single-machine functions of :mod:`strategies.uncertainty`.

    Returns
    -------
    dask.array.Array of float64, shape (N,)
    """
    check_measure(measure)
    return da.map_blocks(_scores_chunk, proba, measure, drop_axis=1, dtype=np.float64,
                         meta=np.empty((0,), dtype=np.float64))


def _chunk_top(ids: np.ndarray, scores: np.ndarray, k: int, exclude: np.ndarray | None,
               what: str) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if exclude is not None and exclude.size:
        keep = ~np.isin(ids, exclude)
        ids, scores = ids[keep], scores[keep]
    sel = top_k(ids, scores, min(k, ids.size), what=what)
    return sel.ids, sel.scores


def _merge_top(*parts: tuple[np.ndarray, np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    sel = top_k(ids, scores, min(k, ids.size))
    return sel.ids, sel.scores


def top_k_tree(ids: Any, scores: Any, k: int, exclude_ids: np.ndarray | None = None, split_every: int = 2,
               what: str = "scores") -> Any:
    """The ``k`` highest scores over a chunked array, exactly, ties by the smaller global id.

    Parameters
    ----------
    ids : dask.array.Array of int64, shape (N,)
        Global ids.
    scores : dask.array.Array of float, shape (N,)
        Same row chunks as ``ids``. NaN/Inf among the candidates raise DataError.
    k : int
        Number to keep (fewer when fewer candidates remain).
    exclude_ids : ndarray of int64, optional
        Global ids that are never candidates (the labeled and already-sent
        items; small). Shipped once as one graph key.
    split_every : int
        Fan-in of the merge tree (2: pairwise).
    what : str
        Noun for the NaN error message.

    Returns
    -------
    Delayed of (ndarray of int64 (k',), ndarray of float64 (k',))
        Ids best first and their scores.
    """
    if k < 1:
        raise ConfigError(f"batch size must be positive, got {k}; pass --batch 1 or more")
    if split_every < 2:
        raise ConfigError(f"split_every must be at least 2, got {split_every}")
    exclude = None
    if exclude_ids is not None and len(exclude_ids):
        exclude = dask.delayed(np.unique(np.asarray(exclude_ids, dtype=np.int64)), traverse=False)
    level = [dask.delayed(_chunk_top, pure=True)(i, s, int(k), exclude, what)
             for s, i in row_blocks(scores[:, None], ids)]
    while len(level) > 1:
        level = [dask.delayed(_merge_top, pure=True)(*level[j:j + split_every], k=int(k))
                 for j in range(0, len(level), split_every)]
    return level[0]


def uncertainty_top_k(runner: Any, pool: ChunkedPool, learner: Any, measure: str, k: int,
                      exclude_ids: np.ndarray | None = None, split_every: int = 2) -> Selection:
    """Score the pool on the cluster and return the top-``k`` uncertain ids.

    Parameters
    ----------
    runner : DaskRunner
    pool : ChunkedPool
    learner : Learner or Delayed
        Fitted; pickled into the graph once.
    measure : {"entropy", "margin", "least_confidence"}
    k : int
    exclude_ids : ndarray of int64, optional
        Global ids never to select (labeled and already sent).
    split_every : int
        Fan-in of the top-k merge tree.

    Returns
    -------
    Selection
        Global ids best first (ties by the smaller id) and their scores;
        identical to the single-machine strategy of the same name.
    """
    check_measure(measure)
    scores = uncertainty_array(proba_array(pool, learner), measure)
    ids, vals = runner.compute(top_k_tree(pool.ids, scores, k, exclude_ids, split_every, what=f"{measure} scores"))
    return Selection(ids=np.asarray(ids, dtype=np.int64), scores=np.asarray(vals, dtype=np.float64),
                     info={"distributed": True, "measure": measure, "chunks": pool.n_chunks})
