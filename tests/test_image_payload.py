"""What an annotator sees of an image item: a PNG large enough to read, with exact pixel blocks."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from al_loop.pool import Pool, image_data_uri


def decode(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert img.format == "PNG" and img.mode == "L"
    return np.asarray(img)


def digit() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 17, size=(8, 8)).astype(float)  # an 8x8 digit's range 0..16


def test_an_8x8_digit_becomes_256_px_of_exact_32px_blocks() -> None:
    src = digit()
    png = decode(image_data_uri(src))
    assert png.shape == (256, 256)
    expected = ((src - src.min()) / (src.max() - src.min()) * 255).astype(np.uint8)
    blocks = png.reshape(8, 32, 8, 32)
    # every 32x32 block holds one value: the source pixel's, no blur between blocks
    assert (blocks == blocks[:, :1, :, :1]).all()
    assert np.array_equal(blocks[:, 0, :, 0], expected)


@pytest.mark.parametrize(("shape", "factor"), [((28, 28), 10), ((8, 12), 32), ((50, 7), 37)])
def test_the_smallest_whole_factor_reaching_256_on_the_short_side(shape: tuple[int, int], factor: int) -> None:
    src = np.random.default_rng(0).random(shape)
    png = decode(image_data_uri(src))
    assert png.shape == (shape[0] * factor, shape[1] * factor)
    assert min(png.shape) >= 256 > min(shape) * (factor - 1)  # reaches 256, and one factor less would not
    assert np.array_equal(png[::factor, ::factor], (src - src.min()) / np.ptp(src) * 255 // 1)


def test_a_large_image_is_left_at_its_size_and_a_thin_strip_stays_under_2048() -> None:
    src = np.random.default_rng(1).random((300, 260))
    assert decode(image_data_uri(src)).shape == (300, 260)
    assert decode(image_data_uri(np.random.default_rng(2).random((2, 64)))).shape == (64, 2048)


def test_flat_and_flattened_images() -> None:
    assert decode(image_data_uri(np.full((8, 8), 5.0))).max() == 0  # one value: black, no division by zero
    flat = digit().ravel()  # 64 features of a square image
    assert np.array_equal(decode(image_data_uri(flat)), decode(image_data_uri(flat.reshape(8, 8))))


def test_pool_payload_of_an_image_item_is_the_enlarged_png() -> None:
    X = np.stack([digit(), digit()[::-1]])
    pool = Pool(X=X, ids=np.array([10, 20]), classes=("a", "b"), kind="image")
    png = decode(pool.payload(20)["image"])
    assert png.shape == (256, 256) and np.array_equal(png[::32, ::32], decode(image_data_uri(X[1]))[::32, ::32])
