"""The ML backend app of ``al-loop serve`` in-process (FastAPI's TestClient) against real stores.

A store holds a campaign run (oracle ``label_studio``, a campaign id) on
digits, driven round by round by the real controller with the simulated oracle
answering (as people would, at once): its selections, ranks, labels and the
pre-annotations ``campaign run`` would attach are those of a campaign.
``tests/integration/test_backend_serve.py`` has Label Studio itself call
``/predict``.
"""

from __future__ import annotations

import base64
import random
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from al_loop import api
from al_loop.config import RunConfig
from al_loop.controller import Controller
from al_loop.store import Store
from oracles.label_studio import labeling_config
from oracles.ls_backend.app import create_app
from oracles.simulated import SimulatedOracle

CAMPAIGN = "feedc0de0001"
CLASSES = [str(i) for i in range(10)]
BATCH, INIT = 8, 20


def campaign_store(path: Path, strategy: str, upto: int, seed: int = 0) -> tuple[Store, int]:
    """A campaign run whose round ``upto`` has its batch selected and waiting for answers."""
    config = RunConfig(dataset="digits", strategy=strategy, seed=seed, rounds=1000, batch=BATCH, init=INIT,
                       oracle="label_studio", oracle_params={"url": "http://127.0.0.1:1", "title": "t",
                                                             "kind": "image", "campaign_id": CAMPAIGN})
    config = api.stamp_inputs(config)
    store = Store(path)
    run = store.create_run(config)
    store.set_oracle_state(run, "project_id", "5")  # as campaign init records it
    pool = api.build_pool(config)
    ctl = Controller(store, run, pool, api.build_learner(config.learner, pool),
                     api.build_strategy(strategy, {}), SimulatedOracle(pool, seed))
    while True:
        rnd = store.current_round(run)
        if rnd.idx == upto and rnd.state == "AWAITING":
            return store, run
        ctl.step()


def task(run: int, pool_id: int, tid: int | None = None, campaign: str = CAMPAIGN, **data: Any) -> dict[str, Any]:
    fields = {"image": f"/data/{pool_id}.png", "al_campaign": campaign, "al_run": run, "al_pool_id": pool_id,
              **data}
    return {"id": 1000 + pool_id if tid is None else tid, "project": 5, "data": fields}


def predict(client: TestClient, tasks: list[dict[str, Any]], config: str | None = None) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"tasks": tasks, "project": "5.1764000000", "params": {"login": None, "password": None,
                                                                                   "context": None}}
    if config is not None:
        body["label_config"] = config
    reply = client.post("/predict", json=body)
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert len(results) == len(tasks)
    return results


