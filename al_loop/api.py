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
from al_loop.errors import (
    AlLoopError,
    ConfigError,
    InputsChangedError,
    PluginMissingError,
    RunFailedError,
    RunLockedError,
    StoreError,
)
from al_loop.learners.base import Learner
from al_loop.lease import RunLease
from al_loop.oracle import Oracle
from al_loop.pool import Pool
from al_loop.registry import LEARNERS, ORACLES, STRATEGIES, import_plugins, plugins_for
from al_loop.store import Store, check_sqlite_file, check_writable
from al_loop.strategy import Strategy
from al_loop.types import RunStatus

_POOL_CACHE: dict[str, Pool] = {}


def build_pool(config: RunConfig) -> Pool:
    """The pool of a run (cached per dataset + split within the process); the run's plugins are imported first."""
    import_plugins(config.plugins, needed_by="a run of this store")
    key = repr((config.dataset, sorted(config.dataset_params.items()), config.test_fraction, config.split_seed,
                config.val_fraction))
    if key not in _POOL_CACHE:
        dataset = load_dataset(config.dataset, **config.dataset_params)
        _POOL_CACHE[key] = make_pool(dataset, config.test_fraction, config.split_seed, config.val_fraction)
    return _POOL_CACHE[key]


def stamp_inputs(config: RunConfig, pool: Pool | None = None) -> RunConfig:
    """``config`` with ``inputs_digest`` set from its pool's digest (the pool is built when not given).

    ``simulate`` and ``campaign init`` call it before the run is created, so
    that :func:`controller_for` can refuse a run whose files changed since.
    """
    pool = build_pool(config) if pool is None else pool
    if pool.digest == config.inputs_digest and pool.multilabel == config.multilabel:
        return config
    return dataclasses.replace(config, inputs_digest=pool.digest, multilabel=pool.multilabel)


def check_inputs(config: RunConfig, pool: Pool, run_id: int) -> None:
    """Raise :class:`InputsChangedError` when the pool's digest is not the one the run started with.

    Runs without a recorded digest (built-in data, older releases) are not checked.
    """
    if config.inputs_digest is None or pool.digest == config.inputs_digest:
        return
    params = config.dataset_params
    source = str(params.get("root") or params.get("path") or params.get("features") or config.dataset)
    if params.get("root") and not source.endswith("/"):
        source += "/"
    start = "`al-loop simulate`" if config.oracle == "simulated" else "`al-loop campaign init`"
    raise InputsChangedError(f"the inputs of run {run_id} changed since it started ({source}: digest "
                             f"{config.inputs_digest[:8]} -> {str(pool.digest)[:8]}); put the original files back, "
                             f"or start a new run with {start}")


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


def check_task(config: RunConfig, pool: Pool, learner: Learner, strategy: Strategy) -> None:
    """Single- against multi-label: the learner, the strategies and the stopping rules must fit the pool's task."""
    multi = "multilabel" in learner.capabilities
    if pool.multilabel and not multi:
        raise ConfigError(f"this dataset is multi-label and learner {config.learner!r} predicts one class per item; "
                          "use --learner ovr_logreg, mlp_sigmoid or cnn_sigmoid")
    if multi and not pool.multilabel:
        raise ConfigError(f"learner {config.learner!r} is for multi-label data and this dataset has one class per "
                          "item; use --learner logreg, mlp or cnn (or load the data with --multilabel)")
    strategy.check_task(pool.multilabel)
    if config.init_strategy != "random":
        build_strategy(config.init_strategy, config.init_params).check_task(pool.multilabel)
    if pool.multilabel and config.tracks_stopping:
        raise ConfigError("the label-free stopping rules read single-label predictions and this dataset is "
                          "multi-label; drop --stop / --track-stopping")


def validate(config: RunConfig, pool: Pool, learner: Learner, strategy: Strategy) -> None:
    """Checks done before round 0 (nothing is written if they fail).

    The strategy's requirements against the learner, the learner against the
    pool's input shape (:meth:`Learner.check_pool`), the strategy's own
    preconditions that need the run's context (:meth:`Strategy.check_config`),
    the init strategy, ``--init`` against the classes and the Q/P ids.
    """
    strategy.check_learner(learner.capabilities)
    check_task(config, pool, learner, strategy)
    learner.check_pool(pool)
    strategy.check_config(config)
    if config.tracks_stopping and "proba" not in learner.capabilities:
        raise ConfigError(f"the stopping signals read the model's class probabilities, which learner "
                          f"{config.learner!r} does not give; use a learner with probabilities or drop --stop")
    if config.init_strategy != "random":
        init = build_strategy(config.init_strategy, config.init_params)
        try:
            init.check_learner(frozenset())
        except ConfigError:
            raise ConfigError(f"init strategy {config.init_strategy!r} needs a trained model "
                              f"({sorted(init.requires)}), which round 0 does not have; use random, typiclust "
                              "or probcover") from None
        init.check_config(config)
    if config.init < pool.n_classes and config.oracle == "simulated" and not pool.multilabel:
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
    check_inputs(config, pool, run_id)
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
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("no seed to run (--seeds must be 1 or more); pass --seeds 1 or more")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds {seeds} repeat a seed (the runs would be identical); give distinct seeds")
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
    stamped = []
    for cfg in configs:
        pool = build_pool(cfg)
        validate(cfg, pool, build_learner(cfg.learner, pool), build_strategy(cfg.strategy, cfg.strategy_params))
        build_oracle(cfg, pool)
        stamped.append(stamp_inputs(cfg, pool))
    return stamped


