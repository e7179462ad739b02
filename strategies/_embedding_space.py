"""The point space geometric cold-start strategies work in, and blocked distance helpers.

``space`` names where distances are measured:

- ``"features"``: the raw pool inputs, flattened (``ModelView.features``);
- ``"pca"``: those features projected on their first :data:`PCA_COMPONENTS`
  principal components, fitted on the points the strategy sees (labeled and
  unlabeled ids of the round) with the fixed seed :data:`PCA_SEED`, so the
  projection is a function of the points alone. Raw pixels cluster poorly;
  PCA keeps the large-scale structure and drops pixel noise. On TF-IDF rows
  it is latent semantic analysis up to centring. The pool does not change
  between rounds, so the projection is computed once per process and kept
  (keyed by a digest of the points, :data:`PCA_CACHE_SIZE` entries);
- ``"embed"``: the learner's embeddings (``ModelView.embed``; penultimate
  features of a network, or whatever the learner exposes).

Id frame: :func:`round_points` returns the *global* ids of its rows, sorted
ascending, so position order equals id order and ``argmax`` over positions
breaks ties by the smaller global id. Positions never leave the caller.

The distance helpers never build an N x N matrix: they work on row blocks of
at most :data:`BLOCK_ENTRIES` distances.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np

from al_loop.errors import ConfigError, DataError
from al_loop.types import QueryContext
from al_loop.view import ModelView

SPACES = ("features", "pca", "embed")
#: Principal components kept by ``space="pca"``.
PCA_COMPONENTS = 50
#: Seed of the randomized PCA solver: fixed, so equal points give equal projections (and the cache can hold them).
PCA_SEED = 0
#: Projections kept per process (one per pool and feature set in use).
PCA_CACHE_SIZE = 4


_T = TypeVar("_T")


class DigestCache(OrderedDict[bytes, Any]):
    """A small least-recently-used memo keyed by :func:`digest_key`; holds at most ``size`` entries.

    ndarray values are stored read-only; callers that hand them out copy
    them. Other values (a sparse graph) must not be modified by callers.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = int(size)

    def get_or_compute(self, key: bytes, compute: Callable[[], _T]) -> _T:
        """The value under ``key``, computed by ``compute()`` (and kept) on a miss."""
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = compute()
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
        self[key] = value
        while len(self) > self.size:
            self.popitem(last=False)
        return value


def digest_key(array: np.ndarray, *params: object) -> bytes:
    """BLAKE2 digest of ``array``'s bytes, shape and dtype and of ``repr(params)``: equal content, equal key."""
    array = np.ascontiguousarray(array)
    digest = hashlib.blake2b(memoryview(array).cast("B"), digest_size=20)
    digest.update(repr((array.shape, array.dtype.str, params)).encode())
    return digest.digest()


def derived_key(base: bytes, *params: object) -> bytes:
    """A key for ``params`` computed from points already digested into ``base`` (no second pass over them)."""
    return hashlib.blake2b(base + repr(params).encode(), digest_size=20).digest()


_PCA_CACHE = DigestCache(PCA_CACHE_SIZE)
#: Distances held at once by the blocked helpers (2**22 float64 = 32 MiB).
BLOCK_ENTRIES = 1 << 22


def check_space(space: str, strategy: str) -> None:
    """Raise a one-line :class:`ConfigError` if ``space`` is not one of :data:`SPACES`."""
    if space not in SPACES:
        raise ConfigError(f"strategy {strategy!r} got space={space!r}; use one of {', '.join(SPACES)}")


def space_requires(space: str) -> frozenset[str]:
    """Learner capabilities a space needs (``{"embed"}`` for ``"embed"``, else none)."""
    return frozenset({"embed"}) if space == "embed" else frozenset()


def seed_from(rng: np.random.Generator) -> int:
    """A 31-bit seed for a scikit-learn ``random_state``, drawn from ``rng``."""
    return int(rng.integers(0, 2**31 - 1))


