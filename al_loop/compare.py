"""Compare label-efficiency curves across stores: table, plots, ceiling, paired tests.

Vocabulary
----------
group
    Runs whose configurations differ only in the seed
    (:meth:`al_loop.config.RunConfig.group_key`, :func:`al_loop.reports.group_curves`).
    Only a group's runs are ever averaged together.
family
    Groups whose configurations differ only in ``strategy`` and
    ``strategy_params``: the same dataset, split, learner, batch, oracle, ...
    Curves of one family share a figure; a group's baseline is the baseline
    strategy's group of the same family. Groups of different families are never
    drawn on one axis nor paired.
ceiling
    The test metric of the learner fitted once on the whole pool with every
    hidden label. It is computed per seed from a run's configuration with
    :func:`al_loop.api.build_pool` / :func:`al_loop.api.build_learner` and cached
    in a JSON file keyed by (dataset, dataset_params, split, learner, seed); a
    family's ceiling is the mean over the seeds of its runs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from al_loop.config import RunConfig
from al_loop.errors import AlLoopError, ConfigError, DataError
from al_loop.html_report import ReportFigure, write_report
from al_loop.reports import GroupCurve, group_curves, load_curves, normalised_aulc, summary_rows

METRICS = ("accuracy", "macro_f1")
TARGET_FRACTIONS = (0.90, 0.95, 0.98)
NOT_REACHED = "not reached"
_FAMILY_EXCLUDED = ("strategy", "strategy_params", "init_strategy", "init_params")  # what "the strategy" is


# -- pure functions ----------------------------------------------------------------------
def labels_to_target(xs: Sequence[float], mean: Sequence[float], target: float) -> int | None:
    """First number of labels at which the mean curve reaches ``target``.

    Parameters
    ----------
    xs : sequence of float, shape (m,)
        Numbers of labels, in increasing order.
    mean : sequence of float, shape (m,)
        Mean metric over seeds at each ``xs``.
    target : float
        Level to reach (e.g. ``0.95 * ceiling``).

    Returns
    -------
    int or None
        The first ``xs[i]`` with ``mean[i] >= target``; ``None`` if never reached
        (a NaN point never reaches).
    """
    x, y = np.asarray(xs, dtype=np.float64), np.asarray(mean, dtype=np.float64)
    if x.shape != y.shape:
        raise DataError(f"{x.size} label counts for {y.size} metric values; give one value per label count")
    hit = np.flatnonzero(y >= target)
    return int(x[hit[0]]) if hit.size else None


@dataclass(frozen=True)
class PairedTest:
    """Wilcoxon signed-rank test of a group against its baseline, paired by seed.

    Attributes
    ----------
    p_value, statistic : float or None
        Two-sided p-value and statistic of :func:`scipy.stats.wilcoxon`; ``None``
        when the test cannot be run (``reason`` says why).
    n_pairs : int
        Seeds present in both groups.
    n_better : int
        Paired seeds where the group's value is strictly above the baseline's.
    reason : str or None
        Why there is no p-value.
    """

    p_value: float | None
    statistic: float | None
    n_pairs: int
    n_better: int
    reason: str | None = None

    def describe(self) -> str:
        if self.p_value is None:
            return f"n/a ({self.reason})"
        return f"p={self.p_value:.3g}, {self.n_better}/{self.n_pairs} seeds beat"


def paired_wilcoxon(a: Mapping[int, float], b: Mapping[int, float]) -> PairedTest:
    """Wilcoxon signed-rank test of ``a`` against ``b`` on the seeds both have.

    Parameters
    ----------
    a, b : mapping of int to float
        Seed -> value (per-seed AULC) of the group and of its baseline.

    Returns
    -------
    PairedTest
        ``scipy.stats.wilcoxon(a[s], b[s])`` over the common seeds (sorted),
        with the number of seeds where ``a`` beats ``b``; ``p_value`` is None
        with fewer than 2 pairs, only zero differences or a non-finite value.
    """
    from scipy.stats import wilcoxon

    seeds = sorted(set(a) & set(b))
    x = np.asarray([a[s] for s in seeds], dtype=np.float64)
    y = np.asarray([b[s] for s in seeds], dtype=np.float64)
    n_better = int(np.sum(x > y))
    if len(seeds) < 2:
        return PairedTest(None, None, len(seeds), n_better, f"{len(seeds)} paired seed(s), need 2 or more")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return PairedTest(None, None, len(seeds), n_better, "a paired value is NaN or Inf")
    if np.all(x - y == 0):
        return PairedTest(None, None, len(seeds), n_better, "all paired differences are zero")
    res = wilcoxon(x, y)
    return PairedTest(float(res.pvalue), float(res.statistic), len(seeds), n_better)


def per_seed_aulc(group: GroupCurve) -> dict[int, float]:
    """Normalised AULC of each seed of ``group`` on the group's common label counts.

    A seed present in several runs (the same configuration in two stores) gets
    the mean of their AULCs.
    """
    xs, vals = group.aligned()
    by_seed: dict[int, list[float]] = defaultdict(list)
    for run, v in zip(group.runs, vals, strict=True):
        by_seed[run.seed].append(normalised_aulc(xs, v))
    return {s: float(np.mean(v)) for s, v in sorted(by_seed.items())}


def family_key(group: GroupCurve) -> str:
    """The group's configuration without seed, strategy and strategy parameters (JSON)."""
    data = json.loads(group.runs[0].group)
    for key in _FAMILY_EXCLUDED:
        data.pop(key, None)
    return json.dumps(data, sort_keys=True)


