"""Pure multi-label acquisition scores (no model, no ids); the metrics are in :mod:`al_loop.multilabel`.

The score functions take ``P``, shape (n, L): ``P[i, l]`` is the predicted
probability that label ``l`` applies to item ``i``, from independent
per-label outputs (sigmoids, one-vs-rest / binary relevance classifiers);
rows need not sum to 1. Label matrices ``Y`` are (n, L) 0/1 indicator
matrices. Scores are float64, shape (n,), higher = more informative; the
rows of ``P`` are the candidate (unlabeled) items.

References
----------
Yang, Sun, Wang, Chen, Zhang (2009), "Effective multi-label active learning
for text classification", KDD (MMC: maximum loss reduction with maximal
confidence).
Reyes, Morell, Ventura (2018), "Effective active learning strategy for
multi-label learning", Neurocomputing 273, 494-508 (CVIRS: category vector
inconsistency and ranking of scores).
Tsoumakas, Katakis, Vlahavas (2010), "Mining multi-label data", Data Mining
and Knowledge Discovery Handbook (binary relevance; Hamming loss, subset
accuracy, micro / macro F1).
"""

from __future__ import annotations

import numpy as np

from al_loop.multilabel import check_indicator

# the most (candidate, labeled) pairs held at once by category_vector_inconsistency's temporaries
_PAIR_CHUNK = 1 << 20


def _check_proba(P: np.ndarray, name: str = "P") -> np.ndarray:
    """``P`` as float64 (n, L) with L >= 1 and every entry in [0, 1] (NaN fails)."""
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n, L) with L >= 1, got {P.shape}")
    if not np.all((P >= 0.0) & (P <= 1.0)):
        raise ValueError(f"{name} must hold probabilities in [0, 1]")
    return P


# ---- binary relevance -------------------------------------------------------------------------------------------

def br_uncertainty(P: np.ndarray, reduce: str = "mean") -> np.ndarray:
    """Binary-relevance uncertainty, shape (n,).

    Per label ``u_il = 1 - |2 P_il - 1|``: 1 at ``p = 0.5``, 0 at ``p`` in
    {0, 1}, symmetric in ``p <-> 1 - p`` (it is twice the smaller of ``p`` and
    ``1 - p``, the binary least-confidence score rescaled to [0, 1]). Reduced
    over labels by their mean or their max.

    Parameters
    ----------
    P : ndarray, shape (n, L)
        Per-label probabilities.
    reduce : {"mean", "max"}
        How the L per-label uncertainties of an item are combined.

    Returns
    -------
    ndarray of float64, shape (n,), in [0, 1].
    """
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    P = _check_proba(P)
    u = 1.0 - np.abs(2.0 * P - 1.0)
    return u.mean(axis=1) if reduce == "mean" else u.max(axis=1)


# ---- MMC (Yang et al. 2009) --------------------------------------------------------------------------------------

