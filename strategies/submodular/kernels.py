"""Similarity kernels: dense for small sets, sparse k-nearest-neighbour for large ones.

Id frame: positions (row numbers of the feature matrices passed in); global ids
never reach this module.

Metrics
-------
``"cosine"``: ``s_ij = <x_i, x_j> / (|x_i| |x_j|)`` (a zero row has similarity 0
to everything); in ``[-1, 1]`` and positive semi-definite.
``"rbf"``: ``s_ij = exp(-gamma |x_i - x_j|^2)``; in ``(0, 1]`` and positive
definite. ``gamma=None`` means ``1 / mean_i |x_i - mean(x)|^2``.

Functions that need ``s_ij >= 0`` (facility location, graph cut, COM and their
information measures) take ``clip=True``; log-determinants need the kernel's
positive semi-definiteness and take it unclipped.

No routine here forms an ``N x N`` matrix unless asked for a dense kernel:
:func:`knn_kernel` works in row blocks whose size is set by a memory budget.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from al_loop.errors import ConfigError, DataError

METRICS = ("cosine", "rbf")

#: bytes one block of the blockwise routines may hold (rows x N float32)
BLOCK_BYTES = 128 * 2**20


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ConfigError(f"unknown similarity metric {metric!r}; valid metrics: {', '.join(METRICS)}")


def prepare(X: np.ndarray, metric: str = "cosine", gamma: float | None = None) -> tuple[np.ndarray, float]:
    """Features ready for :func:`similarity`: float32, rows unit-normalised for cosine.

    Parameters
    ----------
    X : ndarray, shape (n, d)
    metric : {"cosine", "rbf"}
    gamma : float, optional
        RBF width; ``None`` picks ``1 / mean squared distance to the mean``.

    Returns
    -------
    Z : ndarray of float32, shape (n, d)
    gamma : float
        The RBF width used (0.0 for cosine).
    """
    _check_metric(metric)
    X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
    if not np.isfinite(X).all():
        raise DataError("embeddings contain NaN or Inf; check the learner's outputs before a submodular selection")
    if metric == "cosine":
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        return X / np.maximum(norms, np.float32(1e-12)), 0.0
    if gamma is None:
        spread = float(((X - X.mean(axis=0)) ** 2).sum(axis=1).mean()) if len(X) else 0.0
        gamma = 1.0 / spread if spread > 0 else 1.0
    if gamma <= 0:
        raise ConfigError(f"rbf gamma must be positive, got {gamma}; pass gamma > 0 or leave it unset")
    return X, float(gamma)


def similarity(A: np.ndarray, B: np.ndarray, metric: str = "cosine", gamma: float = 0.0,
               clip: bool = False) -> np.ndarray:
    """Similarity block between prepared rows ``A`` and ``B``.

    Parameters
    ----------
    A : ndarray of float32, shape (a, d)
        Rows from :func:`prepare`.
    B : ndarray of float32, shape (b, d)
        Rows from :func:`prepare` (same metric and gamma).
    clip : bool
        Clip negative similarities to 0.

    Returns
    -------
    ndarray of float32, shape (a, b)
    """
    S = A @ B.T
    if metric == "rbf":
        sq_a = np.einsum("ij,ij->i", A, A)[:, None]
        sq_b = np.einsum("ij,ij->i", B, B)[None, :]
        d2 = np.maximum(sq_a + sq_b - 2.0 * S, 0.0)
        S = np.exp(-gamma * d2)
    S = S.astype(np.float32, copy=False)
    if clip:
        np.maximum(S, 0.0, out=S)
    return S


def dense_kernel(X: np.ndarray, Y: np.ndarray | None = None, metric: str = "cosine", gamma: float | None = None,
                 clip: bool = True) -> np.ndarray:
    """Dense similarity matrix ``S[i, j] = s(x_i, y_j)`` (``Y = X`` by default).

    Parameters
    ----------
    X : ndarray, shape (n, d)
    Y : ndarray, shape (m, d), optional
    metric, gamma, clip : see module docstring.

    Returns
    -------
    ndarray of float32, shape (n, m)
    """
    if Y is None:
        Z, g = prepare(X, metric, gamma)
        return similarity(Z, Z, metric, g, clip)
    Z, g = prepare(np.concatenate([np.asarray(X, np.float32).reshape(len(X), -1),
                                   np.asarray(Y, np.float32).reshape(len(Y), -1)]), metric, gamma)
    return similarity(Z[:len(X)], Z[len(X):], metric, g, clip)


def _block_rows(n_cols: int, block_bytes: int = BLOCK_BYTES) -> int:
    return max(1, min(8192, block_bytes // max(1, 4 * n_cols)))


def _topk_rows(S: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row the ``k`` largest entries (ties: smaller column first), shapes (r, k)."""
    if k >= S.shape[1]:
        idx = np.broadcast_to(np.arange(S.shape[1]), S.shape).copy()
    else:
        idx = np.argpartition(-S, k - 1, axis=1)[:, :k]
    return idx, np.take_along_axis(S, idx, axis=1)


