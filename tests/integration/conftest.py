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
from typing import TYPE_CHECKING

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


#: environment variable holding the key of :func:`local_ls` (``CampaignOptions(api_key_env=...)``)
if TYPE_CHECKING:
    from tests.integration.test_campaign_recovery import Private

LOCAL_KEY_ENV = "AL_LOOP_LOCAL_LS_KEY"


@pytest.fixture(scope="session")
def local_ls(tmp_path_factory: pytest.TempPathFactory, ls_server: Server) -> Iterator[Private]:
    """A private Label Studio of the session that may call local addresses (webhooks, an ML backend on 127.0.0.1).

    Started from ``AL_LOOP_LS_VENV`` with ``SSRF_PROTECTION_ENABLED=false ML_BLOCK_LOCAL_IP=false`` on a
    free loopback port, its key in :data:`LOCAL_KEY_ENV`; stopped by its process group at the end. Every
    module that needs such a server shares this one (each starts its own projects under unique titles);
    a module that stops or restarts its server (test_campaign_recovery, test_backend_crash) keeps its own.
    """
    import signal
    from pathlib import Path

    from tests.integration.test_campaign import free_port
    from tests.integration.test_campaign_recovery import Private

    venv = Path(os.environ.get("AL_LOOP_LS_VENV", "/work/ls-server/venv"))
    if not (venv / "bin" / "label-studio").exists():
        pytest.fail(f"no Label Studio venv at {venv}; set AL_LOOP_LS_VENV to one (scripts/labelstudio.sh install)",
                    pytrace=False)
    folder = tmp_path_factory.mktemp("ls-local")
    (folder / "venv").symlink_to(venv)
    env = {k: v for k, v in os.environ.items() if k not in ("LS_PORT", "LS_KEEP_DATA")}
    server = Private(folder, {**env, "SSRF_PROTECTION_ENABLED": "false", "ML_BLOCK_LOCAL_IP": "false"})
    started = server.script("start", LS_PORT=str(free_port()))
    assert started.returncode == 0, started.stderr[-2000:]
    os.environ[LOCAL_KEY_ENV] = server.key
    try:
        yield server
    finally:
        os.environ.pop(LOCAL_KEY_ENV, None)
        try:
            os.killpg(server.pid(), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
