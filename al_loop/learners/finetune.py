"""The ``finetune`` learner: the image encoder's last block + a linear head, trained on the labeled images.

For pools made from an image folder by a torch image encoder
(:class:`~al_loop.encoders.torch_image.TorchImageEncoder`). The encoder's
network is split by ``finetune_parts()`` into ``frozen`` (stem and all blocks
but the last; eval mode, no gradients) and ``trainable`` (the last block, the
head convolution and the pooling); each :meth:`FinetuneLearner.fit` starts
from the pretrained ``trainable`` weights and a fresh linear head and trains
both with AdamW on the labeled images, augmented by a random resized crop
(area 0.6-1.0 of the image, aspect 3/4-4/3) and a random horizontal flip.

Speed on a CPU comes from two caches kept by the learner:

- the labeled images, decoded once and kept as uint8 tensors of side
  ``ceil(image_size * FinetuneConfig.store_margin)`` (the crops are taken
  from them, so a round decodes only the new labels);
- the frozen trunk's output of every image predicted (the un-augmented input,
  exactly what the encoder saw), keyed by the file's absolute path: it does not
  change between rounds, so a round's predictions over the pool run only the
  trainable block and the head.

BatchNorm statistics and drop-connect stay as in the pretrained network
(``trainable`` is kept in eval mode while its weights are trained): batches of
a few labeled images would corrupt the running statistics.

Randomness (head initialisation, shuffling, crops, flips) comes from a
``torch.Generator`` seeded by the fit's seed; the global torch RNG is not
used. On the CPU the same seed and pool give the same probabilities.
torch's global deterministic-algorithms switch is left alone (it is process
wide); the CPU kernels used here are deterministic without it, CUDA
convolutions may differ in the last bits between runs.

Id frame: every ``ids`` argument holds global pool ids of the pool passed
with it; files are found through ``pool.paths`` / ``pool.media_root``.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from al_loop.errors import ConfigError, DataError
from al_loop.learners.base import Learner
from al_loop.pool import Pool

if TYPE_CHECKING:
    from al_loop.encoders.torch_image import TorchImageEncoder

_FIX = "give an image folder (--images DIR) embedded by a torch image encoder (--encoder efficientnet-lite0), " \
       "or use --learner logreg"


@dataclass(frozen=True)
class FinetuneConfig:
    """Training settings of :class:`FinetuneLearner`.

    Attributes
    ----------
    epochs : int
        Passes over the labeled images per fit.
    lr : float
        AdamW learning rate of the last block and the head.
    batch_size : int
        Labeled images per optimiser step.
    weight_decay : float
        AdamW weight decay.
    crop_scale : tuple of float
        Range of the area share kept by the random resized crop.
    store_margin : float
        Labeled images are kept at ``ceil(image_size * store_margin)`` pixels a side.
    eval_batch_size : int
        Images per forward pass when predicting.
    """

    epochs: int = 6
    lr: float = 1e-3
    batch_size: int = 16
    weight_decay: float = 1e-4
    crop_scale: tuple[float, float] = (0.6, 1.0)
    store_margin: float = 1.15
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.eval_batch_size < 1:
            raise ConfigError("FinetuneConfig needs epochs >= 1, batch_size >= 1, eval_batch_size >= 1 and lr > 0")
        if not 0 < lo <= hi <= 1 or self.store_margin < 1:
            raise ConfigError("FinetuneConfig needs 0 < crop_scale[0] <= crop_scale[1] <= 1 and store_margin >= 1")


def image_encoder_of(pool: Pool) -> TorchImageEncoder:
    """The pool's encoder, built (lazily: no network yet) from ``pool.encoder`` and ``pool.encoder_options``.

    Raises a one-line :class:`ConfigError` when the pool has no image files or
    its encoder is not a torch image encoder with a fine-tuning split.
    """
    from al_loop.encoders import EncoderOptions, get_encoder
    from al_loop.encoders.torch_image import TorchImageEncoder

    if pool.paths is None or pool.media_root is None:
        raise ConfigError(f"learner finetune needs image files; this data ({pool.name}) has none; {_FIX}")
    if pool.encoder is None:
        raise ConfigError(f"learner finetune needs the image encoder that embedded the pool; {pool.name} has "
                          f"none; {_FIX}")
    options = getattr(pool, "encoder_options", None) or EncoderOptions()
    encoder = get_encoder(pool.encoder, options)
    if not isinstance(encoder, TorchImageEncoder) or type(encoder)._split is TorchImageEncoder._split:
        raise ConfigError(f"learner finetune trains the last block of a torch image network; encoder "
                          f"{pool.encoder!r} has none; {_FIX}")
    return encoder


def random_resized_crop(img: torch.Tensor, size: int, scale: tuple[float, float],
                        gen: torch.Generator) -> torch.Tensor:
    """A random crop of ``img`` covering a share in ``scale`` of its area, aspect 3/4-4/3, resized to ``size``.

    Parameters
    ----------
    img : torch.Tensor of uint8, shape (3, H, W)
    size : int
    scale : (float, float)
    gen : torch.Generator
        The only source of randomness.

    Returns
    -------
    torch.Tensor of float32, shape (3, size, size), values in [0, 1]
    """
    _, h, w = img.shape
    u = torch.rand(4, generator=gen).tolist()
    area = h * w * (scale[0] + (scale[1] - scale[0]) * u[0])
    ratio = math.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * u[1])
    cw = min(w, max(1, round(math.sqrt(area * ratio))))
    ch = min(h, max(1, round(math.sqrt(area / ratio))))
    top = int(u[2] * (h - ch + 1)) if h > ch else 0
    left = int(u[3] * (w - cw + 1)) if w > cw else 0
    crop = img[:, top:top + ch, left:left + cw].float().div_(255.0)
    return nn.functional.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False)[0]


class FinetuneLearner(Learner):
    """Fine-tune the pool's image encoder (last block) with a linear head, afresh each round.

    Parameters
    ----------
    config : FinetuneConfig, optional

    Attributes
    ----------
    frozen_ : nn.Module
        The frozen trunk (after the first fit); its outputs are cached per file.
    model_ : nn.Module
        ``trainable`` of the last fit (fine-tuned copy); ``head_`` its linear head.
    """

    def __init__(self, config: FinetuneConfig | None = None) -> None:
        self.config = config or FinetuneConfig()
        self.encoder_: TorchImageEncoder | None = None
        self.frozen_: nn.Module | None = None
        self.pretrained_: nn.Module | None = None
        self.model_: nn.Module | None = None
        self.head_: nn.Linear | None = None
        self.seen_: np.ndarray | None = None
        self.dim_: int = 0
        self._images: dict[str, torch.Tensor] = {}
        self._trunk: dict[str, torch.Tensor] = {}
        self._key: tuple[Any, ...] = ()

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset({"proba", "embed", "grad"})

    def check_pool(self, pool: Pool) -> None:
        """Image folder pools embedded by a torch image encoder only (one-line ConfigError otherwise)."""
        image_encoder_of(pool)

    # -- the network --------------------------------------------------------------------------------------
    def _setup(self, pool: Pool) -> TorchImageEncoder:
        key = (pool.encoder, getattr(pool, "encoder_options", None))
        if self.encoder_ is not None and key == self._key:
            return self.encoder_
        encoder = image_encoder_of(pool)
        with torch.random.fork_rng(devices=[]):  # building the network draws its (overwritten) initial weights
            frozen, trainable, dim = encoder.finetune_parts()
        frozen.eval()
        for p in frozen.parameters():
            p.requires_grad_(False)
        # each fit starts from this untouched copy; the encoder's own parameters are never trained
        self.pretrained_ = copy.deepcopy(trainable).eval()
        self.encoder_, self.frozen_, self.dim_, self._key = encoder, frozen, int(dim), key
        self._trunk.clear()
        self._images.clear()
        return encoder

    @property
    def _device(self) -> torch.device:
        assert self.encoder_ is not None
        return torch.device(self.encoder_.device)

    def _files(self, pool: Pool, ids: np.ndarray) -> list[str]:
        if pool.paths is None or pool.media_root is None:
            raise ConfigError(f"learner finetune predicts from image files; this pool ({pool.name}) has none; "
                              f"{_FIX}")
        return [os.path.join(pool.media_root, pool.paths[int(r)]) for r in pool.rows(ids)]

    @staticmethod
    def _open(path: str) -> Any:
        from al_loop.media import open_rgb

        try:
            return open_rgb(path)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read image {path} ({exc}); replace or remove the file") from None

    def _stored(self, path: str) -> torch.Tensor:
        """The labeled image ``path`` as uint8 (3, L, L), L slightly above the image size (decoded once)."""
        img = self._images.get(path)
        if img is None:
            from PIL import Image

            assert self.encoder_ is not None
            side = math.ceil(self.encoder_.image_size * self.config.store_margin)
            pil = self._open(path)
            w, h = pil.size
            scale = side / min(w, h)
            nw, nh = max(side, round(w * scale)), max(side, round(h * scale))
            pil = pil.resize((nw, nh), Image.Resampling.BILINEAR)
            left, top = (nw - side) // 2, (nh - side) // 2
            arr = np.asarray(pil.crop((left, top, left + side, top + side)), dtype=np.uint8)
            img = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
            self._images[path] = img
        return img

    def _trunk_of(self, files: list[str]) -> torch.Tensor:
        """Frozen trunk outputs of the un-augmented images, (n, C, h, w) on the CPU (computed once per file)."""
        assert self.encoder_ is not None and self.frozen_ is not None
        todo = [f for f in dict.fromkeys(files) if f not in self._trunk]
        bs = self.config.eval_batch_size
        for start in range(0, len(todo), bs):
            chunk = todo[start:start + bs]
            x = torch.stack([self.encoder_.transform(self._open(f)) for f in chunk]).to(self._device)
            with torch.inference_mode():
                out = self.frozen_(x).float().cpu()
            for f, o in zip(chunk, out, strict=True):
                self._trunk[f] = o.clone()
        return torch.stack([self._trunk[f] for f in files]) if files else torch.zeros(0)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        assert self.encoder_ is not None
        mean = torch.tensor(self.encoder_.mean, dtype=x.dtype, device=x.device)[None, :, None, None]
        std = torch.tensor(self.encoder_.std, dtype=x.dtype, device=x.device)[None, :, None, None]
        return (x - mean) / std

    def _mask(self, n_classes: int, device: torch.device) -> torch.Tensor:
        """Additive logit mask: -inf for classes without labels (probability 0)."""
        assert self.seen_ is not None
        mask = torch.full((n_classes,), float("-inf"), device=device)
        mask[torch.from_numpy(self.seen_).to(device)] = 0.0
        return mask

    # -- fit / predict ------------------------------------------------------------------------------------
    def fit(self, pool: Pool, ids: np.ndarray, labels: np.ndarray, seed: int) -> None:
        """Train a fresh copy of the last block and a new head on the labeled images of ``ids``.

        Parameters
        ----------
        pool : Pool
            An image-folder pool (``paths``, ``media_root``, ``encoder``).
        ids : ndarray of int64, shape (n,)
        labels : ndarray of int64, shape (n,)
        seed : int
        """
        cfg = self.config
        encoder = self._setup(pool)
        assert self.pretrained_ is not None and self.frozen_ is not None
        device = self._device
        ids = np.asarray(ids, dtype=np.int64)
        labels = np.asarray(labels, dtype=np.int64)
        self.seen_ = np.unique(labels)
        files = self._files(pool, ids)
        stored = [self._stored(f) for f in files]
        gen = torch.Generator().manual_seed(int(seed))
        model = copy.deepcopy(self.pretrained_).to(device).eval()
        head = nn.utils.skip_init(nn.Linear, self.dim_, pool.n_classes)  # no draw from the global RNG
        bound = 1.0 / math.sqrt(self.dim_)
        with torch.no_grad():
            head.weight.copy_((torch.rand(head.weight.shape, generator=gen) * 2 - 1) * bound)
            head.bias.zero_()
        head = head.to(device)
        for p in model.parameters():
            p.requires_grad_(True)
        opt = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=cfg.lr,
                                weight_decay=cfg.weight_decay)
        y = torch.from_numpy(labels).to(device)
        mask = self._mask(pool.n_classes, device)
        size = encoder.image_size
        for _ in range(cfg.epochs):
            perm = torch.randperm(len(ids), generator=gen).tolist()
            for start in range(0, len(perm), cfg.batch_size):
                idx = perm[start:start + cfg.batch_size]
                crops = []
                for i in idx:
                    crop = random_resized_crop(stored[i], size, cfg.crop_scale, gen)
                    if bool(torch.rand(1, generator=gen) < 0.5):
                        crop = crop.flip(-1)
                    crops.append(crop)
                x = self._normalise(torch.stack(crops).to(device))
                with torch.no_grad():
                    z = self.frozen_(x)
                logits = head(model(z)) + mask
                loss = nn.functional.cross_entropy(logits, y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        for p in model.parameters():
            p.requires_grad_(False)
        self.model_, self.head_ = model, head.eval()

    def _forward(self, pool: Pool, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Fine-tuned features (n, dim) and probabilities (n, n_classes), float64 on the CPU."""
        if self.model_ is None or self.head_ is None:
            raise RuntimeError("the learner is not fitted yet; call fit first")
        files = self._files(pool, np.asarray(ids, dtype=np.int64))
        trunk = self._trunk_of(files)
        device = self._device
        mask = self._mask(pool.n_classes, device)
        feats, probs = [], []
        with torch.inference_mode():
            for start in range(0, len(files), self.config.eval_batch_size):
                h = self.model_(trunk[start:start + self.config.eval_batch_size].to(device))
                feats.append(h.double().cpu())
                probs.append(torch.softmax(self.head_(h) + mask, dim=1).double().cpu())
        if not files:
            return torch.zeros((0, self.dim_), dtype=torch.float64), torch.zeros((0, pool.n_classes),
                                                                                   dtype=torch.float64)
        return torch.cat(feats), torch.cat(probs)

    def predict_proba(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        """Probabilities, shape (len(ids), n_classes); classes without labels get 0."""
        return self._forward(pool, ids)[1].numpy()

    def embed(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        """Penultimate features of the fine-tuned network, shape (len(ids), dim)."""
        return self._forward(pool, ids)[0].numpy()

    def grad_factors(self, pool: Pool, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Factors ``R = p - e_yhat`` (len(ids), n_classes) and ``H = h`` (len(ids), dim) of the BADGE
        gradient of the head's weights, ``(p - e_yhat) h^T`` (as :class:`TorchLearner`; the bias
        gradient is not included); :meth:`grad_embed` is their outer product, class-major."""
        h, p = self._forward(pool, ids)
        resid = p.clone()
        resid[torch.arange(len(p)), p.argmax(dim=1)] -= 1.0
        return resid.numpy(), h.numpy()
