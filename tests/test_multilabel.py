"""Multi-label classification through the loop: label sets, data, learners, strategies, oracle, store, CLI.

Real files in tmp_path and real SQLite stores. The pure scores are tested in
``tests/strategies/test_multilabel_scores.py``; the Label Studio side (several
choices per task, against a real server) in ``tests/integration/test_campaign_multilabel.py``.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from al_loop import api
from al_loop import multilabel as ml
from al_loop.canvas import compose_canvases
from al_loop.config import RunConfig
from al_loop.datasets import load_dataset, make_pool
from al_loop.errors import ConfigError, DataError
from al_loop.learners import make_mlp_sigmoid, make_ovr_logreg
from al_loop.pool import Pool
from al_loop.store import Store
from al_loop.types import Answer, QueryContext
from al_loop.view import ModelView
from oracles.simulated import SimulatedOracle, SimulatedOracleConfig
from strategies._multilabel_scores import br_uncertainty, cvirs_scores, mmc_label_counts, mmc_scores
from tests.test_cli import one_line_error, run_cli

TAGS = ("action", "comedy", "drama")
TINY = ["--rounds", "2", "--batch", "6", "--init", "10"]


def _features(n: int = 80, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Four features and three labels, each a threshold of one feature (learnable, overlapping)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0.3, X[:, 2] > -0.2], axis=1).astype(np.uint8)
    return X, Y


def _csv(path: Path, n: int = 80, sep: str = ";", order: str = "sorted") -> np.ndarray:
    X, Y = _features(n)
    lines = ["id,f1,f2,f3,f4,tags"]
    for i, (x, y) in enumerate(zip(X, Y, strict=True)):
        names = [TAGS[j] for j in np.flatnonzero(y)]
        if order == "reversed":
            names = names[::-1]
        cell = sep.join(names)
        lines.append(f"item{i},{x[0]:.5f},{x[1]:.5f},{x[2]:.5f},{x[3]:.5f},\"{cell}\"")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Y


def _pool(n: int = 80) -> Pool:
    X, Y = _features(n)
    return Pool(X=X, ids=np.arange(n), classes=TAGS, y=Y, X_test=X[:20], y_test=Y[:20], multilabel=True)


# -- label sets ------------------------------------------------------------------------------------------------

def test_label_sets_are_canonical_names_in_class_order() -> None:
    Y, classes = ml.encode_sets(["b;a", "a", " c ; a ", "", None], "x")
    assert classes == ("a", "b", "c")
    assert Y.tolist() == [[1, 1, 0], [1, 0, 0], [1, 0, 1], [0, 0, 0], [0, 0, 0]] and Y.dtype == np.uint8
    assert [ml.set_string(r, classes) for r in Y] == ["a;b", "a", "a;c", "", ""]
    assert ml.canonical("c;a;a", classes) == "a;c" and ml.canonical("", classes) == ""
    assert ml.canonical("a;z", classes) is None and ml.parse_set("z", classes) is None
    assert ml.parse_set("c;b", classes).tolist() == [0, 1, 1]


def test_label_sets_need_two_names_and_no_separator_in_a_name() -> None:
    with pytest.raises(DataError, match="only \\['a'\\]; multi-label needs at least two label names"):
        ml.encode_sets(["a", "a;", ""], "f.csv")
    with pytest.raises(DataError, match="no label at all"):
        ml.encode_sets(["", None], "f.csv")
    with pytest.raises(DataError, match="contain ';'.*rename them"):
        ml.check_class_names(("a;b", "c"), "f.csv")
    with pytest.raises(DataError, match="name\\(s\\) \\['z'\\] that the training labels lack"):
        ml.map_sets(["a;z"], ("a", "b"), "test.csv")


def test_indicator_matrix_checks_shape_and_values() -> None:
    Y, classes = ml.indicator_matrix(np.array([[0, 1, 1], [1, 0, 0]], dtype=np.float64), "y.npy")
    assert Y.dtype == np.uint8 and classes == ("0", "1", "2")
    with pytest.raises(DataError, match="not all 0 or 1"):
        ml.indicator_matrix(np.array([[0, 2], [1, 0]]), "y.npy")
    with pytest.raises(DataError, match="give a 0/1 matrix \\(n, L\\) with L >= 2"):
        ml.indicator_matrix(np.array([0, 1, 1]), "y.npy")


def test_evaluate_gives_the_four_metrics_of_thresholded_probabilities() -> None:
    Y = np.array([[1, 0, 1], [0, 1, 0]])
    P = np.array([[0.9, 0.6, 0.4], [0.2, 0.5, 0.1]])  # predicted [1,1,0], [0,1,0]
    out = ml.evaluate(Y, P)
    assert out["subset_accuracy"] == 0.5
    assert out["hamming_loss"] == pytest.approx(2 / 6)
    assert out["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))  # tp 2, fp 1, fn 1
    assert out["macro_f1"] == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)


# -- canvases --------------------------------------------------------------------------------------------------

def test_canvases_show_their_labels_and_never_share_a_source_image() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(1, 255, size=(200, 4, 4)).astype(np.uint8)
    labels = rng.integers(0, 5, size=200)
    canvases, Y, sources = compose_canvases(images, labels, 5, n=40, grid=2, fill=0.5, seed=1)
    assert canvases.shape == (40, 8, 8) and Y.shape == (40, 5)
    used = sources[sources >= 0]
    assert len(np.unique(used)) == len(used)  # each source image at most once
    assert ((sources >= 0).sum(axis=1) >= 1).all()  # at least one item per canvas
    for i in range(40):
        assert set(np.flatnonzero(Y[i])) == {int(labels[s]) for s in sources[i] if s >= 0}
        for j, s in enumerate(sources[i]):
            r, c = divmod(j, 2)
            cell = canvases[i, r * 4:(r + 1) * 4, c * 4:(c + 1) * 4]
            assert np.array_equal(cell, images[s] if s >= 0 else np.zeros((4, 4), np.uint8))
    again = compose_canvases(images, labels, 5, n=40, grid=2, fill=0.5, seed=1)
    assert np.array_equal(again[2], sources)
    assert not np.array_equal(compose_canvases(images, labels, 5, n=40, grid=2, fill=0.5, seed=2)[2], sources)


def test_canvases_refuse_more_cells_than_images() -> None:
    images = np.zeros((10, 2, 2), np.uint8)
    with pytest.raises(DataError, match="need .* source images but there are 10; lower n or fill"):
        compose_canvases(images, np.zeros(10, int), 2, n=20, grid=2, fill=1.0)


# -- data files ------------------------------------------------------------------------------------------------

def test_csv_label_column_of_sets_loads_as_a_matrix_and_splits_without_stratifying(tmp_path: Path) -> None:
    Y = _csv(tmp_path / "m.csv", order="reversed")
    ds = load_dataset("file", features=str(tmp_path / "m.csv"), label_column="tags", id_column="id",
                      multilabel=True)
    assert ds.multilabel and ds.classes == TAGS and np.array_equal(ds.y, Y)
    pool = make_pool(ds, test_fraction=0.25)
    assert pool.multilabel and pool.y.shape == (60, 3) and pool.y_test.shape == (20, 3)
    assert np.array_equal(pool.hidden_labels(np.array([int(pool.ids[0])]))[0], Y[int(pool.ids[0])])


def test_npy_indicator_labels_and_a_test_file_of_sets(tmp_path: Path) -> None:
    X, Y = _features(40)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "Y.npy", Y)
    ds = load_dataset("file", features=str(tmp_path / "X.npy"), labels=str(tmp_path / "Y.npy"), multilabel=True)
    assert ds.classes == ("0", "1", "2") and np.array_equal(ds.y, Y)
    _csv(tmp_path / "train.csv")
    _csv(tmp_path / "test.csv", n=30)
    ds = load_dataset("file", features=str(tmp_path / "train.csv"), label_column="tags", drop_columns="id",
                      test_features=str(tmp_path / "test.csv"), multilabel=True)
    assert ds.y_test.shape == (30, 3)


def test_multilabel_texts_from_jsonl(tmp_path: Path) -> None:
    rows = [{"text": f"a film {i} with " + ("jokes " if i % 2 else "tears ") + ("fights" if i % 3 else ""),
             "label": ";".join(n for n, on in (("comedy", i % 2), ("drama", not i % 2), ("action", i % 3)) if on)}
            for i in range(30)]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ds = load_dataset("text", path=str(tmp_path / "t.jsonl"), multilabel=True)
    assert ds.multilabel and ds.classes == TAGS and ds.y.shape == (30, 3) and ds.y[1].tolist() == [1, 1, 0]


def test_a_labeled_image_folder_is_not_multilabel(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="one class per image; multi-label photos need a campaign"):
        load_dataset("images", root=str(tmp_path), encoder="pixels", multilabel=True)


def test_pool_refuses_a_label_matrix_of_the_wrong_width() -> None:
    with pytest.raises(DataError, match="multi-label labels have shape \\(3, 2\\); give a 0/1 matrix with one column"):
        Pool(X=np.zeros((3, 2)), ids=np.arange(3), classes=TAGS, y=np.zeros((3, 2)), multilabel=True)


# -- learners --------------------------------------------------------------------------------------------------

def test_binary_relevance_equals_one_logistic_regression_per_label() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pool = _pool()
    ids = np.arange(50)
    learner = make_ovr_logreg()
    assert "multilabel" in learner.capabilities
    learner.fit(pool, ids, pool.hidden_labels(ids), seed=0)
    P = learner.predict_proba(pool, np.arange(50, 80))
    assert P.shape == (30, 3) and not np.allclose(P.sum(axis=1), 1.0)
    for j in range(3):
        ref = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(pool.X[:50], pool.y[:50, j])
        assert np.allclose(P[:, j], ref.predict_proba(pool.X[50:])[:, 1])


def test_a_label_constant_so_far_gets_its_smoothed_frequency() -> None:
    pool = _pool()
    ids = np.flatnonzero(pool.y[:, 0] == 0)[:12]  # label 0 absent from every labeled item
    learner = make_ovr_logreg()
    learner.fit(pool, ids, pool.hidden_labels(ids), seed=0)
    P = learner.predict_proba(pool, np.arange(80))
    assert np.allclose(P[:, 0], 1 / 14)  # (0 + 1) / (12 + 2)


def test_sigmoid_mlp_learns_each_label_and_is_seeded() -> None:
    pool = _pool(200)
    ids = np.arange(150)
    a, b = make_mlp_sigmoid(), make_mlp_sigmoid()
    a.fit(pool, ids, pool.hidden_labels(ids), seed=4)
    b.fit(pool, ids, pool.hidden_labels(ids), seed=4)
    rest = np.arange(150, 200)
    P = a.predict_proba(pool, rest)
    assert P.shape == (50, 3) and ((P >= 0) & (P <= 1)).all()
    assert np.array_equal(P, b.predict_proba(pool, rest))
    assert ml.evaluate(pool.y[rest], P)["hamming_loss"] < 0.2  # chance is ~0.5
    assert a.embed(pool, rest).shape[0] == 50
    with pytest.raises(NotImplementedError, match="sigmoid"):
        a.grad_embed(pool, rest)


# -- strategies ------------------------------------------------------------------------------------------------

def _fitted_view(pool: Pool, labeled: np.ndarray) -> tuple[ModelView, QueryContext]:
    learner = make_ovr_logreg()
    learner.fit(pool, labeled, pool.hidden_labels(labeled), seed=0)
    unlabeled = np.setdiff1d(pool.ids, labeled)
    ctx = QueryContext(round=1, seed=0, labeled_ids=labeled, labels=pool.hidden_labels(labeled),
                       unlabeled_ids=unlabeled, classes=pool.classes, rng=np.random.default_rng(0))
    return ModelView(pool, learner), ctx


@pytest.mark.parametrize("name, params", [("br_uncertainty", {}), ("br_uncertainty", {"reduce": "max"}),
                                          ("mmc", {}), ("cvirs", {})])
def test_multilabel_strategies_pick_the_top_of_their_scores(name: str, params: dict) -> None:
    pool = _pool()
    labeled = np.arange(0, 80, 4)
    view, ctx = _fitted_view(pool, labeled)
    sel = api.build_strategy(name, params).select(view, ctx, 7)
    P, Y = view.proba(ctx.unlabeled_ids), pool.hidden_labels(labeled)
    if name == "br_uncertainty":
        scores = br_uncertainty(P, params.get("reduce", "mean"))
    elif name == "mmc":
        scores = mmc_scores(P, mmc_label_counts(view.proba(labeled), Y, P, seed=0))
    else:
        scores = cvirs_scores(P, Y)
    best = ctx.unlabeled_ids[np.argsort(-scores, kind="stable")[:7]]
    assert sorted(sel.ids.tolist()) == sorted(best.tolist())
    assert np.allclose(np.sort(sel.scores), np.sort(scores)[-7:])


def test_br_uncertainty_refuses_an_unknown_reduction() -> None:
    with pytest.raises(ConfigError, match="reduce=mean or reduce=max, got 'sum'"):
        api.build_strategy("br_uncertainty", {"reduce": "sum"})


@pytest.mark.parametrize("learner, strategy, match", [
    ("logreg", "br_uncertainty", "multi-label and learner 'logreg' predicts one class per item; use --learner "
                                 "ovr_logreg"),
    ("ovr_logreg", "margin", "strategy 'margin' reads single-label \\(softmax\\) probabilities"),
])
def test_single_label_pieces_are_refused_on_multilabel_data(learner: str, strategy: str, match: str) -> None:
    pool = _pool()
    config = RunConfig(dataset="x", strategy=strategy, learner=learner, init=10)
    with pytest.raises(ConfigError, match=match):
        api.validate(config, pool, api.build_learner(learner, pool), api.build_strategy(strategy, {}))


def test_multilabel_pieces_are_refused_on_single_label_data_and_stopping_on_multilabel() -> None:
    single = make_pool(load_dataset("iris"))
    config = RunConfig(dataset="iris", strategy="random", learner="ovr_logreg")
    with pytest.raises(ConfigError, match="learner 'ovr_logreg' is for multi-label data"):
        api.validate(config, single, api.build_learner("ovr_logreg", single), api.build_strategy("random", {}))
    config = RunConfig(dataset="iris", strategy="mmc", learner="logreg")
    with pytest.raises(ConfigError, match="strategy 'mmc' is for multi-label data"):
        api.validate(config, single, api.build_learner("logreg", single), api.build_strategy("mmc", {}))
    pool = _pool()
    config = RunConfig(dataset="x", strategy="random", learner="ovr_logreg", stop=("stable-predictions",))
    with pytest.raises(ConfigError, match="stopping rules read single-label predictions"):
        api.validate(config, pool, api.build_learner("ovr_logreg", pool), api.build_strategy("random", {}))


# -- simulated oracle and store ------------------------------------------------------------------------------

def test_simulated_noise_flips_each_label_independently_and_reproducibly() -> None:
    n = 4000
    Y = np.random.default_rng(1).integers(0, 2, size=(n, 3)).astype(np.uint8)
    pool = Pool(X=np.zeros((n, 1)), ids=np.arange(n), classes=TAGS, y=Y, multilabel=True)
    clean = SimulatedOracle(pool, seed=0)
    assert all(clean.answer_for(i).label == ml.set_string(Y[i], TAGS) for i in range(50))
    noisy = SimulatedOracle(pool, seed=0, config=SimulatedOracleConfig(noise_rate=0.2))
    got = np.stack([ml.parse_set(noisy.answer_for(i).label, TAGS) for i in range(n)])
    flipped = got != Y
    assert abs(flipped.mean() - 0.2) < 0.02  # per label, not per item
    assert abs(flipped.any(axis=1).mean() - (1 - 0.8 ** 3)) < 0.03
    again = SimulatedOracle(pool, seed=0, config=SimulatedOracleConfig(noise_rate=0.2))
    assert [again.answer_for(i).label for i in range(100, 0, -1)] == [noisy.answer_for(i).label
                                                                        for i in range(100, 0, -1)]


def test_store_keeps_sets_canonical_and_quarantines_unknown_labels(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    run_id = store.create_run(RunConfig(dataset="x", strategy="random", learner="ovr_logreg", multilabel=True))
    answers = [Answer(pool_id=1, status="labeled", label="drama;action", annotation_id="a1"),
               Answer(pool_id=2, status="labeled", label="", annotation_id="a2"),
               Answer(pool_id=3, status="labeled", label="action;horror", annotation_id="a3")]
    counts = store.apply_answers(run_id, 0, answers, TAGS)
    assert counts["labeled"] == 2 and counts["quarantined"] == 1
    labels = {r.pool_id: r.label for r in store.labels(run_id)}
    assert labels == {1: "action;drama", 2: ""}
    (q,) = store.quarantine(run_id)
    assert q.pool_id == 3 and "'action;horror' names a label outside the classes" in q.reason
    again = store.apply_answers(run_id, 0, [Answer(pool_id=1, status="labeled", label="action;drama",
                                                   annotation_id="a1")], TAGS)
    assert again["unchanged"] == 1  # the canonical form of the same set is no change
    store.close()


# -- end to end ------------------------------------------------------------------------------------------------

def test_simulate_a_multilabel_csv_end_to_end_with_metrics_compare_and_curves(tmp_path: Path, capsys,
                                                                              monkeypatch) -> None:
    _csv(tmp_path / "m.csv", n=120)
    db = tmp_path / "s.sqlite"
    args = ["simulate", "--features", str(tmp_path / "m.csv"), "--label-column", "tags", "--id-column", "id",
            "--multilabel", "--learner", "ovr_logreg", "--db", str(db), "--seeds", "2", "--metric", "micro_f1",
            *TINY]
    code, out, err = run_cli([*args, "--strategy", "br_uncertainty", "--strategy", "cvirs", "--strategy", "random"],
                             capsys, monkeypatch)
    assert code == 0, err
    assert "micro_f1" in out and "br_uncertainty" in out
    con = sqlite3.connect(db)
    rows = con.execute("SELECT accuracy, macro_f1, micro_f1, hamming_loss FROM metrics").fetchall()
    assert len(rows) == 3 * 2 * 3 and all(v is not None and 0 <= v <= 1 for r in rows for v in r)
    labels = [r[0] for r in con.execute("SELECT label FROM labels")]
    assert all(ml.canonical(v, TAGS) == v for v in labels) and any(";" in v for v in labels)
    con.close()
    store = Store(db, readonly=True)
    assert all(store.config(r.id).multilabel for r in store.runs())
    store.close()
    code, out, err = run_cli(["compare", "--db", str(db), "--out", str(tmp_path / "rep"), "--metric", "micro_f1",
                              "--no-ceiling"], capsys, monkeypatch)
    assert code == 0, err
    assert "micro_f1" in (tmp_path / "rep" / "summary.md").read_text()
    code, _, err = run_cli(["compare", "--db", str(db), "--out", str(tmp_path / "rep2"), "--metric", "hamming_loss"],
                           capsys, monkeypatch)
    assert code == 2 and "hamming_loss is a loss; use --metric micro_f1" in one_line_error(err)
    code, out, err = run_cli(["curves", "--db", str(db), "--out", str(tmp_path / "c.png"), "--metric", "hamming_loss"],
                             capsys, monkeypatch)
    assert code == 0, err
    assert (tmp_path / "c.png").stat().st_size > 0


def test_same_seed_same_multilabel_selections(tmp_path: Path) -> None:
    _csv(tmp_path / "m.csv", n=100)
    params = {"features": str(tmp_path / "m.csv"), "label_column": "tags", "drop_columns": "id", "multilabel": True}
    picks = []
    for name in ("a", "b"):
        db = str(tmp_path / f"{name}.sqlite")
        (rid,) = api.simulate(db, dataset="file", dataset_params=params, strategies=["mmc"], rounds=2, batch=5,
                              init=10, learner="ovr_logreg", noise_rate=0.1)
        store = Store(db, readonly=True)
        picks.append([(s.round, s.pool_id) for s in store.selections(rid)])
        store.close()
    assert picks[0] == picks[1] and len(picks[0]) == 20


@pytest.mark.parametrize("extra, match", [
    (["--dataset", "iris"], "--multilabel goes with --features tables or --texts, not with 'iris'"),
])
def test_multilabel_flag_on_builtin_data_is_a_one_line_error(extra: list[str], match: str, tmp_path: Path, capsys,
                                                            monkeypatch) -> None:
    db = tmp_path / "s.sqlite"
    code, _, err = run_cli(["simulate", "--multilabel", "--db", str(db), *extra, *TINY], capsys, monkeypatch)
    assert code == 2 and match in one_line_error(err)
    assert not db.exists()


def test_single_label_learner_on_multilabel_csv_is_a_one_line_error(tmp_path: Path, capsys, monkeypatch) -> None:
    _csv(tmp_path / "m.csv")
    db = tmp_path / "s.sqlite"
    code, _, err = run_cli(["simulate", "--features", str(tmp_path / "m.csv"), "--label-column", "tags",
                            "--drop-columns", "id", "--multilabel", "--db", str(db), *TINY], capsys, monkeypatch)
    assert code == 2 and "use --learner ovr_logreg, mlp_sigmoid or cnn_sigmoid" in one_line_error(err)
    assert not db.exists()


def test_strategies_command_lists_the_tasks(capsys, monkeypatch) -> None:
    code, out, _ = run_cli(["strategies"], capsys, monkeypatch)
    assert code == 0
    lines = {ln.split()[0]: ln for ln in out.splitlines() if "(needs" in ln}
    assert "multi-label" in lines["mmc"] and "single-label" not in lines["mmc"]
    assert "single-label, multi-label" in lines["kcenter"] and "multi-label" not in lines["margin"]


def test_multilabel_builtin_data_with_the_campaign_flag_is_refused(tmp_path: Path) -> None:
    from al_loop.campaign import CampaignOptions, init_campaign

    db = tmp_path / "c.sqlite"
    with pytest.raises(ConfigError, match="--multilabel goes with files, texts or --images, not with the built-in"):
        init_campaign(str(db), data="digits", classes=tuple("0123456789"), strategy="random", batch=4, init=6,
                      multilabel=True, options=CampaignOptions(url="http://127.0.0.1:9", title="t"))
    assert not db.exists()


def test_the_ml_backend_predicts_label_sets_of_a_multilabel_campaign(tmp_path: Path) -> None:
    """``al-loop serve``'s /predict on a multi-label campaign: the round's model's sets as several choices."""
    from fastapi.testclient import TestClient

    from al_loop.controller import Controller
    from oracles.label_studio import labeling_config
    from oracles.ls_backend.app import create_app

    _csv(tmp_path / "m.csv", n=120)
    config = RunConfig(dataset="file", strategy="br_uncertainty", rounds=1000, batch=6, init=12,
                       learner="ovr_logreg", oracle="label_studio",
                       dataset_params={"features": str(tmp_path / "m.csv"), "label_column": "tags",
                                       "drop_columns": "id", "multilabel": True},
                       oracle_params={"url": "http://127.0.0.1:1", "title": "t", "kind": "text",
                                      "campaign_id": "feedc0de0002"})
    config = api.stamp_inputs(config)
    store = Store(tmp_path / "c.sqlite")
    run = store.create_run(config)
    store.set_oracle_state(run, "project_id", "5")
    pool = api.build_pool(config)
    ctl = Controller(store, run, pool, api.build_learner("ovr_logreg", pool), api.build_strategy("br_uncertainty", {}),
                     SimulatedOracle(pool, 0))
    while not (store.current_round(run).idx == 2 and store.current_round(run).state == "AWAITING"):
        ctl.step()
    batch = store.outbox(run, 2)
    with TestClient(create_app(str(tmp_path / "c.sqlite"), run)) as client:
        tasks = [{"id": 100 + o.pool_id, "project": 5, "data": {"text": "x", "al_campaign": "feedc0de0002",
                                                                "al_run": run, "al_pool_id": o.pool_id}}
                 for o in batch]
        reply = client.post("/predict", json={"tasks": tasks, "label_config": labeling_config(TAGS, "text", True)})
        assert reply.status_code == 200, reply.text
        results = reply.json()["results"]
    for o, pred in zip(batch, results, strict=True):
        want = ml.split_set(json.loads(o.prediction_json)["label"])  # what campaign run attaches
        if want:
            assert pred["result"][0]["value"]["choices"] == want
        else:
            assert pred["result"] == [] and "no label" in pred["reason"]
        assert 0.0 <= pred["score"] < 0.5  # the batch sorts first
    store.close()
