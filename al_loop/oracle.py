"""The Oracle interface: asynchronous submit/collect with idempotent keys.

``submit`` sends items (each with the stable key ``run:round:pool_id``) and
returns the keys the oracle now holds; ``lookup`` tells which keys already
exist there (used before any re-send after a failure or a restart);
``collect`` returns the answers available now for a round (possibly partial).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from al_loop.types import Answer, OutboxItem


class Oracle(ABC):
    """Base class of oracles (simulated, Label Studio, ...)."""

    name: ClassVar[str] = ""
    #: True when the oracle needs the hidden labels of the pool (simulation).
    needs_hidden_labels: ClassVar[bool] = False
    #: True when answers arrive later and may change after a round closed (people);
    #: the controller then pulls every earlier round before it trains.
    asynchronous: ClassVar[bool] = False
    #: False when the oracle needs no payloads (saves rendering images for simulations).
    wants_payload: ClassVar[bool] = True

    @abstractmethod
    def submit(self, items: Sequence[OutboxItem]) -> dict[str, str]:
        """Send items; return ``{key: remote_id}`` for every item now at the oracle."""

    @abstractmethod
    def lookup(self, keys: Sequence[str]) -> dict[str, str]:
        """Return ``{key: remote_id}`` for the keys the oracle already holds."""

    @abstractmethod
    def collect(self, run_id: int, round_: int) -> list[Answer]:
        """All current answers for the round's items (labels, skips, rejects, deletions)."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections."""
