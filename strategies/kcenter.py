"""k-center greedy (core-set) selection, Sener & Savarese (ICLR 2018).

The labeled points are the initial centers; the greedy step adds the
unlabeled point farthest from its nearest center (the 2-approximation of
Gonzalez 1985 for the k-center problem), ties broken by the smaller position
(= smaller global id in :class:`KCenterGreedy`, whose rows are sorted by id).

Two exact implementations of the same algorithm:

- plain: a running O(N) min-distance vector, one ``addmv`` pass over the
  matrix per step (see :class:`strategies._geometry.MinSqDist`), so a step
  costs about one memory pass over the embeddings;
- ``prune=True``: points are grouped around ``n_groups`` centroids with radii
  ``r_g``; a new center ``c`` cannot lower the min-distance of any point of
  group ``g`` when ``|c - p_g| - r_g`` (a lower bound on ``|x - c|`` by the
  triangle inequality) exceeds the group's largest current min-distance, so
  that group's rows are not read at all (the bound of Elkan 2003, applied to
  farthest-first traversal). Groups are contiguous slices of a permuted
  working copy. The skip test carries a rigorous floating-point
  margin (:func:`strategies._geometry.expansion_tolerance`), so the pruned
  run makes the same picks as the plain one. (Distances may differ from the
  plain run's in the last bit, as BLAS may round a row's dot product
  differently by where the row sits in the matrix; a pick could differ only
  between two candidates whose distances agree to that last bit.)
  Pruning pays on well-separated clusters only; on other data the bound
  skips little and the per-group overhead makes it slower than one pass, so
  each add chooses (from the groups the bound would skip, with a cost model
  in bytes read) between visiting groups and one pass over every row: the
  pruned variant costs at most about the plain one per step, plus its
  grouping and its permuted copy of the matrix.

Both variants add the initial centers (the labeled points) with one blocked
matrix product (:func:`strategies._geometry.sq_dist_min_many_`) instead of
one pass per center.

Frame: :func:`k_center_greedy` works on row positions of ``X``; the strategy
class maps global ids to positions and back, and positions never leave it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from al_loop.errors import ConfigError, DataError
from al_loop.lazy import lazy_import
from al_loop.registry import STRATEGIES
from al_loop.strategy import Strategy
from al_loop.types import QueryContext, Selection
from al_loop.view import ModelView
from strategies._geometry import (
    BLOCK_BYTES,
    DTYPES,
    MinSqDist,
    as_matrix,
    check_dtype,
    check_metric,
    compute_dtype,
    expansion_tolerance,
    knn_blocked,
    row_sq_norms,
    rows_per_block,
    sq_dist_min_,
    sq_dist_min_many_,
    torch_dtype,
    working_copy,
)

torch = lazy_import("torch")  # imported on first use: listing strategies stays fast

SPACES = ("embed", "features")
#: Cost of visiting one group in the pruned variant, in bytes read: about 20 us of torch call overhead
#: per small update (measured on the 2-core VM) at ~11 GB/s, the rate one row pass reads there.
GROUP_OVERHEAD_BYTES = 256 << 10


def k_center_greedy(X: Any, centers: Any, k: int, metric: str = "euclidean", *, prune: bool = False,
                    n_groups: int = 256, dtype: str | torch.dtype | None = None,
                    block_bytes: int = BLOCK_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center: add ``k`` rows, each the farthest from its nearest center.

    Parameters
    ----------
    X : ndarray or Tensor, shape (N, d)
        Every point: the initial centers and the candidates. Used in place (no
        copy) when it already is a contiguous tensor/array of the working
        dtype and, for ``metric="cosine"``, its rows have unit length.
    centers : array-like of int, shape (n_c,)
        Row positions of the initial centers (the labeled points); may be empty.
        They are never picked.
    k : int
        Number of rows to add; clamped to the number of non-center rows.
    metric : {"euclidean", "cosine"}
        ``cosine`` is ``1 - cos(x, c)``, computed as half the squared Euclidean
        distance between unit rows (a zero row raises :class:`DataError`).
    prune : bool
        Use the triangle-inequality pruned variant (same result; reads only
        the groups a new center can affect). It works on a permuted copy of
        ``X`` in the working dtype (converted while copying, so no extra copy
        when ``X`` is float64 and ``dtype="float32"``).
    n_groups : int
        Groups of the pruned variant.
    dtype : {"float32", "float64", "float16", "bfloat16"} or None
        Storage dtype of the working matrix (None: keep ``X``'s floating dtype).
        Half precision halves the bytes read per step; distances are combined
        in float32, but the dot products are rounded to half, so near-ties may
        resolve differently than in float32 (see benchmarks/geometry.md).
    block_bytes : int
        Memory bound of the blocked helpers.

    Returns
    -------
    picks : ndarray of int64, shape (k',)
        Row positions in pick order, ``k' = min(k, N - n_c)``.
    scores : ndarray of float64, shape (k',)
        Distance of each pick to its nearest center at the time of the pick
        (non-increasing). With no initial center the first pick is row 0 and
        its score is the covering radius it achieves (equal to the next score).
    """
    check_metric(metric, "k_center_greedy")
    tdt = torch_dtype(dtype, "k_center_greedy")
    src = as_matrix(X, "k-center points")  # no conversion yet: the pruned variant converts while it permutes
    wdt = tdt or src.dtype
    n = src.shape[0]
    centers_arr = np.unique(np.asarray(centers, dtype=np.int64).reshape(-1))
    if centers_arr.size and (centers_arr[0] < 0 or centers_arr[-1] >= n):
        raise DataError(f"k-center center positions must lie in [0, {n}); got {centers_arr[[0, -1]].tolist()}; "
                        "pass row positions of X, not global ids")
    k = min(int(k), n - centers_arr.size)
    if k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    if metric == "cosine" and not bool(((row_sq_norms(src, block_bytes) - 1).abs() <= 1e-3).all()):
        src = working_copy(src, "k-center points", wdt, normalize=True, block_bytes=block_bytes)
    state: _PlainState | _PrunedState
    if prune and n > 1:
        state = _PrunedState(src, wdt, n_groups, block_bytes)
    else:
        Xt = src if src.dtype == wdt else src.to(wdt)
        state = _PlainState(Xt, row_sq_norms(Xt, block_bytes))
    state.add_many(centers_arr)  # the labeled centers in one blocked matrix product, not one pass each
    state.exclude(centers_arr)
    picks = np.empty(k, dtype=np.int64)
    d2 = np.empty(k, dtype=np.float64)
    for i in range(k):
        pos, val = state.argmax()
        picks[i], d2[i] = pos, val
        state.add(pos)
        state.exclude(np.array([pos]))
    if np.isinf(d2[0]):  # no initial center: report the covering radius the first pick achieves
        d2[0] = d2[1] if k > 1 else state.max_value()
        if not np.isfinite(d2[0]):
            d2[0] = 0.0
    scores = d2 / 2.0 if metric == "cosine" else np.sqrt(d2)
    return picks, scores


