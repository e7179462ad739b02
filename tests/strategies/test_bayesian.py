"""Bayesian strategies: closed forms, brute force on tiny inputs, BatchBALD batch 1 = BALD, the contract suites."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import digamma

from al_loop.errors import ConfigError
from al_loop.learners import Learner
from al_loop.learners.mc_dropout import MCDropoutLearner, mlp_dropout
from al_loop.learners.torch_learner import TorchConfig
from al_loop.view import ModelView
from strategies._bayes_scores import (
    _joint_entropy,
    _rescale,
    _sample_configs,
    bald_scores,
    batchbald_greedy,
    expected_entropy,
    mean_std_scores,
    predictive_entropy,
    variation_ratio_scores,
)
from strategies.bayesian import BALD, BatchBALD, MeanSTD, VariationRatio, posterior_seed
from tests.contracts.strategy_contract import StrategyContract, digits_pool, make_context


def _h(p: np.ndarray) -> float:
    p = np.asarray(p, dtype=np.float64)
    return float(-(p[p > 0] * np.log(p[p > 0])).sum())


# ---- the score functions by hand ---------------------------------------------------------------------------------

TOY = np.array([
    [[0.9, 0.1], [0.1, 0.9]],   # samples disagree: epistemic
    [[0.5, 0.5], [0.5, 0.5]],   # samples agree on a coin flip: aleatoric only
    [[1.0, 0.0], [1.0, 0.0]],   # certain
    [[0.7, 0.3], [0.6, 0.4]],
])


def test_bald_by_hand() -> None:
    expected = [np.log(2) - _h([0.9, 0.1]), 0.0, 0.0, _h([0.65, 0.35]) - (_h([0.7, 0.3]) + _h([0.6, 0.4])) / 2]
    np.testing.assert_allclose(bald_scores(TOY), expected, atol=1e-12)
    np.testing.assert_allclose(bald_scores(TOY), predictive_entropy(TOY) - expected_entropy(TOY), atol=1e-15)


def test_bald_matches_the_closed_form_of_a_beta_posterior() -> None:
    # y ~ Bernoulli(theta), theta ~ Beta(a, b): I(y; theta) = H(a / (a + b)) - E[H(theta)] with
    # E[-theta log theta] = -(a / (a + b)) (psi(a + 1) - psi(a + b + 1)), likewise for 1 - theta.
    rng = np.random.default_rng(0)
    for a, b in [(2.0, 5.0), (0.5, 0.5), (30.0, 30.0)]:
        m = a / (a + b)
        closed = _h([m, 1 - m]) + m * (digamma(a + 1) - digamma(a + b + 1)) + (1 - m) * (
            digamma(b + 1) - digamma(a + b + 1))
        theta = rng.beta(a, b, size=400_000)
        P = np.stack([theta, 1 - theta], axis=1)[None]  # one item, K samples
        assert bald_scores(P)[0] == pytest.approx(closed, abs=2e-3)


def test_variation_ratio_by_hand() -> None:
    P = np.array([
        [[0.6, 0.4], [0.4, 0.6], [0.7, 0.3], [0.2, 0.8]],  # votes 0, 1, 0, 1: mode 2 of 4
        [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.1, 0.9]],  # 3 of 4
        [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]],  # ties vote class 0: 4 of 4
    ])
    np.testing.assert_allclose(variation_ratio_scores(P), [0.5, 0.25, 0.0])


def test_mean_std_by_hand() -> None:
    # item 0: class 0 takes 0.9 and 0.1: std 0.4, class 1 the same; item 2: no spread
    np.testing.assert_allclose(mean_std_scores(TOY), [0.4, 0.0, 0.0, 0.05], atol=1e-12)


# ---- BatchBALD against brute force -------------------------------------------------------------------------------

def _brute_joint_entropy(P: np.ndarray, items: list[int]) -> float:
    K, C = P.shape[1], P.shape[2]
    total = 0.0
    for ys in itertools.product(range(C), repeat=len(items)):
        q = np.mean([np.prod([P[i, k, y] for i, y in zip(items, ys, strict=True)]) for k in range(K)])
        total -= q * np.log(q) if q > 0 else 0.0
    return total


def _brute_greedy(P: np.ndarray, b: int) -> tuple[list[int], list[float]]:
    cond = expected_entropy(P)
    picked: list[int] = []
    mis = [0.0]
    for _ in range(b):
        scores = {i: _brute_joint_entropy(P, picked + [i]) - cond[picked + [i]].sum()
                  for i in range(len(P)) if i not in picked}
        best = max(scores, key=lambda i: (scores[i], -i))
        picked.append(best)
        mis.append(scores[best])
    return picked, list(np.diff(mis))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batchbald_exact_equals_brute_force_greedy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(3, 0.6), size=(7, 4))  # 7 items, K = 4, C = 3
    expected, gains = _brute_greedy(P, 4)
    picked, got = batchbald_greedy(P, 4, configs=10_000, rng=np.random.default_rng(9))
    assert picked.tolist() == expected
    np.testing.assert_allclose(got, gains, atol=1e-10)


def test_batchbald_batch_one_is_bald() -> None:
    P = np.random.default_rng(3).dirichlet(np.ones(4), size=(50, 6))
    picked, gains = batchbald_greedy(P, 1, configs=100, rng=np.random.default_rng(0))
    bald = bald_scores(P)
    assert picked[0] == int(np.argmax(bald))
    assert gains[0] == pytest.approx(bald.max(), abs=1e-12)


def test_batchbald_does_not_repeat_what_bald_repeats() -> None:
    # items 0-2 are copies of one informative item, 3 is a little less informative but independent:
    # top-3 BALD takes the three copies, BatchBALD takes one copy, then item 3
    inf = np.array([[0.95, 0.05], [0.05, 0.95], [0.95, 0.05], [0.05, 0.95]])
    other = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])
    P = np.stack([inf, inf, inf, other, np.full((4, 2), 0.5)])
    assert np.argsort(-bald_scores(P), kind="stable")[:3].tolist() == [0, 1, 2]
    picked, gains = batchbald_greedy(P, 2, configs=100, rng=np.random.default_rng(0))
    assert picked.tolist() == [0, 3]
    assert gains[1] > 0.1


def test_sampled_joint_entropy_converges_to_the_exact_one() -> None:
    rng = np.random.default_rng(5)
    P = rng.dirichlet(np.full(3, 0.8), size=(6, 5))
    batch, cands = [0, 1, 2], [3, 4, 5]
    weights, logscale = _rescale(*_sample_configs(P[batch], 200_000, np.random.default_rng(1)))
    est = _joint_entropy(weights, logscale, P[cands], exact=False)
    exact = [_brute_joint_entropy(P, batch + [c]) for c in cands]
    np.testing.assert_allclose(est, exact, atol=0.01)


def test_batchbald_is_exact_while_the_configurations_fit_then_samples() -> None:
    rng = np.random.default_rng(6)
    P = rng.dirichlet(np.full(2, 0.7), size=(12, 8))
    exact_pick, exact_gain = batchbald_greedy(P, 5, configs=10**6, rng=np.random.default_rng(0))
    # configs=4: picks 1-3 see 1, 2 and 4 enumerated configurations (exact); picks 4-5 see 4 sampled ones
    pick, gain = batchbald_greedy(P, 5, configs=4, rng=np.random.default_rng(0))
    assert pick[:3].tolist() == exact_pick[:3].tolist()
    np.testing.assert_allclose(gain[:3], exact_gain[:3], atol=1e-12)
    assert np.isfinite(gain).all()
    assert not np.allclose(gain[3:], exact_gain[3:], atol=1e-9)  # the estimate, not the exact value


def test_sampled_batchbald_is_reproducible_and_rng_driven() -> None:
    P = np.random.default_rng(7).dirichlet(np.full(3, 0.7), size=(30, 6))
    a = batchbald_greedy(P, 6, configs=9, rng=np.random.default_rng(1))
    b = batchbald_greedy(P, 6, configs=9, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_long_batches_do_not_underflow() -> None:
    # 80 items whose probabilities are ~1e-4 for most classes: the raw product over the batch is ~1e-320
    rng = np.random.default_rng(8)
    P = rng.dirichlet(np.full(10, 0.05), size=(120, 10))
    P = np.clip(P, 1e-4, None)
    P /= P.sum(axis=2, keepdims=True)
    picked, gains = batchbald_greedy(P, 80, configs=300, rng=np.random.default_rng(0))
    assert np.isfinite(gains).all()
    assert len(set(picked.tolist())) == 80


def test_batchbald_ties_go_to_the_smaller_key() -> None:
    P = np.tile(np.array([[0.9, 0.1], [0.1, 0.9]]), (4, 1, 1))  # four identical items
    picked, _ = batchbald_greedy(P, 2, configs=100, rng=np.random.default_rng(0), order_key=np.array([40, 10, 30, 20]))
    assert picked.tolist() == [1, 3]


def test_batchbald_refuses_a_batch_larger_than_the_candidates() -> None:
    with pytest.raises(ValueError, match="batch"):
        batchbald_greedy(TOY, 5, configs=10, rng=np.random.default_rng(0))


# ---- the strategies on a real MC dropout learner -------------------------------------------------------------------

def _mc_learner() -> Learner:
    return MCDropoutLearner(mlp_dropout, TorchConfig(epochs=15, lr=2e-3, batch_size=32), name="mlp_dropout")


class _PosteriorContract(StrategyContract):
    def make_learner(self) -> Learner:
        return _mc_learner()


class TestBALD(_PosteriorContract):
    def make_strategy(self):
        return BALD()

    def test_selection_is_top_bald_of_the_rounds_samples(self, setup) -> None:
        pool, view, labeled = setup
        ctx = self.ctx(pool, labeled, seed=2)
        sel = BALD(passes=8).select(view, ctx, 10)
        P = view.learner.posterior_proba(pool, ctx.unlabeled_ids, 8, posterior_seed(ctx))
        scores = bald_scores(P)
        order = np.lexsort((ctx.unlabeled_ids, -scores))[:10]
        assert sel.ids.tolist() == ctx.unlabeled_ids[order].tolist()
        np.testing.assert_allclose(sel.scores, scores[order], rtol=1e-6)

    def test_other_rounds_draw_other_masks(self, setup) -> None:
        pool, view, labeled = setup
        one = make_context(pool, labeled, round_=1)
        two = make_context(pool, labeled, round_=2)
        assert posterior_seed(one) != posterior_seed(two)
        a = view.posterior_scores("bald", bald_scores, one.unlabeled_ids, 8, posterior_seed(one))
        b = view.posterior_scores("bald", bald_scores, two.unlabeled_ids, 8, posterior_seed(two))
        assert not np.allclose(a, b)

    def test_a_learner_without_posterior_is_refused_with_the_learners_that_have_one(self) -> None:
        with pytest.raises(ConfigError, match="needs learner capability.*mlp_dropout"):
            BALD().check_learner(frozenset({"proba", "embed"}))

    def test_bad_passes_are_refused(self) -> None:
        with pytest.raises(ConfigError, match="bald passes must be a positive integer"):
            BALD(passes=0)


class TestVariationRatio(_PosteriorContract):
    def make_strategy(self):
        return VariationRatio()


class TestMeanSTD(_PosteriorContract):
    def make_strategy(self):
        return MeanSTD()


class TestBatchBALD(_PosteriorContract):
    def make_strategy(self):
        return BatchBALD(passes=10, configs=500, candidates=60)

    def test_batch_one_equals_bald(self, setup) -> None:
        pool, view, labeled = setup
        ctx = self.ctx(pool, labeled, seed=1)
        one = BatchBALD(passes=10).select(view, ctx, 1)
        bald = BALD(passes=10).select(view, self.ctx(pool, labeled, seed=1), 1)
        assert one.ids.tolist() == bald.ids.tolist()
        assert one.scores[0] == pytest.approx(bald.scores[0], rel=1e-6)

    def test_candidates_are_the_top_bald_items(self, setup) -> None:
        pool, view, labeled = setup
        ctx = self.ctx(pool, labeled)
        sel = BatchBALD(passes=10, configs=500, candidates=40).select(view, ctx, 5)
        bald = view.posterior_scores("bald", bald_scores, ctx.unlabeled_ids, 10, posterior_seed(ctx))
        top = set(ctx.unlabeled_ids[np.argsort(-bald, kind="stable")[:40]].tolist())
        assert set(sel.ids.tolist()) <= top
        assert sel.info["candidates"] == 40

    def test_whole_pool_when_candidates_is_zero(self, setup) -> None:
        pool, view, labeled = setup
        ctx = self.ctx(pool, labeled)
        sel = BatchBALD(passes=10, configs=200, candidates=0).select(view, ctx, 3)
        assert sel.info["candidates"] == len(ctx.unlabeled_ids)

    def test_bad_parameters_are_refused(self) -> None:
        with pytest.raises(ConfigError, match="batchbald configs must be a positive integer"):
            BatchBALD(configs=0)
        with pytest.raises(ConfigError, match="batchbald candidates must be a non-negative integer"):
            BatchBALD(candidates=-1)


def test_posterior_scores_stream_in_chunks_and_equal_the_whole_computation() -> None:
    pool = digits_pool(200)
    labeled = pool.ids[::8]
    learner = _mc_learner()
    learner.fit(pool, labeled, pool.hidden_labels(labeled), seed=0)
    whole = bald_scores(learner.posterior_proba(pool, pool.ids, 6, 11))
    calls: list[int] = []

    def score(P: np.ndarray) -> np.ndarray:
        calls.append(len(P))
        return bald_scores(P)

    view = ModelView(pool, learner, batch_size=37)
    got = view.posterior_scores("bald", score, pool.ids[::-1], 6, 11)
    np.testing.assert_allclose(got, whole[::-1], rtol=1e-5, atol=1e-7)
    assert max(calls) == 37 and sum(calls) == 200
    view.posterior_scores("bald", score, pool.ids, 6, 11)
    assert sum(calls) == 200  # cached


def test_a_posterior_of_the_wrong_shape_is_named() -> None:
    pool = digits_pool(40)

    class Bad(Learner):
        def fit(self, pool, ids, labels, seed):  # noqa: ANN001, ANN201
            pass

        def predict_proba(self, pool, ids):  # noqa: ANN001, ANN201
            return np.full((len(ids), pool.n_classes), 0.1)

        def posterior_proba(self, pool, ids, samples, seed):  # noqa: ANN001, ANN201
            return np.full((len(ids), pool.n_classes), 0.1)

    with pytest.raises(RuntimeError, match=r"Bad.posterior_proba returned shape \(40, 10\).*expected \(n, K, C\)"):
        ModelView(pool, Bad()).posterior(pool.ids, 4, 0)


# ---- the command line ----------------------------------------------------------------------------------------------

def test_simulate_bald_with_a_learner_without_posterior_is_one_line_and_writes_nothing(tmp_path, capsys,
                                                                                        monkeypatch) -> None:
    from tests.test_cli import one_line_error, run_cli

    db = tmp_path / "b.sqlite"
    code, _, err = run_cli(["simulate", "--dataset", "digits", "--strategy", "bald", "--learner", "logreg",
                            "--db", str(db)], capsys, monkeypatch)
    assert code == 2
    line = one_line_error(err)
    assert "strategy 'bald' needs learner capability ['posterior']" in line
    assert "--learner mlp_dropout, cnn_dropout, mlp_ensemble or cnn_ensemble" in line
    assert not db.exists()


def test_simulate_runs_the_bayesian_strategies_end_to_end_with_repeatable_selections(tmp_path, capsys, monkeypatch) -> None:
    import sqlite3

    from tests.test_cli import run_cli

    selections = []
    for name in ("a", "b"):
        db = tmp_path / f"{name}.sqlite"
        code, _, err = run_cli(["simulate", "--dataset", "digits", "--strategy", "bald", "--strategy", "batchbald",
                                "--param", "batchbald.candidates=100", "--param", "batchbald.configs=1000",
                                "--param", "bald.passes=10", "--param", "batchbald.passes=10",
                                "--learner", "mlp_dropout", "--rounds", "2", "--batch", "5", "--init", "20",
                                "--db", str(db)], capsys, monkeypatch)
        assert code == 0, err
        with sqlite3.connect(db) as con:
            selections.append(con.execute("SELECT run_id, round, pool_id FROM selections ORDER BY run_id, round, "
                                          "rank").fetchall())
    assert selections[0] == selections[1]  # same config and seed, same selections
    assert len(selections[0]) == 2 * (20 + 2 * 5)


@pytest.mark.parametrize("param, line", [
    ("batchbald.configs=0", "batchbald configs must be a positive integer, got 0; pass e.g. --param batchbald.configs=20"),
    ("batchbald.passes=-2", "batchbald passes must be a positive integer, got -2"),
])
def test_bad_bayesian_parameters_are_one_line_and_write_nothing(param, line, tmp_path, capsys, monkeypatch) -> None:
    from tests.test_cli import one_line_error, run_cli

    db = tmp_path / "p.sqlite"
    code, _, err = run_cli(["simulate", "--dataset", "digits", "--strategy", "batchbald", "--learner", "mlp_dropout",
                            "--param", param, "--db", str(db)], capsys, monkeypatch)
    assert code == 2
    assert line in one_line_error(err)
    assert not db.exists()
