"""End-to-end loop with the simulated oracle: rounds, metrics, determinism, edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from al_loop import api
from al_loop.errors import ConfigError, DataError
from al_loop.store import Store
from al_loop.types import RoundState


def _run(tmp_path, name="s.sqlite", **kw):
    args = dict(dataset="digits", strategies=["entropy"], seeds=[0], rounds=3, batch=5, init=10)
    args.update(kw)
    db = str(tmp_path / name)
    return db, api.simulate(db, **args)


def test_full_run_rounds_metrics_and_labels(tmp_path) -> None:
    db, (run_id,) = _run(tmp_path)
    store = Store(db, readonly=True)
    assert store.run(run_id).status == "finished"
    rounds = store.rounds(run_id)
    assert [r.idx for r in rounds] == [0, 1, 2, 3, 4]
    assert all(r.state == RoundState.LABELED.value for r in rounds[:-1])
    metrics = store.metrics(run_id)
    assert [m.n_labels for m in metrics] == [10, 15, 20, 25]
    assert all(0.0 <= m.accuracy <= 1.0 and 0.0 <= m.macro_f1 <= 1.0 for m in metrics)
    labels = store.labels(run_id)
    assert len(labels) == 25
    assert sorted(r.pool_id for r in labels) == sorted(store.selected_ids(run_id).tolist())
    outbox = [o for r in rounds for o in store.outbox(run_id, r.idx)]
    assert len(outbox) == 25 and all(o.sent_at is not None for o in outbox)
    assert store.integrity_ok()


def test_same_seed_same_selections_different_seed_differs(tmp_path) -> None:
    db1, (a,) = _run(tmp_path, "a.sqlite", strategies=["margin"], seeds=[4])
    db2, (b,) = _run(tmp_path, "b.sqlite", strategies=["margin"], seeds=[4])
    db3, (c,) = _run(tmp_path, "c.sqlite", strategies=["margin"], seeds=[5])
    sel = lambda db, r: [(s.round, s.pool_id) for s in Store(db, readonly=True).selections(r)]  # noqa: E731
    assert sel(db1, a) == sel(db2, b)
    assert sel(db1, a) != sel(db3, c)


def test_labels_are_the_hidden_labels_by_name(tmp_path) -> None:
    db, (run_id,) = _run(tmp_path)
    pool = api.build_pool(Store(db).config(run_id))
    for row in Store(db, readonly=True).labels(run_id):
        assert row.label == pool.classes[int(pool.hidden_labels(np.array([row.pool_id]))[0])]


def test_skips_are_recorded_and_never_reselected(tmp_path) -> None:
    db, (run_id,) = _run(tmp_path, skip_rate=0.4, rounds=4)
    store = Store(db, readonly=True)
    rows = store.labels(run_id)
    skipped = [r for r in rows if r.status == "skipped"]
    assert skipped, "a skip rate of 0.4 over 30 items skips some"
    sels = [s.pool_id for s in store.selections(run_id)]
    assert len(sels) == len(set(sels))
    assert store.metrics(run_id)[-1].n_labels == sum(r.status == "labeled" for r in rows)


def test_budget_larger_than_pool_is_clamped_then_exhausted(tmp_path) -> None:
    messages: list[str] = []
    db = str(tmp_path / "x.sqlite")
    (run_id,) = api.simulate(db, dataset="iris", strategies=["random"], seeds=[0], rounds=5, batch=60, init=10,
                             log=messages.append)
    store = Store(db, readonly=True)
    assert store.run(run_id).status == "exhausted"
    pool_size = len(api.build_pool(store.config(run_id)))
    assert len(store.selected_ids(run_id)) == pool_size
    assert sum("larger than" in m for m in messages) == 1
    assert any("exhausted" in m for m in messages)


def test_init_smaller_than_classes_refused_and_store_untouched(tmp_path) -> None:
    db = tmp_path / "n.sqlite"
    with pytest.raises(ConfigError, match="--init 5 is smaller than the 10 classes"):
        api.simulate(str(db), dataset="digits", strategies=["random"], init=5)
    assert not db.exists()


def test_unknown_strategy_lists_valid_names(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"unknown strategy 'entropyy'; did you mean 'entropy'\? valid names: .*entropy"):
        api.simulate(str(tmp_path / "u.sqlite"), dataset="digits", strategies=["entropyy"])


def test_unknown_dataset_lists_valid_names(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown dataset 'mnistt'; valid names: .*digits"):
        api.simulate(str(tmp_path / "u.sqlite"), dataset="mnistt", strategies=["random"])


def test_nan_features_refused_before_any_write(tmp_path) -> None:
    X = np.random.default_rng(0).normal(size=(50, 3))
    X[7, 1] = np.nan
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", np.arange(50) % 2)
    db = tmp_path / "nan.sqlite"
    with pytest.raises(DataError, match=r"missing values \(NaN\) in 1 row"):
        api.simulate(str(db), dataset="file", strategies=["random"], init=4,
                     dataset_params={"features": str(tmp_path / "X.npy"), "labels": str(tmp_path / "y.npy")})
    assert not db.exists()


def test_two_strategies_two_seeds_make_four_runs(tmp_path) -> None:
    db, ids = _run(tmp_path, strategies=["random", "least_confidence"], seeds=[0, 1], rounds=1)
    store = Store(db, readonly=True)
    assert [(store.run(i).strategy, store.run(i).seed) for i in ids] == [
        ("random", 0), ("random", 1), ("least_confidence", 0), ("least_confidence", 1)]


def test_cold_start_strategy_picks_the_seed_batch(tmp_path) -> None:
    db, (run_id,) = _run(tmp_path, strategies=["margin"], rounds=1, options={"init_strategy": "typiclust"})
    store = Store(db, readonly=True)
    seed = [s.pool_id for s in store.selections(run_id) if s.round == 0]
    db2, (run2,) = _run(tmp_path, "r.sqlite", strategies=["margin"], rounds=1)
    random_seed = [s.pool_id for s in Store(db2, readonly=True).selections(run2) if s.round == 0]
    assert len(seed) == 10 and sorted(seed) != sorted(random_seed)
    assert store.config(run_id).init_strategy == "typiclust"
    labels = {r.label for r in store.labels(run_id) if r.pool_id in seed}
    assert len(labels) >= 7  # typical points of 10 clusters of digits cover most classes


def test_init_strategy_that_needs_a_model_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="init strategy 'entropy' needs a trained model"):
        _run(tmp_path, options={"init_strategy": "entropy"})
    assert not (tmp_path / "s.sqlite").exists()


def test_a_pool_without_a_test_split_trains_and_records_no_score(tmp_path) -> None:
    """A campaign on unlabeled data has no test split: rounds commit with accuracy NULL, not a NaN that SQLite refuses."""
    from al_loop.controller import Controller
    from al_loop.pool import Pool
    from oracles.simulated import SimulatedOracle

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (30, 4)), rng.normal(3, 1, (30, 4))])
    y = np.repeat([0, 1], 30)
    pool = Pool(X=X, ids=np.arange(60), classes=("a", "b"), y=y)  # no X_test
    config = api.RunConfig(dataset="iris", strategy="margin", rounds=2, batch=4, init=6)
    store = Store(tmp_path / "c.sqlite")
    run_id = store.create_run(config)
    ctl = Controller(store, run_id, pool, api.build_learner("logreg", pool), api.build_strategy("margin", {}),
                     SimulatedOracle(pool, 0))
    ctl.run()
    assert store.run(run_id).status == "finished"
    metrics = store.metrics(run_id)
    assert [m.n_labels for m in metrics] == [6, 10, 14]
    assert all(m.accuracy is None and m.macro_f1 is None for m in metrics)
