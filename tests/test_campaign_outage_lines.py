"""How many lines an outage gets: ``campaign run``'s patience, on a fake clock.

The real-server test (``tests/integration/test_campaign_outage.py``) shows a
12 s outage; a 75 s one and the reminder cadence of a long one are shown
here on a fake clock, so the suite does not wait minutes (timing only).
"""

from __future__ import annotations

import pytest

from al_loop.campaign import STILL_DOWN_EVERY, _Patience
from al_loop.errors import OracleError


class Down(OracleError):
    def __init__(self) -> None:
        super().__init__("failed")
        self.url, self.op, self.what, self.waited = "http://h", "list tasks", "ConnectError", 3.5


def outage(seconds: float, budget: float = 3600.0) -> list[str]:
    now = [0.0]
    lines: list[str] = []
    patience = _Patience(budget, STILL_DOWN_EVERY, clock=lambda: now[0])
    while now[0] < seconds:  # one failed step (3.5 s of retries), then the loop's 2 s pause
        now[0] += 3.5
        patience.failed(Down(), lines.append)
        now[0] += 2.0
    patience.answered(lines.append, "http://h")
    return lines


def test_a_75_s_outage_gets_exactly_one_line_down_and_one_back() -> None:
    lines = outage(75.0)
    assert len(lines) == 2, lines
    assert lines[0].startswith("Label Studio at http://h is down (ConnectError while trying to list tasks)")
    assert "the loop keeps waiting" in lines[0] and "rerun" not in lines[0]
    assert lines[1].startswith("Label Studio at http://h is back after 7")


def test_a_long_outage_gets_at_most_one_reminder_every_five_minutes() -> None:
    lines = outage(1800.0)
    reminders = [m for m in lines if "still down" in m]
    assert len(reminders) == 5, lines  # 30 min: reminders at about 5, 10, 15, 20, 25 min
    assert lines[-1].startswith("Label Studio at http://h is back after 30 min")


def test_the_budget_ends_the_outage_with_one_line() -> None:
    with pytest.raises(OracleError, match=r"has been down for 10 min \(--retry-budget 10 min\); campaign run "
                                          r"stopped with the state kept"):
        outage(3600.0, budget=600.0)
