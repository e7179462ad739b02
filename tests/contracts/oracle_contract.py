"""Contract suite every Oracle inherits.

Subclass :class:`OracleContract`, implement ``make_oracle(pool)`` (a fresh
oracle over the pool) and, for asynchronous oracles, ``answer_all(oracle,
items)`` that makes the annotators answer every submitted item (the simulated
oracle answers by itself).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from al_loop.oracle import Oracle
from al_loop.pool import Pool
from al_loop.types import Answer, OutboxItem
from tests.contracts.strategy_contract import digits_pool


class OracleContract:
    run_id = 7
    #: seconds to wait for an asynchronous oracle's answers to become visible
    settle_seconds = 0.0

    def make_oracle(self, pool: Pool) -> Oracle:
        raise NotImplementedError

    def answer_all(self, oracle: Oracle, pool: Pool, items: list[OutboxItem]) -> None:
        """Have every submitted item answered (no-op for oracles that answer by themselves)."""

    @pytest.fixture
    def pool(self) -> Pool:
        return digits_pool(60)

    def items(self, pool: Pool, round_: int, ids: np.ndarray) -> list[OutboxItem]:
        return [OutboxItem(run_id=self.run_id, round=round_, pool_id=int(i), payload=pool.payload(int(i)),
                           prediction={"label": pool.classes[0], "score": 0.5}) for i in ids]

    def collect_until(self, oracle: Oracle, round_: int, n: int) -> list[Answer]:
        deadline = time.monotonic() + max(self.settle_seconds, 0.0)
        answers = oracle.collect(self.run_id, round_)
        while len(answers) < n and time.monotonic() < deadline:
            time.sleep(0.2)
            answers = oracle.collect(self.run_id, round_)
        return answers

    def test_submit_returns_every_key(self, pool: Pool) -> None:
        oracle = self.make_oracle(pool)
        items = self.items(pool, 0, pool.ids[:4])
        receipts = oracle.submit(items)
        assert set(receipts) == {it.key for it in items}

    def test_lookup_finds_submitted_keys_only(self, pool: Pool) -> None:
        oracle = self.make_oracle(pool)
        items = self.items(pool, 0, pool.ids[:3])
        oracle.submit(items)
        other = OutboxItem(run_id=self.run_id, round=0, pool_id=int(pool.ids[10])).key
        found = oracle.lookup([it.key for it in items] + [other])
        assert set(found) == {it.key for it in items}

    def test_collect_answers_each_item_of_the_round_once(self, pool: Pool) -> None:
        oracle = self.make_oracle(pool)
        r0, r1 = self.items(pool, 0, pool.ids[:3]), self.items(pool, 1, pool.ids[3:5])
        oracle.submit(r0)
        oracle.submit(r1)
        self.answer_all(oracle, pool, r0 + r1)
        answers = self.collect_until(oracle, 1, 2)
        assert sorted(a.pool_id for a in answers) == sorted(it.pool_id for it in r1)
        for a in answers:
            assert a.status in {"labeled", "skipped", "rejected"}
            if a.status == "labeled":
                assert a.label in pool.classes

    def test_lookup_before_resend_prevents_duplicates(self, pool: Pool) -> None:
        oracle = self.make_oracle(pool)
        items = self.items(pool, 2, pool.ids[:3])
        oracle.submit(items)
        found = oracle.lookup([it.key for it in items])
        again = [it for it in items if it.key not in found]
        assert again == []
        self.answer_all(oracle, pool, items)
        answers = self.collect_until(oracle, 2, 3)
        assert len(answers) == len({a.pool_id for a in answers}) == 3
