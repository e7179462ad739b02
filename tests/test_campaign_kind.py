"""``campaign init --kind`` is checked against the data before anything is created (no server needed).

A mismatch is refused in one line with rc 2, before the API key is read or a
server contacted: no store, no project (the server side of it is in
``tests/integration/test_campaign_view.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_cli import one_line_error, run_cli

DIGITS = "0,1,2,3,4,5,6,7,8,9"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {"npy": tmp_path / "X.npy", "csv_texts": tmp_path / "texts.csv", "txt": tmp_path / "texts.txt",
           "jsonl": tmp_path / "texts.jsonl", "csv_features": tmp_path / "features.csv"}
    np.save(out["npy"], np.random.default_rng(0).random((20, 64)))
    out["csv_texts"].write_text("text\na first text\nanother one\na third\n")
    out["txt"].write_text("a first text\nanother one\n")
    out["jsonl"].write_text("".join(json.dumps({"text": f"text {i}"}) + "\n" for i in range(5)))
    out["csv_features"].write_text("f0,f1,f2,f3\n" + "".join(f"{i},{i + 1},{i + 2},{i + 3}\n" for i in range(20)))
    return out


@pytest.mark.parametrize(("data", "kind", "labels", "line"), [
    ("digits", "text", DIGITS, "error: --kind text does not fit --data digits: its items are images; pass --kind image"),
    ("rotten-tomatoes", "image", "fresh,rotten",
     "error: --kind image does not fit --data rotten-tomatoes: its items are texts; pass --kind text"),
    ("iris", "image", "setosa,versicolor,virginica",
     "error: --kind image does not fit --data iris: its items are table rows (features Label Studio cannot show); "
     "campaigns show images or texts: use an image or text dataset"),
    ("npy", "text", "a,b", "error: --kind text does not fit --data {path}: a .npy file holds arrays, not texts; "
     "pass --kind image"),
    ("txt", "image", "a,b", "error: --kind image does not fit --data {path}: a .txt file holds texts; pass --kind text"),
    ("jsonl", "image", "a,b", "error: --kind image does not fit --data {path}: a .jsonl file holds texts; "
     "pass --kind text"),
    ("csv_texts", "image", "a,b", "if {path} holds texts, pass --kind text"),
    ("csv_features", "text", "a,b", "if {path} holds images, pass --kind image"),
])
def test_a_kind_that_does_not_fit_the_data_is_one_line_and_creates_nothing(
        tmp_path: Path, files: dict[str, Path], capsys, monkeypatch, data: str, kind: str, labels: str,
        line: str) -> None:
    path = str(files[data]) if data in files else data
    db = tmp_path / "c.sqlite"
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)  # refused before the key is read
    code, out, err = run_cli(["campaign", "init", "--db", str(db), "--data", path, "--kind", kind, "--labels", labels,
                              "--label-studio-url", "http://127.0.0.1:9"], capsys, monkeypatch)
    assert code == 2 and out == ""
    got = one_line_error(err)
    expected = line.format(path=path)
    assert got == expected if expected.startswith("error:") else got.endswith(expected), got
    assert not db.exists() and list(tmp_path.glob("c.sqlite*")) == []
