"""Test doubles of encoders that count what they are asked to embed (items are ints)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from al_loop.encoders.base import Encoder


class RowEncoder(Encoder):
    """Item ``x`` (an int) -> ``[x, sqrt(x), sin(x)]``; counts calls and items; sleeps ``delay`` s per call."""

    name = "test-rows"
    modality = "text"

    def __init__(self, delay: float = 0.0, revision: str = "1", corpus_fitted: bool = False) -> None:
        self.delay = delay
        self.revision = revision
        self.corpus_fitted = corpus_fitted
        self.calls = 0
        self.items = 0

    def version(self) -> str:
        return f"rows{self.revision}"

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        self.calls += 1
        self.items += len(items)
        if self.delay:
            time.sleep(self.delay)
        x = np.asarray(items, dtype=np.float64)
        return np.stack([x, np.sqrt(x), np.sin(x)], axis=1).astype(np.float32)


class UnloadableEncoder(RowEncoder):
    """The same name and version as :class:`RowEncoder`, but its model cannot be loaded: a hit must not need it."""

    def encode(self, items: Sequence[Any]) -> np.ndarray:
        raise AssertionError("the cache built the model on a hit")
