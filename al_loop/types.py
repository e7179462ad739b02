"""Plain value types shared by every layer.

Id frame: every ``ids`` array in these types holds *global pool ids*
(``int64``). Positions into sub-arrays never leave the function that made them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

IdArray = np.ndarray  # shape (n,), dtype int64, global pool ids


class RoundState(enum.StrEnum):
    """Persisted state of one round (see docs/architecture.md)."""

    TRAINING = "TRAINING"
    SELECTED = "SELECTED"
    DISPATCHED = "DISPATCHED"
    AWAITING = "AWAITING"
    LABELED = "LABELED"


class RunStatus(enum.StrEnum):
    """Lifecycle of a run."""

    RUNNING = "running"
    FINISHED = "finished"
    EXHAUSTED = "exhausted"  # the unlabeled pool ran out before the budget
    FAILED = "failed"  # a step raised; ``runs.note`` holds the one-line reason; resume skips it
    ABANDONED = "abandoned"  # given up by the user (`al-loop runs abandon`); kept for export


@dataclass(frozen=True)
class Selection:
    """What a strategy returns.

    Attributes
    ----------
    ids : ndarray of int64, shape (b,)
        Global pool ids, unique, in rank order (best first).
    scores : ndarray of float64, shape (b,)
        The strategy's score of each chosen id, in its own scale (uncertainty,
        the marginal gain at the time of a greedy pick, typicality, ...); the
        rank order is the order of ``ids``, not necessarily that of the scores.
    info : dict
        JSON-serialisable diagnostics (objective value, timings, ...).
    """

    ids: np.ndarray
    scores: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryContext:
    """A frozen snapshot of what the store knows when a round selects.

    Attributes
    ----------
    round : int
        Index of the round that is selecting.
    seed : int
        The run's seed.
    labeled_ids : ndarray of int64, shape (n_l,)
        Global ids with a label, sorted ascending.
    labels : ndarray of int64, shape (n_l,)
        Class index (into ``classes``) of each id in ``labeled_ids``.
    unlabeled_ids : ndarray of int64, shape (n_u,)
        Global ids that may be selected (never sent before), sorted ascending.
    classes : tuple of str
        Class names; column ``j`` of every probability matrix is ``classes[j]``.
    rng : numpy.random.Generator
        ``numpy.random.default_rng([seed, round])``; the only randomness a
        strategy may use.
    query_ids, private_ids : ndarray of int64 or None
        Optional query set Q and private set P (global ids) for targeted
        strategies (SIMILAR, PRISM).
    """

    round: int
    seed: int
    labeled_ids: np.ndarray
    labels: np.ndarray
    unlabeled_ids: np.ndarray
    classes: tuple[str, ...]
    rng: np.random.Generator
    query_ids: np.ndarray | None = None
    private_ids: np.ndarray | None = None


@dataclass(frozen=True)
class Answer:
    """One answer of an oracle about one pool item.

    ``status`` is ``"labeled"`` (``label`` is a class name), ``"skipped"``
    (the annotator declined), ``"rejected"`` (an answer that is not a valid
    class; ``reason`` says why; it is quarantined, never mapped to a class) or
    ``"deleted"`` (an earlier answer was withdrawn).
    """

    pool_id: int
    status: str
    label: str | None = None
    reason: str | None = None
    annotation_id: str | None = None
    updated_at: str | None = None
    annotator: str | None = None
    #: set when several annotations on one task disagree, e.g. "cat(a1) vs dog(a2)"
    disagreement: str | None = None


@dataclass(frozen=True)
class OutboxItem:
    """One item to send to an oracle, with its stable idempotency key."""

    run_id: int
    round: int
    pool_id: int
    payload: Any = None
    prediction: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        """Stable key ``"run:round:pool_id"`` carried by the task at the oracle."""
        return f"{self.run_id}:{self.round}:{self.pool_id}"
