"""``torchvision:NAME`` and ``timm:NAME``: a library's architecture with the user's own weights file.

Nothing can be downloaded here, so both need ``EncoderOptions.weights`` (a
state_dict saved with ``torch.save``, or ``.safetensors``). The classifier head
is replaced by identity: the embedding is the network's penultimate output
(the pooled features a linear classifier would read). Classifier keys in the
file are dropped (logged at INFO), so a checkpoint of the full classifier,
fine-tuned to any number of classes, loads as is.

Fine-tuning split (:meth:`~al_loop.encoders.torch_image.TorchImageEncoder.finetune_parts`):
for ResNet-style models (a child ``layer4``), ``layer4`` and the pooling are
trainable and everything before is frozen. Otherwise a generic rule: the
network is taken as its top-level child modules in order; the last child with
parameters is split (when it is a ``Sequential``, its last element with
parameters and what follows are trainable, e.g. the 1x1 head convolution of
an EfficientNet, the last hidden linear layer of a MobileNet-V3), and
a flatten goes before a child that starts with a linear layer (the hidden
layers MobileNet-V3 and VGG keep in ``classifier``). The split is checked numerically on one random batch at build; a
model whose ``forward`` is not its children in order (a ViT, a DenseNet's
functional ReLU) fails that check with a one-line ConfigError.
"""

from __future__ import annotations

import difflib
import logging
from typing import TYPE_CHECKING, Any

from al_loop.encoders._deps import require
from al_loop.encoders._weights import file_sha256, load_into, read_state_dict, user_weights
from al_loop.encoders.base import EncoderOptions
from al_loop.encoders.torch_image import IMAGENET_MEAN, IMAGENET_STD, TorchImageEncoder
from al_loop.errors import ConfigError
from al_loop.registry import ENCODERS

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

_HEAD_ATTRS = ("fc", "classifier", "heads", "head")


def strip_head(model: nn.Module, encoder: str) -> list[str]:
    """Replace the last ``nn.Linear`` of the classifier head by identity; return the replaced module's key prefixes."""
    from torch import nn

    for attr in _HEAD_ATTRS:
        head = getattr(model, attr, None)
        if isinstance(head, nn.Linear):
            setattr(model, attr, nn.Identity())
            return [f"{attr}."]
        if isinstance(head, nn.Sequential):
            linears = [name for name, m in head.named_children() if isinstance(m, nn.Linear)]
            if linears:
                setattr(head, linears[-1], nn.Identity())
                return [f"{attr}.{linears[-1]}."]
    raise ConfigError(f"encoder {encoder!r}: no linear classifier head found (looked for {', '.join(_HEAD_ATTRS)}); "
                      "use a classification model such as resnet18")


def split_children(model: nn.Module, encoder: str, image_size: int, device: str) -> tuple[nn.Module, nn.Module]:
    """``(frozen, trainable)`` from ``model``'s top-level children (see the module docstring), checked on one batch."""
    import torch
    from torch import nn

    children = list(model.named_children())
    names = [n for n, _ in children]
    if "layer4" in names:
        k = names.index("layer4")
        frozen_parts, trainable_parts = children[:k], children[k:]
    else:
        with_params = [i for i, (_, m) in enumerate(children) if any(True for _ in m.parameters())]
        if not with_params:
            raise ConfigError(f"encoder {encoder!r}: the model has no parameters to fine-tune")
        k = with_params[-1]
        name, last = children[k]
        if isinstance(last, nn.Sequential) and len(last) > 1:
            inner = [(f"{name}_{n}", m) for n, m in last.named_children()]
            j = [i for i, (_, m) in enumerate(inner) if any(True for _ in m.parameters())][-1]
            frozen_parts = children[:k] + inner[:j]
            trainable_parts = inner[j:] + children[k + 1:]
        else:
            frozen_parts, trainable_parts = children[:k], children[k:]
    from collections import OrderedDict

    def starts_linear(m: nn.Module) -> bool:
        while isinstance(m, nn.Sequential) and len(m):
            m = m[0]
        return isinstance(m, nn.Linear)

    # forward() flattens the pooled map before a linear classifier (MobileNet, VGG); a Sequential must too
    def flattened(parts: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
        out: list[tuple[str, nn.Module]] = []
        for part_name, part in parts:
            if starts_linear(part):
                out.append((f"flatten_{part_name}", nn.Flatten(1)))
            out.append((part_name, part))
        return out

    frozen = nn.Sequential(OrderedDict(flattened(frozen_parts)))
    trainable = nn.Sequential(OrderedDict(flattened(trainable_parts) + [("flatten", nn.Flatten(1))]))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, image_size, image_size, generator=gen).to(device)
    with torch.inference_mode():
        want = model(x).flatten(1)
        try:
            got = trainable(frozen(x))
        except Exception:
            got = None
    if got is None or got.shape != want.shape or not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        raise ConfigError(f"encoder {encoder!r}: its forward is not its child modules in order, so no "
                          "frozen/trainable split is known; fine-tune a ResNet (torchvision:resnet18, "
                          "timm:resnet18) or efficientnet-lite0")
    return frozen, trainable


