"""The crash harness itself: one trial per crash point must show no violation."""

from __future__ import annotations

import pytest

from tests.harness.crash_table import CRASH_POINTS, run_table


@pytest.mark.slow
def test_one_trial_per_crash_point_has_no_violation() -> None:
    rows = run_table(1, CRASH_POINTS, log=lambda _m: None)
    assert [r[0] for r in rows] == CRASH_POINTS
    assert all(reached == 1 for _, _, reached, _ in rows), rows  # every point is really reached
    assert all(bad == 0 for *_, bad in rows), rows
