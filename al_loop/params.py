"""``--param KEY=VALUE`` / ``--param NAME.KEY=VALUE``: strategy parameters from the command line."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from al_loop.errors import ConfigError
from al_loop.registry import STRATEGIES


def _coerce(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def parse_params(items: list[str], strategies: list[str]) -> dict[str, dict[str, Any]]:
    """``--param key=value`` (every strategy with that field) or ``--param name.key=value``.

    Returns ``{strategy name: {field: value}}`` with an entry for every name in ``strategies``.
    """
    result: dict[str, dict[str, Any]] = {s: {} for s in strategies}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--param {item!r} is not KEY=VALUE; write e.g. --param k=10 or --param cal.k=10")
        key, value = item.split("=", 1)
        target, _, field = key.rpartition(".")
        targets = [target] if target else strategies
        hit = False
        for name in targets:
            if name not in result:
                raise ConfigError(f"--param {item!r} names strategy {name!r} that is not run; run it with --strategy")
            cls = STRATEGIES.get(name)
            fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
            if field in fields:
                result[name][field] = _coerce(value)
                hit = True
            elif target:
                raise ConfigError(f"strategy {name!r} has no parameter {field!r}; valid: {sorted(fields) or 'none'}")
        if not hit:
            raise ConfigError(f"no strategy among {strategies} has a parameter {field!r}")
    return result
