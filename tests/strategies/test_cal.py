"""CAL: hand-computed scores, labeled-only neighbours, blocking, ties, contract."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from al_loop.errors import ConfigError, DataError
from strategies.cal import ContrastiveAL, cal_scores
from tests.contracts.strategy_contract import StrategyContract

L = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
P_L = np.array([[0.9, 0.1], [0.2, 0.8], [1.0, 0.0]])
U = np.array([[1.0, 0.0], [9.0, 1.0], [1.0, 9.0], [9.0, 0.0]])
P_U = np.array([[0.6, 0.4], [0.3, 0.7], [0.5, 0.5], [0.0, 1.0]])
EPS = 1e-12


def test_scores_by_hand() -> None:
    ln = np.log
    # neighbours (k=2): u0 -> L0 (1), L1 (9); u1 -> L1 (sqrt 2), L0 (sqrt 82);
    # u2 -> L2 (sqrt 2), L0 (sqrt 82); u3 -> L1 (1), L0 (9)
    expected = [
        0.5 * ((0.9 * ln(0.9 / 0.6) + 0.1 * ln(0.1 / 0.4)) + (0.2 * ln(0.2 / 0.6) + 0.8 * ln(0.8 / 0.4))),
        0.5 * ((0.2 * ln(0.2 / 0.3) + 0.8 * ln(0.8 / 0.7)) + (0.9 * ln(0.9 / 0.3) + 0.1 * ln(0.1 / 0.7))),
        0.5 * ((1.0 * ln(1.0 / 0.5)) + (0.9 * ln(0.9 / 0.5) + 0.1 * ln(0.1 / 0.5))),  # 0 log 0 = 0
        0.5 * ((0.2 * ln(0.2 / EPS) + 0.8 * ln(0.8 / 1.0)) + (0.9 * ln(0.9 / EPS) + 0.1 * ln(0.1 / 1.0))),
    ]
    scores, nbr = cal_scores(U, L, P_U, P_L, k=2, eps=EPS, dtype="float64")
    assert nbr.tolist() == [[0, 1], [1, 0], [2, 0], [1, 0]]
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_k_is_clamped_to_the_labeled_count() -> None:
    scores, nbr = cal_scores(U, L, P_U, P_L, k=50, eps=EPS)
    assert nbr.shape == (4, 3)
    assert np.isfinite(scores).all()


def test_equal_distances_order_neighbours_by_position() -> None:
    lab = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [2.0, 0.0]])
    cand = np.array([[0.5, 0.0], [0.0, 0.0], [1.5, 0.0]])
    P = np.full((4, 2), 0.5)
    _, nbr = cal_scores(cand, lab, np.full((3, 2), 0.5), P, k=2)
    assert nbr.tolist() == [[0, 1], [1, 2], [0, 3]]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 12), st.sampled_from(["euclidean", "cosine"]))
def test_blocked_equals_unblocked(seed, k, metric) -> None:
    rng = np.random.default_rng(seed)
    emb_u, emb_l = rng.normal(size=(200, 6)), rng.normal(size=(30, 6))
    p_u, p_l = rng.dirichlet(np.ones(4), 200), rng.dirichlet(np.ones(4), 30)
    a, na = cal_scores(emb_u, emb_l, p_u, p_l, k, metric, block_bytes=1)  # one candidate row per block
    b, nb = cal_scores(emb_u, emb_l, p_u, p_l, k, metric, block_bytes=1 << 30)
    np.testing.assert_array_equal(na, nb)
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_cosine_neighbours_ignore_norms() -> None:
    lab = np.array([[1.0, 0.0], [0.0, 1.0]])
    cand = np.array([[100.0, 1.0]])  # far from lab[0] in Euclidean terms, but nearly parallel to it
    P = np.array([[0.5, 0.5], [0.5, 0.5]])
    _, nbr_cos = cal_scores(cand, lab, np.array([[0.5, 0.5]]), P, k=1, metric="cosine")
    assert nbr_cos.tolist() == [[0]]
    _, nbr_eu = cal_scores(np.array([[0.1, 0.9]]) * 0.01, lab * 100, np.array([[0.5, 0.5]]), P, k=1)
    assert nbr_eu.tolist() == [[1]]


def test_bad_input_raises() -> None:
    bad = U.copy()
    bad[1, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        cal_scores(bad, L, P_U, P_L)
    badp = P_U.copy()
    badp[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        cal_scores(U, L, badp, P_L)
    with pytest.raises(DataError, match="labeled"):
        cal_scores(U, L[:0], P_U, P_L[:0])
    with pytest.raises(DataError, match="shape"):
        cal_scores(U, L, P_U[:2], P_L)
    with pytest.raises(ConfigError, match="k >= 1"):
        ContrastiveAL(k=0)


def test_faiss_backend_matches_torch() -> None:  # faiss-cpu is a dev dependency: a missing one fails here
    rng = np.random.default_rng(0)
    emb_u, emb_l = rng.normal(size=(300, 8)), rng.normal(size=(40, 8))
    p_u, p_l = rng.dirichlet(np.ones(3), 300), rng.dirichlet(np.ones(3), 40)
    a, _ = cal_scores(emb_u, emb_l, p_u, p_l, 5)
    b, _ = cal_scores(emb_u, emb_l, p_u, p_l, 5, backend="faiss")
    np.testing.assert_allclose(a, b, rtol=1e-6)


def direct_cal(emb_u, emb_l, p_u, p_l, k, eps=EPS) -> np.ndarray:
    """Full distance matrix, stable argsort, KL term by term."""
    D = ((emb_u[:, None, :] - emb_l[None, :, :]) ** 2).sum(-1)
    nbr = np.argsort(D, axis=1, kind="stable")[:, :k]
    out = np.empty(len(emb_u))
    for i in range(len(emb_u)):
        q = np.maximum(p_u[i], eps)
        kls = []
        for j in nbr[i]:
            p = p_l[j]
            kls.append(sum(pc * np.log(pc / qc) for pc, qc in zip(p, q, strict=True) if pc > 0))
        out[i] = np.mean(kls)
    return out


class TestCAL(StrategyContract):
    def make_strategy(self):
        return ContrastiveAL()

    def test_scores_use_labeled_neighbours_only(self, setup) -> None:
        pool, view, labeled = setup
        ctx = self.ctx(pool, labeled)
        u, lab = ctx.unlabeled_ids, ctx.labeled_ids
        expected = direct_cal(view.embed(u), view.embed(lab), view.proba(u), view.proba(lab), 10)
        sel = ContrastiveAL().select(view, ctx, 15)
        order = np.lexsort((u, -expected))[:15]
        assert sel.ids.tolist() == u[order].tolist()
        np.testing.assert_allclose(sel.scores, expected[order], rtol=1e-9)
        # had the unlabeled points been neighbour candidates, each candidate would be its own nearest
        # neighbour (distance 0) and the scores would differ
        with_unlabeled = direct_cal(view.embed(u), view.embed(np.union1d(u, lab)), view.proba(u),
                                    view.proba(np.union1d(u, lab)), 10)
        assert not np.allclose(with_unlabeled, expected)
