"""Campaigns against a real Label Studio server: end to end, kill -9, faults, secrets, bad input.

Needs ``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY`` (see ``conftest.py``).
A simulated person (:class:`tests.harness.campaign_crash_table.TruthAnnotator`)
answers every task with the ground truth through the SDK, so a campaign must
end with exactly the labels and selections of ``al_loop.api.simulate`` on the
same configuration. Every test has its own project (unique title, deleted
afterwards) and its own store.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from al_loop import api
from al_loop.api import build_pool
from al_loop.campaign import CampaignOptions, campaign_status, init_campaign, run_campaign
from al_loop.errors import OracleError
from al_loop.store import Store
from oracles.label_studio import LabelStudioRetry
from tests.harness.campaign_crash_table import (
    BATCH,
    CLASSES,
    CRASH_POINTS,
    INIT,
    ROUNDS,
    TruthAnnotator,
    delete_project,
    format_table,
    observe,
    run_table,
    snapshot,
    violations,
)
from tests.integration.conftest import Server
from tests.integration.faultproxy import FaultProxy

pytestmark = pytest.mark.labelstudio

CLI = [sys.executable, "-c", "from al_loop.cli import main; main()"]
TARGET = INIT + ROUNDS * BATCH  # labels at the end of a 3-round campaign with the harness's batch sizes


# --------------------------------------------------------------------------- helpers


def cli(args: list[Any], env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else dict(os.environ))


def cli_popen(args: list[Any], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(CLI + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env if env is not None else dict(os.environ))


def one_line_error(proc: subprocess.CompletedProcess[str], secret: str) -> str:
    """The single stderr line of a command that failed as a user error (exit 2, no traceback, no key)."""
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, err[-2000:])
    assert "Traceback" not in err, err
    *before, line = err.splitlines()
    assert line.startswith("error: ") and all(b.startswith("labels ") for b in before), err  # progress bar only
    assert secret not in err and secret not in proc.stdout
    return line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def title() -> str:
    return f"al-loop-campaign-test-{uuid.uuid4().hex[:10]}"


@dataclass
class Campaign:
    db: str
    run_id: int
    project_id: int
    person: TruthAnnotator


@pytest.fixture
def projects(ls_server: Server) -> Iterator[list[int]]:
    """Project ids to delete after the test."""
    made: list[int] = []
    yield made
    for project_id in made:
        delete_project(ls_server.url, ls_server.api_key, project_id)


def open_campaign(db: str | Path, ls_server: Server, projects: list[int]) -> Campaign:
    """The campaign of a store made by ``campaign init``; registers its project for deletion."""
    store = Store(db, readonly=True)
    try:
        (run_id,) = [r.id for r in store.runs()]
        project_id = int(store.oracle_state(run_id, "project_id") or -1)
        pool = build_pool(store.config(run_id))
    finally:
        store.close()
    projects.append(project_id)
    return Campaign(str(db), run_id, project_id, TruthAnnotator(ls_server.url, ls_server.api_key, project_id, pool))


def new_campaign(ls_server: Server, projects: list[int], tmp_path: Path, url: str | None = None,
                 batch: int = BATCH, init: int = INIT, **extra: Any) -> Campaign:
    db = tmp_path / f"c-{uuid.uuid4().hex[:6]}.sqlite"
    init_campaign(str(db), data="digits", classes=CLASSES, strategy="margin", batch=batch, init=init,
                  options=CampaignOptions(url=url or ls_server.url, title=title(), kind="image"), **extra)
    return open_campaign(db, ls_server, projects)


@dataclass
class Driven:
    labels: int | None
    error: BaseException | None
    log: list[tuple[float, str]]
    observed: list[tuple[int, int]]


def drive(camp: Campaign, until: int, *, answer: bool = True, tick: Callable[[], None] | None = None,
          stop: threading.Event | None = None, timeout: float = 120, **kwargs: Any) -> Driven:
    """``run_campaign`` in a thread while the person answers in this one (``tick`` too, every 0.2 s)."""
    stop = stop or threading.Event()
    log: list[tuple[float, str]] = []
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["n"] = run_campaign(camp.db, until_labels=until, poll=0.2, should_stop=stop.is_set,
                                    log=lambda m: log.append((time.monotonic(), m)), **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    observed = [observe(camp.db)]
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while thread.is_alive():
        if answer:
            camp.person.answer_pending()
        if tick is not None:
            tick()
        observed.append(observe(camp.db))
        thread.join(0.2)
        if time.monotonic() > deadline:
            stop.set()
            thread.join(30)
            pytest.fail(f"the campaign did not finish within {timeout} s; log: {log[-5:]}")
    observed.append(observe(camp.db))
    return Driven(out.get("n"), out.get("error"), log, observed)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[Any, ...]]]:
    """Selections and labels of the simulated oracle with the harness's settings (seed 0)."""
    db = tmp_path_factory.mktemp("ref") / "ref.sqlite"
    api.simulate(str(db), dataset="digits", strategies=["margin"], seeds=[0], rounds=ROUNDS, batch=BATCH, init=INIT)
    return snapshot(str(db))


