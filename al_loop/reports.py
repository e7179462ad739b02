"""Label-efficiency curves from stores: grouping, mean/std over seeds, AULC, plots."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from al_loop.config import RunConfig
from al_loop.errors import ConfigError, DataError
from al_loop.store import Store

#: the test metrics of a run's rows; for a multi-label run ``accuracy`` is the subset accuracy (exact match)
METRICS = ("accuracy", "macro_f1", "micro_f1", "hamming_loss")
#: the metrics only multi-label runs have
MULTILABEL_METRICS = ("micro_f1", "hamming_loss")
#: the metrics where lower is better
LOWER_IS_BETTER = ("hamming_loss",)


def check_metric(metric: str) -> str:
    """``metric`` if it is one of :data:`METRICS`; a one-line :class:`ConfigError` otherwise."""
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; use --metric accuracy, macro_f1 or (multi-label runs) "
                          "micro_f1, hamming_loss")
    return metric


def normalised_aulc(x: Sequence[float], y: Sequence[float]) -> float:
    """Area under ``y(x)`` by the trapezoid rule divided by the x-range.

    A constant curve ``y = c`` has AULC ``c``; a single point gives its value.
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xs.size == 0:
        raise DataError("an empty curve has no area; the run has no metrics yet")
    if xs.size == 1 or xs[-1] == xs[0]:
        return float(ys.mean())
    order = np.argsort(xs, kind="stable")
    xs, ys = xs[order], ys[order]
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0) / (xs[-1] - xs[0]))


@dataclass
class RunCurve:
    run_id: int
    db: str
    strategy: str
    seed: int
    group: str
    n_labels: np.ndarray
    values: np.ndarray
    select_seconds: np.ndarray
    train_seconds: np.ndarray
    config: RunConfig


@dataclass
class GroupCurve:
    """Runs of one strategy under one configuration (only the seed differs)."""

    label: str
    runs: list[RunCurve] = field(default_factory=list)

    def aligned(self) -> tuple[np.ndarray, np.ndarray]:
        """(n_labels (m,), values (n_runs, m)) on the label counts every run reached."""
        common = set(self.runs[0].n_labels.tolist())
        for r in self.runs[1:]:
            common &= set(r.n_labels.tolist())
        xs = np.asarray(sorted(common), dtype=np.float64)
        vals = np.stack([np.interp(xs, r.n_labels, r.values) for r in self.runs])
        return xs, vals


#: run statuses whose curves stop early for good: left out of every average (``runs retry`` brings one back)
ENDED_EARLY = ("failed", "abandoned")


def load_curves(dbs: Sequence[str], metric: str = "accuracy",
                run_ids: Collection[int] | None = None,
                log: Callable[[str], None] | None = None) -> list[RunCurve]:
    """Curves of every run with metrics in the given stores (read-only).

    ``run_ids`` keeps only those runs (e.g. the runs ``resume`` just finished).
    Failed and abandoned runs (:data:`ENDED_EARLY`) are left out: their
    partial curve would cut the label range every seed of the group shares
    (:meth:`GroupCurve.aligned`); ``log`` gets one line per store naming them.
    Their rows stay readable with ``export``.
    """
    if metric not in METRICS:
        raise DataError(f"unknown metric {metric!r}; use {', '.join(METRICS)}")
    out = []
    without = 0  # runs without the metric (single-label runs asked for a multi-label metric)
    for db in dbs:
        store = Store(db, readonly=True)
        left_out: list[str] = []
        try:
            for run in store.runs():
                assert run.id is not None
                if run_ids is not None and run.id not in run_ids:
                    continue
                if run.status in ENDED_EARLY:
                    left_out.append(f"{run.id} ({run.status})")
                    continue
                rows = store.metrics(run.id)
                if not rows:
                    continue
                cfg = RunConfig.from_json(run.config_json)
                if metric in MULTILABEL_METRICS and all(getattr(m, metric) is None for m in rows):
                    without += 1
                    continue
                out.append(RunCurve(run_id=run.id, db=str(db), strategy=run.strategy, seed=run.seed,
                                    group=run.group_key,
                                    n_labels=np.asarray([m.n_labels for m in rows], dtype=np.float64),
                                    values=np.asarray([getattr(m, metric) for m in rows], dtype=np.float64),
                                    select_seconds=np.asarray([m.select_seconds for m in rows]),
                                    train_seconds=np.asarray([m.train_seconds for m in rows]), config=cfg))
        finally:
            store.close()
        if without and log is not None:
            log(f"{db}: left out {without} single-label run(s): {metric} is a multi-label metric")
        if left_out and log is not None:
            log(f"{db}: left out run(s) {', '.join(left_out)} that ended early; their partial curves would cut "
                "the averages (`al-loop export` still has their rows)")
    return out


