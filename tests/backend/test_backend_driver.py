"""The backend driver (``al_loop.backend_driver``): rounds advanced by events, a real store.

People are played by a :class:`~oracles.labels_file.LabelsFileOracle` whose
answers are filled in between calls (an asynchronous oracle); the same driver
against a real Label Studio server is in ``tests/integration/test_backend_webhook.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from al_loop import api
from al_loop.backend_driver import BackendDriver
from al_loop.controller import Controller
from al_loop.errors import ConfigError
from al_loop.store import Store
from al_loop.types import Answer
from oracles.labels_file import LabelsFileOracle


def setup(path: Path, oracle: LabelsFileOracle | None = None, **kw: object) -> tuple[BackendDriver, LabelsFileOracle]:
    new = not path.exists()
    store = Store(path)
    config = api.RunConfig(dataset="iris", strategy="margin", rounds=3, batch=4, init=6)
    run = store.create_run(config) if new else store.runs()[-1].id
    pool = api.build_pool(config)
    oracle = oracle or LabelsFileOracle(pool)
    ctl = Controller(store, run, pool, api.build_learner("logreg", pool), api.build_strategy("margin", {}), oracle)
    return BackendDriver(ctl, **kw), oracle  # type: ignore[arg-type]


def answer(driver: BackendDriver, oracle: LabelsFileOracle, idx: int, n: int | None = None) -> None:
    """People answer ``n`` (default all) items of round ``idx`` with their true classes."""
    ids = [r.pool_id for r in driver.store.outbox(driver.run_id, idx)][:n]
    truth = driver.ctl.pool.hidden_labels(np.asarray(ids))
    for pid, y in zip(ids, truth, strict=True):
        oracle.answers[pid] = Answer(pid, "labeled", driver.ctl.pool.classes[int(y)], annotation_id=f"a{pid}",
                                     updated_at="2026-12-01T10:00:00Z")


def states(driver: BackendDriver) -> list[tuple[int, str]]:
    return [(r.idx, r.state) for r in driver.store.rounds(driver.run_id)]


def test_the_round_advances_when_its_batch_is_answered(tmp_path: Path) -> None:
    seen: list[int] = []
    driver, oracle = setup(tmp_path / "s.sqlite", after_dispatch=seen.append)
    assert driver.advance() == 1 and states(driver) == [(0, "AWAITING")] and seen == [0]
    answer(driver, oracle, 0, 5)
    assert driver.advance() == 0 and states(driver) == [(0, "AWAITING")]  # 5 of 6: min_fraction 1.0
    answer(driver, oracle, 0)
    assert driver.advance() == 1
    assert states(driver) == [(0, "LABELED"), (1, "AWAITING")] and seen == [0, 1]
    assert len(driver.store.outbox(driver.run_id, 1)) == 4


def test_an_event_wakes_no_oracle_call_until_the_round_can_close(tmp_path: Path) -> None:
    driver, oracle = setup(tmp_path / "s.sqlite")
    driver.advance()
    answer(driver, oracle, 0)  # answered at the oracle, but no event recorded them in the store yet
    assert driver.advance(tick=False) == 0 and states(driver) == [(0, "AWAITING")]
    assert driver.advance(tick=True) == 1  # the periodic tick asks the oracle


def test_train_every_closes_the_round_early_and_is_kept_with_the_run(tmp_path: Path) -> None:
    driver, oracle = setup(tmp_path / "s.sqlite", train_every=2)
    driver.advance()
    answer(driver, oracle, 0, 2)
    driver.reconcile()
    assert driver.advance(tick=False) == 1
    assert states(driver) == [(0, "LABELED"), (1, "AWAITING")]
    again, _ = setup(tmp_path / "s.sqlite", oracle)  # a restart without --train-every keeps 2
    assert again.train_every == 2


def test_start_training_closes_a_round_with_an_answer(tmp_path: Path) -> None:
    driver, oracle = setup(tmp_path / "s.sqlite")
    driver.advance()
    assert driver.advance(train=True) == 0  # nothing answered: nothing to train on
    answer(driver, oracle, 0, 1)
    driver.reconcile()
    assert driver.advance(train=True, tick=False) == 1 and states(driver)[-1] == (1, "AWAITING")


def test_a_restart_makes_no_second_round_and_keeps_every_answer(tmp_path: Path) -> None:
    driver, oracle = setup(tmp_path / "s.sqlite")
    driver.advance()
    answer(driver, oracle, 0)
    driver.advance()
    labels = [(r.pool_id, r.label) for r in driver.store.labels(driver.run_id)]
    again, _ = setup(tmp_path / "s.sqlite", oracle)
    again.reconcile()
    assert again.advance() == 0
    assert states(again) == [(0, "LABELED"), (1, "AWAITING")]
    assert [(r.pool_id, r.label) for r in again.store.labels(again.run_id)] == labels


def test_a_missed_event_is_collected_by_the_reconciling_pull(tmp_path: Path) -> None:
    driver, oracle = setup(tmp_path / "s.sqlite")
    driver.advance()
    answer(driver, oracle, 0, 3)
    got = driver.reconcile()
    assert got["labeled"] == 3 and len(driver.store.labels(driver.run_id)) == 3


def test_the_worker_thread_advances_on_notify(tmp_path: Path) -> None:
    lines: list[str] = []
    driver, oracle = setup(tmp_path / "s.sqlite", log=lines.append, pull_every=3600)
    driver.start()
    driver.notify()
    driver.drain()  # the first notification is handled after the start's reconcile and advance
    assert states(driver) == [(0, "AWAITING")]
    answer(driver, oracle, 0)
    driver.reconcile()  # the answers recorded (as a webhook would)
    driver.notify({"rounds": [0]})
    driver.drain()
    driver.stop()
    assert states(driver) == [(0, "LABELED"), (1, "AWAITING")]
    assert driver.counts["events"] == 2 and any("round 1: sent 4 item(s)" in line for line in lines)


@pytest.mark.parametrize(("kw", "line"), [({"train_every": 0}, "--train-every must be a positive number"),
                                          ({"pull_every": 0.0}, "--pull-every must be a positive number")])
def test_bad_settings_are_one_line(tmp_path: Path, kw: dict[str, object], line: str) -> None:
    with pytest.raises(ConfigError, match=line):
        setup(tmp_path / "s.sqlite", **kw)


@pytest.mark.parametrize(("flags", "line"), [
    (["--train-every", "0"], "error: --train-every must be a positive number of answers, got 0"),
    (["--pull-every", "-5"], "error: --pull-every must be a positive number of seconds, got -5"),
])
def test_serve_refuses_bad_train_every_and_pull_every_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch, flags: list[str],
                                                                  line: str) -> None:
    import socket

    from tests.test_cli import one_line_error, run_cli

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "s.sqlite"
    Store(db).close()
    code, _out, err = run_cli(["serve", "--db", str(db), "--port", str(port), *flags], capsys, monkeypatch)
    assert code == 2 and one_line_error(err) == line


def test_campaign_status_shows_the_bulk_prediction_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from al_loop.backend_driver import PREDICTIONS_KEY
    from tests.backend.test_webhook import campaign_store
    from tests.test_cli import run_cli

    store, run = campaign_store(tmp_path / "c.sqlite")
    store.set_oracle_state(run, PREDICTIONS_KEY, json.dumps({"model_version": f"al-loop run {run} round 2",
                                                             "written": 3000, "total": 8000}))
    store.close()
    code, out, _err = run_cli(["campaign", "status", "--db", str(tmp_path / "c.sqlite")], capsys, monkeypatch)
    assert code == 0 and f"run {run}: predictions of al-loop run {run} round 2 written to 3000/8000 task(s)" in out
