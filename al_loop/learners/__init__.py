"""Learner adapters and the named learners of the CLI."""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from al_loop.learners.base import Learner
from al_loop.learners.sklearn_learner import SklearnLearner
from al_loop.learners.torch_learner import FeatureHead, TorchConfig, TorchLearner, mlp, small_cnn
from al_loop.registry import LEARNERS


@LEARNERS.register("logreg")
def make_logreg(pool: object = None) -> Learner:
    """Standardised multinomial logistic regression."""
    return SklearnLearner(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=1.0)))


@LEARNERS.register("mlp")
def make_mlp(pool: object = None) -> Learner:
    """Two-layer MLP (torch) on flattened inputs."""
    return TorchLearner(mlp, TorchConfig(epochs=40, lr=2e-3, batch_size=32))


@LEARNERS.register("cnn")
def make_cnn(pool: object = None) -> Learner:
    """Small CNN (torch) on square grey images."""
    return TorchLearner(small_cnn, TorchConfig(epochs=20, lr=2e-3, batch_size=32), image=True)


__all__ = ["FeatureHead", "Learner", "SklearnLearner", "TorchConfig", "TorchLearner", "mlp", "small_cnn"]
