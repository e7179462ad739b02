"""Stopping without validation labels: labels each rule saves and accuracy it gives up (issue 17).

Every run goes to the end with ``track_stopping`` (the signals are recorded
every round, the selections are those of a run without it); then each rule is
applied to the recorded signals (:func:`al_loop.stopping.firing_round`, the
same function the controller uses, tested equal to a run that stops by the
rule in ``tests/test_stopping.py``). Prints one row per setting x rule:
runs where it fired, median labels at the stop against the end, labels saved,
accuracy at the stop against the end (mean over runs; a run where the rule
never fires counts as stopping at the end).

Usage: ``python benchmarks/stopping.py [--seeds 3] [--out benchmarks/results/stopping.md]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from al_loop import api
from al_loop.stopping import Signals, firing_round, parse_rule
from al_loop.store import Store

SETTINGS = {
    # name: (dataset, learner, init, batch, rounds)
    "digits-logreg": ("digits", "logreg", 20, 10, 40),
    "breast_cancer-logreg": ("breast_cancer", "logreg", 10, 5, 30),
    "wine-logreg": ("wine", "logreg", 6, 3, 25),
}
STRATEGIES = ("margin", "entropy", "random")
RULES = ("stable-predictions", "stable-predictions:kappa=0.95", "max-uncertainty:threshold=0.5",
         "overall-uncertainty:threshold=0.1", "overall-uncertainty:threshold=0.05", "classification-change",
         "classification-change:threshold=0.01")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    lines = ["| setting | rule | fired | labels at stop / end (median) | labels saved | accuracy at stop | "
             "accuracy at end | accuracy lost |", "|---|---|---|---|---|---|---|---|"]
    t0 = time.perf_counter()
    for name, (dataset, learner, init, batch, rounds) in SETTINGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            db = str(Path(tmp) / "s.sqlite")
            ids = api.simulate(db, dataset=dataset, strategies=list(STRATEGIES), seeds=list(range(args.seeds)),
                               rounds=rounds, batch=batch, init=init, learner=learner,
                               options={"track_stopping": True})
            store = Store(db, readonly=True)
            runs = []
            for rid in ids:
                acc = {m.round: (m.n_labels, m.accuracy) for m in store.metrics(rid)}
                runs.append((acc, [Signals.of(r) for r in store.stop_signals(rid)]))
            store.close()
        for spec in RULES:
            rule = parse_rule(spec)
            fired, at_stop, at_end, acc_stop, acc_end = 0, [], [], [], []
            for acc, hist in runs:
                last = max(acc)
                hit = firing_round(rule, hist)
                stop = hit.round if hit is not None else last
                fired += hit is not None
                at_stop.append(acc[stop][0])
                at_end.append(acc[last][0])
                acc_stop.append(acc[stop][1])
                acc_end.append(acc[last][1])
            saved = 1 - np.median(at_stop) / np.median(at_end)
            lines.append(f"| {name} | {rule.spec} | {fired}/{len(runs)} | {np.median(at_stop):.0f} / "
                         f"{np.median(at_end):.0f} | {saved:.0%} | {np.mean(acc_stop):.4f} | {np.mean(acc_end):.4f} | "
                         f"{np.mean(acc_end) - np.mean(acc_stop):+.4f} |")
        print("\n".join(lines[-len(RULES):]), flush=True)
    text = "\n".join(lines) + f"\n\n{args.seeds} seed(s) x {', '.join(STRATEGIES)}; {time.perf_counter() - t0:.0f} s\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
