"""Pool scoring and batch selection on Dask, for pools beyond one machine.

The pool is a chunked N x d array with its global ids (int64) in matching
chunks (:mod:`.chunked`); scoring is one map task per chunk with the learner
shipped once per graph, and the top-b is an exact tree reduction
(:mod:`.scoring`); diversity selection is two-round partitioned greedy
(GreeDi) with the labeled set seeded in every partition (:mod:`.selection`).
The same graphs run on the synchronous scheduler, a LocalCluster or a real
cluster (:func:`make_client`). Database writes and oracle calls never run in
tasks: the controller stays in the driver and receives global ids.

Dask is optional (``pip install 'al-loop[dask]'``): importing this package
does not import it; the first use of a Dask-backed name does, and a missing
install is a one-line :class:`~al_loop.errors.ConfigError`.
"""

from __future__ import annotations

import importlib
from typing import Any

from al_loop.distributed.wiring import cluster_session as cluster_session
from al_loop.distributed.wiring import maybe_distribute as maybe_distribute

_LAZY = {
    "ClusterSpec": "client", "DaskRunner": "client", "make_client": "client", "parse_cluster_spec": "client",
    "ChunkedPool": "chunked", "from_arrays": "chunked", "from_pool": "chunked", "gather_rows": "chunked",
    "synthetic_pool": "chunked",
    "MEASURES": "scoring", "embed_array": "scoring", "learner_in_graph": "scoring", "proba_array": "scoring",
    "top_k_tree": "scoring", "uncertainty_array": "scoring", "uncertainty_top_k": "scoring",
    "n_partitions_for": "selection", "random_partition": "selection", "two_round_facility_location": "selection",
    "two_round_kcenter": "selection",
    "SUPPORTED": "strategy", "DistributedSelection": "strategy", "distribute": "strategy",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"al_loop.distributed.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'al_loop.distributed' has no attribute {name!r}")


__all__ = sorted([*_LAZY, "cluster_session", "maybe_distribute"])
