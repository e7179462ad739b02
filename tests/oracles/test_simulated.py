"""Simulated oracle: contract suite, noise and skip rates, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from al_loop.errors import ConfigError
from al_loop.types import OutboxItem
from oracles.simulated import SimulatedOracle, SimulatedOracleConfig
from tests.contracts.oracle_contract import OracleContract
from tests.contracts.strategy_contract import digits_pool


class TestSimulatedOracle(OracleContract):
    def make_oracle(self, pool):
        return SimulatedOracle(pool, seed=0)


def _answers(oracle, pool, ids):
    oracle.submit([OutboxItem(run_id=1, round=0, pool_id=int(i)) for i in ids])
    return {a.pool_id: a for a in oracle.collect(1, 0)}


def test_noise_free_answers_are_the_hidden_labels() -> None:
    pool = digits_pool(200)
    answers = _answers(SimulatedOracle(pool, seed=0), pool, pool.ids)
    truth = pool.hidden_labels(pool.ids)
    assert all(answers[int(i)].label == pool.classes[int(t)] for i, t in zip(pool.ids, truth, strict=False))


def test_noise_rate_flips_to_other_classes_at_the_rate() -> None:
    pool = digits_pool(300)
    answers = _answers(SimulatedOracle(pool, seed=3, config=SimulatedOracleConfig(noise_rate=0.3)), pool, pool.ids)
    truth = {int(i): pool.classes[int(t)] for i, t in zip(pool.ids, pool.hidden_labels(pool.ids), strict=False)}
    flipped = [i for i, a in answers.items() if a.label != truth[i]]
    assert 0.2 < len(flipped) / len(answers) < 0.4
    assert all(answers[i].label in pool.classes for i in flipped)


def test_skip_rate_and_determinism_across_instances_and_order() -> None:
    pool = digits_pool(300)
    cfg = SimulatedOracleConfig(noise_rate=0.2, skip_rate=0.2)
    a = _answers(SimulatedOracle(pool, seed=5, config=cfg), pool, pool.ids)
    b = _answers(SimulatedOracle(pool, seed=5, config=cfg), pool, pool.ids[::-1])
    assert a == b
    skipped = sum(x.status == "skipped" for x in a.values())
    assert 0.1 < skipped / len(a) < 0.3
    c = _answers(SimulatedOracle(pool, seed=6, config=cfg), pool, pool.ids)
    assert a != c


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2.0])
def test_rates_out_of_range_are_refused(bad: float) -> None:
    with pytest.raises(ConfigError, match="noise_rate"):
        SimulatedOracleConfig(noise_rate=bad)


def test_answer_is_independent_of_other_items() -> None:
    pool = digits_pool(100)
    o = SimulatedOracle(pool, seed=1, config=SimulatedOracleConfig(noise_rate=0.5))
    assert o.answer_for(int(pool.ids[7])) == o.answer_for(int(pool.ids[7]))
    np.testing.assert_equal(len(o.collect(1, 0)), 0)
