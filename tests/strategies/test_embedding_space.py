"""The shared point space of the geometric cold-start strategies: PCA projection and its cache."""

from __future__ import annotations

import numpy as np
import pytest

from strategies import _embedding_space as es


@pytest.fixture(autouse=True)
def empty_cache():
    es._PCA_CACHE.clear()
    yield
    es._PCA_CACHE.clear()


def test_cached_pca_equals_a_fresh_projection_and_is_computed_once(monkeypatch) -> None:
    X = np.random.default_rng(0).normal(size=(300, 80)).astype(np.float32)
    calls = []
    real = es.pca_project
    monkeypatch.setattr(es, "pca_project", lambda *a: calls.append(1) or real(*a))
    a = es.cached_pca(X, 10)
    b = es.cached_pca(X.copy(), 10)  # equal content, another array: a hit
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, real(X.astype(np.float64), 10, es.PCA_SEED))
    assert a.shape == (300, 10) and a.dtype == np.float64
    assert len(calls) == 1


def test_cached_pca_misses_when_one_value_changes() -> None:
    X = np.random.default_rng(1).normal(size=(200, 60))
    a = es.cached_pca(X, 5)
    Y = X.copy()
    Y[17, 3] += 1.0
    b = es.cached_pca(Y, 5)
    assert not np.allclose(a, b)
    assert len(es._PCA_CACHE) == 2


def test_callers_cannot_corrupt_the_cache() -> None:
    X = np.random.default_rng(2).normal(size=(100, 70))
    a = es.cached_pca(X, 4)
    a[:] = 0.0
    assert np.abs(es.cached_pca(X, 4)).sum() > 0


def test_cache_keeps_a_bounded_number_of_projections() -> None:
    rng = np.random.default_rng(3)
    for _ in range(es.PCA_CACHE_SIZE + 3):
        es.cached_pca(rng.normal(size=(60, 55)), 3)
    assert len(es._PCA_CACHE) == es.PCA_CACHE_SIZE


def test_pca_space_rejects_non_finite_features() -> None:
    X = np.ones((50, 60))
    X[3, 3] = np.nan
    with pytest.raises(es.DataError, match="NaN or Inf"):
        es.cached_pca(X, 5)