def mmc_scores(P: np.ndarray, label_counts_pred: np.ndarray) -> np.ndarray:
    """Maximum loss reduction with maximal confidence (Yang et al. 2009), shape (n,).

    ``score_i = sum_l (1 - y_hat_il f_il) / 2`` with ``f_il = 2 P_il - 1`` (the
    decision value mapped to [-1, 1]) and ``y_hat_i`` in {-1, +1}^L the
    predicted label vector: the ``label_counts_pred[i]`` labels of largest
    ``P_il`` are +1, the rest -1. A +1 label adds ``1 - P_il``, a -1 label
    adds ``P_il``, so each score lies in [0, L]. Labels tied in ``P`` may be
    split either way without changing the score (swapping a +1 and a -1 of
    equal ``P`` swaps equal terms); the smaller label index takes the +1.

    The paper's ``f`` are the outputs of one SVM per label and its
    approximation of the expected loss reduction is this sum; here ``f`` comes
    from any probability model. The paper predicts the number of labels with a
    logistic regression (:func:`mmc_label_counts`); this function takes those
    counts as input.

    Parameters
    ----------
    P : ndarray, shape (n, L)
        Per-label probabilities of the candidates.
    label_counts_pred : ndarray of int, shape (n,)
        Predicted number of labels of each candidate, each in 0..L.

    Returns
    -------
    ndarray of float64, shape (n,).
    """
    P = _check_proba(P)
    n, L = P.shape
    counts = np.asarray(label_counts_pred)
    if counts.shape != (n,):
        raise ValueError(f"label_counts_pred must have shape ({n},), got {counts.shape}")
    if counts.dtype == np.bool_ or not (np.issubdtype(counts.dtype, np.integer)
                                        or np.all(counts == np.round(counts))):
        raise ValueError("label_counts_pred must hold whole numbers")
    counts = counts.astype(np.int64)
    if np.any((counts < 0) | (counts > L)):
        raise ValueError(f"label_counts_pred must lie in 0..{L}")
    order = np.argsort(-P, axis=1, kind="stable")  # labels by decreasing P, ties by index
    position = np.empty((n, L), dtype=np.int64)
    np.put_along_axis(position, order, np.arange(L)[None, :], axis=1)
    y_hat = np.where(position < counts[:, None], 1.0, -1.0)
    f = 2.0 * P - 1.0
    return ((1.0 - y_hat * f) / 2.0).sum(axis=1)


def _mmc_features(P: np.ndarray) -> np.ndarray:
    """Each row's probabilities sorted descending and divided by their sum (a zero row becomes 1/L)."""
    s = -np.sort(-P, axis=1)
    total = s.sum(axis=1, keepdims=True)
    uniform = np.full_like(s, 1.0 / s.shape[1])
    return np.divide(s, total, out=uniform, where=total > 0)


def mmc_label_counts(P_labeled: np.ndarray, Y_labeled: np.ndarray, P_unlabeled: np.ndarray,
                     seed: int) -> np.ndarray:
    """The number of labels of each candidate, predicted as MMC does (Yang et al. 2009), shape (n,).

    Features of an item: its L probabilities sorted in decreasing order and
    normalised to sum 1. Target: the number of true labels. A multinomial
    logistic regression (scikit-learn's ``LogisticRegression``, lbfgs, default
    regularisation) is fitted on the labeled items and the most probable count
    is predicted for each candidate. When the labeled items all have the same
    count, that count is returned for everyone (there is nothing to fit).
    Counts are clipped to [1, L], so every candidate has at least one +1 label.

    Differences from the paper: it gets the probabilities from one SVM per
    label (binary relevance) and trains the logistic regression on the
    labeled set's outputs of those SVMs; here ``P_labeled`` and
    ``P_unlabeled`` come from any per-label probability model (``P_labeled``
    should be the model's predictions on its own training items, as in the
    paper). The paper does not say how a row of zeros is normalised; here it
    becomes the uniform vector 1/L (the limit of equal probabilities).

    Parameters
    ----------
    P_labeled : ndarray, shape (m, L)
        Per-label probabilities of the labeled items, m >= 1.
    Y_labeled : ndarray of 0/1, shape (m, L)
        Their true labels.
    P_unlabeled : ndarray, shape (n, L)
        Per-label probabilities of the candidates.
    seed : int
        ``random_state`` of the logistic regression (lbfgs is deterministic; it
        keeps the call reproducible should the solver change).

    Returns
    -------
    ndarray of int64, shape (n,), each in 1..L.
    """
    P_labeled = _check_proba(P_labeled, "P_labeled")
    P_unlabeled = _check_proba(P_unlabeled, "P_unlabeled")
    Y_labeled = check_indicator(Y_labeled, "Y_labeled")
    m, L = P_labeled.shape
    if Y_labeled.shape != P_labeled.shape:
        raise ValueError(f"Y_labeled must have the shape of P_labeled {P_labeled.shape}, got {Y_labeled.shape}")
    if P_unlabeled.shape[1] != L:
        raise ValueError(f"P_unlabeled must have {L} columns, got {P_unlabeled.shape[1]}")
    if m == 0:
        raise ValueError("mmc_label_counts needs at least one labeled item")
    n = P_unlabeled.shape[0]
    target = Y_labeled.sum(axis=1)
    distinct = np.unique(target)
    if distinct.size == 1 or n == 0:
        counts = np.full(n, distinct[0], dtype=np.int64)
    else:
        from sklearn.linear_model import LogisticRegression  # only this function needs scikit-learn

        model = LogisticRegression(max_iter=1000, random_state=seed)
        model.fit(_mmc_features(P_labeled), target)
        counts = np.asarray(model.predict(_mmc_features(P_unlabeled)), dtype=np.int64)
    return np.clip(counts, 1, L)


