"""Encoders without a network: ``pixels`` (images resized and flattened) and ``tfidf`` (texts).

Both are baselines and fast test doubles of the pretrained encoders; neither
imports torch. ``pixels`` embeds one image on its own (chunked, cached);
``tfidf`` fits its vocabulary on all texts (``corpus_fitted``), so it is
computed on every text in one call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np

from al_loop.encoders.base import Encoder, EncoderOptions
from al_loop.errors import ConfigError, DataError
from al_loop.registry import ENCODERS

#: bump when the output of an encoder below changes for the same input
_REVISION = "1"


def _digest(*parts: object) -> str:
    return hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=6).hexdigest()


@ENCODERS.register("pixels")
class PixelsEncoder(Encoder):
    """An image resized to S x S (bilinear), RGB, flattened, scaled to [0, 1].

    ``S`` is ``EncoderOptions.image_size`` (default 32): ``d = 3 * S * S``.
    """

    name = "pixels"
    modality = "image"
    corpus_fitted = False

    def __init__(self, options: EncoderOptions | None = None) -> None:
        options = options or EncoderOptions()
        if options.weights is not None:
            raise ConfigError("encoder 'pixels' has no weights; drop --encoder-weights")
        self.size = int(options.image_size or 32)
        if self.size < 1:
            raise ConfigError(f"--image-size {self.size} is not a positive number of pixels; e.g. --image-size 32")

    def version(self) -> str:
        return _digest("pixels", self.size, "bilinear", _REVISION)

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        """Images (RGB PIL) -> float32 (n, 3 * S * S), values in [0, 1]."""
        from PIL import Image

        out = np.empty((len(items), 3 * self.size * self.size), dtype=np.float32)
        for i, img in enumerate(items):
            small = img.convert("RGB").resize((self.size, self.size), Image.Resampling.BILINEAR)
            out[i] = np.asarray(small, dtype=np.float32).reshape(-1) / 255.0
        return out


@ENCODERS.register("tfidf")
class TfidfEncoder(Encoder):
    """TF-IDF of the texts (``max_features`` terms, sublinear tf), fitted on all of them.

    The same features as the ``text`` dataset's default: scikit-learn's
    ``TfidfVectorizer(max_features=5000, sublinear_tf=True)``.
    """

    name = "tfidf"
    modality = "text"
    corpus_fitted = True

    def __init__(self, options: EncoderOptions | None = None, max_features: int = 5000) -> None:
        options = options or EncoderOptions()
        if options.weights is not None:
            raise ConfigError("encoder 'tfidf' has no weights; drop --encoder-weights")
        self.max_features = int(max_features)

    def version(self) -> str:
        return _digest("tfidf", self.max_features, "sublinear", metadata.version("scikit-learn"), _REVISION)

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        """Texts -> float32 (n, min(max_features, vocabulary size))."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        try:
            X = TfidfVectorizer(max_features=self.max_features, sublinear_tf=True).fit_transform(list(items))
        except ValueError as exc:  # "empty vocabulary"
            raise DataError(f"TF-IDF found no words in the {len(items)} texts ({exc}); give texts with words of two "
                            "or more letters, or another --encoder (minilm)") from None
        return np.asarray(X.todense(), dtype=np.float32)
