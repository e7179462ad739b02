"""Batch schedules and stopping rules: pure functions and their effect on a run."""

from __future__ import annotations

import pytest

from al_loop import api
from al_loop.errors import ConfigError
from al_loop.schedules import batch_for_round, stop_reason
from al_loop.store import Store


def test_schedules_by_hand() -> None:
    assert [batch_for_round("fixed", 7, r) for r in (1, 2, 5)] == [7, 7, 7]
    assert [batch_for_round("list:5,10,20", 7, r) for r in (1, 2, 3, 4)] == [5, 10, 20, 20]
    assert [batch_for_round("geometric:2", 5, r) for r in (1, 2, 3)] == [5, 10, 20]
    assert batch_for_round("geometric:0.1", 5, 4) == 1


@pytest.mark.parametrize("bad", ["list:", "list:0,3", "geometric:", "geometric:-1", "weird", "fixed:3"])
def test_bad_schedule_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="bad batch schedule"):
        batch_for_round(bad, 5, 1)


def test_stop_reason_target_and_plateau() -> None:
    assert stop_reason([0.5, 0.8], 0.8, None, 0.0) == "target 0.8 reached (0.8000)"
    assert stop_reason([0.5, 0.7], 0.8, None, 0.0) is None
    assert stop_reason([0.5, 0.7, 0.69, 0.7], None, 2, 0.0) is not None
    assert stop_reason([0.5, 0.7, 0.69, 0.71], None, 2, 0.0) is None
    assert stop_reason([0.5, 0.7, 0.69, 0.71], None, 2, 0.05) is not None
    assert stop_reason([0.5], None, 2, 0.0) is None


def test_list_schedule_and_label_budget_in_a_run(tmp_path) -> None:
    db = str(tmp_path / "s.sqlite")
    (run_id,) = api.simulate(db, dataset="digits", strategies=["random"], rounds=10, batch=5, init=10,
                             options={"batch_schedule": "list:5,10,20", "max_labels": 40})
    store = Store(db, readonly=True)
    assert [m.n_labels for m in store.metrics(run_id)] == [10, 15, 25, 40]
    assert store.run(run_id).status == "finished"
    assert "label budget 40" in store.run(run_id).note
    assert store.config(run_id).batch_schedule == "list:5,10,20"


def test_target_stop_uses_validation_split(tmp_path) -> None:
    db = str(tmp_path / "t.sqlite")
    (run_id,) = api.simulate(db, dataset="digits", strategies=["margin"], rounds=20, batch=10, init=20,
                             options={"val_fraction": 0.1, "stop_target": 0.85})
    store = Store(db, readonly=True)
    metrics = store.metrics(run_id)
    assert metrics[-1].val_accuracy >= 0.85
    assert all(m.val_accuracy < 0.85 for m in metrics[:-1])
    assert len(metrics) < 21 and store.run(run_id).note.startswith("stopped: target")


def test_stopping_without_validation_split_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="--val-fraction"):
        api.simulate(str(tmp_path / "x.sqlite"), dataset="digits", strategies=["random"],
                     options={"stop_target": 0.9})
    assert not (tmp_path / "x.sqlite").exists()
