"""Built-in datasets through an encoder: arrays of images and lists of texts embedded via the cache.

The loaders of ``fashion-mnist`` and ``rotten-tomatoes`` take ``encoder=SPEC``
(and ``image_size``) and call these helpers; image folders and text files have
their own loaders (:func:`al_loop.datasets.load_image_folder`, ``load_texts``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np


def _encoder(spec: str, modality: str, image_size: int | None, batch_size: int) -> Any:
    from al_loop.datasets import _media_encoder
    from al_loop.encoders import EncoderOptions

    return _media_encoder(spec, modality, EncoderOptions(image_size=int(image_size) if image_size else None,
                                                         batch_size=int(batch_size)))


def embed_image_array(images: np.ndarray, spec: str, *, image_size: int | None = None, batch_size: int = 64,
                      chunk: int = 1024, source: str | None = None) -> tuple[np.ndarray, str]:
    """Embed images held in an array (grey ones replicated to RGB) through ``spec``, cached.

    Parameters
    ----------
    images : ndarray, shape (n, H, W) or (n, H, W, C)
        Values in [0, 1] or 0..255 (:func:`al_loop.media.open_rgb`).
    spec : str
        An image encoder (``efficientnet-lite0``, ``pixels``...).

    Returns
    -------
    X : ndarray of float32, shape (n, d)
    digest : str
        The digest of the array's bytes and the encoder's version (``Pool.digest``).
    """
    from al_loop.encoders.cache import embed
    from al_loop.media import open_rgb

    enc = _encoder(spec, "image", image_size, batch_size)
    arr = np.ascontiguousarray(images)
    inputs = hashlib.blake2b(str(arr.shape).encode() + str(arr.dtype).encode() + arr.tobytes(),
                             digest_size=16).hexdigest()
    X, _ = embed(enc, len(arr), lambda i0, i1: [open_rgb(a) for a in arr[i0:i1]], inputs, chunk=chunk,
                 source=source)
    return np.asarray(X, dtype=np.float32), f"{inputs}:{enc.version()}"


def embed_text_list(texts: Sequence[str], spec: str, *, batch_size: int = 64, chunk: int = 1024,
                    source: str | None = None) -> tuple[np.ndarray, str]:
    """Embed ``texts`` through the text encoder ``spec``, cached; returns ``(X (n, d) float32, digest)``."""
    from al_loop.encoders.cache import embed

    enc = _encoder(spec, "text", None, batch_size)
    h = hashlib.blake2b(digest_size=16)
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    inputs = h.hexdigest()
    X, _ = embed(enc, len(texts), lambda i0, i1: list(texts[i0:i1]), inputs, chunk=chunk, source=source)
    return np.asarray(X, dtype=np.float32), f"{inputs}:{enc.version()}"