# --------------------------------------------------------------------------- 1. end to end


def test_three_round_campaign_through_the_cli_equals_the_simulation(ls_server: Server, projects: list[int],
                                                                     tmp_path: Path) -> None:
    db = tmp_path / "campaign.sqlite"
    init = cli(["campaign", "init", "--db", db, "--data", "digits", "--labels", ",".join(CLASSES),
                "--label-studio-url", ls_server.url, "--kind", "image", "--strategy", "margin", "--batch", 10,
                "--init", 20, "--title", title()])
    assert init.returncode == 0, init.stderr
    camp = open_campaign(db, ls_server, projects)
    observed = [observe(camp.db)]
    assert observed[0] == (0, 3)  # round 0 AWAITING: the seed batch is in Label Studio
    run = cli_popen(["campaign", "run", "--db", db, "--until-labels", 50, "--poll", "0.2s"])
    deadline = time.monotonic() + 150
    while run.poll() is None:
        camp.person.answer_pending()
        observed.append(observe(camp.db))
        time.sleep(0.2)
        if time.monotonic() > deadline:
            run.kill()
            pytest.fail("campaign run did not reach 50 labels in 150 s")
    _, err = run.communicate()
    assert run.returncode == 0, err[-2000:]
    assert "50 label(s)" in err

    status = cli(["campaign", "status", "--db", db])
    assert status.returncode == 0, status.stderr
    rows = campaign_status(str(db))
    assert [(r["round"], r["state"], r["selected"], r["labeled"], r["waiting"]) for r in rows] == [
        (0, "LABELED", 20, 20, 0), (1, "LABELED", 10, 10, 0), (2, "LABELED", 10, 10, 0), (3, "LABELED", 10, 10, 0)]

    ref_db = tmp_path / "simulated.sqlite"
    api.simulate(str(ref_db), dataset="digits", strategies=["margin"], seeds=[0], rounds=3, batch=10, init=20)
    got, want = snapshot(str(db)), snapshot(str(ref_db))
    assert got["selections"] == want["selections"]  # the same items, round by round
    assert got["labels"] == want["labels"]  # with the same labels
    con, ref = sqlite3.connect(db), sqlite3.connect(ref_db)
    metrics = "SELECT round, n_labels, accuracy FROM metrics WHERE round <= 3 ORDER BY round"
    got_m, want_m = con.execute(metrics).fetchall(), ref.execute(metrics).fetchall()
    assert [m[:2] for m in got_m] == [m[:2] for m in want_m] == [(1, 20), (2, 30), (3, 40)]
    assert [m[2] for m in got_m] == pytest.approx([m[2] for m in want_m])  # the same models
    con.close()
    ref.close()
    assert violations(str(db), camp.person, observed) == []


