"""The Label Studio oracle against a real server: idempotent submit, answers, faults.

Needs ``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY`` (see ``conftest.py``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from al_loop.errors import OracleError
from al_loop.oracle import Oracle
from al_loop.pool import Pool
from al_loop.types import Answer, OutboxItem
from oracles.label_studio import LabelStudioOracle, LabelStudioRetry, connect, ensure_project, task_for
from tests.contracts.oracle_contract import OracleContract
from tests.integration.annotator import Annotator
from tests.integration.conftest import Server
from tests.integration.faultproxy import FaultProxy

pytestmark = pytest.mark.labelstudio

CLASSES = ("cat", "dog", "bird")
FAST = LabelStudioRetry(max_wait=30, initial_delay=0.2, max_delay=2, timeout=30)


def text_items(n: int, run: int = 1, round_: int = 0, start: int = 0) -> list[OutboxItem]:
    return [OutboxItem(run_id=run, round=round_, pool_id=start + i, payload={"text": f"item {start + i}"},
                       prediction={"label": CLASSES[(start + i) % 3], "score": 0.5}) for i in range(n)]


def truth(key: str) -> str:
    return CLASSES[int(key.split(":")[2]) % 3]


def by_pool(answers: list[Answer]) -> dict[int, Answer]:
    assert len({a.pool_id for a in answers}) == len(answers), "one answer per item"
    return {a.pool_id: a for a in answers}


def keys_in_project(annotator: Annotator) -> list[str]:
    return sorted(t.data["al_key"] for t in annotator.all_tasks())


@pytest.fixture
def setup(ls_server: Server, new_project: Callable[..., int]) -> tuple[LabelStudioOracle, Annotator]:
    project_id = new_project(CLASSES, "text")
    oracle = LabelStudioOracle(ls_server.url, ls_server.api_key, project_id, CLASSES, retry=FAST)
    yield oracle, Annotator(ls_server.url, ls_server.api_key, project_id)
    oracle.close()


# --------------------------------------------------------------------------- contract


class TestLabelStudioContract(OracleContract):
    settle_seconds = 5.0

    @pytest.fixture(autouse=True)
    def _server(self, ls_server: Server, new_project: Callable[..., int]) -> None:
        self.ls, self.new_project = ls_server, new_project

    def make_oracle(self, pool: Pool) -> Oracle:
        project_id = self.new_project(pool.classes, "image")
        return LabelStudioOracle(self.ls.url, self.ls.api_key, project_id, pool.classes, retry=FAST)

    def answer_all(self, oracle: Oracle, pool: Pool, items: list[OutboxItem]) -> None:
        assert isinstance(oracle, LabelStudioOracle)
        person = Annotator(self.ls.url, self.ls.api_key, oracle.project_id)
        labels = dict(zip(pool.ids.tolist(), pool.hidden_labels(pool.ids).tolist(), strict=True))
        person.label_all([it.key for it in items], lambda key: pool.classes[labels[int(key.split(":")[2])]])


# --------------------------------------------------------------------------- projects


def test_ensure_project_adopts_by_title_and_refuses_other_classes(ls_server: Server,
                                                                  new_project: Callable[..., int]) -> None:
    title = f"al-loop-adopt-{uuid.uuid4().hex[:8]}"
    first = new_project(CLASSES, "text", title=title)
    client = connect(ls_server.url, ls_server.api_key)
    assert ensure_project(client, title, ("bird", "cat", "dog"), "text") == first  # order does not matter
    with pytest.raises(OracleError, match=r"has classes \['cat', 'dog', 'bird'\], the run has \['cat', 'dog'\]"):
        ensure_project(client, title, ("cat", "dog"), "text")
    with pytest.raises(OracleError, match="shows text data, the run needs image"):
        ensure_project(client, title, CLASSES, "image")


def test_for_project_builds_an_oracle_on_the_project(ls_server: Server, new_project: Callable[..., int]) -> None:
    title = f"al-loop-for-{uuid.uuid4().hex[:8]}"
    oracle = LabelStudioOracle.for_project(ls_server.url, ls_server.api_key, title, CLASSES, "text", retry=FAST)
    new_project(CLASSES, "text", title=title)  # adopts it: registers it for cleanup
    assert oracle.lookup(["1:0:1"]) == {}
    oracle.close()


# --------------------------------------------------------------------------- submit and lookup


def test_submit_is_idempotent(setup: tuple[LabelStudioOracle, Annotator]) -> None:
    oracle, person = setup
    items = text_items(30)
    first = oracle.submit(items)
    again = oracle.submit(items)
    assert first == again and set(first) == {it.key for it in items}
    assert keys_in_project(person) == sorted(it.key for it in items)
    more = oracle.submit(text_items(40))  # 10 new, 30 known
    assert {k: more[k] for k in first} == first
    assert keys_in_project(person) == sorted(it.key for it in text_items(40))


def test_task_shows_payload_key_fields_and_prediction(setup: tuple[LabelStudioOracle, Annotator]) -> None:
    oracle, person = setup
    (item,) = text_items(1, run=4, round_=2, start=7)
    oracle.submit([item])
    (task,) = person.tasks(item.key)
    deadline = time.monotonic() + 20
    while not task.predictions and time.monotonic() < deadline:  # a loaded server may attach them late
        time.sleep(0.5)
        (task,) = person.tasks(item.key)
    assert task.data == {"text": "item 7", "al_key": "4:2:7", "al_run": 4, "al_round": 2, "al_pool_id": 7}
    (pred,) = task.predictions
    pred = pred if isinstance(pred, dict) else pred.dict()
    assert pred["result"][0]["value"] == {"choices": ["dog"]} and pred["score"] == 0.5


def test_lookup_finds_existing_keys_only(setup: tuple[LabelStudioOracle, Annotator]) -> None:
    oracle, _ = setup
    receipts = oracle.submit(text_items(5, run=1) + text_items(3, run=11))
    keys = [it.key for it in text_items(5, run=1)] + ["1:0:99", "1:1:0", "11:0:0"]
    found = oracle.lookup(keys)
    assert found == {k: receipts[k] for k in keys if k in receipts}
    assert "1:0:99" not in found and "1:1:0" not in found  # other pool id, other round


def test_a_duplicate_left_by_a_blind_retry_is_removed(setup: tuple[LabelStudioOracle, Annotator]) -> None:
    oracle, person = setup
    items = text_items(3)
    receipts = oracle.submit(items)
    # What the SDK's own POST retry does after a lost answer: the same task again.
    person.client.projects.import_tasks(id=oracle.project_id, request=[task_for(items[0], CLASSES)])
    assert len(person.tasks(items[0].key)) == 2
    assert oracle.lookup([items[0].key]) == {items[0].key: receipts[items[0].key]}  # lowest id
    assert oracle.submit(items) == receipts
    assert keys_in_project(person) == sorted(it.key for it in items)


# --------------------------------------------------------------------------- collect semantics


def test_collect_semantics(setup: tuple[LabelStudioOracle, Annotator]) -> None:
    oracle, alice = setup
    bob = alice.as_user(f"bob-{uuid.uuid4().hex[:6]}@localhost")
    items = text_items(8, run=2, round_=1)
    oracle.submit(items + text_items(2, run=2, round_=2))  # another round: never in round 1's answers
    k = [it.key for it in items]
    assert oracle.collect(2, 1) == []

    ann = {k[0]: alice.label(k[0], truth(k[0])), k[1]: alice.label(k[1], truth(k[1]))}
    partial = by_pool(oracle.collect(2, 1))
    assert set(partial) == {0, 1}  # partial: only what people answered so far
    assert partial[0].status == "labeled" and partial[0].label == truth(k[0])
    assert partial[0].annotation_id == str(ann[k[0]]) and partial[0].updated_at

    skipped = alice.skip(k[2])
    invalid = alice.label(k[3], "zebra")
    alice.edit(ann[k[1]], "bird")  # an edit of an earlier label
    first_b = alice.label(k[4], "cat")
    time.sleep(0.05)
    second_b = bob.label(k[4], "dog")  # two annotators on one task: newest wins
    late = alice.label(k[5], truth(k[5]))  # answered late, after a first collect
    answers = by_pool(oracle.collect(2, 1))
    assert set(answers) == {0, 1, 2, 3, 4, 5}
    assert (answers[1].status, answers[1].label, answers[1].annotation_id) == ("labeled", "bird", str(ann[k[1]]))
    assert answers[1].updated_at > partial[1].updated_at
    assert (answers[2].status, answers[2].annotation_id) == ("skipped", str(skipped))
    assert answers[3].status == "rejected" and answers[3].label is None
    assert "'zebra' is not a class" in answers[3].reason and answers[3].annotation_id == str(invalid)
    assert (answers[4].label, answers[4].annotation_id) == ("dog", str(second_b))
    assert answers[4].annotator == bob.email
    assert answers[4].disagreement.startswith(f"dog({bob.email}) vs cat(")
    assert answers[5].annotation_id == str(late)
    assert all(a.status != "deleted" for a in answers.values())

    alice.delete(ann[k[0]])  # a person withdraws an answer
    alice.delete(second_b)  # ... and on the doubly answered task, the newer one
    after = by_pool(oracle.collect(2, 1))
    assert (after[0].status, after[0].annotation_id) == ("deleted", str(ann[k[0]]))
    assert (after[4].status, after[4].label, after[4].annotation_id) == ("labeled", "cat", str(first_b))
    assert 0 not in by_pool(oracle.collect(2, 1))  # reported once

    # A fresh process learns what the store holds and still sees the deletion.
    alice.delete(late)
    restarted = LabelStudioOracle(oracle.url, oracle._api_key, oracle.project_id, CLASSES, retry=FAST,
                                  previous_answers=lambda run, rnd: {5: str(late), 1: str(ann[k[1]])})
    fresh = by_pool(restarted.collect(2, 1))
    assert (fresh[5].status, fresh[5].annotation_id) == ("deleted", str(late))
    assert fresh[1].status == "labeled"
    restarted.close()


def test_wrong_api_key_is_one_clear_line(ls_server: Server, new_project: Callable[..., int]) -> None:
    wrong = "0123456789abcdef0123456789abcdef01234567"
    oracle = LabelStudioOracle(ls_server.url, wrong, new_project(), CLASSES, retry=FAST)
    with pytest.raises(OracleError) as info:
        oracle.submit(text_items(2))
    msg = str(info.value)
    assert "LABEL_STUDIO_API_KEY" in msg and "HTTP 401" in msg and "\n" not in msg
    assert wrong not in msg and wrong not in repr(oracle)


# --------------------------------------------------------------------------- faults


@pytest.fixture
def proxied(ls_server: Server, new_project: Callable[..., int]):
    project_id = new_project(CLASSES, "text")
    with FaultProxy(ls_server.url) as proxy:
        oracle = LabelStudioOracle(proxy.url, ls_server.api_key, project_id, CLASSES, retry=FAST)
        yield oracle, proxy, Annotator(ls_server.url, ls_server.api_key, project_id)
        oracle.close()


@pytest.mark.parametrize("fault", ["commit_then_500", "commit_then_drop"])
def test_import_committed_but_answer_lost_creates_no_duplicate(proxied, fault: str) -> None:
    oracle, proxy, person = proxied
    items = text_items(20)
    proxy.inject(fault, "POST", "/import")
    receipts = oracle.submit(items)
    assert proxy.outcomes("/import")[0].startswith("committed 201")
    assert len(proxy.outcomes("/import")) == 1  # looked up, found, not re-sent
    assert keys_in_project(person) == sorted(it.key for it in items)
    assert set(receipts) == {it.key for it in items}


def test_429_with_retry_after_is_honoured(proxied) -> None:
    oracle, proxy, person = proxied
    proxy.inject("429", "GET", "/api/tasks", times=2, retry_after=1)
    proxy.inject("429", "POST", "/import", retry_after=1)
    t0 = time.monotonic()
    receipts = oracle.submit(text_items(5))
    assert time.monotonic() - t0 >= 3.0
    assert proxy.outcomes("/import") == ["429", "201"]
    assert keys_in_project(person) == sorted(receipts)


def test_server_down_for_a_while_then_back(proxied) -> None:
    oracle, proxy, person = proxied
    items = text_items(10)
    oracle.submit(items[:4])
    proxy.down_for(2.0)
    receipts = oracle.submit(items)  # retries through the outage
    assert keys_in_project(person) == sorted(it.key for it in items) and len(receipts) == 10
    person.label(items[0].key, truth(items[0].key))
    proxy.inject("500", "GET", "/api/tasks", times=2)
    proxy.inject("commit_then_drop", "GET", "/api/users")
    (answer,) = oracle.collect(1, 0)
    assert answer.label == truth(items[0].key)


def test_outage_past_the_budget_raises_one_line_and_loses_nothing(proxied) -> None:
    oracle, proxy, person = proxied
    items = text_items(6)
    annotated = oracle.submit(items[:3])
    person.label(items[0].key, "cat")
    impatient = LabelStudioOracle(oracle.url, oracle._api_key, oracle.project_id, CLASSES,
                                  retry=LabelStudioRetry(max_wait=1.5, initial_delay=0.2, max_delay=0.5))
    proxy.down_for(4.0)
    for call in (lambda: impatient.submit(items), lambda: impatient.collect(1, 0)):
        with pytest.raises(OracleError) as info:
            call()
        assert "\n" not in str(info.value) and "check the server and rerun" in str(info.value)
    time.sleep(4.0)
    receipts = impatient.submit(items)
    assert {k: receipts[k] for k in annotated} == annotated
    assert keys_in_project(person) == sorted(it.key for it in items)
    (answer,) = impatient.collect(1, 0)
    assert (answer.pool_id, answer.label) == (0, "cat")
    impatient.close()


def test_a_failing_import_of_several_batches_resumes_where_it_stopped(proxied) -> None:
    oracle, proxy, person = proxied
    batched = LabelStudioOracle(oracle.url, oracle._api_key, oracle.project_id, CLASSES,
                                retry=LabelStudioRetry(max_wait=30, initial_delay=0.2, batch_size=10))
    items = text_items(35)
    proxy.inject("500", "POST", "/import", times=1)  # the first batch is refused
    proxy.inject("commit_then_drop", "POST", "/import", times=1)  # the retried first batch commits, answer lost
    batched.submit(items)
    assert keys_in_project(person) == sorted(it.key for it in items)
    assert proxy.outcomes("/import").count("201") == 3  # the other three batches
    batched.close()
