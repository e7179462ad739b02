"""Use al-loop from Python with your own model and your own strategy.

Run:  .venv/bin/python examples/custom_strategy.py [--db out.sqlite]

It registers a random-forest learner and an "entropy x density" strategy from
outside the package, simulates both against random sampling on the wine
dataset, and prints the summary table.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from al_loop import LEARNERS, STRATEGIES, Strategy, api, top_k
from al_loop.learners import SklearnLearner
from al_loop.reports import group_curves, load_curves, summary_rows


@LEARNERS.register("forest")
def make_forest(pool: object = None) -> SklearnLearner:
    # random_state is set from the run's seed by SklearnLearner at every fit
    return SklearnLearner(RandomForestClassifier(n_estimators=100))


@STRATEGIES.register("entropy_density")
@dataclass
class EntropyDensity(Strategy):
    """Entropy weighted by closeness to the other unlabeled items (information density)."""

    name = "entropy_density"
    requires = frozenset({"proba", "embed"})
    beta: float = 1.0

    def _select(self, view, ctx, budget):
        ids = ctx.unlabeled_ids
        p = view.proba(ids)
        entropy = -(p * np.log(np.clip(p, 1e-12, 1))).sum(axis=1)
        X = view.embed(ids)
        X = (X - X.mean(0)) / (X.std(0) + 1e-9)
        sim = 1.0 / (1.0 + ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))  # small pools only
        density = sim.mean(axis=1) ** self.beta
        return top_k(ids, entropy * density, budget)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="custom-example.sqlite")
    args = parser.parse_args()
    api.simulate(args.db, dataset="wine", strategies=["random", "entropy_density"], seeds=[0, 1], rounds=5,
                 batch=5, init=6, learner="forest", strategy_params={"entropy_density": {"beta": 1.0}})
    for row in summary_rows(group_curves(load_curves([args.db]))):
        print(f"{row['strategy']:18s} final {row['final_mean']:.3f}  AULC {row['aulc_mean']:.3f}")


if __name__ == "__main__":
    main()