def short_value(value: object, limit: int = 32) -> str:
    """A config value as a few readable characters: paths by their file name, dicts as ``k=v``.

    >>> short_value("/data/customers.csv"), short_value({"k": 10, "prune": True})
    ('customers.csv', 'k=10, prune=true')
    """
    if isinstance(value, str):
        text = Path(value).name if ("/" in value or "\\" in value) else value
    elif isinstance(value, dict):
        text = ", ".join(f"{k}={short_value(v, limit)}" for k, v in sorted(value.items()))
    else:
        text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_differences(dicts: Sequence[dict[str, object]]) -> list[list[str]]:
    """Per dict, ``field=value`` for each top-level field whose value differs between the dicts.

    A dict-valued field (``strategy_params``, ``dataset_params``) is opened one
    level, so only its differing keys are named (``dataset_params.limit=500``),
    never the whole dict.
    """
    def differing(ds: Sequence[dict[str, object]]) -> list[str]:
        keys = set().union(*(d.keys() for d in ds)) if ds else set()
        return sorted(k for k in keys if len({json.dumps(d.get(k), sort_keys=True, default=str) for d in ds}) > 1)

    out: list[list[str]] = [[] for _ in dicts]
    for key in differing(dicts):
        values = [d.get(key) for d in dicts]
        if all(isinstance(v, dict) or v is None for v in values):
            subs = [v if isinstance(v, dict) else {} for v in values]
            for sub in differing(subs):
                for parts, d in zip(out, subs, strict=True):
                    if sub in d:
                        parts.append(f"{key}.{sub}={short_value(d[sub])}")
        else:
            for parts, v in zip(out, values, strict=True):
                parts.append(f"{key}={short_value(v)}")
    return out


def group_curves(curves: Sequence[RunCurve]) -> list[GroupCurve]:
    """Group runs whose configurations differ only in the seed; never mix configs.

    Labels are the strategy name, extended with the differing config fields
    (:func:`describe_differences`: short values, never a whole parameter dict)
    when one strategy appears under several configurations.
    """
    groups: dict[str, GroupCurve] = {}
    for c in curves:
        groups.setdefault(c.group, GroupCurve(label=c.strategy)).runs.append(c)
    by_strategy: dict[str, list[GroupCurve]] = defaultdict(list)
    for g in groups.values():
        by_strategy[g.label].append(g)
    for name, gs in by_strategy.items():
        if len(gs) > 1:
            parts = describe_differences([json.loads(g.runs[0].group) for g in gs])
            for g, p in zip(gs, parts, strict=True):
                g.label = name + " [" + ", ".join(p) + "]"
    return sorted(groups.values(), key=lambda g: g.label)


def summary_rows(groups: Sequence[GroupCurve]) -> list[dict[str, object]]:
    """Per group: seeds, final labels, final metric mean/std, normalised AULC mean/std."""
    rows = []
    for g in groups:
        xs, vals = g.aligned()
        aulcs = [normalised_aulc(xs, v) for v in vals]
        rows.append({"strategy": g.label, "seeds": len(g.runs), "labels": int(xs[-1]) if len(xs) else 0,
                     "final_mean": float(vals[:, -1].mean()), "final_std": float(vals[:, -1].std()),
                     "aulc_mean": float(np.mean(aulcs)), "aulc_std": float(np.std(aulcs))})
    return rows


def plot_curves(groups: Sequence[GroupCurve], out: str | Path, metric: str = "accuracy",
                title: str | None = None) -> Path:
    """Mean curve and a +-1 std band per group, AULC in the legend; writes a PNG.

    The figure is :func:`al_loop.compare.curves_figure`, the one ``compare``
    draws: the same palette (distinct for many strategies), the legend outside
    the axes and sorted by AULC.
    """
    from al_loop.compare import save_figure

    return save_figure(groups, Path(out), metric, title or f"{metric} vs labels (mean ± std over seeds)")
