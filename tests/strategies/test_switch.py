"""Switch: composes two registered strategies and changes at the configured point."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import numpy as np
import pytest

from al_loop.errors import ConfigError
from strategies.switch import Switch, loo_nn_accuracy
from strategies.typiclust import TypiClust
from strategies.uncertainty import MarginSampling
from tests.contracts.strategy_contract import StrategyContract
from tests.test_cli import one_line_error, run_cli


class TestSwitch(StrategyContract):
    def make_strategy(self):
        return Switch()

    def test_uses_first_below_switch_at_and_then_from_it(self, setup) -> None:
        pool, view, labeled = setup  # 30 labels
        before = Switch(switch_at=31).select(view, self.ctx(pool, labeled, seed=2), 10)
        at = Switch(switch_at=30).select(view, self.ctx(pool, labeled, seed=2), 10)
        assert before.info["phase"] == "typiclust" and before.info["stage"] == "first"
        assert at.info["phase"] == "margin" and at.info["stage"] == "then"
        assert before.info["rule"] == at.info["rule"] == "labels"
        np.testing.assert_array_equal(before.ids, TypiClust().select(view, self.ctx(pool, labeled, seed=2), 10).ids)
        np.testing.assert_array_equal(at.ids, MarginSampling().select(view, self.ctx(pool, labeled, seed=2), 10).ids)

    def test_passes_parameters_to_the_inner_strategies(self, setup) -> None:
        pool, view, labeled = setup
        sel = Switch(first="probcover", first_params={"delta": 20.0}, switch_at=1000).select(
            view, self.ctx(pool, labeled), 5)
        assert sel.info["phase"] == "probcover" and sel.info["inner"]["delta"] == 20.0

    def test_auto_switches_at_labels_per_class_times_classes_and_not_before(self, setup) -> None:
        pool, view, labeled = setup  # 10 classes, labeled = every 10th item (30, all classes)
        rule = Switch(labels_per_class=3)  # switch_at="auto" is the default: 3 x 10 classes = 30 labels
        before = rule.select(view, self.ctx(pool, labeled[:29]), 5)
        at = rule.select(view, self.ctx(pool, labeled), 5)
        assert (before.info["rule"], before.info["switch_at_labels"], before.info["n_labeled"]) == ("auto", 30, 29)
        assert before.info["phase"] == "typiclust" and before.info["stage"] == "first"
        assert at.info["phase"] == "margin" and at.info["stage"] == "then" and at.info["n_labeled"] == 30
        np.testing.assert_array_equal(at.ids, MarginSampling().select(view, self.ctx(pool, labeled), 5).ids)
        np.testing.assert_array_equal(before.ids, TypiClust().select(view, self.ctx(pool, labeled[:29]), 5).ids)
        # the default, 10 per class, is 100 labels on 10 classes: 30 labels are still typicality
        default = Switch().select(view, self.ctx(pool, labeled), 5)
        assert default.info["switch_at_labels"] == 100 and default.info["phase"] == "typiclust"

    def test_auto_counts_the_classes_of_the_pool(self, setup) -> None:
        pool, view, labeled = setup
        ctx = self.ctx(pool, labeled)
        two_classes = dataclasses.replace(ctx, classes=ctx.classes[:2])  # only the rule reads the class count
        assert Switch(labels_per_class=10).decide(view, two_classes)["stage"] == "then"  # 30 >= 10 x 2
        assert Switch(labels_per_class=10).decide(view, ctx)["stage"] == "first"  # 30 < 10 x 10

    def test_auto_never_switches_back_as_labels_grow(self, setup) -> None:
        pool, view, _ = setup
        rule = Switch(labels_per_class=4)
        stages = [rule.decide(view, self.ctx(pool, pool.ids[:n]))["stage"] for n in range(10, 80, 5)]
        assert stages == sorted(stages)  # "first" < "then": one change, at 40 labels
        assert stages.index("then") == (40 - 10) // 5

    def test_same_seed_same_picks_in_both_phases(self, setup) -> None:
        pool, view, labeled = setup
        for switch_at in (1000, 0):
            a = Switch(switch_at=switch_at).select(view, self.ctx(pool, labeled, seed=3), 10)
            b = Switch(switch_at=switch_at).select(view, self.ctx(pool, labeled, seed=3), 10)
            np.testing.assert_array_equal(a.ids, b.ids)
            np.testing.assert_array_equal(a.scores, b.scores)
            assert a.info == b.info
        first = Switch(switch_at=1000)
        assert not np.array_equal(first.select(view, self.ctx(pool, labeled, seed=3), 10).ids,
                                  first.select(view, self.ctx(pool, labeled, seed=4), 10).ids)

    def test_info_is_json_and_names_the_signal(self, setup) -> None:
        pool, view, labeled = setup
        for sel in (Switch().select(view, self.ctx(pool, labeled), 5),
                    Switch(switch_at="loo").select(view, self.ctx(pool, labeled), 5)):
            info = json.loads(json.dumps(sel.info))
            assert {"phase", "stage", "rule", "n_labeled", "inner"} <= set(info)
        assert set(info) >= {"loo_nn_accuracy", "min_accuracy"} and "switch_at_labels" not in info

    def test_loo_switches_once_labels_predict_each_other(self, setup) -> None:
        pool, view, labeled = setup
        few = Switch(switch_at="loo").select(view, self.ctx(pool, labeled[:12]), 5)
        most = Switch(switch_at="loo").select(view, self.ctx(pool, pool.ids[:-20]), 5)
        threshold = Switch().min_accuracy
        assert few.info["phase"] == "typiclust" and few.info["loo_nn_accuracy"] < threshold
        assert most.info["phase"] == "margin" and most.info["loo_nn_accuracy"] >= threshold
        assert most.info["rule"] == "loo"

    def test_bad_configuration_fails_at_construction(self) -> None:
        with pytest.raises(ConfigError, match="unknown strategy"):
            Switch(then="nope")
        with pytest.raises(ConfigError, match="switch_at"):
            Switch(switch_at="later")
        with pytest.raises(ConfigError, match="switch_at"):
            Switch(switch_at=-1)
        for bad in (0, 2.5, True):
            with pytest.raises(ConfigError, match="labels_per_class must be an integer >= 1"):
                Switch(labels_per_class=bad)
        with pytest.raises(ConfigError, match="first_params"):
            Switch(first_params={"bogus": 1})
        with pytest.raises(ConfigError, match="nest"):
            Switch(first="switch")

    def test_checks_the_learner_for_both_strategies(self) -> None:
        with pytest.raises(ConfigError, match="needs learner capability"):
            Switch(first="random", then="margin").check_learner(frozenset())
        Switch(first="typiclust", then="random").check_learner(frozenset())


def test_loo_nn_accuracy_by_hand() -> None:
    X = np.array([[0.0], [1.0], [5.0], [6.0], [20.0]])
    # nearest other point: 1, 0, 3, 2, 3 -> labels agree for rows 0, 1, 2, 3 (row 4's neighbour is row 3)
    assert loo_nn_accuracy(X, np.array([0, 0, 1, 1, 0])) == 4 / 5
    assert loo_nn_accuracy(X, np.array([0, 1, 1, 1, 1])) == 3 / 5
    assert loo_nn_accuracy(X[:1], np.array([0])) == 0.0


def test_export_shows_both_phases_in_round_order(tmp_path, capsys, monkeypatch) -> None:
    """A real run through the CLI: 3 labels per class x 10 digits = 30 labels, reached after round 1."""
    db = tmp_path / "s.sqlite"
    code, _, err = run_cli(["simulate", "--dataset", "digits", "--strategy", "switch", "--param",
                            "switch.labels_per_class=3", "--rounds", "3", "--batch", "10", "--init", "20",
                            "--db", str(db)], capsys, monkeypatch)
    assert code == 0, err
    code, out, _ = run_cli(["export", "--db", str(db), "--what", "rounds", "--format", "csv"], capsys, monkeypatch)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["round"], r["phase"]) for r in rows] == [("0", "random"), ("1", "typiclust"), ("2", "margin"),
                                                         ("3", "margin"), ("4", "")]  # 4 only trains
    infos = [json.loads(r["info"]) for r in rows[1:4]]
    assert [(i["n_labeled"], i["switch_at_labels"], i["stage"]) for i in infos] == [
        (20, 30, "first"), (30, 30, "then"), (40, 30, "then")]
    code, out, _ = run_cli(["export", "--db", str(db), "--what", "selections"], capsys, monkeypatch)
    recs = [json.loads(line) for line in out.splitlines()]
    by_round = {r["round"]: {x["phase"] for x in recs if x["round"] == r["round"]} for r in recs}
    assert by_round == {0: {"random"}, 1: {"typiclust"}, 2: {"margin"}, 3: {"margin"}}
    assert [r["round"] for r in recs] == sorted(r["round"] for r in recs)


@pytest.mark.parametrize(("what", "hint"), [("round", "did you mean 'rounds'? "), ("phases", "")])
def test_export_of_an_unknown_table_is_one_line_and_leaves_the_store(tmp_path, capsys, monkeypatch, what,
                                                                      hint) -> None:
    db = tmp_path / "s.sqlite"
    assert run_cli(["simulate", "--strategy", "random", "--rounds", "1", "--batch", "5", "--init", "10",
                    "--db", str(db)], capsys, monkeypatch)[0] == 0
    before = db.read_bytes()
    code, out, err = run_cli(["export", "--db", str(db), "--what", what], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert one_line_error(err) == (f"error: unknown --what {what!r}; {hint}"
                                   "use one of labels, metrics, quarantine, rounds, selections")
    assert db.read_bytes() == before


def test_export_phase_of_other_strategies_and_of_a_typiclust_seed_batch(tmp_path, capsys, monkeypatch) -> None:
    db = tmp_path / "s.sqlite"
    assert run_cli(["simulate", "--strategy", "margin", "--init-strategy", "typiclust", "--rounds", "2",
                    "--batch", "5", "--init", "10", "--db", str(db)], capsys, monkeypatch)[0] == 0
    code, out, _ = run_cli(["export", "--db", str(db), "--what", "rounds"], capsys, monkeypatch)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["round"], r["phase"]) for r in rows] == [(0, "typiclust"), (1, "margin"), (2, "margin"), (3, None)]
    assert json.loads(rows[0]["info"])["n_clusters"] == 10  # the seed batch's own info (TypiClust's clusters)


@pytest.mark.parametrize(("param", "message"), [
    ("switch.labels_per_class=0",
     "error: switch labels_per_class must be an integer >= 1, got 0; pass e.g. --param switch.labels_per_class=10"),
    ("switch.switch_at=later",
     "error: switch switch_at='later' is not a label count or a rule; pass a number, 'auto' (labels per class) "
     "or 'loo' (1-NN accuracy)"),
])
def test_bad_switch_parameter_is_one_line_and_writes_no_store(tmp_path, capsys, monkeypatch, param, message) -> None:
    db = tmp_path / "s.sqlite"
    code, _, err = run_cli(["simulate", "--strategy", "switch", "--param", param, "--rounds", "1", "--batch", "5",
                            "--init", "10", "--db", str(db)], capsys, monkeypatch)
    assert code == 2 and one_line_error(err) == message
    assert not db.exists()
