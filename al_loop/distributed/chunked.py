"""The pool as a chunked array: features ``X`` (N x d) and global ids (N,) in matching row chunks.

Id frame: ``ChunkedPool.ids`` holds the global pool ids (int64) of the rows
of ``X``, chunk by chunk; every function here takes and returns global ids.
Row positions exist only inside a chunk task and never leave it.

A pool reaches the workers in one of two ways: :func:`from_pool` wraps an
in-memory :class:`~al_loop.pool.Pool` (the driver already holds it; the
arrays travel once with the graph, or once per run after
:meth:`DaskRunner.persist`), :func:`synthetic_pool` generates chunks on the
workers from per-chunk seeds (benchmarks: the driver never holds the pool).
A real multi-node pool would be built with ``dask.array.from_zarr`` /
``from_npy_stack`` and :func:`from_arrays`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from al_loop.distributed._deps import da, dask
from al_loop.errors import DataError
from al_loop.pool import Pool

#: Rows per chunk when a pool is wrapped without an explicit size.
DEFAULT_CHUNK_ROWS = 65_536


@dataclass(frozen=True)
class ChunkedPool:
    """Features and ids of a pool as Dask arrays with the same row chunks.

    Attributes
    ----------
    X : dask.array.Array, shape (N, ...)
        Pool inputs, chunked along rows only.
    ids : dask.array.Array of int64, shape (N,)
        Global pool ids; row ``i`` of ``X`` has id ``ids[i]``; unique.
    classes : tuple of str
        Class names (column ``j`` of every probability matrix is ``classes[j]``).
    """

    X: Any
    ids: Any
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.X.ndim < 2 or any(len(c) != 1 for c in self.X.chunks[1:]):
            raise DataError("a chunked pool needs X of shape (N, d, ...) chunked along rows only; rechunk it "
                            "with X.rechunk({1: -1})")
        if self.ids.ndim != 1 or self.ids.chunks[0] != self.X.chunks[0]:
            raise DataError("the chunked ids must be 1-d with the same row chunks as X; build both with "
                            "from_arrays(X, ids, classes)")
        if self.ids.dtype != np.int64:
            raise DataError(f"global pool ids must be int64, got {self.ids.dtype}; cast them with astype('int64')")

    @property
    def n_rows(self) -> int:
        """Number of pool items N."""
        return int(self.X.shape[0])

    @property
    def n_chunks(self) -> int:
        """Number of row chunks."""
        return len(self.X.chunks[0])

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def blocks(self) -> list[tuple[Any, Any]]:
        """``[(X_block, ids_block), ...]`` as Delayed objects, one per row chunk, in order."""
        return row_blocks(self.X, self.ids)


def row_blocks(X: Any, ids: Any) -> list[tuple[Any, Any]]:
    """``[(X_block, ids_block), ...]`` as Delayed objects for arrays with the same row chunks.

    Parameters
    ----------
    X : dask.array.Array, shape (N, ...), chunked along rows only
    ids : dask.array.Array of int64, shape (N,)
    """
    xs = X.to_delayed().reshape(len(X.chunks[0]), -1)[:, 0]
    return list(zip(xs, ids.to_delayed().ravel(), strict=True))


def from_arrays(X: Any, ids: Any, classes: tuple[str, ...] | list[str], chunk_rows: int | None = None) -> ChunkedPool:
    """Wrap arrays (NumPy or Dask) as a :class:`ChunkedPool`.

    Parameters
    ----------
    X : array, shape (N, ...)
    ids : array of int, shape (N,)
        Global pool ids.
    classes : sequence of str
    chunk_rows : int, optional
        Rows per chunk; default: keep a Dask ``X``'s row chunks, else
        :data:`DEFAULT_CHUNK_ROWS`.
    """
    if len(ids) != len(X):
        raise DataError(f"{len(ids)} ids for {len(X)} rows of features; give one id per row")
    if isinstance(X, da.Array) and chunk_rows is None:
        X = X.rechunk({i: -1 for i in range(1, X.ndim)})
    else:
        rows = int(chunk_rows or DEFAULT_CHUNK_ROWS)
        X = da.asarray(X).rechunk((rows,) + tuple(-1 for _ in range(1, np.ndim(X))))
    ids = da.asarray(ids).astype(np.int64).rechunk((X.chunks[0],))
    return ChunkedPool(X=X, ids=ids, classes=tuple(classes))


def from_pool(pool: Pool, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> ChunkedPool:
    """A :class:`~al_loop.pool.Pool`'s features and ids as a :class:`ChunkedPool`.

    Parameters
    ----------
    pool : Pool
    chunk_rows : int
        Rows per chunk (the result of a two-round selection depends on the
        chunking through the per-chunk partition seeds, never on the
        number of workers).
    """
    return from_arrays(np.asarray(pool.X), pool.ids, pool.classes, chunk_rows)


def _synthetic_chunk(seed: int, index: int, rows: int, d: int, n_classes: int, dtype: str,
                     spread: float) -> np.ndarray:
    centres = np.random.default_rng([seed, 1]).normal(scale=spread, size=(n_classes, d)).astype(dtype)
    rng = np.random.default_rng([seed, 0, index])
    label = rng.integers(0, n_classes, size=rows)
    X = rng.standard_normal((rows, d), dtype=np.float32 if dtype == "float32" else np.float64)
    X += centres[label]
    return X


def synthetic_pool(n: int, d: int, n_classes: int = 10, chunk_rows: int = 250_000, seed: int = 0,
                   dtype: str = "float32", spread: float = 3.0) -> ChunkedPool:
    """A Gaussian-mixture pool generated chunk-wise on the workers.

    Chunk ``i`` is drawn from ``numpy.random.default_rng([seed, 0, i])``
    (the class centres from ``[seed, 1]``), so the pool is the same on any
    scheduler and never exists whole in the driver.

    Parameters
    ----------
    n, d : int
        Rows and features.
    n_classes : int
        Mixture components (and class names ``"0" .. "C-1"``).
    chunk_rows : int
    seed : int
    dtype : {"float32", "float64"}
    spread : float
        Standard deviation of the class centres (unit noise around each).

    Returns
    -------
    ChunkedPool
        Ids ``0 .. n-1``.
    """
    sizes = [min(chunk_rows, n - s) for s in range(0, n, chunk_rows)]
    blocks = [da.from_delayed(dask.delayed(_synthetic_chunk, pure=True)(seed, i, rows, d, n_classes, dtype, spread),
                              shape=(rows, d), dtype=np.dtype(dtype)) for i, rows in enumerate(sizes)]
    X = da.concatenate(blocks, axis=0)
    ids = da.arange(n, chunks=(tuple(sizes),), dtype=np.int64)
    return ChunkedPool(X=X, ids=ids, classes=tuple(str(c) for c in range(n_classes)))


def _rows_of(X: np.ndarray, ids: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = np.isin(ids, wanted)
    return np.asarray(ids[mask], dtype=np.int64), np.asarray(X).reshape(len(ids), -1)[mask]


def _concat_sorted(*parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    X = np.concatenate([p[1] for p in parts], axis=0)
    order = np.argsort(ids, kind="stable")
    return ids[order], X[order]


def gather_rows(cpool_X: Any, cpool_ids: Any, wanted_ids: np.ndarray) -> Any:
    """The rows of ``wanted_ids`` as one Delayed ``(ids, X)`` (sorted by id), built on the workers.

    Parameters
    ----------
    cpool_X : dask.array.Array, shape (N, ...)
    cpool_ids : dask.array.Array of int64, shape (N,)
    wanted_ids : ndarray of int64, shape (n_w,)
        Global ids (small: the labeled set).

    Returns
    -------
    Delayed of (ndarray of int64 (n_found,), ndarray (n_found, d))
        Rows flattened to 2-d; ids not in the pool are absent.
    """
    wanted = dask.delayed(np.unique(np.asarray(wanted_ids, dtype=np.int64)), traverse=False)
    parts = [dask.delayed(_rows_of, pure=True)(x, i, wanted) for x, i in row_blocks(cpool_X, cpool_ids)]
    return dask.delayed(_concat_sorted, pure=True)(*parts)
