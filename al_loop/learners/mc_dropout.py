"""MC dropout (Gal and Ghahramani 2016): the torch learners with a posterior.

The network is trained with dropout as usual. At scoring time dropout stays
on and each of the ``K`` passes draws its own masks; the masks of pass ``k``
are the same for every item (Kirsch et al. 2019's *consistent* MC dropout), so
sample ``k`` is one weight sample ``omega_k`` across the whole pool, which
BatchBALD's joint entropy needs, and the result does not depend on how the
pool is cut into batches. The ``K`` passes run as one batch: the layers before
the first dropout run once per item, the rest on ``K`` copies.

References
----------
Gal and Ghahramani (2016), "Dropout as a Bayesian approximation", ICML.
Gal, Islam, Ghahramani (2017), "Deep Bayesian active learning with image data", ICML.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from al_loop.errors import ConfigError
from al_loop.learners.torch_learner import FeatureHead, TorchLearner
from al_loop.pool import Pool


class ConsistentDropout(nn.Module):
    """Dropout whose masks, while sampling, are fixed per pass and shared by every item.

    Training: ``nn.functional.dropout``. Eval: identity. Between
    :meth:`begin_sampling` and :meth:`end_sampling` the input holds ``K``
    stacked copies of a batch, shape (K * B, ...), and copy ``k`` is multiplied
    by mask ``k`` (drawn once from the given seed, scaled by ``1 / (1 - p)``).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self._sampling: tuple[int, int] | None = None
        self._masks: torch.Tensor | None = None

    def begin_sampling(self, passes: int, seed: int) -> None:
        self._sampling = (int(passes), int(seed))
        self._masks = None

    def end_sampling(self) -> None:
        self._sampling = None
        self._masks = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._sampling is None:
            return nn.functional.dropout(x, self.p, self.training)
        passes, seed = self._sampling
        if self._masks is None:
            gen = torch.Generator().manual_seed(seed)
            keep = torch.rand((passes, *x.shape[1:]), generator=gen) >= self.p
            self._masks = (keep.to(x.dtype) / (1.0 - self.p)).to(x.device)
        stacked = x.reshape(passes, -1, *x.shape[1:])
        return (stacked * self._masks[:, None]).reshape(x.shape)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def mlp_dropout(in_shape: tuple[int, ...], n_classes: int, hidden: int = 128,
                p: tuple[float, float] = (0.25, 0.5)) -> FeatureHead:
    """The two-layer MLP of :func:`~al_loop.learners.torch_learner.mlp` with dropout after each hidden layer."""
    d = int(np.prod(in_shape))
    features = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), ConsistentDropout(p[0]),
                             nn.Linear(hidden, hidden), nn.ReLU(), ConsistentDropout(p[1]))
    return FeatureHead(features, nn.Linear(hidden, n_classes))


def cnn_dropout(in_shape: tuple[int, ...], n_classes: int, width: int = 16,
                p: tuple[float, float] = (0.25, 0.5)) -> FeatureHead:
    """:func:`~al_loop.learners.torch_learner.small_cnn` with dropout before and after its dense layer.

    The placement and rates of Gal et al. 2017's MNIST network (0.25 after the
    convolutions, 0.5 after the 128-unit dense layer).
    """
    from al_loop.learners.torch_learner import small_cnn

    base = small_cnn(in_shape, n_classes, width)
    layers = list(base.features.children())
    flat = next(i for i, m in enumerate(layers) if isinstance(m, nn.Flatten))
    features = nn.Sequential(*layers[:flat + 1], ConsistentDropout(p[0]), *layers[flat + 1:], ConsistentDropout(p[1]))
    return FeatureHead(features, base.head)


def _seeds(seed: int, n: int) -> list[int]:
    return [int(s) for s in np.random.SeedSequence([int(seed), 0xD50]).generate_state(n)]


class MCDropoutLearner(TorchLearner):
    """A :class:`TorchLearner` whose network has :class:`ConsistentDropout` layers; adds ``posterior``.

    ``predict_proba``, ``embed`` and ``grad_embed`` are the deterministic
    network (dropout off, the usual weight scaling), as in
    :class:`TorchLearner`; :meth:`posterior_proba` samples.
    """

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset({"proba", "embed", "grad", "posterior"})

    def fit(self, pool: Pool, ids: np.ndarray, labels: np.ndarray, seed: int) -> None:
        super().fit(pool, ids, labels, seed)
        assert self.model_ is not None
        if not any(isinstance(m, ConsistentDropout) for m in self.model_.modules()):
            raise ConfigError(f"learner {self.name or 'MCDropoutLearner'}: the network has no ConsistentDropout "
                              "layer, so MC dropout gives no posterior; add one (al_loop.learners.mc_dropout)")

    def posterior_proba(self, pool: Pool, ids: np.ndarray, samples: int, seed: int) -> np.ndarray:
        """``samples`` MC dropout passes, shape (len(ids), samples, C), float32; see :class:`ConsistentDropout`."""
        if self.model_ is None:
            raise RuntimeError("the learner is not fitted yet; call fit first")
        if samples < 1:
            raise ConfigError(f"MC dropout needs at least one pass, got {samples}")
        model = self.model_
        ids = np.asarray(ids, dtype=np.int64)
        device = next(model.parameters()).device
        drops = [m for m in model.modules() if isinstance(m, ConsistentDropout)]
        for layer, layer_seed in zip(drops, _seeds(seed, len(drops)), strict=True):
            layer.begin_sampling(samples, layer_seed)
        out = np.empty((len(ids), samples, pool.n_classes), dtype=np.float32)
        step = max(1, self.config.eval_batch_size // max(1, samples // 4))
        try:
            with torch.no_grad():
                mask = self._mask(pool.n_classes, device)
                for start in range(0, len(ids), step):
                    x = self._tensor(pool, ids[start:start + step], device)
                    logits = _sampled_logits(model, x, samples) + mask
                    p = torch.softmax(logits, dim=1).reshape(samples, len(x), -1).transpose(0, 1)
                    out[start:start + len(x)] = p.float().cpu().numpy()
        finally:
            for layer in drops:
                layer.end_sampling()
        return out


def _sampled_logits(model: FeatureHead, x: torch.Tensor, passes: int) -> torch.Tensor:
    """Logits of ``passes`` stacked copies of ``x``, shape (passes * B, C), copy-major.

    The layers of ``model.features`` before its first :class:`ConsistentDropout`
    see ``x`` once; the copies are made there.
    """
    def stack(h: torch.Tensor) -> torch.Tensor:
        return h.unsqueeze(0).expand(passes, *h.shape).reshape(passes * h.shape[0], *h.shape[1:])

    h = x
    copied = False
    layers = list(model.features.children()) if isinstance(model.features, nn.Sequential) else [model.features]
    for layer in layers:
        if not copied and (isinstance(layer, ConsistentDropout)
                           or any(isinstance(m, ConsistentDropout) for m in layer.modules())):
            h, copied = stack(h), True
        h = layer(h)
    if not copied:
        h = stack(h)
    return model.head(h)
