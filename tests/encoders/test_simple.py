"""The encoders without a network: ``pixels`` and ``tfidf``, through the encoder contract suite."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from PIL import Image

from al_loop.encoders import Encoder, EncoderOptions, get_encoder
from al_loop.errors import ConfigError, DataError
from tests.contracts.encoder_contract import EncoderContract, random_images, sample_texts


class TestPixels(EncoderContract):
    def make_encoder(self, options: EncoderOptions) -> Encoder:
        return get_encoder("pixels", options)

    def make_items(self, n: int) -> list[Any]:
        return random_images(n)


class TestTfidf(EncoderContract):
    def make_encoder(self, options: EncoderOptions) -> Encoder:
        return get_encoder("tfidf", options)

    def make_items(self, n: int) -> list[Any]:
        return sample_texts(n)


def test_pixels_is_the_resized_image_over_255() -> None:
    img = Image.new("RGB", (7, 300), (255, 51, 0))
    row = get_encoder("pixels", EncoderOptions(image_size=3)).encode([img])
    assert row.shape == (1, 27)
    np.testing.assert_allclose(row.reshape(3, 3, 3), np.broadcast_to([1.0, 0.2, 0.0], (3, 3, 3)), atol=1e-6)
    assert get_encoder("pixels").encode([img]).shape == (1, 3 * 32 * 32)  # default 32 x 32


def test_neither_takes_weights_nor_imports_torch() -> None:
    for name in ("pixels", "tfidf"):
        with pytest.raises(ConfigError, match=rf"encoder '{name}' has no weights; drop --encoder-weights"):
            get_encoder(name, EncoderOptions(weights="w.pt"))
    assert get_encoder("tfidf").corpus_fitted and not get_encoder("pixels").corpus_fitted

    code = ("import sys; from PIL import Image; from al_loop.encoders import get_encoder; "
            "get_encoder('pixels').encode([Image.new('RGB', (4, 4))]); get_encoder('tfidf').encode(['good film', 'bad day']); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_tfidf_on_texts_without_words_is_one_line() -> None:
    with pytest.raises(DataError, match=r"TF-IDF found no words in the 2 texts \(empty vocabulary.*\); give texts with "
                                        r"words of two or more letters, or another --encoder \(minilm\)"):
        get_encoder("tfidf").encode(["a b", "? !"])
