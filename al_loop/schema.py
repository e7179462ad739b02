"""SQLModel tables of the store (schema version :data:`SCHEMA_VERSION`).

Id frame: ``pool_id`` columns hold global pool ids.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 6


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Meta(SQLModel, table=True):
    __tablename__ = "al_meta"
    key: str = Field(primary_key=True)
    value: str


class RunRow(SQLModel, table=True):
    __tablename__ = "runs"
    id: int | None = Field(default=None, primary_key=True)
    created_at: str = Field(default_factory=utcnow)
    status: str = "running"
    dataset: str
    strategy: str
    learner: str
    seed: int
    config_json: str
    group_key: str
    schema_version: int = SCHEMA_VERSION
    note: str | None = None


class RoundRow(SQLModel, table=True):
    __tablename__ = "rounds"
    __table_args__ = (UniqueConstraint("run_id", "idx"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    idx: int
    state: str
    budget: int = 0
    created_at: str = Field(default_factory=utcnow)
    updated_at: str = Field(default_factory=utcnow)
    info_json: str | None = None  # the selection's diagnostics (Selection.info), e.g. switch's phase


class ItemRow(SQLModel, table=True):
    """What the user knows an item by: their own ID, its text, its file (schema v3).

    Keyed by ``dataset_key`` (:meth:`al_loop.config.RunConfig.dataset_key`: the
    dataset and its parameters) and the global ``pool_id``, so the items of a
    dataset are stored once however many runs use it.
    """

    __tablename__ = "items"
    dataset_key: str = Field(primary_key=True)
    pool_id: int = Field(primary_key=True)
    item_id: str | None = None
    text: str | None = None
    path: str | None = None


class SkippedItemRow(SQLModel, table=True):
    """A file of a dataset that could not be read and was left out (``--skip-bad``; schema v4).

    Keyed like :class:`ItemRow` by ``dataset_key``; ``path`` is relative to the
    dataset's folder (POSIX), ``reason`` the decoder's message.
    """

    __tablename__ = "skipped_items"
    dataset_key: str = Field(primary_key=True)
    path: str = Field(primary_key=True)
    reason: str


class SelectionRow(SQLModel, table=True):
    __tablename__ = "selections"
    run_id: int = Field(foreign_key="runs.id", primary_key=True)
    pool_id: int = Field(primary_key=True)
    round: int = Field(index=True)
    rank: int
    score: float


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"
    key: str = Field(primary_key=True)  # "run:round:pool_id"
    run_id: int = Field(foreign_key="runs.id", index=True)
    round: int
    pool_id: int
    prediction_json: str | None = None
    remote_id: str | None = None
    sent_at: str | None = None


class LabelRow(SQLModel, table=True):
    __tablename__ = "labels"
    run_id: int = Field(foreign_key="runs.id", primary_key=True)
    pool_id: int = Field(primary_key=True)
    round: int
    status: str  # "labeled" | "skipped"
    label: str | None = None
    source: str = "oracle"
    annotation_id: str | None = None
    updated_at: str | None = None
    annotator: str | None = None
    disagreement: str | None = None
    recorded_at: str = Field(default_factory=utcnow)


class QuarantineRow(SQLModel, table=True):
    __tablename__ = "quarantine"
    __table_args__ = (UniqueConstraint("run_id", "pool_id", "annotation_id"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id", index=True)
    pool_id: int
    round: int
    answer: str | None = None
    reason: str
    annotation_id: str | None = None
    recorded_at: str = Field(default_factory=utcnow)


class MetricRow(SQLModel, table=True):
    __tablename__ = "metrics"
    run_id: int = Field(foreign_key="runs.id", primary_key=True)
    round: int = Field(primary_key=True)
    n_labels: int
    accuracy: float | None = None  # None: no test split (a campaign on unlabeled data)
    macro_f1: float | None = None
    train_seconds: float
    select_seconds: float
    val_accuracy: float | None = None
    val_macro_f1: float | None = None
    # multi-label runs (schema v6): ``accuracy`` is then the subset accuracy (exact match) and ``macro_f1`` the
    # mean of the per-label F1; these two are None for single-label runs
    micro_f1: float | None = None
    hamming_loss: float | None = None


class StopSignalRow(SQLModel, table=True):
    """The stopping signals of one evaluated round (:mod:`al_loop.stopping`; schema v5).

    ``predictions`` holds the model's predicted class per stop-set item
    (int16, stop-set order): the next round's kappa and change compare to it.
    Written in the transaction of the round's selection (or of the run's end).
    """

    __tablename__ = "stop_signals"
    run_id: int = Field(foreign_key="runs.id", primary_key=True)
    round: int = Field(primary_key=True)
    n_labels: int
    kappa: float | None = None
    changed: float | None = None
    max_uncertainty: float | None = None
    mean_uncertainty: float | None = None
    predictions: bytes


class ProjectRow(SQLModel, table=True):
    """Oracle-side state of a run (e.g. the Label Studio project id)."""

    __tablename__ = "oracle_state"
    run_id: int = Field(foreign_key="runs.id", primary_key=True)
    key: str = Field(primary_key=True)
    value: str


class LeaseRow(SQLModel, table=True):
    """The write lease of a run (see :mod:`al_loop.lease`)."""

    __tablename__ = "leases"
    run_id: int = Field(foreign_key="runs.id", primary_key=True)
    owner: str
    host: str
    pid: int
    acquired_at: str
    heartbeat_at: float  # time.time() of the last heartbeat
