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
from al_loop.html_report import ReportFigure, ReportSection, write_report
from al_loop.reports import (
    LOWER_IS_BETTER,
    GroupCurve,
    check_metric,
    describe_differences,
    group_curves,
    load_curves,
    normalised_aulc,
    short_value,
    summary_rows,
)

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


ALPHA = 0.05


def min_wilcoxon_p(n: int) -> float:
    """Smallest two-sided p-value the exact Wilcoxon signed-rank test can give with ``n`` pairs.

    Every one of the ``2**n`` sign patterns of the ranks is equally likely
    under the null hypothesis; the most extreme statistic (all differences of
    one sign) is reached by two of them, so ``p >= 2 / 2**n``: 0.25 with 3
    seeds, 0.0625 with 5, 0.031 with 6.
    """
    return 1.0 if n < 1 else min(1.0, 2.0 / 2.0 ** n)


def seeds_needed(alpha: float = ALPHA) -> int:
    """Fewest paired seeds with which the exact Wilcoxon test can reach ``p < alpha`` (6 for 0.05)."""
    n = 1
    while min_wilcoxon_p(n) >= alpha:
        n += 1
    return n


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
    n_used : int
        Pairs the test ranks: those with a non-zero difference (scipy's
        default ``zero_method="wilcox"`` drops zero differences).
    """

    p_value: float | None
    statistic: float | None
    n_pairs: int
    n_better: int
    reason: str | None = None
    n_used: int = 0

    @property
    def min_p(self) -> float | None:
        """The smallest p the test could give with these pairs (:func:`min_wilcoxon_p`); None without a test."""
        return None if self.p_value is None else min_wilcoxon_p(self.n_used)

    def p_text(self) -> str:
        """``0.25 (min 0.25 with 3 seeds)``: the p-value next to the smallest one the seed count allows."""
        if self.p_value is None:
            return f"n/a ({self.reason})"
        seeds = f"{self.n_used} seeds" if self.n_used == self.n_pairs else f"{self.n_used} untied seeds"
        return f"{self.p_value:.3g} (min {self.min_p:.3g} with {seeds})"

    def describe(self) -> str:
        if self.p_value is None:
            return f"n/a ({self.reason})"
        return f"p={self.p_text()}, {self.n_better}/{self.n_pairs} seeds beat"


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
    return PairedTest(float(res.pvalue), float(res.statistic), len(seeds), n_better,
                      n_used=int(np.count_nonzero(x - y)))


def few_seeds_note(tests: Sequence[PairedTest | None], alpha: float = ALPHA) -> str | None:
    """One line when some paired test cannot reach ``p < alpha`` with its seeds; None otherwise."""
    floors = sorted({t.n_used for t in tests if t is not None and t.min_p is not None and t.min_p >= alpha})
    if not floors:
        return None
    n = floors[0]
    need = seeds_needed(alpha)
    return (f"With {n} paired seeds the exact Wilcoxon test cannot give p below {min_wilcoxon_p(n):.3g} "
            f"(2/2^{n}), however large the gain; run {need} or more seeds (--seeds {need}) so that "
            f"p < {alpha:g} is reachable ({need} seeds: min p {min_wilcoxon_p(need):.3g}).")


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


_DATA_FILE_PARAMS = ("features", "texts", "path", "data")  # dataset_params naming the user's file, in this order


def data_name(config: RunConfig) -> str:
    """A short name of the run's data: the dataset, or the file's name (no suffix) for the user's file or texts.

    >>> data_name(RunConfig(dataset="file", strategy="random", dataset_params={"features": "/x/customers.csv"}))
    'customers'
    """
    for key in _DATA_FILE_PARAMS:
        value = config.dataset_params.get(key)
        if isinstance(value, str) and value:
            return Path(value).stem
    return config.dataset


def family_settings(config: RunConfig, seeds: Sequence[int]) -> list[tuple[str, str]]:
    """The run settings a family shares, as (name, value) lines for the report.

    Parameters
    ----------
    config : RunConfig
        Any run of the family (they differ only in seed and strategy).
    seeds : sequence of int
        The seeds of the family's runs.
    """
    params = config.dataset_params
    data = data_name(config)
    source = ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if v is not None)
    rows = [("data", f"{data} ({config.dataset}{': ' + source if source else ''})"),
            ("learner", config.learner), ("rounds", str(config.rounds)),
            ("batch", str(config.batch) + ("" if config.batch_schedule == "fixed" else
                                           f" (schedule {config.batch_schedule})")),
            ("init", str(config.init)),
            ("init strategy", config.init_strategy + (f" ({short_value(config.init_params, 80)})"
                                                       if config.init_params else "")),
            ("seeds", f"{len(seeds)}: {', '.join(str(s) for s in seeds)}")]
    own_test = params.get("test_features") or params.get("test_path")
    if own_test:
        rows.append(("test split", f"the user's test set {own_test}"))
    else:
        rows.append(("test split", f"{config.test_fraction:.0%} held out, stratified (split seed {config.split_seed})"))
    if config.val_fraction:
        rows.append(("validation split", f"{config.val_fraction:.0%}"))
    if config.max_labels is not None:
        rows.append(("label budget", str(config.max_labels)))
    noise = {k: v for k, v in config.oracle_params.items() if v}
    rows.append(("oracle", config.oracle + (f" ({short_value(noise, 80)})" if noise else "")))
    return rows


@dataclass
class Family:
    """Groups sharing everything but the strategy: one figure, one baseline.

    Attributes
    ----------
    key : str
        :func:`family_key` of its groups.
    title : str
        Short data name (:func:`data_name`), learner and the fields that tell it
        apart from other families (short values, never a whole parameter dict).
    groups : list of GroupCurve
        Labelled within the family (strategy, plus what tells two groups of one
        strategy apart), best AULC first.
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

    @property
    def settings(self) -> list[tuple[str, str]]:
        """:func:`family_settings` of the family."""
        return family_settings(self.config, self.seeds)