def round_points(view: ModelView, ctx: QueryContext, space: str) -> tuple[np.ndarray, np.ndarray]:
    """The labeled and unlabeled points of a round in ``space``.

    Parameters
    ----------
    view : ModelView
    ctx : QueryContext
    space : {"features", "pca", "embed"}

    Returns
    -------
    ids : ndarray of int64, shape (n,)
        Global ids, ``labeled_ids`` and ``unlabeled_ids`` merged, ascending.
    X : ndarray of float64, shape (n, d)
        Row ``i`` is the point of ``ids[i]`` (a fresh array the caller may modify).
    """
    ids = np.union1d(np.asarray(ctx.labeled_ids, dtype=np.int64), np.asarray(ctx.unlabeled_ids, dtype=np.int64))
    if space == "embed":
        return ids, _finite(np.asarray(view.embed(ids), dtype=np.float64), space)
    raw = np.ascontiguousarray(view.features(ids)).reshape(len(ids), -1)
    if space == "features":
        return ids, _finite(np.array(raw, dtype=np.float64), space)
    return ids, cached_pca(raw, PCA_COMPONENTS)


def _finite(X: np.ndarray, space: str) -> np.ndarray:
    if not np.isfinite(X).all():
        raise DataError(f"the {space} space holds NaN or Inf; clean the features (or the learner's embeddings)")
    return X


def cached_pca(raw: np.ndarray, n_components: int) -> np.ndarray:
    """:func:`pca_project` of ``raw`` (n, d) with :data:`PCA_SEED`, memoised per process.

    The key is a BLAKE2 digest of the bytes, shape and dtype of ``raw``, so
    any change of the points is a miss. Returns a float64 copy, shape
    (n, min(n_components, n, d)).
    """
    raw = np.ascontiguousarray(raw)
    key = digest_key(raw, n_components, PCA_SEED)
    out = _PCA_CACHE.get_or_compute(
        key, lambda: pca_project(_finite(np.asarray(raw, dtype=np.float64), "pca"), n_components, PCA_SEED))
    return out.copy()


def pca_project(X: np.ndarray, n_components: int, seed: int) -> np.ndarray:
    """``X`` (n, d) projected on its first ``min(n_components, n, d)`` principal components.

    Uses scikit-learn's randomized solver (seeded with ``seed``) when it is
    the cheaper one; a space of dimension <= ``n_components`` is only centred.
    """
    n, d = X.shape
    if d <= n_components:
        return X - X.mean(axis=0)
    from sklearn.decomposition import PCA

    k = min(n_components, n)
    return PCA(n_components=k, svd_solver="auto", random_state=seed).fit_transform(X)


def row_blocks(n_rows: int, n_cols: int) -> Iterator[slice]:
    """Slices of rows so that one block holds at most :data:`BLOCK_ENTRIES` distances."""
    step = max(1, BLOCK_ENTRIES // max(1, n_cols))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def squared_distances(A: np.ndarray, B: np.ndarray, b_sq: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances, shape (len(A), len(B)), clipped at 0.

    ``b_sq`` is ``(B**2).sum(1)`` when the caller has it already.
    """
    if b_sq is None:
        b_sq = np.einsum("ij,ij->i", B, B)
    a_sq = np.einsum("ij,ij->i", A, A)
    d2 = a_sq[:, None] + b_sq[None, :] - 2.0 * (A @ B.T)
    np.maximum(d2, 0.0, out=d2)
    return d2


def kmeans_labels(X: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """k-means cluster index of each row of ``X`` (n, d), shape (n,).

    Exact Lloyd k-means (``KMeans``) up to 50 clusters, ``MiniBatchKMeans``
    above, as TypiClust's reference setup does for large budgets.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    n_clusters = int(min(n_clusters, len(X)))
    if n_clusters <= 1:
        return np.zeros(len(X), dtype=np.int64)
    if n_clusters <= 50:
        km = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed)
    else:
        km = MiniBatchKMeans(n_clusters=n_clusters, n_init=3, batch_size=4096, random_state=seed)
    import warnings

    with warnings.catch_warnings():  # duplicate points give fewer distinct clusters: harmless here
        warnings.simplefilter("ignore")
        return np.asarray(km.fit_predict(X), dtype=np.int64)
