"""Name -> class registries for strategies, oracles, learners and datasets.

The core never imports a concrete strategy or oracle: packages register
themselves (``strategies/__init__.py``, ``oracles/__init__.py``) and
:func:`load_plugins` imports them once, together with the built-in datasets
and learners and every installed plugin that declares a Python entry point in
one of the groups ``al_loop.strategies``, ``al_loop.learners``,
``al_loop.oracles`` or ``al_loop.datasets``. An entry point names either a
module (importing it registers what it holds) or an object (registered under
the entry point's name). A user registers their own with the same decorators
from outside the package, or passes ``--plugin MODULE`` on the command line.

Each registry remembers the module that registered a name
(:meth:`Registry.origin`), so a run records the plugin modules it needs and a
later process can import them again, or say which one is missing.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from al_loop.errors import ConfigError, PluginMissingError

T = TypeVar("T")

_BUNDLED = ("al_loop.datasets", "al_loop.learners", "al_loop.encoders", "strategies", "oracles")
#: modules whose registrations are part of al-loop (never recorded as plugins)
_BUNDLED_PREFIXES = ("al_loop", "strategies", "oracles")
ENTRY_POINT_GROUPS = {"al_loop.strategies": "STRATEGIES", "al_loop.learners": "LEARNERS",
                      "al_loop.oracles": "ORACLES", "al_loop.datasets": "DATASETS",
                      "al_loop.encoders": "ENCODERS"}
_loaded = False


def _caller_module(obj: Any) -> str:
    return str(getattr(obj, "__module__", None) or "")


class Registry(Generic[T]):
    """A mapping of names to factories with a helpful error on a miss."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@STRATEGIES.register("entropy")``."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T, module: str | None = None) -> None:
        self._items[name] = obj
        self._origins[name] = module or _caller_module(obj)

    def get(self, name: str) -> T:
        load_plugins()
        try:
            return self._items[name]
        except KeyError:
            import difflib

            valid = ", ".join(sorted(self._items)) or "(none)"
            close = difflib.get_close_matches(str(name), list(self._items), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"unknown {self.kind} {name!r}; {hint}valid names: {valid} "
                              f"(your own: register it in a module and pass --plugin MODULE)") from None

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._items)

    def origin(self, name: str) -> str | None:
        """The plugin module that registered ``name``; None for al-loop's own (or unknown) names."""
        load_plugins()
        module = self._origins.get(name)
        if not module or module == "__main__" or module.split(".")[0] in _BUNDLED_PREFIXES:
            return None
        return module

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._items


STRATEGIES: Registry[Any] = Registry("strategy")
ORACLES: Registry[Any] = Registry("oracle")
LEARNERS: Registry[Any] = Registry("learner")
DATASETS: Registry[Any] = Registry("dataset")
#: encoder name -> factory ``(options: EncoderOptions) -> Encoder``; ``torchvision:``/``timm:``/``hf:`` specs are
#: resolved by :func:`al_loop.encoders.get_encoder`
ENCODERS: Registry[Any] = Registry("encoder")


def _load_entry_points() -> None:
    from importlib.metadata import entry_points

    registries = {"STRATEGIES": STRATEGIES, "LEARNERS": LEARNERS, "ORACLES": ORACLES, "DATASETS": DATASETS,
                  "ENCODERS": ENCODERS}
    for group, reg_name in ENTRY_POINT_GROUPS.items():
        for ep in entry_points(group=group):
            try:
                obj = ep.load()
            except Exception as exc:
                raise ConfigError(f"the plugin entry point {ep.name!r} ({ep.value}) in group {group} failed to "
                                  f"load ({type(exc).__name__}: {exc}); fix or uninstall the package that "
                                  "declares it") from None
            if not isinstance(obj, type(sys)):  # an object: register it under the entry point's name
                registries[reg_name].add(ep.name, obj, module=ep.module)


def load_plugins() -> None:
    """Import the bundled packages and the installed entry-point plugins once, so they register themselves."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for pkg in _BUNDLED:
        importlib.import_module(pkg)
    _load_entry_points()


def import_plugins(modules: Sequence[str], needed_by: str | None = None) -> None:
    """Import plugin modules by name (the current folder is searched too); one-line error for a missing one.

    ``needed_by`` names what needs them (e.g. ``"run 3"``), for the message.
    """
    if not modules:
        return
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    for name in modules:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # the plugin itself, not something it imports
                who = f"{needed_by} needs" if needed_by else "--plugin names"
                raise PluginMissingError(f"{who} the plugin module {name!r}, which cannot be imported; install it "
                                  f"or run from the folder that holds {name.replace('.', '/')}.py "
                                  f"(and pass --plugin {name})") from None
            raise ConfigError(f"plugin module {name!r} failed to import: {exc}; install what it needs") from None


def plugins_for(strategies: Sequence[str] = (), learner: str | None = None, dataset: str | None = None,
                oracle: str | None = None) -> tuple[str, ...]:
    """The plugin modules that registered these names (sorted; al-loop's own names need none)."""
    found = {STRATEGIES.origin(s) for s in strategies}
    if learner is not None:
        found.add(LEARNERS.origin(learner))
    if dataset is not None:
        found.add(DATASETS.origin(dataset))
    if oracle is not None:
        found.add(ORACLES.origin(oracle))
    return tuple(sorted(m for m in found if m))
