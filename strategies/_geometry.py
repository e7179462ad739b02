"""Blocked distance helpers shared by the geometric strategies (k-center, CAL, BADGE).

Everything here works on *row positions* of one matrix; no global id enters
or leaves. Arithmetic is done in torch, on whatever device the tensor is on
(CPU now, CUDA if the caller moves the matrix there).

Memory rule: no helper forms an N x N (or N x n_labeled) matrix beyond a
block of at most ``block_bytes``; the incremental helpers keep O(N) vectors
next to the matrix they read.

Squared Euclidean distances use the expansion
``|x - c|^2 = |x|^2 + |c|^2 - 2 x.c`` with the row norms computed once, so one
update against a new center is a single matrix-vector product (``torch.addmv``)
plus O(N) work: one pass over the matrix, the memory-bandwidth floor.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from al_loop.errors import ConfigError, DataError
from al_loop.lazy import lazy_import

torch = lazy_import("torch")  # imported on first use: listing strategies stays fast

METRICS = ("euclidean", "cosine")


#: Storage dtypes accepted by the ``dtype`` parameters.
class _Dtypes(Mapping[str, Any]):
    """``{"float64": torch.float64, ...}``, resolved when looked up (torch is imported lazily)."""

    names = ("float64", "float32", "float16", "bfloat16")

    def __getitem__(self, name: str) -> Any:
        if name not in self.names:
            raise KeyError(name)
        return getattr(torch, name)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


DTYPES = _Dtypes()
#: Default working-memory budget of one distance block (64 MiB).
BLOCK_BYTES = 64 << 20


def check_metric(metric: str, what: str) -> None:
    """Raise a one-line :class:`ConfigError` if ``metric`` is not one of :data:`METRICS`."""
    if metric not in METRICS:
        raise ConfigError(f"{what} got metric={metric!r}; use one of {', '.join(METRICS)}")


def check_dtype(name: Any, what: str) -> None:
    """Raise a one-line :class:`ConfigError` if ``name`` is a string that names no storage dtype (torch not imported)."""
    if isinstance(name, str) and name not in DTYPES:
        raise ConfigError(f"{what} got dtype={name!r}; use one of {', '.join(DTYPES)}")


def torch_dtype(name: str | torch.dtype | None, what: str) -> torch.dtype | None:
    """Map ``"float32"`` etc. to a torch dtype (``None`` stays ``None``)."""
    if name is None:
        return None
    check_dtype(name, what)
    return DTYPES[name] if isinstance(name, str) else name


def compute_dtype(storage: torch.dtype) -> torch.dtype:
    """Accumulator dtype for a storage dtype: float64 stays, everything else float32."""
    return torch.float64 if storage == torch.float64 else torch.float32


def tensor_of(a: Any) -> torch.Tensor:
    """``torch.from_numpy`` of ``a`` without a copy, also for a read-only array (a :class:`ModelView` cache).

    The tensor shares the array's memory; the helpers here only read it.
    """
    a = np.asarray(a)
    if a.flags.writeable:
        return torch.from_numpy(a)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(a)


def as_matrix(X: Any, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A 2-D floating tensor view of ``X`` (no copy when dtype and layout already fit).

    Raises :class:`DataError` on NaN/Inf (a NaN must never win a max or a min)
    or on a matrix that is not 2-D.
    """
    t = X if isinstance(X, torch.Tensor) else tensor_of(X)
    if t.ndim != 2:
        raise DataError(f"{name} must be a 2-D (n, d) matrix, got shape {tuple(t.shape)}; flatten the inputs first")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    if not t.is_contiguous():
        t = t.contiguous()
    check_finite(t, name)
    return t


def check_finite(t: torch.Tensor, name: str, block_rows: int = 65536) -> None:
    """Raise a one-line :class:`DataError` if ``t`` holds NaN or Inf (checked in row blocks).

    ``amax``/``amin`` propagate NaN and expose +-Inf without a boolean
    temporary; rows are counted only when something is wrong.
    """
    if t.numel() == 0:
        return
    ok = True
    for s in range(0, t.shape[0], block_rows):
        blk = t[s:s + block_rows]
        if not (bool(torch.isfinite(torch.amax(blk))) and bool(torch.isfinite(torch.amin(blk)))):
            ok = False
            break
    if not ok:
        bad = 0
        for s in range(0, t.shape[0], block_rows):
            blk = t[s:s + block_rows]
            bad += int((~torch.isfinite(blk)).reshape(len(blk), -1).any(dim=1).sum())
        raise DataError(f"{name} contain NaN or Inf in {bad} row(s); check the learner's outputs "
                        "(features with NaN, a diverged model)")


