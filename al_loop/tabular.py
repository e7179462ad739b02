"""Tables of the user's own: CSV (delimiter sniffed, UTF-8 BOM accepted) and Parquet, turned into features.

A table is read into columns (:class:`Table`); :func:`fit_encoding` decides, on the
training file, which columns become features, how categorical columns are
one-hot encoded and what fills a missing value; :func:`apply_encoding` turns any
table with those columns (the training file, or the user's own test file) into
a feature matrix with the same columns.

Row frame: ``rows`` returned here are 0-based data-row numbers of the file
(header excluded); they become the global pool ids, so an item keeps its id
when rows with missing values are dropped.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from al_loop.errors import ConfigError, DataError

MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})
IMPUTE_CHOICES = ("mean", "median", "drop")
SNIFF_LINES = 50


@dataclass(frozen=True)
class TableOptions:
    """How the columns of a table become features, labels and item ids.

    Attributes
    ----------
    label_column : str or None
        Column holding the class of each row (None: labels come from elsewhere).
    id_column : str or None
        Column holding the user's own item id (a string, unique, non-empty).
    drop_columns : tuple of str
        Columns that are neither features, labels nor ids.
    categorical : tuple of str
        Columns one-hot encoded (categories sorted as strings).
    numeric_only : bool
        Drop every non-numeric column that is not categorical (with a note) instead of refusing.
    impute : {"mean", "median", "drop"} or None
        What to do with missing feature values: fill numeric columns with the training
        column's mean or median (categorical ones with its most frequent category), or
        drop the rows. None refuses missing values.
    """

    label_column: str | None = "label"
    id_column: str | None = None
    drop_columns: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    numeric_only: bool = False
    impute: str | None = None

    def __post_init__(self) -> None:
        if self.impute is not None and self.impute not in IMPUTE_CHOICES:
            raise ConfigError(f"unknown impute {self.impute!r}; use --impute mean, median or drop")


@dataclass
class Table:
    """Columns of a file, each either numeric (float64, NaN where missing) or text (str, None where missing).

    Attributes
    ----------
    path : Path
        The file read (named in every error).
    names : list of str
        Column names in file order.
    numeric : dict of str to ndarray, shape (n,)
        Numeric columns.
    text : dict of str to ndarray of object, shape (n,)
        Non-numeric columns (values ``str`` or ``None``).
    raw : dict of str to ndarray of object, shape (n,)
        The values of numeric CSV columns as written (``"0017"`` stays ``"0017"`` as an id or category).
    """

    path: Path
    names: list[str]
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    text: dict[str, np.ndarray] = field(default_factory=dict)
    raw: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        first = self.names[0]
        return len(self.numeric[first] if first in self.numeric else self.text[first])

    def missing(self, name: str) -> np.ndarray:
        """Boolean mask, shape (n,): rows whose ``name`` value is missing."""
        if name in self.numeric:
            return np.isnan(self.numeric[name])
        return np.asarray([v is None for v in self.text[name]], dtype=bool)

    def strings(self, name: str) -> np.ndarray:
        """Values of ``name`` as strings (integral numbers without ``.0``; None where missing), shape (n,)."""
        if name in self.text:
            return self.text[name]
        if name in self.raw:
            return self.raw[name]
        return np.asarray([None if np.isnan(v) else _number_text(v) for v in self.numeric[name]], dtype=object)


def _number_text(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)


def sniff_delimiter(lines: Sequence[str]) -> str:
    """The delimiter of CSV ``lines`` among ``,``, ``;`` and tab (``,`` when the sniffer cannot tell)."""
    sample = "\n".join(lines[:SNIFF_LINES])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
    except csv.Error:
        return ","


def read_csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and data rows of a CSV file (UTF-8 with or without BOM; delimiter sniffed).

    Raises :class:`DataError` for an empty file, a file that is not UTF-8, or a row
    whose field count differs from the header's.
    """
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV") from None
    lines = content.splitlines()
    if not any(ln.strip() for ln in lines):
        raise DataError(f"{path} is empty; give a header row and one row per item")
    delimiter = sniff_delimiter(lines)
    rows = [r for r in csv.reader(lines, delimiter=delimiter) if r and any(c.strip() for c in r)]
    header, body = [h.strip() for h in rows[0]], rows[1:]
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise DataError(f"data row {i} of {path} has {len(r)} fields but the header has {len(header)} "
                            f"(delimiter {delimiter!r}); check the quoting or the delimiter")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise DataError(f"{path} repeats the column name(s) {_names(repeated)}; give every column its own name")
    return header, body


