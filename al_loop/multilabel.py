"""Multi-label classification, pure: label sets as strings and 0/1 matrices, and the metrics.

A multi-label item's label is a *set* of the run's class names. Everything
that stores or exchanges labels as one string (the store's ``labels.label``,
:class:`al_loop.types.Answer`, exports) writes the set canonically: the names
in class order joined by ``;`` (``"Coat;Dress"``), the empty set as ``""``.
In memory the labels of n items are an (n, L) uint8 0/1 matrix whose column
``j`` is ``classes[j]``.

Class names of a multi-label dataset may not contain ``;``.

References
----------
Tsoumakas, Katakis, Vlahavas (2010), "Mining multi-label data", Data Mining
and Knowledge Discovery Handbook (binary relevance; Hamming loss, subset
accuracy, micro / macro F1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from al_loop.errors import DataError

#: separator of the names in a label-set string
SEP = ";"
#: the decision threshold on each label's probability
THRESHOLD = 0.5


def _class_order(name: str) -> tuple[int, str]:
    from al_loop.labels import _class_order as order

    return order(name)


def split_set(value: object) -> list[str]:
    """The names of one label-set string (``"a; b"`` -> ``["a", "b"]``), blanks dropped; NaN/None: the empty set."""
    if value is None or (isinstance(value, float) and value != value):
        return []
    return [part.strip() for part in str(value).split(SEP) if part.strip()]


def check_class_names(classes: Sequence[str], source: str) -> None:
    """Refuse class names that hold the separator (they could not be told apart in a set string)."""
    bad = [c for c in classes if SEP in c]
    if bad:
        raise DataError(f"class name(s) {bad[:3]} of {source} contain {SEP!r}, which separates the labels of a "
                        f"multi-label item; rename them")


def encode_sets(raw: Sequence[object], source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Label-set strings (``"a;b"`` per item) as a 0/1 matrix (n, L) uint8 and the sorted class names.

    Refuses fewer than two distinct names over the whole column (a single label is
    a binary task: give it as single-label data).
    """
    sets = [split_set(v) for v in raw]
    classes = tuple(sorted({name for s in sets for name in s}, key=_class_order))
    if len(classes) < 2:
        found = f"only {list(classes)}" if classes else "no label at all"
        raise DataError(f"the multi-label labels of {source} hold {found}; multi-label needs at least two "
                        f"label names (separate an item's labels with {SEP!r})")
    return sets_matrix(sets, classes, source), classes


def sets_matrix(sets: Sequence[Sequence[str]], classes: Sequence[str], source: str) -> np.ndarray:
    """0/1 matrix (n, L) uint8 of name lists in the column frame of ``classes``; unknown names refused."""
    index = {c: j for j, c in enumerate(classes)}
    Y = np.zeros((len(sets), len(classes)), dtype=np.uint8)
    unknown: set[str] = set()
    for i, names in enumerate(sets):
        for name in names:
            j = index.get(name)
            if j is None:
                unknown.add(name)
            else:
                Y[i, j] = 1
    if unknown:
        raise DataError(f"the labels of {source} hold name(s) {sorted(unknown)[:5]} that the training labels lack "
                        f"({list(classes)}); give the test set the training labels only")
    return Y


def map_sets(raw: Sequence[object], classes: Sequence[str], source: str) -> np.ndarray:
    """Label-set strings of a test set as a 0/1 matrix in the training ``classes``."""
    return sets_matrix([split_set(v) for v in raw], classes, source)