def _group_aulc(group: GroupCurve) -> float:
    xs, vals = group.aligned()
    return float(np.mean([normalised_aulc(xs, v) for v in vals]))


_FIELD_NAMES = {"strategy_params.": "", "init_strategy=": "init=", "init_params.": "init."}
_SHORT_FIELD = re.compile("^(" + "|".join(re.escape(k) for k in _FIELD_NAMES) + ")")


def _label_within_family(groups: Sequence[GroupCurve]) -> None:
    """Relabel ``groups`` (one family) by strategy, plus what tells two groups of one strategy apart."""
    by_strategy: dict[str, list[GroupCurve]] = defaultdict(list)
    for g in groups:
        by_strategy[g.runs[0].strategy].append(g)
    for name, gs in by_strategy.items():
        if len(gs) == 1:
            gs[0].label = name
            continue
        parts = describe_differences([json.loads(g.runs[0].group) for g in gs])
        for g, part in zip(gs, parts, strict=True):
            short = [_SHORT_FIELD.sub(lambda m: _FIELD_NAMES[m.group(0)], x) for x in part]
            g.label = name + (" [" + ", ".join(short) + "]" if short else "")


def split_families(groups: Sequence[GroupCurve]) -> list[Family]:
    """Partition groups into families, titled by short names and the fields that differ between families.

    Groups are relabelled within their family (legend entries stay short) and
    ordered by AULC, best first; families are ordered by title.
    """
    by_key: dict[str, list[GroupCurve]] = {}
    for g in groups:
        by_key.setdefault(family_key(g), []).append(g)
    # titles: short data name and learner, plus what tells apart families that share both
    keys = list(by_key)
    configs = {k: by_key[k][0].runs[0].config for k in keys}
    extras: dict[str, list[str]] = {}
    by_name: dict[tuple[str, str], list[str]] = defaultdict(list)
    for k in keys:
        by_name[(data_name(configs[k]), configs[k].learner)].append(k)
    for same in by_name.values():
        dicts = [json.loads(k) for k in same]
        for d in dicts:  # the data name stands for the dataset and its file
            d["dataset_params"] = {p: v for p, v in (d.get("dataset_params") or {}).items()
                                   if p not in _DATA_FILE_PARAMS}
        extras.update(zip(same, describe_differences(dicts), strict=True))
    families = []
    for key in keys:
        gs, config = by_key[key], configs[key]
        title = " / ".join([data_name(config), config.learner, *extras[key]])
        seeds = sorted({r.seed for g in gs for r in g.runs})
        _label_within_family(gs)
        families.append(Family(key=key, title=title, groups=sorted(gs, key=lambda g: (-_group_aulc(g), g.label)),
                               config=config, seeds=seeds))
    seen: dict[str, int] = defaultdict(int)
    for fam in sorted(families, key=lambda f: (f.title, f.key)):  # two files of one name in two folders
        seen[fam.title] += 1
        if seen[fam.title] > 1:
            fam.title += f" #{seen[fam.title]}"
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
        ``accuracy``, ``macro_f1`` on the test split, and ``n_train``, ``n_test``; a multi-label pool
        adds ``micro_f1`` and ``hamming_loss`` (``accuracy`` is then the subset accuracy).

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
    test_pool = Pool(X=pool.X_test, ids=test_ids, classes=pool.classes, y=pool.y_test, multilabel=pool.multilabel)
    proba = learner.predict_proba(test_pool, test_ids)
    y = np.asarray(pool.y_test)
    if pool.multilabel:
        from al_loop.multilabel import metric_columns

        return {**metric_columns(y, proba), "n_train": int(len(pool.ids)), "n_test": int(len(y))}
    pred = proba.argmax(axis=1)
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
    """The summary table: per group, curve statistics, targets, cost and the paired test.

    Rows follow ``families`` and, within a family, its groups' order (best AULC first).
    """
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
    return t.p_text(), f"{t.n_better}/{t.n_pairs}"


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


