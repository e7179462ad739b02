"""Image folders of the user's own: listing, decoding to RGB, and a digest of the files.

Item frame: :func:`scan_images` lists the image files under a folder as POSIX
paths relative to it, sorted; position ``i`` of that listing is global pool id
``i`` (stable: adding nothing and renaming nothing keeps every id). Hidden
files and folders (a name starting with ``.``) and files of other types are
ignored, with a note saying how many.

Labeled folders follow the ImageFolder layout: one subfolder per class
(``photos/cat/1.jpg``, ``photos/dog/a/2.png``); class names are the subfolder
names, sorted; a nested folder inside a class folder belongs to that class.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from al_loop.errors import DataError

#: image file types read (compared case-insensitively)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_SUFFIX_LIST = "/".join(IMAGE_SUFFIXES)


@dataclass
class ImageListing:
    """What :func:`scan_images` found.

    Attributes
    ----------
    root : str
        The folder, absolute.
    paths : list of str, length n
        Image files relative to ``root`` (POSIX), sorted; position ``i`` is global id ``i``.
    labels : list of str, length n, or None
        The class (first folder) of each path, for ``labeled=True``.
    classes : tuple of str
        The class folder names, sorted (empty for ``labeled=False``).
    ignored : int
        Hidden files and files of other types that were left out.
    notes : list of str
        What the user should know (the ignored files), printed by the CLI.
    """

    root: str
    paths: list[str]
    labels: list[str] | None = None
    classes: tuple[str, ...] = ()
    ignored: int = 0
    notes: list[str] = field(default_factory=list)


def is_image_name(name: str) -> bool:
    """True for a file name with one of :data:`IMAGE_SUFFIXES` (any case)."""
    return name.lower().endswith(IMAGE_SUFFIXES)


def scan_images(root: str | os.PathLike[str], labeled: bool = True) -> ImageListing:
    """List the images under ``root`` in a stable order (sorted relative POSIX paths).

    Parameters
    ----------
    root : path
        A folder of images; with ``labeled=True`` one subfolder per class.
    labeled : bool
        Read classes from the first level of subfolders (simulations); False
        takes every image at any depth (campaigns, no labels).

    Returns
    -------
    ImageListing

    Raises
    ------
    DataError
        ``root`` missing or not a folder; no images; for ``labeled=True``: no
        class subfolders, images directly in ``root``, an empty class folder, a
        single class.
    """
    base = Path(root)
    if not base.exists():
        raise DataError(f"image folder {base} does not exist; check the --images path")
    if not base.is_dir():
        raise DataError(f"{base} is not a folder; --images takes a folder of images "
                        "(one subfolder per class to simulate)")
    base = base.resolve()
    paths: list[str] = []
    ignored = 0
    class_dirs: list[str] = []
    for dirpath, dirnames, filenames in os.walk(base):
        hidden = [d for d in dirnames if d.startswith(".")]
        ignored += sum(_count_files(Path(dirpath) / d) for d in hidden)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(base)
        if rel_dir == Path("."):
            class_dirs = list(dirnames)
        for name in filenames:
            if name.startswith(".") or not is_image_name(name):
                ignored += 1
                continue
            paths.append((rel_dir / name).as_posix())
    paths.sort()
    notes = [f"{ignored} hidden or non-image file(s) under {base} ignored (images: {_SUFFIX_LIST})"] if ignored else []
    if not paths:
        raise DataError(f"no {_SUFFIX_LIST} files under {base}; point --images at a folder of images")
    if not labeled:
        return ImageListing(root=str(base), paths=paths, ignored=ignored, notes=notes)
    if not class_dirs:
        raise DataError(f"{base} has no class subfolders; simulate needs one subfolder per class "
                        f"({base.name}/cat/1.jpg, {base.name}/dog/2.jpg), or use the folder unlabeled in a campaign "
                        "(campaign init --images DIR)")
    loose = [p for p in paths if "/" not in p]
    if loose:
        shown = ", ".join(loose[:3]) + (", ..." if len(loose) > 3 else "")
        raise DataError(f"{len(loose)} image(s) directly in {base} belong to no class ({shown}); move them into a "
                        f"class subfolder ({base.name}/CLASS/{loose[0]})")
    labels = [p.split("/", 1)[0] for p in paths]
    found = set(labels)
    empty = [c for c in class_dirs if c not in found]
    if empty:
        raise DataError(f"class folder {base / empty[0]} holds no images; put its images in it or remove the folder"
                        + (f" (also empty: {', '.join(empty[1:])})" if len(empty) > 1 else ""))
    classes = tuple(sorted(found))
    if len(classes) < 2:
        raise DataError(f"{base} has one class folder ({classes[0]}); a classifier needs at least two: add a "
                        "subfolder per class")
    return ImageListing(root=str(base), paths=paths, labels=labels, classes=classes, ignored=ignored, notes=notes)


def _count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale an array to 0..255 bytes: floats in [0, 1] are multiplied by 255, 16-bit integers divided by 257."""
    if values.dtype == np.uint8:
        return values
    if values.dtype == np.bool_:
        return values.astype(np.uint8) * 255
    arr = values.astype(np.float64)
    if not np.isfinite(arr).all():
        raise DataError("the image array holds NaN or Inf; give finite pixel values in [0, 1] or 0..255")
    if values.dtype.kind == "f" and arr.size and arr.max() <= 1.0:
        arr = arr * 255.0
    elif values.dtype.itemsize >= 2 and values.dtype.kind in "ui" and arr.size and arr.max() > 255:
        arr = arr / 257.0  # 16-bit samples
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def _array_to_image(values: np.ndarray) -> Any:
    from PIL import Image

    arr = np.asarray(values)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return Image.fromarray(_to_uint8(arr), mode="L").convert("RGB")
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        img = Image.fromarray(_to_uint8(arr), mode="RGB" if arr.shape[2] == 3 else "RGBA")
        return _flatten(img)
    raise DataError(f"an image array has shape {arr.shape}; give (H, W) grey or (H, W, 3) RGB or (H, W, 4) RGBA")