def test_a_stopping_rule_ends_the_campaign_where_it_ends_the_simulation(ls_server: Server, projects: list[int],
                                                                       tmp_path: Path) -> None:
    """``campaign init --stop``: the rule fires on the campaign's own signals, at the round a simulation stops."""
    rule = "classification-change:threshold=1.0"  # fires as soon as there is a previous model: round 2
    db = tmp_path / "campaign.sqlite"
    init = cli(["campaign", "init", "--db", db, "--data", "digits", "--labels", ",".join(CLASSES),
                "--label-studio-url", ls_server.url, "--kind", "image", "--strategy", "margin", "--batch", 10,
                "--init", 20, "--title", title(), "--stop", rule, "--stop-set", 300])
    assert init.returncode == 0, init.stderr
    camp = open_campaign(db, ls_server, projects)
    run = cli_popen(["campaign", "run", "--db", db, "--until-labels", 10_000, "--poll", "0.2s"])
    deadline = time.monotonic() + 150
    while run.poll() is None:
        camp.person.answer_pending()
        time.sleep(0.2)
        if time.monotonic() > deadline:
            run.kill()
            pytest.fail("the stopping rule did not end the campaign in 150 s")
    _, err = run.communicate()
    assert run.returncode == 0, err[-2000:]
    store = Store(db, readonly=True)
    finished = store.run(camp.run_id)
    signals = [(s.round, s.n_labels) for s in store.stop_signals(camp.run_id)]
    store.close()
    assert finished.status == "finished"
    assert finished.note.startswith("stopped at round 2 with 30 labels by classification-change: classification "
                                    "change ") and finished.note.endswith("of the stop set <= 100.00%"), finished.note
    assert signals == [(1, 20), (2, 30)]
    status = cli(["campaign", "status", "--db", db])
    assert status.returncode == 0 and f"run finished: {finished.note}" in " ".join(status.stdout.split())
    ref = tmp_path / "simulated.sqlite"
    (rid,) = api.simulate(str(ref), dataset="digits", strategies=["margin"], rounds=10, batch=10, init=20,
                          options={"stop": (rule,), "stop_set": 300})
    sim = Store(ref, readonly=True)
    assert sim.run(rid).note == finished.note
    camp_store = Store(db, readonly=True)
    for a, b in zip(sim.stop_signals(rid), camp_store.stop_signals(camp.run_id), strict=True):
        assert (a.round, a.n_labels, a.predictions) == (b.round, b.n_labels, b.predictions)  # the same models
        assert (a.kappa is None) == (b.kappa is None) and (a.kappa is None or a.kappa == pytest.approx(b.kappa))
    camp_store.close()
    sim.close()


# --------------------------------------------------------------------------- 2. kill -9 at each state


# From a LABELED round, the points in the order one round passes them: each run is killed at the next.
IN_ORDER = ["after_next_round", "during_train", "after_train", "before_select_commit", "after_select_commit",
            "before_send", "after_send", "after_dispatch_commit", "after_awaiting", "after_pull", "after_apply",
            "after_labeled"]


def test_kill_9_at_each_state_of_a_round_then_restart(ls_server: Server, projects: list[int], tmp_path: Path,
                                                      reference: dict[str, list[tuple[Any, ...]]]) -> None:
    assert sorted(IN_ORDER) == sorted(CRASH_POINTS)
    camp = new_campaign(ls_server, projects, tmp_path)
    first = drive(camp, INIT + BATCH)  # round 1 answered and LABELED
    assert first.error is None and first.labels == INIT + BATCH
    observed = first.observed
    assert observed[-1] == (1, 4)
    for point in IN_ORDER:
        proc = cli_popen(["campaign", "run", "--db", camp.db, "--poll", "0.2s"],
                         env={**os.environ, "AL_LOOP_CRASH_AT": f"{point}@1"})
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            camp.person.answer_pending()  # the person answers in between
            observed.append(observe(camp.db))
            time.sleep(0.2)
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
        assert proc.returncode == -signal.SIGKILL, f"{point} was not reached: {err[-1500:]}"
        observed.append(observe(camp.db))
        assert observed[-1][0] == 2, (point, observed[-1])  # killed in round 2
    assert observed[-1] == (2, 4)  # the last kill came right after round 2 was LABELED
    last = drive(camp, TARGET)
    assert last.error is None and last.labels == TARGET
    observed += last.observed
    assert violations(camp.db, camp.person, observed, reference) == []


