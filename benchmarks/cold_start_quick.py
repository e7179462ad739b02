"""Quick cold-start check: random vs entropy vs typiclust vs probcover vs switch.

Run:  .venv/bin/python benchmarks/cold_start_quick.py [--seeds 0 1 2] [--skip-fashion]

1. digits, logistic regression, 20 seed labels, 10 rounds of 10, 3 seeds;
2. if Debian's Fashion-MNIST is installed (/usr/share/datasets/fashion-mnist):
   ``fashion-mnist`` with ``limit=10000``, 20 seed labels, 10 rounds of 20,
   seeds 0 and 1 only (``--fashion-seeds``) to keep it near 6 minutes on two cores.

Each run goes through ``al_loop.api.simulate`` into a temporary SQLite store;
the table comes from ``al_loop.reports.group_curves`` / ``summary_rows`` plus
the mean accuracy at every budget. Not a test: numbers, not assertions.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from al_loop import api
from al_loop.reports import group_curves, load_curves, summary_rows

STRATEGIES = ["random", "entropy", "typiclust", "probcover", "switch"]
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def bench(dataset: str, seeds: list[int], rounds: int, batch: int, init: int, strategies: list[str],
          params: dict[str, dict[str, object]], dataset_params: dict[str, object] | None = None) -> None:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "runs.sqlite")
        api.simulate(db, dataset=dataset, strategies=strategies, seeds=seeds, rounds=rounds, batch=batch,
                     init=init, learner="logreg", strategy_params=params, dataset_params=dataset_params)
        groups = group_curves(load_curves([db]))
    rows = {r["strategy"]: r for r in summary_rows(groups)}
    print(f"\n== {dataset} {dataset_params or ''}: {init} seed labels, {rounds} rounds of {batch}, "
          f"seeds {seeds} ({time.perf_counter() - t0:.0f} s)")
    print(f"{'strategy':12s} {'final acc':>14s} {'AULC':>14s}")
    for g in groups:
        r = rows[g.label]
        print(f"{g.label:12s} {r['final_mean']:.3f} ± {r['final_std']:.3f}  {r['aulc_mean']:.3f} ± {r['aulc_std']:.3f}")
    xs = groups[0].aligned()[0]
    print("mean accuracy per budget:")
    print(f"{'labels':12s} " + " ".join(f"{int(x):>6d}" for x in xs))
    random_mean = next((g.aligned()[1].mean(axis=0) for g in groups if g.label == "random"), None)
    for g in groups:
        mean = g.aligned()[1].mean(axis=0)
        mark = ""
        if random_mean is not None and g.label != "random":
            below = int(np.sum(mean < random_mean - 1e-12))
            mark = f"  (below random at {below}/{len(mean)} budgets)"
        print(f"{g.label:12s} " + " ".join(f"{v:6.3f}" for v in mean) + mark)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fashion-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--strategies", nargs="+", default=STRATEGIES)
    parser.add_argument("--params", default="{}", help='JSON {"strategy": {"key": value}}')
    parser.add_argument("--skip-digits", action="store_true")
    parser.add_argument("--skip-fashion", action="store_true")
    args = parser.parse_args()
    params = json.loads(args.params)
    if not args.skip_digits:
        bench("digits", args.seeds, rounds=10, batch=10, init=20, strategies=args.strategies, params=params)
    if args.skip_fashion:
        return
    if not FASHION_DIR.exists():
        print(f"\n(Fashion-MNIST is not installed at {FASHION_DIR}; skipped)")
        return
    bench("fashion-mnist", args.fashion_seeds, rounds=10, batch=20, init=20,
          strategies=args.strategies, params=params, dataset_params={"limit": 10000})


if __name__ == "__main__":
    main()
