"""Multi-label canvases built from single-label images (pure).

A canvas is a ``grid`` x ``grid`` mosaic of image cells; each cell is filled
with probability ``fill`` by the next unused source image, or left blank
(zeros). Every canvas has at least one filled cell. Its labels are the set of
the source classes it shows. Each source image is used at most once, so two
canvases never share an item (no leak between pool and test split).

This is how the multi-label benchmark is built from Fashion-MNIST, which ships
offline; the construction follows the "several items on one canvas" idea of
multi-object benchmarks such as multi-MNIST (no code taken from them).
"""

from __future__ import annotations

import numpy as np

from al_loop.errors import DataError


def compose_canvases(images: np.ndarray, labels: np.ndarray, n_classes: int, n: int, grid: int = 2,
                     fill: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Build ``n`` canvases.

    Parameters
    ----------
    images : ndarray, shape (N, H, W)
        Source images.
    labels : ndarray of int, shape (N,)
        Their classes, in ``0 .. n_classes - 1``.
    n_classes : int
    n : int
        Number of canvases.
    grid : int
        Cells per side (a canvas is ``grid * H`` x ``grid * W``).
    fill : float
        Probability that a cell holds an image, in (0, 1].
    seed : int
        Seed of the cell draws and of the order in which source images are used.

    Returns
    -------
    canvases : ndarray, shape (n, grid * H, grid * W), the dtype of ``images``
    Y : ndarray of uint8, shape (n, n_classes)
        ``Y[i, c] = 1`` when canvas ``i`` shows an item of class ``c``.
    sources : ndarray of int64, shape (n, grid * grid)
        Index into ``images`` of each cell (row-major), -1 for a blank cell.
    """
    images = np.asarray(images)
    labels = np.asarray(labels, dtype=np.int64)
    if images.ndim != 3 or len(images) != len(labels):
        raise DataError(f"compose_canvases needs images (N, H, W) and N labels, got {images.shape} and "
                        f"{labels.shape}")
    if grid < 1 or not 0.0 < fill <= 1.0 or n < 1:
        raise DataError(f"canvases need grid >= 1, fill in (0, 1] and n >= 1, got grid={grid}, fill={fill}, n={n}")
    rng = np.random.default_rng([seed, 0xCA7A5])
    cells = grid * grid
    filled = rng.random((n, cells)) < fill
    empty = ~filled.any(axis=1)
    filled[np.flatnonzero(empty), rng.integers(cells, size=int(empty.sum()))] = True
    need = int(filled.sum())
    if need > len(images):
        raise DataError(f"{n} canvases with fill={fill} need {need} source images but there are {len(images)}; "
                        "lower n or fill, or load more images")
    order = rng.permutation(len(images))[:need]
    sources = np.full((n, cells), -1, dtype=np.int64)
    sources[filled] = order
    H, W = images.shape[1:]
    canvases = np.zeros((n, grid * H, grid * W), dtype=images.dtype)
    Y = np.zeros((n, n_classes), dtype=np.uint8)
    for i, j in zip(*np.nonzero(filled), strict=True):
        r, c = divmod(int(j), grid)
        src = sources[i, j]
        canvases[i, r * H:(r + 1) * H, c * W:(c + 1) * W] = images[src]
        Y[i, labels[src]] = 1
    return canvases, Y, sources
