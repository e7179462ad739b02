"""AULC on hand-made curves and grouping that never mixes configurations."""

from __future__ import annotations

import numpy as np
import pytest

from al_loop.config import RunConfig
from al_loop.reports import RunCurve, group_curves, normalised_aulc, summary_rows


def test_aulc_hand_made() -> None:
    assert normalised_aulc([10, 20], [0.5, 0.5]) == pytest.approx(0.5)
    # trapezoids: (10*(0.2+0.6)/2 + 20*(0.6+0.8)/2) / 30 = (4 + 14) / 30
    assert normalised_aulc([10, 20, 40], [0.2, 0.6, 0.8]) == pytest.approx(18 / 30)
    assert normalised_aulc([40, 10, 20], [0.8, 0.2, 0.6]) == pytest.approx(18 / 30)
    assert normalised_aulc([5], [0.7]) == pytest.approx(0.7)


def _curve(strategy: str, seed: int, batch: int, vals: list[float]) -> RunCurve:
    cfg = RunConfig(dataset="digits", strategy=strategy, seed=seed, batch=batch)
    xs = np.arange(len(vals), dtype=float) * batch + 20
    return RunCurve(run_id=seed, db="x", strategy=strategy, seed=seed, group=cfg.group_key(), n_labels=xs,
                    values=np.asarray(vals), select_seconds=np.zeros(len(vals)), train_seconds=np.zeros(len(vals)),
                    config=cfg)


def test_grouping_never_mixes_configs() -> None:
    curves = [_curve("entropy", 0, 10, [0.5, 0.6]), _curve("entropy", 1, 10, [0.6, 0.7]),
              _curve("entropy", 0, 20, [0.1, 0.2]), _curve("random", 0, 10, [0.4, 0.5])]
    groups = group_curves(curves)
    assert len(groups) == 3
    labels = sorted(g.label for g in groups)
    assert labels == ["entropy [batch=10]", "entropy [batch=20]", "random"]
    rows = {r["strategy"]: r for r in summary_rows(groups)}
    assert rows["entropy [batch=10]"]["seeds"] == 2
    assert rows["entropy [batch=10]"]["final_mean"] == pytest.approx(0.65)
    assert rows["entropy [batch=20]"]["final_mean"] == pytest.approx(0.2)


def test_labels_across_datasets_name_the_differing_keys_not_the_whole_dict() -> None:
    def file_curve(name: str, seed: int) -> RunCurve:
        cfg = RunConfig(dataset="file", strategy="entropy", seed=seed,
                        dataset_params={"features": f"/home/u/data/{name}.csv", "label_column": "label",
                                        "impute": "mean"})
        return RunCurve(run_id=seed, db="x", strategy="entropy", seed=seed, group=cfg.group_key(),
                        n_labels=np.asarray([20.0, 30.0]), values=np.asarray([0.5, 0.6]),
                        select_seconds=np.zeros(2), train_seconds=np.zeros(2), config=cfg)

    labels = sorted(g.label for g in group_curves([file_curve("customers", 0), file_curve("tickets", 0)]))
    assert labels == ["entropy [dataset_params.features=customers.csv]",
                      "entropy [dataset_params.features=tickets.csv]"]
    assert all("{" not in label and "impute" not in label for label in labels)


def test_short_value_and_describe_differences() -> None:
    from al_loop.reports import describe_differences, short_value

    assert short_value("/a/b/customers.csv") == "customers.csv"
    assert short_value({"k": 10, "prune": True}) == "k=10, prune=true"
    assert short_value("x" * 50) == "x" * 31 + "…"
    parts = describe_differences([{"batch": 10, "strategy_params": {"k": 3}}, {"batch": 20, "strategy_params": {}}])
    assert parts == [["batch=10", "strategy_params.k=3"], ["batch=20"]]
