"""Label-efficiency curves from stores: grouping, mean/std over seeds, AULC, plots."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from al_loop.config import RunConfig
from al_loop.errors import DataError
from al_loop.store import Store


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


def load_curves(dbs: Sequence[str], metric: str = "accuracy") -> list[RunCurve]:
    """Curves of every run with metrics in the given stores (read-only)."""
    if metric not in ("accuracy", "macro_f1"):
        raise DataError(f"unknown metric {metric!r}; use accuracy or macro_f1")
    out = []
    for db in dbs:
        store = Store(db, readonly=True)
        try:
            for run in store.runs():
                assert run.id is not None
                rows = store.metrics(run.id)
                if not rows:
                    continue
                cfg = RunConfig.from_json(run.config_json)
                out.append(RunCurve(run_id=run.id, db=str(db), strategy=run.strategy, seed=run.seed,
                                    group=run.group_key,
                                    n_labels=np.asarray([m.n_labels for m in rows], dtype=np.float64),
                                    values=np.asarray([getattr(m, metric) for m in rows], dtype=np.float64),
                                    select_seconds=np.asarray([m.select_seconds for m in rows]),
                                    train_seconds=np.asarray([m.train_seconds for m in rows]), config=cfg))
        finally:
            store.close()
    return out


def group_curves(curves: Sequence[RunCurve]) -> list[GroupCurve]:
    """Group runs whose configurations differ only in the seed; never mix configs.

    Labels are the strategy name, extended with the differing config fields
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
            dicts = [json.loads(g.runs[0].group) for g in gs]
            keys = sorted(k for k in dicts[0] if len({json.dumps(d.get(k), sort_keys=True) for d in dicts}) > 1)
            for g, d in zip(gs, dicts, strict=False):
                g.label = name + " [" + ", ".join(f"{k}={json.dumps(d.get(k), sort_keys=True)}" for k in keys) + "]"
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
    """Mean curve and a +-1 std band per group, AULC in the legend; writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for g in groups:
        xs, vals = g.aligned()
        mean, std = vals.mean(axis=0), vals.std(axis=0)
        aulc = np.mean([normalised_aulc(xs, v) for v in vals])
        (line,) = ax.plot(xs, mean, marker="o", ms=3, label=f"{g.label} (AULC {aulc:.3f}, n={len(g.runs)})")
        ax.fill_between(xs, mean - std, mean + std, alpha=0.2, color=line.get_color())
    ax.set_xlabel("number of labels")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title or f"{metric} vs labels (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