# --------------------------------------------------------------------------- 3. faults at the campaign level


def test_campaign_survives_faults_without_duplicates_or_lost_labels(
        ls_server: Server, projects: list[int], tmp_path: Path,
        reference: dict[str, list[tuple[Any, ...]]]) -> None:
    retry = LabelStudioRetry(max_wait=2.0, initial_delay=0.2, max_delay=0.5, timeout=20)
    with FaultProxy(ls_server.url) as proxy:
        proxy.inject("commit_then_500", "POST", "/import")  # the seed batch
        camp = new_campaign(ls_server, projects, tmp_path, url=proxy.url, retry=retry)
        proxy.inject("commit_then_drop", "POST", "/import")  # round 1
        proxy.inject("commit_then_500", "POST", "/import")  # round 2
        proxy.inject("429", "GET", "/api/tasks", times=2, retry_after=0.5)
        outage: list[float] = []

        def tick() -> None:
            if not outage and observe(camp.db) == (2, 3):  # round 2 waits for people: the server goes away
                outage.append(time.monotonic())
                proxy.down_for(4.0)

        driven = drive(camp, TARGET, tick=tick, retry=retry)
        assert driven.error is None, driven.error
        assert driven.labels == TARGET
        imports = proxy.outcomes("/import")
    assert imports[:3] == ["committed 201, answered 500", "committed 201, dropped", "committed 201, answered 500"]
    assert len(imports) == ROUNDS + 1  # one import per round: a lost answer is looked up, never re-sent
    assert "429" in proxy.outcomes("/api/tasks")
    assert outage, "round 2 was never seen waiting"
    during = [m for t, m in driven.log if outage[0] <= t <= outage[0] + 6.0 and "Label Studio" in m]
    assert during and "is down" in during[0] and "keeps waiting" in during[0] and "state kept" in during[0], driven.log
    assert any("is back after" in m for _, m in driven.log), driven.log
    assert all("\n" not in m for _, m in driven.log)
    assert violations(camp.db, camp.person, driven.observed, reference) == []


# --------------------------------------------------------------------------- 4. secrets


def test_the_api_key_is_kept_out_of_the_store_outputs_and_errors(ls_server: Server, projects: list[int],
                                                                tmp_path: Path) -> None:
    key = ls_server.api_key
    key_file = tmp_path / "ls-token"
    key_file.write_text(key + "\n")
    env = {k: v for k, v in os.environ.items() if k != "LABEL_STUDIO_API_KEY"}  # only the file has the key
    db = tmp_path / "secret.sqlite"
    init = cli(["campaign", "init", "--db", db, "--data", "digits", "--labels", ",".join(CLASSES),
                "--label-studio-url", ls_server.url, "--batch", BATCH, "--init", INIT, "--title", title(),
                "--api-key-file", key_file], env=env)
    assert init.returncode == 0, init.stderr
    camp = open_campaign(db, ls_server, projects)
    files_seen: set[str] = set()

    def scan() -> None:  # the store's files, -wal and -shm included, while the loop writes
        for f in tmp_path.glob("secret.sqlite*"):
            files_seen.add(f.name)
            assert key.encode() not in f.read_bytes(), f"the key is in {f.name}"

    run = cli_popen(["campaign", "run", "--db", db, "--until-labels", INIT + BATCH, "--poll", "0.2s"], env=env)
    deadline = time.monotonic() + 90
    while run.poll() is None and time.monotonic() < deadline:
        camp.person.answer_pending()
        scan()
        time.sleep(0.2)
    out, err = run.communicate(timeout=30)
    assert run.returncode == 0, err[-2000:]
    assert key not in out and key not in err
    scan()
    assert "secret.sqlite-wal" in files_seen
    for args in (["campaign", "status", "--db", db], ["status", "--db", db]):
        shown = cli(args, env=env)
        assert shown.returncode == 0, shown.stderr
        assert key not in shown.stdout and key not in shown.stderr
    store = Store(db, readonly=True)
    params = store.config(camp.run_id).oracle_params
    store.close()
    assert params["api_key_file"] == str(key_file) and params["api_key_env"] is None  # only where the key is

    wrong = "0123456789abcdef0123456789abcdef01234567"
    key_file.write_text(wrong + "\n")  # the file now holds a wrong key: refused at once, exit 2, one line
    refused = cli(["campaign", "run", "--db", db, "--poll", "0.2s"], env=env)
    msg = one_line_error(refused, key)
    assert wrong not in msg and "HTTP 401" in msg and str(key_file) in msg and "LABEL_STUDIO_API_KEY" not in msg
    key_file.write_text(key)

    base = ["campaign", "init", "--db", tmp_path / "other.sqlite", "--data", "digits", "--labels",
            ",".join(CLASSES), "--label-studio-url", ls_server.url, "--title", title()]
    unset = one_line_error(cli(base + ["--api-key-env", "AL_LOOP_TEST_UNSET_KEY"], env=env), key)
    assert "AL_LOOP_TEST_UNSET_KEY" in unset
    bad = one_line_error(cli(base, env={**env, "LABEL_STUDIO_API_KEY": wrong}), key)
    assert "LABEL_STUDIO_API_KEY" in bad and "HTTP 401" in bad and wrong not in bad
    assert not (tmp_path / "other.sqlite").exists()


