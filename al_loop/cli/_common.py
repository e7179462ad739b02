"""What every CLI module shares: the consoles, the interrupt hint, small option parsers, the summary table.

Imports here are light (stdlib and rich): the CLI must start in well under a
second, so numpy, scikit-learn, torch and the store are imported by the
commands that use them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

console = Console(stderr=True, soft_wrap=True)
out_console = Console(width=None if sys.stdout.isatty() else 200)  # no truncated columns in pipes

#: what the running command would say if interrupted: (what was stopped, how to go on)
_INTERRUPT: dict[str, str | None] = {"what": None, "resume": None, "store": None}


def interrupt_hint(what: str, store: Path | str | None = None, resume: str | None = None) -> None:
    """Say what an interrupt (Ctrl-C, SIGTERM) of the current command stops and how to go on."""
    _INTERRUPT.update(what=what, store=str(store) if store is not None else None, resume=resume)


def reset_interrupt_hint() -> None:
    """Forget the hint of an earlier command (``main`` may run several times in one process, as in tests)."""
    _INTERRUPT.update(what=None, store=None, resume=None)


def interrupt_message(signal_name: str) -> str:
    """The one line printed when the command is interrupted."""
    what = _INTERRUPT["what"]
    if what is None:
        return f"interrupted ({signal_name})"
    parts = [f"interrupted ({signal_name}): {what} stopped"]
    if _INTERRUPT["store"]:
        parts.append(f"the store {_INTERRUPT['store']} is consistent (every committed step is kept)")
    if _INTERRUPT["resume"]:
        parts.append(f"run `{_INTERRUPT['resume']}` to go on")
    return "; ".join(parts)


def duration(text: str) -> float:
    """``10``, ``10s``, ``5m``, ``2h`` -> seconds."""
    from al_loop.errors import ConfigError

    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    t = text.strip().lower()
    try:
        return float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise ConfigError(f"bad duration {text!r}; write e.g. 10s, 5m or 2h") from None


def ids_option(ids: str | None, path: Path | None) -> list[int]:
    """Pool ids from ``--query-ids 3,17`` and/or a file with one id per line."""
    from al_loop.errors import ConfigError

    out: list[int] = []
    if ids:
        try:
            out += [int(v) for v in ids.replace(" ", "").split(",") if v]
        except ValueError:
            raise ConfigError(f"ids {ids!r} are not integers; pass comma-separated pool ids like 3,17,42") from None
    if path:
        if not path.exists():
            raise ConfigError(f"ids file {path} does not exist; give a file with one pool id per line")
        try:
            out += [int(line) for line in path.read_text().split() if line.strip()]
        except ValueError:
            raise ConfigError(f"{path} holds something that is not a pool id; give one integer per line") from None
    return out


def print_summary(dbs: list[str], metric: str = "accuracy", run_ids: list[int] | None = None) -> None:
    """The table of final ``metric`` and its AULC per strategy (mean ± std over seeds); the title names the metric.

    ``run_ids`` limits it to those runs (``resume`` shows the runs it finished).
    """
    from rich.table import Table
    from rich.text import Text

    from al_loop import reports

    groups = reports.group_curves(reports.load_curves(dbs, metric, run_ids=run_ids))
    table = Table(title=f"{metric}: final value and normalised area under the {metric} curve "
                        "(mean ± std over seeds)")
    for col in ("strategy", "seeds", "labels", f"final {metric}", "AULC"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for row in reports.summary_rows(groups):
        table.add_row(Text(str(row["strategy"])), str(row["seeds"]), str(row["labels"]),
                      f"{row['final_mean']:.4f} ± {row['final_std']:.4f}",
                      f"{row['aulc_mean']:.4f} ± {row['aulc_std']:.4f}")
    out_console.print(table)
