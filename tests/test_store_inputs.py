"""The store's record of a run's inputs: the inputs digest, item files, skipped files, their status lines."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from al_loop import api
from al_loop.config import RunConfig
from al_loop.errors import InputsChangedError
from al_loop.exports import export_records
from al_loop.pool import Pool
from al_loop.run_status import _store_lines, read_status, status_rows, unreadable_lines
from al_loop.store import Store


def _images_config(root: str = "/data/photos", digest: str | None = "a1b2c3d4e5f6", **kw) -> RunConfig:
    return RunConfig(dataset="images", strategy="margin", dataset_params={"root": root, "labeled": True,
                                                                           "encoder": "pixels"},
                     inputs_digest=digest, **kw)


def _pool(digest: str | None) -> Pool:
    return Pool(X=np.zeros((4, 2)), ids=np.arange(4), classes=("a", "b"), y=np.array([0, 1, 0, 1]), digest=digest)


def test_a_changed_digest_refuses_the_run_in_one_line() -> None:
    cfg = _images_config()
    with pytest.raises(InputsChangedError) as exc:
        api.check_inputs(cfg, _pool("c3d4e5f6a7b8"), run_id=3)
    assert str(exc.value) == ("the inputs of run 3 changed since it started (/data/photos/: digest a1b2c3d4 -> "
                              "c3d4e5f6); put the original files back, or start a new run with `al-loop simulate`")
    campaign = dataclasses.replace(cfg, oracle="label_studio")
    with pytest.raises(InputsChangedError, match="`al-loop campaign init`"):
        api.check_inputs(campaign, _pool("c3d4e5f6a7b8"), run_id=3)
    api.check_inputs(cfg, _pool("a1b2c3d4e5f6"), run_id=3)  # the same inputs: no error


def test_a_run_without_a_digest_is_not_checked() -> None:
    api.check_inputs(_images_config(digest=None), _pool("anything"), run_id=1)  # older runs: no digest recorded


def test_the_digest_is_not_the_runs_fault() -> None:
    # _drive leaves such a run running (and resume stops with the line) instead of marking it failed
    assert issubclass(InputsChangedError, api.NOT_THE_RUNS_FAULT)


def test_stamp_inputs_sets_the_pools_digest() -> None:
    cfg = _images_config(digest=None)
    assert api.stamp_inputs(cfg, _pool("beef")).inputs_digest == "beef"
    assert api.stamp_inputs(cfg, _pool(None)) is cfg
    assert RunConfig.from_json(api.stamp_inputs(cfg, _pool("beef")).to_json()).inputs_digest == "beef"


def test_builtin_data_has_no_digest() -> None:
    cfg, = api.plan_simulation("iris", ["random"], rounds=1, batch=5, init=6)
    assert cfg.inputs_digest is None


def test_the_dataset_key_keeps_its_old_value_without_a_digest() -> None:
    cfg = _images_config(digest=None)
    old = hashlib.blake2b(json.dumps([cfg.dataset, cfg.dataset_params], sort_keys=True, default=str).encode(),
                          digest_size=8).hexdigest()  # the key of the items rows of schema v3 stores
    assert cfg.dataset_key() == old
    assert _images_config(digest="aa").dataset_key() not in (old, _images_config(digest="bb").dataset_key())


def test_items_and_skipped_files_are_written_once_together(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    assert store.record_items("k", [0, 2], paths=["a/1.png", "b/2.png"], skipped=[("a/bad.png", "truncated")])
    assert not store.record_items("k", [0], paths=["x.png"], skipped=[("x/bad.png", "no")])  # already recorded
    assert [(r.pool_id, r.path) for r in store.items("k").values()] == [(0, "a/1.png"), (2, "b/2.png")]
    assert store.skipped_items("k") == [("a/bad.png", "truncated")]
    with pytest.raises(ValueError):
        store.record_items("j", [0, 1], paths=["only-one.png"], skipped=[("j/bad.png", "x")])
    assert store.items("j") == {} and store.skipped_items("j") == []
    store.close()


def test_items_are_inserted_in_chunks_exactly_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import al_loop.store as store_module

    monkeypatch.setattr(store_module, "_INSERT_CHUNK", 3)  # 8 rows: three executemany calls
    store = Store(tmp_path / "s.sqlite")
    ids = [10, 11, 12, 13, 14, 15, 16, 17]
    item_ids = ["a", None, 7, "d", "e", None, "g", "h"]  # an int id is stored as its text
    texts = [f"t{i}" if i % 3 else None for i in range(8)]
    assert store.record_items("k", ids, item_ids=item_ids, texts=texts)
    rows = store.items("k")
    assert [(r.pool_id, r.item_id, r.text, r.path) for r in rows.values()] == [
        (pid, None if v is None else str(v), t, None) for pid, v, t in zip(ids, item_ids, texts, strict=True)]
    # a duplicate pool id in the third chunk fails the insert: the first two chunks are rolled back with it
    with pytest.raises(Exception, match="UNIQUE"):
        store.record_items("j", [0, 1, 2, 3, 4, 5, 6, 6], skipped=[("x.png", "bad")])
    assert store.items("j") == {} and store.skipped_items("j") == []
    store.close()


def _store_with_skipped(tmp_path: Path, n_skipped: int) -> Path:
    db = tmp_path / "s.sqlite"
    store = Store(db)
    cfg = _images_config()
    skipped = [(f"cat/{i:02d}.jpg", "cannot identify image file") for i in range(n_skipped)]
    store.record_items(cfg.dataset_key(), [0, 1, 2], paths=["cat/a.jpg", "cat/b.jpg", "dog/c.jpg"], skipped=skipped)
    store.create_run(cfg)
    store.create_run(dataclasses.replace(cfg, seed=1))
    other = RunConfig(dataset="iris", strategy="random")
    store.create_run(other)
    store.close()
    return db


def test_status_names_five_skipped_files_and_counts_all(tmp_path: Path) -> None:
    db = _store_with_skipped(tmp_path, 7)
    lines = read_status(db)
    assert [ln.encoder for ln in lines] == ["pixels", "pixels", None]
    note, = unreadable_lines(lines)
    assert note == ("runs 1, 2 (/data/photos): 7 file(s) skipped as unreadable: cat/00.jpg (cannot identify image "
                    "file), cat/01.jpg (cannot identify image file), cat/02.jpg (cannot identify image file), "
                    "cat/03.jpg (cannot identify image file), cat/04.jpg (cannot identify image file), and 2 more")
    assert unreadable_lines(_store_lines(db)) == [note]  # the slow path says the same
    headers, rows = status_rows(lines)
    assert headers[4] == "encoder" and [r[4] for r in rows] == ["pixels", "pixels", "-"]


def test_status_without_encoders_or_skipped_files_is_unchanged(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    Store(db).create_run(RunConfig(dataset="iris", strategy="random"))
    lines = read_status(db)
    assert "encoder" not in status_rows(lines)[0] and unreadable_lines(lines) == []


def test_exports_carry_the_path_only_when_items_have_files(tmp_path: Path) -> None:
    texts = tmp_path / "t.csv"
    texts.write_text("text,label\n" + "".join(f"word{i % 3} thing,c{i % 3}\n" for i in range(30)))
    db = tmp_path / "t.sqlite"
    api.simulate(str(db), dataset="text", strategies=["random"], rounds=1, batch=3, init=6,
                 dataset_params={"path": str(texts)})
    rec = export_records(str(db), "labels")[0]
    assert "path" not in rec and "text" in rec  # texts have no files: the columns of before
    con = sqlite3.connect(db)
    con.execute("UPDATE items SET path = 'f/' || pool_id || '.txt'")
    con.commit()
    con.close()
    recs = export_records(str(db), "labels")
    assert list(recs[0])[5:8] == ["item_id", "path", "text"]
    assert all(r["path"] == f"f/{r['pool_id']}.txt" for r in recs)
