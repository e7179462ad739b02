"""Pure acquisition functions on posterior samples (no model, no ids).

Every function takes ``P``, posterior predictive samples of shape (n, K, C):
``P[i, k, c]`` is ``p(y_i = c | x_i, omega_k)`` for the ``k``-th parameter
sample ``omega_k`` (an MC dropout pass with masks shared across items, or an
ensemble member). The same ``k`` must mean the same ``omega_k`` for every
item: BatchBALD's joint entropy mixes items through it (Kirsch et al. 2019,
"consistent MC dropout"). Scores are float64, higher = more informative.

References
----------
Houlsby, Huszar, Ghahramani, Lengyel (2011), "Bayesian active learning for
classification and preference learning", arXiv:1112.5745 (BALD).
Gal, Islam, Ghahramani (2017), "Deep Bayesian active learning with image
data", ICML (BALD, variation ratios, mean STD with MC dropout).
Kirsch, van Amersfoort, Gal (2019), "BatchBALD: efficient and diverse batch
acquisition for deep Bayesian active learning", NeurIPS.
"""

from __future__ import annotations

import numpy as np

from strategies.uncertainty import entropy_scores


def _entropy(p: np.ndarray) -> np.ndarray:
    """:func:`~strategies.uncertainty.entropy_scores` over the last axis of any shape, shape ``p.shape[:-1]``."""
    p = np.asarray(p, dtype=np.float64)
    return entropy_scores(p.reshape(-1, p.shape[-1])).reshape(p.shape[:-1])


def expected_entropy(P: np.ndarray) -> np.ndarray:
    """``E_k H(y | x, omega_k)``, shape (n,): the aleatoric part."""
    return _entropy(np.asarray(P, dtype=np.float64)).mean(axis=1)


def predictive_entropy(P: np.ndarray) -> np.ndarray:
    """``H(E_k p(y | x, omega_k))``, shape (n,): the total uncertainty."""
    return _entropy(np.asarray(P, dtype=np.float64).mean(axis=1))


def bald_scores(P: np.ndarray) -> np.ndarray:
    """Mutual information ``I(y; omega | x) = H(E_k p_k) - E_k H(p_k)``, shape (n,).

    Houlsby et al. 2011, eq. 2, with the posterior replaced by the K samples
    (Gal et al. 2017, eq. 8). Mathematically >= 0; rounding can leave
    ``-1e-16``, which is kept (it ranks last either way).
    """
    P = np.asarray(P, dtype=np.float64)
    return _entropy(P.mean(axis=1)) - _entropy(P).mean(axis=1)


def variation_ratio_scores(P: np.ndarray) -> np.ndarray:
    """``1 - f_m / K``, shape (n,), where ``f_m`` counts the samples voting the modal class.

    Freeman (1965); Gal et al. 2017, eq. 7. A sample's vote is its argmax (the
    smallest class index among tied maxima).
    """
    P = np.asarray(P)
    n, K, C = P.shape
    votes = P.argmax(axis=2)  # (n, K)
    counts = np.zeros((n, C), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(n), K), votes.ravel()), 1)
    return 1.0 - counts.max(axis=1) / float(K)


def mean_std_scores(P: np.ndarray) -> np.ndarray:
    """Mean over classes of the standard deviation over samples, shape (n,).

    ``(1/C) sum_c sqrt(E_k[p_kc^2] - (E_k p_kc)^2)`` (Kampffmeyer et al. 2016;
    Gal et al. 2017, section 3); the population standard deviation (divide by K).
    """
    P = np.asarray(P, dtype=np.float64)
    var = np.maximum((P * P).mean(axis=1) - P.mean(axis=1) ** 2, 0.0)
    return np.sqrt(var).mean(axis=1)


POSTERIOR_SCORES = {
    "bald": bald_scores,
    "variation_ratio": variation_ratio_scores,
    "mean_std": mean_std_scores,
}


