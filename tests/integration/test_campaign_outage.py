"""Campaigns against a real Label Studio: outages, Ctrl-C during one, final pulls, incremental pulls, withdrawn answers.

The outages are made by :class:`tests.integration.faultproxy.FaultProxy` in
front of the real server (connections refused for N seconds, then accepted
again); the lines are read from the stderr of the real CLI.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from al_loop.api import build_learner, build_pool, build_strategy
from al_loop.campaign import _oracle_for, campaign_status, resolve_api_key
from al_loop.controller import Controller, withdrawn_ids
from al_loop.store import Store
from tests.harness.campaign_crash_table import BATCH, INIT, observe
from tests.integration.conftest import Server
from tests.integration.faultproxy import FaultProxy
from tests.integration.test_campaign import CLI, cli, drive, new_campaign, one_line_error, projects  # noqa: F401

pytestmark = pytest.mark.labelstudio


class Lines:
    """The stderr lines of a running CLI, each with the monotonic time it arrived."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def about_the_server(self, since: float = 0.0) -> list[tuple[float, str]]:
        return [(t, m) for t, m in list(self.lines) if t >= since and m.startswith("Label Studio at")]

    def wait_for(self, fragment: str, since: float, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, m in self.about_the_server(since):
                if fragment in m:
                    return t
            time.sleep(0.05)
        pytest.fail(f"no line with {fragment!r} within {timeout} s; lines: {self.lines[-8:]}")

    def join(self) -> None:
        self._thread.join(10)


def start_run(db: str, *extra: Any) -> tuple[subprocess.Popen[str], Lines]:
    proc = subprocess.Popen(CLI + ["campaign", "run", "--db", db, "--poll", "0.2s", *map(str, extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    return proc, Lines(proc)


def test_an_outage_gets_one_line_down_one_line_back_and_ctrl_c_within_a_second(
        ls_server: Server, projects: list[int], tmp_path: Path) -> None:  # noqa: F811
    with FaultProxy(ls_server.url) as proxy:
        camp = new_campaign(ls_server, projects, tmp_path, url=proxy.url)
        before = observe(camp.db)
        proc, lines = start_run(camp.db)
        try:
            time.sleep(3)  # the loop waits for people (nobody answers) and polls through the proxy
            assert proc.poll() is None, lines.lines[-5:]
            down_at = time.monotonic()
            proxy.down_for(12.0)
            told = lines.wait_for("is down", down_at, 15)
            assert told - down_at <= 10.0, told - down_at  # within 10 s of the server going away
            back = lines.wait_for("is back", down_at, 30)
            assert back - down_at >= 12.0
            said = [m for _, m in lines.about_the_server(down_at)]
            assert len(said) == 2, said  # exactly two lines: no spam, no "rerun"
            assert "the loop keeps waiting" in said[0] and "rerun" not in said[0] and "retrying in" not in said[0]
            assert said[1].startswith(f"Label Studio at {proxy.url} is back after")

            second = time.monotonic()  # a second outage: Ctrl-C while the loop waits for the server
            proxy.down_for(60.0)
            lines.wait_for("is down", second, 15)
            time.sleep(0.5)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=30)
            stopped = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
        lines.join()
    assert rc == 130, lines.lines[-5:]
    assert stopped < 1.5, stopped  # honoured within about a second, during the outage
    last = lines.lines[-1][1]
    assert last.startswith("interrupted (Ctrl-C): campaign run stopped") and "Traceback" not in last
    assert not any("Traceback" in m for _, m in lines.lines)
    assert observe(camp.db) == before  # the waiting round is as it was


def test_the_retry_budget_ends_a_long_outage_with_one_line_and_the_state_kept(
        ls_server: Server, projects: list[int], tmp_path: Path) -> None:  # noqa: F811
    with FaultProxy(ls_server.url) as proxy:
        camp = new_campaign(ls_server, projects, tmp_path, url=proxy.url)
        before = observe(camp.db)
        proxy.down_for(60.0)
        t0 = time.monotonic()
        proc = cli(["campaign", "run", "--db", camp.db, "--poll", "0.2s", "--retry-budget", "5s"], timeout=60)
        took = time.monotonic() - t0
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    said = [m for m in proc.stderr.splitlines() if "Label Studio at" in m]
    assert len(said) == 2 and "is down" in said[0], said  # the outage said once, then the end
    line = said[1]
    assert line.startswith("error: ") and "has been down for" in line and "(--retry-budget 5 s)" in line and "state kept" in line, line
    assert took < 30, took
    assert observe(camp.db) == before
    bad = one_line_error(cli(["campaign", "run", "--db", camp.db, "--retry-budget", "soon"]), ls_server.api_key)
    assert "bad duration 'soon'" in bad
    zero = one_line_error(cli(["campaign", "run", "--db", camp.db, "--retry-budget", "0s"]), ls_server.api_key)
    assert "--retry-budget must be a positive duration" in zero


def _labeled(db: str) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT count(*) FROM labels WHERE status = 'labeled'").fetchone()[0])
    finally:
        con.close()


def _to_round(camp: Any, idx: int) -> None:
    """Drive the campaign until round ``idx`` waits for people, answering every earlier round."""
    stop = threading.Event()

    def people() -> None:
        camp.person.answer_pending(only=lambda t: t.data["al_round"] < idx)
        if observe(camp.db) == (idx, 3):
            stop.set()

    driven = drive(camp, 10_000, answer=False, tick=people, stop=stop, timeout=90)
    assert driven.error is None and observe(camp.db) == (idx, 3), driven


def test_until_labels_pulls_the_open_rounds_once_more_and_campaign_pull_collects(
        ls_server: Server, projects: list[int], tmp_path: Path) -> None:  # noqa: F811
    camp = new_campaign(ls_server, projects, tmp_path)
    _to_round(camp, 1)
    assert _labeled(camp.db) == INIT
    # Answers given after the loop's last pull: the next run stops at once (--until-labels reached) ...
    camp.person.answer_pending(only=lambda t: t.data["al_round"] == 1 and t.data["al_pool_id"] % 3 != 0)
    late = sum(1 for p, _ in camp.person.given.values()) - INIT
    assert 0 < late < BATCH
    run = cli(["campaign", "run", "--db", camp.db, "--until-labels", INIT, "--poll", "0.2s"])
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"a final pull of round(s) 1 got {late} new answer(s); stopping" in run.stderr, run.stderr[-2000:]
    assert _labeled(camp.db) == INIT + late  # ... but only after pulling them
    assert observe(camp.db) == (1, 3)

    camp.person.answer_pending()  # the rest of round 1, collected without continuing the loop
    pulled = cli(["campaign", "pull", "--db", camp.db])
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    assert f"pulled 2 round(s): {BATCH - late} new label(s), 0 skipped, 0 quarantined, 0 withdrawn" in pulled.stderr
    assert _labeled(camp.db) == INIT + BATCH
    assert observe(camp.db) == (1, 3)  # no training, no selection, the round not closed
    missing = one_line_error(cli(["campaign", "pull", "--db", tmp_path / "nope.sqlite"]), ls_server.api_key)
    assert "nope.sqlite does not exist" in missing and not (tmp_path / "nope.sqlite").exists()


def test_pulls_are_incremental_and_a_withdrawn_answer_of_a_closed_round_is_shown(
        ls_server: Server, projects: list[int], tmp_path: Path) -> None:  # noqa: F811
    camp = new_campaign(ls_server, projects, tmp_path)
    _to_round(camp, 2)
    store = Store(camp.db)
    try:
        params = store.config(camp.run_id).oracle_params
        oracle = _oracle_for(store, camp.run_id, resolve_api_key(params.get("api_key_env"), None))
        config = store.config(camp.run_id)
        pool = build_pool(config)
        said: list[str] = []
        ctl = Controller(store, camp.run_id, pool, build_learner(config.learner, pool),
                         build_strategy(config.strategy, config.strategy_params), oracle, log=said.append)
        pulled: list[int] = []
        collect = oracle.collect

        def counting(run_id: int, round_: int) -> Any:  # the real call, counted
            pulled.append(round_)
            return collect(run_id, round_)

        oracle.collect = counting  # type: ignore[method-assign]
        ctl.full_pull_every = 3600.0
        ctl._pull_all(2)
        assert pulled == [0, 1]  # the first pull of a process reads every closed round

        person = camp.person.person
        round0 = sorted((t for t in person.all_tasks() if t.data["al_round"] == 0), key=lambda t: t.id)
        edited, deleted = round0[0], round0[1]
        (ann,) = person.tasks(edited.data["al_key"])[0].annotations
        other = next(c for c in camp.person.classes if c != camp.person.label_of(edited.data["al_pool_id"]))
        person.edit(int(ann["id"] if isinstance(ann, dict) else ann.id), other)  # a person corrects an old answer ...
        person.client.tasks.delete(id=str(deleted.id))  # ... and deletes an answered task of round 0

        pulled.clear()
        ctl._pull_all(2)
        assert pulled == [1]  # incremental: only the round just closed (round 0 has nothing unanswered)
        rows = {r.pool_id: r for r in store.labels(camp.run_id)}
        assert rows[edited.data["al_pool_id"]].label != other  # not yet: applied at the slower full pull
        assert deleted.data["al_pool_id"] in rows

        pulled.clear()
        ctl.full_pull_every = 0.0  # the full pull is due
        ctl._pull_all(2)
        assert pulled == [0, 1]
        rows = {r.pool_id: r for r in store.labels(camp.run_id)}
        assert rows[edited.data["al_pool_id"]].label == other  # the edit is applied, later
        gone = int(deleted.data["al_pool_id"])
        assert gone not in rows and withdrawn_ids(store, camp.run_id, 0) == [gone]
        assert any(f"round 0: 1 answer(s) withdrawn in Label Studio (pool ids {gone})" in m for m in said), said
        oracle.close()
    finally:
        store.close()
    (row0,) = [r for r in campaign_status(camp.db) if r["round"] == 0]
    assert row0["withdrawn"] == 1 and row0["waiting"] == 0 and row0["labeled"] == INIT - 1
    shown = cli(["campaign", "status", "--db", camp.db])
    assert shown.returncode == 0 and "withdrawn" in shown.stdout, shown.stderr
    assert person.tasks(deleted.data["al_key"]) == []  # not asked again: the item leaves the campaign, said
