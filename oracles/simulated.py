"""Simulated oracle: answers with the hidden label, optionally noisy or skipped.

Every random choice about an item comes from
``numpy.random.default_rng([seed, pool_id, salt])``, so an item's answer does
not depend on when, in which order or how many times it is asked: a resumed
run gets the same answers as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from al_loop.errors import ConfigError
from al_loop.multilabel import set_string
from al_loop.oracle import Oracle
from al_loop.pool import Pool
from al_loop.registry import ORACLES
from al_loop.types import Answer, OutboxItem

_NOISE_SALT = 1
_SKIP_SALT = 2


@dataclass(frozen=True)
class SimulatedOracleConfig:
    """``noise_rate``: chance an answer is flipped to a uniformly drawn other class (multi-label:
    chance each label's presence is flipped, independently per label); ``skip_rate``: chance the
    item is answered "skipped"."""

    noise_rate: float = 0.0
    skip_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("noise_rate", "skip_rate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value}; pass e.g. --{name.replace('_', '-')} 0.1")


@ORACLES.register("simulated")
class SimulatedOracle(Oracle):
    """Ground-truth oracle for simulations (same submit/collect path as a real one)."""

    name = "simulated"
    needs_hidden_labels = True
    wants_payload = False

    def __init__(self, pool: Pool, seed: int, config: SimulatedOracleConfig | None = None) -> None:
        self.pool = pool
        self.seed = seed
        self.config = config or SimulatedOracleConfig()
        self._held: dict[str, OutboxItem] = {}
        self.submit_calls: list[list[str]] = []

    def submit(self, items: Sequence[OutboxItem]) -> dict[str, str]:
        self.submit_calls.append([it.key for it in items])
        for it in items:
            self._held[it.key] = it
        return {it.key: it.key for it in items}

    def lookup(self, keys: Sequence[str]) -> dict[str, str]:
        return {k: k for k in keys if k in self._held}

    def answer_for(self, pool_id: int) -> Answer:
        """The (deterministic) answer about one item."""
        cfg = self.config
        if cfg.skip_rate and np.random.default_rng([self.seed, pool_id, _SKIP_SALT]).random() < cfg.skip_rate:
            return Answer(pool_id=pool_id, status="skipped", annotation_id=f"sim-{pool_id}", annotator="simulated")
        if self.pool.multilabel:
            return self._multilabel_answer(pool_id)
        true = int(self.pool.hidden_labels(np.array([pool_id]))[0])
        label = true
        if cfg.noise_rate:
            rng = np.random.default_rng([self.seed, pool_id, _NOISE_SALT])
            if rng.random() < cfg.noise_rate and self.pool.n_classes > 1:
                others = [c for c in range(self.pool.n_classes) if c != true]
                label = int(others[rng.integers(len(others))])
        return Answer(pool_id=pool_id, status="labeled", label=self.pool.classes[label],
                      annotation_id=f"sim-{pool_id}", annotator="simulated")

    def _multilabel_answer(self, pool_id: int) -> Answer:
        """The item's label set, each label flipped with probability ``noise_rate`` (its own draw per label)."""
        row = np.asarray(self.pool.hidden_labels(np.array([pool_id]))[0], dtype=np.uint8).copy()
        if self.config.noise_rate:
            flips = np.random.default_rng([self.seed, pool_id, _NOISE_SALT]).random(len(row)) < self.config.noise_rate
            row ^= flips.astype(np.uint8)
        return Answer(pool_id=pool_id, status="labeled", label=set_string(row, self.pool.classes),
                      annotation_id=f"sim-{pool_id}", annotator="simulated")

    def collect(self, run_id: int, round_: int) -> list[Answer]:
        prefix = f"{run_id}:{round_}:"
        return [self.answer_for(it.pool_id) for key, it in sorted(self._held.items()) if key.startswith(prefix)]
