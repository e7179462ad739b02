"""Multi-label label efficiency on fashion-canvas (issue 17).

fashion-canvas (``al_loop.canvas``): 4,000 canvases of 2 x 2 Fashion-MNIST
cells, each cell filled with probability 0.5 by an unused training image (at
least one per canvas), labels = the set of the 10 classes shown (1.92 labels
per canvas on average); 3,000 pool, 1,000 test (seeded split). Two learners:
``ovr_logreg`` on 50 PCA features and ``cnn_sigmoid`` on the 56 x 56 pixels.
Strategies: random, binary-relevance uncertainty (mean, max), MMC, CVIRS and
k-center on the learner's embeddings, all from the same random seed batch.

Prints one row per learner x strategy: final micro F1, macro F1, subset
accuracy and Hamming loss at the last round (mean ± std over seeds), the
normalised area under the micro-F1 curve, and the selection time per round;
the random row is the reference timed in the same run.

Usage: ``python benchmarks/multilabel.py [--seeds 3] [--out benchmarks/results/multilabel.md]``
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from al_loop import api
from al_loop.reports import normalised_aulc
from al_loop.store import Store

SETTINGS = {
    # name: (dataset params, learner, init, batch, rounds)
    "ovr_logreg, pca 50": ({"pca": 50}, "ovr_logreg", 50, 50, 8),
    "cnn_sigmoid, pixels": ({}, "cnn_sigmoid", 50, 50, 8),
}
STRATEGIES = (("random", {}), ("br_uncertainty", {"reduce": "mean"}), ("br_uncertainty", {"reduce": "max"}),
              ("mmc", {}), ("cvirs", {}), ("kcenter", {}))


def _fmt(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    lines = ["| setting | strategy | labels | micro F1 | macro F1 | subset accuracy | Hamming loss | "
             "AULC (micro F1) | select s / round |", "|---|---|---|---|---|---|---|---|---|"]
    t0 = time.perf_counter()
    for name, (params, learner, init, batch, rounds) in SETTINGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            db = str(Path(tmp) / "m.sqlite")
            for strategy, sparams in STRATEGIES:
                ids = api.simulate(db, dataset="fashion-canvas", dataset_params=params, strategies=[strategy],
                                   strategy_params={strategy: sparams} if sparams else None,
                                   seeds=list(range(args.seeds)), rounds=rounds, batch=batch, init=init,
                                   learner=learner)
                store = Store(db, readonly=True)
                rows = [store.metrics(rid) for rid in ids]
                store.close()
                last = [r[-1] for r in rows]
                aulc = [normalised_aulc([m.n_labels for m in r], [m.micro_f1 for m in r]) for r in rows]
                select = [np.mean([m.select_seconds for m in r[:-1]]) for r in rows]
                label = strategy + (f" ({', '.join(f'{k}={v}' for k, v in sparams.items())})" if sparams else "")
                line = (f"| {name} | {label} | {last[0].n_labels} | {_fmt([m.micro_f1 for m in last])} | "
                        f"{_fmt([m.macro_f1 for m in last])} | {_fmt([m.accuracy for m in last])} | "
                        f"{_fmt([m.hamming_loss for m in last])} | {_fmt(aulc)} | {np.mean(select):.3f} |")
                lines.append(line)
                print(line, flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    footer = (f"\n{args.seeds} seeds; {time.perf_counter() - t0:.0f} s in all, peak RSS {peak:.0f} MiB "
              "(the whole process).")
    print(footer)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n" + footer + "\n")


if __name__ == "__main__":
    main()