def _leased(db: str) -> bool:
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute("SELECT count(*) FROM leases").fetchone()[0] > 0
    finally:
        con.close()


def test_ctrl_c_stops_campaign_run_with_rc_130_and_keeps_the_round(ls_server: Server, projects: list[int],
                                                                   tmp_path: Path) -> None:
    camp = new_campaign(ls_server, projects, tmp_path)
    before = observe(camp.db)
    run = cli_popen(["campaign", "run", "--db", camp.db, "--until-labels", 10_000, "--poll", "0.2s"])
    # waiting for people (nobody answers): the run holds its lease once it is driving the campaign, after
    # the command set its Ctrl-C message; a fixed sleep was too short on a loaded machine (imports are slow)
    deadline = time.monotonic() + 60
    while not _leased(camp.db) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    assert run.poll() is None, run.communicate()[1][-2000:]
    assert _leased(camp.db), "campaign run did not take the run's lease within 60 s"
    t0 = time.monotonic()
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=30)
    assert time.monotonic() - t0 < 10
    assert run.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted (Ctrl-C): campaign run stopped"), last
    assert f"`al-loop campaign run --db {camp.db}`" in last
    assert observe(camp.db) == before  # the waiting round is as it was


# --------------------------------------------------------------------------- 5. bad input


def test_unreachable_server_at_init_writes_nothing(ls_server: Server, tmp_path: Path) -> None:
    db = tmp_path / "never.sqlite"
    args = ["campaign", "init", "--db", db, "--data", "digits", "--labels", ",".join(CLASSES), "--title", title()]
    t0 = time.monotonic()
    down = cli(args + ["--label-studio-url", f"http://127.0.0.1:{free_port()}"])
    msg = one_line_error(down, ls_server.api_key)
    assert "failed to list projects" in msg and "check the server" in msg
    assert time.monotonic() - t0 < 60  # a bounded wait, not the loop's patience
    no_scheme = one_line_error(cli(args + ["--label-studio-url", "127.0.0.1:8080"]), ls_server.api_key)
    assert "is not an http(s) URL" in no_scheme
    assert not db.exists() and not list(tmp_path.glob("never.sqlite*"))


def test_wrong_key_at_init_writes_nothing(ls_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "0123456789abcdef0123456789abcdef01234567")
    db = tmp_path / "never.sqlite"
    with pytest.raises(OracleError, match=r"HTTP 401.*LABEL_STUDIO_API_KEY") as info:
        init_campaign(str(db), data="digits", classes=CLASSES, strategy="margin", batch=BATCH, init=INIT,
                      options=CampaignOptions(url=ls_server.url, title=title()))
    assert getattr(info.value, "status", None) == 401 and "\n" not in str(info.value)
    assert not db.exists()


