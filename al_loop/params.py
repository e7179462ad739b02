"""``--param KEY=VALUE`` / ``--param NAME.KEY=VALUE``: strategy parameters from the command line."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from typing import Any

from al_loop.errors import ConfigError
from al_loop.registry import STRATEGIES

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_NAMES = {bool: "a bool", int: "an int", float: "a float", str: "a string", dict: "a JSON object",
          type(None): "none"}


def _coerce(value: str) -> Any:
    """A value whose field type is unknown: JSON if it parses, else the text."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


class _Mismatch(ValueError):
    """``value`` does not fit the type: ``want`` names it, ``fix`` says what to write."""

    def __init__(self, want: str, fix: str) -> None:
        super().__init__(want)
        self.want, self.fix = want, fix


def _type_name(tp: Any) -> str:
    if tp in _NAMES:
        return _NAMES[tp]
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        return "a comma-separated list"
    return str(tp)


def coerce(value: str, tp: Any) -> Any:
    """``value`` (the text after ``=``) as the field type ``tp``.

    ``bool`` takes true/false/1/0/yes/no; ``int`` a whole number; ``float`` a
    finite number; ``str`` the text (surrounding quotes removed); ``X | None``
    also ``none``/``null``; ``Literal[...]`` one of its values; ``tuple``/
    ``list`` comma-separated items (or a JSON list); ``dict`` a JSON object.
    Unknown types (``Any``) fall back to JSON, else the text.

    Raises
    ------
    _Mismatch
        The value does not fit; the caller words the one-line error.
    """
    text = value.strip()
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is None:
        return _coerce(text)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        options = [a for a in args if a is not type(None)]
        for option in sorted(options, key=lambda a: a is str):  # the text fits str: try it last
            try:
                return coerce(value, option)
            except _Mismatch:
                continue
        names = " or ".join(_type_name(a) for a in args)
        raise _Mismatch(names, "write e.g. " + " or ".join(_example(a) for a in args))
    if origin is typing.Literal:
        for allowed in args:
            try:
                if coerce(value, type(allowed)) == allowed:
                    return allowed
            except _Mismatch:
                continue
        choices = [str(a) for a in args]
        close = difflib.get_close_matches(text, choices, n=1)
        raise _Mismatch(_type_name(tp), (f"did you mean {close[0]}? " if close else "") + "write one of " +
                        ", ".join(choices))
    if origin in (tuple, list):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        items = [json.dumps(v) if not isinstance(v, str) else v for v in parsed] if isinstance(parsed, list) else [
            part for part in text.split(",") if part.strip()]
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise _Mismatch(f"{len(args)} comma-separated values", f"write {len(args)} values like "
                                + ",".join(_example(a) for a in args))
            kinds = list(args)
        else:
            kinds = [args[0] if args else Any] * len(items)
        out = [coerce(item, kind) for item, kind in zip(items, kinds, strict=True)]
        return tuple(out) if origin is tuple else out
    if tp is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise _Mismatch("a bool", "write true or false")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise _Mismatch("an int", "write a whole number like 10") from None
    if tp is float:
        try:
            number = float(text)
        except ValueError:
            raise _Mismatch("a float", "write a number like 0.5") from None
        if not math.isfinite(number):
            raise _Mismatch("a finite float", "write a number like 0.5")
        return number
    if tp is str:
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            return text[1:-1]
        return value
    if tp is dict or origin is dict:
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise _Mismatch("a JSON object", 'write e.g. {"k": 10} (quoted for the shell)')
        return parsed
    return _coerce(text)


def _example(tp: Any) -> str:
    return {bool: "true", int: "10", float: "0.5", str: "text", type(None): "none"}.get(tp, "a value")


def field_types(cls: type) -> dict[str, Any]:
    """``{field: type}`` of a dataclass (``Any`` where an annotation cannot be resolved)."""
    fields = dataclasses.fields(cls)
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation naming something only a type checker sees
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in fields}


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
            types_ = field_types(cls) if dataclasses.is_dataclass(cls) else {}
            if field in types_:
                try:
                    result[name][field] = coerce(value, types_[field])
                except _Mismatch as exc:
                    raise ConfigError(f"--param {name}.{field}={value!r} is not {exc.want}; {exc.fix}") from None
                hit = True
            elif target:
                close = difflib.get_close_matches(field, list(types_), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ConfigError(f"strategy {name!r} has no parameter {field!r}; {hint}"
                                  f"valid: {sorted(types_) or 'none'}")
        if not hit:
            known = {f: n for n in strategies for f in (field_types(STRATEGIES.get(n))
                                                        if dataclasses.is_dataclass(STRATEGIES.get(n)) else {})}
            close = difflib.get_close_matches(field, list(known), n=1)
            hint = f"; did you mean {close[0]!r} ({known[close[0]]})?" if close else ""
            raise ConfigError(f"no strategy among {strategies} has a parameter {field!r}{hint}")
    return result
