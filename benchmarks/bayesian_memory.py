"""BALD and BatchBALD on a pool of 10^6 items: time and peak memory of the streamed scoring.

    python benchmarks/bayesian_memory.py                       # 1,000,000 items, 10 classes, 20 passes
    python benchmarks/bayesian_memory.py --n 100000 --device cuda

A synthetic pool (``--features`` Gaussian features, 10 classes, float32) and
an ``mlp_dropout`` learner fitted on 200 labels; every row runs in its own
process, so each peak is its own. Rows:

- ``bald, streamed``: what ``--strategy bald`` does, :meth:`ModelView.posterior_scores`
  (chunks of 8,192 items x K passes x C classes), then the top 100;
- ``bald, whole tensor (reference)``: the (n, K, C) samples held at once, then
  the same score, the way a library that collects every MC prediction before
  scoring works (baal's ``predict_on_dataset`` followed by ``BALD.compute_score``);
- ``batchbald, streamed``: ``--strategy batchbald`` with its defaults
  (2,000 candidates by BALD, 10,000 configurations), batch 10.

Peak = the process's resident high-water mark during the row (``VmHWM``,
reset through ``/proc/self/clear_refs`` just before) minus its resident size
just before: memory beyond the pool and the model. The objective column
compares each row's top 100 with the reference's.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _row(mode: str, n: int, classes: int, passes: int, features: int, device: str) -> dict:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    import strategies  # noqa: F401
    from al_loop.learners.mc_dropout import MCDropoutLearner, mlp_dropout
    from al_loop.learners.torch_learner import TorchConfig
    from al_loop.pool import Pool
    from al_loop.strategy import top_k
    from al_loop.view import ModelView
    from strategies._bayes_scores import bald_scores
    from strategies.bayesian import BatchBALD
    from tests.contracts.strategy_contract import make_context

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1.0, size=(classes, features)).astype(np.float32)
    y = rng.integers(0, classes, size=n)
    X = centres[y] + rng.normal(0, 1.5, size=(n, features)).astype(np.float32)
    pool = Pool(X=X, ids=np.arange(n, dtype=np.int64), classes=tuple(str(c) for c in range(classes)),
                y=y.astype(np.int64), kind="tabular", name="synthetic")
    labeled = np.arange(0, n, n // 200)[:200]
    learner = MCDropoutLearner(mlp_dropout, TorchConfig(epochs=30, lr=2e-3, batch_size=32, device=device))
    learner.fit(pool, labeled, pool.y[labeled], seed=0)
    ctx = make_context(pool, labeled)
    seed = 12345
    import gc

    gc.collect()
    base = _status("VmRSS")
    _reset_peak()
    start = time.perf_counter()
    if mode == "stream":
        scores = ModelView(pool, learner).posterior_scores("bald", bald_scores, ctx.unlabeled_ids, passes, seed)
        top = top_k(ctx.unlabeled_ids, scores, 100).ids
    elif mode == "whole":
        P = learner.posterior_proba(pool, ctx.unlabeled_ids, passes, seed)
        scores = bald_scores(P)
        top = top_k(ctx.unlabeled_ids, scores, 100).ids
    else:
        sel = BatchBALD(passes=passes).select(ModelView(pool, learner), ctx, 10)
        top = sel.ids
    elapsed = time.perf_counter() - start
    peak = _status("VmHWM") - base
    return {"mode": mode, "seconds": elapsed, "peak_bytes": peak, "top": [int(i) for i in top]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        print(json.dumps(_row(args.row, args.n, args.classes, args.passes, args.features, args.device)))
        return 0
    rows = {}
    for mode in ("whole", "stream", "batchbald"):
        out = subprocess.run([sys.executable, __file__, "--row", mode, "--n", str(args.n), "--classes",
                              str(args.classes), "--passes", str(args.passes), "--features", str(args.features),
                              "--device", args.device], capture_output=True, text=True, check=True)
        rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    ref = set(rows["whole"]["top"])
    names = {"whole": "bald, whole tensor (reference)", "stream": "bald, streamed",
             "batchbald": "batchbald (2,000 candidates), batch 10"}
    print(f"n={args.n:,} classes={args.classes} passes={args.passes} features={args.features} "
          f"device={args.device} python={platform.python_version()}")
    print(f"tensor (n, K, C) float32 = {args.n * args.passes * args.classes * 4 / 2**20:,.0f} MiB")
    print("| method | time (s) | peak beyond pool and model (MiB) | objective |")
    print("|---|---|---|---|")
    for mode in ("whole", "stream", "batchbald"):
        row = rows[mode]
        if mode == "batchbald":
            objective = f"{len(ref & set(row['top']))} of its 10 in BALD's top 100"
        else:
            objective = f"top 100 = reference's: {len(ref & set(row['top']))}/100"
        print(f"| {names[mode]} | {row['seconds']:.1f} | {row['peak_bytes'] / 2**20:,.0f} | {objective} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
