"""Deep ensembles (Lakshminarayanan et al. 2017): M members, each a posterior sample.

Every member is a fresh learner from the same factory, fitted on the same
labels with its own seed (random initialisation and shuffling; no bagging,
which the paper found to hurt). The ensemble's probabilities are the members'
mean; its posterior samples are the members' probabilities, one per member,
so ``K = M`` whatever the strategy asks. Embeddings are the first member's.
Beluch et al. (2018) found such ensembles better calibrated for active
learning than MC dropout, at M times the training cost.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from al_loop.errors import ConfigError
from al_loop.learners.base import Learner
from al_loop.pool import Pool


def member_seeds(seed: int, members: int) -> list[int]:
    """The fit seed of each member, from the round's seed (distinct, reproducible)."""
    return [int(s) for s in np.random.SeedSequence([int(seed), 0xE45]).generate_state(members)]


class EnsembleLearner(Learner):
    """``members`` learners from ``make_member``; capabilities ``proba``, ``posterior`` and the member's ``embed``.

    Parameters
    ----------
    make_member : callable
        ``make_member() -> Learner``, a fresh unfitted learner each call.
    members : int
        ``M >= 2``.
    name : str
        The registry name, for messages.
    """

    def __init__(self, make_member: Callable[[], Learner], members: int = 5, name: str = "") -> None:
        if members < 2:
            raise ConfigError(f"an ensemble needs at least 2 members, got {members}")
        self.make_member = make_member
        self.members = int(members)
        self.name = name
        self.members_: list[Learner] = []

    @property
    def capabilities(self) -> frozenset[str]:
        caps = frozenset({"proba", "posterior"})
        return caps | (frozenset({"embed"}) & self.make_member().capabilities)

    def check_pool(self, pool: Pool) -> None:
        self.make_member().check_pool(pool)

    def fit(self, pool: Pool, ids: np.ndarray, labels: np.ndarray, seed: int) -> None:
        fitted = []
        for member_seed in member_seeds(seed, self.members):
            member = self.make_member()
            member.fit(pool, ids, labels, member_seed)
            fitted.append(member)
        self.members_ = fitted

    def _fitted(self) -> list[Learner]:
        if not self.members_:
            raise RuntimeError("the learner is not fitted yet; call fit first")
        return self.members_

    def predict_proba(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        return np.mean([m.predict_proba(pool, ids) for m in self._fitted()], axis=0)

    def posterior_proba(self, pool: Pool, ids: np.ndarray, samples: int, seed: int) -> np.ndarray:
        """Each member's probabilities, shape (len(ids), M, C), float32 (``samples`` and ``seed`` unused)."""
        del samples, seed
        return np.stack([np.asarray(m.predict_proba(pool, ids), dtype=np.float32) for m in self._fitted()], axis=1)

    def embed(self, pool: Pool, ids: np.ndarray) -> np.ndarray:
        return self._fitted()[0].embed(pool, ids)
