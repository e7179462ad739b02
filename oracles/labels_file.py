"""Labels-file oracle: the answers are the labels a user keeps in a CSV file.

This is the oracle of ``al-loop query``: people label items in their own
pipeline and hand al-loop a file with two columns, their item ID and the
label. Each call reads the file afresh (:meth:`LabelsFileOracle.from_file`);
the oracle then answers, for every item it holds, with the label the file
gives it. Items the file does not label are simply not answered yet (a blank
label cell means the same); a label equal to ``skip_label`` answers
"skipped" (the person declined the item).

The file may also label items al-loop never selected (labels the user had
before): :meth:`LabelsFileOracle.unsolicited` returns those answers, so the
caller can record them as seed labels.

Id frame: ``pool_id`` values are global pool ids; the user's own IDs are
strings, mapped to pool ids through ``item_ids`` (aligned with ``pool.ids``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from al_loop.errors import DataError
from al_loop.oracle import Oracle
from al_loop.pool import Pool
from al_loop.registry import ORACLES
from al_loop.types import Answer, OutboxItem

#: how many offending IDs a message names
_NAMED = 5


def _named(values: Sequence[str]) -> str:
    shown = ", ".join(repr(v) for v in values[:_NAMED])
    return shown + (f" and {len(values) - _NAMED} more" if len(values) > _NAMED else "")


def read_labels_csv(path: str | Path, id_column: str, label_column: str) -> list[tuple[int, str, str]]:
    """Rows ``(line number, item ID, label)`` of a labels CSV, blank labels dropped.

    The delimiter (``,``, ``;`` or tab) is sniffed from the header line and a
    UTF-8 byte order mark is ignored. Cells are stripped of surrounding spaces.

    Raises
    ------
    DataError
        The file is missing, empty or a folder, lacks either column, or a row
        has no ID. One line naming the cause and the fix.
    """
    fpath = Path(path)
    if not fpath.exists():
        raise DataError(f"labeled file {fpath} does not exist; check the --labeled path")
    if fpath.is_dir():
        raise DataError(f"labeled file {fpath} is a folder; pass the CSV file with your labels")
    text = fpath.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise DataError(f"labeled file {fpath} is empty; give a header row with the columns "
                        f"{id_column!r} and {label_column!r}, then one row per labeled item")
    header_line = text.splitlines()[0]
    delimiter = max(",;\t", key=header_line.count) if any(d in header_line for d in ",;\t") else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    header = [h.strip() for h in rows[0]]
    for column, option in ((id_column, "--labeled-id-column"), (label_column, "--label-column")):
        if column not in header:
            raise DataError(f"labeled file {fpath} has no column {column!r} (columns: {header}); "
                            f"pass {option} NAME")
    ii, li = header.index(id_column), header.index(label_column)
    out: list[tuple[int, str, str]] = []
    no_id: list[int] = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        item = row[ii].strip() if ii < len(row) else ""
        label = row[li].strip() if li < len(row) else ""
        if not item:
            no_id.append(line)
            continue
        if label:
            out.append((line, item, label))
    if no_id:
        raise DataError(f"labeled file {fpath} has {len(no_id)} row(s) without an ID in column {id_column!r} "
                        f"(line(s) {no_id[:_NAMED]}); give every row the item's ID")
    return out


def answers_from_rows(rows: Sequence[tuple[int, str, str]], item_ids: Sequence[str], pool_ids: np.ndarray,
                      source: str, skip_label: str | None = None) -> dict[int, Answer]:
    """Map labels of the user's IDs to answers keyed by global pool id.

    Parameters
    ----------
    rows : sequence of (line, item ID, label)
        From :func:`read_labels_csv`.
    item_ids : sequence of str, length n
        The user's ID of each pool item, aligned with ``pool_ids``.
    pool_ids : ndarray of int64, shape (n,)
        Global pool ids.
    source : str
        The file's name, for messages.
    skip_label : str, optional
        A label value that means "skipped".

    Raises
    ------
    DataError
        An ID that is not in the features file, or an ID labeled twice with
        different labels (up to five named).
    """
    index = {str(item): int(pid) for item, pid in zip(item_ids, np.asarray(pool_ids).tolist(), strict=True)}
    unknown = list(dict.fromkeys(item for _, item, _ in rows if item not in index))
    if unknown:
        raise DataError(f"{source} has {len(unknown)} ID(s) not in the features file: {_named(unknown)}; "
                        "fix those IDs, or label only items of --features")
    first: dict[str, str] = {}
    clashes: dict[str, str] = {}
    for _, item, label in rows:
        if item in first and first[item] != label and item not in clashes:
            clashes[item] = f"{first[item]!r} vs {label!r}"
        first.setdefault(item, label)
    if clashes:
        shown = ", ".join(f"{k!r} ({v})" for k, v in list(clashes.items())[:_NAMED])
        more = f" and {len(clashes) - _NAMED} more" if len(clashes) > _NAMED else ""
        raise DataError(f"{source} labels {len(clashes)} ID(s) twice with different labels: {shown}{more}; "
                        "keep one row per ID")
    answers: dict[int, Answer] = {}
    for item, label in first.items():
        pid = index[item]
        if skip_label is not None and label == skip_label:
            answers[pid] = Answer(pool_id=pid, status="skipped", annotation_id=f"labels_file:{item}",
                                  annotator="labels_file")
        else:
            answers[pid] = Answer(pool_id=pid, status="labeled", label=label, annotation_id=f"labels_file:{item}",
                                  annotator="labels_file")
    return answers


@ORACLES.register("labels_file")
class LabelsFileOracle(Oracle):
    """Answers from a user's labels file (see the module docstring).

    Parameters
    ----------
    pool : Pool
    config : RunConfig, optional
        The run's configuration (unused; the registry passes it).
    answers : mapping of int to Answer, optional
        The file's answers keyed by global pool id (:func:`answers_from_rows`).
    """

    name = "labels_file"
    #: labels arrive with later calls and may be edited after a round closed
    asynchronous = True
    wants_payload = False

    def __init__(self, pool: Pool, config: Any = None, answers: Mapping[int, Answer] | None = None,
                 **_: Any) -> None:
        self.pool = pool
        self.answers: dict[int, Answer] = dict(answers or {})
        self._held: dict[str, OutboxItem] = {}

    @classmethod
    def from_file(cls, pool: Pool, path: str | Path, id_column: str, label_column: str,
                  item_ids: Sequence[str], skip_label: str | None = None) -> LabelsFileOracle:
        """Read and check ``path`` (see :func:`read_labels_csv`, :func:`answers_from_rows`)."""
        rows = read_labels_csv(path, id_column, label_column)
        return cls(pool, answers=answers_from_rows(rows, item_ids, pool.ids, f"labeled file {path}", skip_label))

    def submit(self, items: Sequence[OutboxItem]) -> dict[str, str]:
        for it in items:
            self._held[it.key] = it
        return {it.key: it.key for it in items}

    def lookup(self, keys: Sequence[str]) -> dict[str, str]:
        return {k: k for k in keys if k in self._held}

    def collect(self, run_id: int, round_: int) -> list[Answer]:
        prefix = f"{run_id}:{round_}:"
        held = sorted(it.pool_id for key, it in self._held.items() if key.startswith(prefix))
        return [self.answers[pid] for pid in held if pid in self.answers]

    def unsolicited(self, asked: np.ndarray) -> list[Answer]:
        """Answers about items outside ``asked`` (global ids): labels the user had before, sorted by id."""
        asked_set = set(np.asarray(asked, dtype=np.int64).tolist())
        return [self.answers[pid] for pid in sorted(self.answers) if pid not in asked_set]