def test_project_deleted_under_a_running_campaign(ls_server: Server, projects: list[int], tmp_path: Path) -> None:
    camp = new_campaign(ls_server, projects, tmp_path)

    def delete_when_round_1_waits() -> None:
        if observe(camp.db) == (1, 3) and camp.project_id in projects:
            delete_project(ls_server.url, ls_server.api_key, camp.project_id)
            projects.remove(camp.project_id)

    def people() -> None:  # the seed batch is answered, round 1 is not
        if camp.project_id in projects:  # not deleted yet
            camp.person.answer_pending(only=lambda t: t.data["al_round"] == 0)
            delete_when_round_1_waits()

    driven = drive(camp, TARGET, answer=False, tick=people, timeout=60)
    assert isinstance(driven.error, OracleError), driven
    msg = str(driven.error)
    assert "\n" not in msg and "HTTP 404" in msg and f"project {camp.project_id}" in msg and "gone" in msg
    assert observe(camp.db) == (1, 3)  # the store keeps its state
    con = sqlite3.connect(camp.db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM labels WHERE status = 'labeled'").fetchone()[0] == INIT
    assert con.execute("SELECT count(*) FROM leases").fetchone()[0] == 0  # released
    con.close()
    again = one_line_error(cli(["campaign", "run", "--db", camp.db, "--poll", "0.2s"]), ls_server.api_key)
    assert "HTTP 404" in again and "gone" in again


def test_a_task_deleted_by_a_person_is_sent_again_once_on_restart(
        ls_server: Server, projects: list[int], tmp_path: Path, reference: dict[str, list[tuple[Any, ...]]]) -> None:
    """Documented behaviour: a running loop keeps waiting for a deleted task (``status`` counts it as
    waiting; a deleted answer is withdrawn from the store); the next ``campaign run`` finds the key
    missing and sends it again, once, with the same key."""
    camp = new_campaign(ls_server, projects, tmp_path)
    person = camp.person.person
    stop = threading.Event()
    deleted: dict[str, int] = {}

    def people() -> None:
        if deleted:  # wait until the loop has withdrawn the deleted answer, then stop it
            store = Store(camp.db, readonly=True)
            try:
                if store.round_progress(camp.run_id, 1)["labeled"] == BATCH - 2:
                    stop.set()
            finally:
                store.close()
            return
        camp.person.answer_pending(only=lambda t: t.data["al_round"] != 1)
        if observe(camp.db) != (1, 3):
            return
        round1 = sorted((t for t in person.all_tasks() if t.data["al_round"] == 1), key=lambda t: t.id)
        answered, unanswered = round1[0], round1[1]
        camp.person.answer_pending(only=lambda t: t.id != unanswered.id)  # all but one answered
        time.sleep(0.6)  # the loop pulls the answers
        for task in (answered, unanswered):  # a person deletes an answered and an unanswered task
            person.client.tasks.delete(id=str(task.id))
            deleted[task.data["al_key"]] = int(task.id)
        camp.person.given.pop(int(answered.id))  # its answer went with it

    first = drive(camp, TARGET, answer=False, tick=people, stop=stop, timeout=60)
    assert first.error is None and stop.is_set()
    assert first.observed[-1] == (1, 3)  # still waiting for the deleted items
    assert all(n == 0 for n in (len(person.tasks(k)) for k in deleted))
    again = drive(camp, TARGET)
    assert again.error is None and again.labels == TARGET
    assert any(f"{len(deleted)} item(s) not at the oracle; sending them again" in m for _, m in again.log)
    for key, old_id in deleted.items():
        (task,) = person.tasks(key)  # sent again exactly once, with the same key
        assert int(task.id) != old_id
    assert violations(camp.db, camp.person, first.observed + again.observed, reference) == []


# --------------------------------------------------------------------------- 6. the crash harness


def test_campaign_crash_harness_one_trial_per_point(ls_server: Server) -> None:
    lines: list[str] = []
    rows = run_table(1, CRASH_POINTS, ls_server.url, ls_server.api_key, log=lines.append)
    table = format_table(rows)
    assert [r[0] for r in rows] == CRASH_POINTS
    assert all(reached == 1 for _, _, reached, _ in rows), (table, lines)  # every point is really reached
    assert all(bad == 0 for *_, bad in rows), (table, lines)
