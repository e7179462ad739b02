"""A run's whole pool, handed to an oracle that holds every item (``campaign init --import-pool``).

An oracle normally sees only the items a round sends (:class:`~al_loop.types.OutboxItem`).
A Label Studio campaign started with ``--import-pool`` holds a task for every
pool item, so that its Data Manager can sort the whole pool by al-loop's
prediction score; its oracle gets a :class:`RunPool` (``pool_source``): the
pool's ids and payloads, and the run's ``oracle_state`` to keep what it
imported, so that an import cut short by a crash goes on where it stopped.
Nothing here knows Label Studio: ``al_loop`` names no oracle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from al_loop.pool import Pool
from al_loop.store import Store


@dataclass(frozen=True)
class RunPool:
    """The pool of run ``run_id`` and that run's oracle state.

    Parameters
    ----------
    run_id : int
        The campaign run.
    pool : Pool
        Its pool (built from the run's config).
    store : Store
        The campaign's store (``oracle_state`` of the run is read and written).
    """

    run_id: int
    pool: Pool
    store: Store

    def ids(self) -> np.ndarray:
        """Every pool id, ascending, shape ``(n,)``."""
        return np.sort(np.asarray(self.pool.ids, dtype=np.int64))

    def payload(self, pool_id: int) -> dict[str, Any]:
        """What an annotator sees for item ``pool_id`` (:meth:`al_loop.pool.Pool.payload`)."""
        return self.pool.payload(int(pool_id))

    def state(self, key: str) -> str | None:
        """The run's ``oracle_state`` value under ``key`` (None: unset)."""
        return self.store.oracle_state(self.run_id, key)

    def set_state(self, key: str, value: str) -> None:
        """Record ``value`` under ``key`` in the run's ``oracle_state`` (one transaction)."""
        self.store.set_oracle_state(self.run_id, key, value)
