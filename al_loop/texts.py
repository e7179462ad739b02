"""Texts of the user's own: ``.csv`` (delimiter sniffed), ``.jsonl`` (one JSON object per line) or ``.txt``.

Row frame: row ``i`` of what :func:`read_texts` returns is the ``i``-th data row
of the file (header excluded; blank lines of a ``.txt``/``.jsonl`` skipped), and
becomes global pool id ``i``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from al_loop.errors import DataError
from al_loop.tabular import read_csv_rows

TEXT_SUFFIXES = (".csv", ".jsonl", ".txt")


@dataclass
class TextRows:
    """What a texts file holds.

    Attributes
    ----------
    texts : list of str
        One text per item.
    labels : ndarray, shape (n,), or None
        Raw labels (None: the file has no label column).
    item_ids : list of str or None
        The user's ids (``id_column``), unique and non-empty.
    columns : list of str
        The file's column names (keys, for ``.jsonl``; empty for ``.txt``).
    """

    texts: list[str]
    labels: np.ndarray | None
    item_ids: list[str] | None
    columns: list[str] = field(default_factory=list)


def _records_csv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    header, body = read_csv_rows(path)
    return header, [dict(zip(header, r, strict=True)) for r in body]


def _records_jsonl(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    records: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; save it as UTF-8 JSON lines") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"line {number} of {path} is not JSON ({exc.msg}); give one JSON object per line") from None
        if not isinstance(record, dict):
            raise DataError(f"line {number} of {path} is a JSON {type(record).__name__}, not an object; give one "
                            'object per line, e.g. {"text": "...", "label": "..."}')
        records.append(record)
    keys: list[str] = []
    for r in records:
        keys += [k for k in r if k not in keys]
    return keys, records


def _column(records: list[dict[str, Any]], name: str, path: Path, what: str) -> list[Any]:
    absent = [i for i, r in enumerate(records) if r.get(name) is None or str(r.get(name)).strip() == ""]
    if absent:
        raise DataError(f"{len(absent)} row(s) of {path} have no {what} in {name!r} (first: data row {absent[0]}); "
                        "fill them or remove those rows")
    return [r[name] for r in records]


def read_texts(path: Path, text_column: str = "text", label_column: str = "label",
               id_column: str | None = None) -> TextRows:
    """Read texts, optional labels and optional ids from ``path`` (.csv, .jsonl or .txt)."""
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        raise DataError(f"unsupported texts file type {suffix!r}; use .csv or .jsonl (with a text and a label "
                        "column) or .txt (one text per line, campaigns only)")
    if suffix == ".txt":
        if id_column:
            raise DataError(f"{path} is a .txt (one text per line) and has no id column {id_column!r}; use a .csv "
                            "or .jsonl for --id-column")
        try:
            texts = [ln for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
        except UnicodeDecodeError:
            raise DataError(f"{path} is not UTF-8 text; save it as UTF-8, one text per line") from None
        if not texts:
            raise DataError(f"{path} holds no texts; give one text per line")
        return TextRows(texts=texts, labels=None, item_ids=None)
    keys, records = _records_csv(path) if suffix == ".csv" else _records_jsonl(path)
    if not records:
        raise DataError(f"{path} holds no texts; give one text per row")
    for name, option in ((text_column, "--text-column"), (id_column, "--id-column")):
        if name and name not in keys:
            raise DataError(f"{path} has no column {name!r} (columns: {keys}); pass {option} NAME")
    texts = [str(t) for t in _column(records, text_column, path, "text")]
    labels = None
    if label_column in keys:
        raw = _column(records, label_column, path, "label")
        if any(isinstance(v, list | dict) for v in raw):
            raise DataError(f"the labels of {path} hold lists or objects; multi-label is not supported yet: give "
                            "one label per row")
        labels = np.asarray([str(v) if not isinstance(v, int | float) else v for v in raw])
    ids = None
    if id_column:
        ids = [str(v).strip() for v in _column(records, id_column, path, "id")]
        uniq, counts = np.unique(np.asarray(ids, dtype=str), return_counts=True)
        if len(uniq) != len(ids):
            dup = ", ".join(repr(str(d)) for d in uniq[counts > 1][:5])
            raise DataError(f"id column {id_column!r} of {path} repeats {int((counts > 1).sum())} id(s) ({dup}); "
                            "give every item its own id")
    return TextRows(texts=texts, labels=labels, item_ids=ids, columns=keys)