def record_items(store: Store, config: RunConfig, pool: Pool) -> bool:
    """Record the user's item ids, texts and files of ``config``'s dataset once; False if already there.

    Rows go to the ``items`` table, the files left out as unreadable to
    ``skipped_items``. Nothing is written when the data has none of them
    (built-in datasets, plain arrays).
    """
    cat = pool.catalogue
    if cat is None:
        return False
    return store.record_items(config.dataset_key(), cat.ids.tolist(), item_ids=cat.item_ids, texts=cat.texts,
                              paths=cat.paths, skipped=cat.skipped)


def run_configs(db: str, configs: Sequence[RunConfig], on_round: Callable[[int, str], None] | None = None,
                log: Callable[[str], None] | None = None, cluster: str | None = None,
                runner: Any = None) -> list[int]:
    """Create one run per config in ``db`` and drive each to the end; return the run ids.

    ``cluster`` (``sync``, ``local:N`` or a scheduler address) scores the pool and
    selects on Dask; the store is written by this process only. ``runner``: an
    open :class:`~al_loop.distributed.DaskRunner` to use instead (the CLI
    connects before it shows progress, so a bad address is one line).
    A run that fails is marked ``failed`` and stops the others (they stay
    ``running`` for ``resume``): :class:`RunFailedError` for an AlLoopError,
    the exception itself otherwise.
    """
    from contextlib import nullcontext

    from al_loop.distributed import cluster_session

    session = nullcontext(runner) if runner is not None else cluster_session(cluster)
    with session as runner:  # a bad spec fails before the store is touched
        store = Store(db)
        try:
            for cfg in {cfg.dataset_key(): cfg for cfg in configs}.values():  # once per dataset
                pool = build_pool(cfg)
                record_items(store, cfg, pool)
                for note in pool.notes if log is not None else ():
                    log(note)
            run_ids = [store.create_run(cfg) for cfg in configs]
            for i, run_id in enumerate(run_ids):
                try:
                    _drive(store, run_id, on_round, log, runner)
                except AlLoopError as exc:
                    if isinstance(exc, NOT_THE_RUNS_FAULT):
                        raise
                    left = len(run_ids) - i - 1
                    more = (f"; the {left} run(s) not started yet are kept: `al-loop resume --db {db}` runs them"
                            if left else "")
                    raise RunFailedError(f"run {run_id} failed and is marked failed: {failure_reason(exc)}"
                                         f"{more}") from None
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
    check_writable(Path(db))
    configs = plan_simulation(dataset, strategies, seeds, rounds, batch, init, learner, strategy_params,
                              dataset_params, noise_rate, skip_rate, query_ids, private_ids, options)
    return run_configs(db, configs, on_round, log, cluster)


#: failures that are not the run's: it stays ``running`` and ``resume`` tries it again
#: (another process holds its lease; the disk, the network or a Dask cluster went away)
#: (or its input files changed: putting them back fixes it)
NOT_THE_RUNS_FAULT: tuple[type[BaseException], ...] = (RunLockedError, OSError, PluginMissingError,
                                                       InputsChangedError)


