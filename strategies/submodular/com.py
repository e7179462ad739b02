"""Concave over modular (COM) mutual information.

Id frame: positions ``0 .. n-1`` of the ground set ``V``.

``I_f(A; Q) = eta sum_{i in A} psi(sum_{j in Q} s_ij) + sum_{j in Q} psi(sum_{i in A} s_ij)``
(Iyer et al. 2021, ALT; SIMILAR, Kothawade et al. NeurIPS 2021, Table 1),
with ``psi`` concave, non-decreasing, ``psi(0) = 0`` (``sqrt`` by default).
Monotone submodular for ``s >= 0``: a modular term plus concave functions of
modular functions. The memo is ``acc_j = sum_{i in A} s_ij`` per query ``j``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from al_loop.errors import ConfigError
from strategies.submodular.base import SetFunction

CONCAVE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sqrt": np.sqrt,
    "log1p": np.log1p,
}


class ConcaveOverModular(SetFunction):
    """COM mutual information.

    Parameters
    ----------
    S_qv : ndarray, shape (|Q|, n)
        Query-to-candidate similarities, ``>= 0``.
    eta : float
        Weight of the query-relevance (modular) term.
    psi : {"sqrt", "log1p"}
        The concave function.
    """

    name = "com"

    def __init__(self, S_qv: np.ndarray, eta: float = 1.0, psi: str = "sqrt",
                 preselect: Iterable[int] | None = None) -> None:
        if psi not in CONCAVE:
            raise ConfigError(f"unknown concave function {psi!r}; valid: {', '.join(CONCAVE)}")
        self.psi = CONCAVE[psi]
        self.St = np.ascontiguousarray(np.asarray(S_qv, dtype=np.float64).T)  # (n, |Q|)
        self.eta = float(eta)
        self.rel = self.psi(self.St.sum(axis=1))
        super().__init__(len(self.St), preselect)
        self._finish_init()

    def _clear(self) -> None:
        self.acc = np.zeros(self.St.shape[1])

    def _update(self, e: int) -> None:
        self.acc += self.St[e]

    def _raw(self, A: np.ndarray) -> float:
        if A.size == 0:
            return 0.0
        return float(self.eta * self.rel[A].sum() + self.psi(self.St[A].sum(axis=0)).sum())

    def gain(self, candidates: np.ndarray) -> np.ndarray:
        c = np.asarray(candidates, dtype=np.int64)
        cover = (self.psi(self.acc[None, :] + self.St[c]) - self.psi(self.acc)[None, :]).sum(axis=1)
        return self.eta * self.rel[c] + cover