def knn_kernel(X: np.ndarray, n_neighbors: int = 10, metric: str = "cosine", gamma: float | None = None,
               clip: bool = True, cells: int | None = None, rng: np.random.Generator | None = None,
               backend: str = "numpy", block_bytes: int = BLOCK_BYTES) -> sp.csr_matrix:
    """Sparse k-nearest-neighbour similarity kernel, built without an N x N matrix.

    Row ``i`` keeps the ``n_neighbors`` largest similarities ``s(x_i, x_j)``
    (``j = i`` included, as every item is its own nearest neighbour).

    Parameters
    ----------
    X : ndarray, shape (n, d)
    n_neighbors : int
        Neighbours kept per row (clamped to ``n``).
    metric, gamma, clip : see module docstring.
    cells : int, optional
        Approximate search: split the rows into ``cells`` groups around
        centres drawn with ``rng`` (inverted-file style, one probe) and search
        exactly inside each group. ``None``: exact search over all rows,
        ``O(n^2 d)`` work in blocks of ``block_bytes``.
    rng : numpy.random.Generator, optional
        Needed when ``cells`` is set.
    backend : {"numpy", "faiss"}
        ``"faiss"`` uses ``faiss.IndexFlatIP`` for the exact cosine search when
        the optional ``faiss`` package is installed.

    Returns
    -------
    scipy.sparse.csr_matrix of float32, shape (n, n)
    """
    n = len(X)
    if n_neighbors < 1:
        raise ConfigError(f"n_neighbors must be at least 1, got {n_neighbors}; pass --n-neighbors 1 or more")
    k = min(int(n_neighbors), n)
    Z, g = prepare(X, metric, gamma)
    if backend == "faiss":
        return _knn_faiss(Z, k, metric, clip)
    if backend != "numpy":
        raise ConfigError(f"unknown kNN backend {backend!r}; use 'numpy' or 'faiss'")
    if cells is not None and cells > 1 and n > cells:
        if rng is None:
            raise ConfigError("approximate kNN (cells=...) needs a numpy Generator; pass rng=ctx.rng")
        return _knn_cells(Z, k, metric, g, clip, int(cells), rng, block_bytes)
    rows, cols, vals = [], [], []
    step = _block_rows(n, block_bytes)
    torch = _torch()
    Zt = torch.from_numpy(Z) if torch is not None else None
    for start in range(0, n, step):
        if torch is not None and metric == "cosine":
            # torch matmul + topk: same kernel, several times faster than argpartition
            val_t, idx_t = torch.topk(Zt[start:start + step] @ Zt.T, k, dim=1)
            idx, val = idx_t.numpy(), val_t.numpy()
            rows.append(np.repeat(np.arange(start, start + len(idx)), k))
        else:
            S = similarity(Z[start:start + step], Z, metric, g, clip=False)
            idx, val = _topk_rows(S, k)
            rows.append(np.repeat(np.arange(start, start + len(S)), k))
        cols.append(idx.ravel())
        vals.append(val.ravel())
    return _assemble(n, rows, cols, vals, clip)


