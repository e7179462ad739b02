"""``al-loop query`` / ``api.query``: the next batch for the user's own pipeline.

Real files (features CSV with the user's IDs, labels CSV) and real SQLite
stores in ``tmp_path``; the user is played by a function that labels items of
``next.csv`` with the hidden truth of the synthetic data.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from al_loop import api
from al_loop.errors import DataError
from al_loop.store import Store
from oracles.labels_file import LabelsFileOracle
from tests.contracts.oracle_contract import OracleContract
from tests.test_cli import one_line_error, run_cli

CLASSES = ("cat", "dog", "fox")
N = 90


def _truth() -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(12)
    y = np.arange(N) % 3
    centers = np.array([[0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 1.0, 0.0], [0.0, 3.0, 0.0, 1.0]])
    X = centers[y] + rng.normal(scale=0.8, size=(N, 4))
    ids = [f"sku-{i * 7 + 100}" for i in range(N)]  # the user's IDs: not row numbers
    return X, y, ids


def _features(tmp: Path) -> Path:
    X, _, ids = _truth()
    path = tmp / "X.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "a", "b", "c", "d"])
        for item, row in zip(ids, X, strict=True):
            w.writerow([item, *[f"{v:.6f}" for v in row]])
    return path


def _label_file(path: Path, items: list[str], extra: list[tuple[str, str]] = (), header=("item_id", "label")) -> Path:
    _, y, ids = _truth()
    truth = {item: CLASSES[int(c)] for item, c in zip(ids, y, strict=True)}
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for item in items:
            w.writerow([item, truth[item]])
        for row in extra:
            w.writerow(row)
    return path


def _next(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _q(tmp: Path, db: str = "q.sqlite", **kw):
    args = dict(features=str(tmp / "X.csv"), id_column="item_id", strategy="margin", batch=6, seed=0,
                out=str(tmp / "next.csv"))
    args.update(kw)
    return api.query(str(tmp / db), **args)


def _dump(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [line for line in con.iterdump() if "leases" not in line]
    finally:
        con.close()


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    _features(tmp_path)
    return tmp_path


# -- the loop -------------------------------------------------------------------------------
def test_first_call_without_labels_takes_the_init_batch(tmp: Path) -> None:
    res = _q(tmp, classes=CLASSES)
    rows = _next(tmp / "next.csv")
    assert list(rows[0]) == ["item_id", "pool_id", "round", "rank", "score", "predicted_label", "probability"]
    assert len(rows) == 6 == len(res.ids) == res.selected
    _, _, ids = _truth()
    assert [r["item_id"] for r in rows] == [ids[int(r["pool_id"])] for r in rows] == list(res.item_ids)
    assert all(r["predicted_label"] == "" and r["probability"] == "" for r in rows)  # no model yet
    assert res.new_run and res.round == 0 and res.n_labeled == 0
    store = Store(tmp / "q.sqlite", readonly=True)
    assert store.current_round(res.run_id).state == "AWAITING"
    assert store.config(res.run_id).oracle == "labels_file"
    assert sorted(s.pool_id for s in store.selections(res.run_id)) == sorted(res.ids.tolist())
    store.close()


def test_labels_of_the_batch_train_the_next_round(tmp: Path) -> None:
    first = _q(tmp, classes=CLASSES)
    lab = _label_file(tmp / "labeled.csv", list(first.item_ids))
    res = _q(tmp, labeled=str(lab))
    assert res.run_id == first.run_id and not res.new_run and res.round == 1
    assert res.n_labeled == 6 and res.n_new_labels == 6 and res.n_seed_labels == 0
    assert len(res.ids) == 6 and not set(res.ids) & set(first.ids)
    assert all(p in CLASSES for p in res.predictions)
    assert ((res.probabilities > 0) & (res.probabilities <= 1)).all()
    rows = _next(tmp / "next.csv")
    assert [r["predicted_label"] for r in rows] == list(res.predictions)
    store = Store(tmp / "q.sqlite", readonly=True)
    assert [r.state for r in store.rounds(res.run_id)] == ["LABELED", "AWAITING"]
    assert {r.source for r in store.labels(res.run_id)} == {"oracle"}
    store.close()


def test_labels_of_items_never_selected_are_seed_labels(tmp: Path) -> None:
    _, _, ids = _truth()
    seed_items = ids[:9]
    lab = _label_file(tmp / "labeled.csv", seed_items)
    res = _q(tmp, labeled=str(lab))  # classes come from the labels
    assert res.n_seed_labels == 9 and res.n_labeled == 9
    assert not set(res.item_ids) & set(seed_items)  # never offered what is labeled
    assert all(p in CLASSES for p in res.predictions)  # round 0 trained on the seed labels
    store = Store(tmp / "q.sqlite", readonly=True)
    labels = store.labels(res.run_id)
    assert {r.source for r in labels} == {"seed"} and {r.round for r in labels} == {0}
    assert store.config(res.run_id).dataset_params["classes"] == list(CLASSES)
    store.close()


def test_unlabeled_items_of_the_last_batch_are_offered_again_first(tmp: Path) -> None:
    first = _q(tmp, classes=CLASSES)
    lab = _label_file(tmp / "labeled.csv", list(first.item_ids[:4]))
    res = _q(tmp, labeled=str(lab))
    assert len(res.ids) == 6 and res.selected == 4
    assert list(res.item_ids[:2]) == list(first.item_ids[4:])  # the two left over, first
    assert res.rounds.tolist() == [0, 0, 1, 1, 1, 1]
    assert not set(res.ids[2:]) & set(first.ids)
    lab = _label_file(tmp / "labeled.csv", list(first.item_ids) + list(res.item_ids[2:]))
    third = _q(tmp, labeled=str(lab))  # the leftovers labeled late are taken
    assert third.n_labeled == 10 and third.selected == 6 and third.rounds.tolist() == [2] * 6


def test_a_call_without_new_labels_changes_nothing(tmp: Path) -> None:
    first = _q(tmp, classes=CLASSES)
    lab = _label_file(tmp / "labeled.csv", list(first.item_ids))
    _q(tmp, labeled=str(lab))
    before_csv, before_db = (tmp / "next.csv").read_bytes(), _dump(tmp / "q.sqlite")
    res = _q(tmp, labeled=str(lab))
    assert res.selected == 0 and res.round == 1
    assert any("still unlabeled" in n for n in res.notes)
    assert (tmp / "next.csv").read_bytes() == before_csv
    assert _dump(tmp / "q.sqlite") == before_db


def _session(tmp: Path, db: str, out: str, seed: int, calls: int = 3) -> list[bytes]:
    files = []
    res = _q(tmp, db=db, out=str(tmp / out), seed=seed, classes=CLASSES)
    labeled: list[str] = []
    for _ in range(calls):
        files.append((tmp / out).read_bytes())
        labeled += list(res.item_ids)
        lab = _label_file(tmp / f"{db}.labels.csv", labeled)
        res = _q(tmp, db=db, out=str(tmp / out), seed=seed, labeled=str(lab))
    return files


def test_same_files_and_seed_give_the_same_batches(tmp: Path) -> None:
    a = _session(tmp, "a.sqlite", "a.csv", seed=3)
    b = _session(tmp, "b.sqlite", "b.csv", seed=3)
    c = _session(tmp, "c.sqlite", "c.csv", seed=4)
    assert a == b
    assert a[0] != c[0]


def test_run_is_found_by_its_configuration(tmp: Path) -> None:
    first = _q(tmp, classes=CLASSES)
    other = _q(tmp, classes=CLASSES, strategy="entropy")
    again = _q(tmp)
    seeded = _q(tmp, classes=CLASSES, seed=1)
    assert other.new_run and other.run_id != first.run_id
    assert not again.new_run and again.run_id == first.run_id
    assert seeded.new_run and len({first.run_id, other.run_id, seeded.run_id}) == 3


def test_an_abandoned_run_is_not_continued(tmp: Path) -> None:
    from al_loop.types import RunStatus

    first = _q(tmp, classes=CLASSES)
    store = Store(tmp / "q.sqlite")
    store.finish_run(first.run_id, RunStatus.ABANDONED)
    store.close()
    again = _q(tmp, classes=CLASSES)
    assert again.new_run and again.run_id != first.run_id


def test_an_edited_label_replaces_the_stored_one(tmp: Path) -> None:
    first = _q(tmp, classes=CLASSES)
    lab = _label_file(tmp / "labeled.csv", list(first.item_ids))
    _q(tmp, labeled=str(lab))
    target = first.item_ids[0]
    rows = [r for r in csv.reader(open(lab))][1:]
    old = dict(rows)[target]
    new = next(c for c in CLASSES if c != old)
    _label_file(tmp / "labeled.csv", list(first.item_ids[1:]), extra=[(target, new)])
    res = _q(tmp, labeled=str(lab))
    assert res.n_new_labels == 1
    store = Store(tmp / "q.sqlite", readonly=True)
    pid = int(first.ids[0])
    assert {r.pool_id: r.label for r in store.labels(res.run_id)}[pid] == new
    store.close()


def test_skip_label_marks_an_item_skipped_for_good(tmp: Path) -> None:
    first = _q(tmp, classes=CLASSES)
    lab = _label_file(tmp / "labeled.csv", list(first.item_ids[:5]), extra=[(first.item_ids[5], "SKIP")])
    res = _q(tmp, labeled=str(lab), skip_label="SKIP")
    assert res.selected == 6 and first.item_ids[5] not in res.item_ids
    store = Store(tmp / "q.sqlite", readonly=True)
    assert {r.pool_id: r.status for r in store.labels(res.run_id)}[int(first.ids[5])] == "skipped"
    store.close()


def test_batch_larger_than_the_pool_is_clamped_with_a_note(tmp: Path) -> None:
    _, _, ids = _truth()
    lab = _label_file(tmp / "labeled.csv", ids[:80])
    res = _q(tmp, labeled=str(lab), batch=50)
    assert res.selected == 10 and len(res.ids) == 10
    assert any("batch 50 is larger than the 10 unlabeled item(s) left; selecting 10" in n for n in res.notes)
    lab = _label_file(tmp / "labeled.csv", ids)
    done = _q(tmp, labeled=str(lab), batch=50)
    assert done.selected == 0 and len(done.ids) == 0 and done.n_labeled == N
    assert any("nothing new to select" in n for n in done.notes)
    assert _next(tmp / "next.csv") == []


def test_interrupted_call_offers_its_committed_batch_next_time(tmp: Path) -> None:
    """kill -9 right after the round was committed: the next call offers that batch, selects nothing again."""
    first = _q(tmp, classes=CLASSES)
    lab = _label_file(tmp / "labeled.csv", list(first.item_ids))
    args = ["query", "--db", str(tmp / "q.sqlite"), "--features", str(tmp / "X.csv"), "--id-column", "item_id",
            "--strategy", "margin", "--batch", "6", "--labeled", str(lab), "--out", str(tmp / "next.csv")]
    env = {**os.environ, "AL_LOOP_CRASH_AT": "after_select_commit"}
    cli = [sys.executable, "-c", "from al_loop.cli import main; main()"]
    proc = subprocess.run(cli + args, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == -9
    store = Store(tmp / "q.sqlite", readonly=True)
    assert store.current_round(first.run_id).state == "SELECTED"
    committed = [s.pool_id for s in store.selections(first.run_id) if s.round == 1]
    store.close()
    res = _q(tmp, labeled=str(lab))
    assert res.ids.tolist() == committed and res.round == 1 and res.selected == 0
    assert any("interrupted call" in n for n in res.notes)
    store = Store(tmp / "q.sqlite", readonly=True)
    assert store.current_round(first.run_id).state == "AWAITING"
    store.close()


def test_query_runs_show_in_status_and_export_with_the_users_ids(tmp: Path, capsys, monkeypatch) -> None:
    first = _q(tmp, classes=CLASSES)
    _, _, ids = _truth()
    lab = _label_file(tmp / "labeled.csv", list(first.item_ids) + [ids[-1]])
    code, out, _ = run_cli(["query", "--db", str(tmp / "q.sqlite"), "--features", str(tmp / "X.csv"),
                            "--id-column", "item_id", "--strategy", "margin", "--batch", "6", "--labeled", str(lab),
                            "--out", str(tmp / "next.csv")], capsys, monkeypatch)
    assert code == 0
    assert out.strip() == (f"run {first.run_id} round 1: 7 labeled (7 new, 1 of them seed); 6 selected by margin "
                           f"-> {tmp / 'next.csv'}")
    code, out, _ = run_cli(["status", "--db", str(tmp / "q.sqlite")], capsys, monkeypatch)
    assert code == 0 and "margin" in out and "AWAITING" in out
    code, out, _ = run_cli(["export", "--db", str(tmp / "q.sqlite"), "--what", "labels", "--format", "csv"],
                           capsys, monkeypatch)
    rows = list(csv.DictReader(out.splitlines()))
    assert len(rows) == 7
    assert {r["source"] for r in rows if r["item_id"] == ids[-1]} == {"seed"}
    assert {r["item_id"] for r in rows} == set(first.item_ids) | {ids[-1]}


def test_cli_prints_the_batch_without_out(tmp: Path, capsys, monkeypatch) -> None:
    code, out, err = run_cli(["query", "--db", str(tmp / "q.sqlite"), "--features", str(tmp / "X.csv"),
                              "--id-column", "item_id", "--strategy", "random", "--batch", "4",
                              "--classes", "cat,dog,fox"], capsys, monkeypatch)
    assert code == 0
    rows = list(csv.DictReader(out.splitlines()))
    assert len(rows) == 4 and rows[0]["item_id"].startswith("sku-")
    assert "new run 1 round 0" in err


def test_npy_features_use_row_numbers_as_ids(tmp_path: Path) -> None:
    X, y, _ = _truth()
    np.save(tmp_path / "X.npy", X)
    lab = tmp_path / "labeled.csv"
    lab.write_text("item_id,label\n" + "".join(f"{i},{CLASSES[y[i]]}\n" for i in range(6)))
    res = api.query(str(tmp_path / "n.sqlite"), features=str(tmp_path / "X.npy"), labeled=str(lab),
                    strategy="entropy", batch=5)
    assert res.item_ids == tuple(str(i) for i in res.ids) and not set(res.ids) & set(range(6))


# -- bad input: one line, store unchanged ---------------------------------------------------
def _bad(tmp: Path, capsys, monkeypatch, extra: list[str], db: str = "q.sqlite") -> str:
    code, _, err = run_cli(["query", "--db", str(tmp / db), "--features", str(tmp / "X.csv"), "--id-column",
                            "item_id", "--strategy", "badge", "--batch", "6", "--out", str(tmp / "next.csv"),
                            *extra], capsys, monkeypatch)
    assert code == 2
    return one_line_error(err)


@pytest.mark.parametrize("content, needle", [
    ("item_id,label\nsku-100,cat\nnope-1,dog\nnope-2,cat\nnope-3,cat\nnope-4,cat\nnope-5,cat\nnope-6,fox\n",
     "has 6 ID(s) not in the features file: 'nope-1', 'nope-2', 'nope-3', 'nope-4', 'nope-5' and 1 more"),
    ("item_id,label\nsku-100,cat\nsku-107,dog\nsku-100,dog\n",
     "labels 1 ID(s) twice with different labels: 'sku-100' ('cat' vs 'dog'); keep one row per ID"),
    ("id,label\nsku-100,cat\n", "has no column 'item_id' (columns: ['id', 'label']); pass --labeled-id-column NAME"),
    ("item_id,class\nsku-100,cat\n", "has no column 'label' (columns: ['item_id', 'class']); pass --label-column"),
    ("item_id,label\n", "holds no labels and strategy 'badge' needs a trained model"),
    ("", "is empty; give a header row"),
    ("item_id,label\nsku-100,cat\n,dog\n", "has 1 row(s) without an ID in column 'item_id' (line(s) [3])"),
])
def test_bad_labeled_file_on_a_new_store(content, needle, tmp: Path, capsys, monkeypatch) -> None:
    (tmp / "labeled.csv").write_text(content)
    msg = _bad(tmp, capsys, monkeypatch, ["--labeled", str(tmp / "labeled.csv"), "--classes", "cat,dog,fox"])
    assert needle in msg
    assert not (tmp / "q.sqlite").exists() and not (tmp / "next.csv").exists()


def _started(tmp: Path) -> tuple[list[str], bytes]:
    first = _q(tmp, classes=CLASSES, strategy="badge")
    return list(first.item_ids), (tmp / "next.csv").read_bytes()


@pytest.mark.parametrize("case", ["unknown_id", "conflict", "new_class", "new_declared_class", "missing_file",
                                  "features_changed"])
def test_bad_input_on_an_existing_store_changes_nothing(case, tmp: Path, capsys, monkeypatch) -> None:
    items, out_before = _started(tmp)
    db_before = _dump(tmp / "q.sqlite")
    lab = tmp / "labeled.csv"
    extra = ["--labeled", str(lab)]
    if case == "unknown_id":
        _label_file(lab, items, extra=[("sku-0", "cat")])
        needle = "has 1 ID(s) not in the features file: 'sku-0'; fix those IDs"
    elif case == "conflict":
        _label_file(lab, items, extra=[(items[0], "cat"), (items[0], "dog")])
        needle = f"twice with different labels: {items[0]!r}"
    elif case == "new_class":
        _label_file(lab, items[1:], extra=[(items[0], "wolf")])
        needle = "labeled file " + str(lab) + " uses class(es) ['wolf'] that the classes ['cat', 'dog', 'fox'] " \
                 "of run 1 lack; declare every class with --classes on the first call"
    elif case == "new_declared_class":
        _label_file(lab, items)
        extra += ["--classes", "cat,dog,fox,owl"]
        needle = "--classes uses class(es) ['owl']"
    elif case == "missing_file":
        extra = ["--labeled", str(tmp / "nope.csv")]
        needle = "labeled file " + str(tmp / "nope.csv") + " does not exist; check the --labeled path"
    else:
        _label_file(lab, items)
        text = (tmp / "X.csv").read_text().splitlines()
        text[5] = text[5].rsplit(",", 1)[0] + ",9.5"
        (tmp / "X.csv").write_text("\n".join(text) + "\n")
        needle = "changed since run 1 began (its rows are the run's items); restore it, or pass a new --db"
    assert needle in _bad(tmp, capsys, monkeypatch, extra)
    assert _dump(tmp / "q.sqlite") == db_before
    assert (tmp / "next.csv").read_bytes() == out_before


@pytest.mark.parametrize("extra, needle", [
    (["--out", "/nonexistent-dir/next.csv"], "the folder of --out /nonexistent-dir/next.csv does not exist"),
    ([], "nothing is labeled yet, so the classes are unknown; pass --classes a,b,c"),
    (["--classes", "cat"], "only the class 'cat' is known; pass every class with --classes cat,OTHER"),
    (["--classes", "cat,,dog"], "--classes 'cat,,dog' has an empty name"),
    (["--classes", "cat,dog,cat"], "--classes repeats a class"),
    (["--batch", "0", "--classes", "cat,dog"], "batch size must be a positive integer, got 0"),
    (["--strategy", "margn", "--classes", "cat,dog"], "unknown strategy 'margn'"),
    (["--init-strategy", "badge", "--classes", "cat,dog"], "init strategy 'badge' needs a trained model"),
])
def test_bad_options_write_nothing(extra, needle, tmp: Path, capsys, monkeypatch) -> None:
    assert needle in _bad(tmp, capsys, monkeypatch, extra)
    assert not (tmp / "q.sqlite").exists() and not (tmp / "next.csv").exists()


def test_single_seen_class_without_classes_is_refused(tmp: Path, capsys, monkeypatch) -> None:
    _, _, ids = _truth()
    (tmp / "labeled.csv").write_text(f"item_id,label\n{ids[0]},cat\n{ids[3]},cat\n")
    msg = _bad(tmp, capsys, monkeypatch, ["--labeled", str(tmp / "labeled.csv")])
    assert "only the class 'cat' is known" in msg and not (tmp / "q.sqlite").exists()


def test_labeled_file_with_semicolons_bom_and_own_id_column(tmp: Path) -> None:
    _, y, ids = _truth()
    lab = tmp / "labeled.csv"
    lab.write_bytes("\ufeffsku;class\n".encode() + "".join(f"{ids[i]};{CLASSES[y[i]]}\n" for i in range(6)).encode())
    res = _q(tmp, labeled=str(lab), labeled_id_column="sku", label_column="class")
    assert res.n_seed_labels == 6


def test_read_errors_name_the_cause() -> None:
    from oracles.labels_file import answers_from_rows

    with pytest.raises(DataError, match=r"twice with different labels: 'a' \('x' vs 'y'\)"):
        answers_from_rows([(2, "a", "x"), (3, "a", "y")], ["a"], np.array([0]), "f.csv")
    same = answers_from_rows([(2, "a", "x"), (3, "a", "x")], ["a"], np.array([5]), "f.csv")
    assert same[5].label == "x" and same[5].annotation_id == "labels_file:a"


# -- the oracle contract -----------------------------------------------------------------------
class TestLabelsFileOracle(OracleContract):
    """The labels-file oracle built from a real CSV of every pool item's true label."""

    def make_oracle(self, pool):
        self._dir = tempfile.TemporaryDirectory()
        path = Path(self._dir.name) / "labels.csv"
        truth = pool.hidden_labels(pool.ids)
        path.write_text("item_id,label\n" + "".join(f"it{int(i)},{pool.classes[int(t)]}\n"
                                                    for i, t in zip(pool.ids, truth, strict=True)))
        return LabelsFileOracle.from_file(pool, path, "item_id", "label", [f"it{int(i)}" for i in pool.ids])


def test_oracle_answers_only_what_the_file_labels() -> None:
    from al_loop.types import OutboxItem
    from tests.contracts.strategy_contract import digits_pool

    pool = digits_pool(20)
    some = {int(pool.ids[0]): "0", int(pool.ids[2]): "skip"}
    from oracles.labels_file import answers_from_rows

    rows = [(i + 2, f"it{pid}", lab) for i, (pid, lab) in enumerate(some.items())]
    oracle = LabelsFileOracle(pool, answers=answers_from_rows(rows, [f"it{int(i)}" for i in pool.ids], pool.ids,
                                                              "f", skip_label="skip"))
    oracle.submit([OutboxItem(run_id=1, round=0, pool_id=int(i)) for i in pool.ids[:2]])
    answers = oracle.collect(1, 0)
    assert [(a.pool_id, a.status, a.label) for a in answers] == [(int(pool.ids[0]), "labeled", "0")]
    extra = oracle.unsolicited(pool.ids[:2])
    assert [(a.pool_id, a.status) for a in extra] == [(int(pool.ids[2]), "skipped")]