def batchbald_greedy(P: np.ndarray, batch: int, configs: int, rng: np.random.Generator,
                     order_key: np.ndarray | None = None, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Greedy BatchBALD (Kirsch et al. 2019, algorithm 1).

    Each step adds the candidate ``x`` maximising
    ``I(y_1..y_{n-1}, y_x; omega) = H(y_1..y_{n-1}, y_x) - sum_i E_k H(y_i | omega_k)``.
    The joint entropy is exact while the batch so far has at most
    ``configs`` label configurations (``C ** (n - 1) <= configs``): all of
    them are enumerated. Past that it is the paper's estimate (section 3.3,
    eq. 12) from ``configs`` configurations ``y_hat_{1:n-1}`` drawn from
    ``p(y_{1:n-1}) = (1/K) sum_k prod_i p(y_i | omega_k)`` (draw ``k``
    uniformly, then each ``y_i`` from ``p(y_i | omega_k)``), drawn afresh at
    each step from ``rng``:
    ``H ~ -(1/M) sum_m sum_c [(P_hat P_x)_mc / (P_hat 1)_m] log((1/K) (P_hat P_x)_mc)``.
    Products over the batch are kept with a per-configuration log scale, so
    long batches do not underflow.

    Parameters
    ----------
    P : ndarray, shape (n, K, C)
        Posterior samples of the candidates (rows = candidates).
    batch : int
        Items to pick (``<= n``).
    configs : int
        ``M``: the most configurations enumerated exactly, and the number drawn
        once the batch has more.
    rng : numpy.random.Generator
        Used only for the sampled estimate.
    order_key : ndarray of int64, shape (n,), optional
        Tie-break key (the global ids): among equal gains the smaller key wins.
    chunk : int
        The most candidates scored per matrix product (fewer when ``chunk * M * C``
        would pass 2**21 floats).

    Returns
    -------
    picked : ndarray of int64, shape (batch,)
        Row indices into ``P``, in the order picked.
    gains : ndarray of float64, shape (batch,)
        The joint mutual information after each step minus before it (step
        one's gain is the BALD score of the first pick).
    """
    P = np.asarray(P, dtype=np.float64)
    n, K, C = P.shape
    if not 0 < batch <= n:
        raise ValueError(f"batch must be in 1..{n}, got {batch}")
    if configs < 1:
        raise ValueError("configs must be >= 1")
    key = np.arange(n) if order_key is None else np.asarray(order_key)
    cond = expected_entropy(P)  # E_k H(y_i | omega_k), (n,)
    available = np.ones(n, dtype=bool)
    picked: list[int] = []
    gains: list[float] = []
    cond_sum = 0.0
    prev_mi = 0.0
    # the batch so far as K x S weights w[k, s] = prod_i p(y_i = s_i | omega_k), column-scaled:
    # true weight = w[k, s] * exp(logscale[s]); exact=True: S enumerates every configuration
    weights = np.ones((K, 1))
    logscale = np.zeros(1)
    exact = True
    for _ in range(batch):
        joint = np.full(n, -np.inf)
        cand = np.flatnonzero(available)
        step = max(1, min(chunk, (1 << 21) // (weights.shape[1] * C)))  # q holds <= 2M floats per product
        for start in range(0, cand.size, step):
            rows = cand[start:start + step]
            joint[rows] = _joint_entropy(weights, logscale, P[rows], exact)
        mi = joint - cond - cond_sum  # I(batch + x) for each candidate x; -inf for those picked
        best_val = mi.max()
        tied = np.flatnonzero(mi == best_val)
        best = int(tied[np.argmin(key[tied])])
        picked.append(best)
        gains.append(float(best_val - prev_mi))
        prev_mi = float(best_val)
        cond_sum += float(cond[best])
        available[best] = False
        if len(picked) == batch:
            break
        S = weights.shape[1]
        if exact and S * C <= configs:
            # enumerate: configuration (s, c) for every old s and class c of the new item
            weights = (weights[:, :, None] * P[best][:, None, :]).reshape(K, S * C)
            logscale = np.repeat(logscale, C)
        else:
            exact = False
            weights, logscale = _sample_configs(P[np.asarray(picked)], configs, rng)
        weights, logscale = _rescale(weights, logscale)
    return np.asarray(picked, dtype=np.int64), np.asarray(gains)


def _rescale(weights: np.ndarray, logscale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    top = weights.max(axis=0)
    top = np.where(top > 0, top, 1.0)
    return weights / top, logscale + np.log(top)


def _sample_configs(Pb: np.ndarray, M: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``M`` configurations of the batch's labels drawn from the posterior mixture, as (K, M) weights."""
    b, K, C = Pb.shape
    ks = rng.integers(0, K, size=M)  # which omega_k each configuration is drawn under
    logw = np.zeros((K, M))
    for i in range(b):
        cdf = np.cumsum(Pb[i, ks, :], axis=1)  # (M, C)
        u = rng.random(M)[:, None] * cdf[:, -1:]
        y = np.minimum((u > cdf).sum(axis=1), C - 1)  # (M,)
        with np.errstate(divide="ignore"):
            logw += np.log(Pb[i][:, y])  # (K, M)
    top = logw.max(axis=0)
    return np.exp(logw - top), top


def _joint_entropy(weights: np.ndarray, logscale: np.ndarray, Pc: np.ndarray, exact: bool) -> np.ndarray:
    """Joint entropy of the batch's labels and each candidate's, shape (len(Pc),).

    ``weights`` (K, S) with ``logscale`` (S,); ``Pc`` (m, K, C).
    """
    K, S = weights.shape
    m, _, C = Pc.shape
    # q[s, j, c] = (1/K) sum_k w[k, s] p_j(c | omega_k) (the true value times exp(-logscale[s])),
    # as one BLAS product: (S, K) @ (K, m * C) -> (S, m, C)
    q = (weights.T @ Pc.transpose(1, 0, 2).reshape(K, m * C)).reshape(S, m, C)
    q /= K
    logq = np.log(np.maximum(q, np.finfo(np.float64).tiny))  # q = 0 contributes 0 below
    logq += logscale[:, None, None]
    if exact:
        # -sum over every configuration of q_true log q_true, with q_true = q * exp(logscale)
        return -np.einsum("smc,smc,s->m", q, logq, np.exp(logscale))
    # sampled: configurations drawn from p(y_batch); each weighs p(y_x | y_batch) = q / p(y_hat_batch)
    norm = weights.sum(axis=0) / K  # (S,), the scaled p(y_hat_batch)
    inv = 1.0 / np.where(norm > 0, norm, 1.0)
    return -np.einsum("smc,smc,s->m", q, logq, inv) / S
