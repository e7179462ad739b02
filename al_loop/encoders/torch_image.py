"""Base class of the torch image encoders (EfficientNet-Lite0, ``torchvision:NAME``, ``timm:NAME``).

A :class:`TorchImageEncoder` builds its network lazily (first :meth:`encode`,
:meth:`finetune_parts` or :meth:`module` call), in eval mode on
:attr:`device`. Preprocessing is :meth:`transform`: resize the short side of
the RGB image to :attr:`image_size`, centre-crop a square of that side, scale
to [0, 1] and normalise per channel (ImageNet mean/std unless the model says
otherwise). ``encode`` runs batches of ``EncoderOptions.batch_size`` under
``torch.inference_mode`` and returns float32 ``(n, d)`` on the CPU.

Fine-tuning hook (the ``finetune`` learner)
-------------------------------------------
``frozen, trainable, dim = encoder.finetune_parts()`` splits the embedding
network in two modules that share its parameters:
``trainable(frozen(x))`` equals ``encoder.module()(x)``, the pooled features
of shape ``(B, dim)``, for ``x = torch.stack([encoder.transform(img), ...])``
on ``encoder.device``. ``trainable`` holds the backbone's last block(s) and the
head-less pooling (no classifier), so a learner puts its own linear head on
top, trains ``trainable`` + head and keeps ``frozen`` in eval mode (its outputs
can be computed once and cached). The modules come in eval mode; the learner
sets ``trainable.train()`` itself. Changing their parameters changes the
encoder's output: a learner that must not touch the encoder deep-copies them.

Subclasses implement :meth:`_build` (the network, weights loaded),
:meth:`_split` (the fine-tuning split) and :meth:`_version_parts`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from al_loop.encoders.base import Encoder, EncoderOptions
from al_loop.errors import ConfigError, DataError

if TYPE_CHECKING:
    import torch
    from PIL import Image
    from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pick_device(encoder: str, requested: str | None) -> str:
    """``requested``, or ``"cuda"`` when torch sees a GPU, else ``"cpu"`` (one line for an absent CUDA)."""
    import torch

    if requested is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"encoder {encoder!r}: device {requested!r} is not available (torch sees no CUDA GPU); "
                          "use device 'cpu' or leave it unset")
    try:
        torch.device(requested)
    except RuntimeError:
        raise ConfigError(f"encoder {encoder!r}: unknown device {requested!r}; use 'cpu', 'cuda' or 'cuda:N'") \
            from None
    return requested


def digest(parts: dict[str, Any]) -> str:
    """16 hex digits of the sha256 of ``parts`` as canonical JSON."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class TorchImageEncoder(Encoder):
    """An image encoder whose network is a torch module mapping ``(B, 3, S, S)`` to ``(B, d)``.

    Parameters
    ----------
    name : str
        The spec it was built from.
    options : EncoderOptions
        ``image_size`` overrides :attr:`default_image_size`; ``batch_size``, ``device`` as documented there.

    Attributes
    ----------
    revision : int
        Bumped whenever the code changes the output for the same weights (preprocessing, pooling).
    default_image_size : int
        The side the model was trained at.
    mean, std : tuple of float
        Per-channel normalisation applied after scaling pixels to [0, 1].
    """

    modality = "image"
    revision = 1
    default_image_size = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __init__(self, name: str, options: EncoderOptions) -> None:
        if options.image_size is not None and options.image_size < 8:
            raise ConfigError(f"encoder {name!r}: image size {options.image_size} is too small; pass 8 or more (e.g. 224)")
        if options.batch_size < 1:
            raise ConfigError(f"encoder {name!r}: batch size {options.batch_size} must be at least 1")
        self.name = name
        self.options = options
        self._module: nn.Module | None = None
        self._device: str | None = None

    # -- what subclasses provide ---------------------------------------------------------------------------
    def _build(self) -> nn.Module:
        """The embedding network on the CPU, weights loaded: ``(B, 3, S, S) -> (B, d)``."""
        raise NotImplementedError

    def _split(self, module: nn.Module) -> tuple[nn.Module, nn.Module]:
        """``(frozen, trainable)`` sharing ``module``'s parameters, ``trainable(frozen(x)) == module(x)``."""
        raise ConfigError(f"encoder {self.name!r} has no fine-tuning split; use efficientnet-lite0, "
                          "torchvision:resnet18 or timm:resnet18")

    def _version_parts(self) -> dict[str, Any]:
        """What, besides the class's settings, changes the output (the weights' sha256)."""
        raise NotImplementedError

    # -- the interface ------------------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        """Side of the square the network sees."""
        return int(self.options.image_size or self.default_image_size)

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = pick_device(self.name, self.options.device)
        return self._device

    def version(self) -> str:
        parts = {"kind": type(self).__name__, "name": self.name, "revision": self.revision,
                 "image_size": self.image_size, "mean": list(self.mean), "std": list(self.std)}
        parts.update(self._version_parts())
        return digest(parts)

    def module(self) -> nn.Module:
        """The embedding network (built once, eval mode, on :attr:`device`)."""
        if self._module is None:
            module = self._build()
            module.eval()
            self._module = module.to(self.device)
        return self._module

    @property
    def dim(self) -> int:
        """Embedding width ``d`` (builds the network and runs one blank image)."""
        return int(self._forward(self.module(), [self._blank()]).shape[1])

    def _blank(self) -> Image.Image:
        from PIL import Image

        return Image.new("RGB", (self.image_size, self.image_size), (127, 127, 127))

    def transform(self, img: Image.Image) -> torch.Tensor:
        """An RGB PIL image as the network's input.

        Returns
        -------
        torch.Tensor of float32, shape (3, S, S)
            S = :attr:`image_size`: short side resized to S (bilinear), centre square cropped, pixels / 255
            normalised by :attr:`mean` and :attr:`std`.
        """
        import torch
        from PIL import Image

        if img.mode != "RGB":
            img = img.convert("RGB")
        s = self.image_size
        w, h = img.size
        scale = s / min(w, h)
        nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), Image.Resampling.BILINEAR)
        left, top = (nw - s) // 2, (nh - s) // 2
        img = img.crop((left, top, left + s, top + s))
        arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        arr = (arr - mean) / std
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))

    def _forward(self, module: nn.Module, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        x = torch.stack([self.transform(img) for img in images]).to(self.device)
        with torch.inference_mode():
            out = module(x)
        if out.ndim != 2:
            out = out.flatten(1)
        return out.float().cpu().numpy()

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        module = self.module()
        if len(items) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        bs = self.options.batch_size
        out = np.concatenate([self._forward(module, items[i:i + bs]) for i in range(0, len(items), bs)])
        out = np.ascontiguousarray(out, dtype=np.float32)
        if not np.isfinite(out).all():
            bad = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
            raise DataError(f"encoder {self.name!r} produced non-finite embeddings (first at item {bad}); its "
                            "weights are broken (NaN/Inf in the state_dict?); use other weights")
        return out

    def finetune_parts(self) -> tuple[nn.Module, nn.Module, int]:
        """``(frozen, trainable, dim)`` with ``trainable(frozen(x))`` equal to :meth:`module` ``(x)``, shape (B, dim).

        Both on :attr:`device`, eval mode, sharing the encoder's parameters (see the module docstring).
        """
        module = self.module()
        frozen, trainable = self._split(module)
        return frozen, trainable, self.dim