@dataclass
class Family:
    """Groups sharing everything but the strategy: one figure, one baseline.

    Attributes
    ----------
    key : str
        :func:`family_key` of its groups.
    title : str
        Dataset, learner and the fields that tell it apart from other families.
    groups : list of GroupCurve
    config : RunConfig
        The configuration of one of its runs (any seed).
    seeds : list of int
        Seeds of all its runs.
    ceiling : float or None
        Mean full-data ceiling over ``seeds`` (None if skipped or impossible).
    png : Path or None
        The figure, once written.
    """

    key: str
    title: str
    groups: list[GroupCurve]
    config: RunConfig
    seeds: list[int]
    ceiling: float | None = None
    png: Path | None = None


def split_families(groups: Sequence[GroupCurve]) -> list[Family]:
    """Partition groups into families, titled by the fields that differ between families."""
    by_key: dict[str, list[GroupCurve]] = {}
    for g in groups:
        by_key.setdefault(family_key(g), []).append(g)
    dicts = {k: json.loads(k) for k in by_key}
    differing = sorted(f for f in (set().union(*dicts.values()) if dicts else set())
                       if f not in ("dataset", "learner")
                       and len({json.dumps(d.get(f), sort_keys=True) for d in dicts.values()}) > 1)
    families = []
    for key, gs in by_key.items():
        d = dicts[key]
        extra = [f"{f}={json.dumps(d.get(f), sort_keys=True)}" for f in differing]
        title = " / ".join([str(d.get("dataset")), str(d.get("learner")), *extra])
        seeds = sorted({r.seed for g in gs for r in g.runs})
        families.append(Family(key=key, title=title, groups=sorted(gs, key=lambda g: g.label),
                               config=gs[0].runs[0].config, seeds=seeds))
    return sorted(families, key=lambda f: f.title)


