"""Stopping without validation labels: kappa, signals, rules, and runs that stop by them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from al_loop import api
from al_loop.config import RunConfig
from al_loop.errors import ConfigError
from al_loop.stopping import (
    Signals,
    cohen_kappa,
    describe,
    firing_round,
    normalised_entropy,
    parse_rule,
    round_signals,
    rule_reason,
    stop_set_ids,
)
from al_loop.store import Store
from tests.test_cli import one_line_error, run_cli


@pytest.mark.parametrize("seed", range(5))
def test_kappa_equals_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, 300)
    b = np.where(rng.random(300) < 0.7, a, rng.integers(0, 4, 300))
    assert cohen_kappa(a, b, 4) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


def test_kappa_by_hand_and_its_degenerate_case() -> None:
    # a = [0,0,1,1], b = [0,1,1,1]: p_o = 3/4; marginals (2,2) and (1,3): p_e = (2*1 + 2*3)/16 = 1/2
    assert cohen_kappa(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2) == pytest.approx(0.5)
    assert cohen_kappa(np.zeros(5, int), np.zeros(5, int), 3) == 1.0  # one class everywhere, full agreement
    with pytest.raises(ValueError, match="one length"):
        cohen_kappa(np.zeros(3, int), np.zeros(4, int), 2)


def test_normalised_entropy_bounds() -> None:
    p = np.array([[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    assert normalised_entropy(p) == pytest.approx([1.0, 0.0, 0.5])


def test_round_signals_by_hand() -> None:
    proba = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.6, 0.4]])
    sig, pred = round_signals(3, 40, proba, np.array([True, True, False, True]), np.array([0, 1, 1, 1]))
    assert pred.tolist() == [0, 0, 1, 0]
    assert sig.changed == pytest.approx(2 / 4)
    assert sig.kappa == pytest.approx(cohen_kappa_score([0, 1, 1, 1], [0, 0, 1, 0]))
    h = normalised_entropy(proba[[0, 1, 3]])
    assert sig.max_uncertainty == pytest.approx(1.0) and sig.mean_uncertainty == pytest.approx(h.mean())
    first, _ = round_signals(1, 20, proba, np.zeros(4, bool), None)
    assert first.kappa is None and first.changed is None and first.max_uncertainty is None


def test_parse_rule_fills_defaults_and_refuses_in_one_line() -> None:
    assert parse_rule("stable-predictions").spec == "stable-predictions:kappa=0.99,window=3"
    assert parse_rule("max-uncertainty:threshold=0.2").params == {"threshold": 0.2}
    for bad, match in [("sleepy", "unknown stopping rule"), ("stable-predictions:k=3", "takes window=, kappa="),
                       ("overall-uncertainty:threshold=x", "must be a number"),
                       ("stable-predictions:window=0", "window must be"),
                       ("classification-change:threshold=2", "threshold must be in")]:
        with pytest.raises(ConfigError, match=match) as info:
            parse_rule(bad)
        assert "\n" not in str(info.value)


def _history(kappas: list[float | None]) -> list[Signals]:
    return [Signals(i + 1, 10 * (i + 1), k, None if k is None else 1 - k, 0.9 - 0.1 * i, 0.5 - 0.05 * i)
            for i, k in enumerate(kappas)]


def test_stable_predictions_needs_a_full_window_whose_mean_reaches_kappa() -> None:
    rule = parse_rule("stable-predictions:window=3,kappa=0.99")
    assert rule_reason(rule, _history([None, 1.0, 1.0])) is None  # only two kappas yet
    assert "mean kappa 0.9917" in rule_reason(rule, _history([None, 0.98, 0.995, 1.0]))  # the mean, not each
    assert rule_reason(rule, _history([None, 0.97, 0.995, 1.0])) is None  # mean 0.9883
    hist = _history([None, 0.99, 0.995, 1.0])
    assert "mean kappa 0.9950 >= 0.99" in rule_reason(rule, hist)
    assert firing_round(rule, _history([None, 0.5, 0.99, 0.995, 1.0, 1.0])).round == 5


def test_uncertainty_and_change_rules_fire_at_their_thresholds() -> None:
    hist = _history([None, 0.9, 0.95, 0.99, 1.0])  # max 0.9..0.5, mean 0.5..0.3, changed 0.1..0.0
    assert firing_round(parse_rule("max-uncertainty:threshold=0.6"), hist).round == 4
    assert firing_round(parse_rule("overall-uncertainty:threshold=0.36"), hist).round == 4
    assert firing_round(parse_rule("classification-change"), hist).round == 5
    assert firing_round(parse_rule("max-uncertainty:threshold=0.1"), hist) is None


def test_describe_names_the_stable_rounds_and_each_rule() -> None:
    lines = describe([parse_rule("stable-predictions")], _history([None, 0.8, 0.995, 1.0]))
    assert lines[0].startswith("stopping signals (round 4, 40 labels): kappa 1.0000")
    assert "predictions stable for 2 round(s): kappa >= 0.99 each round" in lines
    assert lines[-1] == "rule stable-predictions:kappa=0.99,window=3: not met"


def test_stop_set_is_fixed_by_the_seed_and_the_whole_pool_when_small() -> None:
    ids = np.arange(100, 1100)
    a, b = stop_set_ids(ids, 50, 3), stop_set_ids(ids, 50, 3)
    assert np.array_equal(a, b) and len(np.unique(a)) == 50 and np.isin(a, ids).all()
    assert not np.array_equal(a, stop_set_ids(ids, 50, 4))
    assert np.array_equal(stop_set_ids(ids, 0, 3), ids) and np.array_equal(stop_set_ids(ids, 5000, 3), ids)


def test_config_keeps_rules_canonical_and_out_of_the_group_key_when_none() -> None:
    cfg = RunConfig(dataset="iris", strategy="random", stop=("stable-predictions:kappa=0.98",))
    assert cfg.stop == ("stable-predictions:kappa=0.98,window=3",) and cfg.tracks_stopping
    assert RunConfig.from_json(cfg.to_json()) == cfg
    plain = RunConfig(dataset="iris", strategy="random")
    tracked = RunConfig(dataset="iris", strategy="random", track_stopping=True)
    assert plain.group_key() == tracked.group_key() and '"stop":' not in plain.group_key()
    with pytest.raises(ConfigError, match="repeat a rule"):
        RunConfig(dataset="iris", strategy="random", stop=("stable-predictions", "stable-predictions:window=3"))


def test_tracking_does_not_change_selections(tmp_path) -> None:
    kw = dict(dataset="digits", strategies=["margin"], rounds=4, batch=10, init=20)
    a = api.simulate(str(tmp_path / "a.sqlite"), **kw)
    b = api.simulate(str(tmp_path / "b.sqlite"), **kw, options={"track_stopping": True})
    sa, sb = Store(tmp_path / "a.sqlite", readonly=True), Store(tmp_path / "b.sqlite", readonly=True)
    assert [(r.pool_id, r.round) for r in sa.selections(a[0])] == [(r.pool_id, r.round) for r in sb.selections(b[0])]
    sig = sb.stop_signals(b[0])
    assert [s.round for s in sig] == [1, 2, 3, 4, 5] and sig[0].kappa is None
    assert all(0.0 <= s.kappa <= 1.0 and 0.0 <= s.changed <= 1.0 for s in sig[1:])
    pool = api.build_pool(sb.config(b[0]))
    assert len(pool) < 2000  # so the stop set is the whole pool
    assert len(np.frombuffer(sig[0].predictions, dtype=np.int16)) == len(pool)


def test_a_rule_ends_the_run_where_the_what_if_says(tmp_path) -> None:
    db = tmp_path / "s.sqlite"
    kw = dict(dataset="digits", strategies=["margin"], rounds=12, batch=20, init=20)
    full = api.simulate(str(db), **kw, options={"track_stopping": True})[0]
    rule = parse_rule("stable-predictions:window=2,kappa=0.9")
    store = Store(db, readonly=True)
    expected = firing_round(rule, [Signals.of(r) for r in store.stop_signals(full)])
    store.close()
    assert expected is not None and expected.round < 13  # it fires before the end on digits
    stopped = api.simulate(str(db), **kw, options={"stop": (rule.spec,)})[0]
    store = Store(db, readonly=True)
    run = store.run(stopped)
    assert run.status == "finished"
    assert run.note.startswith(f"stopped at round {expected.round} with {expected.n_labels} labels by "
                               "stable-predictions: predictions stable for 2 round(s)")
    assert max(m.round for m in store.metrics(stopped)) == expected.round
    assert store.stop_signals(stopped)[-1].round == expected.round
    # the same selections as the full run up to the round where it stopped
    sel = lambda rid: sorted((r.round, r.pool_id) for r in store.selections(rid) if r.round < expected.round)  # noqa: E731
    assert sel(stopped) == sel(full)
    store.close()


def test_cli_stop_option_and_its_errors(tmp_path, capsys, monkeypatch) -> None:
    db = tmp_path / "c.sqlite"
    code, _, err = run_cli(["simulate", "--dataset", "iris", "--strategy", "entropy", "--rounds", "2", "--batch", "5",
                            "--init", "6", "--db", str(db), "--stop", "sleepy"], capsys, monkeypatch)
    assert code == 2 and "unknown stopping rule 'sleepy'" in one_line_error(err) and not db.exists()
    code, _, err = run_cli(["simulate", "--dataset", "iris", "--strategy", "entropy", "--rounds", "3", "--batch", "5",
                            "--init", "6", "--db", str(db), "--stop", "max-uncertainty:threshold=1"],
                           capsys, monkeypatch)
    assert code == 0, err
    store = Store(db, readonly=True)
    run = store.runs()[0]
    assert run.note.startswith("stopped at round 1 with 6 labels by max-uncertainty: max uncertainty")
    assert store.config(run.id).stop == ("max-uncertainty:threshold=1",)
    store.close()


def test_campaign_status_shows_the_signals_each_round_and_the_rules(tmp_path, capsys, monkeypatch) -> None:
    from al_loop.schema import StopSignalRow
    from al_loop.types import RoundState

    db = tmp_path / "c.sqlite"
    store = Store(db)
    run = store.create_run(RunConfig(dataset="digits", strategy="margin", oracle="label_studio", track_stopping=True,
                                     stop=("stable-predictions:window=2",),
                                     oracle_params={"url": "http://127.0.0.1:1", "title": "t", "kind": "image"}))
    kappas = [None, 0.995, 0.999]
    for idx in range(4):
        if idx:
            for frm, to in ((RoundState.SELECTED, RoundState.DISPATCHED), (RoundState.DISPATCHED, RoundState.AWAITING),
                            (RoundState.AWAITING, RoundState.LABELED)):
                store.set_state(run, idx - 1, frm, to)
            store.next_round(run, idx - 1)
        sig = None if idx == 0 else StopSignalRow(
            run_id=run, round=idx, n_labels=10 * idx, kappa=kappas[idx - 1],
            changed=None if kappas[idx - 1] is None else 0.01, max_uncertainty=0.8, mean_uncertainty=0.2,
            predictions=np.zeros(4, np.int16).tobytes())
        store.commit_selection(run, idx, np.arange(5 * idx, 5 * idx + 5), np.zeros(5), [None] * 5, None, signals=sig)
    store.close()
    code, out, err = run_cli(["campaign", "status", "--db", str(db)], capsys, monkeypatch)
    assert code == 0, err
    assert f"run {run}: stopping signals (round 3, 30 labels): kappa 0.9990 vs the previous model" in out
    assert f"run {run}: predictions stable for 2 round(s): kappa >= 0.99 each round" in out
    assert (f"run {run}: rule stable-predictions:kappa=0.99,window=2: fires: predictions stable for 2 round(s): "
            "mean kappa 0.9970 >= 0.99") in out
    assert "0.9950" in out and "1.00%" in out  # the per-round columns


def test_a_learner_without_probabilities_is_refused_with_stop(monkeypatch) -> None:
    from sklearn.linear_model import LogisticRegression

    from al_loop.learners import SklearnLearner
    from al_loop.registry import LEARNERS

    class NoProba(SklearnLearner):
        capabilities = frozenset()

    monkeypatch.setitem(LEARNERS._items, "noproba", lambda pool=None: NoProba(LogisticRegression()))
    monkeypatch.setitem(LEARNERS._origins, "noproba", __name__)
    api.plan_simulation("iris", ["random"], rounds=1, batch=5, init=6, learner="noproba")  # fine without a rule
    with pytest.raises(ConfigError, match="stopping signals read the model's class probabilities") as info:
        api.plan_simulation("iris", ["random"], rounds=1, batch=5, init=6, learner="noproba",
                            options={"stop": ("stable-predictions",)})
    assert "\n" not in str(info.value)
