"""PRISM: the contract suite plus the mode chosen from the given sets and guidance behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from al_loop.errors import ConfigError
from strategies.prism import Prism, prism_mode
from tests.contracts.strategy_contract import StrategyContract, make_context


def _exemplars(pool, labeled, digit: int, n: int = 3) -> np.ndarray:
    unl = np.setdiff1d(pool.ids, labeled)
    return unl[pool.hidden_labels(unl) == digit][:n]


class TestPrism(StrategyContract):
    def make_strategy(self):
        return Prism()

    def extra_context(self, pool, labeled):
        # exemplars are any pool items (labeled or not): three 3s
        return {"query_ids": pool.ids[pool.hidden_labels(pool.ids) == 3][:3]}

    def test_finds_more_like_the_exemplars(self, setup) -> None:
        pool, view, labeled = setup
        q = _exemplars(pool, labeled, 3, n=5)
        sel = Prism(eta=1.0).select(view, make_context(pool, labeled, query_ids=q), 10)
        hits = (pool.hidden_labels(sel.ids) == 3).mean()
        base_rate = (pool.hidden_labels(np.setdiff1d(pool.ids, labeled)) == 3).mean()
        assert hits >= 0.5 > base_rate
        assert not np.isin(sel.ids, q).any()

    def test_private_set_is_avoided(self, setup) -> None:
        pool, view, labeled = setup
        unl = np.setdiff1d(pool.ids, labeled)
        p = unl[pool.hidden_labels(unl) == 0]
        sel = Prism(nu=1.0).select(view, make_context(pool, labeled, private_ids=p[:5]), 20)
        assert sel.info["mode"] == "scg"
        assert not np.isin(sel.ids, p[:5]).any()
        assert (pool.hidden_labels(sel.ids) == 0).sum() <= 1

    @pytest.mark.parametrize("function", ["fl", "logdet"])
    def test_both_sets_give_cmi(self, setup, function) -> None:
        pool, view, labeled = setup
        unl = np.setdiff1d(pool.ids, labeled)
        p = unl[pool.hidden_labels(unl) == 0][:5]
        sel = Prism(function=function).select(
            view, make_context(pool, labeled, query_ids=_exemplars(pool, labeled, 3), private_ids=p), 10)
        assert sel.info["mode"] == "scmi"
        assert sel.info["function"] == f"{function}cmi"

    def test_neither_set_is_a_config_error_naming_the_options(self, setup) -> None:
        pool, view, labeled = setup
        with pytest.raises(ConfigError, match="--query-ids/--query-file or --private-ids/--private-file"):
            Prism().select(view, make_context(pool, labeled), 5)

    def test_function_without_the_needed_form_is_a_config_error(self, setup) -> None:
        pool, view, labeled = setup
        with pytest.raises(ConfigError, match="no scmi form"):
            Prism(function="gc").select(view, make_context(pool, labeled, query_ids=labeled[:2],
                                                           private_ids=labeled[2:4]), 5)

    def test_requires_follow_the_embedding(self) -> None:
        assert "grad" in Prism(embedding="grad").requires
        assert "grad" not in Prism().requires


def test_prism_mode_table() -> None:
    one = np.array([1])
    assert prism_mode(one, None) == "smi"
    assert prism_mode(None, one) == "scg"
    assert prism_mode(one, one) == "scmi"
    with pytest.raises(ConfigError):
        prism_mode(np.array([], dtype=np.int64), None)