def _column_from_strings(values: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """(numbers, texts) when every present value parses as a number, else (texts, None); None/NaN where missing."""
    stripped = [v.strip() for v in values]
    missing = [v.lower() in MISSING_TOKENS for v in stripped]
    texts = np.asarray([None if m else v for v, m in zip(stripped, missing, strict=True)], dtype=object)
    try:
        nums = np.asarray([np.nan if m else float(v) for v, m in zip(stripped, missing, strict=True)],
                          dtype=np.float64)
        return nums, texts
    except ValueError:
        return texts, None


def read_csv_table(path: Path) -> Table:
    """Read a CSV file into a :class:`Table` (missing: empty, NA, N/A, NaN, null, None; any case)."""
    header, body = read_csv_rows(path)
    table = Table(path=path, names=header)
    for j, name in enumerate(header):
        column, as_written = _column_from_strings([r[j] for r in body])
        if as_written is None:
            table.text[name] = column
        else:
            table.numeric[name], table.raw[name] = column, as_written
    return table


def read_parquet_table(path: Path) -> Table:
    """Read a Parquet file into a :class:`Table` (pyarrow; nulls and NaN are missing)."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
        import pyarrow.types as pat
    except ImportError:
        raise ConfigError(f"reading {path} needs pyarrow; install it with `pip install al-loop[parquet]`") from None
    try:
        arrow = pq.read_table(path)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid/OSError family
        raise DataError(f"{path} is not a readable Parquet file ({type(exc).__name__}: {exc}); "
                        "check the file or export it again") from None
    table = Table(path=path, names=[str(n) for n in arrow.column_names])
    for name, column in zip(table.names, arrow.columns, strict=True):
        kind = column.type
        if pat.is_integer(kind) or pat.is_floating(kind) or pat.is_boolean(kind):
            as_float = pc.fill_null(pc.cast(column, pa.float64()), float("nan"))
            table.numeric[name] = np.asarray(as_float.to_numpy(), dtype=np.float64)
        else:
            values = column.to_pylist()
            table.text[name] = np.asarray([None if v is None else str(v) for v in values], dtype=object)
    return table


def read_table(path: Path) -> Table:
    """Read ``.csv`` or ``.parquet`` by suffix."""
    if path.suffix.lower() == ".parquet":
        return read_parquet_table(path)
    return read_csv_table(path)


@dataclass
class Encoding:
    """What :func:`fit_encoding` learnt from the training table.

    Attributes
    ----------
    numeric : list of str
        Numeric feature columns, in file order.
    categories : dict of str to list of str
        Categorical columns (file order) and their sorted categories; each gives
        ``len(categories)`` one-hot columns after the numeric ones.
    fill : dict of str to float or str
        The value that replaces a missing one, per column (impute mean/median).
    notes : list of str
        What was done without being asked explicitly (e.g. columns dropped by ``numeric_only``).
    """

    numeric: list[str]
    categories: dict[str, list[str]]
    fill: dict[str, float | str]
    notes: list[str] = field(default_factory=list)

    @property
    def feature_names(self) -> list[str]:
        """Names of the columns of the matrix, e.g. ``age``, ``plan=gold``."""
        return self.numeric + [f"{c}={v}" for c, cats in self.categories.items() for v in cats]


def _check_named(table: Table, names: Sequence[str], option: str) -> None:
    unknown = [n for n in names if n not in table.names]
    if unknown:
        raise ConfigError(f"{option} names column(s) {_names(unknown)} that {table.path} lacks "
                          f"(columns: {_names(table.names)}); check the spelling")


def fit_encoding(table: Table, options: TableOptions, reserved: Sequence[str]) -> Encoding:
    """Decide the feature columns of ``table`` (the training file).

    ``reserved`` are the columns that are not features (labels, ids). Refuses a
    non-numeric column that is neither dropped nor categorical, unless
    ``numeric_only``.
    """
    _check_named(table, options.drop_columns, "--drop-columns")
    _check_named(table, options.categorical, "--categorical")
    skip = set(reserved) | set(options.drop_columns)
    clash = sorted(set(options.categorical) & skip)
    if clash:
        raise ConfigError(f"column(s) {_names(clash)} are both --categorical and dropped, labels or ids; "
                          "name each column in one option only")
    candidates = [n for n in table.names if n not in skip]
    categorical = [n for n in candidates if n in options.categorical]
    numeric = [n for n in candidates if n in table.numeric and n not in options.categorical]
    text = [n for n in candidates if n in table.text and n not in options.categorical]
    notes: list[str] = []
    if text and options.numeric_only:
        notes.append(f"{table.path.name}: --numeric-only dropped the non-numeric column(s) {_names(text)}")
    elif text:
        joined = ",".join(text)
        unique = [c for c in text if len(table) > 1 and len({v for v in table.text[c]}) == len(table)]
        hint = f"; {unique[0]!r} has one value per row: pass --id-column {unique[0]} if it is your item id" \
            if unique and not options.id_column else ""
        raise DataError(f"column(s) {_names(text)} of {table.path} are not numeric; drop them "
                        f"(--drop-columns {joined}), one-hot encode them (--categorical {joined}) "
                        f"or keep only the numeric columns (--numeric-only){hint}")
    if not numeric and not categorical:
        raise DataError(f"{table.path} has no feature columns left (columns: {_names(table.names)}); "
                        "keep at least one numeric or --categorical column")
    categories = {c: sorted({v for v in table.strings(c) if v is not None}) for c in categorical}
    fill: dict[str, float | str] = {}
    if options.impute in ("mean", "median"):
        for c in numeric:
            present = table.numeric[c][~np.isnan(table.numeric[c])]
            if len(present) == 0:
                raise DataError(f"column {c!r} of {table.path} has no values at all; drop it (--drop-columns {c})")
            fill[c] = float(np.mean(present) if options.impute == "mean" else np.median(present))
        for c in categorical:
            values = [v for v in table.strings(c) if v is not None]
            if values:
                uniq, counts = np.unique(np.asarray(values, dtype=str), return_counts=True)
                fill[c] = str(uniq[int(np.argmax(counts))])  # most frequent, ties to the first in sorted order
    return Encoding(numeric=numeric, categories=categories, fill=fill, notes=notes)


def missing_rows(table: Table, columns: Sequence[str], options: TableOptions) -> np.ndarray:
    """Rows (0-based) with a missing value in ``columns``; refuses them unless ``options.impute`` says what to do.

    Returns the rows to drop (empty unless ``impute == "drop"``).
    """
    masks = {c: table.missing(c) for c in columns}
    bad = {c: int(m.sum()) for c, m in masks.items() if m.any()}
    if not bad:
        return np.array([], dtype=np.int64)
    any_missing = np.logical_or.reduce(list(masks.values()))
    if options.impute == "drop":
        return np.flatnonzero(any_missing).astype(np.int64)
    if options.impute is None:
        listed = ", ".join(f"{c!r} ({n} row(s))" for c, n in bad.items())
        raise DataError(f"{table.path} has missing values in column(s) {listed}, {int(any_missing.sum())} "
                        "row(s) in all; fill them with --impute mean or --impute median, or drop those rows "
                        "with --impute drop")
    return np.array([], dtype=np.int64)


def apply_encoding(table: Table, encoding: Encoding, keep: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Feature matrix of the rows ``keep`` of ``table`` with the columns of ``encoding``.

    Parameters
    ----------
    table : Table
        The training table or a test table with the same feature columns.
    encoding : Encoding
        From :func:`fit_encoding` on the training table.
    keep : ndarray of int64, shape (m,)
        Row numbers of ``table`` to encode.

    Returns
    -------
    X : ndarray of float64, shape (m, len(encoding.feature_names))
    notes : list of str
        Categories of a test table that the training table lacks (encoded as all zeros).
    """
    needed = encoding.numeric + list(encoding.categories)
    absent = [c for c in needed if c not in table.names]
    if absent:
        raise DataError(f"{table.path} lacks the feature column(s) {_names(absent)} of the training file; "
                        "give the test file the same columns")
    not_numeric = [c for c in encoding.numeric if c not in table.numeric]
    if not_numeric:
        raise DataError(f"column(s) {_names(not_numeric)} of {table.path} are not numeric, as in the training "
                        "file; fix the values or make them --categorical")
    blocks: list[np.ndarray] = []
    for c in encoding.numeric:
        col = table.numeric[c][keep].copy()
        if c in encoding.fill:
            col[np.isnan(col)] = float(encoding.fill[c])
        blocks.append(col[:, None])
    notes: list[str] = []
    for c, cats in encoding.categories.items():
        values = table.strings(c)[keep]
        if c in encoding.fill:
            values = np.asarray([encoding.fill[c] if v is None else v for v in values], dtype=object)
        index = {v: i for i, v in enumerate(cats)}
        onehot = np.zeros((len(values), len(cats)), dtype=np.float64)
        unseen: dict[str, int] = {}
        for r, v in enumerate(values):
            i = index.get(v) if v is not None else None
            if i is None:
                if v is not None:
                    unseen[v] = unseen.get(v, 0) + 1
                continue
            onehot[r, i] = 1.0
        if unseen:
            shown = ", ".join(repr(v) for v in sorted(unseen)[:5])
            notes.append(f"{table.path.name}: {sum(unseen.values())} row(s) of column {c!r} hold categories the "
                         f"training file lacks ({shown}); they are encoded as all zeros")
        blocks.append(onehot)
    return np.hstack(blocks) if blocks else np.zeros((len(keep), 0)), notes


def item_ids(table: Table, column: str, keep: np.ndarray) -> list[str]:
    """The user's ids of rows ``keep``: strings, non-empty, unique (duplicates named, up to 5)."""
    values = table.strings(column)
    empty = [int(r) for r in keep if values[r] is None or not str(values[r]).strip()]
    if empty:
        raise DataError(f"id column {column!r} of {table.path} is empty in {len(empty)} row(s) (first: data row "
                        f"{empty[0]}); give every item an id")
    ids = [str(values[r]).strip() for r in keep]
    uniq, counts = np.unique(np.asarray(ids, dtype=str), return_counts=True)
    if len(uniq) != len(ids):
        dup = [str(v) for v in uniq[counts > 1][:5]]
        raise DataError(f"id column {column!r} of {table.path} repeats {int((counts > 1).sum())} id(s) "
                        f"({', '.join(repr(d) for d in dup)}); give every item its own id")
    return ids
