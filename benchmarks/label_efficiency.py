"""Label-efficiency benchmark: every strategy x seeds on five dataset/learner settings.

    python benchmarks/label_efficiency.py            # default: all settings, all strategies, 5 seeds
    python benchmarks/label_efficiency.py --quick    # digits + logreg, 6 strategies, 3 seeds (< 3 min)
    python benchmarks/label_efficiency.py --settings digits-logreg --strategies random margin --seeds 3

Each (setting, strategy, seed) is one run in its own SQLite store under
``benchmarks/results/<setting>/runs/`` (runs execute in ``--jobs`` processes);
``al_loop.compare`` then writes per setting ``curves-*.png``, ``summary.md``,
``summary.csv`` and ``report.html``, and this script prints (and writes to
``benchmarks/results/summary.md`` for the default run, ``summary-<settings>.md``
otherwise) one table: per setting the best strategy by
mean AULC, its AULC against random, and whether its mean curve ever falls
below random's at any budget.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETTINGS: dict[str, dict] = {
    "digits-logreg": dict(dataset="digits", learner="logreg", init=20, batch=10, rounds=10),
    "digits-mlp": dict(dataset="digits", learner="mlp", init=20, batch=10, rounds=10),
    "fashion-logreg-pca50": dict(dataset="fashion-mnist", dataset_params={"limit": 13334, "pca": 50},
                                 learner="logreg", init=20, batch=20, rounds=10),
    "fashion-cnn": dict(dataset="fashion-mnist", dataset_params={"limit": 13334}, learner="cnn", init=20, batch=20,
                        rounds=10),
    # 2,000 TF-IDF terms: same accuracy at 220 labels as 5,000 (0.60 vs 0.61), ceiling 0.74 vs 0.70, 2.5x cheaper
    "text-logreg": dict(dataset="rotten-tomatoes", dataset_params={"max_features": 2000}, learner="logreg", init=20,
                        batch=20, rounds=10),
    # pretrained encoders (issue 15): the same data in an embedding space, a linear learner on top
    "text-minilm-logreg": dict(dataset="rotten-tomatoes", dataset_params={"encoder": "minilm"}, learner="logreg",
                               init=20, batch=20, rounds=10),
    # Fashion-MNIST replicated to RGB and resized to 112 px (EfficientNet-Lite0 runs 4-7x faster than at 224 px on
    # CPU; 28-px sources carry no more detail at 224)
    "fashion-effnet-logreg": dict(dataset="fashion-mnist", dataset_params={"limit": 13334, "encoder": "efficientnet-lite0",
                                                                        "image_size": 112},
                                  learner="logreg", init=20, batch=20, rounds=10),
    # deep Bayesian strategies (issue 17): the MC dropout networks, Bayesian strategies against entropy and random
    "digits-mlp-bayes": dict(dataset="digits", learner="mlp_dropout", init=20, batch=10, rounds=10,
                             strategies=["random", "entropy", "margin", "bald", "batchbald", "variation_ratio",
                                         "mean_std"]),
    "fashion-cnn-bayes": dict(dataset="fashion-mnist", dataset_params={"limit": 13334}, learner="cnn_dropout",
                              init=20, batch=20, rounds=10, strategies=["random", "entropy", "bald", "batchbald"]),
}
# prism needs user-given exemplars (--query-ids), so it has no place in an unattended benchmark
EXCLUDED = {"prism": "needs --query-ids/--private-ids exemplars"}
# NAME@INIT: strategy NAME with the seed batch chosen by INIT instead of at random (cold start)
COLD_START = ["switch@typiclust", "margin@typiclust"]
QUICK_STRATEGIES = ["random", "entropy", "margin", "kcenter", "typiclust", "switch", "switch@typiclust"]


def _one(setting: str, strategy: str, seed: int, out: str) -> tuple[str, str, int, float, str | None]:
    # One thread per run: --jobs processes share the cores. The environment variable alone is not enough:
    # forked workers inherit OpenMP/OpenBLAS pools already started in the parent with one thread per core,
    # and k-means ran ~3x slower oversubscribed (2.7 s vs 1.0 s for 200 clusters on 10k x 50 points).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    from al_loop import api

    spec = dict(SETTINGS[setting])
    name, _, init = strategy.partition("@")
    t0 = time.perf_counter()
    db = Path(out) / "runs" / f"{strategy}-s{seed}.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    try:
        with threadpool_limits(1):
            api.simulate(str(db), dataset=spec["dataset"], strategies=[name], seeds=[seed], rounds=spec["rounds"],
                         batch=spec["batch"], init=spec["init"], learner=spec["learner"],
                         dataset_params=spec.get("dataset_params", {}),
                         options={"init_strategy": init} if init else None)
        return setting, strategy, seed, time.perf_counter() - t0, None
    except Exception as exc:  # reported in the table, the benchmark goes on
        return setting, strategy, seed, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"


def _strategies_of(setting: str, default: list[str], asked: list[str] | None) -> list[str]:
    """The strategies a setting runs: its own list, else ``default``; those its learner cannot serve are left out
    (the Bayesian strategies need a learner with a posterior)."""
    from al_loop import api
    from al_loop.registry import STRATEGIES

    spec = SETTINGS[setting]
    names = asked or spec.get("strategies") or default
    capabilities = api.build_learner(spec["learner"], None).capabilities  # type: ignore[arg-type]
    def posterior_ok(name: str) -> bool:
        needs = STRATEGIES.get(name.partition("@")[0]).requires
        return not isinstance(needs, frozenset) or "posterior" not in needs or "posterior" in capabilities

    return [n for n in names if posterior_ok(n)]


def _finished(db: Path) -> bool:
    """Only runs that reached their end are compared (an interrupted benchmark leaves partial stores)."""
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT count(*) FROM runs WHERE status != 'running'").fetchone()[0] > 0
    except sqlite3.DatabaseError:
        return False
    finally:
        con.close()


def _warm_cache(setting: str) -> float | None:
    """Embed an encoder setting's data once, in this process, before the runs (which then read the cache).

    Returns the seconds it took (a cache hit takes well under one), None for a setting without an encoder.
    """
    spec = SETTINGS[setting]
    if "encoder" not in spec.get("dataset_params", {}):
        return None
    from al_loop.datasets import load_dataset

    t0 = time.perf_counter()
    dataset = load_dataset(spec["dataset"], **spec["dataset_params"])
    secs = time.perf_counter() - t0
    print(f"  {setting}: {len(dataset.X)} items embedded by {spec['dataset_params']['encoder']} "
          f"({dataset.X.shape[1]}-d) in {secs:.1f} s (cache: a hit takes < 1 s)", flush=True)
    return secs


def _seed_wins(best_dbs: list[str], random_dbs: list[str]) -> str:
    """``k/n``: seeds on which the best strategy's AULC beats random's (paired by seed)."""
    from al_loop.reports import load_curves, normalised_aulc

    def by_seed(dbs: list[str]) -> dict[int, float]:
        return {c.seed: normalised_aulc(c.n_labels, c.values) for c in load_curves(dbs)}

    b, r = by_seed(best_dbs), by_seed(random_dbs)
    common = sorted(set(b) & set(r))
    return f"{sum(b[s] > r[s] for s in common)}/{len(common)}"


def mean_round_seconds(dbs: list[str]) -> float:
    """Mean train + select seconds per round over the runs in ``dbs``."""
    import sqlite3

    total, count = 0.0, 0
    for db in dbs:
        con = sqlite3.connect(db)
        try:
            for t, s in con.execute("SELECT train_seconds, select_seconds FROM metrics"):
                total += float(t or 0) + float(s or 0)
                count += 1
        finally:
            con.close()
    return total / count if count else float("nan")


def below_random(xs, best, rand) -> list[int]:
    """Budgets (label counts) where the best strategy's mean is below random's mean."""
    return [int(x) for x, b, r in zip(xs, best, rand, strict=False) if b < r - 1e-12]


def main() -> int:
    from al_loop.registry import STRATEGIES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--settings", nargs="*", default=None)
    parser.add_argument("--strategies", nargs="*", default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--no-ceiling", action="store_true")
    parser.add_argument("--report-only", action="store_true",
                        help="skip the runs; compare the finished stores already in --out")
    args = parser.parse_args()

    settings = args.settings or (["digits-logreg"] if args.quick else list(SETTINGS))
    strategies = args.strategies or (QUICK_STRATEGIES if args.quick else
                                     [s for s in STRATEGIES.names() if s not in EXCLUDED] + COLD_START)
    seeds = args.seeds or (3 if args.quick else 5)
    if args.quick:
        for name in settings:
            SETTINGS[name] = {**SETTINGS[name], "rounds": 6}
    out = Path(args.out)
    encode_s = {s: _warm_cache(s) for s in settings if not args.report_only}
    jobs = [(s, st, seed, str(out / s)) for s in settings for st in _strategies_of(s, strategies, args.strategies)
            for seed in range(seeds)]
    n_strategies = len({job[1] for job in jobs})
    print(f"{len(jobs)} runs: {len(settings)} setting(s) x {n_strategies} strategies x {seeds} seeds, "
          f"{args.jobs} process(es)", flush=True)
    t0 = time.perf_counter()
    failures = []
    if args.report_only:
        jobs = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(_one, *job) for job in jobs]
        for i, fut in enumerate(as_completed(futures), 1):
            setting, strategy, seed, secs, err = fut.result()
            if err:
                failures.append((setting, strategy, seed, err))
            if i % 10 == 0 or err:
                print(f"  [{i}/{len(jobs)}] {setting} {strategy} s{seed} {secs:.1f}s {err or ''}", flush=True)
    wall = time.perf_counter() - t0

    import numpy as np

    from al_loop.compare import compare
    from al_loop.reports import group_curves, load_curves

    lines = ["| setting | best strategy (AULC) | random AULC | best - random | Wilcoxon p | budgets where best < random "
             "| seeds best > random | encode s | round s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for setting in settings:
        dbs = sorted(str(p) for p in (out / setting / "runs").glob("*.sqlite") if _finished(p))
        if not dbs:
            continue
        result = compare(dbs, out / setting, baseline="random", ceiling=not args.no_ceiling,
                         cache_path=out / "ceilings.json")
        rows = {r.strategy: r for r in result.rows}
        if "random" not in rows:
            continue
        best = max((r for r in result.rows if r.strategy != "random"), key=lambda r: r.aulc_mean, default=None)
        if best is None:
            continue
        # curves by the stores of each compared row: compare's group labels are per family, not global
        xs, rv = group_curves(load_curves(rows["random"].dbs))[0].aligned()
        xb, bv = group_curves(load_curves(best.dbs))[0].aligned()
        common = sorted(set(xs.tolist()) & set(xb.tolist()))
        rmean = np.interp(common, xs, rv.mean(0))
        bmean = np.interp(common, xb, bv.mean(0))
        below = below_random(common, bmean, rmean)
        p = best.test.p_value if best.test is not None and best.test.p_value is not None else float("nan")
        wins = _seed_wins(best.dbs, rows["random"].dbs)
        enc = encode_s.get(setting) if not args.report_only else None
        lines.append(f"| {setting} | {best.group} ({best.aulc_mean:.4f}) | {rows['random'].aulc_mean:.4f} | "
                     f"{best.aulc_mean - rows['random'].aulc_mean:+.4f} | {p:.3g} | {below or 'none'} | "
                     f"{wins} | {'-' if enc is None else f'{enc:.0f}'} | {mean_round_seconds(best.dbs):.2f} |")
    table = "\n".join(lines)
    print(table)
    print(f"wall time {wall / 60:.1f} min for the runs; {len(failures)} failed run(s)")
    for f in failures:
        print("  failed:", *f)
    total = time.perf_counter() - t0
    print(f"wall time {total / 60:.1f} min in all (runs, ceilings, plots, reports)")
    out.mkdir(parents=True, exist_ok=True)
    name = "summary.md" if settings == list(SETTINGS) and not args.quick else "summary-" + "-".join(settings) + ".md"
    (out / name).write_text(table + f"\n\nruns: {len(jobs)}, wall time {wall / 60:.1f} min for the runs, "
                            f"{total / 60:.1f} min in all; failures: {len(failures)}\n")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
