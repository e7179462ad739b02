"""Binary relevance for multi-label pools: one scikit-learn classifier per label.

Each label ``j`` gets its own fresh ``clone`` of the estimator, fitted on the
labeled items' column ``Y[:, j]`` (Tsoumakas et al. 2010's binary relevance;
what scikit-learn's ``OneVsRestClassifier`` does with an indicator matrix). A
label that is constant among the labeled items (all 0 or all 1 so far) cannot
be fitted; it gets the Laplace-smoothed frequency ``(k + 1) / (n + 2)`` as a
constant probability instead of a hard 0 or 1, so its uncertainty is not
declared zero on the strength of a few labels (deliberate: scikit-learn
predicts the constant itself).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, clone

from al_loop.learners.base import Learner
from al_loop.learners.sklearn_learner import _flat
from al_loop.pool import Pool


class BinaryRelevanceLearner(Learner):
    """One probabilistic classifier per label (capability ``multilabel``).

    Parameters
    ----------
    estimator : classifier
        A binary classifier with ``predict_proba`` (a ``Pipeline`` too), cloned per label.

    Notes
    -----
    ``fit`` takes ``labels`` as the (n, L) 0/1 matrix of the labeled ids;
    ``predict_proba`` returns (len(ids), L): column ``j`` is the probability
    that ``pool.classes[j]`` applies (rows need not sum to 1).
    """

    def __init__(self, estimator: ClassifierMixin) -> None:
        self.estimator = estimator
        self.models_: list[object | float] | None = None

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset({"proba", "embed", "multilabel"})

    def fit(self, pool: Pool, ids: np.ndarray, labels: np.ndarray, seed: int) -> None:
        Y = np.asarray(labels).reshape(len(ids), pool.n_classes)
        X = _flat(pool.features(ids))
        models: list[object | float] = []
        for j in range(pool.n_classes):
            y = Y[:, j].astype(np.int64)
            if y.min() == y.max():
                models.append((float(y.sum()) + 1.0) / (len(y) + 2.0))
                continue
            model = clone(self.estimator)
            for key in model.get_params():
                if key == "random_state" or key.endswith("__random_state"):
                    model.set_params(**{key: seed + j})
            model.fit(X, y)
            models.append(model)
        self.models_ = models

    def predict_proba(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        if self.models_ is None:
            raise RuntimeError("the learner is not fitted yet; call fit first")
        X = _flat(pool.features(ids))
        out = np.empty((len(X), len(self.models_)), dtype=np.float64)
        for j, model in enumerate(self.models_):
            if isinstance(model, float):
                out[:, j] = model
            else:
                proba = model.predict_proba(X)  # type: ignore[attr-defined]
                out[:, j] = proba[:, list(model.classes_).index(1)]  # type: ignore[attr-defined]
        return out

    def embed(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        return _flat(pool.features(ids))
