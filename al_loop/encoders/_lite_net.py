"""EfficientNet-Lite as two torch modules, the frozen stem and the trainable tail (imports torch: load lazily).

``nn.Sequential(LiteStem(net, k), LiteTail(net, k))`` computes the global
average pool of ``net.extract_features`` (the 1280-d embedding), with the
first ``k`` MBConv blocks in the stem; both share ``net``'s parameters.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class _Blocks(nn.Module):
    def __init__(self, net: Any, start: int, stop: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(net._blocks[start:stop])
        self.start = start
        self.total = len(net._blocks)
        self.rate = float(net._global_params.drop_connect_rate or 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the same per-block drop-connect rate as EfficientNet.extract_features (a no-op in eval mode)
        for i, block in enumerate(self.blocks):
            x = block(x, drop_connect_rate=self.rate * (self.start + i) / self.total if self.rate else None)
        return x


class LiteStem(nn.Module):
    """Stem convolution and the first ``k`` blocks: ``(B, 3, S, S) -> (B, C, h, w)``."""

    def __init__(self, net: Any, k: int) -> None:
        super().__init__()
        self.conv_stem, self.bn0, self.act = net._conv_stem, net._bn0, net._swish
        self.blocks = _Blocks(net, 0, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.act(self.bn0(self.conv_stem(x))))


class LiteTail(nn.Module):
    """The blocks after the first ``k``, the 1x1 head convolution and the global average pool: ``-> (B, 1280)``."""

    def __init__(self, net: Any, k: int) -> None:
        super().__init__()
        self.blocks = _Blocks(net, k, len(net._blocks))
        self.conv_head, self.bn1, self.act = net._conv_head, net._bn1, net._swish

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.conv_head(self.blocks(x))))
        return x.mean(dim=(2, 3))
