"""Greedy maximisation under a cardinality budget (and optional per-group budgets).

Id frame: positions ``0 .. n-1`` of the function's ground set.

- ``naive``: every step evaluates every eligible candidate (the reference).
- ``lazy`` (Minoux 1978): stale gains are upper bounds for a submodular
  function, so only the top of the bound order is re-evaluated, a batch at a
  time (vectorised). Bounds within a small tolerance of the best fresh gain
  are re-evaluated too (unless they can at most tie with it from a larger
  position) and ties go to the smaller position, so on a submodular function
  lazy picks exactly the set naive picks, in the same order (up to gains
  that differ by less than 1e-9 relative). On a function that is not
  submodular it is a heuristic.
- ``stochastic`` (Mirzasoleiman et al., AAAI 2015, "Lazier than lazy
  greedy"): each step evaluates ``ceil(n/k log(1/epsilon))`` candidates drawn
  with the given ``numpy.random.Generator``; ``(1 - 1/e - epsilon)`` in
  expectation for monotone submodular ``f``.

Every method breaks ties by the smaller position and keeps picking until the
budget is filled, even when gains are zero or negative.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from al_loop.errors import ConfigError
from strategies.submodular.base import SetFunction

METHODS = ("lazy", "naive", "stochastic")


@dataclass(frozen=True)
class GreedyResult:
    """Output of :func:`maximize`.

    Attributes
    ----------
    positions : ndarray of int64, shape (k,)
        Picked positions in pick order.
    gains : ndarray of float64, shape (k,)
        Marginal gain of each pick when it was picked.
    value : float
        ``f(picked | preselected)``, the sum of the gains.
    evaluations : int
        Number of candidate gains computed.
    """

    positions: np.ndarray
    gains: np.ndarray
    value: float
    evaluations: int


def _tol(g: float) -> float:
    return 1e-9 * max(1.0, abs(g))


def _argbest(g: np.ndarray) -> int:
    """Index of the best gain: the first one within ``_tol`` of the maximum.

    Gains that differ by round-off only (batched BLAS calls) count as ties, so
    every method resolves them the same way: smaller position first (inputs
    are in ascending position order).
    """
    top = float(np.max(g))
    return int(np.flatnonzero(g >= top - _tol(top))[0])


def maximize(f: SetFunction, budget: int, method: str = "lazy", candidates: np.ndarray | None = None,
             rng: np.random.Generator | None = None, epsilon: float = 0.01, groups: np.ndarray | None = None,
             group_budget: np.ndarray | None = None, batch: int = 16) -> GreedyResult:
    """Greedily pick up to ``budget`` positions maximising ``f``.

    Parameters
    ----------
    f : SetFunction
        Started fresh (``f.reset()`` is called first).
    budget : int
        Number of picks (clamped to the number of candidates).
    method : {"lazy", "naive", "stochastic"}
    candidates : ndarray of int64, optional
        Positions that may be picked (default: all ``0 .. n-1``).
    rng : numpy.random.Generator, optional
        Required for ``stochastic``.
    epsilon : float
        Stochastic greedy's accuracy parameter, in (0, 1).
    groups : ndarray of int64, shape (n,), optional
        Group (class) of every position.
    group_budget : ndarray of int64, shape (n_groups,), optional
        At most ``group_budget[g]`` picks from group ``g``; picking stops early
        when no eligible candidate is left.
    batch : int
        Lazy greedy's first re-evaluation batch (doubles while a step needs more).

    Returns
    -------
    GreedyResult
    """
    if method not in METHODS:
        raise ConfigError(f"unknown optimizer {method!r}; valid: {', '.join(METHODS)}")
    if budget < 0:
        raise ConfigError(f"budget must be non-negative, got {budget}")
    f.reset()
    eligible = np.zeros(f.n, dtype=bool)
    if candidates is None:
        eligible[:] = True
    else:
        eligible[np.asarray(candidates, dtype=np.int64)] = True
    eligible[f.preselect] = False
    left = None
    if group_budget is not None:
        if groups is None:
            raise ConfigError("group_budget needs groups (the class of every position)")
        groups = np.asarray(groups, dtype=np.int64)
        left = np.asarray(group_budget, dtype=np.int64).copy()
        eligible &= left[groups] > 0
    budget = min(int(budget), int(eligible.sum()))
    if method == "naive":
        return _naive(f, budget, eligible, groups, left)
    if method == "lazy":
        return _lazy(f, budget, eligible, groups, left, max(1, int(batch)))
    if rng is None:
        raise ConfigError("stochastic greedy needs a numpy Generator; pass rng=ctx.rng")
    if not 0 < epsilon < 1:
        raise ConfigError(f"epsilon must be in (0, 1), got {epsilon}; try 0.01")
    return _stochastic(f, budget, eligible, groups, left, rng, epsilon)


def _take(f: SetFunction, e: int, g: float, eligible: np.ndarray, groups: np.ndarray | None,
          left: np.ndarray | None) -> list[int]:
    """Add ``e``; returns the positions that became ineligible (``e`` and a full group)."""
    f.add(e)
    eligible[e] = False
    gone = [e]
    if left is not None and groups is not None:
        left[groups[e]] -= 1
        if left[groups[e]] <= 0:
            members = np.flatnonzero(eligible & (groups == groups[e]))
            eligible[members] = False
            gone.extend(members.tolist())
    return gone


def _result(f: SetFunction, picks: list[int], gains: list[float], evals: int) -> GreedyResult:
    return GreedyResult(np.asarray(picks, dtype=np.int64), np.asarray(gains, dtype=np.float64),
                        float(np.sum(gains)) if gains else 0.0, evals)


def _naive(f: SetFunction, budget: int, eligible: np.ndarray, groups: np.ndarray | None,
           left: np.ndarray | None) -> GreedyResult:
    picks, gains, evals = [], [], 0
    for _ in range(budget):
        idx = np.flatnonzero(eligible)
        if idx.size == 0:
            break
        g = f.gain(idx)
        evals += idx.size
        j = _argbest(g)
        picks.append(int(idx[j]))
        gains.append(float(g[j]))
        _take(f, int(idx[j]), float(g[j]), eligible, groups, left)
    return _result(f, picks, gains, evals)


class _BoundOrder:
    """Candidates by (upper bound desc, position asc): a sorted array of never-refreshed
    bounds plus a small heap of refreshed ones, so N = 10^6 needs no 10^6-entry heap."""

    def __init__(self, idx: np.ndarray, ub: np.ndarray, eligible: np.ndarray) -> None:
        order = np.lexsort((idx, -ub))
        self.order, self.ub0, self.ptr = idx[order], ub[order], 0
        self.heap: list[tuple[float, int]] = []
        self.eligible = eligible
        self.in_heap = np.zeros(len(eligible), dtype=bool)

    def _clean(self) -> None:
        while self.ptr < len(self.order) and (not self.eligible[self.order[self.ptr]]
                                              or self.in_heap[self.order[self.ptr]]):
            self.ptr += 1
        while self.heap and not self.eligible[self.heap[0][1]]:
            self.in_heap[heapq.heappop(self.heap)[1]] = False

    def peek(self) -> tuple[float, int] | None:
        """(-bound, position) of the best stale candidate, or None."""
        self._clean()
        top_a = (-float(self.ub0[self.ptr]), int(self.order[self.ptr])) if self.ptr < len(self.order) else None
        top_b = self.heap[0] if self.heap else None
        if top_a is None:
            return top_b
        if top_b is None:
            return top_a
        return min(top_a, top_b)

    def pop(self) -> int:
        top = self.peek()
        assert top is not None
        if self.heap and self.heap[0] == top:
            heapq.heappop(self.heap)
            self.in_heap[top[1]] = False
        else:
            self.ptr += 1
        return top[1]

    def push(self, e: int, g: float) -> None:
        heapq.heappush(self.heap, (-g, e))
        self.in_heap[e] = True


def _lazy(f: SetFunction, budget: int, eligible: np.ndarray, groups: np.ndarray | None,
          left: np.ndarray | None, batch: int) -> GreedyResult:
    picks: list[int] = []
    gains: list[float] = []
    if budget == 0:
        return _result(f, picks, gains, 0)
    idx = np.flatnonzero(eligible)
    ub = f.gain(idx)
    evals = idx.size
    # first pick: every bound is exact for A = preselect
    j = _argbest(ub)
    picks.append(int(idx[j]))
    gains.append(float(ub[j]))
    _take(f, int(idx[j]), float(ub[j]), eligible, groups, left)
    bounds = _BoundOrder(idx, ub, eligible)
    while len(picks) < budget:
        fresh: dict[int, float] = {}
        best: tuple[float, int] | None = None
        best_max = -math.inf
        size = batch
        while True:
            top = bounds.peek()
            if top is None:
                break
            if best is not None and -top[0] < best_max - 2 * _tol(best_max):
                break  # no stale bound can reach the best fresh gain
            if best is not None and -top[0] <= best_max + _tol(best_max) and top[1] > best[1]:
                break  # at best a tie, and ties go to the smaller position (saturated gains)
            floor = best_max - 2 * _tol(best_max) if best is not None else -math.inf
            want: list[int] = []
            while len(want) < size:
                top = bounds.peek()
                if top is None or -top[0] < floor:
                    break
                want.append(bounds.pop())
            arr = np.asarray(want, dtype=np.int64)
            g = f.gain(arr)
            evals += arr.size
            fresh.update(zip(arr.tolist(), g.tolist(), strict=True))
            keys = np.fromiter(fresh.keys(), dtype=np.int64, count=len(fresh))
            vals = np.fromiter(fresh.values(), dtype=np.float64, count=len(fresh))
            order = np.argsort(keys)
            j = int(order[_argbest(vals[order])])
            best = (-float(vals[j]), int(keys[j]))
            best_max = float(vals.max())
            size = min(4 * size, 8192)
        if best is None:
            break
        e = best[1]
        picks.append(e)
        gains.append(-best[0])
        _take(f, e, -best[0], eligible, groups, left)
        for other, g_other in fresh.items():
            if other != e and eligible[other]:
                bounds.push(other, g_other)
    return _result(f, picks, gains, evals)


def _stochastic(f: SetFunction, budget: int, eligible: np.ndarray, groups: np.ndarray | None,
                left: np.ndarray | None, rng: np.random.Generator, epsilon: float) -> GreedyResult:
    picks: list[int] = []
    gains: list[float] = []
    evals = 0
    remaining = np.flatnonzero(eligible)
    if budget == 0:
        return _result(f, picks, gains, 0)
    sample = max(1, math.ceil(len(remaining) / budget * math.log(1.0 / epsilon)))
    for _ in range(budget):
        if remaining.size == 0:
            break
        if sample >= remaining.size:
            cand = remaining
        else:
            cand = np.sort(remaining[rng.choice(remaining.size, size=sample, replace=False)])
        g = f.gain(cand)
        evals += cand.size
        j = _argbest(g)
        e = int(cand[j])
        picks.append(e)
        gains.append(float(g[j]))
        gone = _take(f, e, float(g[j]), eligible, groups, left)
        if len(gone) == 1:
            remaining = remaining[remaining != e]
        else:
            remaining = remaining[eligible[remaining]]
    return _result(f, picks, gains, evals)