# ---- CVIRS (Reyes et al. 2018) -----------------------------------------------------------------------------------

def _average_positions(v: np.ndarray) -> np.ndarray:
    """1-based positions of ``v`` sorted ascending, tied values sharing the mean of their positions."""
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # 0-based position of each distinct value's first copy
    return (first + (counts + 1) / 2.0)[inverse]


def cvirs_rank_scores(P: np.ndarray) -> np.ndarray:
    """CVIRS's uncertainty by rank aggregation (Reyes et al. 2018), shape (n,), in [0, 1].

    For each label ``l`` the candidates are ranked by the margin
    ``m_il = |P(l | x_i) - P(not l | x_i)| = |2 P_il - 1|`` in increasing
    order, so ``tau_l(i) = 1`` is the most uncertain candidate for ``l``. The
    rankings are aggregated with the paper's Borda count,
    ``s_i = sum_l (n - tau_l(i)) / (L (n - 1))``: 1 for a candidate that is
    the most uncertain for every label, 0 for one that is the least uncertain
    for every label.

    The ranking is over the candidates given (the unlabeled pool), so a score
    is relative to the other rows of ``P``.

    Reading of the paper: it does not say how tied margins are ranked; here
    tied candidates share the mean of their positions (so permuting the
    candidates permutes the scores, and equal margins give equal scores).
    With a single candidate the formula is 0/0; its score is 1 (it heads
    every ranking).

    Parameters
    ----------
    P : ndarray, shape (n, L)
        Per-label probabilities of the candidates.

    Returns
    -------
    ndarray of float64, shape (n,).
    """
    P = _check_proba(P)
    n, L = P.shape
    if n <= 1:
        return np.ones(n)
    margin = np.abs(2.0 * P - 1.0)
    total = np.zeros(n)
    for label in range(L):
        total += n - _average_positions(margin[:, label])
    return total / (L * (n - 1))


def _entropy_terms(count: np.ndarray, total: float | np.ndarray) -> np.ndarray:
    """``-(c / t) log2(c / t)`` elementwise, with ``0 log 0 = 0``."""
    x = np.divide(count, total, out=np.zeros_like(count, dtype=np.float64), where=np.asarray(total) > 0)
    logx = np.log2(x, out=np.zeros_like(x), where=x > 0)
    return -x * logx


