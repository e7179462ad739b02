"""The Learner interface.

A learner is fitted afresh each round on the labeled ids and answers in the
column frame of ``pool.classes``: column ``j`` is the class named
``pool.classes[j]`` whatever subset of classes the labels cover, and a class
not seen yet gets probability 0.

Id frame: every ``ids`` argument holds global pool ids.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from al_loop.pool import Pool


class Learner(ABC):
    """Base class of the learner adapters."""

    @property
    def capabilities(self) -> frozenset[str]:
        """Subset of ``{"proba", "embed", "grad", "posterior", "multilabel"}`` this learner provides.

        ``multilabel``: the learner takes multi-label pools only: ``fit`` gets the
        (n, L) 0/1 label matrix and ``predict_proba`` gives each label's
        probability, (len(ids), L), rows not summing to 1 (:mod:`al_loop.multilabel`).

        ``posterior``: :meth:`posterior_proba` gives samples of the predictive
        distribution under a posterior over the weights (MC dropout, an
        ensemble), which the Bayesian strategies (``bald``, ``batchbald``, ...) need.
        """
        return frozenset({"proba", "embed"})

    def check_pool(self, pool: Pool) -> None:
        """Raise :class:`~al_loop.errors.ConfigError` if this learner cannot take ``pool``'s inputs.

        Called by :func:`al_loop.api.validate` before anything is written (a
        CNN on 13 tabular features fails here, not in round 1). The base
        accepts every pool.
        """
        del pool

    @abstractmethod
    def fit(self, pool: Pool, ids: np.ndarray, labels: np.ndarray, seed: int) -> None:
        """Fit a fresh model.

        Parameters
        ----------
        pool : Pool
        ids : ndarray of int64, shape (n,)
            Global ids of the labeled items.
        labels : ndarray of int64, shape (n,)
            Class index into ``pool.classes`` of each id; for a learner with
            capability ``multilabel`` a 0/1 matrix, shape (n, len(pool.classes)).
        seed : int
            Seed for every random choice of the fit (no global RNG is used).
        """

    @abstractmethod
    def predict_proba(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        """Probabilities, shape (len(ids), len(pool.classes)); rows sum to 1."""

    def embed(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        """Embeddings, shape (len(ids), d)."""
        raise NotImplementedError(f"{type(self).__name__} has no embeddings")

    def grad_embed(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        """Last-layer gradient embeddings with the predicted label, shape (len(ids), D)."""
        raise NotImplementedError(f"{type(self).__name__} has no gradient embeddings")

    def posterior_proba(self, pool: Pool, ids: np.ndarray, samples: int, seed: int) -> np.ndarray:
        """Posterior predictive samples, shape (len(ids), K, len(pool.classes)), float32.

        ``out[i, k]`` is ``p(y | x_i, omega_k)`` for the ``k``-th weight sample;
        the same ``k`` is the same ``omega_k`` for every item and every call with
        the same ``samples`` and ``seed`` (so the result does not depend on how
        ``ids`` are split into calls). ``K == samples`` for MC dropout; an
        ensemble gives one sample per member whatever ``samples`` says.
        """
        raise NotImplementedError(f"{type(self).__name__} has no posterior samples")


def expand_columns(proba: np.ndarray, seen: np.ndarray, n_classes: int) -> np.ndarray:
    """Place columns of ``proba`` (classes ``seen``) into a (n, n_classes) matrix of zeros."""
    out = np.zeros((proba.shape[0], n_classes), dtype=np.float64)
    out[:, np.asarray(seen, dtype=np.int64)] = proba
    return out
