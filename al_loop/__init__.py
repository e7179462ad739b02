"""al-loop: pool-based active learning with a crash-safe SQLite store.

The core exposes the controller, the store and the registries; strategies and
oracles register themselves from their own packages. The names below are
imported on first use (PEP 562), so ``import al_loop`` — and the command line —
start without numpy, scikit-learn or torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "AlLoopError": "al_loop.errors", "ConfigError": "al_loop.errors", "DataError": "al_loop.errors",
    "OracleError": "al_loop.errors", "StoreError": "al_loop.errors",
    "DATASETS": "al_loop.registry", "LEARNERS": "al_loop.registry", "ORACLES": "al_loop.registry",
    "STRATEGIES": "al_loop.registry",
    "RunConfig": "al_loop.config", "Controller": "al_loop.controller", "Store": "al_loop.store",
    "Strategy": "al_loop.strategy", "top_k": "al_loop.strategy", "ModelView": "al_loop.view",
    "Answer": "al_loop.types", "OutboxItem": "al_loop.types", "QueryContext": "al_loop.types",
    "RoundState": "al_loop.types", "RunStatus": "al_loop.types", "Selection": "al_loop.types",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'al_loop' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
