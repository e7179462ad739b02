"""A module imported on first attribute access, so that listing strategies (or building the CLI) skips torch.

>>> torch = lazy_import("torch")   # nothing imported yet
>>> torch.zeros(3)                 # imports torch now; later accesses are plain attribute lookups
"""

from __future__ import annotations

import importlib
import types
from typing import Any


class _LazyModule(types.ModuleType):
    def __getattr__(self, attr: str) -> Any:
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)  # later lookups skip this method
        return getattr(module, attr)


def lazy_import(name: str) -> Any:
    """A stand-in for ``import name`` that imports the module when one of its attributes is first used."""
    return _LazyModule(name)