@pytest.fixture(scope="module", params=["margin", "kcenter"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(store, run, client) of a campaign waiting in round 2, for an uncertainty and a batch strategy."""
    store, run = campaign_store(tmp_path_factory.mktemp("serve") / "c.sqlite", request.param, upto=2)
    with TestClient(create_app(store, run)) as client:
        yield store, run, client
    store.close()


def test_health_and_setup_answer_the_protocol_shapes(served: Any) -> None:
    store, run, client = served
    for path in ("/health", "/"):
        reply = client.get(path)
        assert reply.status_code == 200
        assert reply.json() == {"status": "UP", "model_class": "al-loop", "model_version": f"al-loop run {run} round 2"}
    reply = client.post("/setup", json={"project": "5.1764000000", "schema": labeling_config(CLASSES, "image"),
                                        "hostname": "http://127.0.0.1:8080", "access_token": "x",
                                        "extra_params": None})
    assert (reply.status_code, reply.json()) == (200, {"model_version": f"al-loop run {run} round 2"})


def test_the_score_order_is_the_selection_order_and_the_class_is_the_rounds_model(served: Any) -> None:
    store, run, client = served
    batch = [s for s in store.selections(run) if s.round == 2]
    assert len(batch) == BATCH
    guesses = {o.pool_id: o.prediction_json for o in store.outbox(run, 2)}
    labeled = [lab.pool_id for lab in store.labels(run)][:4]
    chosen = {s.pool_id for s in store.selections(run)}
    outside = [p for p in range(0, 400) if p not in chosen][:6]
    tasks = [task(run, s.pool_id) for s in batch] + [task(run, p) for p in labeled + outside]
    random.Random(0).shuffle(tasks)
    results = predict(client, tasks, labeling_config(CLASSES, "image"))
    by_id = {t["data"]["al_pool_id"]: r for t, r in zip(tasks, results, strict=True)}
    assert all(r["model_version"] == f"al-loop run {run} round 2" for r in results)
    order = [t["data"]["al_pool_id"] for t, _ in sorted(zip(tasks, results, strict=True),
                                                         key=lambda tr: tr[1]["score"])]
    assert order[:BATCH] == [s.pool_id for s in sorted(batch, key=lambda s: s.rank)]
    assert [by_id[s.pool_id]["score"] for s in sorted(batch, key=lambda s: s.rank)] == [
        pytest.approx(0.5 * k / BATCH) for k in range(BATCH)]
    rest = [by_id[p]["score"] for p in order[BATCH:]]
    assert all(0.5 < s <= 1.0 for s in rest) and rest == sorted(rest)
    for s in batch:  # the class is the pre-annotation the controller attached to the batch in pull mode
        (region,) = by_id[s.pool_id]["result"]
        assert region == {"from_name": "label", "to_name": "image", "type": "choices",
                          "value": {"choices": [__import__("json").loads(guesses[s.pool_id])["label"]]}}
    assert all(len(by_id[p]["result"]) == 1 for p in labeled + outside)


def test_model_version_names_the_run_and_the_round_and_the_model_is_cached(tmp_path: Path) -> None:
    store, run = campaign_store(tmp_path / "c.sqlite", "margin", upto=1)
    try:
        with TestClient(create_app(store, run)) as client:
            app_predictor = client.app.state.predictor  # type: ignore[attr-defined]
            first = predict(client, [task(run, 3)])[0]
            assert first["model_version"] == f"al-loop run {run} round 1"
            model = app_predictor.fitted()
            predict(client, [task(run, 4)])
            assert app_predictor.fitted() is model  # not fitted again for the same round and labels
            Controller(store, run, app_predictor.pool, api.build_learner("logreg", app_predictor.pool),
                       api.build_strategy("margin", {}), SimulatedOracle(app_predictor.pool, 0)).run(
                should_stop=lambda: store.current_round(run).idx == 2 and store.current_round(run).state == "AWAITING")
            assert predict(client, [task(run, 3)])[0]["model_version"] == f"al-loop run {run} round 2"
            assert app_predictor.fitted() is not model
            assert client.post("/setup", json={}).json() == {"model_version": f"al-loop run {run} round 2"}
    finally:
        store.close()


def test_round_0_has_no_model_yet_but_keeps_the_selection_order(tmp_path: Path) -> None:
    store, run = campaign_store(tmp_path / "c.sqlite", "margin", upto=0)
    try:
        with TestClient(create_app(store, run)) as client:
            seed = sorted((s for s in store.selections(run)), key=lambda s: s.rank)
            results = predict(client, [task(run, s.pool_id) for s in seed])
            assert [r["score"] for r in results] == [pytest.approx(0.5 * k / INIT) for k in range(INIT)]
            assert all(r["result"] == [] and r["reason"] == "no model yet: nothing labeled before round 0"
                       for r in results)
    finally:
        store.close()


def test_the_projects_label_config_names_the_region(served: Any) -> None:
    _store, run, client = served
    config = ('<View><Image name="photo" value="$image"/><Choices name="digit" toName="photo">'
              + "".join(f'<Choice value="{c}"/>' for c in CLASSES) + "</Choices></View>")
    (region,) = predict(client, [task(run, 5)], config)[0]["result"]
    assert (region["from_name"], region["to_name"]) == ("digit", "photo")
    few = config.replace("".join(f'<Choice value="{c}"/>' for c in CLASSES), '<Choice value="none"/>')
    got = predict(client, [task(run, 5)], few)[0]
    assert got["result"] == [] and "is not a choice of the project's <Choices name='digit'>" in got["reason"]
    assert 0.5 < got["score"] <= 1.0


def test_a_task_al_loop_does_not_know_gets_an_empty_prediction_and_the_batch_goes_on(served: Any) -> None:
    _store, run, client = served
    tasks = [task(run, 7),
             {"id": 1, "data": {"image": "x.png"}},
             {"id": 2},
             task(run, 8, tid=3, campaign="0ther0campaign"),
             task(run + 40, 9, tid=4),
             task(run, 10**7, tid=5),
             task(run, 11, tid=6, al_pool_id="eleven"),
             task(run, 12)]
    results = predict(client, tasks)
    assert len(results[0]["result"]) == 1 and len(results[-1]["result"]) == 1
    reasons = [r.get("reason") for r in results[1:-1]]
    assert reasons == [
        "task 1 has no al_pool_id in its data: it is not a task of al-loop",
        "task 2 has no al_pool_id in its data: it is not a task of al-loop",
        f"task 3 belongs to campaign 0ther0campaign, not to campaign {CAMPAIGN} of run {run}",
        f"task 4 belongs to run {run + 40}; this backend serves run {run}",
        f"task 5 has al_pool_id 10000000, which run {run}'s pool does not hold",
        "task 6 has al_pool_id 'eleven', which is not a pool id",
    ]
    assert all(r["result"] == [] and "score" not in r and "\n" not in r["reason"] for r in results[1:-1])


@pytest.mark.parametrize(("body", "line"), [
    (b"{not json", "the body is not JSON"),
    (b"[1, 2]", "the body must be a JSON object, got list"),
    (b"{}", "'tasks' must be a list of Label Studio tasks (it is missing)"),
    (b'{"tasks": {"id": 1}}', "'tasks' must be a list of Label Studio tasks, got dict"),
    (b'{"tasks": [1]}', "tasks[0] is not a task object (got int)"),
    (b'{"tasks": [], "label_config": 5}', "'label_config' must be a string, got int"),
    (b'{"tasks": [], "params": []}', "'params' must be an object, got list"),
    (b'{"tasks": [], "label_config": "<View><Choices"}', "label_config is not a labeling config"),
    (b'{"tasks": [], "label_config": "<View><Image name=\\"i\\" value=\\"$i\\"/></View>"}',
     "label_config has no <Choices> control; al-loop predicts one class per task"),
])
def test_a_malformed_body_is_400_with_one_line(served: Any, body: bytes, line: str) -> None:
    _store, _run, client = served
    reply = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == 400
    assert list(reply.json()) == ["error"] and reply.json()["error"].startswith(line)
    assert "\n" not in reply.json()["error"]


def test_setup_refuses_a_schema_without_choices(served: Any) -> None:
    _store, _run, client = served
    reply = client.post("/setup", json={"schema": '<View><Text name="t" value="$t"/></View>'})
    assert (reply.status_code, reply.json()) == (
        400, {"error": "label_config has no <Choices> control; al-loop predicts one class per task"})


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_refuses_missing_or_wrong_credentials_with_401(tmp_path: Path) -> None:
    store, run = campaign_store(tmp_path / "c.sqlite", "margin", upto=0)
    try:
        with TestClient(create_app(store, run, basic_auth="ls:s3cret")) as client:
            for headers, line in [
                ({}, "this backend needs HTTP basic auth; register it in Label Studio with auth method BASIC_AUTH"),
                (_basic("ls", "wrong"), "wrong user or password for this backend"),
                (_basic("other", "s3cret"), "wrong user or password for this backend"),
                ({"Authorization": "Token abc"}, "this backend takes HTTP basic auth, not Token authorization"),
                ({"Authorization": "Basic %%%"}, "the basic auth credentials are not base64 of user:password"),
            ]:
                for method, path in (("GET", "/health"), ("POST", "/predict"), ("POST", "/setup")):
                    reply = client.request(method, path, json={"tasks": []}, headers=headers)
                    assert (reply.status_code, reply.json()) == (401, {"error": line}), (headers, path)
                    assert reply.headers["www-authenticate"].startswith("Basic")
                    assert "s3cret" not in reply.text
            assert client.get("/health", headers=_basic("ls", "s3cret")).status_code == 200
            ok = client.post("/predict", json={"tasks": [task(run, 1)]}, headers=_basic("ls", "s3cret"))
            assert ok.status_code == 200 and len(ok.json()["results"]) == 1
    finally:
        store.close()


def test_the_webhook_route_answers_an_event_and_refuses_a_body_that_is_none(served: Any) -> None:
    _store, _run, client = served
    reply = client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 10**6}})
    assert reply.status_code == 200 and reply.json()["status"] in ("ok", "ignored")
    bad = client.post("/webhook", content=b"[]", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and list(bad.json()) == ["error"]


def test_prediction_score_orders_the_batch_first_and_stays_in_the_unit_interval() -> None:
    """Hand-computed: batch of 4 -> 0, 0.125, 0.25, 0.375; outside -> 0.5 + 0.5 p (1.0 without a model)."""
    from oracles.ls_backend.model import prediction_score

    assert [prediction_score(r, 4, 0.9) for r in range(4)] == [0.0, 0.125, 0.25, 0.375]
    assert prediction_score(None, 4, 0.3) == pytest.approx(0.65)
    assert prediction_score(None, 4, None) == 1.0
    scores = [prediction_score(r, 20, None) for r in range(20)] + [prediction_score(None, 20, p / 10)
                                                                     for p in range(1, 11)]
    assert scores == sorted(scores) and all(0.0 <= s <= 1.0 for s in scores)
