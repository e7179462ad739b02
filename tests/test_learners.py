"""Learners: class columns by name, unseen classes, determinism, embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from al_loop.errors import ConfigError
from al_loop.learners import SklearnLearner, TorchConfig, TorchLearner, mlp, small_cnn
from al_loop.pool import Pool
from tests.contracts.strategy_contract import digits_pool


def _subset_without(pool: Pool, missing: set[int]) -> np.ndarray:
    y = pool.hidden_labels(pool.ids)
    return pool.ids[~np.isin(y, list(missing))][:60]


@pytest.mark.parametrize("make", [
    lambda: SklearnLearner(LogisticRegression(max_iter=300)),
    lambda: SklearnLearner(GaussianNB()),
    lambda: TorchLearner(mlp, TorchConfig(epochs=3)),
])
def test_unseen_classes_get_a_zero_column(make) -> None:
    pool = digits_pool(300)
    ids = _subset_without(pool, {3, 7})
    learner = make()
    learner.fit(pool, ids, pool.hidden_labels(ids), seed=0)
    proba = learner.predict_proba(pool, pool.ids[:50])
    assert proba.shape == (50, 10)
    np.testing.assert_allclose(proba[:, [3, 7]], 0.0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def test_columns_follow_class_names_not_positions() -> None:
    pool = digits_pool(300)
    ids = _subset_without(pool, {0, 1, 2})  # estimator.classes_ = [3..9]: column 0 of it is class "3"
    learner = SklearnLearner(LogisticRegression(max_iter=500))
    learner.fit(pool, ids, pool.hidden_labels(ids), seed=0)
    proba = learner.predict_proba(pool, ids)
    acc = (proba.argmax(axis=1) == pool.hidden_labels(ids)).mean()
    assert acc > 0.9


def test_probabilities_are_computed_block_by_block_as_in_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import al_loop.learners.sklearn_learner as sk
    pool = digits_pool(300)
    ids = _subset_without(pool, {5})
    learner = SklearnLearner(make_pipeline(StandardScaler(), GaussianNB()))  # no folded form: scikit-learn's
    learner.fit(pool, ids, pool.hidden_labels(ids), seed=0)
    order = pool.ids[::-1][:257]  # not in pool order, not a multiple of the block
    whole = learner.predict_proba(pool, order)
    monkeypatch.setattr(sk, "BLOCK_BYTES", 8 * 64 * 10)  # 10 rows of 64 float64 features per block
    calls: list[int] = []
    real = learner.model_.predict_proba
    monkeypatch.setattr(learner.model_, "predict_proba", lambda X: calls.append(len(X)) or real(X))
    blocked = learner.predict_proba(pool, order)
    assert calls == [10] * 25 + [7]
    np.testing.assert_allclose(blocked, whole, rtol=0, atol=1e-15)  # BLAS may round a block's last bit apart
    np.testing.assert_array_equal(blocked[:, 5], 0.0)


@pytest.mark.parametrize("make", [
    lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)),
    lambda: make_pipeline(StandardScaler(with_mean=False), StandardScaler(with_std=False),
                          LogisticRegression(max_iter=300, C=0.1)),
    lambda: LogisticRegression(max_iter=300),
], ids=["scaled", "two-scalers", "plain"])
@pytest.mark.parametrize("classes", [(0, 1, 2, 4, 6, 7, 8, 9), (3, 8)], ids=["multinomial", "binary"])
def test_folded_logistic_regression_gives_scikit_learns_probabilities(make, classes) -> None:
    from al_loop.learners.sklearn_learner import FoldedLogistic

    pool = digits_pool(400)
    y = pool.hidden_labels(pool.ids)
    ids = pool.ids[np.isin(y, classes)][:150]
    learner = SklearnLearner(make())
    learner.fit(pool, ids, pool.hidden_labels(ids), seed=0)
    assert isinstance(learner._linear_, FoldedLogistic)
    assert learner._linear_.W.shape[0] == (1 if len(classes) == 2 else len(classes))
    got = learner.predict_proba(pool, pool.ids)
    want = np.zeros_like(got)
    want[:, list(classes)] = learner.model_.predict_proba(pool.features(pool.ids).astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    R, H = learner.grad_factors(pool, pool.ids[:40])
    assert R.shape[1] == (1 if len(classes) == 2 else 10)


def test_other_models_are_not_folded() -> None:
    from sklearn.decomposition import PCA

    pool = digits_pool(200)
    ids = pool.ids[:100]
    binary = pool.ids[pool.hidden_labels(pool.ids) < 2][:60]
    for est, on in ((make_pipeline(PCA(5), LogisticRegression(max_iter=300)), ids), (GaussianNB(), ids),
                    (LogisticRegression(solver="liblinear"), binary)):  # liblinear: left to scikit-learn
        learner = SklearnLearner(est)
        learner.fit(pool, on, pool.hidden_labels(on), seed=0)
        assert learner._linear_ is None
        np.testing.assert_allclose(learner.predict_proba(pool, on)[:, :2].sum(1) if on is binary
                                   else learner.predict_proba(pool, on).sum(1), 1.0)


def test_single_class_gives_constant_model() -> None:
    pool = digits_pool(100)
    ids = pool.ids[pool.hidden_labels(pool.ids) == 4][:5]
    learner = SklearnLearner(LogisticRegression())
    learner.fit(pool, ids, pool.hidden_labels(ids), seed=0)
    proba = learner.predict_proba(pool, pool.ids[:3])
    np.testing.assert_allclose(proba[:, 4], 1.0)


def test_estimator_without_predict_proba_refused() -> None:
    with pytest.raises(ConfigError, match="has no predict_proba"):
        SklearnLearner(LinearSVC())


def test_fresh_clone_each_round() -> None:
    pool = digits_pool(200)
    est = LogisticRegression(max_iter=300)
    learner = SklearnLearner(est)
    learner.fit(pool, pool.ids[:50], pool.hidden_labels(pool.ids[:50]), seed=0)
    first = learner.model_
    learner.fit(pool, pool.ids[:80], pool.hidden_labels(pool.ids[:80]), seed=0)
    assert learner.model_ is not first and not hasattr(est, "coef_")


def test_torch_learner_is_deterministic_and_leaves_global_rng_alone() -> None:
    pool = digits_pool(200)
    ids = pool.ids[:80]
    state = torch.random.get_rng_state()
    outs = []
    for _ in range(2):
        learner = TorchLearner(mlp, TorchConfig(epochs=5, device="cpu"))
        learner.fit(pool, ids, pool.hidden_labels(ids), seed=11)
        outs.append(learner.predict_proba(pool, pool.ids[100:120]))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert torch.equal(state, torch.random.get_rng_state())
    other = TorchLearner(mlp, TorchConfig(epochs=5, device="cpu"))
    other.fit(pool, ids, pool.hidden_labels(ids), seed=12)
    assert not np.array_equal(outs[0], other.predict_proba(pool, pool.ids[100:120]))


def test_torch_embed_is_penultimate_layer() -> None:
    pool = digits_pool(200)
    learner = TorchLearner(mlp, TorchConfig(epochs=2, device="cpu"))
    learner.fit(pool, pool.ids[:50], pool.hidden_labels(pool.ids[:50]), seed=0)
    emb = learner.embed(pool, pool.ids[:7])
    assert emb.shape == (7, 128)
    logits = learner.model_.head(torch.from_numpy(emb).float()).detach().numpy()
    proba = np.exp(logits - logits.max(1, keepdims=True))
    proba /= proba.sum(1, keepdims=True)
    np.testing.assert_allclose(proba, learner.predict_proba(pool, pool.ids[:7]), atol=1e-5)


def test_cnn_learns_digits_images() -> None:
    pool = digits_pool(300)
    learner = TorchLearner(small_cnn, TorchConfig(epochs=15, lr=3e-3, device="cpu"), image=True)
    learner.fit(pool, pool.ids[:200], pool.hidden_labels(pool.ids[:200]), seed=0)
    acc = (learner.predict_proba(pool, pool.ids[200:]).argmax(1) == pool.hidden_labels(pool.ids[200:])).mean()
    assert acc > 0.6


@pytest.mark.parametrize("shape", [(28, 28), (8, 8), (7, 9), (1, 11, 6), (64,)])
def test_small_cnn_fits_any_image_size(shape: tuple[int, ...]) -> None:
    import torch

    net = small_cnn(shape, 3)
    h, w = (shape[-2], shape[-1]) if len(shape) >= 2 else (8, 8)
    out = net.head(net.features(torch.zeros(5, 1, h, w)))
    assert tuple(out.shape) == (5, 3)


def test_one_vs_rest_logistic_regression_has_no_closed_form_gradient() -> None:
    assert "grad" in SklearnLearner(LogisticRegression()).capabilities
    assert "grad" not in SklearnLearner(LogisticRegression(solver="liblinear")).capabilities
    assert "grad" not in SklearnLearner(GaussianNB()).capabilities


def test_mlp_standardises_each_feature() -> None:
    # embedding-like features: the class is in a feature of scale 1, nine others are noise of scale 1000;
    # one global mean/std would shrink the informative one to ~1e-3 and the head would not find it
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    X = np.column_stack([y * 2.0 - 1.0 + rng.normal(0, 0.3, 400), rng.normal(0, 1000, (400, 9))])
    pool = Pool(X=X, ids=np.arange(400), classes=("a", "b"), y=y)
    learner = TorchLearner(mlp, TorchConfig(epochs=40, lr=2e-3, batch_size=32, device="cpu"))
    learner.fit(pool, pool.ids[:200], y[:200], seed=0)
    acc = (learner.predict_proba(pool, pool.ids[200:]).argmax(axis=1) == y[200:]).mean()
    assert acc > 0.9
    assert np.shape(learner.std_) == (10,)