def _torch():  # type: ignore[no-untyped-def]
    """torch if importable (a dependency of al-loop, but the kernels work without it)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    return torch


def _assemble(n: int, rows: list[np.ndarray], cols: list[np.ndarray], vals: list[np.ndarray],
              clip: bool) -> sp.csr_matrix:
    r = np.concatenate(rows).astype(np.int64)
    c = np.concatenate(cols).astype(np.int64)
    v = np.concatenate(vals).astype(np.float32)
    if clip:
        v = np.maximum(v, 0.0)
    K = sp.csr_matrix((v, (r, c)), shape=(n, n), dtype=np.float32)
    K.sort_indices()
    return K


def _knn_cells(Z: np.ndarray, k: int, metric: str, g: float, clip: bool, cells: int,
               rng: np.random.Generator, block_bytes: int) -> sp.csr_matrix:
    n = len(Z)
    centres = Z[np.sort(rng.choice(n, size=cells, replace=False))]
    assign = np.empty(n, dtype=np.int64)
    step = _block_rows(cells, block_bytes)
    for start in range(0, n, step):
        assign[start:start + step] = similarity(Z[start:start + step], centres, metric, g).argmax(axis=1)
    order = np.argsort(assign, kind="stable")
    bounds = np.searchsorted(assign[order], np.arange(cells + 1))
    rows, cols, vals = [], [], []
    for c in range(cells):
        members = order[bounds[c]:bounds[c + 1]]
        if members.size == 0:
            continue
        kk = min(k, members.size)
        sub = Z[members]
        inner = _block_rows(members.size, block_bytes)
        for start in range(0, members.size, inner):
            S = similarity(sub[start:start + inner], sub, metric, g)
            idx, val = _topk_rows(S, kk)
            rows.append(np.repeat(members[start:start + len(S)], kk))
            cols.append(members[idx.ravel()])
            vals.append(val.ravel())
    return _assemble(n, rows, cols, vals, clip)


def _knn_faiss(Z: np.ndarray, k: int, metric: str, clip: bool) -> sp.csr_matrix:  # pragma: no cover - optional
    try:
        import faiss  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError("backend='faiss' needs the optional faiss package; install faiss-cpu or use "
                          "backend='numpy'") from None
    if metric != "cosine":
        raise ConfigError("the faiss backend supports metric='cosine' only; use backend='numpy' for rbf")
    index: Any = faiss.IndexFlatIP(Z.shape[1])
    index.add(np.ascontiguousarray(Z))
    val, idx = index.search(np.ascontiguousarray(Z), k)
    n = len(Z)
    return _assemble(n, [np.repeat(np.arange(n), k)], [idx.ravel()], [val.ravel()], clip)


def symmetrize(K: sp.spmatrix) -> sp.csr_matrix:
    """``max(K, K^T)``: a kNN graph made symmetric (for graph cut), float32 CSR."""
    K = sp.csr_matrix(K)
    out = K.maximum(K.T).tocsr().astype(np.float32)
    out.sort_indices()
    return out


class FeatureKernel:
    """Kernel entries computed on demand from features, plus ``reg`` on the diagonal.

    ``K[i, j] = s(x_i, x_j) + reg * [i == j]`` (unclipped, so it stays positive
    semi-definite). Used by the log-determinant functions, which touch only
    ``|A| x batch`` blocks, so no ``N x N`` matrix is ever formed.

    Parameters
    ----------
    X : ndarray, shape (n, d)
    metric, gamma : see module docstring.
    reg : float
        Diagonal regulariser (> 0 keeps every principal minor positive).
    """

    def __init__(self, X: np.ndarray, metric: str = "cosine", gamma: float | None = None, reg: float = 1.0):
        self.Z, self.gamma = prepare(X, metric, gamma)
        self.metric = metric
        self.reg = float(reg)
        self.n = len(self.Z)

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``K[rows][:, cols]`` as float64, shape (len(rows), len(cols))."""
        A, B = self.Z[rows].astype(np.float64), self.Z[cols].astype(np.float64)
        S = A @ B.T  # float64: gains must not depend on the batch a candidate is evaluated in
        if self.metric == "rbf":
            sq = (A * A).sum(axis=1)[:, None] + (B * B).sum(axis=1)[None, :]
            S = np.exp(-self.gamma * np.maximum(sq - 2.0 * S, 0.0))
        if self.reg:
            S += self.reg * (np.asarray(rows)[:, None] == np.asarray(cols)[None, :])
        return S

    def diag(self, idx: np.ndarray) -> np.ndarray:
        """``K[i, i]`` for ``idx``, float64, shape (len(idx),)."""
        Zi = self.Z[idx].astype(np.float64)
        base = np.ones(len(Zi)) if self.metric == "rbf" else np.einsum("ij,ij->i", Zi, Zi)
        return base + self.reg


class DenseKernel:
    """A given dense symmetric matrix plus ``reg`` on the diagonal (same interface as FeatureKernel).

    Parameters
    ----------
    S : ndarray, shape (n, n)
    reg : float
    """

    def __init__(self, S: np.ndarray, reg: float = 1.0):
        self.S = np.asarray(S, dtype=np.float64)
        self.reg = float(reg)
        self.n = len(self.S)

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        out = self.S[np.ix_(np.asarray(rows), np.asarray(cols))].copy()
        if self.reg:
            out += self.reg * (np.asarray(rows)[:, None] == np.asarray(cols)[None, :])
        return out

    def diag(self, idx: np.ndarray) -> np.ndarray:
        return self.S[idx, idx] + self.reg