def _vector_distances(Yhat: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """CVIRS distance between every row of ``Yhat`` (n, L) and every row of ``Y`` (m, L), shape (n, m).

    With the contingency counts of two 0/1 vectors over the L labels (``a``:
    both 1, ``b``: first 1 second 0, ``c``: first 0 second 1, ``d``: both 0),
    the normalised Hamming distance is ``d_H = (b + c) / L`` and the entropy
    distance is ``d_E = (2 H(y1, y2) - H(y1) - H(y2)) / H(y1, y2)``, where
    ``H(y1)`` is the entropy of the fraction of 1s of ``y1``, ``(a + b) / L``,
    and ``H(y1, y2)`` that of the four cells ``(a, b, c, d) / L``. The
    distance is 1 when ``d_H = 1`` (complementary vectors, for which ``d_E`` is
    0) and ``d_E`` otherwise; two equal constant vectors (``H(y1, y2) = 0``)
    are at distance 0.
    """
    Yhat = Yhat.astype(np.float64)
    Y = Y.astype(np.float64)
    L = Yhat.shape[1]
    a = Yhat @ Y.T
    b = Yhat.sum(axis=1)[:, None] - a
    c = Y.sum(axis=1)[None, :] - a
    d = L - a - b - c
    h_first = _entropy_terms(a + b, L) + _entropy_terms(c + d, L)
    h_second = _entropy_terms(a + c, L) + _entropy_terms(b + d, L)
    h_joint = _entropy_terms(a, L) + _entropy_terms(b, L) + _entropy_terms(c, L) + _entropy_terms(d, L)
    d_e = np.divide(2.0 * h_joint - h_first - h_second, h_joint, out=np.zeros_like(h_joint),
                    where=h_joint > 0)
    d_e = np.clip(d_e, 0.0, 1.0)  # in [0, 1] mathematically; rounding can step outside by 1e-16
    return np.where(b + c == L, 1.0, d_e)


def category_vector_inconsistency(Yhat: np.ndarray, Y_labeled: np.ndarray) -> np.ndarray:
    """CVIRS's category vector inconsistency (Reyes et al. 2018), shape (n,), in [0, 1].

    The mean, over the labeled items, of the distance between the candidate's
    predicted label vector and the labeled item's label vector: 1 when the two
    vectors are complementary (normalised Hamming distance 1), else the
    normalised entropy distance ``(2 H(y1, y2) - H(y1) - H(y2)) / H(y1, y2)``
    over the L positions (see the paper's section on the category vector
    inconsistency). 0 for a candidate whose vector equals every labeled
    vector. With no labeled items it is 1 for everyone.

    Reading of the paper: the entropies are of the empirical distributions
    over the L label positions (the fraction of 1s of a vector; the 2x2
    contingency table of two vectors); the base of the logarithm cancels.

    Parameters
    ----------
    Yhat : ndarray of 0/1, shape (n, L)
        Predicted label vectors of the candidates.
    Y_labeled : ndarray of 0/1, shape (m, L)
        Label vectors of the labeled items (m may be 0).

    Returns
    -------
    ndarray of float64, shape (n,).
    """
    Yhat = check_indicator(Yhat, "Yhat")
    Y_labeled = check_indicator(Y_labeled, "Y_labeled")
    n, L = Yhat.shape
    if L < 1:
        raise ValueError("Yhat must have at least one label column")
    if Y_labeled.shape[1] != L:
        raise ValueError(f"Y_labeled must have {L} columns, got {Y_labeled.shape[1]}")
    m = Y_labeled.shape[0]
    if m == 0:
        return np.ones(n)
    out = np.empty(n)
    step = max(1, _PAIR_CHUNK // m)
    for start in range(0, n, step):
        out[start:start + step] = _vector_distances(Yhat[start:start + step], Y_labeled).mean(axis=1)
    return out


def cvirs_scores(P: np.ndarray, Y_labeled: np.ndarray) -> np.ndarray:
    """CVIRS (Reyes et al. 2018), shape (n,), in [0, 1].

    ``score_i = s_i * v_i``: the rank-aggregated uncertainty
    :func:`cvirs_rank_scores` of the candidate among the rows of ``P``, times
    the :func:`category_vector_inconsistency` of its predicted label vector
    ``P_i >= 0.5`` with the labeled set. With no labeled items ``v_i = 1`` and
    the score is the uncertainty alone.

    Parameters
    ----------
    P : ndarray, shape (n, L)
        Per-label probabilities of the candidates (the unlabeled pool).
    Y_labeled : ndarray of 0/1, shape (m, L)
        Label vectors of the labeled items (m may be 0).

    Returns
    -------
    ndarray of float64, shape (n,).
    """
    P = _check_proba(P)
    Yhat = (P >= 0.5).astype(np.int64)
    return cvirs_rank_scores(P) * category_vector_inconsistency(Yhat, Y_labeled)
