"""Facility location and its information measures (FL, FLVMI, FLCG, FLCMI, FLQMI).

Id frame: positions. ``V`` is the represented set (rows of the sum), the
candidates are the ground set ``0 .. n-1``; in the strategies both are the
unlabeled pool (plus, for FASS, the labeled set as preselected items).

One memoised class covers four functions of the table in Iyer et al. 2021
("Submodular combinatorial information measures", ALT) as instantiated in
SIMILAR (Kothawade et al., NeurIPS 2021) and PRISM (Kothawade et al., AAAI
2022). With ``q_i = max_{j in Q} s_ij`` and ``p_i = max_{j in P} s_ij``:

- FL:    ``f(A) = sum_{i in V} max_{j in A} s_ij``
- FLVMI: ``I_f(A; Q) = sum_{i in V} min(max_{j in A} s_ij, eta q_i)``
- FLCG:  ``f(A | P) = sum_{i in V} max(max_{j in A} s_ij - nu p_i, 0)``
- FLCMI: ``I_f(A; Q | P) = sum_{i in V} max(min(max_{j in A} s_ij, eta q_i) - nu p_i, 0)``

All are ``sum_i [max(floor_i, max_{j in A} min(s_ij, cap_i)) - floor_i]`` with
``cap_i = eta q_i`` (or infinity) and ``floor_i = nu p_i`` (or 0), which is a
facility location on the capped kernel started from the floor, hence monotone
submodular for ``s >= 0`` (an empty max is 0). The marginal gain of candidate
``c`` is ``sum_i max(0, min(s_ic, cap_i) - cur_i)`` with ``cur_i`` the memo.

FLQMI (:class:`FacilityLocationQueryMI`) is
``I_f(A; Q) = sum_{i in Q} max_{j in A} s_ij + eta sum_{j in A} max_{i in Q} s_ij``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

from strategies.submodular.base import SetFunction


class FacilityLocation(SetFunction):
    """Facility location with optional cap (MI) and floor (conditioning on P).

    Parameters
    ----------
    S : ndarray of float, shape (n, m), or scipy.sparse matrix (n, m)
        ``S[j, i] = s_ij``: similarity of candidate ``j`` to represented item
        ``i`` (for a symmetric kernel over one set, just the kernel). Must be
        ``>= 0``. Sparse: the missing entries are 0 (a kNN kernel, transposed
        so that row ``j`` lists the items ``j`` can represent).
    cap : ndarray, shape (m,), optional
        ``cap_i = eta * max_{q in Q} s_iq`` (FLVMI/FLCMI).
    floor : ndarray, shape (m,), optional
        ``floor_i = nu * max_{p in P} s_ip`` (FLCG/FLCMI).
    preselect : iterable of int, optional
        Candidates already selected (conditioning, see :mod:`.base`).
    copy : bool
        Copy ``S`` (False: ``S`` is capped in place, saving one N x N array).
    """

    name = "fl"

    def __init__(self, S: np.ndarray | sp.spmatrix, cap: np.ndarray | None = None,
                 floor: np.ndarray | None = None, preselect: Iterable[int] | None = None,
                 copy: bool = True) -> None:
        self.sparse = sp.issparse(S)
        if self.sparse:
            St = sp.csr_matrix(S, dtype=np.float32, copy=copy)
            St.sort_indices()
            self.indptr = St.indptr.astype(np.int64)
            self.indices = St.indices.astype(np.int64)
            self.data = St.data
            n, m = St.shape
            if cap is not None:
                np.minimum(self.data, np.asarray(cap, np.float32)[self.indices], out=self.data)
            self.lengths = np.diff(self.indptr)
        else:
            arr = np.asarray(S)
            self.S = np.array(arr, dtype=np.float32, order="C", copy=True) if copy or arr.dtype != np.float32 \
                or not arr.flags.c_contiguous else arr
            n, m = self.S.shape
            if cap is not None:
                np.minimum(self.S, np.asarray(cap, np.float32)[None, :], out=self.S)
        self.m = m
        self.floor = np.zeros(m, np.float32) if floor is None else np.asarray(floor, np.float32).copy()
        super().__init__(n, preselect)
        self._finish_init()

    # memo: cur_i = max(floor_i, max_{j in A} min(s_ij, cap_i))
    def _clear(self) -> None:
        self.cur = self.floor.copy()

    def _row(self, e: int) -> tuple[np.ndarray, np.ndarray | slice]:
        if self.sparse:
            lo, hi = self.indptr[e], self.indptr[e + 1]
            return self.data[lo:hi], self.indices[lo:hi]
        return self.S[e], slice(None)

    def _update(self, e: int) -> None:
        vals, idx = self._row(e)
        self.cur[idx] = np.maximum(self.cur[idx], vals)

    def _raw(self, A: np.ndarray) -> float:
        best = self.floor.copy()
        for e in A:
            vals, idx = self._row(int(e))
            best[idx] = np.maximum(best[idx], vals)
        return float((best.astype(np.float64) - self.floor).sum())

    def gain(self, candidates: np.ndarray) -> np.ndarray:
        c = np.asarray(candidates, dtype=np.int64)
        if c.size == 0:
            return np.zeros(0)
        if not self.sparse:
            out = np.empty(len(c), dtype=np.float64)
            step = max(1, (32 * 2**20) // max(1, 4 * self.m))
            for s in range(0, len(c), step):
                block = self.S[c[s:s + step]] - self.cur
                np.maximum(block, 0.0, out=block)
                out[s:s + step] = block.sum(axis=1)  # float32 pairwise sums: ~1e-7 relative
            return out
        return self._sparse_gain(c)

    def _sparse_gain(self, c: np.ndarray) -> np.ndarray:
        lens = self.lengths[c]
        total = int(lens.sum())
        out = np.zeros(len(c), dtype=np.float64)
        if total == 0:
            return out
        if len(c) == self.n and np.array_equal(c, np.arange(self.n)):
            pos = np.arange(total)
        else:
            starts = self.indptr[c]
            offsets = np.repeat(starts - np.cumsum(lens) + lens, lens)
            pos = offsets + np.arange(total)
        seg = np.repeat(np.arange(len(c)), lens)
        vals = self.data[pos] - self.cur[self.indices[pos]]
        np.maximum(vals, 0.0, out=vals)
        return np.bincount(seg, weights=vals, minlength=len(c))


class FacilityLocationQueryMI(SetFunction):
    """FLQMI: ``I_f(A; Q) = sum_{i in Q} max_{j in A} s_ij + eta sum_{j in A} max_{i in Q} s_ij``.

    Iyer et al. 2021 (ALT), Kothawade et al. 2021 (SIMILAR, Table 1). Monotone
    submodular for ``s >= 0``, ``eta >= 0``; ``f(empty) = 0``.

    Parameters
    ----------
    S_qv : ndarray, shape (|Q|, n)
        Query-to-candidate similarities (``>= 0``).
    eta : float
        Query-relevance weight of the modular term.
    """

    name = "flqmi"

    def __init__(self, S_qv: np.ndarray, eta: float = 1.0, preselect: Iterable[int] | None = None) -> None:
        S_qv = np.asarray(S_qv, dtype=np.float32)
        self.St = np.ascontiguousarray(S_qv.T)  # (n, |Q|)
        self.eta = float(eta)
        self.qmax = self.St.max(axis=1).astype(np.float64) if S_qv.shape[0] else np.zeros(len(self.St))
        super().__init__(len(self.St), preselect)
        self._finish_init()

    def _clear(self) -> None:
        self.cur = np.zeros(self.St.shape[1], dtype=np.float32)

    def _update(self, e: int) -> None:
        np.maximum(self.cur, self.St[e], out=self.cur)

    def _raw(self, A: np.ndarray) -> float:
        if A.size == 0:
            return 0.0
        return float(self.St[A].max(axis=0).astype(np.float64).sum() + self.eta * self.qmax[A].sum())

    def gain(self, candidates: np.ndarray) -> np.ndarray:
        c = np.asarray(candidates, dtype=np.int64)
        cover = np.maximum(self.St[c] - self.cur, 0.0).sum(axis=1, dtype=np.float64)
        return cover + self.eta * self.qmax[c]