def _flatten(img: Any) -> Any:
    """Any PIL mode to RGB: transparency composited on white, 16/32-bit grey scaled to bytes."""
    from PIL import Image

    mode = img.mode
    if mode.startswith("I;16"):  # 16-bit grey: always 0..65535
        return _array_to_image((np.asarray(img).astype(np.float64) / 257.0).astype(np.float32) / 255.0)
    if mode.startswith("I") or mode == "F":
        return _array_to_image(np.asarray(img))
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    elif mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img).convert("RGB")
    return img.convert("RGB")


def open_rgb(source: str | os.PathLike[str] | np.ndarray) -> Any:
    """Decode an image file (or wrap an array) as an RGB ``PIL.Image.Image``.

    Grey and palette images become RGB, transparency is composited on white,
    the EXIF orientation is applied, 16-bit samples are scaled to 8 bits. An
    ndarray of shape (H, W) or (H, W, C) (C in 1, 3, 4) with values in [0, 1]
    (floats) or 0..255 is taken as is.

    Raises
    ------
    OSError, ValueError
        The file cannot be decoded (``PIL.UnidentifiedImageError`` is an
        OSError); callers name the file and the fix.
    DataError
        An array of an unusable shape or with NaN/Inf.
    """
    if isinstance(source, np.ndarray):
        return _array_to_image(source)
    from PIL import Image, ImageOps

    with Image.open(source) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        return _flatten(img)


def files_digest(root: str | os.PathLike[str], paths: Sequence[str]) -> str:
    """Digest (blake2b, 32 hex digits) of the files ``paths`` under ``root``, in order.

    Each file contributes its relative path and its bytes, so a renamed,
    moved, added, removed or edited file changes the digest, and so does the
    order. Cost: it reads every file once each time it is called (a folder of
    10 GB is read in full once per process that loads it; about disk speed).
    """
    base = Path(root)
    h = hashlib.blake2b(digest_size=16)
    for rel in paths:
        encoded = rel.encode("utf-8")
        h.update(len(encoded).to_bytes(8, "little"))
        h.update(encoded)
        try:
            size = (base / rel).stat().st_size
            h.update(size.to_bytes(8, "little"))
            with open(base / rel, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except OSError as exc:
            raise DataError(f"cannot read {rel} under {base} ({exc.strerror or exc}); check that the file is "
                            "there and readable") from None
    return h.hexdigest()