def family_table(rows: Sequence[CompareRow]) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of one family's rows for a terminal: no family column, no ceiling columns without one.

    Parameters
    ----------
    rows : sequence of CompareRow
        Rows of one family (:attr:`CompareRow.family` equal), in table order.
    """
    keep = [i for i, h in enumerate(TABLE_HEADERS) if h != "family"]
    if all(r.ceiling is None for r in rows):
        keep = [i for i in keep if TABLE_HEADERS[i] != "ceiling" and not TABLE_HEADERS[i].startswith("labels to")]
    cells = [format_row(r) for r in rows]
    return [TABLE_HEADERS[i] for i in keep], [[c[i] for i in keep] for c in cells]


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
        rec["p_min"] = "" if t is None or t.min_p is None else t.min_p  # the smallest p these seeds allow
        rec["test_note"] = "" if t is None or t.reason is None else f"n/a ({t.reason})"
        rec["paired_seeds"] = "" if t is None else t.n_pairs
        rec["seeds_beating_baseline"] = "" if t is None else t.n_better
        rec["dbs"] = ";".join(r.dbs)
        records.append(rec)
    return records


# -- plots ---------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40] or "x"


def palette(n: int) -> list[dict[str, Any]]:
    """``n`` distinct line styles (``color``, ``linestyle``) for ``n`` curves on one axis.

    Up to 10 curves take ``tab10``; up to 20, ``tab20`` with its dark shades
    first; up to 60, ``tab20`` + ``tab20b`` + ``tab20c``; past 60 the colours
    repeat with another dash pattern, so no two curves look alike. ``compare``
    and ``curves`` both draw with it.
    """
    from matplotlib import colormaps

    if n <= 10:
        colours = [colormaps["tab10"](i) for i in range(10)]
    else:
        tab20 = [colormaps["tab20"](i) for i in range(20)]
        colours = tab20[0::2] + tab20[1::2]
        if n > 20:
            colours += [colormaps[name](i) for name in ("tab20b", "tab20c") for i in range(20)]
    dashes = ["-", "--", ":", "-."]
    return [{"color": colours[i % len(colours)], "linestyle": dashes[(i // len(colours)) % len(dashes)]}
            for i in range(n)]


FIGURE_SIZE = (7.5, 4.6)  # inches of the axes' figure before the legend; the legend widens the PNG
FIGURE_DPI = 110
_AXES_BOX = (0.1, 0.11, 0.97, 0.9)  # left, bottom, right, top: the axes keep this share whatever the legend


def curves_figure(groups: Sequence[GroupCurve], metric: str, title: str, ceiling: float | None = None) -> Any:
    """A matplotlib figure: mean curve and ±1 std band per group, best AULC first.

    The axes have a fixed size (:data:`FIGURE_SIZE`, :data:`_AXES_BOX`); the
    legend sits outside on the right and the saved PNG grows to hold it
    (``bbox_inches="tight"``), so many groups or long labels never squeeze the
    curves. Colours come from :func:`palette`; long labels wrap.
    """
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    crowded = len(groups) > 6
    fig = plt.figure(figsize=FIGURE_SIZE, dpi=FIGURE_DPI)
    left, bottom, right, top = _AXES_BOX
    ax = fig.add_axes((left, bottom, right - left, top - bottom))
    order = sorted(groups, key=lambda g: (-_group_aulc(g), g.label))
    for g, style in zip(order, palette(len(order)), strict=True):
        xs, vals = g.aligned()
        mean, std = vals.mean(axis=0), vals.std(axis=0)
        label = f"{g.label} (AULC {_group_aulc(g):.3f}, n={len({r.seed for r in g.runs})})"
        ax.plot(xs, mean, marker="o", ms=3, label="\n".join(textwrap.wrap(label, 48)) or label, **style)
        ax.fill_between(xs, mean - std, mean + std, alpha=0.08 if crowded else 0.2, color=style["color"], lw=0)
    if ceiling is not None and math.isfinite(ceiling):
        ax.axhline(ceiling, color="black", ls="--", lw=1, label=f"full-data ceiling {ceiling:.3f}")
    ax.set_xlabel("number of labels")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title("\n".join(textwrap.wrap(title, 90)), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False)
    return fig


def save_figure(groups: Sequence[GroupCurve], out: Path, metric: str, title: str,
                ceiling: float | None = None) -> Path:
    """Write :func:`curves_figure` to ``out`` (PNG; the folder is created)."""
    import matplotlib.pyplot as plt

    fig = curves_figure(groups, metric, title, ceiling)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=FIGURE_DPI, bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)
    return out


def plot_family(family: Family, out: Path, metric: str) -> Path:
    """One family's figure: its groups and the full-data ceiling as a dashed line."""
    return save_figure(family.groups, out, metric, f"{family.title}: {metric} (mean ± std over seeds)",
                       family.ceiling)


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
    notes : list of str
        One-line notes on reading the results (e.g. too few seeds for the paired test).
    """

    rows: list[CompareRow]
    families: list[Family]
    pngs: list[Path]
    summary_md: Path
    summary_csv: Path
    html: Path
    warnings: list[str]
    ceilings_trained: int
    notes: list[str] = field(default_factory=list)

    def group_lines(self) -> list[str]:
        """Human-readable list of the groups, family by family."""
        lines = []
        for fam in self.families:
            lines.append(f"{fam.title}:")
            lines.append("  settings: " + "; ".join(f"{k} {v}" for k, v in fam.settings))
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
        ``accuracy``, ``macro_f1`` or (multi-label runs) ``micro_f1``; a loss (``hamming_loss``) is refused.
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

    check_metric(metric)
    if metric in LOWER_IS_BETTER:
        raise ConfigError(f"compare ranks strategies by a metric where higher is better and {metric} is a loss; "
                          f"use --metric micro_f1 or macro_f1 (`al-loop curves --metric {metric}` plots it)")
    if not dbs:
        raise ConfigError("no store given; pass --db FILE (repeat for several)")
    unique = list(dict.fromkeys(str(Path(d).resolve()) for d in dbs))
    out = Path(out)
    _check_out_dir(out)
    groups = group_curves(load_curves(unique, metric, log=_warn))
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
        name = f"curves-{i + 1:02d}-{_slug(data_name(fam.config))}-{_slug(fam.config.learner)}-{tag}.png"
        fam.png = plot_family(fam, out / name, metric)
        pngs.append(fam.png)

    notes = [n for n in (few_seeds_note([r.test for r in rows]),) if n is not None]
    summary_md = out / "summary.md"
    settings_md = "".join(f"\n## {f.title}\n\n" + "".join(f"- {k}: {v}\n" for k, v in f.settings) for f in families)
    summary_md.write_text(f"# {metric}: label-efficiency summary\n\n" + markdown_table(rows)
                          + "".join(f"\nNote: {n}\n" for n in notes)
                          + "\n# Run settings\n" + settings_md, encoding="utf-8")
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
             "paired by seed (two-sided, exact for small seed counts); next to each p is the smallest p its "
             "seed count allows (2/2^n with n seeds).", *notes]
    figures = [ReportFigure(title=f.title, png=f.png, caption=", ".join(g.label for g in f.groups))
               for f in families if f.png is not None]
    sections = [ReportSection(title=f.title, settings=f.settings,
                              groups=[f"{g.label}: {len(g.runs)} run(s), seeds {sorted({r.seed for r in g.runs})}"
                                      for g in f.groups]) for f in families]
    html = write_report(out / "report.html", f"al-loop compare: {metric}", figures, TABLE_HEADERS,
                        [format_row(r) for r in rows], sections, intro, [*notes, *warnings])
    return CompareResult(rows=rows, families=families, pngs=pngs, summary_md=summary_md, summary_csv=summary_csv,
                         html=html, warnings=warnings, ceilings_trained=trained, notes=notes)


__all__ = ["CeilingCache", "CompareResult", "CompareRow", "Family", "PairedTest", "build_rows", "ceiling_key",
           "compare", "curves_figure", "data_name", "default_cache_path", "family_key", "family_table", "family_settings",
           "few_seeds_note", "labels_to_target", "min_wilcoxon_p", "paired_wilcoxon", "palette", "per_seed_aulc",
           "save_figure", "seeds_needed", "split_families", "train_ceiling"]
