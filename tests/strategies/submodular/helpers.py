"""Random small instances of every submodular function, for the property tests."""

from __future__ import annotations

import numpy as np

from strategies.submodular import build_function
from strategies.submodular.base import SetFunction

#: functions the papers prove monotone submodular for s >= 0 and the defaults used here
MONOTONE_SUBMODULAR = ("fl", "gc", "flvmi", "flqmi", "gcmi", "com", "flcg", "flcmi")
#: log-det and graph-cut CG: submodular, not monotone
SUBMODULAR = MONOTONE_SUBMODULAR + ("logdet", "logdetcg", "gccg")
ALL = SUBMODULAR + ("logdetmi", "logdetcmi")


def instance(name: str, seed: int, n: int = 9, d: int = 4, kernel: str = "dense", **kw: object) -> SetFunction:
    """A function ``name`` on ``n`` random non-negative points (cosine kernel), |Q| = 3, |P| = 2."""
    rng = np.random.default_rng(seed)
    X, Xq, Xp = rng.random((n, d)), rng.random((3, d)), rng.random((2, d))
    params = {"eta": 0.8, "nu": 0.7, "lam": 0.4, "reg": 0.5, "n_neighbors": 4}
    params.update(kw)
    return build_function(name, X, Xq, Xp, kernel=kernel, **params)  # type: ignore[arg-type]
