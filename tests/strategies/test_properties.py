"""Property-based tests (hypothesis) on strategy inputs: any scores, any probabilities, any ids."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from al_loop.errors import DataError
from al_loop.pool import Pool
from al_loop.strategy import top_k
from al_loop.types import QueryContext
from al_loop.view import ModelView
from strategies.uncertainty import EntropySampling, entropy_scores, least_confidence_scores, margin_scores

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def ids_and_scores(draw):
    n = draw(st.integers(1, 40))
    ids = draw(st.lists(st.integers(0, 10**12), min_size=n, max_size=n, unique=True))
    scores = draw(st.lists(st.sampled_from([0.0, 1.0, 2.5]) | finite, min_size=n, max_size=n))
    k = draw(st.integers(1, n))
    return np.asarray(ids, dtype=np.int64), np.asarray(scores), k


@given(ids_and_scores())
def test_top_k_equals_sorting_by_score_then_id(data) -> None:
    ids, scores, k = data
    sel = top_k(ids, scores, k)
    expected = sorted(zip(-scores, ids, strict=False))[:k]
    assert sel.ids.tolist() == [int(i) for _, i in expected]
    assert len(set(sel.ids.tolist())) == k


@given(ids_and_scores(), st.integers(0, 39))
def test_a_nan_score_never_wins(data, where) -> None:
    ids, scores, k = data
    scores = scores.copy()
    scores[where % len(scores)] = np.nan
    with pytest.raises(DataError, match="NaN"):
        top_k(ids, scores, k)


@st.composite
def proba_matrices(draw):
    n, c = draw(st.integers(1, 20)), draw(st.integers(2, 8))
    raw = draw(arrays(np.float64, (n, c), elements=st.floats(0, 1)))
    raw[:, 0] += 1e-9
    return raw / raw.sum(axis=1, keepdims=True)


@given(proba_matrices())
def test_uncertainty_scores_are_bounded(p) -> None:
    c = p.shape[1]
    ent = entropy_scores(p)
    assert np.all(ent >= -1e-12) and np.all(ent <= np.log(c) + 1e-9)
    lc = least_confidence_scores(p)
    assert np.all(lc >= -1e-12) and np.all(lc <= 1 - 1 / c + 1e-9)
    mg = margin_scores(p)
    assert np.all(mg <= 1e-12) and np.all(mg >= -1 - 1e-12)


@given(proba_matrices())
def test_uniform_row_has_maximal_entropy(p) -> None:
    c = p.shape[1]
    q = np.vstack([p, np.full((1, c), 1 / c)])
    assert np.argmax(entropy_scores(q)) == len(q) - 1 or np.isclose(entropy_scores(q).max(), np.log(c))


class _NanLearner:
    capabilities = frozenset({"proba"})

    def predict_proba(self, pool, ids):
        out = np.full((len(ids), 2), 0.5)
        out[0] = [np.nan, np.nan]
        return out


@settings(max_examples=20)
@given(st.integers(2, 30), st.integers(1, 5))
def test_nan_probabilities_are_refused_by_the_view(n, budget) -> None:
    pool = Pool(X=np.arange(2 * n, dtype=float).reshape(n, 2), ids=np.arange(100, 100 + n), classes=("a", "b"))
    ctx = QueryContext(round=1, seed=0, labeled_ids=np.array([], dtype=np.int64), labels=np.array([], dtype=np.int64),
                       unlabeled_ids=pool.ids, classes=pool.classes, rng=np.random.default_rng(0))
    with pytest.raises(DataError, match="NaN or Inf probabilities"):
        EntropySampling().select(ModelView(pool, _NanLearner()), ctx, min(budget, n))