# -- the ceiling ---------------------------------------------------------------------------
def default_cache_path() -> Path:
    """``$AL_LOOP_CACHE_DIR/ceilings.json``, else ``~/.cache/al-loop/ceilings.json``."""
    base = os.environ.get("AL_LOOP_CACHE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "al-loop") / "ceilings.json"


def ceiling_key(config: RunConfig, seed: int) -> str:
    """Cache key: what the full-data fit depends on (dataset, its parameters, split, learner, seed).

    The al-loop version is part of the key: a release may change a learner
    (``cnn`` became a strided all-conv net in 0.1), and a ceiling trained by
    the old code must not be reused.
    """
    from al_loop import __version__

    return json.dumps({"al_loop": __version__, "dataset": config.dataset, "dataset_params": config.dataset_params,
                       "test_fraction": config.test_fraction, "split_seed": config.split_seed,
                       "val_fraction": config.val_fraction, "learner": config.learner, "seed": int(seed)},
                      sort_keys=True)


def train_ceiling(config: RunConfig, seed: int) -> dict[str, float]:
    """Fit ``config.learner`` on the whole pool with all hidden labels; score the test split.

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1`` on the test split, and ``n_train``, ``n_test``.

    Raises
    ------
    DataError
        The pool has no hidden labels or no test split.
    """
    from sklearn.metrics import f1_score

    from al_loop.api import build_learner, build_pool
    from al_loop.pool import Pool

    pool = build_pool(config)
    if pool.y is None:
        raise DataError(f"dataset {config.dataset!r} has no hidden labels, so there is no full-data ceiling; "
                        "pass --no-ceiling")
    if pool.X_test is None or pool.y_test is None or len(pool.X_test) == 0:
        raise DataError(f"dataset {config.dataset!r} has no test split to score a ceiling on; pass --no-ceiling")
    learner = build_learner(config.learner, pool)
    learner.fit(pool, pool.ids, pool.hidden_labels(pool.ids), seed=int(seed))
    test_ids = np.arange(len(pool.X_test), dtype=np.int64)
    test_pool = Pool(X=pool.X_test, ids=test_ids, classes=pool.classes, y=pool.y_test)
    pred = learner.predict_proba(test_pool, test_ids).argmax(axis=1)
    y = np.asarray(pool.y_test)
    return {"accuracy": float((pred == y).mean()),
            "macro_f1": float(f1_score(y, pred, average="macro", labels=np.arange(pool.n_classes),
                                       zero_division=0)),
            "n_train": int(len(pool.ids)), "n_test": int(len(y))}


class CeilingCache:
    """Full-data ceilings in a JSON file, ``{ceiling_key: {"accuracy": ..., ...}}``.

    A missing file is an empty cache; an unreadable one is ignored with a
    warning (and replaced on :meth:`save`). Saving re-reads the file and merges,
    then replaces it atomically, so two compares sharing a cache lose nothing
    worse than a recomputation.
    """

    def __init__(self, path: str | Path, warn: Callable[[str], None]) -> None:
        self.path = Path(path)
        self.warn = warn
        self.entries: dict[str, dict[str, float]] = self._read(announce=True)
        self.trained = 0
        self._dirty = False

    def _read(self, announce: bool) -> dict[str, dict[str, float]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return data
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            if announce:
                self.warn(f"ceiling cache {self.path} is unreadable ({exc}); recomputing (delete it or pass "
                          "--ceiling-cache with another file)")
            return {}

    def get(self, config: RunConfig, seed: int,
            compute: Callable[[RunConfig, int], dict[str, float]]) -> dict[str, float]:
        """The cached ceiling of (config, seed), computing and remembering it on a miss."""
        key = ceiling_key(config, seed)
        if key not in self.entries:
            self.entries[key] = compute(config, seed)
            self.trained += 1
            self._dirty = True
        return self.entries[key]

    def save(self) -> None:
        if not self._dirty:
            return
        merged = {**self._read(announce=False), **self.entries}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".ceilings-", suffix=".json", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(merged, fh, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError as exc:
            self.warn(f"cannot write the ceiling cache {self.path} ({exc}); ceilings will be retrained next time "
                      "(pass --ceiling-cache with a writable file)")


# -- rows ----------------------------------------------------------------------------------
@dataclass
class CompareRow:
    """One line of the summary table (one group).

    ``labels_to`` maps a fraction of the ceiling (0.9, 0.95, 0.98) to the first
    number of labels where the mean curve reaches it (None: not reached); it
    is empty without a ceiling. ``baseline`` is the baseline group's label,
    ``"(baseline)"`` for the baseline itself, or ``"no baseline"``.
    """

    family: str
    group: str
    strategy: str
    seeds: int
    labels: int
    final_mean: float
    final_std: float
    aulc_mean: float
    aulc_std: float
    ceiling: float | None
    labels_to: dict[float, int | None]
    select_seconds: float
    train_seconds: float
    baseline: str
    test: PairedTest | None
    dbs: list[str] = field(default_factory=list)


def _seconds_per_round(group: GroupCurve) -> tuple[float, float]:
    """Mean selection and training seconds per round over the group's runs.

    The last metric row of a run is its final evaluation, which selects nothing,
    so selection time averages every row but the last.
    """
    sel = np.concatenate([r.select_seconds[:-1] if len(r.select_seconds) > 1 else r.select_seconds
                          for r in group.runs])
    train = np.concatenate([r.train_seconds for r in group.runs])
    return (float(sel.mean()) if sel.size else float("nan"), float(train.mean()) if train.size else float("nan"))


def _pick_baseline(family: Family, baseline: str, warn: Callable[[str], None]) -> GroupCurve | None:
    candidates = [g for g in family.groups if g.runs[0].strategy == baseline]
    if len(candidates) > 1:
        plain = [g for g in candidates if not g.runs[0].config.strategy_params]
        chosen = plain[0] if plain else candidates[0]
        warn(f"{len(candidates)} groups of baseline {baseline!r} in {family.title}; pairing with "
             f"{chosen.label!r}")
        return chosen
    return candidates[0] if candidates else None


def build_rows(families: Sequence[Family], baseline: str, warn: Callable[[str], None]) -> list[CompareRow]:
    """The summary table: per group, curve statistics, targets, cost and the paired test."""
    rows = []
    for fam in families:
        stats = {r["strategy"]: r for r in summary_rows(fam.groups)}
        base = _pick_baseline(fam, baseline, warn)
        base_aulc = per_seed_aulc(base) if base is not None else None
        for g in fam.groups:
            xs, vals = g.aligned()
            mean = vals.mean(axis=0)
            labels_to: dict[float, int | None] = {}
            if fam.ceiling is not None and math.isfinite(fam.ceiling):
                labels_to = {f: labels_to_target(xs, mean, f * fam.ceiling) for f in TARGET_FRACTIONS}
            sel_s, train_s = _seconds_per_round(g)
            if base is None:
                base_label, test = "no baseline", None
            elif g is base:
                base_label, test = "(baseline)", None
            else:
                assert base_aulc is not None
                base_label, test = base.label, paired_wilcoxon(per_seed_aulc(g), base_aulc)
            st = {k: v for k, v in stats[g.label].items() if isinstance(v, int | float)}
            rows.append(CompareRow(family=fam.title, group=g.label, strategy=g.runs[0].strategy,
                                   seeds=len({r.seed for r in g.runs}), labels=int(st["labels"]),
                                   final_mean=float(st["final_mean"]), final_std=float(st["final_std"]),
                                   aulc_mean=float(st["aulc_mean"]), aulc_std=float(st["aulc_std"]),
                                   ceiling=fam.ceiling, labels_to=labels_to, select_seconds=sel_s,
                                   train_seconds=train_s, baseline=base_label, test=test,
                                   dbs=sorted({r.db for r in g.runs})))
    return rows


def _target_cell(row: CompareRow, fraction: float) -> str:
    if not row.labels_to:
        return "n/a (no ceiling)"
    hit = row.labels_to[fraction]
    return NOT_REACHED if hit is None else str(hit)


def _test_cells(row: CompareRow) -> tuple[str, str]:
    """(p-value cell, seeds-beating cell)."""
    if row.test is None:
        return ("n/a (no baseline)" if row.baseline == "no baseline" else "n/a (is the baseline)", "")
    t = row.test
    p = f"n/a ({t.reason})" if t.p_value is None else f"{t.p_value:.3g}"
    return p, f"{t.n_better}/{t.n_pairs}"


TABLE_HEADERS = ("family", "group", "seeds", "labels", "final", "AULC", "ceiling",
                 *(f"labels to {int(round(f * 100))}%" for f in TARGET_FRACTIONS),
                 "select s/round", "train s/round", "baseline", "p (Wilcoxon, AULC)", "seeds beating baseline")


def format_row(row: CompareRow) -> list[str]:
    """Cells of :data:`TABLE_HEADERS` for one row."""
    p, beat = _test_cells(row)
    return [row.family, row.group, str(row.seeds), str(row.labels),
            f"{row.final_mean:.4f} ± {row.final_std:.4f}", f"{row.aulc_mean:.4f} ± {row.aulc_std:.4f}",
            "n/a" if row.ceiling is None else f"{row.ceiling:.4f}",
            *(_target_cell(row, f) for f in TARGET_FRACTIONS),
            f"{row.select_seconds:.3f}", f"{row.train_seconds:.3f}", row.baseline, p, beat]


def markdown_table(rows: Sequence[CompareRow]) -> str:
    """The table as GitHub-flavoured markdown (``|`` in cells escaped)."""
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [line(TABLE_HEADERS), line(["---"] * len(TABLE_HEADERS))]
    out += [line(format_row(r)) for r in rows]
    return "\n".join(out) + "\n"


def csv_records(rows: Sequence[CompareRow]) -> list[dict[str, Any]]:
    """Machine-readable rows: raw numbers, ``not reached`` / ``n/a (...)`` as text."""
    records = []
    for r in rows:
        rec: dict[str, Any] = {"family": r.family, "group": r.group, "strategy": r.strategy, "seeds": r.seeds,
                               "labels": r.labels, "final_mean": r.final_mean, "final_std": r.final_std,
                               "aulc_mean": r.aulc_mean, "aulc_std": r.aulc_std,
                               "ceiling": "" if r.ceiling is None else r.ceiling}
        for f in TARGET_FRACTIONS:
            rec[f"labels_to_{int(round(f * 100))}"] = _target_cell(r, f)
        rec.update({"select_seconds_per_round": r.select_seconds, "train_seconds_per_round": r.train_seconds,
                    "baseline": r.baseline})
        t = r.test
        rec["p_value"] = "" if t is None or t.p_value is None else t.p_value
        rec["test_note"] = "" if t is None or t.reason is None else f"n/a ({t.reason})"
        rec["paired_seeds"] = "" if t is None else t.n_pairs
        rec["seeds_beating_baseline"] = "" if t is None else t.n_better
        rec["dbs"] = ";".join(r.dbs)
        records.append(rec)
    return records


# -- plots ---------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "x"


def _xv(group: GroupCurve, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return group.aligned()[0], values


def plot_family(family: Family, out: Path, metric: str) -> Path:
    """Mean curve and ±1 std band per group of one family, the ceiling as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    many = len(family.groups) > 6
    fig, ax = plt.subplots(figsize=(11, 5.2) if many else (7.5, 4.8))
    colors = plt.get_cmap("tab20" if len(family.groups) > 10 else "tab10")
    # best AULC first in the legend; distinct colours, bands fainter when crowded
    order = sorted(family.groups, key=lambda g: -np.mean([normalised_aulc(*_xv(g, v)) for v in g.aligned()[1]]))
    for i, g in enumerate(order):
        xs, vals = g.aligned()
        mean, std = vals.mean(axis=0), vals.std(axis=0)
        aulc = np.mean([normalised_aulc(xs, v) for v in vals])
        (line,) = ax.plot(xs, mean, marker="o", ms=3, color=colors(i % colors.N),
                          label=f"{g.label} (AULC {aulc:.3f}, n={len({r.seed for r in g.runs})})")
        ax.fill_between(xs, mean - std, mean + std, alpha=0.08 if many else 0.2, color=line.get_color())
    if family.ceiling is not None and math.isfinite(family.ceiling):
        ax.axhline(family.ceiling, color="black", ls="--", lw=1,
                   label=f"full-data ceiling {family.ceiling:.3f}")
    ax.set_xlabel("number of labels")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{family.title}: {metric} (mean ± std over seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    if many:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# -- the whole comparison ------------------------------------------------------------------
@dataclass
class CompareResult:
    """What :func:`compare` computed and wrote.

    Attributes
    ----------
    rows : list of CompareRow
        The table, family by family.
    families : list of Family
        Figures and their groups (``png`` set).
    pngs : list of Path
        One per family, in ``families`` order.
    summary_md, summary_csv, html : Path
    warnings : list of str
        One-line warnings (missing baseline, no ceiling, cache problems).
    ceilings_trained : int
        Full-data fits done by this call (0 when every ceiling came from the cache).
    """

    rows: list[CompareRow]
    families: list[Family]
    pngs: list[Path]
    summary_md: Path
    summary_csv: Path
    html: Path
    warnings: list[str]
    ceilings_trained: int

    def group_lines(self) -> list[str]:
        """Human-readable list of the groups, family by family."""
        lines = []
        for fam in self.families:
            lines.append(f"{fam.title}:")
            for g in fam.groups:
                seeds = sorted({r.seed for r in g.runs})
                lines.append(f"  {g.label}: {len(g.runs)} run(s), seeds {seeds}")
        return lines


def _check_out_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".al-loop-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot write to the output folder {out} ({reason}); pass a writable --out folder") \
            from None


def compare(dbs: Sequence[str | Path], out: str | Path, metric: str = "accuracy", baseline: str = "random",
            cache_path: str | Path | None = None, ceiling: bool = True,
            warn: Callable[[str], None] | None = None) -> CompareResult:
    """Compare every group of runs in ``dbs``; write PNGs, summary.md/.csv and report.html to ``out``.

    Parameters
    ----------
    dbs : sequence of path
        Stores to read (read-only); a store named twice is read once.
    out : path
        Output folder (created).
    metric : str
        ``accuracy`` or ``macro_f1``.
    baseline : str
        Strategy each group is paired against, within its family.
    cache_path : path, optional
        Ceiling cache file (default :func:`default_cache_path`).
    ceiling : bool
        Compute the full-data ceiling (False: no line, no labels-to-target).
    warn : callable, optional
        Called with each warning line as it happens (they are also returned).

    Raises
    ------
    ConfigError
        Unknown metric, or an output folder that cannot be written.
    DataError
        No run in ``dbs`` has metrics.
    """
    warnings: list[str] = []

    def _warn(msg: str) -> None:
        warnings.append(msg)
        if warn is not None:
            warn(msg)

    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; use --metric accuracy or --metric macro_f1")
    if not dbs:
        raise ConfigError("no store given; pass --db FILE (repeat for several)")
    unique = list(dict.fromkeys(str(Path(d).resolve()) for d in dbs))
    out = Path(out)
    _check_out_dir(out)
    groups = group_curves(load_curves(unique, metric))
    if not groups:
        raise DataError(f"no run in {[str(d) for d in dbs]} has metrics yet; run `al-loop simulate` "
                        "or `al-loop resume` first")
    families = split_families(groups)
    if not any(r.strategy == baseline for g in groups for r in g.runs):
        present = sorted({r.strategy for g in groups for r in g.runs})
        _warn(f"baseline strategy {baseline!r} is in none of the runs, so there is no paired test; "
              f"pass --baseline with one of {present}")

    trained = 0
    if ceiling:
        cache = CeilingCache(cache_path if cache_path is not None else default_cache_path(), _warn)
        for fam in families:
            try:
                values = [cache.get(fam.config, s, train_ceiling)[metric] for s in fam.seeds]
                fam.ceiling = float(np.mean(values))
            except AlLoopError as exc:
                _warn(f"no full-data ceiling for {fam.title}: {exc}")
        cache.save()
        trained = cache.trained

    rows = build_rows(families, baseline, _warn)
    pngs = []
    for i, fam in enumerate(families):
        tag = hashlib.sha1(fam.key.encode()).hexdigest()[:8]
        name = f"curves-{i + 1:02d}-{_slug(fam.config.dataset)}-{_slug(fam.config.learner)}-{tag}.png"
        fam.png = plot_family(fam, out / name, metric)
        pngs.append(fam.png)

    summary_md = out / "summary.md"
    summary_md.write_text(f"# {metric}: label-efficiency summary\n\n" + markdown_table(rows), encoding="utf-8")
    summary_csv = out / "summary.csv"
    records = csv_records(rows)
    with open(summary_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)

    intro = [f"Stores: {', '.join(unique)}.",
             f"Metric: {metric} on the test split against the number of labels; mean ± std over seeds. "
             "Runs are averaged only within a group (same configuration, different seeds); a figure holds "
             "one family (same configuration apart from the strategy).",
             "AULC: area under the curve divided by the label range. Labels to X%: first number of labels "
             "where the mean curve reaches X% of the full-data ceiling (the learner fitted on the whole pool).",
             f"Paired test: Wilcoxon signed-rank on per-seed AULC against {baseline!r} of the same family, "
             "paired by seed (two-sided)."]
    figures = [ReportFigure(title=f.title, png=f.png, caption=", ".join(g.label for g in f.groups))
               for f in families if f.png is not None]
    group_list = [(f.title, [f"{g.label}: {len(g.runs)} run(s), seeds {sorted({r.seed for r in g.runs})}"
                             for g in f.groups]) for f in families]
    html = write_report(out / "report.html", f"al-loop compare: {metric}", figures, TABLE_HEADERS,
                        [format_row(r) for r in rows], group_list, intro, warnings)
    return CompareResult(rows=rows, families=families, pngs=pngs, summary_md=summary_md, summary_csv=summary_csv,
                         html=html, warnings=warnings, ceilings_trained=trained)


__all__ = ["CeilingCache", "CompareResult", "CompareRow", "Family", "PairedTest", "build_rows", "ceiling_key",
           "compare", "default_cache_path", "family_key", "labels_to_target", "paired_wilcoxon", "per_seed_aulc",
           "split_families", "train_ceiling"]