def indicator_matrix(raw: np.ndarray, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """A 0/1 label matrix (n, L) given as numbers (``.npy``) as uint8; the classes are ``"0"`` .. ``"L-1"``."""
    Y = np.asarray(raw)
    if Y.ndim != 2 or Y.shape[1] < 2:
        raise DataError(f"the multi-label labels of {source} have shape {Y.shape}; give a 0/1 matrix (n, L) "
                        f"with L >= 2 columns, one per label")
    if Y.dtype.kind not in "biuf" or not np.all((Y == 0) | (Y == 1)):
        raise DataError(f"the multi-label labels of {source} are not all 0 or 1; give a 0/1 indicator matrix")
    return Y.astype(np.uint8), tuple(str(j) for j in range(Y.shape[1]))


def set_string(row: np.ndarray, classes: Sequence[str]) -> str:
    """The canonical string of one 0/1 row (L,): the names with a 1, in class order, joined by ``;``."""
    return SEP.join(classes[j] for j in np.flatnonzero(np.asarray(row)))


def parse_set(value: str | None, classes: Sequence[str]) -> np.ndarray | None:
    """The 0/1 row (L,) uint8 of a label-set string; None when it names something outside ``classes``."""
    index = {c: j for j, c in enumerate(classes)}
    row = np.zeros(len(classes), dtype=np.uint8)
    for name in split_set(value):
        j = index.get(name)
        if j is None:
            return None
        row[j] = 1
    return row


def canonical(value: str | None, classes: Sequence[str]) -> str | None:
    """The canonical form of a label-set string, or None when it names something outside ``classes``."""
    row = parse_set(value, classes)
    return None if row is None else set_string(row, classes)


def decisions(P: np.ndarray) -> np.ndarray:
    """Predicted label vectors (n, L) uint8: each label whose probability is at least :data:`THRESHOLD`."""
    return (np.asarray(P) >= THRESHOLD).astype(np.uint8)


def evaluate(Y: np.ndarray, P: np.ndarray) -> dict[str, float]:
    """The four multi-label metrics of probabilities ``P`` (n, L) against the truth ``Y`` (n, L).

    Returns ``{"subset_accuracy", "macro_f1", "micro_f1", "hamming_loss"}``.
    """
    Yhat = decisions(P)
    return {"subset_accuracy": subset_accuracy(Y, Yhat), "macro_f1": macro_f1(Y, Yhat),
            "micro_f1": micro_f1(Y, Yhat), "hamming_loss": hamming_loss(Y, Yhat)}


def metric_columns(Y: np.ndarray, P: np.ndarray) -> dict[str, float]:
    """:func:`evaluate` under the store's metric column names: the subset accuracy is ``accuracy``."""
    scores = evaluate(Y, P)
    return {"accuracy": scores["subset_accuracy"], "macro_f1": scores["macro_f1"], "micro_f1": scores["micro_f1"],
            "hamming_loss": scores["hamming_loss"]}


def check_indicator(Y: np.ndarray, name: str = "Y") -> np.ndarray:
    """``Y`` as an int64 (n, L) 0/1 matrix (ValueError otherwise)."""
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise ValueError(f"{name} must have shape (n, L), got {Y.shape}")
    if not np.all((Y == 0) | (Y == 1)):
        raise ValueError(f"{name} must be a 0/1 indicator matrix")
    return Y.astype(np.int64)


# ---- metrics on 0/1 matrices ------------------------------------------------------------------------------------------------------

def _check_pair(Y: np.ndarray, Yhat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    Y_arr, Yhat_arr = np.asarray(Y), np.asarray(Yhat)
    if Y_arr.shape != Yhat_arr.shape:
        raise ValueError(f"Y and Yhat must have the same shape, got {Y_arr.shape} and {Yhat_arr.shape}")
    Y_arr, Yhat_arr = check_indicator(Y_arr, "Y"), check_indicator(Yhat_arr, "Yhat")
    if Y_arr.size == 0:
        raise ValueError(f"Y and Yhat must be non-empty, got shape {Y_arr.shape}")
    return Y_arr, Yhat_arr


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """``2 tp / (2 tp + fp + fn)``, 0 where the denominator is 0 (scikit-learn's ``zero_division=0``)."""
    num = 2.0 * tp
    den = num + fp + fn
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def micro_f1(Y: np.ndarray, Yhat: np.ndarray) -> float:
    """F1 of the true / false positive counts pooled over all labels (0 when there are no positives at all).

    ``Y``, ``Yhat``: 0/1 arrays of the same shape (n, L). Equals scikit-learn's
    ``f1_score(Y, Yhat, average="micro", zero_division=0)`` for L >= 2 (scikit-learn
    reads an (n, 1) matrix as a binary target and averages over classes 0 and 1;
    here it stays one label, whose F1 this is).
    """
    Y, Yhat = _check_pair(Y, Yhat)
    tp = np.sum(Y & Yhat)
    fp = np.sum((1 - Y) & Yhat)
    fn = np.sum(Y & (1 - Yhat))
    return float(_f1(np.asarray(tp), np.asarray(fp), np.asarray(fn)))


def macro_f1(Y: np.ndarray, Yhat: np.ndarray) -> float:
    """Unweighted mean over the L labels of each label's F1.

    A label with no true and no predicted positive has F1 = 0: this equals
    scikit-learn's ``f1_score(Y, Yhat, average="macro", zero_division=0)`` for
    L >= 2 (for L = 1 see :func:`micro_f1`). ``Y``, ``Yhat``: 0/1 arrays of the
    same shape (n, L).
    """
    Y, Yhat = _check_pair(Y, Yhat)
    tp = np.sum(Y & Yhat, axis=0)
    fp = np.sum((1 - Y) & Yhat, axis=0)
    fn = np.sum(Y & (1 - Yhat), axis=0)
    return float(_f1(tp, fp, fn).mean())


def subset_accuracy(Y: np.ndarray, Yhat: np.ndarray) -> float:
    """Fraction of rows whose predicted label vector equals the true one exactly (exact match ratio).

    ``Y``, ``Yhat``: 0/1 arrays of the same shape (n, L).
    """
    Y, Yhat = _check_pair(Y, Yhat)
    return float(np.all(Y == Yhat, axis=1).mean())


def hamming_loss(Y: np.ndarray, Yhat: np.ndarray) -> float:
    """Fraction of the n * L (item, label) entries predicted wrongly.

    ``Y``, ``Yhat``: 0/1 arrays of the same shape (n, L).
    """
    Y, Yhat = _check_pair(Y, Yhat)
    return float(np.mean(Y != Yhat))
