"""What ``campaign status`` and ``export`` make of people's answers (a store filled by hand; no server).

The same rules against a real Label Studio server, with two annotators, are in
``tests/integration/test_campaign_view.py``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from al_loop.campaign import RATE_MIN_SPAN, campaign_status
from al_loop.config import RunConfig
from al_loop.errors import ConfigError
from al_loop.exports import export_records
from al_loop.store import Store
from al_loop.types import Answer
from tests.test_cli import run_cli

CLASSES = ["cat", "dog"]


def campaign_store(path: Path, n: int = 6) -> tuple[Store, int]:
    store = Store(path)
    run = store.create_run(RunConfig(dataset="digits", strategy="margin", seed=3, oracle="label_studio",
                                     oracle_params={"url": "http://127.0.0.1:1", "title": "t", "kind": "image"}))
    store.commit_selection(run, 0, np.arange(n), np.zeros(n), [None] * n, None)
    store.mark_sent(run, 0, {f"{run}:0:{i}": str(100 + i) for i in range(n)})
    return store, run


def at(seconds: float) -> str:
    whole, frac = divmod(seconds, 1)
    m, s = divmod(int(whole), 60)
    return f"2026-12-01T10:{m:02d}:{s:02d}.{int(round(frac * 1e6)):06d}Z"


def test_waiting_leaves_out_quarantined_items(tmp_path: Path) -> None:
    store, run = campaign_store(tmp_path / "c.sqlite")
    store.apply_answers(run, 0, [
        Answer(0, "labeled", "cat", annotation_id="1", updated_at=at(0), annotator="ann@x"),
        Answer(1, "skipped", annotation_id="2", updated_at=at(1), annotator="ann@x"),
        Answer(2, "rejected", reason="choice 'zebra' is not a class", annotation_id="3", updated_at=at(2),
               annotator="ann@x"),
    ], CLASSES)
    store.close()
    (row,) = campaign_status(str(tmp_path / "c.sqlite"))
    assert {k: row[k] for k in ("selected", "sent", "labeled", "skipped", "quarantined", "waiting")} == {
        "selected": 6, "sent": 6, "labeled": 1, "skipped": 1, "quarantined": 1, "waiting": 3}


@pytest.mark.parametrize(("stamps", "rate"), [
    ([0.0], None),  # one answer: no rate ("1.0 labels/hour" meant nothing)
    ([0.0, 30.0, 59.0], None),  # a burst shorter than a minute
    ([0.0, RATE_MIN_SPAN], 60.0),  # two answers a minute apart: one more per minute
    ([0.0, 60.0, 120.0, 180.0, 240.0], 60.0),
])
def test_a_rate_only_over_a_span_that_means_something(tmp_path: Path, stamps: list[float],
                                                      rate: float | None) -> None:
    store, run = campaign_store(tmp_path / "c.sqlite")
    store.apply_answers(run, 0, [Answer(i, "labeled", "cat", annotation_id=str(i), updated_at=at(t),
                                        annotator="ann@x") for i, t in enumerate(stamps)], CLASSES)
    store.close()
    assert campaign_status(str(tmp_path / "c.sqlite"))[0]["throughput"] == {"ann@x": rate}


def test_stamps_in_several_formats_make_one_rate(tmp_path: Path) -> None:
    store, run = campaign_store(tmp_path / "c.sqlite")
    store.apply_answers(run, 0, [  # an older store: "Z", an offset, and a naive stamp, all UTC
        Answer(0, "labeled", "cat", annotation_id="0", updated_at="2026-12-01T10:00:00Z", annotator="ann@x"),
        Answer(1, "labeled", "cat", annotation_id="1", updated_at="2026-12-01T11:01:00+01:00", annotator="ann@x"),
        Answer(2, "labeled", "dog", annotation_id="2", updated_at="2026-12-01T10:02:00", annotator="ann@x"),
    ], CLASSES)
    store.close()
    assert campaign_status(str(tmp_path / "c.sqlite"))[0]["throughput"] == {"ann@x": 60.0}


def test_status_shows_a_dash_for_no_rate(tmp_path: Path, capsys, monkeypatch) -> None:
    store, run = campaign_store(tmp_path / "c.sqlite")
    store.apply_answers(run, 0, [Answer(0, "labeled", "cat", annotation_id="0", updated_at=at(0),
                                        annotator="ann@x")], CLASSES)
    store.close()
    code, out, _ = run_cli(["campaign", "status", "--db", str(tmp_path / "c.sqlite")], capsys, monkeypatch)
    assert code == 0 and "ann@x: -" in out and "labels/hour" in out and "1.0" not in out


def answered_store(path: Path) -> None:
    store, run = campaign_store(path)
    store.apply_answers(run, 0, [
        Answer(0, "labeled", "cat", annotation_id="10", updated_at=at(0), annotator="ann@x"),
        Answer(1, "labeled", "dog", annotation_id="11", updated_at=at(5), annotator="ann@x"),
        Answer(3, "skipped", annotation_id="13", updated_at=at(9), annotator="ann@x"),
    ], CLASSES)
    store.apply_answers(run, 0, [  # bob answers item 0 later with a class that is none: the newest decides
        Answer(0, "rejected", reason="choice 'zebra' is not a class of this run", annotation_id="20",
               updated_at=at(30), annotator="bob@x", disagreement="invalid(bob@x) vs cat(ann@x)"),
        Answer(1, "labeled", "cat", annotation_id="21", updated_at=at(31), annotator="bob@x",
               disagreement="cat(bob@x) vs dog(ann@x)"),
    ], CLASSES)
    store.close()


def test_export_labels_names_the_annotator_the_annotation_and_the_disagreement(tmp_path: Path) -> None:
    answered_store(tmp_path / "c.sqlite")
    rows = export_records(str(tmp_path / "c.sqlite"), "labels")
    assert list(rows[0]) == ["run_id", "strategy", "seed", "round", "pool_id", "item_id", "label", "status", "source",
                             "annotation_id", "annotator", "disagreement", "updated_at"]
    assert [(r["pool_id"], r["label"], r["status"], r["annotation_id"], r["annotator"], r["disagreement"])
            for r in rows] == [(1, "cat", "labeled", "21", "bob@x", "cat(bob@x) vs dog(ann@x)"),
                               (3, None, "skipped", "13", "ann@x", None)]
    assert rows[0]["updated_at"] == at(31)


def test_export_quarantine_has_the_invalid_answers(tmp_path: Path, capsys, monkeypatch) -> None:
    answered_store(tmp_path / "c.sqlite")
    (row,) = export_records(str(tmp_path / "c.sqlite"), "quarantine")
    assert list(row) == ["run_id", "strategy", "seed", "round", "pool_id", "item_id", "answer", "reason",
                         "annotation_id", "recorded_at", "labeled_now"]
    assert (row["run_id"], row["round"], row["pool_id"], row["annotation_id"], row["labeled_now"]) == (1, 0, 0, "20",
                                                                                                      False)
    assert row["reason"] == ("choice 'zebra' is not a class of this run; annotators differ: "
                             "invalid(bob@x) vs cat(ann@x)")
    code, out, _ = run_cli(["export", "--db", str(tmp_path / "c.sqlite"), "--what", "quarantine", "--format", "csv"],
                           capsys, monkeypatch)
    assert code == 0
    (back,) = list(csv.DictReader(io.StringIO(out)))
    assert back["pool_id"] == "0" and back["annotation_id"] == "20"
    code, out, _ = run_cli(["export", "--db", str(tmp_path / "c.sqlite"), "--what", "quarantine"], capsys, monkeypatch)
    assert json.loads(out)["reason"] == row["reason"]


def test_export_quarantine_of_a_store_without_any_is_empty(tmp_path: Path) -> None:
    store, _run = campaign_store(tmp_path / "c.sqlite")
    store.close()
    assert export_records(str(tmp_path / "c.sqlite"), "quarantine") == []
    with pytest.raises(ConfigError, match="did you mean 'quarantine'"):
        export_records(str(tmp_path / "c.sqlite"), "quarantaine")
