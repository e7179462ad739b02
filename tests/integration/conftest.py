"""Fixtures for tests against a real Label Studio server.

The server comes from the environment (``LABEL_STUDIO_URL``,
``LABEL_STUDIO_API_KEY``). Without it the tests skip, or fail when
``AL_LOOP_REQUIRE_LABELSTUDIO=1`` (as in CI), saying how to start one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

HOW_TO_START = (
    "start one with: scripts/labelstudio.sh install .ls-server && scripts/labelstudio.sh start .ls-server "
    "&& source .ls-server/env (stop it with scripts/labelstudio.sh stop .ls-server)"
)


@dataclass(frozen=True)
class Server:
    url: str
    api_key: str


def _unavailable(reason: str) -> None:
    message = f"{reason}; {HOW_TO_START}"
    if os.environ.get("AL_LOOP_REQUIRE_LABELSTUDIO") == "1":
        pytest.fail(f"AL_LOOP_REQUIRE_LABELSTUDIO=1 but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def ls_server() -> Server:
    """The Label Studio server named by the environment, checked to answer."""
    url, key = os.environ.get("LABEL_STUDIO_URL", ""), os.environ.get("LABEL_STUDIO_API_KEY", "")
    if not url or not key:
        _unavailable("LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY are not set")
    import httpx

    try:
        reply = httpx.get(f"{url.rstrip('/')}/api/projects", params={"page_size": 1},
                          headers={"Authorization": f"Token {key}"}, timeout=10)
    except httpx.HTTPError as exc:
        pytest.fail(f"no Label Studio answers at LABEL_STUDIO_URL={url} ({type(exc).__name__}); {HOW_TO_START}",
                    pytrace=False)
    if reply.status_code in (401, 403):
        pytest.fail(f"Label Studio at {url} refuses LABEL_STUDIO_API_KEY (HTTP {reply.status_code}); "
                    "source the env file its start wrote", pytrace=False)
    return Server(url.rstrip("/"), key)


@pytest.fixture
def new_project(ls_server: Server) -> Iterator[Callable[..., int]]:
    """Factory: a fresh project (unique title) for this test; deleted afterwards."""
    from oracles.label_studio import connect, ensure_project

    client = connect(ls_server.url, ls_server.api_key)
    made: list[int] = []

    def make(classes: tuple[str, ...] = ("cat", "dog", "bird"), kind: str = "text", title: str | None = None) -> int:
        project_id = ensure_project(client, title or f"al-loop-test-{uuid.uuid4().hex[:10]}", classes, kind)
        made.append(project_id)
        return project_id

    yield make
    for project_id in made:
        try:
            client.projects.delete(id=project_id)
        except Exception:  # noqa: BLE001 - cleanup only; a leftover project harms nothing
            pass
