"""Learners with a posterior: consistent MC dropout and deep ensembles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from al_loop.errors import ConfigError
from al_loop.learners.ensemble import EnsembleLearner, member_seeds
from al_loop.learners.mc_dropout import (
    ConsistentDropout,
    MCDropoutLearner,
    _sampled_logits,
    cnn_dropout,
    mlp_dropout,
)
from al_loop.learners.torch_learner import TorchConfig, TorchLearner, mlp
from al_loop.registry import LEARNERS
from tests.contracts.strategy_contract import digits_pool

FAST = TorchConfig(epochs=8, lr=2e-3, batch_size=32)


@pytest.fixture(scope="module")
def fitted() -> tuple:
    pool = digits_pool(240)
    labeled = pool.ids[::6]
    learner = MCDropoutLearner(mlp_dropout, FAST, name="mlp_dropout")
    learner.fit(pool, labeled, pool.hidden_labels(labeled), seed=3)
    return pool, learner


def test_samples_are_probabilities_and_differ_between_passes(fitted) -> None:
    pool, learner = fitted
    P = learner.posterior_proba(pool, pool.ids[:50], 12, seed=1)
    assert P.shape == (50, 12, 10) and P.dtype == np.float32
    np.testing.assert_allclose(P.sum(axis=2), 1.0, atol=1e-5)
    assert np.abs(P[:, 0] - P[:, 1]).max() > 1e-3  # dropout is on at scoring


def test_pass_k_is_one_weight_sample_for_every_item(fitted) -> None:
    # the masks are per pass, not per item: scoring items together or one at a time gives the same samples
    pool, learner = fitted
    ids = pool.ids[:30]
    together = learner.posterior_proba(pool, ids, 6, seed=4)
    alone = np.concatenate([learner.posterior_proba(pool, ids[i:i + 1], 6, seed=4) for i in range(len(ids))])
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_the_batched_passes_equal_passes_run_one_by_one(fitted) -> None:
    pool, learner = fitted
    model = learner.model_
    x = learner._tensor(pool, pool.ids[:20], torch.device("cpu"))
    drops = [m for m in model.modules() if isinstance(m, ConsistentDropout)]
    for j, layer in enumerate(drops):
        layer.begin_sampling(5, 100 + j)
    with torch.no_grad():
        batched = _sampled_logits(model, x, 5).reshape(5, 20, -1)
        masks = []
        for layer in drops:  # the masks the batched call drew
            masks.append(layer._masks.clone())
        one_by_one = []
        for k in range(5):
            h = x
            seen = 0
            for layer in model.features.children():
                h = h * masks[seen][k] if isinstance(layer, ConsistentDropout) else layer(h)
                seen += isinstance(layer, ConsistentDropout)
            one_by_one.append(model.head(h))
    for layer in drops:
        layer.end_sampling()
    np.testing.assert_allclose(batched.numpy(), torch.stack(one_by_one).numpy(), rtol=1e-5, atol=1e-5)


def test_same_seed_same_samples_other_seed_other_samples(fitted) -> None:
    pool, learner = fitted
    a = learner.posterior_proba(pool, pool.ids[:40], 5, seed=7)
    b = learner.posterior_proba(pool, pool.ids[:40], 5, seed=7)
    c = learner.posterior_proba(pool, pool.ids[:40], 5, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_sampling_leaves_the_global_rng_and_the_deterministic_outputs_alone(fitted) -> None:
    pool, learner = fitted
    before_proba = learner.predict_proba(pool, pool.ids[:25])
    state = torch.get_rng_state()
    learner.posterior_proba(pool, pool.ids[:25], 9, seed=2)
    assert torch.equal(state, torch.get_rng_state())
    np.testing.assert_array_equal(before_proba, learner.predict_proba(pool, pool.ids[:25]))
    assert all(m._sampling is None for m in learner.model_.modules() if isinstance(m, ConsistentDropout))


def test_mc_dropout_fit_is_reproducible() -> None:
    pool = digits_pool(120)
    labeled = pool.ids[::4]
    out = []
    for _ in range(2):
        learner = MCDropoutLearner(mlp_dropout, FAST)
        learner.fit(pool, labeled, pool.hidden_labels(labeled), seed=5)
        out.append(learner.posterior_proba(pool, pool.ids, 4, seed=1))
    np.testing.assert_array_equal(out[0], out[1])


def test_a_network_without_consistent_dropout_is_refused() -> None:
    pool = digits_pool(60)
    learner = MCDropoutLearner(mlp, FAST, name="mine")
    with pytest.raises(ConfigError, match="learner mine: the network has no ConsistentDropout layer"):
        learner.fit(pool, pool.ids[::3], pool.hidden_labels(pool.ids[::3]), seed=0)


def test_dropout_probability_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"dropout probability must be in \[0, 1\)"):
        ConsistentDropout(1.0)


def test_cnn_dropout_samples_images_with_dropout_after_the_convolutions() -> None:
    pool = digits_pool(90)
    pool.X = pool.X.reshape(90, 8, 8)
    model = cnn_dropout((8, 8), 10)
    kinds = [type(m).__name__ for m in model.features.children()]
    assert kinds.index("ConsistentDropout") == kinds.index("Flatten") + 1
    assert kinds[-1] == "ConsistentDropout"
    learner = MCDropoutLearner(cnn_dropout, FAST, image=True, name="cnn_dropout")
    learner.fit(pool, pool.ids[::3], pool.hidden_labels(pool.ids[::3]), seed=0)
    P = learner.posterior_proba(pool, pool.ids[:10], 7, seed=0)
    assert P.shape == (10, 7, 10)
    np.testing.assert_allclose(P.sum(axis=2), 1.0, atol=1e-5)


def test_unseen_classes_get_zero_probability_in_every_sample() -> None:
    pool = digits_pool(200)
    labeled = pool.ids[np.isin(pool.y, [0, 1, 2])][:30]
    learner = MCDropoutLearner(mlp_dropout, FAST)
    learner.fit(pool, labeled, pool.hidden_labels(labeled), seed=0)
    P = learner.posterior_proba(pool, pool.ids[:20], 5, seed=0)
    assert P[:, :, 3:].max() == 0.0


# ---- ensembles -----------------------------------------------------------------------------------------------------

def _member() -> TorchLearner:
    return TorchLearner(mlp, FAST)


def test_ensemble_members_are_the_posterior_samples_and_their_mean_is_the_proba() -> None:
    pool = digits_pool(150)
    labeled = pool.ids[::5]
    ens = EnsembleLearner(_member, members=3)
    ens.fit(pool, labeled, pool.hidden_labels(labeled), seed=2)
    P = ens.posterior_proba(pool, pool.ids, samples=20, seed=0)
    assert P.shape == (150, 3, 10)
    np.testing.assert_allclose(ens.predict_proba(pool, pool.ids), P.mean(axis=1), atol=1e-6)
    assert np.abs(P[:, 0] - P[:, 1]).max() > 1e-2  # members differ
    for k, seed in enumerate(member_seeds(2, 3)):  # member k is the member learner fitted with its own seed
        alone = _member()
        alone.fit(pool, labeled, pool.hidden_labels(labeled), seed)
        np.testing.assert_allclose(P[:, k], alone.predict_proba(pool, pool.ids), atol=1e-6)
    np.testing.assert_array_equal(ens.embed(pool, pool.ids[:5]), ens.members_[0].embed(pool, pool.ids[:5]))


def test_ensemble_seeds_are_distinct_and_reproducible() -> None:
    assert len(set(member_seeds(0, 5))) == 5
    assert member_seeds(0, 5) == member_seeds(0, 5)
    assert member_seeds(0, 5) != member_seeds(1, 5)


def test_ensemble_capabilities_and_checks() -> None:
    ens = EnsembleLearner(_member, members=2)
    assert ens.capabilities == frozenset({"proba", "posterior", "embed"})
    with pytest.raises(ConfigError, match="at least 2 members"):
        EnsembleLearner(_member, members=1)
    with pytest.raises(RuntimeError, match="not fitted"):
        ens.predict_proba(digits_pool(10), np.arange(3))


def test_registered_posterior_learners() -> None:
    import al_loop.learners  # noqa: F401

    for name in ("mlp_dropout", "cnn_dropout", "mlp_ensemble", "cnn_ensemble"):
        assert "posterior" in LEARNERS.get(name)().capabilities
    for name in ("logreg", "mlp", "cnn"):
        assert "posterior" not in LEARNERS.get(name)().capabilities
