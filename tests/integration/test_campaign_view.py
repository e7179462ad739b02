"""What annotators see and what the store makes of their answers, against a real Label Studio server.

Pre-annotations in every round (the project's model_version kept in step), one
rule for answers of several annotators, the kind of data checked before
anything is created, and ``campaign status`` / ``export`` of those answers.
Needs ``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY`` (see ``conftest.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from al_loop.types import OutboxItem
from oracles.label_studio import MODEL_VERSION, LabelStudioOracle, LabelStudioRetry, connect, task_for
from tests.integration.annotator import Annotator
from tests.integration.conftest import Server

pytestmark = pytest.mark.labelstudio

CLASSES = ("cat", "dog", "bird")
FAST = LabelStudioRetry(max_wait=30, initial_delay=0.2, max_delay=2, timeout=30)


def items(round_: int, n: int = 2, run: int = 1) -> list[OutboxItem]:
    start = 10 * round_
    return [OutboxItem(run_id=run, round=round_, pool_id=start + i, payload={"text": f"item {start + i}"},
                       prediction={"label": CLASSES[(start + i) % 3], "score": 0.4 + 0.1 * i}) for i in range(n)]


@pytest.fixture
def oracle_on(ls_server: Server, new_project: Callable[..., int]) -> Iterator[Callable[[], LabelStudioOracle]]:
    made: list[LabelStudioOracle] = []

    def make() -> LabelStudioOracle:
        oracle = LabelStudioOracle(ls_server.url, ls_server.api_key, new_project(CLASSES, "text"), CLASSES,
                                   retry=FAST)
        made.append(oracle)
        return oracle

    yield make
    for oracle in made:
        oracle.close()


def next_task(server: Server, project_id: int) -> dict:
    """The task Label Studio gives an annotator who presses *Label All Tasks* (the labeling stream)."""
    reply = httpx.get(f"{server.url}/api/projects/{project_id}/next",
                      headers={"Authorization": f"Token {server.api_key}"}, timeout=30)
    assert reply.status_code == 200, reply.text[:300]
    return reply.json()


# --------------------------------------------------------------------------- item 7: pre-annotations in every round


@pytest.mark.parametrize("history", ["new project", "project of an older al-loop"])
def test_the_labeling_stream_shows_the_prediction_in_round_3(ls_server: Server,
                                                             oracle_on: Callable[[], LabelStudioOracle],
                                                             history: str) -> None:
    oracle = oracle_on()
    person = Annotator(ls_server.url, ls_server.api_key, oracle.project_id)
    client = connect(ls_server.url, ls_server.api_key)
    first = 0
    if history == "project of an older al-loop":
        # An older al-loop gave every round its own version; Label Studio fixed the project at the first one.
        (old,) = [task_for(it, CLASSES) for it in items(0, n=1)]
        old["predictions"][0]["model_version"] = "al-loop:1:0"
        client.projects.import_tasks(id=oracle.project_id, request=[old], return_task_ids=True)
        assert client.projects.get(id=oracle.project_id).model_version == "al-loop:1:0"
        person.label("1:0:0", "cat")
        first = 1
    for round_ in range(first, 4):
        sent = items(round_)
        oracle.submit(sent)
        if round_ < 3:  # the annotator finishes the round; round 3 waits in the stream
            person.label_all([it.key for it in sent], lambda key: "bird")
    assert client.projects.get(id=oracle.project_id).model_version == MODEL_VERSION
    task = next_task(ls_server, oracle.project_id)
    assert task["data"]["al_round"] == 3, task["data"]
    predictions = task.get("predictions") or []
    assert len(predictions) == 1, f"the annotator sees no pre-annotation in round 3: {task.get('predictions')}"
    expected = next(it for it in items(3) if it.pool_id == task["data"]["al_pool_id"]).prediction
    assert predictions[0]["result"][0]["value"] == {"choices": [expected["label"]]}
    assert predictions[0]["model_version"] == MODEL_VERSION
