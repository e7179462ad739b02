"""Name -> class registries for strategies, oracles, learners and datasets.

The core never imports a concrete strategy or oracle: packages register
themselves (``strategies/__init__.py``, ``oracles/__init__.py``) and
:func:`load_plugins` imports them once. A user registers their own with the
same decorators from outside the package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from al_loop.errors import ConfigError

T = TypeVar("T")

_PLUGIN_PACKAGES = ("strategies", "oracles")
_loaded = False


class Registry(Generic[T]):
    """A mapping of names to factories with a helpful error on a miss."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@STRATEGIES.register("entropy")``."""

        def deco(obj: T) -> T:
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        self._items[name] = obj

    def get(self, name: str) -> T:
        load_plugins()
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items)) or "(none)"
            raise ConfigError(f"unknown {self.kind} {name!r}; valid names: {valid}") from None

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._items


STRATEGIES: Registry[Any] = Registry("strategy")
ORACLES: Registry[Any] = Registry("oracle")
LEARNERS: Registry[Any] = Registry("learner")
DATASETS: Registry[Any] = Registry("dataset")


def load_plugins() -> None:
    """Import the bundled plugin packages once, so they register themselves."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for pkg in _PLUGIN_PACKAGES:
        importlib.import_module(pkg)