def failure_reason(exc: BaseException) -> str:
    """The one line stored as a failed run's note: the message of an AlLoopError, else ``Type: first line``."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    first = lines[0] if lines else ""
    text = first if isinstance(exc, AlLoopError) and first else f"{type(exc).__name__}: {first}".rstrip(": ")
    return text if len(text) <= 500 else text[:497] + "..."


def _drive(store: Store, run_id: int, on_round: Callable[[int, str], None] | None,
           log: Callable[[str], None] | None, runner: Any = None) -> None:
    """Drive one run to its end; a run whose step raises is marked ``failed`` (with the reason) first.

    Interrupts (KeyboardInterrupt, SIGTERM) and :data:`NOT_THE_RUNS_FAULT`
    leave the run ``running``. The exception is re-raised unchanged, with
    its traceback.
    """
    with RunLease(store, run_id) as lease:
        try:
            ctl = controller_for(store, run_id, log=log, runner=runner)
            _drive_locked(store, run_id, ctl, lease, on_round)
        except NOT_THE_RUNS_FAULT:
            raise
        except Exception as exc:
            reason = failure_reason(exc)
            try:
                store.set_run_status(run_id, RunStatus.FAILED, reason)
            except Exception as mark_exc:  # the store itself broke: say so, raise the original
                if log is not None:
                    log(f"run {run_id} could not be marked failed ({failure_reason(mark_exc)})")
            raise


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
           log: Callable[[str], None] | None = None, cluster: str | None = None,
           runner: Any = None) -> list[int]:
    """Finish every unfinished simulated run in ``db``; return the ids of those that finished.

    ``cluster`` as in :func:`run_configs`, or ``runner``, an open DaskRunner.

    Failed runs are skipped with a note (``log``). A run that fails now is
    marked failed and the others go on; then :class:`RunFailedError` names
    the failed runs (an unexpected exception is re-raised with its
    traceback, after every other run had its turn).
    """
    from al_loop.distributed import cluster_session

    store = _open_existing(db)
    try:
        for run in store.runs():
            if run.status == RunStatus.FAILED.value and log is not None:
                log(f"run {run.id} failed earlier: {run.note or 'no reason recorded'}; skipped — "
                    f"`al-loop runs retry --db {db} --run {run.id}` tries it again, "
                    f"`al-loop runs abandon --db {db} --run {run.id}` gives it up")
        todo = [r for r in store.unfinished_runs() if store.config(r).oracle == "simulated"]
        failed: list[tuple[int, BaseException]] = []
        done: list[int] = []
        from contextlib import nullcontext

        session = nullcontext(runner) if runner is not None else cluster_session(cluster if todo else None)
        with session as runner:
            for run_id in todo:
                try:
                    _drive(store, run_id, on_round, log, runner)
                except NOT_THE_RUNS_FAULT:
                    raise
                except Exception as exc:
                    failed.append((run_id, exc))
                    if log is not None:
                        log(f"run {run_id} failed and is marked failed: {failure_reason(exc)}; going on")
                else:
                    done.append(run_id)
        if failed:
            unexpected = [exc for _, exc in failed if not isinstance(exc, AlLoopError)]
            if unexpected:
                raise unexpected[0]
            names = "; ".join(f"run {r}: {failure_reason(e)}" for r, e in failed)
            raise RunFailedError(f"{len(failed)} run(s) failed during resume and are marked failed ({names}); "
                                 f"the other {len(done)} finished; `al-loop status --db {db}` shows them")
        return done
    finally:
        store.close()


def _open_existing(db: str) -> Store:
    check_sqlite_file(Path(db))
    if not Path(db).exists():
        raise StoreError(f"{db} does not exist; pass the --db of an existing store")
    return Store(db)


def abandon_run(db: str, run_id: int, reason: str | None = None) -> str:
    """Mark an unfinished run (``running`` or ``failed``) ``abandoned``; return its previous status.

    The run's rows stay in the store: ``export``, ``curves`` and ``compare``
    still read it, ``resume`` and ``campaign run`` leave it alone. Refuses, in
    one line, a run that ended (finished, exhausted, abandoned) and a run
    another process is writing (its lease is held).
    """
    store = _open_existing(db)
    try:
        run = store.run(run_id)
        if run.status not in (RunStatus.RUNNING.value, RunStatus.FAILED.value):
            why = f" ({run.note})" if run.note else ""
            raise ConfigError(f"run {run_id} is {run.status}{why}; only a running or failed run can be abandoned")
        with RunLease(store, run_id):  # refuses while another process drives it
            note = f"abandoned: {reason}" if reason else "abandoned by the user"
            if run.status == RunStatus.FAILED.value and run.note:
                note += f" (it had failed: {run.note})"
            return store.set_run_status(run_id, RunStatus.ABANDONED, note,
                                        allowed_from=(RunStatus.RUNNING.value, RunStatus.FAILED.value))
    finally:
        store.close()


def retry_run(db: str, run_id: int) -> None:
    """Put a ``failed`` run back to ``running`` (its reason is cleared); ``resume`` then tries it again.

    Nothing of the run is deleted: it goes on from its last committed step.
    """
    store = _open_existing(db)
    try:
        run = store.run(run_id)
        if run.status != RunStatus.FAILED.value:
            raise ConfigError(f"run {run_id} is {run.status}, not failed; only a failed run can be retried")
        store.set_run_status(run_id, RunStatus.RUNNING, None, allowed_from=(RunStatus.FAILED.value,))
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
