"""Typed run configuration, stored as JSON with every run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from al_loop.errors import ConfigError


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to rebuild a run from the store (and nothing else).

    Attributes
    ----------
    dataset : str
        Dataset name in the DATASETS registry (``"file"`` for user files).
    strategy : str
        Strategy name in the STRATEGIES registry.
    seed : int
        Run seed: round ``r`` uses ``numpy.random.default_rng([seed, r])``.
    rounds : int
        Number of query rounds after the initial random batch.
    batch : int
        Items selected per round.
    init : int
        Size of the initial random batch (round 0).
    learner : str
        Learner name in the LEARNERS registry.
    strategy_params, oracle_params, dataset_params : dict
        Keyword parameters of the strategy, oracle and dataset loader.
    oracle : str
        Oracle name (``"simulated"`` or ``"label_studio"``).
    test_fraction : float
        Share of the dataset held out (stratified, split seed ``split_seed``).
    split_seed : int
        Seed of the test split (fixed per dataset by default, so every run
        of a comparison sees the same split).
    min_fraction : float
        Share of a round's items that must be answered before it counts as labeled.
    query_ids, private_ids : tuple of int
        Query set Q and private set P (global ids) for targeted strategies.
    batch_schedule : str
        ``fixed``, ``list:10,20,40`` or ``geometric:F`` (see :mod:`al_loop.schedules`).
    max_labels : int or None
        Label budget: items sent to the oracle in all (initial batch included).
    val_fraction : float
        Share of the pool held out as a labeled validation split (simulation);
        needed by the target and plateau stopping rules.
    stop_target, stop_metric : float or None, str
        Stop once the validation ``stop_metric`` reaches ``stop_target``.
    plateau_rounds, plateau_delta : int or None, float
        Stop when the validation metric gained no more than ``plateau_delta``
        over the last ``plateau_rounds`` evaluations.
    stop : tuple of str
        Stopping rules that need no labels (:mod:`al_loop.stopping`), e.g.
        ``stable-predictions:window=3,kappa=0.99``; kept in canonical form
        (every parameter written out). The first to fire ends the run.
    stop_set : int
        Size of the unlabeled stop set the stopping signals are measured on
        (drawn once from ``seed``; 0 or more than the pool: the whole pool).
    track_stopping : bool
        Record the stopping signals every round even without a rule (on for
        campaigns, so ``campaign status`` can show them).
    multilabel : bool
        Items carry sets of labels (:mod:`al_loop.multilabel`); set from the
        pool when the run is created (:func:`al_loop.api.stamp_inputs`).
    init_strategy, init_params : str, dict
        Strategy that picks the seed batch (round 0), before any model exists:
        ``random`` (default) or one that needs only the features
        (``typiclust``, ``probcover``, ``kcenter`` with ``space="features"``).
    plugins : tuple of str
        Modules outside al-loop that registered the strategy, learner, dataset
        or oracle of this run; they are imported again before the run is
        rebuilt (``resume``, ``compare``), and a missing one is named.
    inputs_digest : str or None
        Digest of the input files and the encoder when the run started
        (:attr:`al_loop.pool.Pool.digest`); a run whose pool now has another
        digest is not rebuilt (:func:`al_loop.api.controller_for`). None: data
        without one (built-in datasets, runs of older al-loop releases).
    """

    dataset: str
    strategy: str
    seed: int = 0
    rounds: int = 10
    batch: int = 10
    init: int = 20
    learner: str = "logreg"
    strategy_params: dict[str, Any] = field(default_factory=dict)
    oracle: str = "simulated"
    oracle_params: dict[str, Any] = field(default_factory=dict)
    dataset_params: dict[str, Any] = field(default_factory=dict)
    test_fraction: float = 0.25
    split_seed: int = 0
    min_fraction: float = 1.0
    query_ids: tuple[int, ...] = ()
    private_ids: tuple[int, ...] = ()
    batch_schedule: str = "fixed"
    max_labels: int | None = None
    val_fraction: float = 0.0
    stop_target: float | None = None
    stop_metric: str = "accuracy"
    plateau_rounds: int | None = None
    plateau_delta: float = 0.0
    stop: tuple[str, ...] = ()
    stop_set: int = 2000
    track_stopping: bool = False
    init_strategy: str = "random"
    init_params: dict[str, Any] = field(default_factory=dict)
    plugins: tuple[str, ...] = ()
    inputs_digest: str | None = None
    multilabel: bool = False

    def __post_init__(self) -> None:
        from al_loop.schedules import parse_schedule

        parse_schedule(self.batch_schedule)
        from al_loop.stopping import parse_rule

        rules = tuple(parse_rule(r).spec for r in self.stop)
        if len(set(rules)) != len(rules):
            raise ConfigError(f"stopping rules {list(self.stop)} repeat a rule; give each once")
        object.__setattr__(self, "stop", rules)
        if self.stop_set < 0:
            raise ConfigError(f"stop_set must be >= 0, got {self.stop_set}; pass e.g. --stop-set 2000")
        if self.max_labels is not None and self.max_labels < self.init:
            raise ConfigError(f"max_labels {self.max_labels} is below --init {self.init}; raise --max-labels")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}; pass e.g. --val-fraction 0.1")
        if self.stop_metric not in ("accuracy", "macro_f1"):
            raise ConfigError(f"unknown stop metric {self.stop_metric!r}; use accuracy or macro_f1")
        if (self.stop_target is not None or self.plateau_rounds is not None) and self.val_fraction == 0.0:
            raise ConfigError("target and plateau stopping read the validation split; pass --val-fraction 0.1 (or more)")
        if self.plateau_rounds is not None and self.plateau_rounds < 1:
            raise ConfigError(f"plateau_rounds must be >= 1, got {self.plateau_rounds}")
        if self.rounds < 0:
            raise ConfigError(f"rounds must be >= 0, got {self.rounds}; pass --rounds 1 or more")
        if self.batch < 1:
            raise ConfigError(f"batch size must be positive, got {self.batch}; pass --batch 1 or more")
        if self.init < 1:
            raise ConfigError(f"init must be positive, got {self.init}; pass --init 1 or more")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if not 0.0 < self.min_fraction <= 1.0:
            raise ConfigError(f"min_fraction must be in (0, 1], got {self.min_fraction}; pass e.g. --min-fraction 0.9")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        for key in ("query_ids", "private_ids", "plugins", "stop"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)

    @property
    def tracks_stopping(self) -> bool:
        """Whether the run records the stopping signals (a rule is given or ``track_stopping``)."""
        return bool(self.stop) or self.track_stopping

    def dataset_key(self) -> str:
        """A short digest of the dataset, its parameters and inputs: the key of its rows in the ``items`` table."""
        return dataset_key(self.dataset, self.dataset_params, self.inputs_digest)

    def group_key(self) -> str:
        """Everything but the seed: runs with equal keys may be averaged together.

        ``track_stopping`` only records signals, and ``stop_set`` matters only
        with a rule, so they (and an empty ``stop``) are left out: such runs
        group with those of releases before the stopping rules. ``multilabel``
        follows from the dataset and is left out too.
        """
        data = dataclasses.asdict(self)
        data.pop("seed")
        data.pop("track_stopping")
        data.pop("multilabel")  # follows from the dataset
        if not data["stop"]:
            data.pop("stop")
            data.pop("stop_set")
        return json.dumps(data, sort_keys=True)


def dataset_key(dataset: str, dataset_params: dict[str, Any], inputs_digest: str | None = None) -> str:
    """The ``items``/``skipped_items`` key of a dataset (stdlib only: ``al-loop status`` computes it too).

    The inputs digest is part of the key when there is one, so a folder whose
    files changed gets its own rows (paths and pool ids of the new listing);
    without one the key is the one of older releases.
    """
    parts: list[Any] = [dataset, dataset_params] + ([inputs_digest] if inputs_digest is not None else [])
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
