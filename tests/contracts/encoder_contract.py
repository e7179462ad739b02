"""Contract suite every Encoder inherits.

Subclass :class:`EncoderContract` in a test module and override
``make_encoder(options)`` (build the encoder under test with these options)
and ``make_items(n)`` (n items of the encoder's modality: RGB PIL images of
varied sizes, or texts); pytest then runs every test below against it.
``options`` sets the image size small (64 px) and the device to the CPU, so
the suite runs in seconds; encoders that load real weights should cache the
loaded model per module, since a test builds a few instances.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from al_loop.encoders import Encoder, EncoderOptions


def random_images(n: int, seed: int = 0) -> list[Image.Image]:
    """``n`` RGB images of different sizes and aspect ratios (smooth blobs plus noise, so features differ)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w, h = int(rng.integers(48, 96)), int(rng.integers(48, 96))
        yy, xx = np.mgrid[0:h, 0:w]
        base = rng.uniform(0, 255, size=3)
        wave = 60 * np.sin(xx / rng.uniform(3, 12) + i) * np.cos(yy / rng.uniform(3, 12))
        arr = base[None, None, :] + wave[..., None] + rng.normal(0, 20, size=(h, w, 3))
        out.append(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB"))
    return out


def sample_texts(n: int) -> list[str]:
    """``n`` different short texts."""
    words = ["film", "invoice", "river", "engine", "garden", "melody", "court", "pixel", "harbour", "winter"]
    return [f"the {words[i % len(words)]} number {i} is {'good' if i % 2 else 'late'} today" for i in range(n)]


class EncoderContract:
    """Behaviour every encoder must have."""

    n_items = 9
    options = EncoderOptions(image_size=64, device="cpu")

    def make_encoder(self, options: EncoderOptions) -> Encoder:
        raise NotImplementedError

    def make_items(self, n: int) -> list[Any]:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def encoder(cls) -> Encoder:
        return cls.make_encoder(cls, cls.options)  # type: ignore[arg-type]

    @pytest.fixture(scope="class")
    @classmethod
    def items(cls) -> list[Any]:
        return cls.make_items(cls, cls.n_items)  # type: ignore[arg-type]

    @pytest.fixture(scope="class")
    @classmethod
    def embedded(cls, encoder: Encoder, items: list[Any]) -> np.ndarray:
        return encoder.encode(items)

    def test_shape_dtype_finite(self, encoder: Encoder, items: list[Any], embedded: np.ndarray) -> None:
        assert embedded.ndim == 2 and embedded.shape[0] == len(items) and embedded.shape[1] > 0
        assert embedded.dtype == np.float32
        assert np.isfinite(embedded).all()
        assert encoder.modality in ("image", "text")
        # different items give different rows (an encoder that ignores its input fails)
        assert len({row.tobytes() for row in embedded}) == len(items)

    def test_deterministic(self, encoder: Encoder, items: list[Any], embedded: np.ndarray) -> None:
        np.testing.assert_array_equal(encoder.encode(items), embedded)

    def test_row_i_is_item_i(self, encoder: Encoder, items: list[Any], embedded: np.ndarray) -> None:
        np.testing.assert_allclose(encoder.encode(items[::-1]), embedded[::-1], rtol=1e-5, atol=1e-5)

    def test_batch_size_does_not_change_rows(self, items: list[Any], embedded: np.ndarray) -> None:
        one = self.make_encoder(replace(self.options, batch_size=1)).encode(items)
        seven = self.make_encoder(replace(self.options, batch_size=7)).encode(items)
        np.testing.assert_allclose(one, embedded, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(seven, embedded, rtol=1e-4, atol=1e-4)

    def test_version_stable_across_instances(self, encoder: Encoder) -> None:
        again = self.make_encoder(self.options)
        assert again.version() == encoder.version()
        assert isinstance(encoder.version(), str) and int(encoder.version(), 16) >= 0

    def test_version_tracks_image_size(self, encoder: Encoder) -> None:
        other = self.make_encoder(replace(self.options, image_size=48))
        if encoder.modality == "image":
            assert other.version() != encoder.version()
        else:  # a text encoder's output does not depend on an image size, so neither does its version
            assert other.version() == encoder.version()
