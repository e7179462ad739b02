"""Campaign recovery against real Label Studio servers (issue #14: 1, 3, 4, 11, 12, 13, 16).

Most tests use the shared server (``ls_server``). The server restarts run on a
private server started here with ``scripts/labelstudio.sh`` in its own folder
(its venv a symlink to the shared server's), stopped by its pid at the end.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from al_loop.api import build_pool
from al_loop.campaign import CampaignOptions, init_campaign, run_campaign
from al_loop.store import Store
from tests.harness.campaign_crash_table import BATCH, CLASSES, INIT, TruthAnnotator, delete_project, observe
from tests.integration.conftest import Server
from tests.integration.test_campaign import Campaign, cli, drive, free_port, one_line_error, title

pytestmark = pytest.mark.labelstudio

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "labelstudio.sh"


def campaign_of(db: str | Path, url: str, key: str) -> Campaign:
    store = Store(db, readonly=True)
    try:
        run_id = max(r.id for r in store.runs() if r.id is not None)
        project_id = int(store.oracle_state(run_id, "project_id") or -1)
        pool = build_pool(store.config(run_id))
    finally:
        store.close()
    return Campaign(str(db), run_id, project_id, TruthAnnotator(url, key, project_id, pool))


def project_titles(server: Server) -> list[str]:
    """Titles of all projects of the server (other sessions share it: tests look for their own title)."""
    from oracles.label_studio import connect

    client = connect(server.url, server.api_key)
    out: list[str] = []
    page = 1
    while True:
        pager = client.projects.list(page=page, page_size=100)
        items = list(pager.items or [])
        out += [str(p.title) for p in items]
        if not items or getattr(pager.response, "next", None) is None:
            return out
        page += 1


def init_args(db: Path, url: str, name: str) -> list[Any]:
    return ["campaign", "init", "--db", db, "--data", "digits", "--labels", ",".join(CLASSES), "--label-studio-url",
            url, "--batch", BATCH, "--init", INIT, "--title", name]


# --------------------------------------------------------------------------- a private server


@dataclass
class Private:
    dir: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return self.read_env()["LABEL_STUDIO_URL"]

    @property
    def key(self) -> str:
        return (self.dir / "token").read_text().strip()

    @property
    def api_key(self) -> str:
        """The same as :attr:`key` (the name :class:`tests.integration.conftest.Server` uses)."""
        return self.key

    def read_env(self) -> dict[str, str]:
        words = (self.dir / "env").read_text().split()[1:]
        return dict(w.split("=", 1) for w in words)

    def script(self, command: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(SCRIPT), command, str(self.dir)], capture_output=True, text=True,
                              timeout=240, env={**self.env, **env})

    def pid(self) -> int:
        return int((self.dir / "pid").read_text())


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory, ls_server: Server) -> Iterator[Private]:
    """A Label Studio server of this module only (own folder and port), stopped by its pid afterwards."""
    venv = Path(os.environ.get("AL_LOOP_LS_VENV", "/work/ls-server/venv"))
    if not (venv / "bin" / "label-studio").exists():
        pytest.fail(f"no Label Studio venv at {venv}; set AL_LOOP_LS_VENV to one (scripts/labelstudio.sh install)",
                    pytrace=False)
    folder = tmp_path_factory.mktemp("ls-private")
    (folder / "venv").symlink_to(venv)
    env = {k: v for k, v in os.environ.items() if k not in ("LS_PORT", "LS_KEEP_DATA")}
    server = Private(folder, env)
    started = server.script("start", LS_PORT=str(free_port()))
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        yield server
    finally:
        if (folder / "pid").exists():
            try:
                os.killpg(server.pid(), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


def test_the_script_keeps_secrets_off_the_command_line_and_private(private: Private) -> None:
    token, password = private.key, (private.dir / "password").read_text().strip()
    group = private.pid()
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    seen = 0
    for pid in pids:
        try:
            if os.getpgid(pid) != group:
                continue
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
        seen += 1
        assert token not in cmdline and password not in cmdline, cmdline.replace("\0", " ")
    assert seen >= 1  # the server and its children were looked at
    mode = lambda p: p.stat().st_mode & 0o777  # noqa: E731
    assert mode(private.dir / "data") == 0o700
    for f in ("token", "password", "env"):
        assert mode(private.dir / f) == 0o600, f
    db = private.dir / "data" / "label_studio.sqlite3"
    assert db.exists() and mode(db) & 0o077 == 0, oct(mode(db))


def test_a_restarted_server_comes_back_on_its_port_and_a_moved_one_is_set_by_url(
        private: Private, ls_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", private.key)
    url = private.url
    port = int(url.rsplit(":", 1)[1])
    db = tmp_path / "moving.sqlite"
    init_campaign(str(db), data="digits", classes=CLASSES, strategy="margin", batch=BATCH, init=INIT,
                  options=CampaignOptions(url=url, title=title()))
    camp = campaign_of(db, url, private.key)
    first = drive(camp, INIT)  # the seed batch answered
    assert first.error is None and first.labels == INIT

    # 1. a crash (kill -9 of the server group) while a client holds a connection: TIME_WAIT on the server's port
    import httpx

    held = httpx.Client(headers={"Authorization": f"Token {private.key}"})
    assert held.get(f"{url}/api/projects").status_code == 200
    os.killpg(private.pid(), signal.SIGKILL)
    time.sleep(0.5)
    held.close()
    probe = socket.socket()  # a bind without SO_REUSEADDR, as the old script probed: refused by TIME_WAIT
    try:
        probe.bind(("127.0.0.1", port))
        in_time_wait = False
    except OSError:
        in_time_wait = True
    finally:
        probe.close()
    t0 = time.monotonic()
    again = private.script("start", LS_KEEP_DATA="1")
    assert again.returncode == 0, again.stderr[-2000:]
    assert in_time_wait  # the condition that made the old script move to the next port
    assert private.url == url, again.stdout  # the same port, not the next one
    assert time.monotonic() - t0 < 120
    second = drive(camp, INIT + BATCH)  # the campaign goes on at its stored URL
    assert second.error is None and second.labels == INIT + BATCH

    # 2. the port is held by something else: a loud refusal after LS_PORT_WAIT, never a silent move
    assert private.script("stop").returncode == 0
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        refused = private.script("start", LS_KEEP_DATA="1", LS_PORT_WAIT="2")
    finally:
        squatter.close()
    assert refused.returncode == 2
    assert f"port {port} (recorded in" in refused.stderr and "still in use" in refused.stderr
    assert "set-url" in refused.stderr and not (private.dir / "pid").exists()

    # 3. moved on purpose (LS_PORT): the campaign is pointed at it, after the check that it holds the project
    moved_port = free_port()
    moved = private.script("start", LS_KEEP_DATA="1", LS_PORT=str(moved_port))
    assert moved.returncode == 0, moved.stderr[-2000:]
    new_url = private.url
    assert new_url == f"http://127.0.0.1:{moved_port}"
    env = {**os.environ, "LABEL_STUDIO_API_KEY": private.key}
    wrong = cli(["campaign", "set-url", "--db", db, "--label-studio-url", ls_server.url],
                env={**env, "LABEL_STUDIO_API_KEY": ls_server.api_key})  # another server: not its project
    line = one_line_error(wrong, private.key)
    assert ("is not the project of run" in line or f"has no project {camp.project_id}" in line), line
    store = Store(db, readonly=True)
    assert store.oracle_state(camp.run_id, "url") is None  # unchanged
    store.close()
    ok = cli(["campaign", "set-url", "--db", db, "--label-studio-url", new_url], env=env)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert f"now reached at {new_url}" in ok.stderr + ok.stdout
    given = camp.person.given
    camp.person = campaign_of(db, new_url, private.key).person  # the person's browser moves too
    camp.person.given = given
    third = drive(camp, INIT + 2 * BATCH)
    assert third.error is None and third.labels == INIT + 2 * BATCH
    keys = camp.person.keys()
    assert keys and max(keys.values()) == 1  # no task sent twice across the restarts and the move


# --------------------------------------------------------------------------- 3. a campaign owns its tasks


def test_a_second_store_with_the_same_title_is_refused_then_adopts_without_taking_old_answers(
        ls_server: Server, tmp_path: Path) -> None:
    name = title()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    db_a, db_b = tmp_path / "a" / "campaign.sqlite", tmp_path / "b" / "campaign.sqlite"  # the same file name
    assert cli(init_args(db_a, ls_server.url, name)).returncode == 0
    a = campaign_of(db_a, ls_server.url, ls_server.api_key)
    try:
        cid_a = Store(db_a, readonly=True).config(a.run_id).oracle_params["campaign_id"]
        assert a.person.answer_pending() == INIT  # old answers in the project
        tasks_before = len(a.person.person.all_tasks())
        refused = one_line_error(cli(init_args(db_b, ls_server.url, name)), ls_server.api_key)
        assert f"holds {INIT} task(s) of another campaign (campaign id {cid_a})" in refused and "--adopt" in refused
        assert not db_b.exists() and len(a.person.person.all_tasks()) == tasks_before  # nothing written anywhere

        adopted = cli(init_args(db_b, ls_server.url, name) + ["--adopt"])
        assert adopted.returncode == 0, adopted.stderr[-2000:]
        assert f"adopting Label Studio project {a.project_id}" in adopted.stderr
        b = campaign_of(db_b, ls_server.url, ls_server.api_key)
        assert b.project_id == a.project_id
        cid_b = Store(db_b, readonly=True).config(b.run_id).oracle_params["campaign_id"]
        assert len(a.person.person.all_tasks()) == 2 * INIT  # B sent its own seed batch
        description = a.person.person.client.projects.get(id=a.project_id).description
        assert cid_a in description and cid_b in description
        polls: list[int] = []

        def stop() -> bool:
            polls.append(1)
            return len(polls) > 15

        got = run_campaign(str(db_b), poll=0.1, should_stop=stop)
        assert got == 0 and observe(str(db_b)) == (0, 3)  # A's answers are not B's: B still waits
        b.person.given = dict(a.person.given)  # A's tasks are answered already; the person answers B's now
        done = drive(b, INIT)
        assert done.error is None and done.labels == INIT
        con = sqlite3.connect(db_a)
        assert con.execute("SELECT count(*) FROM labels").fetchone()[0] == 0  # A's store: untouched by B
        con.close()
    finally:
        delete_project(ls_server.url, ls_server.api_key, a.project_id)


# --------------------------------------------------------------------------- 4. --run, and the advice that works


def test_a_deleted_project_advises_a_command_that_works_and_run_picks_the_run(ls_server: Server,
                                                                               tmp_path: Path) -> None:
    db, name = tmp_path / "c.sqlite", title()
    assert cli(init_args(db, ls_server.url, name)).returncode == 0
    first = campaign_of(db, ls_server.url, ls_server.api_key)
    delete_project(ls_server.url, ls_server.api_key, first.project_id)
    line = one_line_error(cli(["campaign", "run", "--db", db, "--poll", "0.2s"]), ls_server.api_key)
    advice = f"al-loop runs abandon --db {db} --run {first.run_id}"
    assert "is gone" in line and f"`{advice}`" in line and f"al-loop campaign init --db {db}" in line
    abandon = cli(advice.split()[1:])
    assert abandon.returncode == 0, abandon.stderr
    assert cli(init_args(db, ls_server.url, name)).returncode == 0  # a new project, run 2
    second = campaign_of(db, ls_server.url, ls_server.api_key)
    try:
        assert second.run_id == first.run_id + 1
        old = one_line_error(cli(["campaign", "run", "--db", db, "--run", first.run_id]), ls_server.api_key)
        assert f"campaign run {first.run_id}" in old and "abandoned" in old
        missing = one_line_error(cli(["campaign", "status", "--db", db, "--run", 99]), ls_server.api_key)
        assert "run 99 is not a campaign run" in missing
        shown = cli(["campaign", "status", "--db", db, "--run", second.run_id])
        assert shown.returncode == 0, shown.stderr
        body = [ln for ln in shown.stdout.splitlines() if "AWAITING" in ln]
        assert len(body) == 1  # only run 2's round 0
        driven = drive(second, INIT)  # no --run: the newest running campaign run
        assert driven.error is None and driven.labels == INIT
    finally:
        delete_project(ls_server.url, ls_server.api_key, second.project_id)


# --------------------------------------------------------------------------- 11, 12, 13: messages


def test_a_missing_db_folder_is_named_before_any_project_is_created(ls_server: Server, tmp_path: Path) -> None:
    db, name = tmp_path / "no-such-folder" / "c.sqlite", title()
    line = one_line_error(cli(init_args(db, ls_server.url, name)), ls_server.api_key)
    assert f"({tmp_path / 'no-such-folder'}) does not exist" in line and "backup" not in line
    assert name not in project_titles(ls_server) and not db.parent.exists()  # no project was created


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def test_a_url_of_another_server_says_so_without_its_html(ls_server: Server, tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    handler = lambda *a, **k: _Quiet(*a, directory=str(tmp_path / "www"), **k)  # noqa: E731
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{other.server_address[1]}"
    try:
        db = tmp_path / "c.sqlite"
        line = one_line_error(cli(init_args(db, url, title())), ls_server.api_key)
        assert f"{url} does not answer like Label Studio (HTTP 404 on /api/projects)" in line
        assert "<" not in line and "campaign init" not in line and "gone" not in line
        assert not db.exists()
        assert cli(init_args(db, ls_server.url, title())).returncode == 0
        camp = campaign_of(db, ls_server.url, ls_server.api_key)
        try:
            moved = one_line_error(cli(["campaign", "set-url", "--db", db, "--label-studio-url", url]),
                                   ls_server.api_key)
            assert "does not answer like Label Studio (HTTP 404 on /api/projects)" in moved and "<" not in moved
            store = Store(db, readonly=True)
            assert store.oracle_state(camp.run_id, "url") is None
            store.close()
        finally:
            delete_project(ls_server.url, ls_server.api_key, camp.project_id)
    finally:
        other.shutdown()
        other.server_close()


def test_a_wrong_key_names_the_variable_actually_used(ls_server: Server, tmp_path: Path) -> None:
    wrong = "0123456789abcdef0123456789abcdef01234567"
    env = {**os.environ, "MY_LS_KEY": wrong}
    env.pop("LABEL_STUDIO_API_KEY", None)
    db = tmp_path / "c.sqlite"
    line = one_line_error(cli(init_args(db, ls_server.url, title()) + ["--api-key-env", "MY_LS_KEY"], env=env),
                          ls_server.api_key)
    assert "HTTP 401" in line and "set MY_LS_KEY to a valid token" in line and "LABEL_STUDIO_API_KEY" not in line
    assert wrong not in line and not db.exists()


# --------------------------------------------------------------------------- the crash table's server rows


def test_campaign_crash_harness_server_rows_one_trial_each(private: Private) -> None:
    import tempfile

    from tests.harness.campaign_crash_table import (
        SERVER_EVENTS,
        PrivateServer,
        reference_for,
        run_server_trial,
    )

    lines: list[str] = []
    server = PrivateServer(private.dir)
    with tempfile.TemporaryDirectory() as tmp:
        ref = reference_for(tmp, 0)
        for event in SERVER_EVENTS:
            intended, broken = run_server_trial(event, 0, tmp, server, ref, log=lines.append)
            assert intended and broken == [], (event, broken, lines)
