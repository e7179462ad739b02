"""Benchmark: pool scoring and two-round k-center on Dask, pool generated on the workers.

    python benchmarks/distributed.py            # N = 10,000,000 x 64 float32
    python benchmarks/distributed.py --quick    # N = 1,000,000

The pool is never whole in the driver: chunk ``i`` is drawn on a worker from
``default_rng([seed, 0, i])`` (:func:`al_loop.distributed.synthetic_pool`).
Phases, each timed separately on the same LocalCluster:

1. scoring: a linear softmax model (64 -> 10, weights shipped once in the
   graph) gives probabilities per chunk, entropy per row, exact top-b tree;
2. two-round k-center (GreeDi): random partitions of ``--partition-rows``
   rows, greedy k-center per partition seeded with the labeled set, then on
   the union of the partial solutions.

Both phases regenerate the chunks (nothing is persisted), so each time
includes drawing the data. Reports the wall time per phase, the peak RSS of
every worker process (``resource.getrusage`` run on the workers) and the
driver's peak RSS, as one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

# this file is named like the `distributed` package: keep its folder off the import path
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from al_loop.distributed import make_client, synthetic_pool, two_round_kcenter, uncertainty_top_k  # noqa: E402
from al_loop.learners.base import Learner  # noqa: E402
from al_loop.pool import Pool  # noqa: E402


class LinearSoftmax(Learner):
    """``softmax(X W + c)``: a fitted linear model (no training in the benchmark)."""

    def __init__(self, W: np.ndarray, c: np.ndarray) -> None:
        self.W = np.asarray(W, dtype=np.float32)
        self.c = np.asarray(c, dtype=np.float32)

    def fit(self, pool: Pool, ids: np.ndarray, labels: np.ndarray, seed: int) -> None:
        pass

    def predict_proba(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        z = np.asarray(pool.features(ids), dtype=np.float32) @ self.W + self.c
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z, dtype=np.float64)
        return e / e.sum(axis=1, keepdims=True)


def peak_rss_mib() -> float:
    """Peak resident set size of the calling process, MiB (Linux: ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N = 1,000,000 instead of 10,000,000")
    ap.add_argument("--n", type=int, default=None, help="pool size (overrides --quick)")
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk-rows", type=int, default=250_000)
    ap.add_argument("--partition-rows", type=int, default=262_144)
    ap.add_argument("--batch", type=int, default=1000, help="top-b of the scoring phase")
    ap.add_argument("--k", type=int, default=100, help="k of the k-center phase")
    ap.add_argument("--labeled", type=int, default=100, help="labeled ids seeded in every partition")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-kcenter", action="store_true")
    args = ap.parse_args()
    n = args.n or (1_000_000 if args.quick else 10_000_000)
    rng = np.random.default_rng(args.seed)
    labeled = np.sort(rng.choice(n, size=args.labeled, replace=False)).astype(np.int64)
    model = LinearSoftmax(rng.normal(scale=0.3, size=(args.d, args.classes)), rng.normal(size=args.classes))
    result: dict[str, object] = {"n": n, "d": args.d, "chunk_rows": args.chunk_rows, "workers": args.workers,
                                 "batch": args.batch, "k": args.k, "labeled": args.labeled,
                                 "driver_rss_start_mib": round(current_rss_mib(), 1)}
    t0 = time.perf_counter()
    with make_client(f"local:{args.workers}") as runner:
        result["cluster_start_s"] = round(time.perf_counter() - t0, 2)
        pool = synthetic_pool(n, args.d, args.classes, chunk_rows=args.chunk_rows, seed=args.seed)
        result["chunks"] = pool.n_chunks
        t = time.perf_counter()
        sel = uncertainty_top_k(runner, pool, model, "entropy", args.batch, exclude_ids=labeled)
        result["scoring_s"] = round(time.perf_counter() - t, 2)
        result["scoring_top_score"] = float(sel.scores[0])
        result["scoring_rows_per_s"] = round(n / result["scoring_s"])  # type: ignore[operator]
        if not args.skip_kcenter:
            t = time.perf_counter()
            kc = two_round_kcenter(runner, pool.X, pool.ids, args.k, np.random.default_rng([args.seed, 1]),
                                   labeled_ids=labeled, exclude_ids=labeled, partition_rows=args.partition_rows)
            result["kcenter_s"] = round(time.perf_counter() - t, 2)
            result["kcenter_partitions"] = kc.info["partitions"]
            result["kcenter_first_distance"] = float(kc.scores[0])
            result["kcenter_last_distance"] = float(kc.scores[-1])
        worker_peaks = runner.run_on_workers(peak_rss_mib)
        result["worker_peak_rss_mib"] = sorted(round(v, 1) for v in worker_peaks.values())
    result["driver_peak_rss_mib"] = round(peak_rss_mib(), 1)
    result["pool_bytes_mib"] = round(n * args.d * 4 / 2**20, 1)
    result["total_s"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
