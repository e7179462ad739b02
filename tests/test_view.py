"""ModelView: whole-pool requests share the cache (read-only), other requests are copies; dtypes are kept."""

from __future__ import annotations

import numpy as np
import pytest

from al_loop.api import build_learner
from al_loop.pool import Pool
from al_loop.view import ModelView


def _pool(n: int = 200, dtype=np.float32) -> Pool:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 6)).astype(dtype)
    y = (X[:, 0] > 0).astype(np.int64)
    return Pool(X=X, ids=10 + 3 * np.arange(n, dtype=np.int64), classes=("a", "b"), y=y, name="t")


def _view(pool: Pool) -> ModelView:
    learner = build_learner("logreg", pool)
    ids = pool.ids[:40]
    learner.fit(pool, ids, pool.hidden_labels(ids), seed=0)
    return ModelView(pool, learner)


def test_whole_pool_in_id_order_is_a_read_only_view_of_the_cache() -> None:
    pool = _pool()
    view = _view(pool)
    a, b = view.embed(pool.ids), view.embed(pool.ids)
    assert np.shares_memory(a, b)  # no copy per request
    assert not a.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        a[0, 0] = 1.0
    part = view.embed(pool.ids[50:120])  # consecutive rows: a slice of the cache
    assert np.shares_memory(part, a) and not part.flags.writeable
    np.testing.assert_array_equal(part, a[50:120])


def test_other_requests_are_writable_copies_in_request_order() -> None:
    pool = _pool()
    view = _view(pool)
    whole = view.proba(pool.ids)
    ids = pool.ids[[5, 2, 9]]
    got = view.proba(ids)
    assert got.flags.writeable and not np.shares_memory(got, whole)
    np.testing.assert_array_equal(got, whole[[5, 2, 9]])
    got[:] = 0  # changing the copy leaves the cache alone
    assert np.abs(view.proba(pool.ids) - whole).max() == 0 and whole.sum() > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embeddings_keep_the_float_dtype_of_the_features(dtype) -> None:
    pool = _pool(dtype=dtype)
    assert _view(pool).embed(pool.ids).dtype == dtype


def test_integer_features_embed_as_float64() -> None:
    pool = _pool()
    pool = Pool(X=np.rint(pool.X * 10).astype(np.int64), ids=pool.ids, classes=pool.classes, y=pool.y, name="t")
    assert _view(pool).embed(pool.ids).dtype == np.float64
