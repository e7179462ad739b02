"""Graph cut and its information measures (GC, GCCG, GCMI).

Id frame: positions ``0 .. n-1`` of the ground set ``V``.

Formulas (Iyer et al. 2021, ALT, Table 1; SIMILAR, Kothawade et al. NeurIPS
2021; PRISM, Kothawade et al. AAAI 2022):

- GC:   ``f_lambda(A) = sum_{i in V} sum_{j in A} s_ij - lambda sum_{i in A} sum_{j in A} s_ij``
  (monotone for ``s >= 0`` and ``lambda <= 1/2``, submodular for ``lambda >= 0``)
- GCCG: ``f(A | P) = f_lambda(A) - 2 lambda nu sum_{i in A} sum_{j in P} s_ij``
- GCMI: ``I_f(A; Q) = 2 lambda sum_{i in A} sum_{j in Q} s_ij`` (modular; see
  :func:`graph_cut_mi`).

Marginal gain: ``f(A + c) - f(A) = sum_{i in V} s_ic - lambda (s_cc + sum_{j in A} (s_jc + s_cj)) + w_c``
with ``w`` the modular part (``-2 lambda nu sum_{p in P} s_pc`` for GCCG), so
the memo is ``cross_c = sum_{j in A} (s_jc + s_cj)``, updated by one kernel row.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

from strategies.submodular.base import Modular, SetFunction


class GraphCut(SetFunction):
    """Graph cut with an optional modular term (GCCG).

    Parameters
    ----------
    S : ndarray, shape (n, n), or scipy.sparse (n, n)
        Similarities over the ground set, ``>= 0``. A sparse kernel must be
        symmetric (see :func:`.kernels.symmetrize`).
    lam : float
        ``lambda``: weight of the within-set similarity penalty (diversity).
    modular : ndarray, shape (n,), optional
        Extra per-item term ``w_c`` added to ``f`` (GCCG's private penalty).
    preselect : iterable of int, optional
    """

    name = "gc"

    def __init__(self, S: np.ndarray | sp.spmatrix, lam: float = 0.5, modular: np.ndarray | None = None,
                 preselect: Iterable[int] | None = None) -> None:
        self.sparse = sp.issparse(S)
        if self.sparse:
            self.S = sp.csr_matrix(S, dtype=np.float32)
            self.colsum = np.asarray(self.S.sum(axis=0), dtype=np.float64).ravel()
            self.diag = np.asarray(self.S.diagonal(), dtype=np.float64)
        else:
            self.S = np.asarray(S, dtype=np.float32)
            self.colsum = self.S.sum(axis=0, dtype=np.float64)
            self.diag = np.diagonal(self.S).astype(np.float64)
        n = self.S.shape[0]
        self.lam = float(lam)
        self.w = np.zeros(n) if modular is None else np.asarray(modular, dtype=np.float64).ravel()
        self.monotone = self.lam <= 0.5 and bool((self.w >= 0).all())  # type: ignore[misc]
        super().__init__(n, preselect)
        self._finish_init()

    def _clear(self) -> None:
        self.cross = np.zeros(self.n, dtype=np.float64)

    def _update(self, e: int) -> None:
        if self.sparse:
            lo, hi = self.S.indptr[e], self.S.indptr[e + 1]
            self.cross[self.S.indices[lo:hi]] += 2.0 * self.S.data[lo:hi]
        else:
            self.cross += self.S[e]
            self.cross += self.S[:, e]

    def _raw(self, A: np.ndarray) -> float:
        if A.size == 0:
            return 0.0
        if self.sparse:
            inner = float(self.S[A][:, A].sum())
        else:
            inner = float(self.S[np.ix_(A, A)].sum(dtype=np.float64))
        return float(self.colsum[A].sum() - self.lam * inner + self.w[A].sum())

    def gain(self, candidates: np.ndarray) -> np.ndarray:
        c = np.asarray(candidates, dtype=np.int64)
        return self.colsum[c] - self.lam * (self.diag[c] + self.cross[c]) + self.w[c]


def graph_cut_mi(S_qv: np.ndarray, lam: float = 0.5, preselect: Iterable[int] | None = None) -> Modular:
    """GCMI: ``I_f(A; Q) = 2 lambda sum_{i in A} sum_{j in Q} s_ij`` (modular).

    Parameters
    ----------
    S_qv : ndarray, shape (|Q|, n)
        Query-to-candidate similarities (``>= 0``).
    lam : float
        The graph-cut ``lambda``.
    """
    f = Modular(2.0 * lam * np.asarray(S_qv, dtype=np.float64).sum(axis=0), preselect)
    f.name = "gcmi"  # type: ignore[misc]
    return f


def graph_cut_cg(S: np.ndarray | sp.spmatrix, S_pv: np.ndarray, lam: float = 0.5, nu: float = 1.0,
                 preselect: Iterable[int] | None = None) -> GraphCut:
    """GCCG: ``f(A | P) = f_lambda(A) - 2 lambda nu sum_{i in A} sum_{j in P} s_ij``.

    Parameters
    ----------
    S : kernel over the ground set, see :class:`GraphCut`.
    S_pv : ndarray, shape (|P|, n)
        Private-to-candidate similarities (``>= 0``).
    lam, nu : float
        Graph-cut ``lambda`` and private-set hardness ``nu``.
    """
    w = -2.0 * lam * nu * np.asarray(S_pv, dtype=np.float64).sum(axis=0)
    f = GraphCut(S, lam=lam, modular=w, preselect=preselect)
    f.name = "gccg"  # type: ignore[misc]
    return f
