"""Labels of the user's own data: read, checked and encoded as class indices.

Wrong labels are refused rather than guessed at: a single class, several labels
per row (multi-label), a continuous target (regression), a header line in a
labels file. Each refusal is one line naming the cause and the fix.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from al_loop.errors import DataError

#: more distinct non-integral numbers than this and the labels are taken for a regression target
REGRESSION_DISTINCT = 20
HEADER_WORDS = frozenset({"label", "labels", "class", "classes", "target", "y", "category", "tag", "gold"})


def _as_float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def label_strings(raw: np.ndarray, source: str) -> np.ndarray:
    """Labels as strings, shape (n,): integral floats lose their ``.0``; refuses 2-D, NaN and regression targets."""
    raw = np.asarray(raw)
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw[:, 0]
    if raw.ndim != 1:
        raise DataError(f"the labels of {source} have shape {raw.shape}; multi-label is not supported yet: "
                        "give one label per row")
    if raw.dtype.kind == "f":
        if not np.isfinite(raw).all():
            raise DataError(f"the labels of {source} contain NaN or Inf; drop those rows or give every row a class")
        if np.all(raw == np.round(raw)):
            raw = raw.astype(np.int64)
    if raw.dtype.kind in "OUS":
        values = [str(v).strip() for v in raw]
        numbers = [_as_float(v) for v in values]
        if all(x is not None for x in numbers):
            _check_not_regression(np.asarray(numbers, dtype=np.float64), source)
        return np.asarray(values, dtype=object)
    if raw.dtype.kind == "f":
        _check_not_regression(raw, source)
    return np.asarray([str(v) for v in raw.tolist()], dtype=object)


def _check_not_regression(values: np.ndarray, source: str) -> None:
    distinct = np.unique(values)
    if len(distinct) > REGRESSION_DISTINCT and not np.all(distinct == np.round(distinct)):
        raise DataError(f"the labels of {source} look like a regression target ({len(distinct)} distinct float "
                        "values); al-loop does classification: give class names or bin the target")


def _class_order(name: str) -> tuple[int, str]:
    # integers by length then digits ("2" before "10"), then names alphabetically; runs in stores rely on it
    return (len(name), name) if name.lstrip("-").isdigit() else (1 << 30, name)


def encode_labels(raw: np.ndarray, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class indices, shape (n,), and the sorted class names of ``raw`` labels of ``source``.

    Refuses a single class: active learning needs at least two.
    """
    names = label_strings(raw, source)
    empty = int(sum(1 for v in names if v == ""))
    if empty:
        raise DataError(f"{empty} label(s) of {source} are empty; give every row a class or drop those rows")
    classes = tuple(sorted(set(names.tolist()), key=_class_order))
    if len(classes) == 1:
        raise DataError(f"only one class {classes[0]!r} in the labels of {source}; active learning needs at "
                        "least two")
    index = {c: i for i, c in enumerate(classes)}
    return np.asarray([index[v] for v in names], dtype=np.int64), classes


def map_labels(raw: np.ndarray, classes: tuple[str, ...], source: str) -> np.ndarray:
    """Class indices, shape (n,), of ``raw`` labels (a test set) in the training ``classes``."""
    names = label_strings(raw, source)
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({v for v in names.tolist() if v not in index})
    if unknown:
        raise DataError(f"the labels of {source} hold class(es) {unknown[:5]} that the training labels lack "
                        f"({list(classes)}); give the test set the training classes only")
    return np.asarray([index[v] for v in names], dtype=np.int64)


def read_labels_file(path: Path) -> np.ndarray:
    """Labels from ``.npy`` (any shape, checked later) or ``.csv``/``.txt`` (one label per line).

    Refuses a header line (``label`` first, or a word above numbers) and rows of
    several comma/semicolon/tab-separated labels in a ``.csv``.
    """
    if not path.exists():
        raise DataError(f"labels file {path} does not exist; check the --labels path")
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False)
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; save the labels as UTF-8, one per line") from None
    if not lines:
        raise DataError(f"labels file {path} is empty; give one label per row")
    if path.suffix.lower() == ".csv":
        from al_loop.tabular import sniff_delimiter

        rows = list(csv.reader(lines, delimiter=sniff_delimiter(lines)))
        if len(rows) > 1 and max(len(r) for r in rows[1:]) > 1:
            raise DataError(f"{path} has {max(len(r) for r in rows)} columns per row; multi-label is not supported "
                            "yet: give one label per row (or pass the labels as a column of the features file "
                            "with --label-column)")
        lines = [r[0].strip() if r else "" for r in rows]
    first, rest = lines[0], lines[1:]
    numeric_rest = len(rest) >= 2 and all(_as_float(v) is not None for v in rest)
    looks_header = (first.lower() in HEADER_WORDS and first not in rest) or (
        numeric_rest and _as_float(first) is None)
    if looks_header:
        raise DataError(f"the first line of {path} looks like a header ({first!r}); remove it or pass the labels as "
                        "a column of the features file with --label-column")
    return np.asarray(lines, dtype=object)