class _PlainState:
    """One ``addmv`` pass over every row per added center."""

    def __init__(self, X: torch.Tensor, sq: torch.Tensor) -> None:
        self.md = MinSqDist(X, sq)

    def add(self, pos: int) -> None:
        self.md.add(pos)

    def add_many(self, pos: np.ndarray) -> None:
        self.md.add_many(torch.from_numpy(pos).to(self.md.mind.device))

    def exclude(self, pos: np.ndarray) -> None:
        if pos.size:
            self.md.exclude(torch.from_numpy(pos).to(self.md.mind.device))

    def argmax(self) -> tuple[int, float]:
        return self.md.argmax()

    def max_value(self) -> float:
        return float(self.md.mind.max())


class _PrunedState:
    """Rows grouped around centroids; groups a new center cannot affect are skipped.

    The working matrix is a copy of ``X`` in ``dtype`` with rows permuted so
    that every group is a contiguous slice ("slots"), made block by block
    while converting (so from a float64 source it costs no more memory than
    the plain variant's float32 copy; from a source already in ``dtype`` it
    doubles the matrix). ``order[j]`` is the row of slot ``j``; ``mind`` is
    kept per slot; ``U[g]`` is the largest ``mind`` of group ``g``.
    """

    def __init__(self, X: torch.Tensor, dtype: torch.dtype, n_groups: int, block_bytes: int) -> None:
        n, d = X.shape
        dev = X.device
        cdt = compute_dtype(dtype)
        assign = self._assign(X, dtype, max(1, min(int(n_groups), n)), block_bytes)
        self.order = torch.sort(assign, stable=True).indices  # rows grouped, ascending inside a group
        counts = torch.bincount(assign, minlength=int(assign.max()) + 1)
        counts = counts[torch.nonzero(counts).flatten()]
        ends = torch.cumsum(counts, 0)
        self.starts = (ends - counts).tolist()
        self.ends = ends.tolist()
        g = len(self.starts)
        group_of_slot = torch.repeat_interleave(torch.arange(g, device=dev), counts)
        self.group_of_slot = group_of_slot
        self.slot_of_row = torch.empty(n, dtype=torch.int64, device=dev)
        self.slot_of_row[self.order] = torch.arange(n, device=dev)
        step = rows_per_block(d, 8, block_bytes)
        self.X = torch.empty((n, d), dtype=dtype, device=dev)
        for s in range(0, n, step):
            self.X[s:s + step] = X.index_select(0, self.order[s:s + step]).to(dtype)
        self.sq = row_sq_norms(self.X, block_bytes)
        # centroids, radii and largest |x|^2 per group, in float64, from the stored (rounded) rows
        sums = torch.zeros((g, d), dtype=torch.float64, device=dev)
        for s in range(0, n, step):
            sums.index_add_(0, group_of_slot[s:s + step], self.X[s:s + step].to(torch.float64))
        self.P = sums / counts.to(torch.float64)[:, None]
        radius = torch.zeros(g, dtype=torch.float64, device=dev)
        for s in range(0, n, step):
            gs = group_of_slot[s:s + step]
            dist = torch.linalg.vector_norm(self.X[s:s + step].to(torch.float64) - self.P[gs], dim=1)
            radius.scatter_reduce_(0, gs, dist, reduce="amax")
        self.radius = (radius * (1 + 1e-9)).cpu().numpy()
        maxsq = torch.zeros(g, dtype=torch.float64, device=dev)
        maxsq.scatter_reduce_(0, group_of_slot, self.sq.to(torch.float64), reduce="amax")
        self.maxsq = maxsq.cpu().numpy()
        self.tol = expansion_tolerance(d, dtype)
        self.mind = torch.full((n,), float("inf"), dtype=cdt, device=dev)
        self.U = np.full(g, np.inf)
        m = max(counts.tolist())
        self._base = torch.empty(m, dtype=cdt, device=dev)
        self._d2 = torch.empty(m, dtype=cdt, device=dev)
        half = dtype in (torch.float16, torch.bfloat16)
        self._dot = torch.empty(m, dtype=dtype, device=dev) if half else None
        self.counts = np.asarray(counts.tolist(), dtype=np.int64)
        self.row_bytes = d * torch.finfo(dtype).bits // 8 + 16  # a row plus its four O(N) entries
        self._full: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None
        self.rows_read = 0  # diagnostics: rows touched by add()
        self.whole_passes = 0  # diagnostics: adds done as one pass over every row (pruning would not pay)

    @staticmethod
    def _assign(X: torch.Tensor, dtype: torch.dtype, g: int, block_bytes: int) -> torch.Tensor:
        """Nearest of ``g`` pivots for every row; pivots by farthest-first traversal of a strided sample."""
        n = X.shape[0]
        m = min(n, 16 * g)
        sample = torch.from_numpy(np.unique(np.linspace(0, n - 1, m).astype(np.int64))).to(X.device)
        S = X.index_select(0, sample).to(compute_dtype(dtype))
        md = MinSqDist(S)
        pivots = [0]
        md.add(0)
        md.exclude(0)
        for _ in range(g - 1):
            p, v = md.argmax()
            if v <= 0:
                break
            pivots.append(p)
            md.add(p)
            md.exclude(p)
        idx, _ = knn_blocked(X, S[pivots], 1, block_bytes=block_bytes)
        return idx[:, 0]

    def add(self, pos: int) -> None:
        """Add one center: visit the groups it may affect, or make one pass over every row when that is cheaper.

        The choice is made per add from the rows the bound would skip, with a
        cost model in bytes: a visited group costs its rows plus a fixed
        per-group overhead (:data:`GROUP_OVERHEAD_BYTES`, the torch calls of
        one small update); a whole pass costs every row once plus the group
        maxima. Both give the same ``mind`` (a skipped group cannot change), so
        the choice changes time only, never the picks.
        """
        slot = int(self.slot_of_row[pos])
        c = self.X[slot]
        c_sq = self.sq[slot]
        a = torch.linalg.vector_norm(self.P - c.to(torch.float64), dim=1).cpu().numpy()
        lb = a - self.radius
        err = self.tol * (self.maxsq + float(c_sq))
        with np.errstate(invalid="ignore"):
            skip = (lb > 0) & (lb * lb - err > self.U)
        skip |= self.U == -np.inf
        visit = np.flatnonzero(~skip)
        n = len(self.mind)
        pruned_cost = int(self.counts[visit].sum()) * self.row_bytes + len(visit) * GROUP_OVERHEAD_BYTES
        if pruned_cost >= n * (self.row_bytes + 8):
            base, d2, dot = self._whole()
            sq_dist_min_(self.X, self.sq, c, c_sq, self.mind, base, d2, dot)
            self.rows_read += n
            self.whole_passes += 1
            self._refresh_maxima()
            return
        for g in visit.tolist():
            s, e = self.starts[g], self.ends[g]
            m = e - s
            sq_dist_min_(self.X[s:e], self.sq[s:e], c, c_sq, self.mind[s:e], self._base[:m], self._d2[:m],
                         None if self._dot is None else self._dot[:m])
            self.rows_read += m
            self.U[g] = float(self.mind[s:e].max())

    def add_many(self, pos: np.ndarray) -> None:
        """Add the centers ``pos`` (rows) at once: one blocked matrix product over every row."""
        if not pos.size:
            return
        slots = self.slot_of_row[torch.from_numpy(pos).to(self.mind.device)]
        sq_dist_min_many_(self.X, self.sq, slots, self.mind)
        self.rows_read += len(self.mind)
        self._refresh_maxima()

    def _whole(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(N,) scratch vectors for a pass over every row, made on first use."""
        if self._full is None:
            n = len(self.mind)
            dev = self.mind.device
            self._full = (torch.empty(n, dtype=self.mind.dtype, device=dev),
                          torch.empty(n, dtype=self.mind.dtype, device=dev),
                          None if self._dot is None else torch.empty(n, dtype=self._dot.dtype, device=dev))
        return self._full

    def _refresh_maxima(self) -> None:
        """``U[g] = max mind`` of every group, one segment maximum over the slots."""
        U = torch.full((len(self.U),), float("-inf"), dtype=self.mind.dtype, device=self.mind.device)
        U.scatter_reduce_(0, self.group_of_slot, self.mind, reduce="amax")
        self.U = U.to(torch.float64).cpu().numpy()

    def exclude(self, pos: np.ndarray) -> None:
        if not pos.size:
            return
        slots = self.slot_of_row[torch.from_numpy(pos).to(self.mind.device)]
        self.mind[slots] = float("-inf")
        for g in np.unique(self.group_of_slot[slots].cpu().numpy()).tolist():
            self.U[g] = float(self.mind[self.starts[g]:self.ends[g]].max())

    def argmax(self) -> tuple[int, float]:
        best = float(self.U.max())
        pos = None
        for g in np.flatnonzero(self.U == best).tolist():
            s, e = self.starts[g], self.ends[g]
            cand = int(self.order[s:e][self.mind[s:e] == best].min())
            pos = cand if pos is None else min(pos, cand)
        assert pos is not None
        return pos, best

    def max_value(self) -> float:
        return float(self.U.max())


def _check_space(space: str, name: str) -> None:
    if space not in SPACES:
        raise ConfigError(f"strategy {name!r} got space={space!r}; use one of {', '.join(SPACES)}")


@STRATEGIES.register("kcenter")
@dataclass
class KCenterGreedy(Strategy):
    """Core-set selection by greedy k-center (Sener & Savarese 2018).

    Parameters
    ----------
    space : {"embed", "features"}
        ``embed``: the learner's embeddings (``view.embed``); ``features``: the
        raw inputs (``view.features``), which needs no learner capability.
    metric : {"euclidean", "cosine"}
    prune : bool
        Triangle-inequality pruned variant (same picks; faster on well-separated
        clusters; elsewhere it falls back to whole passes by itself, costing its
        grouping and a permuted copy of the embeddings).
    n_groups : int
        Groups of the pruned variant.
    dtype : {"float32", "float64", "float16", "bfloat16"}
        Storage dtype of the working copy of the embeddings.

    Notes
    -----
    Rows are the labeled and unlabeled ids merged and sorted ascending, so
    ties between equally far points go to the smaller global id. The working
    copy is not centered: centering would round integer-valued features and
    turn exact ties into near-ties. ``scores`` are
    the distances to the nearest center at pick time.
    """

    name = "kcenter"
    tasks: ClassVar[frozenset[str]] = frozenset({"single", "multi"})
    use_when: ClassVar[str] = (
        "coverage matters more than uncertainty: large batches, or a pool full of near-duplicates "
        "(core-set).")
    requires = frozenset({"embed"})

    space: str = "embed"
    metric: str = "euclidean"
    prune: bool = False
    n_groups: int = 256
    dtype: str = "float32"

    def __post_init__(self) -> None:
        _check_space(self.space, self.name)
        check_metric(self.metric, f"strategy {self.name!r}")
        check_dtype(self.dtype, f"strategy {self.name!r}")
        if self.n_groups < 1:
            raise ConfigError(f"strategy {self.name!r} got n_groups={self.n_groups}; use 1 or more")

    def check_learner(self, capabilities: frozenset[str]) -> None:
        if self.space == "embed" and "embed" not in capabilities:
            raise ConfigError(f"strategy {self.name!r} needs learner capability ['embed'] for space='embed' that the "
                              f"learner does not have (it has {sorted(capabilities)}); use space='features' or a "
                              "learner with embeddings")

    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        t0 = time.perf_counter()
        labeled = np.asarray(ctx.labeled_ids, dtype=np.int64)
        ids = np.union1d(labeled, np.asarray(ctx.unlabeled_ids, dtype=np.int64))
        raw = view.embed(ids) if self.space == "embed" else view.features(ids)
        raw = np.asarray(raw).reshape(len(ids), -1)
        if self.metric == "cosine":  # unit rows once, in the working dtype
            raw = working_copy(raw, f"{self.space} vectors", DTYPES[self.dtype], normalize=True)
        centers = np.searchsorted(ids, labeled)
        picks, scores = k_center_greedy(raw, centers, budget, self.metric, prune=self.prune,
                                        n_groups=self.n_groups, dtype=self.dtype)
        return Selection(ids=ids[picks], scores=scores,
                         info={"max_distance": float(scores[0]) if scores.size else 0.0,
                               "seconds": time.perf_counter() - t0})

