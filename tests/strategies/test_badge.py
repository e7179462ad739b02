"""BADGE: gradient embeddings against autograd, k-means++ seeding properties, contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from al_loop.errors import ConfigError, DataError
from al_loop.learners import SklearnLearner
from al_loop.learners.base import Learner, outer_rows
from al_loop.learners.torch_learner import TorchConfig, TorchLearner, mlp
from al_loop.view import ModelView
from strategies._geometry import MinSqDist, ProductMinSqDist
from strategies.badge import Badge, kmeanspp_seed, kmeanspp_seed_factored
from tests.contracts.strategy_contract import StrategyContract, digits_pool, make_context


def _ce_grad(logits_fn, W: torch.Tensor, x: torch.Tensor, yhat: int) -> np.ndarray:
    W = W.detach().clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(logits_fn(W, x)[None], torch.tensor([yhat]))
    loss.backward()
    return W.grad.numpy().ravel()


def test_torch_grad_embed_equals_autograd() -> None:
    pool = digits_pool(120)
    ids = pool.ids[:60]
    labels = pool.hidden_labels(ids)
    keep = labels < 6  # classes 6..9 never labeled: their logits are masked out
    learner = TorchLearner(mlp, TorchConfig(epochs=3, lr=1e-2, batch_size=16, device="cpu"))
    learner.fit(pool, ids[keep], labels[keep], seed=0)
    q = pool.ids[60:90]
    got = learner.grad_embed(pool, q)
    model = learner.model_
    x = learner._tensor(pool, q, torch.device("cpu"))
    mask = learner._mask(pool.n_classes, torch.device("cpu"))
    with torch.no_grad():
        h = model.features(x)
    bias = model.head.bias.detach()
    expected = []
    for i in range(len(q)):
        with torch.no_grad():
            yhat = int(torch.argmax(model.head(h[i]) + mask))
        expected.append(_ce_grad(lambda W, hi: hi @ W.T + bias + mask, model.head.weight, h[i], yhat))
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-4, atol=1e-6)
    assert got.shape == (len(q), pool.n_classes * h.shape[1])


def test_sklearn_multinomial_grad_embed_equals_autograd() -> None:
    pool = digits_pool(200)
    ids = pool.ids[:120]
    labels = pool.hidden_labels(ids)
    keep = labels != 3  # class 3 unseen: its columns must be zero
    learner = SklearnLearner(make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)))
    learner.fit(pool, ids[keep], labels[keep], seed=0)
    q = pool.ids[150:170]
    got = learner.grad_embed(pool, q)
    scaler, lr = learner.model_[0], learner.model_[-1]
    Xs = torch.from_numpy(scaler.transform(pool.features(q)))
    W = torch.from_numpy(lr.coef_)
    b = torch.from_numpy(lr.intercept_)
    d = Xs.shape[1]
    for i in range(len(q)):
        with torch.no_grad():
            yhat = int(torch.argmax(W @ Xs[i] + b))
        g = _ce_grad(lambda W_, x: W_ @ x + b, W, Xs[i], yhat).reshape(len(lr.classes_), d)
        full = np.zeros((pool.n_classes, d))
        full[lr.classes_] = g
        np.testing.assert_allclose(got[i], full.ravel(), rtol=1e-6, atol=1e-9)


def test_sklearn_binary_grad_embed_equals_autograd() -> None:
    pool = digits_pool(200)
    y = pool.hidden_labels(pool.ids)
    ids = pool.ids[(y == 0) | (y == 1)][:40]
    learner = SklearnLearner(LogisticRegression(max_iter=300))
    learner.fit(pool, ids, pool.hidden_labels(ids), seed=0)
    q = pool.ids[100:120]
    got = learner.grad_embed(pool, q)
    lr = learner.model_
    X = torch.from_numpy(pool.features(q).reshape(len(q), -1))
    w = torch.from_numpy(lr.coef_[0])
    b = float(lr.intercept_[0])
    for i in range(len(q)):
        p1 = torch.sigmoid(w @ X[i] + b)
        yhat = int(p1 > 0.5)
        wv = w.clone().requires_grad_(True)
        p = torch.sigmoid(wv @ X[i] + b)
        loss = -torch.log(p if yhat == 1 else 1 - p)
        loss.backward()
        np.testing.assert_allclose(got[i], wv.grad.numpy(), rtol=1e-6, atol=1e-9)


def test_first_pick_is_largest_norm_ties_to_smaller_position() -> None:
    G = np.array([[1.0, 0.0], [0.0, 3.0], [3.0, 0.0], [0.5, 0.5]])
    picks, scores = kmeanspp_seed(G, 1, np.random.default_rng(0))
    assert picks.tolist() == [1]
    assert scores[0] == pytest.approx(9.0)


def test_first_random_uses_rng() -> None:
    G = np.random.default_rng(0).normal(size=(50, 3))
    firsts = {int(kmeanspp_seed(G, 1, np.random.default_rng(s), first="random")[0][0]) for s in range(20)}
    assert len(firsts) > 5


def test_duplicates_are_never_drawn_unless_forced() -> None:
    base = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0], [9.0, 9.0]])
    G = np.repeat(base, 3, axis=0)  # each point three times
    for seed in range(30):
        picks, scores = kmeanspp_seed(G, 5, np.random.default_rng(seed))
        assert sorted({tuple(G[p]) for p in picks}) == sorted(map(tuple, base))
        assert (scores[1:] > 0).all()
        picks7, scores7 = kmeanspp_seed(G, 7, np.random.default_rng(seed))
        assert picks7[:5].tolist() == picks.tolist()
        assert picks7[5:].tolist() == sorted(set(range(15)) - set(picks.tolist()))[:2]  # forced, by position
        np.testing.assert_array_equal(scores7[5:], 0.0)


def test_reproducible_under_rng_and_d2_proportions() -> None:
    G = np.random.default_rng(5).normal(size=(300, 4))
    a = kmeanspp_seed(G, 20, np.random.default_rng([1, 2]))
    b = kmeanspp_seed(G, 20, np.random.default_rng([1, 2]))
    np.testing.assert_array_equal(a[0], b[0])
    c = kmeanspp_seed(G, 20, np.random.default_rng([1, 3]))
    assert a[0].tolist() != c[0].tolist()
    # first center [10, 0]; the others at squared distance 1 and 4: drawn 1:4
    G3 = np.array([[10.0, 0.0], [9.0, 0.0], [8.0, 0.0]])
    second = [int(kmeanspp_seed(G3, 2, np.random.default_rng(s))[0][1]) for s in range(4000)]
    assert np.mean(np.array(second) == 2) == pytest.approx(0.8, abs=0.025)


def test_bad_input_raises() -> None:
    G = np.ones((5, 3))
    G[2, 2] = np.inf
    with pytest.raises(DataError, match="NaN or Inf"):
        kmeanspp_seed(G, 2, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="first"):
        kmeanspp_seed(np.ones((5, 3)), 2, np.random.default_rng(0), first="centroid")
    assert kmeanspp_seed(np.ones((3, 2)), 10, np.random.default_rng(0))[0].size == 3


class TestBadge(StrategyContract):
    def make_strategy(self):
        return Badge()

    def test_selection_is_the_seeding_in_global_ids(self, setup) -> None:
        pool, view, labeled = setup
        ctx = self.ctx(pool, labeled, seed=4)
        sel = Badge().select(view, ctx, 10)
        R, H = view.grad_factors(ctx.unlabeled_ids)
        picks, _ = kmeanspp_seed_factored(R.astype(np.float32), H.astype(np.float32), 10,
                                          self.ctx(pool, labeled, seed=4).rng)
        assert sel.ids.tolist() == ctx.unlabeled_ids[picks].tolist()
        assert sel.info["gradients"] == "factored"
        G = view.grad_embed(ctx.unlabeled_ids)
        whole = Badge(gradients="whole").select(view, self.ctx(pool, labeled, seed=4), 10)
        picks, _ = kmeanspp_seed(G.astype(np.float32), 10, self.ctx(pool, labeled, seed=4).rng)
        assert whole.ids.tolist() == ctx.unlabeled_ids[picks].tolist() and whole.info["gradients"] == "whole"
        norms = (G ** 2).sum(1)
        assert sel.ids[0] == whole.ids[0] == ctx.unlabeled_ids[np.argmax(norms)]


def _factors(n: int = 200, c: int = 4, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    R = rng.normal(size=(n, c))
    R[::17] = 0.0  # confident rows: zero residual, zero gradient
    H = rng.normal(size=(n, d))
    H[5] = H[9]  # two rows with one input
    R[5] = R[9]
    return R, H


def test_product_distances_equal_the_formed_rows() -> None:
    R, H = _factors()
    G = outer_rows(R, H)
    formed, product = MinSqDist(torch.from_numpy(G)), ProductMinSqDist(torch.from_numpy(R), torch.from_numpy(H))
    np.testing.assert_allclose(product.sq.numpy(), formed.sq.numpy(), rtol=1e-12)
    for pos in (3, 9, 17, 120):
        formed.add(pos)
        product.add(pos)
        np.testing.assert_allclose(product.mind.numpy(), formed.mind.numpy(), rtol=1e-10, atol=1e-10)
    assert product.mind[5] == 0.0 and product.mind[9] == 0.0  # the duplicate of a center is at distance 0
    half = ProductMinSqDist(torch.from_numpy(R).half(), torch.from_numpy(H).half())  # multiplied in half
    half.add(3)
    assert half.mind.dtype == torch.float32
    np.testing.assert_allclose(half.mind.numpy(), _one(G, 3), rtol=2e-2, atol=0.3)
    with pytest.raises(ValueError, match="factors"):
        ProductMinSqDist(torch.zeros(3, 2), torch.zeros(4, 2))


def _one(G: np.ndarray, pos: int) -> np.ndarray:
    return ((G - G[pos]) ** 2).sum(1)


@pytest.mark.parametrize("first", ["max_norm", "random"])
def test_factored_seeding_picks_what_the_formed_rows_pick(first: str) -> None:
    R, H = _factors(300, 5, 8, seed=3)
    G = outer_rows(R, H)
    for seed in range(15):
        a = kmeanspp_seed(G, 25, np.random.default_rng(seed), first=first)
        b = kmeanspp_seed_factored(R, H, 25, np.random.default_rng(seed), first=first)
        assert a[0].tolist() == b[0].tolist()
        np.testing.assert_allclose(b[1], a[1], rtol=1e-9, atol=1e-12)
    with pytest.raises(ConfigError, match="first"):
        kmeanspp_seed_factored(R, H, 2, np.random.default_rng(0), first="centroid")
    bad = H.copy()
    bad[4, 1] = np.nan
    with pytest.raises(DataError, match="NaN or Inf"):
        kmeanspp_seed_factored(R, bad, 2, np.random.default_rng(0))


@pytest.mark.parametrize("make", [
    lambda: SklearnLearner(make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))),
    lambda: TorchLearner(mlp, TorchConfig(epochs=3, lr=1e-2, batch_size=16, device="cpu")),
], ids=["sklearn", "torch"])
def test_badge_factored_and_whole_select_alike(make) -> None:
    pool = digits_pool(400)
    labeled = pool.ids[:60]
    learner = make()
    learner.fit(pool, labeled, pool.hidden_labels(labeled), seed=0)
    view = ModelView(pool, learner)
    R, H = view.grad_factors(pool.ids)
    assert R.shape == (len(pool), pool.n_classes) and H.shape[0] == len(pool)
    np.testing.assert_allclose(outer_rows(R, H), view.grad_embed(pool.ids), rtol=1e-12)
    ctx = make_context(pool, labeled, seed=2)
    a = Badge(dtype="float64").select(view, ctx, 30)
    b = Badge(dtype="float64", gradients="whole").select(view, make_context(pool, labeled, seed=2), 30)
    assert (a.info["gradients"], b.info["gradients"]) == ("factored", "whole")
    assert a.ids.tolist() == b.ids.tolist()
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-9)


class _WholeOnly(Learner):
    """A plugin learner that gives its gradient embeddings whole (no grad_factors)."""

    def __init__(self) -> None:
        self.inner = SklearnLearner(LogisticRegression(max_iter=300))

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset({"proba", "grad"})

    def fit(self, pool, ids, labels, seed) -> None:
        self.inner.fit(pool, ids, labels, seed)

    def predict_proba(self, pool, ids):
        return self.inner.predict_proba(pool, ids)

    def grad_embed(self, pool, ids):
        return self.inner.grad_embed(pool, ids)


def test_a_learner_with_whole_gradients_only_is_seeded_on_them() -> None:
    pool = digits_pool(200)
    labeled = pool.ids[:40]
    learner = _WholeOnly()
    learner.fit(pool, labeled, pool.hidden_labels(labeled), seed=0)
    view = ModelView(pool, learner)
    assert view.grad_factors(pool.ids) is None
    sel = Badge().select(view, make_context(pool, labeled, seed=0), 8)
    assert sel.info["gradients"] == "whole" and len(set(sel.ids.tolist())) == 8
    with pytest.raises(ConfigError, match="gradients"):
        Badge(gradients="outer")


def test_working_copy_gathers_rows_block_by_block_into_the_dtype() -> None:
    from strategies._geometry import working_copy

    X = np.random.default_rng(1).normal(size=(50, 3))
    X.flags.writeable = False  # a ModelView cache
    rows = np.array([49, 0, 7, 7, 30, 12])
    got = working_copy(X, "x", torch.float32, rows=rows, block_bytes=2 * 3 * 8)  # two rows per block
    assert got.dtype == torch.float32 and got.shape == (6, 3)
    np.testing.assert_array_equal(got.numpy(), X[rows].astype(np.float32))
    centered = working_copy(X, "x", torch.float64, rows=rows, center=True, block_bytes=2 * 3 * 8)
    np.testing.assert_allclose(centered.numpy(), X[rows] - X[rows].mean(0), atol=1e-12)
