"""Backend mode survives crashes: ``kill -9`` of ``al-loop serve`` in each round state, Label Studio restarted.

One trial of :mod:`tests.harness.backend_crash_table` per crash point (the
full table, 10 trials each, is in ``docs/reliability.md``), the server row,
and a whole 200-label backend campaign: a private Label Studio 1.23 that may
call 127.0.0.1 posts its own webhooks to a real ``al-loop serve`` process while
a simulated person answers through the API; the store must end as the
uninterrupted simulation ends (same selections, same labels), with every
answer once, one task per item, one view per round and one prediction per task
and model version.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.backend_crash_table import (
    BACKEND_POINTS,
    SERVER_EVENTS,
    BackendServer,
    Plan,
    _free_port,
    reference_for,
    run_trial,
)

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

#: the digits campaign of 200 labels: 20 seed items, then 9 rounds of 20
TWO_HUNDRED = Plan(init=20, batch=20, rounds=9)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendServer]:
    venv = Path(os.environ.get("AL_LOOP_LS_VENV", "/work/ls-server/venv"))
    if not (venv / "bin" / "label-studio").exists():
        pytest.fail(f"no Label Studio venv at {venv}; set AL_LOOP_LS_VENV to one (scripts/labelstudio.sh install)",
                    pytrace=False)
    folder = tmp_path_factory.mktemp("ls-backend-crash")
    (folder / "venv").symlink_to(venv)
    srv = BackendServer(folder)
    srv.script("start", LS_PORT=str(_free_port()))
    try:
        yield srv
    finally:
        srv.kill()


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[int, Plan], dict]:
    tmp = str(tmp_path_factory.mktemp("backend-crash-refs"))
    return {(seed, plan): reference_for(tmp, seed, plan) for seed, plan in [(0, Plan()), (1, Plan()),
                                                                            (0, TWO_HUNDRED)]}


@pytest.mark.parametrize("point", BACKEND_POINTS)
def test_kill_9_of_serve_then_a_restart_ends_as_the_simulation(server: BackendServer, refs: dict, point: str,
                                                                tmp_path: Path) -> None:
    trial = BACKEND_POINTS.index(point) % 2  # the 1st or 2nd pass of the point: round 0 or a later round
    killed, broken = run_trial(point, trial, str(tmp_path), server, refs[(trial % 3, Plan())], seed=trial % 3,
                               log=lambda _m: None)
    assert killed, f"serve was not killed at {point}"
    assert broken == []


@pytest.mark.parametrize("event", SERVER_EVENTS)
def test_label_studio_restarted_mid_campaign_and_serve_rides_it_out(server: BackendServer, refs: dict, event: str,
                                                                     tmp_path: Path) -> None:
    happened, broken = run_trial(None, 0, str(tmp_path), server, refs[(0, Plan())], event=event,
                                 log=lambda _m: None)
    assert happened, "Label Studio did not come back on its port"
    assert broken == []


def test_a_200_label_backend_campaign_equals_the_simulated_oracle(server: BackendServer, refs: dict,
                                                                  tmp_path: Path) -> None:
    """Every label came by webhook (or the reconciling pull), the rounds closed by serve's driver alone."""
    import sqlite3

    done, broken = run_trial(None, 0, str(tmp_path), server, refs[(0, TWO_HUNDRED)], plan=TWO_HUNDRED,
                             log=lambda _m: None)
    assert done and broken == []
    (db,) = tmp_path.glob("plain-*.sqlite")
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT count(*) FROM labels WHERE status = 'labeled'").fetchone()[0] == 200
    finally:
        con.close()
