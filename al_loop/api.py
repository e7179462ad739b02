"""The Python API: everything the CLI does, as plain function calls.

>>> from al_loop import api
>>> run_ids = api.simulate("runs.sqlite", dataset="digits", strategies=["entropy"], seeds=[0, 1])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from al_loop.config import RunConfig
from al_loop.controller import Controller
from al_loop.datasets import load_dataset, make_pool
from al_loop.errors import ConfigError
from al_loop.learners.base import Learner
from al_loop.lease import RunLease
from al_loop.oracle import Oracle
from al_loop.pool import Pool
from al_loop.registry import LEARNERS, ORACLES, STRATEGIES, import_plugins, plugins_for
from al_loop.store import Store, check_sqlite_file
from al_loop.strategy import Strategy

_POOL_CACHE: dict[str, Pool] = {}


def build_pool(config: RunConfig) -> Pool:
    """The pool of a run (cached per dataset + split within the process)."""
    key = repr((config.dataset, sorted(config.dataset_params.items()), config.test_fraction, config.split_seed,
                config.val_fraction))
    if key not in _POOL_CACHE:
        dataset = load_dataset(config.dataset, **config.dataset_params)
        _POOL_CACHE[key] = make_pool(dataset, config.test_fraction, config.split_seed, config.val_fraction)
    return _POOL_CACHE[key]


def build_strategy(name: str, params: dict[str, Any]) -> Strategy:
    cls = STRATEGIES.get(name)
    try:
        return cls(**params)
    except TypeError as exc:
        fields = [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
        raise ConfigError(f"bad parameters {sorted(params)} for strategy {name!r} ({exc}); "
                          f"valid parameters: {fields or 'none'}") from None


def build_learner(name: str, pool: Pool) -> Learner:
    return LEARNERS.get(name)(pool)


def build_oracle(config: RunConfig, pool: Pool, **extra: Any) -> Oracle:
    factory = ORACLES.get(config.oracle)
    if config.oracle == "simulated":
        from oracles.simulated import SimulatedOracle, SimulatedOracleConfig

        if pool.y is None:
            raise ConfigError("the simulated oracle needs hidden labels; this dataset has none")
        assert factory is SimulatedOracle
        return SimulatedOracle(pool, config.seed, SimulatedOracleConfig(**config.oracle_params))
    return factory(pool=pool, config=config, **extra)


def validate(config: RunConfig, pool: Pool, learner: Learner, strategy: Strategy) -> None:
    """Checks done before round 0 (nothing is written if they fail)."""
    strategy.check_learner(learner.capabilities)
    if config.init_strategy != "random":
        init = build_strategy(config.init_strategy, config.init_params)
        try:
            init.check_learner(frozenset())
        except ConfigError:
            raise ConfigError(f"init strategy {config.init_strategy!r} needs a trained model "
                              f"({sorted(init.requires)}), which round 0 does not have; use random, typiclust "
                              "or probcover") from None
    if config.init < pool.n_classes and config.oracle == "simulated":
        raise ConfigError(f"--init {config.init} is smaller than the {pool.n_classes} classes; "
                          f"pass --init {pool.n_classes} or more so every class can appear in the seed set")
    for name, ids in (("query", config.query_ids), ("private", config.private_ids)):
        if ids:
            pool.rows(list(ids))  # raises on unknown ids
            del name


def start_run(store: Store, config: RunConfig) -> int:
    """Validate ``config`` and create its run (round 0 in TRAINING)."""
    pool = build_pool(config)
    validate(config, pool, build_learner(config.learner, pool), build_strategy(config.strategy,
                                                                               config.strategy_params))
    return store.create_run(config)


def controller_for(store: Store, run_id: int, log: Callable[[str], None] | None = None,
                   oracle: Oracle | None = None, runner: Any = None, **oracle_extra: Any) -> Controller:
    """Rebuild a run's controller from the store alone.

    ``runner`` (from :func:`al_loop.distributed.cluster_session`) routes pool
    scoring and selection through Dask; None keeps everything in-process.
    """
    from al_loop.distributed import maybe_distribute

    config = store.config(run_id)
    import_plugins(config.plugins, needed_by=f"run {run_id}")
    pool = build_pool(config)
    learner = build_learner(config.learner, pool)
    strategy = build_strategy(config.strategy, config.strategy_params)
    validate(config, pool, learner, strategy)
    strategy = maybe_distribute(strategy, runner)
    oracle = oracle or build_oracle(config, pool, **oracle_extra)
    return Controller(store, run_id, pool, learner, strategy, oracle, log=log)


def plan_simulation(dataset: str, strategies: Sequence[str], seeds: Sequence[int] = (0,), rounds: int = 10,
                    batch: int = 10, init: int = 20, learner: str = "logreg",
                    strategy_params: dict[str, dict[str, Any]] | None = None,
                    dataset_params: dict[str, Any] | None = None, noise_rate: float = 0.0, skip_rate: float = 0.0,
                    query_ids: Sequence[int] = (), private_ids: Sequence[int] = (),
                    options: dict[str, Any] | None = None) -> list[RunConfig]:
    """One validated :class:`RunConfig` per strategy x seed (nothing is written).

    ``options`` holds further RunConfig fields (``batch_schedule``,
    ``max_labels``, ``val_fraction``, ``stop_target``, ``stop_metric``,
    ``plateau_rounds``, ``plateau_delta``, ``test_fraction``, ``split_seed``).
    """
    if not strategies:
        raise ConfigError("no strategy given; pass --strategy NAME (see `al-loop strategies`)")
    configs = []
    opts = dict(options or {})
    opts.setdefault("plugins", plugins_for([*strategies, opts.get("init_strategy", "random")], learner, dataset))
    for name in strategies:
        for seed in seeds:
            configs.append(RunConfig(dataset=dataset, strategy=name, seed=int(seed), rounds=rounds, batch=batch,
                                     init=init, learner=learner,
                                     strategy_params=dict((strategy_params or {}).get(name, {})),
                                     dataset_params=dict(dataset_params or {}),
                                     oracle_params={"noise_rate": noise_rate, "skip_rate": skip_rate},
                                     query_ids=tuple(int(i) for i in query_ids),
                                     private_ids=tuple(int(i) for i in private_ids), **opts))
    for cfg in configs:
        pool = build_pool(cfg)
        validate(cfg, pool, build_learner(cfg.learner, pool), build_strategy(cfg.strategy, cfg.strategy_params))
        build_oracle(cfg, pool)
    return configs


def record_items(store: Store, config: RunConfig, pool: Pool) -> bool:
    """Record the user's item ids and texts of ``config``'s dataset once (``items`` table); False if already there.

    Nothing is written when the data has neither (built-in datasets, plain arrays).
    """
    cat = pool.catalogue
    if cat is None:
        return False
    return store.record_items(config.dataset_key(), cat.ids.tolist(), item_ids=cat.item_ids, texts=cat.texts)


def run_configs(db: str, configs: Sequence[RunConfig], on_round: Callable[[int, str], None] | None = None,
                log: Callable[[str], None] | None = None, cluster: str | None = None) -> list[int]:
    """Create one run per config in ``db`` and drive each to the end; return the run ids.

    ``cluster`` (``sync``, ``local:N`` or a scheduler address) scores the pool and
    selects on Dask; the store is written by this process only.
    """
    from al_loop.distributed import cluster_session

    with cluster_session(cluster) as runner:  # a bad spec fails before the store is touched
        store = Store(db)
        try:
            for cfg in {cfg.dataset_key(): cfg for cfg in configs}.values():  # once per dataset
                pool = build_pool(cfg)
                record_items(store, cfg, pool)
                for note in pool.notes if log is not None else ():
                    log(note)
            run_ids = [store.create_run(cfg) for cfg in configs]
            for run_id in run_ids:
                _drive(store, run_id, on_round, log, runner)
            return run_ids
        finally:
            store.close()


def simulate(db: str, dataset: str, strategies: Sequence[str], seeds: Sequence[int] = (0,), rounds: int = 10,
             batch: int = 10, init: int = 20, learner: str = "logreg",
             strategy_params: dict[str, dict[str, Any]] | None = None,
             dataset_params: dict[str, Any] | None = None, noise_rate: float = 0.0, skip_rate: float = 0.0,
             query_ids: Sequence[int] = (), private_ids: Sequence[int] = (),
             on_round: Callable[[int, str], None] | None = None,
             log: Callable[[str], None] | None = None, options: dict[str, Any] | None = None,
             cluster: str | None = None) -> list[int]:
    """Run every strategy x seed to the end (one run each); return the run ids.

    Every configuration, and the store file, is checked before anything is written.
    """
    check_sqlite_file(Path(db))
    configs = plan_simulation(dataset, strategies, seeds, rounds, batch, init, learner, strategy_params,
                              dataset_params, noise_rate, skip_rate, query_ids, private_ids, options)
    return run_configs(db, configs, on_round, log, cluster)


def _drive(store: Store, run_id: int, on_round: Callable[[int, str], None] | None,
           log: Callable[[str], None] | None, runner: Any = None) -> None:
    ctl = controller_for(store, run_id, log=log, runner=runner)
    with RunLease(store, run_id) as lease:
        _drive_locked(store, run_id, ctl, lease, on_round)


def _drive_locked(store: Store, run_id: int, ctl: Controller, lease: RunLease,
                  on_round: Callable[[int, str], None] | None) -> None:
    while True:
        lease.check()
        before = store.current_round(run_id)
        result = ctl.step()
        if result == "done":
            return
        if result == "waiting":
            raise RuntimeError(f"run {run_id}: the simulated oracle left items unanswered")
        after = store.current_round(run_id)
        if on_round is not None and (after.idx != before.idx or store.run(run_id).status != "running"):
            on_round(run_id, store.run(run_id).status)


def resume(db: str, on_round: Callable[[int, str], None] | None = None,
           log: Callable[[str], None] | None = None, cluster: str | None = None) -> list[int]:
    """Finish every unfinished simulated run in ``db``; return their ids."""
    from al_loop.distributed import cluster_session

    store = Store(db)
    try:
        todo = [r for r in store.unfinished_runs() if store.config(r).oracle == "simulated"]
        with cluster_session(cluster if todo else None) as runner:
            for run_id in todo:
                _drive(store, run_id, on_round, log, runner)
        return todo
    finally:
        store.close()


def query(db: str, *, features: str, strategy: str, batch: int, labeled: str | None = None,
          id_column: str | None = None, seed: int = 0, learner: str = "logreg", init_strategy: str = "random",
          label_column: str = "label", labeled_id_column: str | None = None, classes: Sequence[str] = (),
          strategy_params: dict[str, Any] | None = None, skip_label: str | None = None, out: str | None = None,
          dataset_params: dict[str, Any] | None = None, log: Callable[[str], None] | None = None) -> Any:
    """The next batch for the user's own labelling pipeline (``al-loop query``); see :mod:`al_loop.query`.

    Records the labels of ``labeled`` (a CSV of the user's IDs and labels) in
    ``db``, trains ``learner`` on every label, selects with ``strategy`` and
    returns a :class:`al_loop.query.QueryResult` (``ids``, ``item_ids``,
    ``scores``, ``predictions``, ...); ``out`` also writes it as CSV. The same
    files and seed give the same batch.
    """
    from al_loop.query import QueryRequest
    from al_loop.query import query as run_query

    request = QueryRequest(features=str(features), labeled=None if labeled is None else str(labeled),
                           strategy=strategy, batch=batch, seed=seed, id_column=id_column,
                           labeled_id_column=labeled_id_column, label_column=label_column, learner=learner,
                           init_strategy=init_strategy, strategy_params=dict(strategy_params or {}),
                           classes=tuple(classes), skip_label=skip_label, out=None if out is None else str(out),
                           dataset_params=dict(dataset_params or {}))
    return run_query(db, request, log=log)
