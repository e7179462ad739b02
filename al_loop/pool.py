"""The pool: items, their global ids, hidden labels (simulation) and a test split.

Id frame: ``Pool.ids`` are the global pool ids. Every public method takes and
returns global ids; row positions are computed inside and never returned.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from al_loop.errors import DataError


def check_finite(name: str, array: np.ndarray, fix: str) -> None:
    """Raise a one-line :class:`DataError` if ``array`` holds NaN or Inf."""
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).reshape(len(array), -1).any(axis=1).sum()) if array.ndim else 1
        raise DataError(f"{name} contain NaN or Inf in {bad} row(s); {fix}")


def check_unique_ids(ids: np.ndarray, what: str = "pool ids") -> None:
    """Raise a one-line :class:`DataError` if ``ids`` has duplicates."""
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) != len(ids):
        dup = uniq[counts > 1][:5].tolist()
        raise DataError(f"duplicate {what} {dup}; give every item its own id")


@dataclass(frozen=True)
class ItemCatalogue:
    """Every row of a dataset (pool, validation and test alike) and what the user knows it by.

    Attributes
    ----------
    ids : ndarray of int64, shape (n,)
        Global pool ids of all rows.
    item_ids : list of str, optional
        The user's own ids, aligned with ``ids``.
    texts : list of str, optional
        The raw texts, aligned with ``ids``.
    paths : list of str, optional
        Each item's file (image folders): POSIX path relative to the folder, aligned with ``ids``.
    skipped : list of (str, str)
        Files left out as unreadable (``skip_bad``): (relative path, reason); not rows.
    """

    ids: np.ndarray
    item_ids: list[str] | None = None
    texts: list[str] | None = None
    paths: list[str] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Pool:
    """Items available for labelling plus a held-out test split.

    Attributes
    ----------
    X : ndarray, shape (n, ...)
        Pool inputs (a feature matrix, or images of shape (n, H, W)).
    ids : ndarray of int64, shape (n,)
        Global pool ids, unique; row ``i`` of ``X`` has id ``ids[i]``.
    classes : tuple of str
        Class names; label ``j`` means ``classes[j]``.
    y : ndarray of int64, shape (n,), optional
        Hidden labels (simulation only); for a multi-label pool a 0/1 uint8
        matrix, shape (n, len(classes)) (see :mod:`al_loop.multilabel`).
    X_test, y_test : ndarray
        Held-out test split (never selectable).
    X_val, y_val : ndarray, optional
        Held-out validation split for stopping rules (never selectable).
    kind : str
        ``"tabular"``, ``"image"`` or ``"text"``: what an annotator sees.
    texts : list of str, optional
        Raw texts when ``kind == "text"`` (row-aligned with ``X``).
    name : str
        Dataset name, recorded with the run.
    item_ids : list of str, optional
        The user's own id of each item (``--id-column``), row-aligned with ``X``
        and ``ids``; exports carry it next to the pool id.
    notes : list of str
        What loading the data did that the user should know (printed by the CLI).
    catalogue : ItemCatalogue, optional
        All rows of the dataset with their user ids, texts and files (None when the data
        has none); recorded in the store's ``items`` table when runs are created.
    paths : list of str, optional
        Each pool item's file relative to ``media_root`` (POSIX, row-aligned with ``X``):
        image folders, whose ``X`` holds the encoder's embeddings.
    media_root : str, optional
        The absolute folder ``paths`` are relative to.
    digest : str, optional
        Digest of the inputs (file contents) and the encoder that made ``X``; a run
        records it and ``resume`` refuses to go on when it changed.
    encoder : str, optional
        The encoder spec that made ``X`` (None: ``X`` is the data itself).
    encoder_options : EncoderOptions, optional
        The options it was built with (image size, weights): a learner that runs the
        encoder's network itself (``finetune``) rebuilds it from ``encoder`` + these.
    test_paths, val_paths : list of str, optional
        The files of the test / validation rows (row-aligned with ``X_test`` / ``X_val``).
    multilabel : bool
        Each item has a set of the classes (possibly empty) instead of one class;
        ``y``, ``y_test`` and ``y_val`` are then (n, L) 0/1 matrices.
    """

    X: np.ndarray
    ids: np.ndarray
    classes: tuple[str, ...]
    y: np.ndarray | None = None
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    kind: str = "tabular"
    texts: list[str] | None = None
    name: str = "custom"
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    item_ids: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    catalogue: ItemCatalogue | None = None
    paths: list[str] | None = None
    media_root: str | None = None
    digest: str | None = None
    encoder: str | None = None
    encoder_options: Any = None
    test_paths: list[str] | None = None
    val_paths: list[str] | None = None
    multilabel: bool = False
    _order: np.ndarray = field(init=False, repr=False)
    _sorted: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=np.int64)
        if len(self.X) == 0:
            raise DataError("the pool is empty; give at least one item with features")
        if len(self.ids) != len(self.X):
            raise DataError(
                f"{len(self.ids)} ids for {len(self.X)} rows of features; give one id per row"
            )
        check_unique_ids(self.ids)
        check_finite("features", np.asarray(self.X), "drop or impute those rows before building the pool")
        if self.X_test is not None:
            check_finite("test features", np.asarray(self.X_test), "drop or impute those rows")
        if self.y is not None and len(self.y) != len(self.X):
            raise DataError(
                f"{len(self.y)} labels for {len(self.X)} rows of features; give one label per row"
            )
        if self.multilabel:
            for what, y in (("labels", self.y), ("test labels", self.y_test), ("validation labels", self.y_val)):
                if y is not None and (np.ndim(y) != 2 or np.shape(y)[1] != len(self.classes)):
                    raise DataError(f"the multi-label {what} have shape {np.shape(y)}; give a 0/1 matrix with one "
                                    f"column per class ({len(self.classes)})")
        if self.item_ids is not None and len(self.item_ids) != len(self.ids):
            raise DataError(f"{len(self.item_ids)} item ids for {len(self.ids)} pool rows; give one id per row")
        if len(set(self.classes)) != len(self.classes):
            raise DataError(f"class names repeat in {list(self.classes)}; give each class once")
        self._order = np.argsort(self.ids, kind="stable")
        self._sorted = self.ids[self._order]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Row positions of global ``ids`` (raises on an unknown id)."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self._sorted, ids)
        pos = np.clip(pos, 0, len(self._sorted) - 1)
        if ids.size and not np.array_equal(self._sorted[pos], ids):
            missing = ids[self._sorted[pos] != ids][:5].tolist()
            raise DataError(f"unknown pool ids {missing}; ids must come from this pool")
        return self._order[pos]

    def features(self, ids: np.ndarray) -> np.ndarray:
        """Inputs of ``ids``, shape (len(ids), ...)."""
        return self.X[self.rows(ids)]

    def hidden_labels(self, ids: np.ndarray) -> np.ndarray:
        """Hidden class indices of ``ids``, shape (len(ids),) (simulation only); (len(ids), L) 0/1 when multi-label."""
        if self.y is None:
            raise DataError("this pool has no hidden labels; use a real oracle (Label Studio)")
        return np.asarray(self.y)[self.rows(ids)]

    def payload(self, pool_id: int) -> dict[str, Any]:
        """What an annotator sees for one item: text, an image file, an image data URI, or features.

        Items of an image folder (``paths``) give ``{"image_file": absolute path,
        "path": path relative to media_root}``: the oracle decides how the file
        reaches the annotator (see ``oracles.label_studio.image_value``). Raw image
        arrays (digits, .npy) give a grey-square PNG data URI under ``image``.
        """
        row = int(self.rows(np.array([pool_id]))[0])
        if self.kind == "text" and self.texts is not None:
            return {"text": self.texts[row]}
        if self.kind == "image" and self.paths is not None and self.media_root is not None:
            rel = self.paths[row]
            return {"image_file": str(Path(self.media_root) / rel), "path": rel}
        if self.kind == "image":
            return {"image": image_data_uri(np.asarray(self.X[row]))}
        return {"features": np.asarray(self.X[row]).ravel().tolist()}


#: a small image is scaled up (by a whole factor, nearest neighbour) until its short side is at least this
MIN_DISPLAY_SIDE = 256
#: ... unless that would make its long side longer than this (a thin strip stays a strip)
MAX_DISPLAY_SIDE = 2048


def image_data_uri(image: np.ndarray, min_side: int = MIN_DISPLAY_SIDE, max_side: int = MAX_DISPLAY_SIDE) -> str:
    """Encode a 2-D grey image (any range) as a PNG ``data:`` URI a person can read.

    Parameters
    ----------
    image : ndarray, shape (H, W), (1, H, W) or (H*H,)
        Grey values in any range (scaled to 0..255).
    min_side : int
        An image whose short side is below this is enlarged by the smallest whole
        factor that reaches it, each pixel becoming a ``factor x factor`` block of
        the same value (an 8x8 digit becomes 256x256): browsers blur a tiny image
        stretched to the screen into a blob, and whole blocks stay sharp.
    max_side : int
        The factor never makes the long side exceed this (nor goes below 1).

    Returns
    -------
    str
        ``"data:image/png;base64,..."``.
    """
    from PIL import Image

    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 1:
        side = int(round(np.sqrt(img.size)))
        img = img.reshape(side, side)
    img = img.reshape(img.shape[-2], img.shape[-1])
    lo, hi = float(img.min()), float(img.max())
    scaled = np.zeros_like(img) if hi <= lo else (img - lo) / (hi - lo)
    pixels = (scaled * 255).astype(np.uint8)
    short = min(pixels.shape)
    if 0 < short < min_side:
        factor = max(1, min(-(-min_side // short), max_side // max(pixels.shape)))  # ceil(min_side / short)
        pixels = np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
