"""What ``al-loop strategies`` prints: each strategy's summary, its "use when" and its parameters.

Strategy classes are dataclasses whose fields are their parameters; their
docstrings are NumPy style with reStructuredText roles. A terminal shows
neither roles nor literals, so :func:`plain_text` strips them (````x````,
:class:`~a.B`, :math:`x`, ``*x*``) and :func:`parameter_docs` reads the
``Parameters`` section into one plain line per parameter.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass
from typing import Any

_ROLE = re.compile(r":[a-zA-Z]+(?::[a-zA-Z]+)?:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``(.+?)``")
_INTERPRETED = re.compile(r"`([^`]+)`_?")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"(])")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")


def plain_text(text: str) -> str:
    """``text`` without reStructuredText markup, whitespace collapsed to single spaces.

    >>> plain_text("uses ``view.embed`` (see :class:`~al_loop.view.ModelView`, :math:`k^2`)")
    'uses view.embed (see ModelView, k^2)'
    """
    def role(m: re.Match[str]) -> str:
        target = m.group(1).strip()
        return target.rsplit(".", 1)[-1] if m.group(0).split("`", 1)[1].startswith("~") else target

    out = _ROLE.sub(role, text)
    out = _LITERAL.sub(r"\1", out)
    out = _INTERPRETED.sub(r"\1", out)
    out = _STRONG.sub(r"\1", out)
    out = _EMPHASIS.sub(r"\1", out)
    return " ".join(out.split())


def summary_line(cls: type) -> str:
    """The first paragraph of the class docstring as one plain line ('' without a docstring)."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    return plain_text(doc.split("\n\n", 1)[0]) if doc else ""


def parameter_docs(cls: type) -> dict[str, str]:
    """``{parameter: plain description}`` from the ``Parameters`` section of the class docstring.

    ``a, b : see x`` documents both ``a`` and ``b``; a parameter documented by
    its type only (``measure : {"entropy", "margin"}``) gets the type.
    """
    lines = inspect.cleandoc(cls.__doc__ or "").splitlines()
    try:
        start = next(i for i, ln in enumerate(lines[:-1])
                     if ln.strip() == "Parameters" and set(lines[i + 1].strip()) == {"-"}) + 2
    except StopIteration:
        return {}
    docs: dict[str, str] = {}
    names: list[str] = []
    kind, body = "", []

    def flush() -> None:
        text = plain_text(" ".join(body)) or plain_text(kind)
        for name in names:
            docs[name] = text

    for i in range(start, len(lines)):
        line = lines[i]
        if line.strip() and not line.startswith(" "):
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if nxt and set(nxt) == {"-"}:  # the next section's heading
                break
            flush()
            head, _, kind = line.partition(":")
            names = [n.strip() for n in head.split(",") if n.strip()]
            kind, body = kind.strip(), []
        elif line.strip():
            body.append(line.strip())
    flush()
    return docs


@dataclass(frozen=True)
class ParameterHelp:
    """One parameter: its name, default (as written on the command line) and description."""

    name: str
    default: str
    doc: str


@dataclass(frozen=True)
class StrategyHelp:
    """What ``al-loop strategies`` says about one registered strategy."""

    name: str
    summary: str
    use_when: str
    needs: str
    parameters: tuple[ParameterHelp, ...]
    #: ``single-label``, ``multi-label`` or both (the strategy's ``tasks``)
    tasks: str = "single-label"


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "(required)"
    if isinstance(value, str):
        return value
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if not isinstance(value, dict) or value else "{}"


def strategy_help(name: str, cls: type) -> StrategyHelp:
    """Describe the strategy class ``cls`` registered as ``name``.

    ``needs`` comes from an instance with default parameters (what the
    learner must provide; ``?`` when the defaults cannot be built);
    ``use_when`` from the class's ``use_when`` attribute (empty when a plugin
    has none).
    """
    try:
        needs = ", ".join(sorted(cls().requires)) or "-"
    except Exception:  # a plugin whose defaults need arguments: still listed
        needs = "?"
    docs = parameter_docs(cls)
    params = tuple(ParameterHelp(f.name, _default(f), docs.get(f.name, ""))
                   for f in (dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ()) if f.init)
    kinds = getattr(cls, "tasks", frozenset({"single"}))
    tasks = ", ".join(f"{k}-label" for k in ("single", "multi") if k in kinds) or "?"
    return StrategyHelp(name=name, summary=summary_line(cls), use_when=plain_text(getattr(cls, "use_when", "") or ""),
                        needs=needs, parameters=params, tasks=tasks)


def format_help(info: StrategyHelp) -> list[str]:
    """The lines ``al-loop strategies`` prints for one strategy."""
    out = [f"{info.name}  (needs {info.needs}; {info.tasks})", f"  {info.summary}"]
    if info.use_when:
        out.append(f"  use when: {info.use_when}")
    if not info.parameters:
        out.append("  parameters: none")
        return out
    out.append("  parameters (--param " + f"{info.name}.NAME=VALUE):")
    width = max(len(f"{p.name}={p.default}") for p in info.parameters)
    for p in info.parameters:
        left = f"{p.name}={p.default}"
        out.append(f"    {left:<{width}}  {first_sentence(p.doc)}".rstrip())
    return out


def first_sentence(text: str) -> str:
    """Up to the first full stop followed by a capital (a terminal line, not the whole paragraph)."""
    return _SENTENCE_END.split(text, maxsplit=1)[0]
