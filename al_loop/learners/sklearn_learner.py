"""Adapter for any scikit-learn classifier with ``predict_proba``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.base import ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from al_loop.errors import ConfigError
from al_loop.learners.base import Learner, expand_columns
from al_loop.pool import Pool


def _flat(X: np.ndarray) -> np.ndarray:
    return np.asarray(X, dtype=np.float64).reshape(len(X), -1)


class SklearnLearner(Learner):
    """Wrap a scikit-learn classifier; a fresh ``clone`` is fitted each round.

    Parameters
    ----------
    estimator : classifier
        Anything with ``fit`` and ``predict_proba`` (a ``Pipeline`` too).
    transform : callable, optional
        ``X (n, ...) -> (n, d)`` used by :meth:`embed`; default: the flattened
        input features.
    """

    def __init__(self, estimator: ClassifierMixin, transform: Callable[[np.ndarray], np.ndarray] | None = None):
        if not hasattr(estimator, "predict_proba"):
            raise ConfigError(
                f"{type(estimator).__name__} has no predict_proba; use a probabilistic classifier "
                "(e.g. LogisticRegression, or SVC(probability=True))"
            )
        self.estimator = estimator
        self.transform = transform
        self.model_ = None
        self.seen_: np.ndarray | None = None

    @property
    def capabilities(self) -> frozenset[str]:
        caps = {"proba", "embed"}
        # the closed form below holds for softmax (multinomial) or binary logistic models only,
        # not for one-vs-rest fits (liblinear, multi_class="ovr")
        final = self._final(self.estimator)
        if isinstance(final, LogisticRegression) and final.get_params().get("solver") != "liblinear" \
                and final.get_params().get("multi_class", "auto") != "ovr":
            caps.add("grad")
        return frozenset(caps)

    @staticmethod
    def _final(est: object) -> object:
        return est.steps[-1][1] if isinstance(est, Pipeline) else est

    def fit(self, pool: Pool, ids: np.ndarray, labels: np.ndarray, seed: int) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        seen = np.unique(labels)
        self.seen_ = seen
        if seen.size == 1:  # a single class: a constant model (most estimators refuse one class)
            self.model_ = None
            return
        model = clone(self.estimator)
        params = model.get_params()
        for key in params:
            if key == "random_state" or key.endswith("__random_state"):
                model.set_params(**{key: seed})
        model.fit(_flat(pool.features(ids)), labels)
        self.model_ = model

    def _check_fitted(self) -> None:
        if self.seen_ is None:
            raise RuntimeError("the learner is not fitted yet; call fit first")

    def predict_proba(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        self._check_fitted()
        assert self.seen_ is not None
        if self.model_ is None:
            out = np.zeros((len(ids), pool.n_classes))
            out[:, int(self.seen_[0])] = 1.0
            return out
        proba = self.model_.predict_proba(_flat(pool.features(ids)))
        return expand_columns(proba, self.model_.classes_, pool.n_classes)

    def embed(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        """The input of the final linear model, shape (len(ids), d): float32 features stay float32
        (half the memory of a float64 copy at 10^6 items), other dtypes become float64."""
        X = pool.features(ids)
        out = np.asarray(self.transform(X) if self.transform else np.asarray(X).reshape(len(X), -1))
        return out if out.dtype in (np.float32, np.float64) else out.astype(np.float64)

    def grad_embed(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        """Gradient of the cross-entropy loss at the predicted label w.r.t. the weights.

        For multinomial logistic regression with weights ``W`` (C x d) and
        softmax output ``p``, ``d(-log p_yhat)/dW = (p - e_yhat) x^T``; the
        embedding is that C x d matrix flattened (class-major), with ``x`` the
        input of the final linear model (after a Pipeline's preprocessing).
        Binary logistic regression has one weight vector: ``(p_1 - [yhat=1]) x``.
        Columns of classes not seen yet are zero.
        """
        if "grad" not in self.capabilities:
            raise NotImplementedError(f"{type(self.estimator).__name__} has no closed-form gradient")
        self._check_fitted()
        X = _flat(pool.features(ids))
        if self.model_ is None:  # constant model: zero loss gradient
            return np.zeros((len(ids), pool.n_classes * X.shape[1]))
        if isinstance(self.model_, Pipeline):
            X = self.model_[:-1].transform(X)
        proba = self.model_.predict_proba(_flat(pool.features(ids))) if isinstance(self.model_, Pipeline) \
            else self.model_.predict_proba(X)
        n, k = proba.shape
        yhat = proba.argmax(axis=1)
        if k == 2 and np.asarray(self._final(self.model_).coef_).shape[0] == 1:
            coef = (proba[:, 1] - (yhat == 1))[:, None]
            return coef * X
        resid = proba.copy()
        resid[np.arange(n), yhat] -= 1.0
        full = expand_columns(resid, self.model_.classes_, pool.n_classes)
        return (full[:, :, None] * X[:, None, :]).reshape(n, -1)
