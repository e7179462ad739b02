"""The user's own data: CSV/Parquet tables, labels checks, texts, test sets, item ids through pool, store and export.

Real files in tmp_path, real SQLite stores; CLI errors are checked for exit code 2, one line, and no store written.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from al_loop.datasets import load_dataset, make_pool
from al_loop.errors import ConfigError, DataError
from tests.test_cli import one_line_error, run_cli

TINY = ["--rounds", "1", "--batch", "4", "--init", "4"]


def _customers(path, n: int = 24, delimiter: str = ",", bom: bool = False, missing_age: tuple[int, ...] = ()) -> None:
    """A customers table: id, two numeric columns, a categorical plan, a free-text city, a class."""
    rng = np.random.default_rng(7)
    lines = [delimiter.join(["customer_id", "age", "income", "plan", "city", "churned"])]
    for i in range(n):
        age = "" if i in missing_age else str(20 + i)
        plan = ("basic", "gold", "pro")[i % 3]
        lines.append(delimiter.join([f"C{i:03d}", age, f"{rng.normal(50, 10):.2f}", plan, f"town{i % 5}",
                                     "yes" if i % 2 else "no"]))
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")


# -- CSV tables -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("delimiter, bom", [(",", False), (";", True), ("\t", False)])
def test_csv_delimiter_sniffed_bom_accepted_ids_kept(tmp_path, delimiter, bom) -> None:
    _customers(tmp_path / "c.csv", delimiter=delimiter, bom=bom)
    ds = load_dataset("file", features=str(tmp_path / "c.csv"), label_column="churned", id_column="customer_id",
                      drop_columns=["city"], categorical="plan")
    assert ds.item_ids == [f"C{i:03d}" for i in range(24)]
    assert ds.X.shape == (24, 2 + 3)  # age, income, plan=basic/gold/pro
    np.testing.assert_array_equal(ds.X[:, 0], np.arange(20, 44))
    np.testing.assert_array_equal(ds.X[:3, 2:], np.eye(3))  # categories sorted: basic, gold, pro
    assert ds.classes == ("no", "yes") and ds.y.tolist() == [i % 2 for i in range(24)]


def test_id_column_duplicates_named_up_to_five(tmp_path) -> None:
    rows = ["id,x,label"] + [f"{'dup' + str(i % 7) if i < 14 else 'u' + str(i)},{i},{i % 2}" for i in range(20)]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    with pytest.raises(DataError, match=r"id column 'id' of .*d.csv repeats 7 id\(s\) \('dup0', 'dup1', 'dup2', "
                                        r"'dup3', 'dup4'\); give every item its own id"):
        load_dataset("file", features=str(tmp_path / "d.csv"), id_column="id")


def test_id_column_empty_or_absent(tmp_path) -> None:
    (tmp_path / "d.csv").write_text("id,x,label\na,1,0\n,2,1\nc,3,0\n")
    with pytest.raises(DataError, match=r"id column 'id' .* is empty in 1 row\(s\) \(first: data row 1\)"):
        load_dataset("file", features=str(tmp_path / "d.csv"), id_column="id")
    with pytest.raises(DataError, match=r"has no id column 'sku' .*; pass --id-column NAME"):
        load_dataset("file", features=str(tmp_path / "d.csv"), id_column="sku")


def test_numeric_ids_keep_their_text(tmp_path) -> None:
    (tmp_path / "d.csv").write_text("id,x,label\n0017,1,0\n0018,2,1\n19,3,0\n")
    ds = load_dataset("file", features=str(tmp_path / "d.csv"), id_column="id")
    assert ds.item_ids == ["0017", "0018", "19"]  # as written, not as numbers
    assert ds.X.shape == (3, 1)


def test_non_numeric_column_refused_with_the_options(tmp_path) -> None:
    _customers(tmp_path / "c.csv")
    with pytest.raises(DataError) as info:
        load_dataset("file", features=str(tmp_path / "c.csv"), label_column="churned", id_column="customer_id")
    msg = str(info.value)
    assert "column(s) 'plan', 'city' of" in msg and "are not numeric" in msg
    assert "--drop-columns plan,city" in msg and "--categorical plan,city" in msg and "--numeric-only" in msg
    assert "\n" not in msg


def test_unique_text_column_hints_at_id_column(tmp_path) -> None:
    _customers(tmp_path / "c.csv")
    with pytest.raises(DataError, match="'customer_id' has one value per row: pass --id-column customer_id"):
        load_dataset("file", features=str(tmp_path / "c.csv"), label_column="churned", drop_columns="plan,city")


def test_numeric_only_drops_with_a_note(tmp_path) -> None:
    _customers(tmp_path / "c.csv")
    ds = load_dataset("file", features=str(tmp_path / "c.csv"), label_column="churned", numeric_only=True)
    assert ds.X.shape == (24, 2)
    assert ds.notes == ["c.csv: --numeric-only dropped the non-numeric column(s) 'customer_id', 'plan', 'city'"]
    pool = make_pool(ds, 0.25, 0)
    assert pool.notes == ds.notes


@pytest.mark.parametrize("option, value", [("drop_columns", ["town"]), ("categorical", ["planz"])])
def test_unknown_column_in_an_option(tmp_path, option, value) -> None:
    _customers(tmp_path / "c.csv")
    flag = "--" + option.replace("_", "-")
    with pytest.raises(ConfigError, match=f"{flag} names column\\(s\\) '{value[0]}' that .* lacks"):
        load_dataset("file", features=str(tmp_path / "c.csv"), label_column="churned", numeric_only=True,
                     **{option: value})


def test_categorical_of_numbers_and_stable_order(tmp_path) -> None:
    (tmp_path / "d.csv").write_text("zip,x,label\n75001,1,a\n69001,2,b\n75001,3,a\n13001,4,b\n")
    ds = load_dataset("file", features=str(tmp_path / "d.csv"), categorical=["zip"])
    np.testing.assert_array_equal(ds.X, [[1, 0, 0, 1], [2, 0, 1, 0], [3, 0, 0, 1], [4, 1, 0, 0]])


def test_missing_values_named_with_row_counts(tmp_path) -> None:
    _customers(tmp_path / "c.csv", missing_age=(2, 5, 9))
    lines = (tmp_path / "c.csv").read_text().splitlines()
    lines[4] = lines[4].replace(lines[4].split(",")[2], "NA")  # income of data row 3
    (tmp_path / "c.csv").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"missing values in column\(s\) 'age' \(3 row\(s\)\), 'income' \(1 row\(s\)\), "
                                        r"4 row\(s\) in all; fill them with --impute mean or --impute median, or "
                                        r"drop those rows with --impute drop"):
        load_dataset("file", features=str(tmp_path / "c.csv"), label_column="churned", id_column="customer_id",
                     numeric_only=True)


@pytest.mark.parametrize("token", ["", "NA", "NaN", "null", "N/A", "None"])
def test_every_missing_token_is_missing(tmp_path, token) -> None:
    (tmp_path / "d.csv").write_text(f"x,y,label\n1,2,a\n{token},4,b\n5,6,a\n")
    with pytest.raises(DataError, match=r"'x' \(1 row\(s\)\)"):
        load_dataset("file", features=str(tmp_path / "d.csv"))


def test_impute_mean_median_and_drop(tmp_path) -> None:
    (tmp_path / "d.csv").write_text("id,x,plan,label\na,1,p,0\nb,,q,1\nc,2,,0\nd,6,q,1\ne,3,q,0\n")
    kw = {"features": str(tmp_path / "d.csv"), "id_column": "id", "categorical": ["plan"]}
    mean = load_dataset("file", impute="mean", **kw)
    assert mean.X[1, 0] == pytest.approx(3.0)  # mean of 1, 2, 6, 3
    np.testing.assert_array_equal(mean.X[2, 1:], [0, 1])  # a missing category takes the most frequent (q)
    median = load_dataset("file", impute="median", **kw)
    assert median.X[1, 0] == pytest.approx(2.5)
    drop = load_dataset("file", impute="drop", **kw)
    assert drop.item_ids == ["a", "d", "e"] and drop.ids.tolist() == [0, 3, 4]
    assert any("--impute drop removed 2 row(s)" in n for n in drop.notes)
    pool = make_pool(drop, test_fraction=1 / 3, split_seed=0)
    assert set(pool.ids.tolist()) <= {0, 3, 4}  # pool ids stay the file's row numbers
    assert [dict(zip(drop.ids.tolist(), drop.item_ids, strict=True))[int(i)] for i in pool.ids] == pool.item_ids


def test_impute_unknown_value(tmp_path) -> None:
    (tmp_path / "d.csv").write_text("x,label\n1,a\n2,b\n")
    with pytest.raises(ConfigError, match="unknown impute 'zero'; use --impute mean, median or drop"):
        load_dataset("file", features=str(tmp_path / "d.csv"), impute="zero")


def test_missing_label_refused_unless_dropped(tmp_path) -> None:
    (tmp_path / "d.csv").write_text("x,label\n1,a\n2,\n3,b\n4,a\n")
    with pytest.raises(DataError, match=r"1 row\(s\) of .* have no label in column 'label' \(first: data row 1\); "
                                        "give them a class, or drop them with --impute drop"):
        load_dataset("file", features=str(tmp_path / "d.csv"))
    ds = load_dataset("file", features=str(tmp_path / "d.csv"), impute="drop")
    assert ds.ids.tolist() == [0, 2, 3] and ds.y.tolist() == [0, 1, 0]


def test_nan_in_arrays_imputed_or_refused(tmp_path) -> None:
    X = np.arange(12, dtype=float).reshape(6, 2)
    X[1, 0] = np.nan
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", np.arange(6) % 2)
    kw = {"features": str(tmp_path / "X.npy"), "labels": str(tmp_path / "y.npy")}
    with pytest.raises(DataError, match=r"missing values \(NaN\) in 1 row\(s\) \(columns \[0\]\); .*--impute"):
        load_dataset("file", **kw)
    assert load_dataset("file", impute="mean", **kw).X[1, 0] == pytest.approx(np.mean([0, 4, 6, 8, 10]))
    dropped = load_dataset("file", impute="drop", **kw)
    assert dropped.ids.tolist() == [0, 2, 3, 4, 5] and dropped.y.tolist() == [0, 0, 1, 0, 1]


def test_table_options_refused_on_arrays(tmp_path) -> None:
    np.save(tmp_path / "X.npy", np.zeros((4, 2)))
    with pytest.raises(ConfigError, match=r"--id-column need\(s\) a .csv or .parquet features file"):
        load_dataset("file", features=str(tmp_path / "X.npy"), id_column="id")


def test_row_with_wrong_field_count(tmp_path) -> None:
    (tmp_path / "d.csv").write_text("x,y,label\n1,2,a\n3,4,5,b\n")
    with pytest.raises(DataError, match=r"data row 1 of .* has 4 fields but the header has 3"):
        load_dataset("file", features=str(tmp_path / "d.csv"))


# -- Parquet --------------------------------------------------------------------------------------------------

def test_parquet_same_as_csv(tmp_path) -> None:
    pa = pytest.importorskip("pyarrow")  # a dev dependency: always installed for the tests
    import pyarrow.parquet as pq

    _customers(tmp_path / "c.csv", missing_age=(4,))
    n = 24
    rng = np.random.default_rng(7)
    incomes = [float(f"{rng.normal(50, 10):.2f}") for _ in range(n)]
    table = pa.table({"customer_id": [f"C{i:03d}" for i in range(n)],
                      "age": [None if i == 4 else 20 + i for i in range(n)], "income": incomes,
                      "plan": [("basic", "gold", "pro")[i % 3] for i in range(n)],
                      "city": [f"town{i % 5}" for i in range(n)],
                      "churned": ["yes" if i % 2 else "no" for i in range(n)]})
    pq.write_table(table, tmp_path / "c.parquet")
    kw = {"label_column": "churned", "id_column": "customer_id", "categorical": "plan", "drop_columns": "city",
          "impute": "median"}
    a = load_dataset("file", features=str(tmp_path / "c.csv"), **kw)
    b = load_dataset("file", features=str(tmp_path / "c.parquet"), **kw)
    np.testing.assert_allclose(a.X, b.X)
    assert a.item_ids == b.item_ids and a.classes == b.classes
    np.testing.assert_array_equal(a.y, b.y)


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, monkeypatch) -> None:
    (tmp_path / "c.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ConfigError, match=r"needs pyarrow; install it with `pip install al-loop\[parquet\]`"):
        load_dataset("file", features=str(tmp_path / "c.parquet"))


# -- labels ---------------------------------------------------------------------------------------------------

def test_single_class_refused(tmp_path) -> None:
    (tmp_path / "d.csv").write_text("x,label\n1,cat\n2,cat\n3,cat\n")
    with pytest.raises(DataError, match="only one class 'cat' in the labels of .*; active learning needs at least two"):
        load_dataset("file", features=str(tmp_path / "d.csv"))


def test_two_dimensional_labels_refused(tmp_path) -> None:
    np.save(tmp_path / "X.npy", np.zeros((4, 2)))
    np.save(tmp_path / "Y.npy", np.array([[0, 1, 1], [1, 0, 0], [0, 0, 1], [1, 1, 0]]))
    with pytest.raises(DataError, match=r"shape \(4, 3\); multi-label is not supported yet: give one label per row"):
        load_dataset("file", features=str(tmp_path / "X.npy"), labels=str(tmp_path / "Y.npy"))
    np.savez(tmp_path / "d.npz", X=np.zeros((4, 2)), y=np.ones((4, 2)))
    with pytest.raises(DataError, match="multi-label is not supported yet"):
        load_dataset("file", features=str(tmp_path / "d.npz"))
    np.save(tmp_path / "col.npy", np.array([[0], [1], [0], [1]]))  # one column is one label per row
    ds = load_dataset("file", features=str(tmp_path / "X.npy"), labels=str(tmp_path / "col.npy"))
    assert ds.y.tolist() == [0, 1, 0, 1]


def test_labels_csv_with_several_columns_refused(tmp_path) -> None:
    np.save(tmp_path / "X.npy", np.zeros((3, 2)))
    (tmp_path / "y.csv").write_text("0,1\n1,0\n1,1\n")
    with pytest.raises(DataError, match="has 2 columns per row; multi-label is not supported yet: give one label "
                                        "per row"):
        load_dataset("file", features=str(tmp_path / "X.npy"), labels=str(tmp_path / "y.csv"))


def test_regression_target_refused(tmp_path) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "X.npy", rng.normal(size=(40, 2)))
    np.save(tmp_path / "y.npy", rng.normal(size=40))
    with pytest.raises(DataError, match=r"look like a regression target \(40 distinct float values\); al-loop does "
                                        "classification"):
        load_dataset("file", features=str(tmp_path / "X.npy"), labels=str(tmp_path / "y.npy"))
    rows = ["x,price"] + [f"{i},{v:.3f}" for i, v in enumerate(rng.normal(size=40))]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    with pytest.raises(DataError, match="regression target"):
        load_dataset("file", features=str(tmp_path / "d.csv"), label_column="price")
    np.save(tmp_path / "few.npy", np.array([0.5, 1.5] * 20))  # few distinct values: classes, not regression
    assert load_dataset("file", features=str(tmp_path / "X.npy"), labels=str(tmp_path / "few.npy")).classes == (
        "0.5", "1.5")


@pytest.mark.parametrize("suffix, first", [(".txt", "label"), (".csv", "label"), (".txt", "outcome")])
def test_header_line_in_labels_file_refused(tmp_path, suffix, first) -> None:
    np.save(tmp_path / "X.npy", np.zeros((4, 2)))
    (tmp_path / f"y{suffix}").write_text(f"{first}\n0\n1\n0\n")
    with pytest.raises(DataError, match=f"the first line of .*y\\{suffix} looks like a header \\('{first}'\\); remove "
                                        "it or pass the labels as a column of the features file with --label-column"):
        load_dataset("file", features=str(tmp_path / "X.npy"), labels=str(tmp_path / f"y{suffix}"))


def test_class_names_without_header_accepted(tmp_path) -> None:
    np.save(tmp_path / "X.npy", np.zeros((4, 2)))
    (tmp_path / "y.txt").write_text("dog\ncat\ndog\ncat\n")
    assert load_dataset("file", features=str(tmp_path / "X.npy"), labels=str(tmp_path / "y.txt")).classes == (
        "cat", "dog")


# -- texts ----------------------------------------------------------------------------------------------------

TICKETS = [("T1", "my printer is on fire", "hardware"), ("T2", "cannot log in to the portal", "account"),
           ("T3", "keyboard keys stuck", "hardware"), ("T4", "password reset does not arrive", "account"),
           ("T5", "screen flickers all day", "hardware"), ("T6", "account locked after update", "account"),
           ("T7", "mouse stopped working", "hardware"), ("T8", "two factor code rejected", "account")]


def _tickets_jsonl(path) -> None:
    path.write_text("\n".join(json.dumps({"ticket": t, "body": b, "team": lab}) for t, b, lab in TICKETS) + "\n")


def test_texts_from_jsonl_keep_their_ids(tmp_path) -> None:
    _tickets_jsonl(tmp_path / "t.jsonl")
    ds = load_dataset("text", path=str(tmp_path / "t.jsonl"), text_column="body", label_column="team",
                      id_column="ticket")
    assert ds.item_ids == [t for t, _, _ in TICKETS] and ds.texts[0] == "my printer is on fire"
    assert ds.classes == ("account", "hardware") and ds.kind == "text"
    pool = make_pool(ds, 0.25, 0)
    assert pool.texts == [TICKETS[i][1] for i in pool.ids] and pool.item_ids == [TICKETS[i][0] for i in pool.ids]
    assert pool.catalogue is not None and pool.catalogue.ids.tolist() == list(range(8))


def test_texts_csv_sniffed(tmp_path) -> None:
    rows = ["id;text;label"] + [f"{t};{b};{lab}" for t, b, lab in TICKETS]
    (tmp_path / "t.csv").write_text("\n".join(rows))
    ds = load_dataset("text", path=str(tmp_path / "t.csv"), id_column="id")
    assert ds.item_ids[1] == "T2" and len(ds.texts) == 8


def test_texts_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="dataset 'text' needs a texts file: pass --texts FILE"):
        load_dataset("text")
    (tmp_path / "t.txt").write_text("one\ntwo\n")
    with pytest.raises(DataError, match=r"is a .txt \(one text per line\) and has no labels; simulate needs labelled "
                                        "texts"):
        load_dataset("text", path=str(tmp_path / "t.txt"))
    assert load_dataset("text", path=str(tmp_path / "t.txt"), classes=["a", "b"]).y is None  # campaigns
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b", label: "y"}\n')
    with pytest.raises(DataError, match="line 2 of .* is not JSON"):
        load_dataset("text", path=str(tmp_path / "bad.jsonl"))
    (tmp_path / "multi.jsonl").write_text('{"text": "a", "label": ["x", "y"]}\n{"text": "b", "label": ["y"]}\n')
    with pytest.raises(DataError, match="multi-label is not supported yet"):
        load_dataset("text", path=str(tmp_path / "multi.jsonl"))
    _tickets_jsonl(tmp_path / "t.jsonl")
    with pytest.raises(DataError, match=r"has no column 'text' \(columns: \['ticket', 'body', 'team'\]\); pass "
                                        "--text-column NAME"):
        load_dataset("text", path=str(tmp_path / "t.jsonl"))
    with pytest.raises(DataError, match="has no label column 'label'.*pass --label-column NAME"):
        load_dataset("text", path=str(tmp_path / "t.jsonl"), text_column="body")


# -- test sets ------------------------------------------------------------------------------------------------

def test_test_file_encoded_with_the_training_columns(tmp_path) -> None:
    (tmp_path / "train.csv").write_text("id,x,plan,label\na,1,p,0\nb,,q,1\nc,2,q,0\nd,6,r,1\n")
    (tmp_path / "test.csv").write_text("label,plan,x,id\n1,q,,t1\n0,zz,5,t2\n")
    ds = load_dataset("file", features=str(tmp_path / "train.csv"), id_column="id", categorical="plan",
                      impute="mean", test_features=str(tmp_path / "test.csv"))
    assert ds.X.shape[1] == ds.X_test.shape[1] == 4
    np.testing.assert_allclose(ds.X_test, [[3.0, 0, 1, 0], [5.0, 0, 0, 0]])  # training mean, unseen category -> 0
    assert ds.y_test.tolist() == [1, 0]
    assert any("1 row(s) of column 'plan' hold categories the training file lacks ('zz')" in n for n in ds.notes)
    pool = make_pool(ds, 0.25, 0)
    assert pool.ids.tolist() == [0, 1, 2, 3]  # nothing of the main file is held out
    np.testing.assert_array_equal(pool.X_test, ds.X_test)


def test_test_file_errors(tmp_path) -> None:
    X = np.random.default_rng(0).normal(size=(8, 3))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", np.arange(8) % 2)
    np.save(tmp_path / "Xt.npy", X[:, :2])
    np.save(tmp_path / "yt.npy", np.array([0, 1, 2, 1, 0, 1, 0, 1]))
    kw = {"features": str(tmp_path / "X.npy"), "labels": str(tmp_path / "y.npy")}
    with pytest.raises(DataError, match=r"Xt.npy has 2 features per row but .*X.npy has 3; give the test set the same "
                                        "feature columns"):
        load_dataset("file", test_features=str(tmp_path / "Xt.npy"), test_labels=str(tmp_path / "yt.npy"), **kw)
    np.save(tmp_path / "Xt.npy", X)
    with pytest.raises(DataError, match=r"hold class\(es\) \['2'\] that the training labels lack"):
        load_dataset("file", test_features=str(tmp_path / "Xt.npy"), test_labels=str(tmp_path / "yt.npy"), **kw)
    with pytest.raises(DataError, match="no labels for the test set"):
        load_dataset("file", test_features=str(tmp_path / "Xt.npy"), **kw)
    with pytest.raises(ConfigError, match="--test-labels needs --test-features PATH"):
        load_dataset("file", test_labels=str(tmp_path / "yt.npy"), **kw)
    (tmp_path / "train.csv").write_text("x,plan,label\n1,p,0\n2,q,1\n")
    (tmp_path / "test.csv").write_text("x,label\n1,0\n")
    with pytest.raises(DataError, match=r"test.csv lacks the feature column\(s\) 'plan' of the training file"):
        load_dataset("file", features=str(tmp_path / "train.csv"), categorical="plan",
                     test_features=str(tmp_path / "test.csv"))


# -- the CLI: options, the store's items table, exports ---------------------------------------------------------

def _simulate(args: list[str], tmp_path, capsys, monkeypatch) -> tuple[int, str, str]:
    return run_cli(["simulate", "--db", str(tmp_path / "s.sqlite"), *TINY, *args], capsys, monkeypatch)


def _records(tmp_path, what: str, capsys, monkeypatch) -> list[dict]:
    code, out, _ = run_cli(["export", "--db", str(tmp_path / "s.sqlite"), "--what", what], capsys, monkeypatch)
    assert code == 0
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_cli_csv_with_ids_exports_item_ids_and_resume_rebuilds_the_pool(tmp_path, capsys, monkeypatch) -> None:
    from al_loop import api
    from al_loop.store import Store

    _customers(tmp_path / "c.csv", n=40, delimiter=";", bom=True, missing_age=(3,))
    code, _, err = _simulate(["--features", str(tmp_path / "c.csv"), "--label-column", "churned", "--id-column",
                              "customer_id", "--categorical", "plan", "--drop-columns", "city", "--impute", "drop",
                              "--test-fraction", "0.3"], tmp_path, capsys, monkeypatch)
    assert code == 0, err
    assert "--impute drop removed 1 row(s)" in err  # the note reaches the user
    labels = _records(tmp_path, "labels", capsys, monkeypatch)
    assert labels and all(r["item_id"] == f"C{r['pool_id']:03d}" for r in labels)
    assert all(r["pool_id"] != 3 for r in labels)
    selections = _records(tmp_path, "selections", capsys, monkeypatch)
    assert all(r["item_id"] == f"C{r['pool_id']:03d}" for r in selections)
    assert all("text" not in r for r in selections)
    metrics = _records(tmp_path, "metrics", capsys, monkeypatch)
    assert metrics and "item_id" not in metrics[0]
    store = Store(tmp_path / "s.sqlite", readonly=True)
    try:
        config = store.config(1)
        items = store.items(config.dataset_key())
    finally:
        store.close()
    assert config.test_fraction == 0.3 and config.dataset_params["id_column"] == "customer_id"
    assert config.dataset_params["impute"] == "drop" and config.dataset_params["categorical"] == "plan"
    assert sorted(items) == [i for i in range(40) if i != 3] and items[7].item_id == "C007"
    api._POOL_CACHE.clear()  # resume in a new process: the config alone rebuilds the same pool
    pool = api.build_pool(config)
    assert len(pool) + len(pool.X_test) == 39 and pool.item_ids == [f"C{i:03d}" for i in pool.ids]


def test_cli_texts_jsonl_exports_ids_and_texts(tmp_path, capsys, monkeypatch) -> None:
    _tickets_jsonl(tmp_path / "t.jsonl")
    code, _, err = _simulate(["--texts", str(tmp_path / "t.jsonl"), "--text-column", "body", "--label-column", "team",
                              "--id-column", "ticket", "--init", "2", "--batch", "2"], tmp_path, capsys, monkeypatch)
    assert code == 0, err
    by_id = {t: b for t, b, _ in TICKETS}
    labels = _records(tmp_path, "labels", capsys, monkeypatch)
    assert labels and all(by_id[r["item_id"]] == r["text"] for r in labels)
    assert all(r["item_id"] == TICKETS[r["pool_id"]][0] for r in labels)


def test_cli_user_test_set_holds_nothing_out(tmp_path, capsys, monkeypatch) -> None:
    from al_loop.store import Store

    _customers(tmp_path / "train.csv", n=30)
    _customers(tmp_path / "test.csv", n=10)
    code, _, err = _simulate(["--features", str(tmp_path / "train.csv"), "--label-column", "churned",
                              "--id-column", "customer_id", "--numeric-only", "--test-features",
                              str(tmp_path / "test.csv")], tmp_path, capsys, monkeypatch)
    assert code == 0, err
    assert "--numeric-only dropped the non-numeric column(s) 'plan', 'city'" in err
    store = Store(tmp_path / "s.sqlite", readonly=True)
    try:
        config = store.config(1)
        assert sorted(store.items(config.dataset_key())) == list(range(30))  # every row is in the pool
    finally:
        store.close()
    assert config.dataset_params["test_features"] == str(tmp_path / "test.csv")


@pytest.mark.parametrize("args, needle", [
    (["--labels", "LABELS"], "--labels need(s) --features FILE (or --texts FILE); without it the built-in dataset "
                             "'digits' would run"),
    (["--dataset", "text"], "--dataset text needs --texts FILE"),
    (["--texts", "TEXTS.txt"], "is a .txt (one text per line) and has no labels; simulate needs labelled texts"),
    (["--texts", "TEXTS.jsonl", "--features", "C.csv"], "--texts and --features/--labels are two data sources"),
    (["--texts", "TEXTS.jsonl", "--impute", "mean"], "--impute apply to --features tables, not to --texts"),
    (["--features", "C.csv", "--label-column", "churned", "--test-fraction", "0.2", "--test-features", "C.csv"],
     "--test-fraction and --test-features both choose the test set"),
    (["--features", "C.csv", "--label-column", "churned"], "are not numeric; drop them (--drop-columns"),
    (["--features", "C.csv", "--label-column", "churned", "--numeric-only", "--impute", "zero"],
     "unknown impute 'zero'; use --impute mean, median or drop"),
    (["--features", "C.csv", "--label-column", "churned", "--numeric-only", "--drop-columns", "nope"],
     "--drop-columns names column(s) 'nope'"),
    (["--features", "C.csv", "--label-column", "churned", "--id-column", "plan", "--numeric-only"],
     "id column 'plan' of"),
    (["--features", "ONE.csv"], "only one class 'a' in the labels"),
    (["--features", "C.csv", "--label-column", "churned", "--numeric-only", "--test-fraction", "1.5"],
     "test_fraction must be in (0, 1)"),
])
def test_cli_bad_own_data_one_line_error_no_store(args, needle, tmp_path, capsys, monkeypatch) -> None:
    _customers(tmp_path / "c.csv")
    (tmp_path / "y.txt").write_text("a\nb\n")
    (tmp_path / "t.txt").write_text("one text\nanother\n")
    _tickets_jsonl(tmp_path / "t.jsonl")
    (tmp_path / "one.csv").write_text("x,label\n1,a\n2,a\n3,a\n4,a\n")
    names = {"LABELS": "y.txt", "TEXTS.txt": "t.txt", "TEXTS.jsonl": "t.jsonl", "C.csv": "c.csv", "ONE.csv": "one.csv"}
    args = [str(tmp_path / names[a]) if a in names else a for a in args]
    code, _, err = _simulate(args, tmp_path, capsys, monkeypatch)
    assert code == 2
    assert needle in one_line_error(err)
    assert not (tmp_path / "s.sqlite").exists()


def test_campaign_init_records_the_texts(tmp_path, monkeypatch) -> None:
    """A campaign over a .txt (no labels, no ids) records every text so that exports can show it."""
    from types import SimpleNamespace

    import al_loop.campaign as campaign
    from al_loop.oracle import Oracle
    from al_loop.store import Store

    class FakeLabelStudio(Oracle):
        asynchronous = True

        def __init__(self) -> None:
            self.project_id = 1

        @classmethod
        def for_project(cls, *_args, **_kwargs) -> FakeLabelStudio:
            return cls()

        def submit(self, items):
            return {it.key: str(i) for i, it in enumerate(items)}

        def lookup(self, keys):
            return {}

        def collect(self, run_id, round_):
            return []

        def project_summary(self):  # an empty project: nothing of another campaign to refuse
            return {"foreign": 0, "foreign_campaigns": []}

        def claim_project(self):
            return None

    monkeypatch.setattr(campaign, "ORACLES", SimpleNamespace(get=lambda _name: FakeLabelStudio))
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "test-key")
    texts = [body for _, body, _ in TICKETS]
    (tmp_path / "t.txt").write_text("\n".join(texts) + "\n")
    db = tmp_path / "c.sqlite"
    run_id = campaign.init_campaign(str(db), data=str(tmp_path / "t.txt"), classes=["account", "hardware"],
                                    strategy="random", batch=2, init=2,
                                    options=campaign.CampaignOptions(url="http://127.0.0.1:1", title="t",
                                                                     kind="text"))
    store = Store(db, readonly=True)
    try:
        items = store.items(store.config(run_id).dataset_key())
    finally:
        store.close()
    assert [items[i].text for i in range(len(texts))] == texts and items[0].item_id is None


EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[1] / "examples" / "data"


def test_readme_csv_example_runs(tmp_path, capsys, monkeypatch) -> None:
    """The README's customers command (fewer rounds): item ids in the export are the file's customer ids."""
    lines = (EXAMPLES / "customers.csv").read_text(encoding="utf-8-sig").splitlines()[1:]
    code, _, err = run_cli(["simulate", "--features", str(EXAMPLES / "customers.csv"), "--label-column", "churned",
                            "--id-column", "customer_id", "--categorical", "plan", "--drop-columns", "city",
                            "--impute", "median", "--strategy", "margin", "--rounds", "1", "--batch", "10",
                            "--init", "10", "--db", str(tmp_path / "s.sqlite")], capsys, monkeypatch)
    assert code == 0, err
    labels = _records(tmp_path, "labels", capsys, monkeypatch)
    assert len(labels) == 20
    assert all(r["item_id"] == lines[r["pool_id"]].split(";")[0] for r in labels)
    assert all(r["label"] == lines[r["pool_id"]].split(";")[-1] for r in labels)


def test_readme_texts_example_runs(tmp_path, capsys, monkeypatch) -> None:
    records = [json.loads(line) for line in (EXAMPLES / "tickets.jsonl").read_text().splitlines()]
    code, _, err = run_cli(["simulate", "--texts", str(EXAMPLES / "tickets.jsonl"), "--text-column", "body",
                            "--label-column", "team", "--id-column", "ticket", "--strategy", "entropy",
                            "--rounds", "1", "--batch", "6", "--init", "6", "--test-fraction", "0.3",
                            "--db", str(tmp_path / "s.sqlite")], capsys, monkeypatch)
    assert code == 0, err
    selections = _records(tmp_path, "selections", capsys, monkeypatch)
    assert len(selections) == 12
    assert all((r["item_id"], r["text"]) == (records[r["pool_id"]]["ticket"], records[r["pool_id"]]["body"])
               for r in selections)
