"""Learner adapters and the named learners of the CLI.

torch and scikit-learn are imported only when a learner is used
(``SklearnLearner``, ``TorchLearner`` and friends are loaded lazily), so the CLI
and ``al-loop strategies`` start quickly.
"""

from __future__ import annotations

from typing import Any

from al_loop.learners.base import Learner
from al_loop.registry import LEARNERS

_TORCH_NAMES = {"FeatureHead", "TorchConfig", "TorchLearner", "mlp", "small_cnn"}


def __getattr__(name: str) -> Any:
    if name == "SklearnLearner":
        from al_loop.learners.sklearn_learner import SklearnLearner

        return SklearnLearner
    if name in _TORCH_NAMES:
        from al_loop.learners import torch_learner

        return getattr(torch_learner, name)
    raise AttributeError(f"module 'al_loop.learners' has no attribute {name!r}")


@LEARNERS.register("logreg")
def make_logreg(pool: object = None) -> Learner:
    """Standardised multinomial logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from al_loop.learners.sklearn_learner import SklearnLearner

    return SklearnLearner(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=1.0)))


@LEARNERS.register("mlp")
def make_mlp(pool: object = None) -> Learner:
    """Two-layer MLP (torch) on flattened inputs."""
    from al_loop.learners.torch_learner import TorchConfig, TorchLearner, mlp

    return TorchLearner(mlp, TorchConfig(epochs=40, lr=2e-3, batch_size=32), name="mlp")


@LEARNERS.register("cnn")
def make_cnn(pool: object = None) -> Learner:
    """Small CNN (torch) on square grey images."""
    from al_loop.learners.torch_learner import TorchConfig, TorchLearner, small_cnn

    return TorchLearner(small_cnn, TorchConfig(epochs=20, lr=2e-3, batch_size=32), image=True, name="cnn")


@LEARNERS.register("mlp_dropout")
def make_mlp_dropout(pool: object = None) -> Learner:
    """The MLP with dropout (0.25, 0.5), kept on at scoring: MC dropout posterior for bald/batchbald."""
    from al_loop.learners.mc_dropout import MCDropoutLearner, mlp_dropout
    from al_loop.learners.torch_learner import TorchConfig

    return MCDropoutLearner(mlp_dropout, TorchConfig(epochs=40, lr=2e-3, batch_size=32), name="mlp_dropout")


@LEARNERS.register("cnn_dropout")
def make_cnn_dropout(pool: object = None) -> Learner:
    """The small CNN with dropout (0.25, 0.5; Gal et al. 2017's placement): MC dropout posterior."""
    from al_loop.learners.mc_dropout import MCDropoutLearner, cnn_dropout
    from al_loop.learners.torch_learner import TorchConfig

    return MCDropoutLearner(cnn_dropout, TorchConfig(epochs=20, lr=2e-3, batch_size=32), image=True,
                            name="cnn_dropout")


@LEARNERS.register("mlp_ensemble")
def make_mlp_ensemble(pool: object = None) -> Learner:
    """Five MLPs with their own seeds (deep ensemble): posterior samples = members, 5x the training time."""
    from al_loop.learners.ensemble import EnsembleLearner

    return EnsembleLearner(make_mlp, members=5, name="mlp_ensemble")


@LEARNERS.register("cnn_ensemble")
def make_cnn_ensemble(pool: object = None) -> Learner:
    """Five small CNNs with their own seeds (deep ensemble)."""
    from al_loop.learners.ensemble import EnsembleLearner

    return EnsembleLearner(make_cnn, members=5, name="cnn_ensemble")


@LEARNERS.register("ovr_logreg")
def make_ovr_logreg(pool: object = None) -> Learner:
    """Multi-label: standardised logistic regression per label (binary relevance, one-vs-rest)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from al_loop.learners.binary_relevance import BinaryRelevanceLearner

    return BinaryRelevanceLearner(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=1.0)))


@LEARNERS.register("mlp_sigmoid")
def make_mlp_sigmoid(pool: object = None) -> Learner:
    """Multi-label: the MLP with a sigmoid head (binary cross-entropy per label)."""
    from al_loop.learners.torch_learner import TorchConfig, TorchLearner, mlp

    return TorchLearner(mlp, TorchConfig(epochs=40, lr=2e-3, batch_size=32), name="mlp_sigmoid", multilabel=True)


@LEARNERS.register("cnn_sigmoid")
def make_cnn_sigmoid(pool: object = None) -> Learner:
    """Multi-label: the small CNN with a sigmoid head (square grey images, e.g. fashion-canvas)."""
    from al_loop.learners.torch_learner import TorchConfig, TorchLearner, small_cnn

    return TorchLearner(small_cnn, TorchConfig(epochs=20, lr=2e-3, batch_size=32), image=True, name="cnn_sigmoid",
                        multilabel=True)


@LEARNERS.register("finetune")
def make_finetune(pool: object = None) -> Learner:
    """The image encoder's last block + a linear head, fine-tuned with flip/crop augmentation (image folders)."""
    from al_loop.learners.finetune import FinetuneLearner

    return FinetuneLearner()


__all__ = ["FeatureHead", "Learner", "SklearnLearner", "TorchConfig", "TorchLearner", "mlp", "small_cnn"]
