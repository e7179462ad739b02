"""The encoder interface: raw items (images, texts) in, a float32 embedding matrix out.

An encoder turns what a person looks at into the space that learners and
strategies read. It is deterministic: the same items, encoder name, weights and
options give the same matrix (up to floating-point reordering on another
device), and :meth:`Encoder.version` digests everything that changes the output
(the weights file's sha256, the preprocessing, the encoder code's revision), so
cached embeddings are keyed by it (:mod:`al_loop.encoders.cache`).

Id frame: an encoder sees items in the order given and returns row ``i`` for
item ``i``; it never sees pool ids.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: what an encoder reads
MODALITIES = ("image", "text")


@dataclass(frozen=True)
class EncoderOptions:
    """Options common to every encoder (the CLI's ``--encoder-*`` options).

    Attributes
    ----------
    weights : str, optional
        A weights file of the user's (``--encoder-weights PATH``): a torch
        ``state_dict`` (``.pt``/``.pth``/``.safetensors``) for ``torchvision:NAME``
        and ``timm:NAME``, a model folder for ``hf:NAME``. Built-in encoders
        with pinned weights refuse it.
    image_size : int, optional
        Side of the square an image is resized to before the network (default:
        the model's own, 224 for EfficientNet-Lite0; smaller is faster).
    batch_size : int
        Items per forward pass.
    device : str, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; None picks CUDA when present.
    """

    weights: str | None = None
    image_size: int | None = None
    batch_size: int = 64
    device: str | None = None

    def as_params(self) -> dict[str, Any]:
        """The options that differ from the defaults (what a run records)."""
        out: dict[str, Any] = {}
        if self.weights is not None:
            out["encoder_weights"] = self.weights
        if self.image_size is not None:
            out["image_size"] = self.image_size
        return out


class Encoder(ABC):
    """Turns items into an ``(n, d)`` float32 matrix.

    Attributes
    ----------
    name : str
        The spec it was built from (``"efficientnet-lite0"``, ``"timm:resnet18"``).
    modality : {"image", "text"}
        What :meth:`encode` takes: RGB ``PIL.Image.Image`` objects, or ``str``.
    corpus_fitted : bool
        True when the output of one item depends on the others (TF-IDF fits its
        vocabulary on all texts): such an encoder is called once on every item,
        never chunk by chunk.
    """

    name: str = ""
    modality: str = "image"
    corpus_fitted: bool = False

    @abstractmethod
    def version(self) -> str:
        """A short hex digest of everything that changes the output: weights, preprocessing, code revision.

        Cheap: hashes files, does not build the model. The embedding cache calls it (and
        ``name``) on every load, and a cache hit must not load the weights; building an
        encoder is cheap for the same reason (the model is built on the first :meth:`encode`).
        """

    @abstractmethod
    def encode(self, items: Sequence[Any]) -> np.ndarray:
        """Embed ``items``.

        Parameters
        ----------
        items : sequence of PIL.Image.Image (RGB) or str, length n
            Images already decoded and converted to RGB (:func:`al_loop.media.open_rgb`),
            or texts, as :attr:`modality` says.

        Returns
        -------
        ndarray of float32, shape (n, d)
            Row ``i`` embeds ``items[i]``; finite values.
        """

    @property
    def device(self) -> str:
        """Where the encoder computes (``"cpu"`` for the ones without torch)."""
        return "cpu"

    def describe(self) -> str:
        """One line for logs: name, version, device."""
        return f"{self.name} (version {self.version()}, {self.device})"