class _LibraryEncoder(TorchImageEncoder):
    """Shared by ``torchvision:NAME`` and ``timm:NAME``: the user's weights, head stripped, generic split."""

    prefix = ""
    revision = 1

    def __init__(self, model_name: str, options: EncoderOptions) -> None:
        super().__init__(f"{self.prefix}:{model_name}", options)
        self.model_name = model_name
        self.weights_path = str(user_weights(self.name, options.weights))
        self.dropped_keys: list[str] = []

    def _version_parts(self) -> dict[str, Any]:
        return {"weights_sha256": file_sha256(self.weights_path)}

    def _load(self, model: nn.Module, head_prefixes: list[str]) -> nn.Module:
        state = read_state_dict(self.name, self.weights_path)
        self.dropped_keys = sorted(k for k in state if any(k.startswith(p) for p in head_prefixes))
        if self.dropped_keys:
            log.info("%s: dropped the classifier keys %s of %s (the embedding is the penultimate output)",
                     self.name, ", ".join(self.dropped_keys), self.weights_path)
            state = {k: v for k, v in state.items() if k not in self.dropped_keys}
        load_into(model, state, self.name, self.weights_path)
        return model

    def _split(self, module: nn.Module) -> tuple[nn.Module, nn.Module]:
        return split_children(module, self.name, self.image_size, self.device)


class TorchvisionEncoder(_LibraryEncoder):
    """``torchvision.models.get_model(NAME, weights=None)`` with the user's state_dict, head replaced by identity."""

    prefix = "torchvision"
    default_image_size = 224
    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(self, model_name: str, options: EncoderOptions) -> None:
        tv = require("torchvision", None, f"torchvision:{model_name}")
        valid = tv.models.list_models(module=tv.models)
        if model_name not in valid:
            close = difflib.get_close_matches(model_name, valid, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"unknown torchvision classification model {model_name!r}; {hint}see "
                              "torchvision.models.list_models(module=torchvision.models)")
        super().__init__(model_name, options)

    def _build(self) -> nn.Module:
        tv = require("torchvision", None, self.name)
        model = tv.models.get_model(self.model_name, weights=None)
        return self._load(model, strip_head(model, self.name))


class TimmEncoder(_LibraryEncoder):
    """``timm.create_model(NAME, pretrained=False, num_classes=0)`` with the user's state_dict.

    Mean, std and the default image size come from the model's ``pretrained_cfg``.
    """

    prefix = "timm"

    def __init__(self, model_name: str, options: EncoderOptions) -> None:
        timm = require("timm", "vision", f"timm:{model_name}")
        if not timm.is_model(model_name):
            close = difflib.get_close_matches(model_name, timm.list_models(), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"unknown timm model {model_name!r}; {hint}see timm.list_models()")
        cfg = timm.get_pretrained_cfg(model_name)
        if cfg is not None:
            self.mean = tuple(float(v) for v in cfg.mean)  # type: ignore[assignment]
            self.std = tuple(float(v) for v in cfg.std)  # type: ignore[assignment]
            self.default_image_size = int(cfg.input_size[-1])
            classifier = cfg.classifier
            self._classifier = [classifier] if isinstance(classifier, str) else list(classifier or [])
        else:
            self._classifier = []
        super().__init__(model_name, options)

    def _build(self) -> nn.Module:
        timm = require("timm", "vision", self.name)
        model = timm.create_model(self.model_name, pretrained=False, num_classes=0)
        return self._load(model, [f"{c}." for c in self._classifier])


ENCODERS.add("torchvision:", TorchvisionEncoder)
ENCODERS.add("timm:", TimmEncoder)
