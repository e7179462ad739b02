"""SIMILAR: the contract suite, the pure Q/P builder, and rare-class targeting on digits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from al_loop.errors import ConfigError
from al_loop.learners import SklearnLearner
from al_loop.pool import Pool
from al_loop.view import ModelView
from strategies.similar import Similar, effective_mode, rare_classes, similar_sets
from strategies.uncertainty import EntropySampling, RandomSampling
from tests.contracts.strategy_contract import StrategyContract, make_context


class TestSimilar(StrategyContract):
    def make_strategy(self):
        return Similar()


class TestSimilarEmbedSCMI(StrategyContract):
    """Penultimate features, conditional MI with the labeled set as P."""

    def make_strategy(self):
        return Similar(mode="scmi", avoid="labeled", embedding="embed", function="logdet", eta=0.9)


def test_requires_depend_on_the_embedding() -> None:
    assert "grad" in Similar().requires
    assert "grad" not in Similar(embedding="embed").requires
    Similar(embedding="embed").check_learner(frozenset({"proba", "embed"}))
    with pytest.raises(ConfigError, match="needs learner capability"):
        Similar().check_learner(frozenset({"proba", "embed"}))


def test_rare_classes_by_share_and_fallback() -> None:
    labels = np.array([0] + [1] * 9 + [2] * 10)
    assert rare_classes(labels, 4).tolist() == [0]  # share 0.05 < 0.5/4; class 3 unseen
    assert rare_classes(np.array([0, 0, 1, 1, 2]), 3).tolist() == [2]  # none below 1/6 -> least frequent
    assert rare_classes(np.zeros(0, dtype=np.int64), 3).size == 0


def test_similar_sets_by_hand() -> None:
    ids, labels = np.array([10, 20, 30, 40, 50]), np.array([0, 1, 1, 1, 1])
    q, p = similar_sets(ids, labels, 2, np.array([7, 3]), target="rare", avoid="none", rare_share=0.3)
    assert q.tolist() == [10] and p.size == 0
    q, p = similar_sets(ids, labels, 2, np.array([7, 3]), target="none", avoid="labeled+ood")
    assert q.size == 0 and p.tolist() == [3, 7, 10, 20, 30, 40, 50]
    q, p = similar_sets(ids, labels, 2, None, avoid="ood")
    assert p.size == 0
    with pytest.raises(ConfigError, match="avoid"):
        similar_sets(ids, labels, 2, None, avoid="everything")


def test_effective_mode_drops_missing_sets() -> None:
    assert effective_mode("scmi", 3, 2) == "scmi"
    assert effective_mode("scmi", 3, 0) == "smi"
    assert effective_mode("scg", 0, 0) == "base"
    with pytest.raises(ConfigError, match="mode"):
        effective_mode("cmi", 1, 1)


def test_ood_avoidance_with_private_ids() -> None:
    X, y = load_digits(return_X_y=True)
    pool = Pool(X=X[:400].astype(float), ids=3 + 2 * np.arange(400), classes=tuple(map(str, range(10))), y=y[:400])
    labeled = pool.ids[np.arange(0, 400, 8)]
    learner = SklearnLearner(LogisticRegression(max_iter=300))
    learner.fit(pool, labeled, pool.hidden_labels(labeled), seed=0)
    view = ModelView(pool, learner)
    # annotators marked five 7s out of distribution: SCG with P = private ids steers away from 7s
    unl = np.setdiff1d(pool.ids, labeled)
    private = unl[pool.hidden_labels(unl) == 7][:5]
    ctx = make_context(pool, labeled, private_ids=private)
    sel = Similar(mode="scg", avoid="ood", function="fl", embedding="embed").select(view, ctx, 20)
    assert sel.info["mode"] == "scg" and sel.info["function"] == "flcg"
    base = Similar(mode="scg", avoid="none", function="fl", embedding="embed").select(view, ctx, 20)
    assert base.info["mode"] == "base"
    assert (pool.hidden_labels(sel.ids) == 7).sum() < max(1, (pool.hidden_labels(base.ids) == 7).sum())


def _rare_digits(seed: int) -> tuple[Pool, np.ndarray]:
    """Digits with classes 0 and 1 cut to 38 items each (~5% of the pool together)."""
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), 38, replace=False) if c < 2
                                   else np.flatnonzero(y == c) for c in range(10)]))
    pool = Pool(X=X[keep].astype(float), ids=5 + 3 * np.arange(len(keep)), classes=tuple(map(str, range(10))),
                y=y[keep], name="digits-rare")
    seed_set = np.concatenate([rng.choice(pool.ids[pool.y == c], 2 if c < 2 else 3, replace=False)
                               for c in range(10)])
    return pool, seed_set


def test_rare_class_targeting_beats_entropy_and_random() -> None:
    """Over 3 seeds and a batch of 20, SIMILAR (FLQMI on gradient embeddings, Q = labeled
    rare-class items) picks on average at least 5 more rare items per round than entropy
    and than random (which expect ~1), and more in every seed."""
    picks: dict[str, list[int]] = {"similar": [], "entropy": [], "random": []}
    for seed in range(3):
        pool, labeled = _rare_digits(seed)
        assert 0.04 < np.isin(pool.y, [0, 1]).mean() < 0.06
        learner = SklearnLearner(LogisticRegression(max_iter=300))
        learner.fit(pool, labeled, pool.hidden_labels(labeled), seed=seed)
        view = ModelView(pool, learner)
        for name, strat in (("similar", Similar()), ("entropy", EntropySampling()), ("random", RandomSampling())):
            sel = strat.select(view, make_context(pool, labeled, seed=seed), 20)
            picks[name].append(int(np.isin(pool.hidden_labels(sel.ids), [0, 1]).sum()))
    sim, ent, rnd = (np.array(picks[k]) for k in ("similar", "entropy", "random"))
    assert sim.mean() >= max(ent.mean(), rnd.mean()) + 5, picks
    assert (sim > ent).all() and (sim > rnd).all(), picks
