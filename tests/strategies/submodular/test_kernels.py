"""Kernels: the sparse kNN kernel equals the dense top-k kernel; blockwise equals one block."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from al_loop.errors import ConfigError, DataError
from strategies.submodular import build_function
from strategies.submodular.kernels import dense_kernel, knn_kernel, symmetrize


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 40), k=st.integers(1, 8),
       metric=st.sampled_from(["cosine", "rbf"]))
def test_sparse_knn_equals_dense_top_k(seed, n, k, metric) -> None:
    X = np.random.default_rng(seed).normal(size=(n, 3))
    D = dense_kernel(X, metric=metric, clip=False)
    # tiny blocks force the blockwise path
    K = knn_kernel(X, k, metric=metric, clip=False, block_bytes=4 * n * 3).toarray()
    kk = min(k, n)
    for i in range(n):
        kept = np.flatnonzero(K[i] != 0)
        assert len(kept) <= kk
        np.testing.assert_allclose(K[i, kept], D[i, kept], rtol=1e-5, atol=1e-6)
        kth = np.sort(D[i])[::-1][kk - 1]
        assert (D[i, kept] >= kth - 1e-5).all()  # what is kept is the top k


def test_knn_with_all_neighbours_is_the_dense_kernel() -> None:
    X = np.random.default_rng(0).random((25, 4))
    np.testing.assert_allclose(knn_kernel(X, 25).toarray(), dense_kernel(X), rtol=1e-6, atol=1e-6)


def test_sparse_fl_with_all_neighbours_equals_dense_fl() -> None:
    X = np.random.default_rng(1).random((30, 4))
    dense, sparse = build_function("fl", X, kernel="dense"), build_function("fl", X, kernel="sparse", n_neighbors=30)
    for A in ([0], [3, 9], [1, 2, 28]):
        assert sparse.evaluate(A) == pytest.approx(dense.evaluate(A), rel=1e-6)


def test_approximate_cells_keep_true_similarities_and_self() -> None:
    X = np.random.default_rng(2).normal(size=(300, 5))
    K = knn_kernel(X, 5, cells=6, rng=np.random.default_rng(0), clip=False)
    D = dense_kernel(X, clip=False)
    rows, cols = K.nonzero()
    np.testing.assert_allclose(K.data, D[rows, cols], rtol=1e-5, atol=1e-6)
    assert (K.diagonal() > 0.99).all()
    with pytest.raises(ConfigError, match="numpy Generator"):
        knn_kernel(X, 5, cells=6)


def test_symmetrize_and_clip() -> None:
    X = np.random.default_rng(3).normal(size=(50, 3))
    K = symmetrize(knn_kernel(X, 4))
    assert abs(K - K.T).max() == 0
    assert K.data.min() >= 0
    assert dense_kernel(X).min() >= 0 and dense_kernel(X, clip=False).min() < 0


def test_rbf_is_in_unit_interval_with_unit_diagonal() -> None:
    D = dense_kernel(np.random.default_rng(4).normal(size=(20, 3)), metric="rbf")
    assert D.max() <= 1 + 1e-6 and D.min() > 0
    np.testing.assert_allclose(np.diagonal(D), 1.0, rtol=1e-6)


def test_kernel_refusals() -> None:
    X = np.random.default_rng(5).random((5, 2))
    with pytest.raises(ConfigError, match="n_neighbors"):
        knn_kernel(X, 0)
    with pytest.raises(ConfigError, match="metric"):
        dense_kernel(X, metric="manhattan")
    with pytest.raises(DataError, match="NaN"):
        dense_kernel(np.array([[np.nan, 1.0]]))


def test_faiss_backend_without_faiss_is_a_config_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if faiss were not installed
    with pytest.raises(ConfigError, match="faiss"):
        knn_kernel(np.random.default_rng(0).random((5, 2)), 2, backend="faiss")
