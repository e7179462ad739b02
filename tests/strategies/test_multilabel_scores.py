"""Multi-label scores and metrics: hand-computed cases, brute force, invariants, scikit-learn as the reference."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score
from sklearn.metrics import hamming_loss as sk_hamming_loss

from al_loop.multilabel import hamming_loss, macro_f1, micro_f1, subset_accuracy
from strategies._multilabel_scores import (
    _mmc_features,
    _vector_distances,
    br_uncertainty,
    category_vector_inconsistency,
    cvirs_rank_scores,
    cvirs_scores,
    mmc_label_counts,
    mmc_scores,
)

SEEDS = range(8)


# ---- binary-relevance uncertainty --------------------------------------------------------------------------------

def test_br_uncertainty_by_hand() -> None:
    P = np.array([[0.5, 0.9, 0.0], [0.25, 0.75, 1.0]])
    # u = 1 - |2p - 1|: row 0: [1, 1 - 0.8, 1 - 1] = [1, 0.2, 0]; row 1: [1 - 0.5, 1 - 0.5, 0] = [0.5, 0.5, 0]
    np.testing.assert_allclose(br_uncertainty(P), [1.2 / 3, 1.0 / 3], atol=1e-15)
    np.testing.assert_allclose(br_uncertainty(P, reduce="max"), [1.0, 0.5], atol=1e-15)
    assert br_uncertainty(P).dtype == np.float64


def test_br_uncertainty_extremes() -> None:
    for reduce in ("mean", "max"):
        assert br_uncertainty(np.full((3, 4), 0.5), reduce=reduce).tolist() == [1.0, 1.0, 1.0]
        certain = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
        assert br_uncertainty(certain, reduce=reduce).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("seed", SEEDS)
def test_br_uncertainty_is_symmetric_and_bounded(seed: int) -> None:
    P = np.random.default_rng(seed).random((20, 6))
    for reduce in ("mean", "max"):
        u = br_uncertainty(P, reduce=reduce)
        np.testing.assert_allclose(u, br_uncertainty(1.0 - P, reduce=reduce), atol=1e-12)
        assert np.all((u >= 0) & (u <= 1))
    assert np.all(br_uncertainty(P, "max") >= br_uncertainty(P, "mean") - 1e-15)


def test_br_uncertainty_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="'mean' or 'max'"):
        br_uncertainty(np.full((2, 2), 0.5), reduce="sum")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        br_uncertainty(np.array([[0.5, 1.2]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        br_uncertainty(np.array([[0.5, np.nan]]))
    with pytest.raises(ValueError, match="shape"):
        br_uncertainty(np.array([0.5, 0.2]))


# ---- MMC ---------------------------------------------------------------------------------------------------------

def test_mmc_by_hand() -> None:
    P = np.array([
        [0.9, 0.6, 0.2],
        [0.5, 0.5, 0.5],
        [0.1, 0.8, 0.7],
    ])
    # a +1 label adds (1 - f) / 2 = 1 - p, a -1 label adds (1 + f) / 2 = p
    # row 0, k = 1: +1 = {0}:       (1 - 0.9) + 0.6 + 0.2 = 0.9
    # row 1, k = 2: every term 0.5: 1.5
    # row 2, k = 1: +1 = {1}:       0.1 + (1 - 0.8) + 0.7 = 1.0
    np.testing.assert_allclose(mmc_scores(P, np.array([1, 2, 1])), [0.9, 1.5, 1.0], atol=1e-12)
    # row 2, k = 3: every label +1: 0.9 + 0.2 + 0.3 = 1.4; row 0, k = 0: every label -1: 0.9 + 0.6 + 0.2 = 1.7
    np.testing.assert_allclose(mmc_scores(P, np.array([0, 2, 3])), [1.7, 1.5, 1.4], atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_mmc_equals_the_smallest_loss_over_every_vector_with_k_labels(seed: int) -> None:
    # the top-k vector minimises sum_l (1 - y_l f_l) / 2 among vectors with exactly k labels at +1
    rng = np.random.default_rng(seed)
    n, L = 12, 5
    P = np.round(rng.random((n, L)), 1)  # rounding makes ties common
    k = rng.integers(0, L + 1, size=n)
    f = 2 * P - 1
    expected = []
    for i in range(n):
        losses = []
        for plus in itertools.combinations(range(L), int(k[i])):
            y = -np.ones(L)
            y[list(plus)] = 1
            losses.append(((1 - y * f[i]) / 2).sum())
        expected.append(min(losses))
    np.testing.assert_allclose(mmc_scores(P, k), expected, atol=1e-12)


def test_mmc_does_not_depend_on_how_ties_are_split() -> None:
    # labels 0 and 1 tie at 0.7 and k = 1: 0.3 + 0.7 + 0.2 = 1.2 whichever takes the +1
    P = np.array([[0.7, 0.7, 0.2], [0.2, 0.7, 0.7]])
    np.testing.assert_allclose(mmc_scores(P, np.array([1, 1])), [1.2, 1.2], atol=1e-12)


def test_mmc_rises_as_a_confident_label_moves_toward_one_half() -> None:
    # label 0 stays the single +1 (the others are <= 0.3); its term 1 - p grows as p falls to 0.5
    ps = [0.99, 0.9, 0.8, 0.7, 0.6, 0.51]
    P = np.array([[p, 0.3, 0.1] for p in ps])
    scores = mmc_scores(P, np.ones(len(ps), dtype=np.int64))
    assert np.all(np.diff(scores) > 0)
    np.testing.assert_allclose(scores, [1 - p + 0.4 for p in ps], atol=1e-12)
    # a -1 label moving up toward 0.5 raises it too (its term is p)
    P = np.array([[0.9, q, 0.1] for q in [0.0, 0.1, 0.3, 0.49]])
    assert np.all(np.diff(mmc_scores(P, np.ones(4, dtype=np.int64))) > 0)


def test_mmc_rejects_bad_counts() -> None:
    P = np.full((2, 3), 0.5)
    with pytest.raises(ValueError, match="shape"):
        mmc_scores(P, np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="0..3"):
        mmc_scores(P, np.array([1, 4]))
    with pytest.raises(ValueError, match="0..3"):
        mmc_scores(P, np.array([-1, 1]))
    with pytest.raises(ValueError, match="whole numbers"):
        mmc_scores(P, np.array([1.5, 1.0]))
    np.testing.assert_allclose(mmc_scores(P, np.array([1.0, 2.0])), [1.5, 1.5])  # whole floats are fine


def test_mmc_features_are_sorted_descending_and_sum_to_one() -> None:
    P = np.array([[0.2, 0.6, 0.2], [0.1, 0.3, 0.4], [0.0, 0.0, 0.0]])
    # [0.6, 0.2, 0.2] / 1.0; [0.4, 0.3, 0.1] / 0.8 = [0.5, 0.375, 0.125]; a zero row becomes uniform
    expected = [[0.6, 0.2, 0.2], [0.5, 0.375, 0.125], [1 / 3, 1 / 3, 1 / 3]]
    np.testing.assert_allclose(_mmc_features(P), expected, atol=1e-15)


def _synthetic_counts(rng: np.random.Generator, per_count: int, L: int, counts: list[int]) -> tuple:
    """Items whose number of labels shows in P: k probabilities near 0.9, the rest near 0.1."""
    P_rows, Y_rows = [], []
    for k in counts:
        for _ in range(per_count):
            labels = rng.permutation(L)[:k]
            y = np.zeros(L, dtype=np.int64)
            y[labels] = 1
            P_rows.append(np.where(y == 1, rng.uniform(0.8, 1.0, L), rng.uniform(0.0, 0.2, L)))
            Y_rows.append(y)
    return np.array(P_rows), np.array(Y_rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mmc_label_counts_learns_the_count_from_sorted_probabilities(seed: int) -> None:
    rng = np.random.default_rng(seed)
    P_lab, Y_lab = _synthetic_counts(rng, 40, 6, [1, 2, 3])
    P_un, Y_un = _synthetic_counts(rng, 20, 6, [1, 2, 3])
    counts = mmc_label_counts(P_lab, Y_lab, P_un, seed=seed)
    assert counts.dtype == np.int64 and counts.shape == (len(P_un),)
    assert np.mean(counts == Y_un.sum(axis=1)) >= 0.95
    np.testing.assert_array_equal(counts, mmc_label_counts(P_lab, Y_lab, P_un, seed=seed))


def test_mmc_label_counts_with_one_distinct_count_returns_it() -> None:
    rng = np.random.default_rng(0)
    P_lab = rng.random((5, 4))
    P_un = rng.random((3, 4))
    two = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1], [0, 0, 1, 1], [1, 0, 1, 0]])
    assert mmc_label_counts(P_lab, two, P_un, seed=0).tolist() == [2, 2, 2]
    # no labels at all: clipped up to 1
    assert mmc_label_counts(P_lab, np.zeros((5, 4), dtype=np.int64), P_un, seed=0).tolist() == [1, 1, 1]
    assert mmc_label_counts(P_lab, two, np.zeros((0, 4)), seed=0).shape == (0,)


def test_mmc_label_counts_clips_a_predicted_zero_to_one() -> None:
    rng = np.random.default_rng(3)
    P_lab, Y_lab = _synthetic_counts(rng, 40, 5, [0, 1])
    P_un, _ = _synthetic_counts(rng, 10, 5, [0])
    assert mmc_label_counts(P_lab, Y_lab, P_un, seed=0).tolist() == [1] * 10


def test_mmc_label_counts_rejects_bad_arguments() -> None:
    P = np.full((3, 4), 0.5)
    Y = np.eye(3, 4, dtype=np.int64)
    with pytest.raises(ValueError, match="at least one labeled item"):
        mmc_label_counts(np.zeros((0, 4)), np.zeros((0, 4), dtype=np.int64), P, seed=0)
    with pytest.raises(ValueError, match="shape of P_labeled"):
        mmc_label_counts(P, Y[:2], P, seed=0)
    with pytest.raises(ValueError, match="4 columns"):
        mmc_label_counts(P, Y, np.full((2, 3), 0.5), seed=0)
    with pytest.raises(ValueError, match="0/1"):
        mmc_label_counts(P, 2 * Y, P, seed=0)


# ---- CVIRS -------------------------------------------------------------------------------------------------------

def test_cvirs_rank_scores_by_hand() -> None:
    P = np.array([
        [0.5, 0.6],
        [0.9, 0.55],
        [0.2, 1.0],
    ])
    # label 0 margins |2p - 1| = [0, 0.8, 0.6]: positions tau = [1, 3, 2], n - tau = [2, 0, 1]
    # label 1 margins [0.2, 0.1, 1.0]:           positions tau = [2, 1, 3], n - tau = [1, 2, 0]
    # s = sum / (L (n - 1)) = [3, 2, 1] / 4
    np.testing.assert_allclose(cvirs_rank_scores(P), [0.75, 0.5, 0.25], atol=1e-15)


def test_cvirs_rank_scores_ties_share_their_mean_position() -> None:
    # margins [0, 0, 0.8]: positions [1.5, 1.5, 3], n - tau = [1.5, 1.5, 0], / (1 * 2)
    np.testing.assert_allclose(cvirs_rank_scores(np.array([[0.5], [0.5], [0.9]])), [0.75, 0.75, 0.0])
    assert cvirs_rank_scores(np.array([[0.3, 0.9]])).tolist() == [1.0]  # one candidate heads every ranking
    assert cvirs_rank_scores(np.zeros((0, 2))).shape == (0,)


@pytest.mark.parametrize("seed", SEEDS)
def test_cvirs_rank_scores_bounds_and_extremes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    P = rng.uniform(0.05, 0.95, size=(15, 4))
    P[3] = 0.5  # the most uncertain for every label (margin 0; nothing else is at 0.5)
    P[7] = 1.0  # the least uncertain for every label
    s = cvirs_rank_scores(P)
    assert np.all((s >= 0) & (s <= 1))
    assert s[3] == 1.0 and s[7] == 0.0


def _reference_distance(u: list[int], v: list[int]) -> float:
    """The CVIRS distance of two 0/1 lists, by counting pairs, with natural logs (the base cancels)."""
    q = len(u)
    if sum(x != y for x, y in zip(u, v, strict=True)) == q:
        return 1.0

    def h(counts: list[int]) -> float:
        return -sum(c / q * math.log(c / q) for c in counts if c > 0)

    joint = h([sum(1 for x, y in zip(u, v, strict=True) if (x, y) == cell)
               for cell in [(0, 0), (0, 1), (1, 0), (1, 1)]])
    if joint == 0:
        return 0.0
    return (2 * joint - h([u.count(0), u.count(1)]) - h([v.count(0), v.count(1)])) / joint


def test_vector_distance_by_hand() -> None:
    # yhat = [1,1,0,0], y = [1,0,0,0]: a = 1, b = 1, c = 0, d = 2 (of 4)
    # H(yhat) = H(1/2) = 1 bit, H(y) = H(1/4) = 0.811278 bits, H(yhat, y) = H(1/4, 1/4, 0, 1/2) = 1.5 bits
    # d_E = (2 * 1.5 - 1 - 0.811278) / 1.5 = 0.792481
    h_quarter = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    expected = (3.0 - 1.0 - h_quarter) / 1.5
    D = _vector_distances(np.array([[1, 1, 0, 0]]), np.array([[1, 0, 0, 0], [0, 0, 1, 1], [1, 1, 0, 0]]))
    # second: complementary (Hamming distance 1) -> 1; third: equal -> 0
    np.testing.assert_allclose(D, [[expected, 1.0, 0.0]], atol=1e-12)
    assert abs(expected - 0.792481) < 1e-6
    # equal constant vectors: the joint entropy is 0 and they are at distance 0; all-ones vs all-zeros is 1
    D = _vector_distances(np.array([[0, 0, 0], [1, 1, 1]]), np.array([[0, 0, 0]]))
    np.testing.assert_allclose(D, [[0.0], [1.0]])


def test_vector_distance_on_every_pair_of_short_vectors() -> None:
    for L in (1, 2, 4):
        V = np.array(list(itertools.product([0, 1], repeat=L)))
        D = _vector_distances(V, V)
        ref = np.array([[_reference_distance(list(u), list(v)) for v in V] for u in V])
        np.testing.assert_allclose(D, ref, atol=1e-12)
        np.testing.assert_allclose(D, D.T, atol=1e-12)
        assert np.all((D >= 0) & (D <= 1))
        assert np.array_equal(D == 0, np.eye(len(V), dtype=bool))  # 0 exactly for equal vectors


def test_category_vector_inconsistency_averages_over_the_labeled_set() -> None:
    yhat = np.array([[1, 1, 0, 0]])
    labeled = np.array([[1, 0, 0, 0], [0, 0, 1, 1], [1, 1, 0, 0]])
    # (0.792481 + 1 + 0) / 3, the three distances of test_vector_distance_by_hand
    expected = (_reference_distance([1, 1, 0, 0], [1, 0, 0, 0]) + 1.0 + 0.0) / 3
    np.testing.assert_allclose(category_vector_inconsistency(yhat, labeled), [expected], atol=1e-12)
    np.testing.assert_allclose(category_vector_inconsistency(yhat, labeled[::-1]), [expected], atol=1e-12)
    assert category_vector_inconsistency(yhat, np.zeros((0, 4), dtype=np.int64)).tolist() == [1.0]


@pytest.mark.parametrize("seed", SEEDS)
def test_an_item_agreeing_with_every_labeled_vector_is_the_least_inconsistent(seed: int) -> None:
    rng = np.random.default_rng(seed)
    L = 6
    v = (rng.random(L) < 0.5).astype(np.int64)
    labeled = np.tile(v, (5, 1))
    Yhat = (rng.random((10, L)) < 0.5).astype(np.int64)
    Yhat[4] = v
    inc = category_vector_inconsistency(Yhat, labeled)
    assert inc[4] == 0.0
    differs = np.any(Yhat != v, axis=1)
    assert np.all(inc[differs] > 0)


def test_cvirs_scores_by_hand() -> None:
    P = np.array([
        [0.5, 0.6],
        [0.9, 0.55],
        [0.2, 1.0],
    ])
    # rank scores [0.75, 0.5, 0.25] (test_cvirs_rank_scores_by_hand); predicted vectors P >= 0.5:
    # [1, 1], [1, 1], [0, 1]. Labeled set {[1, 1], [0, 1]}.
    # [1,1] vs [1,1]: 0. [1,1] vs [0,1]: a = 1, b = 1, c = d = 0: H(yhat) = 0, H(y) = 1 bit, joint = 1 bit,
    #   d_E = (2 - 0 - 1) / 1 = 1. [0,1] vs [1,1]: 1 likewise; [0,1] vs [0,1]: 0.
    # inconsistency [0.5, 0.5, 0.5] -> scores [0.375, 0.25, 0.125]
    labeled = np.array([[1, 1], [0, 1]])
    np.testing.assert_allclose(cvirs_scores(P, labeled), [0.375, 0.25, 0.125], atol=1e-12)
    # no labeled items: the inconsistency is 1, the score the rank aggregation alone
    np.testing.assert_allclose(cvirs_scores(P, np.zeros((0, 2), dtype=np.int64)), [0.75, 0.5, 0.25])


@pytest.mark.parametrize("seed", SEEDS)
def test_cvirs_permuting_items_permutes_scores(seed: int) -> None:
    rng = np.random.default_rng(seed)
    P = np.round(rng.random((25, 5)), 1)  # ties in the margins
    labeled = (rng.random((8, 5)) < 0.4).astype(np.int64)
    perm = rng.permutation(len(P))
    scores = cvirs_scores(P, labeled)
    np.testing.assert_allclose(cvirs_scores(P[perm], labeled), scores[perm], rtol=1e-12, atol=1e-15)
    # nor do the labeled set's order or a relabelling of the labels (columns of both) change anything
    np.testing.assert_allclose(cvirs_scores(P, labeled[rng.permutation(8)]), scores, rtol=1e-12, atol=1e-15)
    cols = rng.permutation(5)
    np.testing.assert_allclose(cvirs_scores(P[:, cols], labeled[:, cols]), scores, rtol=1e-12, atol=1e-15)
    assert np.all((scores >= 0) & (scores <= 1))


def test_cvirs_inconsistency_is_computed_in_chunks_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    import strategies._multilabel_scores as mls

    rng = np.random.default_rng(0)
    Yhat = (rng.random((40, 5)) < 0.5).astype(np.int64)
    labeled = (rng.random((7, 5)) < 0.5).astype(np.int64)
    whole = category_vector_inconsistency(Yhat, labeled)
    monkeypatch.setattr(mls, "_PAIR_CHUNK", 10)  # 1 candidate per chunk
    np.testing.assert_allclose(category_vector_inconsistency(Yhat, labeled), whole, atol=1e-15)


def test_cvirs_rejects_bad_arguments() -> None:
    P = np.full((3, 4), 0.5)
    with pytest.raises(ValueError, match="4 columns"):
        cvirs_scores(P, np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="0/1"):
        cvirs_scores(P, np.full((2, 4), 2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        cvirs_scores(P - 1.0, np.zeros((2, 4), dtype=np.int64))


# ---- metrics -----------------------------------------------------------------------------------------------------

def test_metrics_by_hand() -> None:
    Y = np.array([[1, 0, 1], [0, 1, 0]])
    Yhat = np.array([[1, 0, 0], [0, 1, 1]])
    # tp = 2 (cells (0,0), (1,1)), fp = 1 (cell (1,2)), fn = 1 (cell (0,2)): micro = 2*2 / (2*2 + 1 + 1) = 2/3
    assert micro_f1(Y, Yhat) == pytest.approx(2 / 3)
    # per label F1: label 0 = 1, label 1 = 1, label 2 (tp 0, fp 1, fn 1) = 0: macro = 2/3
    assert macro_f1(Y, Yhat) == pytest.approx(2 / 3)
    assert subset_accuracy(Y, Yhat) == 0.0  # neither row matches exactly
    assert hamming_loss(Y, Yhat) == pytest.approx(2 / 6)  # 2 wrong cells of 6
    assert subset_accuracy(Y, Y) == 1.0 and hamming_loss(Y, Y) == 0.0 and micro_f1(Y, Y) == 1.0


def test_labels_without_positives_count_zero_in_macro_f1() -> None:
    Y = np.array([[1, 0], [0, 0]])
    # label 0: F1 1; label 1: no true and no predicted positive -> 0 (zero_division=0): mean 0.5
    assert macro_f1(Y, Y) == 0.5
    assert macro_f1(Y, Y) == f1_score(Y, Y, average="macro", zero_division=0)
    Z = np.zeros((3, 2), dtype=np.int64)
    assert micro_f1(Z, Z) == 0.0 == f1_score(Z, Z, average="micro", zero_division=0)


@pytest.mark.parametrize("seed", range(12))
def test_metrics_match_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # L >= 2: scikit-learn reads a single column as a binary target, not as one label (see the next test)
    n, L = int(rng.integers(1, 30)), int(rng.integers(2, 8))
    density = rng.uniform(0.05, 0.6)  # sparse draws leave some labels without any positive
    Y = (rng.random((n, L)) < density).astype(np.int64)
    Yhat = np.where(rng.random((n, L)) < 0.7, Y, 1 - Y)  # agree on about 70% of cells
    assert micro_f1(Y, Yhat) == pytest.approx(f1_score(Y, Yhat, average="micro", zero_division=0), abs=1e-12)
    assert macro_f1(Y, Yhat) == pytest.approx(f1_score(Y, Yhat, average="macro", zero_division=0), abs=1e-12)
    assert subset_accuracy(Y, Yhat) == pytest.approx(accuracy_score(Y, Yhat), abs=1e-12)
    assert hamming_loss(Y, Yhat) == pytest.approx(sk_hamming_loss(Y, Yhat), abs=1e-12)
    R = (rng.random((n, L)) < 0.5).astype(np.int64)  # an unrelated prediction
    assert macro_f1(Y, R) == pytest.approx(f1_score(Y, R, average="macro", zero_division=0), abs=1e-12)
    assert micro_f1(Y, R) == pytest.approx(f1_score(Y, R, average="micro", zero_division=0), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_metrics_of_a_single_label_are_that_labels_binary_scores(seed: int) -> None:
    rng = np.random.default_rng(seed)
    Y = (rng.random((20, 1)) < 0.4).astype(np.int64)
    Yhat = np.where(rng.random((20, 1)) < 0.7, Y, 1 - Y)
    binary_f1 = f1_score(Y[:, 0], Yhat[:, 0], average="binary", zero_division=0)
    assert micro_f1(Y, Yhat) == pytest.approx(binary_f1, abs=1e-12)
    assert macro_f1(Y, Yhat) == pytest.approx(binary_f1, abs=1e-12)
    assert subset_accuracy(Y, Yhat) == pytest.approx(accuracy_score(Y[:, 0], Yhat[:, 0]), abs=1e-12)
    assert hamming_loss(Y, Yhat) == pytest.approx(sk_hamming_loss(Y[:, 0], Yhat[:, 0]), abs=1e-12)


def test_metrics_accept_booleans() -> None:
    Y = np.array([[True, False], [False, True]])
    assert hamming_loss(Y, ~Y) == 1.0 and micro_f1(Y, Y) == 1.0


@pytest.mark.parametrize("metric", [micro_f1, macro_f1, subset_accuracy, hamming_loss])
def test_metrics_reject_bad_arguments(metric) -> None:
    Y = np.array([[1, 0, 1], [0, 1, 0]])
    with pytest.raises(ValueError, match="same shape"):
        metric(Y, Y[:, :2])
    with pytest.raises(ValueError, match="same shape"):
        metric(Y, Y.T)
    with pytest.raises(ValueError, match="0/1"):
        metric(Y, 2 * Y)
    with pytest.raises(ValueError, match=r"shape \(n, L\)"):
        metric(Y[0], Y[1])
    with pytest.raises(ValueError, match="non-empty"):
        metric(np.zeros((0, 3)), np.zeros((0, 3)))
