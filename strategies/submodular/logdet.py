"""Log-determinant and its information measures (LogDet, LogDetMI, LogDetCG, LogDetCMI).

Id frame: positions ``0 .. n-1`` of the ground set ``V``; the kernel object
may cover more rows (the query set ``Q`` and private set ``P``), addressed
through the index arrays ``v``, ``q``, ``p``.

Let ``K = S + reg I`` (``reg`` the regulariser) and ``K_{A,B}`` its blocks.
Formulas (Iyer et al. 2021, ALT, Table 1; SIMILAR, Kothawade et al. NeurIPS
2021; PRISM, Kothawade et al. AAAI 2022, where the cross-similarities to ``Q``
are scaled by ``eta`` and those to ``P`` by ``nu``):

- LogDet:    ``f(A) = log det K_A``
- LogDetMI:  ``I_f(A; Q) = log det K_A - log det(K_A - eta^2 K_AQ K_Q^{-1} K_QA)``
- LogDetCG:  ``f(A | P) = log det(K_A - nu^2 K_AP K_P^{-1} K_PA)``
- LogDetCMI: ``I_f(A; Q | P) = f(A | P) - f(A | Q + P)`` with the scaled joint
  kernel, i.e. ``log det(K_A - nu^2 K_AP K_P^{-1} K_PA)
  - log det(K_A - C_A K_{QP}^{-1} C_A^T)`` where ``C_A = [eta K_AQ, nu K_AP]``
  and ``K_{QP}`` the (unscaled) kernel of ``Q + P``; equal to the ratio form
  ``log det(I - K_P^{-1} K_PQ K_Q^{-1} K_QP) / det(I - K_{AP}^{-1} K_{AP,Q} K_Q^{-1} K_{AP,Q}^T)``
  of the paper for ``eta = nu = 1``. Positive definite for ``eta = nu <= 1``;
  unequal scales on a nearly singular ``K_{QP}`` (small ``reg``) can break it.

Each term is ``log det M_A`` of a *conditioned* kernel ``M = K - W W^T``
(``W = [eta K_vQ, ...] L^{-T}`` with ``L`` the Cholesky factor of the
conditioning block), maintained as an incremental Cholesky factor of
``M_A``: the gain of ``c`` is ``log d_c^2`` with the pivot
``d_c^2 = M_cc - |L_A^{-1} M_Ac|^2``. A pivot ``<= 0`` means ``M_A`` is not
positive definite (e.g. ``eta > 1`` on a cosine kernel of non-negative data):
we raise :class:`~al_loop.errors.ConfigError` naming the parameter to change
instead of returning NaN. Only ``|A| x batch`` kernel blocks are formed.

LogDet and LogDetCG are submodular (log-det of a positive definite matrix);
LogDetMI/LogDetCMI are differences of two and carry no such guarantee, so lazy
greedy on them is a heuristic (``submodular = False``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np
from scipy.linalg import solve_triangular

from al_loop.errors import ConfigError
from strategies.submodular.base import SetFunction


class Kernel(Protocol):
    n: int
    reg: float

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray: ...

    def diag(self, idx: np.ndarray) -> np.ndarray: ...


def _pivot_tol(diag: np.ndarray) -> np.ndarray:
    return 1e-9 * np.maximum(1.0, np.abs(diag))


class ConditionedKernel:
    """``M = K[v][:, v] - W W^T`` on ground positions (``W`` may be None).

    Parameters
    ----------
    kernel : Kernel
        Over all rows (``V``, ``Q``, ``P``).
    v : ndarray of int64, shape (n,)
        Kernel rows of the ground positions.
    W : ndarray, shape (n, r), optional
    hint : str
        The fix to print when ``M_A`` is not positive definite.
    """

    def __init__(self, kernel: Kernel, v: np.ndarray, W: np.ndarray | None, hint: str) -> None:
        self.kernel, self.v, self.W, self.hint = kernel, np.asarray(v, dtype=np.int64), W, hint

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        out = self.kernel.block(self.v[rows], self.v[cols])
        if self.W is not None:
            out -= self.W[rows] @ self.W[cols].T
        return out

    def diag(self, idx: np.ndarray) -> np.ndarray:
        out = self.kernel.diag(self.v[idx])
        if self.W is not None:
            Wi = self.W[idx]
            out = out - np.einsum("ij,ij->i", Wi, Wi)
        return out

    def fail(self, size: int, pivot: float) -> ConfigError:
        return ConfigError(f"the log-det kernel is not positive definite at |A|={size} (pivot {pivot:.3g}); "
                           f"{self.hint}")

    def logdet(self, A: np.ndarray) -> float:
        """``log det M_A`` by Cholesky; raises ConfigError when ``M_A`` is not positive definite."""
        if A.size == 0:
            return 0.0
        M = self.block(A, A)
        try:
            L = np.linalg.cholesky(M)
        except np.linalg.LinAlgError:
            raise self.fail(len(A), float(np.linalg.eigvalsh(M).min())) from None
        d = np.diagonal(L)
        if (d ** 2 <= _pivot_tol(np.diagonal(M))).any():
            raise self.fail(len(A), float((d ** 2).min()))
        return float(2.0 * np.log(d).sum())


class _Cholesky:
    """Incremental Cholesky factor of ``M_A`` (memo of one log-det term)."""

    def __init__(self, M: ConditionedKernel) -> None:
        self.M = M
        self.L = np.zeros((16, 16))
        self.A: list[int] = []

    def pivots(self, c: np.ndarray) -> np.ndarray:
        """``d_c^2 = M_cc - |L^{-1} M_Ac|^2``, shape (len(c),); raises on a non-positive pivot."""
        diag = self.M.diag(c)
        d2 = diag
        t = len(self.A)
        if t:
            z = solve_triangular(self.L[:t, :t], self.M.block(np.asarray(self.A), c), lower=True,
                                 check_finite=False)
            d2 = d2 - np.einsum("ij,ij->j", z, z)
        bad = ~(d2 > _pivot_tol(diag))  # NaN counts as bad
        if bad.any():
            raise self.M.fail(t + 1, float(d2[bad].min()))
        return d2

    def extend(self, e: int) -> None:
        t = len(self.A)
        if t + 1 > len(self.L):
            grown = np.zeros((2 * len(self.L), 2 * len(self.L)))
            grown[:t, :t] = self.L[:t, :t]
            self.L = grown
        d2 = self.pivots(np.array([e]))[0]
        if t:
            self.L[t, :t] = solve_triangular(self.L[:t, :t], self.M.block(np.asarray(self.A), np.array([e]))[:, 0],
                                             lower=True, check_finite=False)
        self.L[t, t] = np.sqrt(d2)
        self.A.append(e)


class LogDetFunction(SetFunction):
    """``f(A) = log det M+_A - log det M-_A`` (the minus term optional).

    Build it with :func:`log_determinant`, :func:`logdet_mi`, :func:`logdet_cg`
    or :func:`logdet_cmi`.

    Parameters
    ----------
    plus : ConditionedKernel
    minus : ConditionedKernel, optional
    preselect : iterable of int, optional
    name : str
    """

    monotone = False

    def __init__(self, plus: ConditionedKernel, minus: ConditionedKernel | None = None,
                 preselect: Iterable[int] | None = None, name: str = "logdet") -> None:
        self.plus, self.minus = plus, minus
        self.name = name  # type: ignore[misc]
        self.submodular = minus is None  # type: ignore[misc]
        super().__init__(len(plus.v), preselect)
        self._finish_init()

    def _clear(self) -> None:
        self._p = _Cholesky(self.plus)
        self._m = _Cholesky(self.minus) if self.minus is not None else None

    def _update(self, e: int) -> None:
        self._p.extend(e)
        if self._m is not None:
            self._m.extend(e)

    def _raw(self, A: np.ndarray) -> float:
        out = self.plus.logdet(A)
        if self.minus is not None:
            out -= self.minus.logdet(A)
        return out

    def gain(self, candidates: np.ndarray) -> np.ndarray:
        c = np.asarray(candidates, dtype=np.int64)
        out = np.log(self._p.pivots(c))
        if self._m is not None:
            out -= np.log(self._m.pivots(c))
        return out


def _chol(kernel: Kernel, idx: np.ndarray, what: str) -> np.ndarray:
    K = kernel.block(idx, idx)
    try:
        return np.linalg.cholesky(K)
    except np.linalg.LinAlgError:
        raise ConfigError(f"the kernel of the {what} is not positive definite (duplicate items?); raise the "
                          f"regulariser reg above {kernel.reg}") from None


def _whiten(kernel: Kernel, v: np.ndarray, cond: np.ndarray, scale: np.ndarray, what: str,
            block: int = 65536) -> np.ndarray:
    """``W = (K_{v,cond} * scale) L^{-T}`` with ``L L^T = K_cond``, shape (len(v), len(cond))."""
    L = _chol(kernel, cond, what)
    W = np.empty((len(v), len(cond)))
    for s in range(0, len(v), block):
        C = kernel.block(v[s:s + block], cond) * scale[None, :]
        W[s:s + block] = solve_triangular(L, C.T, lower=True, check_finite=False).T
    return W


def _safe_hint(params: str, reg: float) -> str:
    return f"lower {params} (values <= 1 keep it positive definite) or raise the regulariser reg above {reg}"


def log_determinant(kernel: Kernel, v: np.ndarray | None = None,
                    preselect: Iterable[int] | None = None) -> LogDetFunction:
    """LogDet: ``f(A) = log det K_A`` (``K = S + reg I``)."""
    v = np.arange(kernel.n) if v is None else np.asarray(v, dtype=np.int64)
    plus = ConditionedKernel(kernel, v, None, f"raise the regulariser reg above {kernel.reg}")
    return LogDetFunction(plus, None, preselect, "logdet")


def logdet_mi(kernel: Kernel, v: np.ndarray, q: np.ndarray, eta: float = 1.0,
              preselect: Iterable[int] | None = None) -> LogDetFunction:
    """LogDetMI: ``log det K_A - log det(K_A - eta^2 K_AQ K_Q^{-1} K_QA)``.

    Parameters
    ----------
    kernel : Kernel over the rows ``v`` (ground set) and ``q`` (query set).
    v, q : ndarray of int64
        Kernel rows of the ground set and of the query set.
    eta : float
        Query-relevance weight (PRISM's ``eta``).
    """
    v, q = np.asarray(v, dtype=np.int64), np.asarray(q, dtype=np.int64)
    W = _whiten(kernel, v, q, np.full(len(q), float(eta)), "query set")
    plus = ConditionedKernel(kernel, v, None, f"raise the regulariser reg above {kernel.reg}")
    minus = ConditionedKernel(kernel, v, W, "LogDetMI needs K_A - eta^2 K_AQ K_Q^-1 K_QA positive definite: "
                              + _safe_hint(f"eta below {eta}", kernel.reg))
    return LogDetFunction(plus, minus, preselect, "logdetmi")


def logdet_cg(kernel: Kernel, v: np.ndarray, p: np.ndarray, nu: float = 1.0,
              preselect: Iterable[int] | None = None) -> LogDetFunction:
    """LogDetCG: ``log det(K_A - nu^2 K_AP K_P^{-1} K_PA)``.

    Parameters
    ----------
    kernel : Kernel over the rows ``v`` and ``p`` (private set).
    v, p : ndarray of int64
    nu : float
        Private-set hardness (PRISM's ``nu``).
    """
    v, p = np.asarray(v, dtype=np.int64), np.asarray(p, dtype=np.int64)
    W = _whiten(kernel, v, p, np.full(len(p), float(nu)), "private set")
    plus = ConditionedKernel(kernel, v, W, "LogDetCG needs K_A - nu^2 K_AP K_P^-1 K_PA positive definite: "
                             + _safe_hint(f"nu below {nu}", kernel.reg))
    return LogDetFunction(plus, None, preselect, "logdetcg")


def logdet_cmi(kernel: Kernel, v: np.ndarray, q: np.ndarray, p: np.ndarray, eta: float = 1.0, nu: float = 1.0,
               preselect: Iterable[int] | None = None) -> LogDetFunction:
    """LogDetCMI: ``log det(K_A - nu^2 K_AP K_P^{-1} K_PA) - log det(K_A - C_A K_{QP}^{-1} C_A^T)``.

    ``C_A = [eta K_AQ, nu K_AP]``; see the module docstring. With ``P`` empty
    it equals LogDetMI; with ``Q`` empty it is 0.
    """
    v, q, p = (np.asarray(a, dtype=np.int64) for a in (v, q, p))
    hint_cg = "LogDetCMI needs K_A - nu^2 K_AP K_P^-1 K_PA positive definite: " + \
        _safe_hint(f"nu below {nu}", kernel.reg)
    hint_cmi = ("LogDetCMI needs K_A - C_A K_QP^-1 C_A^T positive definite: lower eta below "
                f"{eta} (eta = nu <= 1 keeps it positive definite) or raise the regulariser reg above {kernel.reg}")
    W_p = _whiten(kernel, v, p, np.full(len(p), float(nu)), "private set") if len(p) else None
    qp = np.concatenate([q, p])
    scale = np.concatenate([np.full(len(q), float(eta)), np.full(len(p), float(nu))])
    W_qp = _whiten(kernel, v, qp, scale, "query and private sets") if len(qp) else None
    plus = ConditionedKernel(kernel, v, W_p, hint_cg)
    minus = ConditionedKernel(kernel, v, W_qp, hint_cmi)
    return LogDetFunction(plus, minus, preselect, "logdetcmi")
