"""Learners and instances shared by the distributed tests (importable on the workers)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from al_loop.learners.base import Learner
from al_loop.pool import Pool


class TableLearner(Learner):
    """Probabilities looked up from feature column 0 (an integer level): equal levels give bit-equal rows.

    Lets a test construct exact ties in every uncertainty measure, across chunks.
    """

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.asarray(table, dtype=np.float64)

    def fit(self, pool: Pool, ids: np.ndarray, labels: np.ndarray, seed: int) -> None:
        pass

    def predict_proba(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        level = np.asarray(pool.features(ids))[:, 0].astype(np.int64)
        return self.table[level]

    def embed(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        return np.asarray(pool.features(ids), dtype=np.float64)


class LinearSoftmax(TableLearner):
    """``softmax(X W)``: a fixed linear model (benchmark-like), no training."""

    def __init__(self, W: np.ndarray) -> None:
        self.W = np.asarray(W, dtype=np.float64)

    def predict_proba(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        z = np.asarray(pool.features(ids), dtype=np.float64) @ self.W
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


class DieOnceLearner(Learner):
    """Wraps a learner; the first call that sees ``trigger_id`` kills its worker process.

    A marker file makes it happen once: the scheduler reschedules the task
    on a live worker and the computation must finish with the same result.
    """

    def __init__(self, inner: Learner, trigger_id: int, marker: str) -> None:
        self.inner = inner
        self.trigger_id = int(trigger_id)
        self.marker = marker

    def fit(self, pool: Pool, ids: np.ndarray, labels: np.ndarray, seed: int) -> None:
        self.inner.fit(pool, ids, labels, seed)

    def predict_proba(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        if self.trigger_id in set(np.asarray(ids).tolist()) and not Path(self.marker).exists():
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)  # the worker process dies mid-task, as on a lost node
        return self.inner.predict_proba(pool, ids)

    def embed(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        return self.inner.embed(pool, ids)


def blobs(n: int, d: int, centres: int, seed: int, spread: float = 4.0) -> np.ndarray:
    """A Gaussian mixture like an embedded benchmark: ``centres`` clusters of unequal size, shape (n, d)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(scale=spread, size=(centres, d))
    weights = rng.dirichlet(np.ones(centres))
    label = rng.choice(centres, size=n, p=weights)
    scale = rng.uniform(0.5, 1.5, size=centres)[label][:, None]
    return mu[label] + scale * rng.standard_normal((n, d))


def covering_radius(X: np.ndarray, centres: np.ndarray, block: int = 2048) -> float:
    """``max_i min_j |x_i - X[centres[j]]|`` over every row of ``X`` (blocked), float."""
    C = X[np.asarray(centres, dtype=np.int64)]
    worst = 0.0
    for s in range(0, len(X), block):
        B = X[s:s + block]
        d2 = (B ** 2).sum(1)[:, None] + (C ** 2).sum(1)[None, :] - 2 * B @ C.T
        worst = max(worst, float(np.sqrt(np.maximum(d2.min(axis=1), 0)).max()))
    return worst
