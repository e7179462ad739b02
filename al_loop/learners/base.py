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
        """Last-layer gradient embeddings with the predicted label, shape (len(ids), D).

        By default the outer product of :meth:`grad_factors` (``D = c * d``, class-major).
        """
        R, H = self.grad_factors(pool, ids)
        return outer_rows(R, H)

    def grad_factors(self, pool: Pool, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The two factors of a last-layer gradient embedding, without forming it.

        A linear last layer ``W h`` under the cross-entropy loss has the gradient
        ``(p - e_yhat) h^T`` (Ash et al. 2020), the outer product of a residual
        and the layer's input, so ``grad_embed(ids)[i] = outer(R[i], H[i]).ravel()``
        and ``<g_i, g_j> = <R_i, R_j> <H_i, H_j>``: a strategy can compute
        distances in the ``c * d`` gradient space from ``c + d`` numbers per row.

        Returns
        -------
        R : ndarray, shape (len(ids), c)
            Residuals (``c = len(pool.classes)``, or 1 for a binary model with one weight vector).
        H : ndarray, shape (len(ids), d)
            Inputs of the last layer, in the learner's dtype.
        """
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


def outer_rows(R: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Row-wise outer products flattened class-major: (n, c) and (n, d) -> (n, c * d)."""
    return (R[:, :, None] * H[:, None, :]).reshape(len(R), -1)


def has_grad_factors(learner: object) -> bool:
    """True when ``learner`` implements :meth:`Learner.grad_factors` (a learner that overrides only
    :meth:`Learner.grad_embed` gives its gradients whole)."""
    impl = getattr(type(learner), "grad_factors", None)
    return impl is not None and impl is not Learner.grad_factors


def expand_columns(proba: np.ndarray, seen: np.ndarray, n_classes: int) -> np.ndarray:
    """Place columns of ``proba`` (classes ``seen``) into a (n, n_classes) matrix of zeros."""
    out = np.zeros((proba.shape[0], n_classes), dtype=np.float64)
    out[:, np.asarray(seen, dtype=np.int64)] = proba
    return out