def rows_per_block(n_cols: int, itemsize: int, block_bytes: int) -> int:
    """How many rows of ``n_cols`` entries of ``itemsize`` bytes fit in ``block_bytes`` (at least 1)."""
    return max(1, int(block_bytes) // max(1, int(n_cols) * int(itemsize)))


def row_sq_norms(X: torch.Tensor, block_bytes: int = BLOCK_BYTES) -> torch.Tensor:
    """Squared row norms ``|x_i|^2``, shape (N,), in the accumulator dtype of ``X``.

    Computed in row blocks so a half-precision ``X`` is upcast one block at a time.
    """
    cdt = compute_dtype(X.dtype)
    out = torch.empty(X.shape[0], dtype=cdt, device=X.device)
    step = rows_per_block(X.shape[1], torch.finfo(cdt).bits // 8, block_bytes)
    for s in range(0, X.shape[0], step):
        blk = X[s:s + step].to(cdt)
        torch.sum(blk * blk, dim=1, out=out[s:s + step])
    return out


def working_copy(X: Any, name: str, dtype: torch.dtype, *, center: bool = False, normalize: bool = False,
                 block_bytes: int = BLOCK_BYTES, rows: Any = None) -> torch.Tensor:
    """Copy ``X`` (N, d) (or its ``rows``) into a fresh contiguous tensor of ``dtype``, block by block.

    Parameters
    ----------
    X : ndarray or Tensor, shape (N, d)
    name : str
        What ``X`` is, for error messages.
    dtype : torch.dtype
        Storage dtype of the copy.
    center : bool
        Subtract the column mean first (distances are unchanged; the expansion
        ``|x|^2 + |c|^2 - 2 x.c`` loses fewer digits on centered data).
    normalize : bool
        Scale rows to unit length (cosine geometry); a zero row raises
        :class:`DataError`. Applied before ``center``.

    rows : array of int, shape (n,), optional
        Row positions of ``X`` to copy, in this order (gathered block by block: no
        copy of the rows in ``X``'s dtype beside the result); default all.

    Notes
    -----
    Peak extra memory is the copy plus one block of ``block_bytes`` in float64.
    """
    src = X if isinstance(X, torch.Tensor) else tensor_of(X)
    if src.ndim != 2:
        raise DataError(f"{name} must be a 2-D (n, d) matrix, got shape {tuple(src.shape)}; flatten the inputs first")
    check_finite(src, name)
    pick = None if rows is None else torch.as_tensor(np.asarray(rows, dtype=np.int64), device=src.device)
    n, d = (src.shape[0] if pick is None else len(pick)), src.shape[1]

    def block(s: int) -> torch.Tensor:
        part = src[s:s + step] if pick is None else src.index_select(0, pick[s:s + step])
        return part.to(torch.float64)

    out = torch.empty((n, d), dtype=dtype, device=src.device)
    step = rows_per_block(d, 8, block_bytes)
    mean = None
    if center:
        acc = torch.zeros(d, dtype=torch.float64, device=src.device)
        for s in range(0, n, step):
            blk = block(s)
            if normalize:
                blk = _unit_rows(blk, name)
            acc += blk.sum(dim=0)
        mean = acc / max(n, 1)
    for s in range(0, n, step):
        blk = block(s)
        if normalize:
            blk = _unit_rows(blk, name)
        if mean is not None:
            blk = blk - mean
        out[s:s + step] = blk.to(dtype)
    return out


def _unit_rows(blk: torch.Tensor, name: str) -> torch.Tensor:
    norms = torch.linalg.vector_norm(blk, dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise DataError(f"{name} hold {int((norms == 0).sum())} all-zero row(s), which have no cosine distance; "
                        "use metric='euclidean'")
    return blk / norms


class MinSqDist:
    """Running ``min_c |x_i - c|^2`` of every row of ``X`` over a growing set of centers.

    Each :meth:`add` is one pass over ``X`` (one ``addmv``) plus O(N) in-place
    work; memory is ``X`` plus four O(N) vectors.

    Parameters
    ----------
    X : Tensor, shape (N, d)
        Rows in any floating dtype; half precision is multiplied in half
        precision and combined in float32.
    sq : Tensor, shape (N,), optional
        Precomputed ``|x_i|^2`` in the accumulator dtype.

    Attributes
    ----------
    mind : Tensor, shape (N,)
        Current minimum squared distance (``+inf`` before the first center,
        clamped at 0 from below; rows marked with :meth:`exclude` hold ``-inf``).
    """

    def __init__(self, X: torch.Tensor, sq: torch.Tensor | None = None) -> None:
        self.X = X
        self.cdt = compute_dtype(X.dtype)
        self.sq = row_sq_norms(X) if sq is None else sq
        n = X.shape[0]
        self.mind = torch.full((n,), float("inf"), dtype=self.cdt, device=X.device)
        self._base = torch.empty(n, dtype=self.cdt, device=X.device)
        self._d2 = torch.empty(n, dtype=self.cdt, device=X.device)
        self._half = X.dtype in (torch.float16, torch.bfloat16)
        self._dot = torch.empty(n, dtype=X.dtype, device=X.device) if self._half else None

    def add(self, pos: int) -> None:
        """Take row ``pos`` as a new center and update :attr:`mind` in place."""
        sq_dist_min_(self.X, self.sq, self.X[pos], self.sq[pos], self.mind, self._base, self._d2, self._dot)

    def add_many(self, pos: Any, block_bytes: int = BLOCK_BYTES) -> None:
        """Take rows ``pos`` (int64 tensor) as centers at once: one blocked matrix product, not a pass each."""
        sq_dist_min_many_(self.X, self.sq, pos, self.mind, block_bytes)

    def exclude(self, pos: Any) -> None:
        """Mark rows ``pos`` as never selectable again (``mind = -inf``)."""
        self.mind[pos] = float("-inf")

    def argmax(self) -> tuple[int, float]:
        """Position of the largest ``mind`` (first one on ties) and its value."""
        pos = int(torch.argmax(self.mind))
        return pos, float(self.mind[pos])


class ProductMinSqDist:
    """:class:`MinSqDist` of rows that are row-wise outer products ``g_i = r_i (x) h_i``, never formed.

    ``|g_i - g_c|^2 = |r_i|^2 |h_i|^2 + |r_c|^2 |h_c|^2 - 2 <r_i, r_c> <h_i, h_c>`` (the inner
    product of two outer products is the product of the inner products), so each :meth:`add` is
    one pass over ``R`` and one over ``H``: ``N (c + d)`` multiply-adds and reads where the formed
    ``(N, c d)`` rows take ``N c d`` (BADGE's gradient embeddings: 3840-d rows from 10 + 384 numbers).

    Parameters
    ----------
    R : Tensor, shape (N, c)
    H : Tensor, shape (N, d)
        Factors in one floating dtype; half precision is multiplied in half precision and
        combined in float32.

    Attributes
    ----------
    sq : Tensor, shape (N,)
        ``|g_i|^2 = |r_i|^2 |h_i|^2`` in the accumulator dtype.
    mind : Tensor, shape (N,)
        As :attr:`MinSqDist.mind` (``+inf`` before the first center, clamped at 0 from below).
    """

    def __init__(self, R: torch.Tensor, H: torch.Tensor) -> None:
        if R.ndim != 2 or H.ndim != 2 or R.shape[0] != H.shape[0] or R.dtype != H.dtype:
            raise ValueError(f"factors must be (N, c) and (N, d) of one dtype, got {tuple(R.shape)} {R.dtype} "
                             f"and {tuple(H.shape)} {H.dtype}")
        self.R, self.H = R, H
        self.cdt = compute_dtype(H.dtype)
        self.sq = row_sq_norms(R) * row_sq_norms(H)
        n = H.shape[0]
        self.mind = torch.full((n,), float("inf"), dtype=self.cdt, device=H.device)
        self._rd = torch.empty(n, dtype=self.cdt, device=H.device)
        self._hd = torch.empty(n, dtype=self.cdt, device=H.device)

    def _dots(self, M: torch.Tensor, pos: int, out: torch.Tensor) -> None:
        if M.dtype == self.cdt:
            torch.mv(M, M[pos], out=out)
        else:  # half precision: torch has no mixed half x half -> float32 mv on CPU
            out.copy_(torch.mv(M, M[pos]))

    def add(self, pos: int) -> None:
        """Take row ``pos`` as a new center and update :attr:`mind` in place."""
        self._dots(self.R, pos, self._rd)
        self._dots(self.H, pos, self._hd)
        self._rd.mul_(self._hd)  # <g_i, g_c>
        torch.add(self.sq, self.sq[pos], out=self._hd)
        self._hd.add_(self._rd, alpha=-2).clamp_(min=0)
        torch.minimum(self.mind, self._hd, out=self.mind)


def sq_dist_min_(rows: torch.Tensor, sq: torch.Tensor, c: torch.Tensor, c_sq: torch.Tensor, mind: torch.Tensor,
                 base: torch.Tensor, d2: torch.Tensor, dot: torch.Tensor | None) -> None:
    """``mind = min(mind, max(0, sq + c_sq - 2 rows @ c))`` in place, via one ``addmv``.

    ``rows`` (n, d), ``sq``/``mind``/``base``/``d2`` (n,) in the accumulator
    dtype; ``dot`` (n,) in the half dtype of ``rows`` when ``rows`` is half
    precision (torch has no mixed half x half -> float32 ``mv`` on CPU), else None.
    The k-center variants all call this one function so that they compute
    bitwise the same distances.
    """
    torch.add(sq, c_sq, out=base)
    if dot is not None:
        torch.mv(rows, c, out=dot)
        torch.add(base, dot, alpha=-2, out=d2)
    else:
        torch.addmv(base, rows, c, alpha=-2, out=d2)
    d2.clamp_(min=0)
    torch.minimum(mind, d2, out=mind)


def sq_dist_min_many_(rows: torch.Tensor, sq: torch.Tensor, centers: torch.Tensor, mind: torch.Tensor,
                      block_bytes: int = BLOCK_BYTES) -> None:
    """``mind = min(mind, min_c max(0, sq + |c|^2 - 2 rows @ c))`` over many centers at once, in place.

    The same expansion as :func:`sq_dist_min_` with one matrix product per row
    block instead of one ``addmv`` pass per center: adding ``n_c`` labeled
    centers costs one read of ``rows`` (plus ``N * n_c`` multiply-adds in
    ``addmm``) where the per-center loop reads them ``n_c`` times.

    Parameters
    ----------
    rows : Tensor, shape (n, d)
        Rows in any floating dtype (half precision is upcast one block at a time).
    sq : Tensor, shape (n,)
        ``|x|^2`` in the accumulator dtype of ``rows``.
    centers : Tensor of int64, shape (n_c,)
        Positions into ``rows`` of the centers.
    mind : Tensor, shape (n,)
        Updated in place (accumulator dtype).
    block_bytes : int
        Memory of one (row block x n_c) distance block.

    Notes
    -----
    A dot product summed by ``addmm`` may round differently in the last bit
    from the ``addmv`` of :func:`sq_dist_min_`; integer-valued inputs (exact
    ties) give the same distances either way.
    """
    if centers.numel() == 0:
        return
    cdt = compute_dtype(rows.dtype)
    C = rows.index_select(0, centers).to(cdt)
    c_sq = sq.index_select(0, centers)
    upcast = rows.dtype != cdt
    # per row: the base and distance blocks, plus the upcast row for half storage
    step = rows_per_block(2 * centers.numel() + (rows.shape[1] if upcast else 0), torch.finfo(cdt).bits // 8,
                          block_bytes)
    for s in range(0, rows.shape[0], step):
        blk = rows[s:s + step]
        base = sq[s:s + step, None] + c_sq[None, :]
        d2 = torch.addmm(base, blk.to(cdt) if upcast else blk, C.T, alpha=-2)
        d2.clamp_(min=0)
        torch.minimum(mind[s:s + step], d2.amin(dim=1), out=mind[s:s + step])


def expansion_tolerance(d: int, storage: torch.dtype) -> float:
    """Relative error bound of ``|x|^2 + |c|^2 - 2 x.c`` as computed by :class:`MinSqDist`.

    Any summation order of a length-``d`` dot product errs by at most
    ``gamma_d |x||c| <= gamma_d (|x|^2 + |c|^2) / 2`` with ``gamma_d ~ d eps``
    (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., 3.1);
    the two norms and the three additions add ``(d + 3) eps``. The result is
    relative to ``|x|^2 + |c|^2``. Half-precision storage is bounded with its
    own epsilon (its products may be accumulated and rounded in half).
    """
    eps = torch.finfo(storage if storage in (torch.float16, torch.bfloat16) else compute_dtype(storage)).eps
    return float((2 * d + 4) * eps * 1.01)


def knn_blocked(Q: torch.Tensor, R: torch.Tensor, k: int, *, block_bytes: int = BLOCK_BYTES,
                r_sq: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest rows of ``R`` (Euclidean) for every row of ``Q``, in query blocks.

    Parameters
    ----------
    Q : Tensor, shape (n_q, d)
        Queries.
    R : Tensor, shape (n_r, d)
        Reference points (same dtype as ``Q``).
    k : int
        Neighbours per query, ``1 <= k <= n_r``.
    block_bytes : int
        Memory of one (rows x n_r) distance block; the full n_q x n_r matrix
        is never formed unless it fits.
    r_sq : Tensor, shape (n_r,), optional
        Precomputed ``|r_j|^2``.

    Returns
    -------
    idx : Tensor of int64, shape (n_q, k)
        Positions into ``R``, nearest first; equal distances are ordered by the
        smaller position (so a caller with ``R`` sorted by global id breaks
        ties by id).
    d2 : Tensor, shape (n_q, k)
        Squared distances (clamped at 0), same order.
    """
    n_q, n_r = Q.shape[0], R.shape[0]
    cdt = compute_dtype(R.dtype)
    if r_sq is None:
        r_sq = row_sq_norms(R)
    Rc = R.to(cdt)
    # blocks of at most block_bytes, and small enough (8 MiB) to stay in cache between addmm and topk
    step = rows_per_block(n_r, torch.finfo(cdt).bits // 8, min(int(block_bytes), 8 << 20))
    kk = min(k + 1, n_r)  # one extra to see ties at the boundary
    idx_out = torch.empty((n_q, k), dtype=torch.int64, device=Q.device)
    d2_out = torch.empty((n_q, k), dtype=cdt, device=Q.device)
    for s in range(0, n_q, step):
        q = Q[s:s + step].to(cdt)
        # |r|^2 - 2 q.r ranks the references like |q - r|^2 (|q|^2 is constant per row)
        part = torch.addmm(r_sq, q, Rc.T, alpha=-2)
        vals, idx = torch.topk(part, kk, dim=1, largest=False, sorted=True)
        vals, idx = _order_ties(part, vals, idx, k)
        q_sq = (q * q).sum(dim=1, keepdim=True)
        d2_out[s:s + step] = (vals + q_sq).clamp_(min=0)
        idx_out[s:s + step] = idx
    return idx_out, d2_out


def _order_ties(part: torch.Tensor, vals: torch.Tensor, idx: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Make the k-NN deterministic on ties: among equal values, smaller positions first.

    ``vals``/``idx`` are the ``k`` (or ``k + 1`` when there are more
    references) smallest of ``part``, sorted. ``topk`` promises neither
    which of several equal boundary values it keeps nor their order, so rows
    with two equal kept values (which includes a k-th value equal to the
    (k+1)-th, a tie at the boundary) are redone with a stable sort (rare on
    real data, so the fix-up costs nothing in the common case).
    """
    if vals.shape[1] > 1:
        rows = torch.nonzero((vals[:, 1:] == vals[:, :-1]).any(dim=1)).flatten()
        if rows.numel():
            sub = part[rows]
            order = torch.sort(sub, dim=1, stable=True).indices[:, :vals.shape[1]]
            idx = idx.clone()
            vals = vals.clone()
            idx[rows] = order
            vals[rows] = torch.gather(sub, 1, order)
    return vals[:, :k], idx[:, :k]
