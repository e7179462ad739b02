"""Label Studio oracle without a server: config, answer parsing, keys, retries, idempotent submit.

The annotation dicts below are the JSON shapes Label Studio 1.23.2 returns in
``GET /api/tasks?fields=all`` (trimmed to the fields the oracle reads).
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from label_studio_sdk.core.api_error import ApiError

from al_loop.errors import ConfigError, DataError, OracleError
from al_loop.registry import ORACLES
from al_loop.types import OutboxItem
from oracles.label_studio import (
    MODEL_VERSION,
    LabelStudioOracle,
    LabelStudioRetry,
    _Backoff,
    _classify,
    _Transient,
    answer_from_annotations,
    labeling_config,
    parse_key,
    parse_labeling_config,
    task_for,
)

CLASSES = ("cat", "dog", "bird")
KEY = "sk-test-0123456789abcdef0123456789abcdef0123"


def ann(id_: int, choice: str | list[str] | None, *, at: str, by: int = 1, cancelled: bool = False,
        from_name: str = "label") -> dict[str, Any]:
    """One annotation as the server returns it."""
    if cancelled or choice is None:
        result: list[dict[str, Any]] = []
    else:
        choices = choice if isinstance(choice, list) else [choice]
        result = [{"from_name": from_name, "to_name": "image", "type": "choices", "value": {"choices": choices}}]
    return {"id": id_, "result": result, "was_cancelled": cancelled, "completed_by": by,
            "created_at": at, "updated_at": at, "ground_truth": False, "task": 1, "project": 1,
            "created_username": f" user{by}@localhost, {by}", "lead_time": 2.5}


# --------------------------------------------------------------------------- labeling config


def test_labeling_config_lists_the_classes_in_order_for_images() -> None:
    root = ET.fromstring(labeling_config(["cat", "dog"], "image"))
    assert root.find("Image").get("value") == "$image"
    choices = root.find("Choices")
    assert choices.get("name") == "label" and choices.get("toName") == "image"
    assert choices.get("choice") == "single"
    assert [c.get("value") for c in choices.iter("Choice")] == ["cat", "dog"]


def test_labeling_config_for_text_and_round_trip_with_odd_names() -> None:
    classes = ["a&b", 'say "hi"', "<x>", "ünï"]
    config = labeling_config(classes, "text")
    assert parse_labeling_config(config) == ("text", tuple(classes))


@pytest.mark.parametrize("classes, kind, match", [
    (["a"], "tabular", "kind 'image' or 'text'"),
    ([], "image", "at least one class"),
    (["a", "a"], "image", "repeat"),
    (["a", " "], "text", "empty class name"),
])
def test_labeling_config_refuses_bad_input(classes: list[str], kind: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        labeling_config(classes, kind)


def test_parse_labeling_config_of_a_foreign_project() -> None:
    foreign = ('<View><Text name="t" value="$x"/><Choices name="sentiment" toName="t">'
               '<Choice value="pos"/><Choice value="neg"/></Choices></View>')
    assert parse_labeling_config(foreign) == ("text", ("pos", "neg"))
    assert parse_labeling_config('<View><Image name="i" value="$image"/></View>') == (None, ())
    with pytest.raises(OracleError, match="not valid XML"):
        parse_labeling_config("<View>")


# --------------------------------------------------------------------------- keys and tasks


def test_key_format_round_trips() -> None:
    item = OutboxItem(run_id=3, round=12, pool_id=1007)
    assert item.key == "3:12:1007"
    assert parse_key(item.key) == (3, 12, 1007)
    for bad in ("3:12", "a:b:c", "1:2:3:4", ""):
        with pytest.raises(DataError, match="run:round:pool_id"):
            parse_key(bad)


def test_task_carries_key_fields_and_prediction() -> None:
    item = OutboxItem(run_id=2, round=1, pool_id=42, payload={"image": "data:image/png;base64,AAA"},
                      prediction={"label": "dog", "score": 0.8})
    task = task_for(item, CLASSES)
    assert task["data"] == {"image": "data:image/png;base64,AAA", "al_key": "2:1:42", "al_run": 2,
                            "al_round": 1, "al_pool_id": 42}
    (pred,) = task["predictions"]
    assert pred["score"] == 0.8
    assert pred["result"] == [{"from_name": "label", "to_name": "image", "type": "choices",
                               "value": {"choices": ["dog"]}}]


def test_a_campaign_id_prefixes_the_key_and_is_carried_in_the_data() -> None:
    item = OutboxItem(run_id=2, round=1, pool_id=42, payload={"text": "x"})
    data = task_for(item, CLASSES, "c0ffee123456")["data"]
    assert data["al_key"] == "c0ffee123456:2:1:42" and data["al_campaign"] == "c0ffee123456"
    assert (data["al_run"], data["al_round"], data["al_pool_id"]) == (2, 1, 42)
    assert "al_campaign" not in task_for(item, CLASSES)["data"]  # stores without a campaign id: old keys


def test_every_round_attaches_its_prediction_under_one_model_version() -> None:
    # Label Studio shows only the predictions of the project's model_version, fixed at the first import
    versions = {task_for(OutboxItem(run_id=run, round=r, pool_id=1, payload={"text": "x"},
                                    prediction={"label": "cat", "score": 0.5}), CLASSES)["predictions"][0]["model_version"]
                for run in (1, 2) for r in range(5)}
    assert versions == {MODEL_VERSION}


def test_task_without_a_usable_prediction_has_none() -> None:
    for prediction in (None, {"label": "zebra", "score": 0.9}, {}):
        item = OutboxItem(run_id=1, round=0, pool_id=1, payload={"text": "hello"}, prediction=prediction)
        assert "predictions" not in task_for(item, CLASSES)
    nan = OutboxItem(run_id=1, round=0, pool_id=1, payload={"text": "x"}, prediction={"label": "cat", "score": float("nan")})
    assert "score" not in task_for(nan, CLASSES)["predictions"][0]


def test_task_refuses_a_payload_annotators_cannot_see() -> None:
    item = OutboxItem(run_id=1, round=0, pool_id=5, payload={"features": [0.1, 0.2]})
    with pytest.raises(DataError, match="1:0:5 has no 'image' or 'text'"):
        task_for(item, CLASSES)


# --------------------------------------------------------------------------- answers


def test_no_annotation_no_answer() -> None:
    assert answer_from_annotations(7, [], CLASSES) is None


def test_single_label() -> None:
    a = answer_from_annotations(7, [ann(11, "dog", at="2026-01-02T10:00:00.123456Z", by=3)], CLASSES, {3: "ann@x"})
    assert (a.pool_id, a.status, a.label, a.annotation_id, a.annotator) == (7, "labeled", "dog", "11", "ann@x")
    assert a.updated_at == "2026-01-02T10:00:00.123456Z"
    assert a.disagreement is None and a.reason is None


def test_newest_annotation_wins_and_disagreement_lists_all() -> None:
    older = ann(11, "dog", at="2026-01-02T10:00:00Z", by=1)
    newer = ann(12, "cat", at="2026-01-02T11:00:00Z", by=2)
    for order in ([older, newer], [newer, older]):
        a = answer_from_annotations(7, order, CLASSES, {1: "a1", 2: "a2"})
        assert (a.status, a.label, a.annotation_id) == ("labeled", "cat", "12")
        assert a.disagreement == "cat(a2) vs dog(a1)"


def test_agreeing_annotations_are_no_disagreement() -> None:
    anns = [ann(11, "dog", at="2026-01-02T10:00:00Z", by=1), ann(12, "dog", at="2026-01-02T11:00:00Z", by=2)]
    a = answer_from_annotations(7, anns, CLASSES)
    assert (a.label, a.annotation_id, a.disagreement, a.annotator) == ("dog", "12", None, "user 2")


def test_timezones_and_ties_are_ordered_by_instant_then_id() -> None:
    utc = ann(11, "dog", at="2026-01-02T10:30:00Z")
    plus2 = ann(12, "cat", at="2026-01-02T12:00:00+02:00")  # 10:00 UTC: older
    assert answer_from_annotations(1, [plus2, utc], CLASSES).label == "dog"
    tie_a, tie_b = ann(20, "dog", at="2026-01-02T10:00:00Z"), ann(21, "bird", at="2026-01-02T10:00:00Z")
    assert answer_from_annotations(1, [tie_b, tie_a], CLASSES).label == "bird"


def test_an_edit_is_the_same_annotation_with_a_later_updated_at() -> None:
    edited = ann(11, "bird", at="2026-01-02T10:00:00Z")
    edited["updated_at"] = "2026-01-03T09:00:00Z"
    other = ann(12, "dog", at="2026-01-02T12:00:00Z", by=2)
    a = answer_from_annotations(1, [other, edited], CLASSES)
    assert (a.label, a.annotation_id, a.updated_at) == ("bird", "11", "2026-01-03T09:00:00.000000Z")


def test_one_user_one_name_and_one_time_format_whatever_the_endpoint() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    listed = ann(11, "dog", at="2026-01-02T10:00:00.5Z", by=3)  # the task listing: user id, string stamp
    got = ann(11, "dog", at="x", by=3)  # one task read: the user object and a datetime with an offset
    got["completed_by"] = {"id": 3, "email": "ann@x", "first_name": ""}
    got["updated_at"] = datetime(2026, 1, 2, 11, 0, 0, 500000, tzinfo=timezone(timedelta(hours=1)))
    a = answer_from_annotations(1, [listed], CLASSES, {3: "ann@x"})
    b = answer_from_annotations(1, [got], CLASSES, {})  # the users list was not read (or failed)
    assert (a.annotator, a.updated_at) == (b.annotator, b.updated_at) == ("ann@x", "2026-01-02T10:00:00.500000Z")
    naive = ann(11, "dog", at="2026-01-02T10:00:00+00:00", by=3)
    assert answer_from_annotations(1, [naive], CLASSES).updated_at == "2026-01-02T10:00:00.000000Z"
    assert answer_from_annotations(1, [ann(11, "dog", at="x", by=4)], CLASSES).annotator == "user 4"
    assert datetime.fromisoformat(a.updated_at).tzinfo == UTC  # parseable back, as UTC


def test_cancelled_is_skipped() -> None:
    a = answer_from_annotations(7, [ann(11, None, at="2026-01-02T10:00:00Z", cancelled=True)], CLASSES)
    assert (a.status, a.label, a.annotation_id) == ("skipped", None, "11")


def test_a_skip_after_a_label_wins_and_is_recorded_as_disagreement() -> None:
    anns = [ann(11, "dog", at="2026-01-02T10:00:00Z", by=1),
            ann(12, None, at="2026-01-02T11:00:00Z", by=2, cancelled=True)]
    a = answer_from_annotations(7, anns, CLASSES, {1: "a1", 2: "a2"})
    assert a.status == "skipped" and a.disagreement == "skip(a2) vs dog(a1)"


@pytest.mark.parametrize("choice, reason", [
    ("zebra", "'zebra' is not a class of this run (classes: cat, dog, bird)"),
    (["cat", "dog"], "several choices"),
    ([], "no choice"),
    ("Cat", "'Cat' is not a class"),  # never case-folded onto a class
])
def test_invalid_choices_are_rejected_never_mapped(choice: Any, reason: str) -> None:
    a = answer_from_annotations(7, [ann(11, choice, at="2026-01-02T10:00:00Z")], CLASSES)
    assert a.status == "rejected" and a.label is None
    assert reason in a.reason
    assert a.annotation_id == "11"


def test_result_of_another_control_is_read_when_ours_is_absent() -> None:
    a = answer_from_annotations(7, [ann(11, "dog", at="2026-01-02T10:00:00Z", from_name="other")], CLASSES)
    assert a.label == "dog"
    not_choices = ann(12, None, at="2026-01-02T10:00:00Z")
    not_choices["result"] = [{"from_name": "label", "type": "textarea", "value": {"text": ["dog"]}}]
    assert answer_from_annotations(7, [not_choices], CLASSES).status == "rejected"


# --------------------------------------------------------------------------- errors and backoff


def api_error(status: int, headers: dict[str, str] | None = None, detail: str = "boom") -> ApiError:
    return ApiError(status_code=status, headers=headers or {}, body={"detail": detail})


def test_wrong_api_key_is_one_line_naming_the_variable() -> None:
    with pytest.raises(OracleError) as info:
        _classify(api_error(401, detail="Invalid token."), "http://127.0.0.1:1", "list tasks")
    msg = str(info.value)
    assert "LABEL_STUDIO_API_KEY" in msg and "\n" not in msg


def test_transient_failures_are_classified() -> None:
    assert _classify(api_error(503), "u", "op").what == "HTTP 503"
    assert _classify(api_error(429, {"Retry-After": "3"}), "u", "op").retry_after == 3.0
    assert _classify(httpx.ConnectError("refused"), "u", "op").what == "ConnectError"
    assert _classify(httpx.ReadTimeout("slow"), "u", "op").what == "ReadTimeout"
    with pytest.raises(OracleError, match="HTTP 400 to op: bad data"):
        _classify(api_error(400, detail="bad   data"), "u", "op")
    with pytest.raises(KeyError):
        _classify(KeyError("a bug"), "u", "op")


def test_backoff_doubles_caps_honours_retry_after_and_gives_up() -> None:
    slept: list[float] = []
    now = [0.0]

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    b = _Backoff(LabelStudioRetry(max_wait=10, initial_delay=1, max_delay=3), "http://h", sleep, lambda: now[0])
    for _ in range(3):
        b.wait("op", _Transient("HTTP 500"))
    b.wait("op", _Transient("HTTP 429", retry_after=2.5))
    assert slept == [1, 2, 3, 2.5]
    with pytest.raises(OracleError) as info:
        b.wait("list tasks", _Transient("HTTP 500"))  # 8.5 s waited, 3 s more would pass 10
    msg = str(info.value)
    assert "failed to list tasks (HTTP 500)" in msg and "max_wait=10s" in msg and "\n" not in msg


def test_backoff_budget_includes_time_spent_in_failing_requests() -> None:
    now = [0.0]
    b = _Backoff(LabelStudioRetry(max_wait=10, initial_delay=1, max_delay=1), "http://h",
                 lambda s: now.__setitem__(0, now[0] + s), lambda: now[0])
    b.wait("op", _Transient("ReadTimeout"))  # 1 s of sleep
    now[0] += 8.5  # the next request hung until its timeout
    with pytest.raises(OracleError, match="ReadTimeout"):
        b.wait("op", _Transient("ReadTimeout"))


def test_retry_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="max_wait"):
        LabelStudioRetry(max_wait=-1)
    with pytest.raises(ConfigError, match="batch_size"):
        LabelStudioRetry(batch_size=0)


# --------------------------------------------------------------------------- the oracle against a fake server


class FakeServer:
    """Enough of the SDK surface for submit/lookup/collect; faults are queued per operation."""

    def __init__(self) -> None:
        self.tasks: dict[int, dict[str, Any]] = {}
        self.next_id = 1
        self.faults: dict[str, list[Exception]] = {}
        self.calls: list[str] = []
        self.model_version = ""  # the project's; Label Studio shows only predictions of this version
        self.projects = SimpleNamespace(import_tasks=self.import_tasks, get=self.get_project,
                                        update=self.update_project)
        self.tasks_api = SimpleNamespace(list=self.list, get=self.get, delete=self.delete)
        self.users = SimpleNamespace(list=lambda: [SimpleNamespace(id=1, email="a@x", username="a")])

    def _fault(self, op: str, committed: bool = False) -> None:
        queue = self.faults.get(op)
        if queue:
            raise queue.pop(0)

    def add(self, data: dict[str, Any], annotations: list[dict[str, Any]] | None = None) -> int:
        tid = self.next_id
        self.next_id += 1
        self.tasks[tid] = {"id": tid, "data": data, "annotations": annotations or []}
        return tid

    def get_project(self, id: int) -> Any:
        self.calls.append("get project")
        return SimpleNamespace(id=id, model_version=self.model_version)

    def update_project(self, id: int, model_version: str) -> Any:
        self.calls.append("update project")
        self._fault("update project")
        self.model_version = model_version
        return SimpleNamespace(id=id, model_version=model_version)

    def import_tasks(self, id: int, request: list[dict[str, Any]], return_task_ids: bool) -> Any:
        self.calls.append("import")
        queue = self.faults.get("import-before")
        if queue:
            raise queue.pop(0)
        ids = [self.add(t["data"]) for t in request]
        self._fault("import")  # committed, then the answer is lost
        return SimpleNamespace(task_ids=ids)

    def _view(self, t: dict[str, Any]) -> Any:
        anns = t["annotations"]
        return SimpleNamespace(id=t["id"], data=t["data"], annotations=anns,
                               total_annotations=sum(not a["was_cancelled"] for a in anns),
                               cancelled_annotations=sum(a["was_cancelled"] for a in anns))

    def list(self, project: int, query: str, page: int, page_size: int, **kw: Any) -> Any:
        import json

        self.calls.append("list")
        self._fault("list")
        items = json.loads(query)["filters"]["items"]
        want = {i["filter"].split(":")[-1]: i["value"] for i in items}
        out = [self._view(t) for t in sorted(self.tasks.values(), key=lambda t: t["id"])
               if t["data"]["al_run"] == want["data.al_run"] and t["data"]["al_round"] == want["data.al_round"]]
        for counter in ("total_annotations", "cancelled_annotations"):
            if counter in want:
                out = [t for t in out if getattr(t, counter) > 0]
        chunk = out[(page - 1) * page_size: page * page_size]
        return SimpleNamespace(items=chunk, response=SimpleNamespace(total=len(out)))

    def get(self, id: str) -> Any:
        return self._view(self.tasks[int(id)])

    def delete(self, id: str) -> None:
        self.calls.append("delete")
        self.tasks.pop(int(id), None)


def fake_oracle(server: FakeServer, **retry: Any) -> tuple[LabelStudioOracle, list[float]]:
    slept: list[float] = []
    oracle = LabelStudioOracle("http://fake", KEY, 1, CLASSES,
                               retry=LabelStudioRetry(**{"max_wait": 30, "initial_delay": 0.5, **retry}),
                               sleep=slept.append, clock=lambda: 0.0)
    oracle.client_ = SimpleNamespace(projects=server.projects, tasks=server.tasks_api, users=server.users)  # type: ignore[assignment]
    return oracle, slept


def items(n: int, run: int = 1, round_: int = 0) -> list[OutboxItem]:
    return [OutboxItem(run_id=run, round=round_, pool_id=100 + i, payload={"text": f"t{i}"},
                       prediction={"label": "cat", "score": 0.4}) for i in range(n)]


def keys_on_server(server: FakeServer) -> list[str]:
    return sorted(t["data"]["al_key"] for t in server.tasks.values())


def test_submit_twice_creates_no_duplicates() -> None:
    server = FakeServer()
    oracle, _ = fake_oracle(server)
    first = oracle.submit(items(5))
    assert oracle.submit(items(5)) == first
    assert keys_on_server(server) == sorted(it.key for it in items(5))
    assert server.calls.count("import") == 1


def test_submit_sends_only_missing_keys_in_batches() -> None:
    server = FakeServer()
    oracle, _ = fake_oracle(server, batch_size=2)
    oracle.submit(items(3))
    server.calls.clear()
    receipts = oracle.submit(items(7))
    assert server.calls.count("import") == 2  # 4 missing keys in batches of 2
    assert set(receipts) == {it.key for it in items(7)} and len(server.tasks) == 7


@pytest.mark.parametrize("fault", [api_error(500), httpx.RemoteProtocolError("dropped")])
def test_import_committed_but_answer_lost_is_not_resent(fault: Exception) -> None:
    server = FakeServer()
    server.faults["import"] = [fault]
    oracle, slept = fake_oracle(server)
    receipts = oracle.submit(items(4))
    assert len(receipts) == 4 and len(server.tasks) == 4
    assert server.calls.count("import") == 1 and slept == [0.5]


def test_import_refused_before_commit_is_resent_after_backoff() -> None:
    server = FakeServer()
    server.faults["import-before"] = [httpx.ConnectError("refused"), api_error(429, {"Retry-After": "4"})]
    oracle, slept = fake_oracle(server)
    oracle.submit(items(3))
    assert len(server.tasks) == 3 and server.calls.count("import") == 3
    assert slept == [0.5, 4.0]


def test_submit_gives_up_after_the_budget_and_loses_nothing() -> None:
    server = FakeServer()
    server.faults["list"] = [httpx.ConnectError("refused")] * 20
    oracle, _ = fake_oracle(server, max_wait=2.0)
    with pytest.raises(OracleError, match="failed to list tasks"):
        oracle.submit(items(3))
    assert server.tasks == {}
    server.faults.clear()
    assert len(oracle.submit(items(3))) == 3 and len(server.tasks) == 3


def test_listings_page_until_the_total() -> None:
    server = FakeServer()
    oracle, _ = fake_oracle(server)
    oracle.page_size = 3
    receipts = oracle.submit(items(10))
    assert len(receipts) == 10 and len(server.tasks) == 10
    assert len(oracle.lookup([it.key for it in items(10)])) == 10
    assert server.calls.count("list") == 1 + 4 + 4  # empty before the import; 4 pages after it and in lookup


def test_duplicates_keep_lowest_id_and_spare_annotated_ones() -> None:
    server = FakeServer()
    oracle, _ = fake_oracle(server)
    (it,) = items(1)
    data = task_for(it, CLASSES)["data"]
    low = server.add(dict(data))
    server.add(dict(data))  # a blind retry's copy, never annotated: deleted
    labeled = server.add(dict(data), [ann(99, "dog", at="2026-01-02T10:00:00Z")])  # kept
    assert oracle.lookup([it.key]) == {it.key: str(low)}
    assert oracle.submit([it]) == {it.key: str(low)}
    assert sorted(server.tasks) == [low, labeled]
    (answer,) = oracle.collect(1, 0)
    assert answer.label == "dog"  # the copy's annotation still counts for the key


def test_collect_reports_labels_skips_rejects_and_deletions() -> None:
    server = FakeServer()
    oracle, _ = fake_oracle(server)
    receipts = oracle.submit(items(4))
    tid = {k: int(v) for k, v in receipts.items()}
    server.tasks[tid["1:0:100"]]["annotations"] = [ann(1, "dog", at="2026-01-02T10:00:00Z")]
    server.tasks[tid["1:0:101"]]["annotations"] = [ann(2, None, at="2026-01-02T10:00:00Z", cancelled=True)]
    server.tasks[tid["1:0:102"]]["annotations"] = [ann(3, "zebra", at="2026-01-02T10:00:00Z")]
    first = {a.pool_id: a for a in oracle.collect(1, 0)}
    assert {p: a.status for p, a in first.items()} == {100: "labeled", 101: "skipped", 102: "rejected"}
    assert first[100].annotator == "a@x"
    server.tasks[tid["1:0:100"]]["annotations"] = []  # a person deleted the label
    del server.tasks[tid["1:0:102"]]  # ... and the whole task of the invalid one
    second = {a.pool_id: a for a in oracle.collect(1, 0)}
    assert (second[100].status, second[100].annotation_id) == ("deleted", "1")
    assert "annotation was deleted" in second[100].reason
    assert (second[102].status, second[102].annotation_id) == ("deleted", "3")
    assert "task was deleted" in second[102].reason
    assert second[101].status == "skipped"
    assert {a.pool_id for a in oracle.collect(1, 0)} == {101}  # a deletion is reported once


def test_previous_answers_callback_finds_deletions_after_a_restart() -> None:
    server = FakeServer()
    oracle, _ = fake_oracle(server)
    oracle.submit(items(2))
    store_view = {100: "41", 101: "42"}
    restarted, _ = fake_oracle(server)
    restarted.previous_answers = lambda run, round_: store_view if (run, round_) == (1, 0) else {}
    answers = restarted.collect(1, 0)
    assert [(a.pool_id, a.status, a.annotation_id) for a in answers] == [(100, "deleted", "41"), (101, "deleted", "42")]
    assert restarted.collect(1, 1) == []


def test_the_api_key_never_shows() -> None:
    oracle, _ = fake_oracle(FakeServer())
    assert KEY not in repr(oracle) and KEY not in str(vars(LabelStudioOracle))
    bad = LabelStudioOracle("http://127.0.0.1:9", KEY, 1, CLASSES, retry=LabelStudioRetry(max_wait=0))
    with pytest.raises(OracleError) as info:
        bad.lookup(["1:0:1"])
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    bad.close()


def test_registered_without_importing_the_sdk_eagerly() -> None:
    assert ORACLES.get("label_studio") is LabelStudioOracle
    import subprocess

    code = "import oracles, sys; assert 'label_studio_sdk' not in sys.modules, 'eager import'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_from_env_needs_both_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", KEY)
    with pytest.raises(ConfigError, match="LABEL_STUDIO_URL"):
        LabelStudioOracle.from_env(1, CLASSES)
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:1")
    assert LabelStudioOracle.from_env(1, CLASSES).url == "http://127.0.0.1:1"


def test_submit_keeps_the_projects_model_version_at_al_loops_once_per_oracle() -> None:
    server = FakeServer()
    server.model_version = "al-loop:1:0"  # fixed by the first import of an older al-loop
    oracle, _ = fake_oracle(server)
    oracle.submit(items(2, round_=1))
    oracle.submit(items(2, round_=2))
    assert server.model_version == MODEL_VERSION
    assert server.calls.count("get project") == 1 and server.calls.count("update project") == 1
    server.calls.clear()
    plain = [OutboxItem(run_id=1, round=3, pool_id=1, payload={"text": "t"})]  # no prediction: nothing to show
    fresh, _ = fake_oracle(server)
    fresh.submit(plain)
    assert "get project" not in server.calls


def test_a_refused_model_version_change_does_not_stop_the_round() -> None:
    server = FakeServer()
    server.model_version = "someone-else"
    server.faults["update project"] = [ApiError(status_code=400, body={"model_version": ["does not exist"]})]
    oracle, _ = fake_oracle(server)
    assert set(oracle.submit(items(2))) == {it.key for it in items(2)}
    assert server.model_version == "someone-else"


# -- multi-label: several choices per task ---------------------------------------------------------------------

def test_multilabel_label_config_takes_several_choices_and_refuses_the_separator() -> None:
    from oracles.label_studio import choice_mode, labeling_config, parse_labeling_config

    config = labeling_config(["cat", "dog"], "image", multiple=True)
    control = next(el for el in ET.fromstring(config).iter("Choices"))
    assert control.get("choice") == "multiple" and control.get("required") is None
    assert choice_mode(config) == "multiple" and choice_mode(labeling_config(["cat", "dog"], "image")) == "single"
    assert parse_labeling_config(config) == ("image", ("cat", "dog"))
    with pytest.raises(ConfigError, match="contain ';'"):
        labeling_config(["a;b", "c"], "text", multiple=True)


def test_multilabel_answers_are_canonical_sets_and_unknown_choices_are_rejected() -> None:
    from oracles.label_studio import answer_from_annotations

    def ann(i: int, choices: list[str]) -> dict[str, Any]:
        return {"id": i, "result": [{"from_name": "label", "to_name": "text", "type": "choices",
                                     "value": {"choices": choices}}], "updated_at": f"2026-01-0{i}T00:00:00Z"}

    classes = ("action", "comedy", "drama")
    got = answer_from_annotations(7, [ann(1, ["drama", "action"])], classes, multiple=True)
    assert (got.status, got.label) == ("labeled", "action;drama")
    empty = answer_from_annotations(7, [ann(1, [])], classes, multiple=True)
    assert (empty.status, empty.label) == ("labeled", "")
    bad = answer_from_annotations(7, [ann(1, ["comedy", "horror"])], classes, multiple=True)
    assert bad.status == "rejected" and "['horror'] are not labels of this run" in bad.reason
    single = answer_from_annotations(7, [ann(1, ["drama", "action"])], classes)
    assert single.status == "rejected" and "several choices" in single.reason


def test_multilabel_prediction_preselects_the_set() -> None:
    from al_loop.types import OutboxItem
    from oracles.label_studio import task_for

    item = OutboxItem(run_id=1, round=1, pool_id=3, payload={"text": "x"},
                      prediction={"label": "comedy;drama", "score": 0.4})
    task = task_for(item, ("action", "comedy", "drama"), multiple=True)
    assert task["predictions"][0]["result"][0]["value"]["choices"] == ["comedy", "drama"]
    none = OutboxItem(run_id=1, round=1, pool_id=3, payload={"text": "x"}, prediction={"label": "", "score": 0.9})
    assert "predictions" not in task_for(none, ("action", "comedy", "drama"), multiple=True)
