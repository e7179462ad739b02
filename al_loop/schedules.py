"""Batch-size schedules and stopping criteria (pure functions, recorded with the run).

Schedules (``RunConfig.batch_schedule``), for query round ``r >= 1``:

- ``"fixed"``: ``batch`` every round;
- ``"list:10,20,40"``: the r-th entry, the last one repeated after the list ends;
- ``"geometric:F"``: ``round(batch * F ** (r - 1))`` (at least 1).

Stopping criteria are checked after each evaluation, in this order: label
budget (``max_labels``), rounds, target metric on the validation split
(``stop_target`` on ``stop_metric``), plateau (no gain above ``plateau_delta``
on the validation metric over ``plateau_rounds`` rounds).
"""

from __future__ import annotations

from collections.abc import Sequence

from al_loop.errors import ConfigError


def parse_schedule(schedule: str) -> tuple[str, list[float]]:
    """Check a schedule string; return (kind, numbers)."""
    kind, _, rest = schedule.partition(":")
    if kind == "fixed" and not rest:
        return kind, []
    try:
        values = [float(v) for v in rest.split(",") if v.strip()]
    except ValueError:
        values = []
    if kind == "list" and values and all(v >= 1 and v == int(v) for v in values):
        return kind, values
    if kind == "geometric" and len(values) == 1 and values[0] > 0:
        return kind, values
    raise ConfigError(f"bad batch schedule {schedule!r}; use fixed, list:10,20,40 or geometric:1.5")


def batch_for_round(schedule: str, batch: int, round_: int) -> int:
    """Batch size of query round ``round_`` (1-based)."""
    kind, values = parse_schedule(schedule)
    if kind == "fixed":
        return batch
    if kind == "list":
        return int(values[min(round_ - 1, len(values) - 1)])
    return max(1, int(round(batch * values[0] ** (round_ - 1))))


def stop_reason(history: Sequence[float], stop_target: float | None, plateau_rounds: int | None,
                plateau_delta: float) -> str | None:
    """Why to stop after the latest evaluation, or None.

    Parameters
    ----------
    history : sequence of float
        Validation metric after each evaluation so far, oldest first.
    """
    if not history:
        return None
    if stop_target is not None and history[-1] >= stop_target:
        return f"target {stop_target} reached ({history[-1]:.4f})"
    if plateau_rounds is not None and len(history) > plateau_rounds:
        before = max(history[:-plateau_rounds])
        recent = max(history[-plateau_rounds:])
        if recent <= before + plateau_delta:
            return f"plateau: no gain above {plateau_delta} over {plateau_rounds} round(s)"
    return None
