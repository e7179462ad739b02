"""The set-function interface shared by every submodular function, and two combinators.

Id frame: a set function lives on a ground set of positions ``0 .. n-1``;
callers map global pool ids to positions before and back after.

Every function keeps a *memo*: the statistics of the set ``A`` chosen so far
(the running maximum per item for facility location, a Cholesky factor for
log-determinants ...). ``gain(candidates)`` answers ``f(A + c) - f(A)`` for
many candidates at once from the memo, ``add(e)`` grows ``A``. ``evaluate(B)``
computes ``f(B)`` from the closed formula, independent of the memo: the tests
compare the two.

Conditioning (``preselect``): a function built with ``preselect=L`` is
``f(A | L) = f(A + L) - f(L)``: ``L`` counts as already selected (FASS does
this with the labeled set) and must not be offered as a candidate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import ClassVar

import numpy as np


def as_positions(A: Iterable[int] | np.ndarray | None) -> np.ndarray:
    """``A`` as a unique int64 array of positions (empty for None)."""
    if A is None:
        return np.zeros(0, dtype=np.int64)
    arr = np.asarray(list(A) if not isinstance(A, np.ndarray) else A, dtype=np.int64).ravel()
    return np.unique(arr)


class SetFunction(ABC):
    """A set function ``f: 2^{0..n-1} -> R`` with memoised marginal gains.

    Attributes
    ----------
    n : int
        Ground-set size.
    selected : list of int
        Positions added with :meth:`add`, in order.
    value : float
        ``f(selected | preselect)`` as accumulated from the gains.
    submodular : bool (class attribute)
        True when the function is submodular for every admissible parameter,
        so lazy greedy is exact (selects what naive greedy selects).
    monotone : bool (class attribute)
        True when every gain is non-negative.
    """

    name: ClassVar[str] = "set-function"
    submodular: ClassVar[bool] = True
    monotone: ClassVar[bool] = True

    def __init__(self, n: int, preselect: Iterable[int] | np.ndarray | None = None) -> None:
        self.n = int(n)
        self.preselect = as_positions(preselect)
        self.selected: list[int] = []
        self.value = 0.0

    # --- to implement -----------------------------------------------------------------
    @abstractmethod
    def _raw(self, A: np.ndarray) -> float:
        """Unconditioned ``f(A)`` from the closed formula, ``A`` unique positions."""

    @abstractmethod
    def gain(self, candidates: np.ndarray) -> np.ndarray:
        """Marginal gains ``f(A + c | L) - f(A | L)``, float64, shape (len(candidates),)."""

    @abstractmethod
    def _update(self, e: int) -> None:
        """Add ``e`` to the memo."""

    @abstractmethod
    def _clear(self) -> None:
        """Reset the memo to the empty set (before preselection)."""

    # --- shared -----------------------------------------------------------------------
    def evaluate(self, A: Iterable[int] | np.ndarray) -> float:
        """``f(A | L) = f(A + L) - f(L)`` from the closed formula (memo untouched).

        Parameters
        ----------
        A : iterable of int
            Positions in ``0 .. n-1``.
        """
        A = as_positions(A)
        if self.preselect.size == 0:
            return self._raw(A)
        return self._raw(np.union1d(A, self.preselect)) - self._raw(self.preselect)

    def add(self, e: int) -> float:
        """Add position ``e`` to the selected set; returns its marginal gain."""
        e = int(e)
        g = float(self.gain(np.array([e], dtype=np.int64))[0])
        self._update(e)
        self.selected.append(e)
        self.value += g
        return g

    def reset(self) -> None:
        """Forget the selection (the preselected set stays selected)."""
        self._clear()
        for e in self.preselect:
            self._update(int(e))
        self.selected = []
        self.value = 0.0

    def _finish_init(self) -> None:
        """Call at the end of a subclass ``__init__``: applies the preselection."""
        self.reset()


class Modular(SetFunction):
    """Modular function ``f(A) = sum_{j in A} w_j`` (graph-cut MI is one).

    Parameters
    ----------
    weights : ndarray, shape (n,)
    """

    name = "modular"

    def __init__(self, weights: np.ndarray, preselect: Iterable[int] | None = None) -> None:
        self.w = np.asarray(weights, dtype=np.float64).ravel()
        super().__init__(len(self.w), preselect)
        self.monotone = bool((self.w >= 0).all())  # type: ignore[misc]
        self._finish_init()

    def _raw(self, A: np.ndarray) -> float:
        return float(self.w[A].sum())

    def gain(self, candidates: np.ndarray) -> np.ndarray:
        return self.w[np.asarray(candidates, dtype=np.int64)].copy()

    def _update(self, e: int) -> None:
        pass

    def _clear(self) -> None:
        pass


class PartitionSum(SetFunction):
    """``f(A) = sum_k f_k(A intersect V_k)`` over a partition ``V_1 .. V_K`` of the ground set.

    FASS uses it for its class-conditional objective (Wei, Iyer & Bilmes,
    ICML 2015): one function per (predicted or true) class. A sum of
    submodular functions is submodular, so lazy greedy stays exact.

    Parameters
    ----------
    n : int
        Ground-set size.
    parts : sequence of (positions, SetFunction)
        ``positions`` (shape (n_k,)) are the ground positions of part ``k``;
        ``f_k`` lives on ``0 .. n_k-1`` with local position ``i`` meaning
        ``positions[i]``. Parts must be disjoint; positions in no part have
        gain 0.
    """

    name = "partition-sum"

    def __init__(self, n: int, parts: Sequence[tuple[np.ndarray, SetFunction]]) -> None:
        super().__init__(n)
        self.parts = [(np.asarray(p, dtype=np.int64), f) for p, f in parts]
        self.owner = np.full(n, -1, dtype=np.int64)
        self.local = np.full(n, -1, dtype=np.int64)
        for k, (pos, f) in enumerate(self.parts):
            if f.n != len(pos):
                raise ValueError(f"part {k} has {len(pos)} positions but its function has n={f.n}")
            if (self.owner[pos] >= 0).any():
                raise ValueError("PartitionSum parts overlap; give each position to one part")
            self.owner[pos] = k
            self.local[pos] = np.arange(len(pos))
        self.submodular = all(f.submodular for _, f in self.parts)  # type: ignore[misc]
        self.monotone = all(f.monotone for _, f in self.parts)  # type: ignore[misc]
        self._finish_init()

    def _raw(self, A: np.ndarray) -> float:
        total = 0.0
        for k, (_pos, f) in enumerate(self.parts):
            total += f.evaluate(self.local[A[self.owner[A] == k]])
        return total

    def gain(self, candidates: np.ndarray) -> np.ndarray:
        c = np.asarray(candidates, dtype=np.int64)
        out = np.zeros(len(c), dtype=np.float64)
        own = self.owner[c]
        for k in np.unique(own[own >= 0]):
            mask = own == k
            out[mask] = self.parts[k][1].gain(self.local[c[mask]])
        return out

    def _update(self, e: int) -> None:
        k = self.owner[e]
        if k >= 0:
            self.parts[k][1].add(int(self.local[e]))

    def _clear(self) -> None:
        for _, f in self.parts:
            f.reset()
