"""Each function equals its closed formula on hand-made examples, including the limits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from al_loop.errors import ConfigError
from strategies.submodular import build_function, maximize
from strategies.submodular.base import PartitionSum
from strategies.submodular.com import ConcaveOverModular
from strategies.submodular.facility_location import FacilityLocation, FacilityLocationQueryMI
from strategies.submodular.graph_cut import GraphCut, graph_cut_cg, graph_cut_mi
from strategies.submodular.kernels import DenseKernel
from strategies.submodular.logdet import log_determinant, logdet_cg, logdet_cmi, logdet_mi

S = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 1.0]])
S_QV = np.array([[0.2, 0.8, 0.1], [0.5, 0.0, 0.4]])
ALL_SUBSETS = [list(c) for r in range(4) for c in itertools.combinations(range(3), r)]


def test_facility_location_by_hand() -> None:
    f = FacilityLocation(S)
    assert f.evaluate([0]) == pytest.approx(1.5)
    assert f.evaluate([0, 2]) == pytest.approx(2.5)


def test_flvmi_flcg_flcmi_by_hand() -> None:
    q, p = np.array([0.3, 0.9, 0.6]), np.array([0.1, 0.6, 0.0])
    assert FacilityLocation(S, cap=q).evaluate([0]) == pytest.approx(0.3 + 0.5 + 0.0)  # sum_i min(max_A s, q_i)
    assert FacilityLocation(S, floor=p).evaluate([0]) == pytest.approx(0.9 + 0.0 + 0.0)  # sum_i max(max_A s - p_i, 0)
    assert FacilityLocation(S, cap=q, floor=p).evaluate([0]) == pytest.approx(0.2)
    assert FacilityLocation(S, cap=q, floor=p).evaluate([1, 2]) == pytest.approx(0.2 + 0.3 + 0.6)


def test_flcmi_with_empty_private_set_is_flvmi_and_with_huge_eta_is_flcg() -> None:
    rng = np.random.default_rng(0)
    X, Xq, Xp = rng.random((7, 3)), rng.random((2, 3)), rng.random((2, 3))
    cmi_no_p = build_function("flcmi", X, Xq, Xp, eta=0.8, nu=0.0)
    vmi = build_function("flvmi", X, Xq, eta=0.8)
    cmi_big_eta = build_function("flcmi", X, Xq, Xp, eta=1e6, nu=0.7)
    cg = build_function("flcg", X, None, Xp, nu=0.7)
    fl = build_function("fl", X)
    for A in ([0], [1, 4], [0, 2, 5, 6]):
        assert cmi_no_p.evaluate(A) == pytest.approx(vmi.evaluate(A))
        assert cmi_big_eta.evaluate(A) == pytest.approx(cg.evaluate(A))
        assert build_function("flcg", X, None, Xp, nu=0.0).evaluate(A) == pytest.approx(fl.evaluate(A))
    # FLCMI with no P (floor None) is FLVMI, not FLQMI
    assert FacilityLocation(S, cap=np.ones(3) * 0.6).evaluate([0]) != FacilityLocationQueryMI(S_QV).evaluate([0])


def test_flqmi_by_hand() -> None:
    f = FacilityLocationQueryMI(S_QV, eta=0.5)
    assert f.evaluate([1]) == pytest.approx(0.8 + 0.0 + 0.5 * 0.8)
    assert f.evaluate([0, 2]) == pytest.approx(0.2 + 0.5 + 0.5 * (0.5 + 0.4))


def test_graph_cut_gccg_gcmi_by_hand() -> None:
    f = GraphCut(S, lam=0.5)
    assert f.evaluate([0]) == pytest.approx(1.5 - 0.5 * 1.0)
    assert f.evaluate([0, 1]) == pytest.approx(3.2 - 0.5 * 3.0)
    cg = graph_cut_cg(S, np.array([[0.3, 0.1, 0.0]]), lam=0.5, nu=1.0)
    assert cg.evaluate([0]) == pytest.approx(1.0 - 2 * 0.5 * 1.0 * 0.3)
    assert graph_cut_mi(S_QV, lam=0.5).evaluate([0, 2]) == pytest.approx(2 * 0.5 * (0.2 + 0.5 + 0.1 + 0.4))


def test_gccg_with_nu_zero_is_graph_cut() -> None:
    X, Xp = np.random.default_rng(1).random((8, 3)), np.random.default_rng(2).random((2, 3))
    gc, cg = build_function("gc", X, lam=0.3), build_function("gccg", X, None, Xp, lam=0.3, nu=0.0)
    for A in ([0], [2, 3], [1, 5, 7]):
        assert cg.evaluate(A) == pytest.approx(gc.evaluate(A))


def test_com_by_hand() -> None:
    f = ConcaveOverModular(S_QV, eta=1.0)
    assert f.evaluate([0]) == pytest.approx(np.sqrt(0.7) + np.sqrt(0.2) + np.sqrt(0.5))
    assert f.evaluate([0, 1]) == pytest.approx(np.sqrt(0.7) + np.sqrt(0.8) + np.sqrt(1.0) + np.sqrt(0.5))


def _joint() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    Y = rng.normal(size=(9, 4))
    J = Y @ Y.T / 4  # PSD joint kernel over V (0..4), Q (5, 6), P (7, 8)
    return J, np.arange(5), np.array([5, 6]), np.array([7, 8])


def _logdet(M: np.ndarray) -> float:
    sign, val = np.linalg.slogdet(M)
    assert sign > 0
    return float(val)


def test_logdet_and_logdetmi_closed_forms() -> None:
    J, v, q, _ = _joint()
    K = J + np.eye(9)  # reg = 1
    f, mi = log_determinant(DenseKernel(J, 1.0), v), logdet_mi(DenseKernel(J, 1.0), v, q, eta=0.7)
    for A in ([0], [1, 3], [0, 2, 4]):
        KA, KAQ, KQ = K[np.ix_(A, A)], K[np.ix_(A, q)], K[np.ix_(q, q)]
        assert f.evaluate(A) == pytest.approx(_logdet(KA))
        assert mi.evaluate(A) == pytest.approx(_logdet(KA) - _logdet(KA - 0.49 * KAQ @ np.linalg.solve(KQ, KAQ.T)))


def test_logdetcg_closed_form() -> None:
    J, v, _, p = _joint()
    K = J + np.eye(9)
    cg = logdet_cg(DenseKernel(J, 1.0), v, p, nu=0.6)
    A = [0, 3]
    KA, KAP, KP = K[np.ix_(A, A)], K[np.ix_(A, p)], K[np.ix_(p, p)]
    assert cg.evaluate(A) == pytest.approx(_logdet(KA - 0.36 * KAP @ np.linalg.solve(KP, KAP.T)))


@pytest.mark.parametrize(("eta", "nu"), [(1.0, 1.0), (0.8, 0.5)])
def test_logdetcmi_equals_its_definition_on_the_scaled_joint_kernel(eta, nu) -> None:
    """I(A; Q | P) = f(A+P) + f(Q+P) - f(A+Q+P) - f(P), f = log det of S^{eta,nu} (PRISM)."""
    J, v, q, p = _joint()
    K = J + np.eye(9)
    cmi = logdet_cmi(DenseKernel(J, 1.0), v, q, p, eta=eta, nu=nu)
    Ks = K.copy()
    for rows, scale in ((q, eta), (p, nu)):
        Ks[np.ix_(v, rows)] *= scale
        Ks[np.ix_(rows, v)] *= scale

    def f(idx):
        idx = list(idx)
        return _logdet(Ks[np.ix_(idx, idx)]) if idx else 0.0

    Q, P = q.tolist(), p.tolist()
    for A in ([0], [1, 4], [0, 2, 3]):
        expected = f(A + P) + f(Q + P) - f(A + Q + P) - f(P)
        assert cmi.evaluate(A) == pytest.approx(expected, rel=1e-9)


def test_logdetcmi_limits() -> None:
    J, v, q, p = _joint()
    kern = DenseKernel(J, 1.0)
    no_p = logdet_cmi(kern, v, q, np.zeros(0, dtype=np.int64), eta=0.9)
    no_q = logdet_cmi(kern, v, np.zeros(0, dtype=np.int64), p, nu=0.9)
    mi = logdet_mi(kern, v, q, eta=0.9)
    for A in ([0], [1, 2, 4]):
        assert no_p.evaluate(A) == pytest.approx(mi.evaluate(A))
        assert no_q.evaluate(A) == pytest.approx(0.0, abs=1e-12)


def _cosine_nonneg(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((30, 5)), rng.random((4, 5))


@pytest.mark.parametrize("name", ["logdetmi", "logdetcmi"])
def test_logdet_mi_with_eta_above_one_raises_instead_of_nan(name) -> None:
    """The reference engine returns NaN here: S_A - eta^2 S_AQ S_Q^-1 S_QA is not PD for eta = 1.5."""
    X, Xq = _cosine_nonneg()
    Xp = np.random.default_rng(9).random((3, 5))
    f = build_function(name, X, Xq, Xp, eta=1.5, nu=0.5, reg=0.01)
    with pytest.raises(ConfigError, match="lower eta below 1.5") as err:
        maximize(f, 5, "naive")
    assert "raise the regulariser reg" in str(err.value)
    with pytest.raises(ConfigError, match="not positive definite"):
        f.evaluate([0, 1])
    # eta = nu <= 1 keeps the Schur complements positive definite: same data, no error, finite gains
    ok = maximize(build_function(name, X, Xq, Xp, eta=1.0, nu=1.0, reg=0.01), 5, "naive")
    assert np.isfinite(ok.gains).all()


def test_logdet_duplicates_without_regulariser_raise_naming_reg() -> None:
    X = np.repeat(np.random.default_rng(0).random((3, 4)), 2, axis=0)
    f = build_function("logdet", X, reg=0.0)
    with pytest.raises(ConfigError, match="raise the regulariser reg"):
        maximize(f, 4, "naive")


def test_partition_sum_adds_the_parts() -> None:
    f0, f1 = FacilityLocation(S), GraphCut(S, lam=0.5)
    f = PartitionSum(6, [(np.array([0, 2, 4]), f0), (np.array([1, 3, 5]), f1)])
    assert f.evaluate([0, 3, 4]) == pytest.approx(f0.evaluate([0, 2]) + f1.evaluate([1]))
    assert f.gain(np.array([2])) == pytest.approx(f0.gain(np.array([1])))


def test_preselect_is_conditioning() -> None:
    f = FacilityLocation(S, preselect=[0])
    for A in ([1], [2], [1, 2]):
        assert f.evaluate(A) == pytest.approx(FacilityLocation(S).evaluate(A + [0]) - 1.5)
    res = maximize(f, 2, "lazy")
    assert 0 not in res.positions.tolist()


@pytest.mark.parametrize("method", ["naive", "lazy", "stochastic"])
def test_per_class_budgets_are_respected(method) -> None:
    X = np.random.default_rng(5).random((40, 4))
    groups = np.arange(40) % 3
    f = build_function("fl", X)
    res = maximize(f, 10, method, groups=groups, group_budget=np.array([2, 5, 1]), rng=np.random.default_rng(0))
    counts = np.bincount(groups[res.positions], minlength=3)
    assert counts.tolist() == [2, 5, 1]  # stops at 8 < 10: no eligible candidate left


def test_lazy_equals_naive_with_class_budgets() -> None:
    X = np.random.default_rng(6).random((60, 4))
    groups = np.arange(60) % 4
    f = build_function("flvmi", X, X[:3])
    a = maximize(f, 12, "naive", groups=groups, group_budget=np.array([3, 3, 3, 3]))
    b = maximize(f, 12, "lazy", groups=groups, group_budget=np.array([3, 3, 3, 3]))
    np.testing.assert_array_equal(a.positions, b.positions)


def test_maximizer_refusals() -> None:
    f = FacilityLocation(S)
    with pytest.raises(ConfigError, match="numpy Generator"):
        maximize(f, 2, "stochastic")
    with pytest.raises(ConfigError, match="unknown optimizer"):
        maximize(f, 2, "greedy")
    with pytest.raises(ConfigError, match="epsilon"):
        maximize(f, 2, "stochastic", rng=np.random.default_rng(0), epsilon=2.0)


def test_build_function_refusals_name_the_fix() -> None:
    X = np.random.default_rng(0).random((5, 3))
    with pytest.raises(ConfigError, match="needs a non-empty query set"):
        build_function("flvmi", X)
    with pytest.raises(ConfigError, match="needs a non-empty private set"):
        build_function("flcg", X)
    with pytest.raises(ConfigError, match="unknown submodular function"):
        build_function("facility", X)
    with pytest.raises(ConfigError, match="eta must be"):
        build_function("flvmi", X, X[:1], eta=-1.0)
