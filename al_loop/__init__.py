"""al-loop: pool-based active learning with a crash-safe SQLite store.

The core exposes the controller, the store and the registries; strategies and
oracles register themselves from their own packages.
"""

import al_loop.datasets  # noqa: E402,F401  (registers the built-in datasets)
import al_loop.learners  # noqa: E402,F401  (registers the named learners)
from al_loop.config import RunConfig
from al_loop.controller import Controller
from al_loop.errors import AlLoopError, ConfigError, DataError, OracleError, StoreError
from al_loop.registry import DATASETS, LEARNERS, ORACLES, STRATEGIES
from al_loop.store import Store
from al_loop.strategy import Strategy, top_k
from al_loop.types import Answer, OutboxItem, QueryContext, RoundState, RunStatus, Selection
from al_loop.view import ModelView

__version__ = "0.1.0"

__all__ = [
    "AlLoopError", "Answer", "ConfigError", "Controller", "DATASETS", "DataError", "LEARNERS", "ModelView",
    "ORACLES", "OracleError", "OutboxItem", "QueryContext", "RoundState", "RunConfig", "RunStatus", "STRATEGIES",
    "Selection", "Store", "StoreError", "Strategy", "top_k",
]
