"""torchvision:NAME and timm:NAME with checkpoints the tests write (random init, torch.save)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision
from PIL import Image

from al_loop.encoders import EncoderOptions, get_encoder
from al_loop.encoders.library_models import TimmEncoder, TorchvisionEncoder
from al_loop.errors import ConfigError
from tests.contracts.encoder_contract import EncoderContract, random_images


def _checkpoint(folder: Path, name: str, model: torch.nn.Module) -> str:
    path = folder / f"{name}.pt"
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    return {"tv": _checkpoint(folder, "tv_resnet18", torchvision.models.resnet18()),
            "timm": _checkpoint(folder, "timm_resnet18", timm.create_model("resnet18", pretrained=False)),
            "tv34": _checkpoint(folder, "tv_resnet34", torchvision.models.resnet34())}


class TestTorchvisionContract(EncoderContract):
    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _weights(cls, ckpts: dict[str, str]) -> None:
        cls.options = EncoderOptions(image_size=64, device="cpu", weights=ckpts["tv"])

    def make_encoder(self, options: EncoderOptions) -> TorchvisionEncoder:
        return TorchvisionEncoder("resnet18", options)

    def make_items(self, n: int) -> list[Image.Image]:
        return random_images(n)


class TestTimmContract(TestTorchvisionContract):
    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _weights(cls, ckpts: dict[str, str]) -> None:
        cls.options = EncoderOptions(image_size=64, device="cpu", weights=ckpts["timm"])

    def make_encoder(self, options: EncoderOptions) -> TimmEncoder:  # type: ignore[override]
        return TimmEncoder("resnet18", options)


@pytest.mark.parametrize("prefix", ["torchvision", "timm"])
def test_output_is_the_modules_own_penultimate_output(prefix: str, ckpts: dict[str, str]) -> None:
    path = ckpts["tv" if prefix == "torchvision" else "timm"]
    enc = get_encoder(f"{prefix}:resnet18", EncoderOptions(image_size=64, device="cpu", weights=path))
    if prefix == "torchvision":
        model = torchvision.models.resnet18()
        model.load_state_dict(torch.load(path, weights_only=True))
        model.fc = torch.nn.Identity()
    else:
        model = timm.create_model("resnet18", pretrained=False)
        model.load_state_dict(torch.load(path, weights_only=True))
        model.reset_classifier(0)
    model.eval()
    images = random_images(3, seed=2)
    x = torch.stack([enc.transform(img) for img in images])
    with torch.inference_mode():
        want = model(x).numpy()
    got = enc.encode(images)
    assert got.shape == (3, 512)
    np.testing.assert_array_equal(got, want)
    assert enc.dropped_keys == ["fc.bias", "fc.weight"]  # type: ignore[attr-defined]


def test_timm_transform_uses_pretrained_cfg(ckpts: dict[str, str]) -> None:
    enc = TimmEncoder("inception_v3", EncoderOptions(device="cpu", weights=ckpts["timm"]))
    cfg = timm.get_pretrained_cfg("inception_v3")
    assert enc.mean == tuple(cfg.mean) and enc.std == tuple(cfg.std) and enc.image_size == cfg.input_size[-1]
    assert enc.mean != (0.485, 0.456, 0.406)


@pytest.mark.parametrize("prefix", ["torchvision", "timm"])
def test_resnet_finetune_parts_train_layer4(prefix: str, ckpts: dict[str, str]) -> None:
    path = ckpts["tv" if prefix == "torchvision" else "timm"]
    enc = get_encoder(f"{prefix}:resnet18", EncoderOptions(image_size=64, device="cpu", weights=path))
    frozen, trainable, dim = enc.finetune_parts()  # type: ignore[attr-defined]
    assert dim == 512 and "layer4" in dict(trainable.named_children())
    assert "layer3" in dict(frozen.named_children())
    images = random_images(2, seed=4)
    x = torch.stack([enc.transform(img) for img in images])  # type: ignore[attr-defined]
    with torch.inference_mode():
        np.testing.assert_allclose(trainable(frozen(x)).numpy(), enc.encode(images), rtol=1e-5, atol=1e-5)


def test_generic_finetune_split_of_a_mobilenet(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path, "mnv3", torchvision.models.mobilenet_v3_small())
    enc = TorchvisionEncoder("mobilenet_v3_small", EncoderOptions(image_size=64, device="cpu", weights=path))
    frozen, trainable, dim = enc.finetune_parts()
    assert dim == 1024
    images = random_images(2)
    x = torch.stack([enc.transform(img) for img in images])
    with torch.inference_mode():
        np.testing.assert_allclose(trainable(frozen(x)).numpy(), enc.encode(images), rtol=1e-5, atol=1e-5)


def test_no_split_for_a_forward_that_is_not_its_children(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path, "sq", torchvision.models.shufflenet_v2_x0_5())
    enc = TorchvisionEncoder("shufflenet_v2_x0_5", EncoderOptions(image_size=64, device="cpu", weights=path))
    with pytest.raises(ConfigError, match="its forward is not its child modules in order"):
        enc.finetune_parts()


def test_torchvision_without_weights_says_pass_encoder_weights() -> None:
    with pytest.raises(ConfigError) as err:
        get_encoder("torchvision:resnet18", EncoderOptions(device="cpu"))
    assert "\n" not in str(err.value) and "pass --encoder-weights PATH" in str(err.value)


def test_unknown_torchvision_model_suggests_a_name(ckpts: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="did you mean 'resnet18'"):
        get_encoder("torchvision:resnet81", EncoderOptions(weights=ckpts["tv"]))


def test_wrong_state_dict_names_file_and_first_bad_keys(ckpts: dict[str, str]) -> None:
    enc = get_encoder("torchvision:resnet18", EncoderOptions(image_size=64, device="cpu", weights=ckpts["tv34"]))
    with pytest.raises(ConfigError) as err:
        enc.encode(random_images(1))
    msg = str(err.value)
    assert "\n" not in msg and ckpts["tv34"] in msg and "unexpected keys layer1.2." in msg


def test_weights_file_that_is_no_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a torch file")
    enc = TorchvisionEncoder("resnet18", EncoderOptions(image_size=64, device="cpu", weights=str(path)))
    with pytest.raises(ConfigError, match="cannot be read as a state_dict"):
        enc.encode(random_images(1))
