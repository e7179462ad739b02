"""The CLI: the contract of each command and one-line errors for bad input."""

from __future__ import annotations

import json
import sqlite3
import sys

import numpy as np
import pytest

from al_loop.cli import main
from al_loop.schema import SCHEMA_VERSION


def run_cli(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["al-loop", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected a one-line error, got: {err!r}"
    assert lines[0].startswith("error:")
    return lines[0]


SMALL = ["--rounds", "2", "--batch", "5", "--init", "10"]


def test_simulate_then_export_jsonl_and_csv(tmp_path, capsys, monkeypatch) -> None:
    db = tmp_path / "s.sqlite"
    code, out, _ = run_cli(["simulate", "--dataset", "digits", "--strategy", "random", "--strategy", "margin",
                            "--seeds", "2", "--db", str(db), *SMALL], capsys, monkeypatch)
    assert code == 0
    assert "margin" in out and "AULC" in out
    code, out, _ = run_cli(["export", "--db", str(db), "--what", "metrics", "--format", "jsonl"], capsys, monkeypatch)
    recs = [json.loads(line) for line in out.splitlines()]
    assert len(recs) == 2 * 2 * 3
    assert {"run_id", "strategy", "seed", "round", "n_labels", "accuracy", "macro_f1", "select_seconds",
            "train_seconds"} <= set(recs[0])
    code, out, _ = run_cli(["export", "--db", str(db), "--what", "labels", "--format", "csv"], capsys, monkeypatch)
    header = out.splitlines()[0].split(",")
    assert header[:4] == ["run_id", "strategy", "seed", "round"]
    assert {"pool_id", "label", "source"} <= set(header)
    assert len(out.splitlines()) == 1 + 4 * 20
    code, out, _ = run_cli(["export", "--db", str(db), "--what", "selections"], capsys, monkeypatch)
    assert all({"pool_id", "rank", "score", "round"} <= set(json.loads(x)) for x in out.splitlines())


def test_status_and_curves(tmp_path, capsys, monkeypatch) -> None:
    db = tmp_path / "s.sqlite"
    run_cli(["simulate", "--strategy", "entropy", "--db", str(db), *SMALL], capsys, monkeypatch)
    code, out, _ = run_cli(["status", "--db", str(db)], capsys, monkeypatch)
    assert code == 0 and "finished" in out and "entropy" in out
    png = tmp_path / "c.png"
    code, _, _ = run_cli(["curves", "--db", str(db), "--out", str(png)], capsys, monkeypatch)
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_strategy_params_reach_the_run(tmp_path, capsys, monkeypatch) -> None:
    db = tmp_path / "p.sqlite"
    code, _, err = run_cli(["simulate", "--strategy", "random", "--param", "random.nonexistent=3", "--db", str(db),
                            *SMALL], capsys, monkeypatch)
    assert code == 2 and "has no parameter 'nonexistent'" in one_line_error(err)
    assert not db.exists()


@pytest.mark.parametrize("args, needle", [
    (["--dataset", "nope"], "unknown dataset 'nope'; valid names:"),
    (["--strategy", "nope"], "unknown strategy 'nope'; valid names:"),
    (["--learner", "nope"], "unknown learner 'nope'; valid names:"),
    (["--init", "3"], "--init 3 is smaller than the 10 classes"),
    (["--batch", "0"], "batch size must be positive"),
    (["--noise-rate", "1.5"], "noise_rate must be in [0, 1)"),
])
def test_bad_simulate_input_one_line_error_no_store(args, needle, tmp_path, capsys, monkeypatch) -> None:
    db = tmp_path / "bad.sqlite"
    code, _, err = run_cli(["simulate", "--db", str(db), "--rounds", "1", *args], capsys, monkeypatch)
    assert code == 2
    assert needle in one_line_error(err)
    assert not db.exists()


def test_duplicate_ids_in_user_data_error() -> None:
    from al_loop.errors import DataError
    from al_loop.pool import Pool

    with pytest.raises(DataError, match=r"duplicate pool ids \[3\]; give every item its own id"):
        Pool(X=np.zeros((3, 2)), ids=np.array([1, 3, 3]), classes=("a", "b"))


def test_empty_pool_error() -> None:
    from al_loop.errors import DataError
    from al_loop.pool import Pool

    with pytest.raises(DataError, match="the pool is empty"):
        Pool(X=np.zeros((0, 2)), ids=np.array([], dtype=np.int64), classes=("a",))


def test_label_file_shorter_than_features(tmp_path, capsys, monkeypatch) -> None:
    np.save(tmp_path / "X.npy", np.zeros((10, 2)))
    np.save(tmp_path / "y.npy", np.zeros(9))
    code, _, err = run_cli(["simulate", "--features", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "y.npy"),
                            "--db", str(tmp_path / "d.sqlite"), "--init", "2"], capsys, monkeypatch)
    assert code == 2 and "9 rows but the features have 10" in one_line_error(err)
    assert not (tmp_path / "d.sqlite").exists()


def test_not_sqlite_db_refused_and_unchanged(tmp_path, capsys, monkeypatch) -> None:
    db = tmp_path / "report.docx"
    db.write_bytes(b"PK\x03\x04 definitely not sqlite" * 20)
    before = db.read_bytes()
    for cmd in (["status", "--db", str(db)], ["resume", "--db", str(db)],
                ["simulate", "--db", str(db), *SMALL]):
        code, _, err = run_cli(cmd, capsys, monkeypatch)
        assert code == 2 and "is not a SQLite database" in one_line_error(err)
    assert db.read_bytes() == before


def test_newer_schema_refused(tmp_path, capsys, monkeypatch) -> None:
    db = tmp_path / "n.sqlite"
    run_cli(["simulate", "--db", str(db), *SMALL], capsys, monkeypatch)
    con = sqlite3.connect(db)
    con.execute("UPDATE al_meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 3),))
    con.commit()
    con.close()
    code, _, err = run_cli(["resume", "--db", str(db)], capsys, monkeypatch)
    assert code == 2 and f"schema version {SCHEMA_VERSION + 3}" in one_line_error(err)


def test_resume_nothing_to_do(tmp_path, capsys, monkeypatch) -> None:
    db = tmp_path / "r.sqlite"
    run_cli(["simulate", "--db", str(db), *SMALL], capsys, monkeypatch)
    code, _, err = run_cli(["resume", "--db", str(db)], capsys, monkeypatch)
    assert code == 0 and "nothing to resume" in err


def test_strategies_lists_registered(capsys, monkeypatch) -> None:
    code, out, _ = run_cli(["strategies"], capsys, monkeypatch)
    assert code == 0 and all(n in out for n in ("random", "entropy", "margin", "least_confidence"))
