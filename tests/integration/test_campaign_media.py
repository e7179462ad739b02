"""Campaigns over a folder of real photos, against a real Label Studio server (issue #15, item 5).

The server must serve local files: the shared one (``LABEL_STUDIO_URL``) when its
environment names ``LABEL_STUDIO_FILES_ROOT`` and it serves them, else a private
one started here with ``scripts/labelstudio.sh`` (its venv a symlink to the shared
server's, ``LS_FILES_ROOT`` a folder of this module), stopped by its pid at the end.
The photos are written by the tests under the files root: JPEG, PNG, RGBA PNG,
nested folders, one large photo.
"""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from al_loop.store import Store
from tests.integration.test_campaign import cli, free_port, one_line_error

pytestmark = pytest.mark.labelstudio

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "labelstudio.sh"
CLASSES = ("cat", "dog")


@dataclass(frozen=True)
class MediaServer:
    url: str
    api_key: str
    files_root: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("LABEL_STUDIO_FILES_ROOT",)}
        return {**env, "LABEL_STUDIO_URL": self.url, "LABEL_STUDIO_API_KEY": self.api_key,
                "LABEL_STUDIO_FILES_ROOT": str(self.files_root), **extra}

    def get(self, path: str) -> tuple[int, str, bytes]:
        """``(status, content type, body)`` of ``GET url + path`` with the API token."""
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Token {self.api_key}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - loopback test server
                return reply.status, reply.headers.get("Content-Type", ""), reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def _serves_local_files(url: str, key: str) -> bool:
    request = urllib.request.Request(f"{url.rstrip('/')}/data/local-files/?d=al-loop-probe/none.png",
                                     headers={"Authorization": f"Token {key}"})
    try:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310 - loopback test server
        return True
    except urllib.error.HTTPError as exc:
        return exc.code == 404
    except OSError:
        return False


@pytest.fixture(scope="module")
def media_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    """The shared server when it serves local files (``LABEL_STUDIO_FILES_ROOT`` set), else a private one."""
    url, key = os.environ.get("LABEL_STUDIO_URL", ""), os.environ.get("LABEL_STUDIO_API_KEY", "")
    shared_root = os.environ.get("LABEL_STUDIO_FILES_ROOT", "")
    if url and key and shared_root and Path(shared_root).is_dir() and _serves_local_files(url, key):
        root = Path(shared_root) / f"al-loop-test-{uuid.uuid4().hex[:8]}"
        root.mkdir()
        yield MediaServer(url.rstrip("/"), key, Path(shared_root).resolve())
        return
    venv = Path(os.environ.get("AL_LOOP_LS_VENV", "/work/ls-server/venv"))
    if not (venv / "bin" / "label-studio").exists():
        pytest.fail(f"no Label Studio venv at {venv}; set AL_LOOP_LS_VENV to one (scripts/labelstudio.sh install)",
                    pytrace=False)
    folder = tmp_path_factory.mktemp("ls-media")
    (folder / "venv").symlink_to(venv)
    files = tmp_path_factory.mktemp("ls-files")
    env = {k: v for k, v in os.environ.items() if k not in ("LS_PORT", "LS_KEEP_DATA", "LS_FILES_ROOT")}
    started = subprocess.run(["bash", str(SCRIPT), "start", str(folder)], capture_output=True, text=True,
                             timeout=300, env={**env, "LS_PORT": str(free_port()), "LS_FILES_ROOT": str(files)})
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        words = dict(w.split("=", 1) for w in (folder / "env").read_text().split()[1:])
        assert Path(words["LABEL_STUDIO_FILES_ROOT"]) == files.resolve()  # the script tells where the root is
        yield MediaServer(words["LABEL_STUDIO_URL"], words["LABEL_STUDIO_API_KEY"], files.resolve())
    finally:
        if (folder / "pid").exists():
            try:
                os.killpg(int((folder / "pid").read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


def write_photos(folder: Path) -> dict[str, bytes]:
    """Real photos of several formats and modes, nested; ``{relative path: file bytes}``."""
    from PIL import Image

    rng = np.random.default_rng(7)
    made: dict[str, bytes] = {}

    def save(rel: str, mode: str, size: tuple[int, int], fmt: str) -> None:
        channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
        pixels = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
        img = Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode=mode)
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, format=fmt)
        made[rel] = path.read_bytes()

    save("a.jpg", "RGB", (40, 30), "JPEG")
    save("b.png", "RGB", (24, 36), "PNG")
    save("c.png", "RGBA", (32, 32), "PNG")
    save("trip/d.jpeg", "RGB", (50, 20), "JPEG")
    save("trip/day 2/e.png", "L", (20, 20), "PNG")  # a space in the path: the URL is quoted
    save("trip/day 2/f.jpg", "RGB", (1600, 900), "JPEG")  # large: inline shrinks it
    return made


def title() -> str:
    return f"al-loop-media-test-{uuid.uuid4().hex[:10]}"


def init_args(db: Path, server: MediaServer, photos: Path, name: str, *extra: Any) -> list[Any]:
    return ["campaign", "init", "--db", db, "--images", photos, "--labels", ",".join(CLASSES),
            "--label-studio-url", server.url, "--encoder", "pixels", "--image-size", 8, "--init", 4, "--batch", 2,
            "--title", name, *extra]


def project_of(db: Path) -> tuple[int, int, dict[str, Any]]:
    store = Store(db, readonly=True)
    try:
        run_id = max(r.id for r in store.runs() if r.id is not None)
        config = store.config(run_id)
        return run_id, int(store.oracle_state(run_id, "project_id") or -1), {
            "oracle_params": config.oracle_params, "inputs_digest": config.inputs_digest}
    finally:
        store.close()


def tasks_of(server: MediaServer, project_id: int) -> list[Any]:
    """Every task of the project with its data and predictions."""
    from oracles.label_studio import connect

    client = connect(server.url, server.api_key)
    return list(client.tasks.list(project=project_id, fields="all", page_size=1000))


def project_titles(server: MediaServer) -> list[str]:
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


@pytest.fixture
def projects(media_server: MediaServer) -> Iterator[list[int]]:
    made: list[int] = []
    yield made
    from oracles.label_studio import connect

    client = connect(media_server.url, media_server.api_key)
    for project_id in made:
        try:
            client.projects.delete(id=project_id)
        except Exception:  # noqa: BLE001 - cleanup only
            pass


@pytest.fixture
def photos(media_server: MediaServer) -> Iterator[tuple[Path, dict[str, bytes]]]:
    folder = media_server.files_root / f"photos-{uuid.uuid4().hex[:8]}"
    yield folder, write_photos(folder)


# --------------------------------------------------------------------------- local files


def test_local_files_campaign_serves_the_photos_and_pulls_an_answer(
        media_server: MediaServer, photos: tuple[Path, dict[str, bytes]], projects: list[int],
        tmp_path: Path) -> None:
    folder, made = photos
    db = tmp_path / "photos.sqlite"
    done = cli(init_args(db, media_server, folder, title()), env=media_server.env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert "local files storage" in done.stdout + done.stderr
    run_id, project_id, recorded = project_of(db)
    projects.append(project_id)
    assert recorded["oracle_params"]["media"] == {"mode": "local-files", "root": str(media_server.files_root)}
    assert recorded["inputs_digest"]  # the photos and the encoder, checked on resume
    tasks = tasks_of(media_server, project_id)
    assert len(tasks) == 4
    for task in tasks:
        image, rel = task.data["image"], task.data["al_path"]
        assert image.startswith("/data/local-files/?d=") and " " not in image
        status, ctype, body = media_server.get(image)
        assert status == 200, (image, status, body[:200])
        assert ctype.startswith("image/"), ctype
        assert body == made[rel]
    # a file of the folder that is not a photo of the run is still only served under the storage, and a file
    # outside every storage is not served at all
    outside = media_server.files_root / f"elsewhere-{uuid.uuid4().hex[:6]}"
    outside.mkdir()
    (outside / "x.png").write_bytes(made["b.png"])
    status, _, _ = media_server.get(f"/data/local-files/?d={outside.name}/x.png")
    assert status == 404

    from tests.integration.annotator import Annotator

    person = Annotator(media_server.url, media_server.api_key, project_id)
    first = tasks[0]
    person.client.annotations.create(id=int(first.id), result=person._result("dog"),
                                     completed_by=person.user_id, was_cancelled=False)
    pulled = cli(["campaign", "pull", "--db", db], env=media_server.env())
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    store = Store(db, readonly=True)
    try:
        labels = [(r.pool_id, r.label) for r in store.labels(run_id) if r.status == "labeled"]
    finally:
        store.close()
    assert labels == [(int(first.data["al_pool_id"]), "dog")]


def test_the_second_round_carries_the_predicted_class_and_its_probability(
        media_server: MediaServer, photos: tuple[Path, dict[str, bytes]], projects: list[int],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from al_loop.api import build_learner, build_pool
    from al_loop.campaign import CampaignOptions, init_campaign, run_campaign
    from oracles.label_studio import _as_dict
    from tests.integration.annotator import Annotator

    folder, _ = photos
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", media_server.api_key)
    monkeypatch.setenv("LABEL_STUDIO_FILES_ROOT", str(media_server.files_root))
    db = tmp_path / "rounds.sqlite"
    run_id = init_campaign(str(db), images=str(folder), classes=CLASSES, strategy="margin", batch=2, init=4,
                           encoder="pixels", image_size=8,
                           options=CampaignOptions(url=media_server.url, title=title()))
    _, project_id, _ = project_of(db)
    projects.append(project_id)
    person = Annotator(media_server.url, media_server.api_key, project_id)
    seed = tasks_of(media_server, project_id)
    answers = {int(t.data["al_pool_id"]): CLASSES[i % 2] for i, t in enumerate(seed)}
    for task in seed:
        person.client.annotations.create(id=int(task.id), result=person._result(answers[int(task.data["al_pool_id"])]),
                                         completed_by=person.user_id, was_cancelled=False)

    def round_one_sent() -> bool:
        store = Store(db, readonly=True)
        try:
            rnd = store.current_round(run_id)
            return rnd.idx >= 1 and rnd.state == "AWAITING"
        finally:
            store.close()

    run_campaign(str(db), poll=0.2, should_stop=round_one_sent)
    assert round_one_sent()
    second = [t for t in tasks_of(media_server, project_id) if int(t.data["al_round"]) == 1]
    assert len(second) == 2
    store = Store(db, readonly=True)
    try:
        config = store.config(run_id)
    finally:
        store.close()
    pool = build_pool(config)
    learner = build_learner(config.learner, pool)
    ids = np.array(sorted(answers), dtype=np.int64)
    learner.fit(pool, ids, np.array([CLASSES.index(answers[i]) for i in ids]), seed=0)
    for task in second:
        assert task.data["image"].startswith("/data/local-files/?d=")
        (prediction,) = [p for p in map(_as_dict, task.predictions or []) if p is not None]
        proba = learner.predict_proba(pool, np.array([int(task.data["al_pool_id"])]))[0]
        assert prediction["result"][0]["value"]["choices"] == [CLASSES[int(proba.argmax())]]
        assert prediction["score"] == pytest.approx(float(proba.max()), abs=1e-5)


# --------------------------------------------------------------------------- url and inline


def test_url_mode_passes_prefix_plus_path(media_server: MediaServer, photos: tuple[Path, dict[str, bytes]],
                                          projects: list[int], tmp_path: Path) -> None:
    folder, made = photos
    db = tmp_path / "url.sqlite"
    prefix = "s3://my-bucket/holiday/"
    done = cli(init_args(db, media_server, folder, title(), "--media", "url", "--media-url", prefix),
               env=media_server.env())
    assert done.returncode == 0, done.stderr[-3000:]
    _, project_id, recorded = project_of(db)
    projects.append(project_id)
    assert recorded["oracle_params"]["media"] == {"mode": "url", "prefix": prefix}
    tasks = tasks_of(media_server, project_id)
    assert len(tasks) == 4
    for task in tasks:
        assert task.data["al_path"] in made
        assert task.data["image"] == prefix + task.data["al_path"]


def test_inline_mode_sends_jpeg_data_uris_at_most_1024_px(media_server: MediaServer,
                                                          photos: tuple[Path, dict[str, bytes]],
                                                          projects: list[int], tmp_path: Path) -> None:
    from PIL import Image

    folder, made = photos
    db = tmp_path / "inline.sqlite"
    done = cli(init_args(db, media_server, folder, title(), "--media", "inline", "--init", 6),
               env=media_server.env())
    assert done.returncode == 0, done.stderr[-3000:]
    _, project_id, recorded = project_of(db)
    projects.append(project_id)
    assert recorded["oracle_params"]["media"] == {"mode": "inline"}
    tasks = tasks_of(media_server, project_id)
    assert sorted(t.data["al_path"] for t in tasks) == sorted(made)
    for task in tasks:
        head, data = task.data["image"].split(",", 1)
        assert head == "data:image/jpeg;base64"
        img = Image.open(io.BytesIO(base64.b64decode(data)))
        assert img.format == "JPEG" and img.mode == "RGB"
        original = Image.open(folder / task.data["al_path"]).size
        if max(original) > 1024:
            assert max(img.size) == 1024 and abs(img.size[0] / img.size[1] - original[0] / original[1]) < 0.01
        else:
            assert img.size == original


# --------------------------------------------------------------------------- bad input


def test_a_folder_outside_the_document_root_creates_nothing(media_server: MediaServer, tmp_path: Path) -> None:
    folder = tmp_path / "not-served"
    write_photos(folder)
    name, db = title(), tmp_path / "outside.sqlite"
    line = one_line_error(cli(init_args(db, media_server, folder, name, "--media", "local-files"),
                              env=media_server.env()), media_server.api_key)
    assert f"is not under Label Studio's document root {media_server.files_root}" in line
    assert "LS_FILES_ROOT" in line and "move the photos" in line
    auto = one_line_error(cli(init_args(db, media_server, folder, name), env=media_server.env()),
                          media_server.api_key)
    assert "is not under" in auto  # auto picks local files on a server that serves them
    assert name not in project_titles(media_server)
    assert not db.exists()


@pytest.mark.parametrize(("extra", "wanted"), [
    (("--data", "digits"), "--images and --data are exclusive"),
    (("--media", "url"), "--media url needs --media-url PREFIX"),
    (("--media-url", "ftp://host/x/"), "is no URL Label Studio resolves"),
    (("--media", "inline", "--media-url", "s3://b/"), "--media-url goes with --media url"),
])
def test_bad_media_flags_are_one_line_and_create_nothing(media_server: MediaServer,
                                                         photos: tuple[Path, dict[str, bytes]], tmp_path: Path,
                                                         extra: tuple[str, ...], wanted: str) -> None:
    folder, _ = photos
    name, db = title(), tmp_path / "bad.sqlite"
    line = one_line_error(cli(init_args(db, media_server, folder, name, *extra), env=media_server.env()),
                          media_server.api_key)
    assert wanted in line
    assert name not in project_titles(media_server)
    assert not db.exists()


def test_an_empty_folder_is_one_line_and_creates_nothing(media_server: MediaServer, tmp_path: Path) -> None:
    folder = media_server.files_root / f"empty-{uuid.uuid4().hex[:8]}"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("no photos here")
    name, db = title(), tmp_path / "empty.sqlite"
    line = one_line_error(cli(init_args(db, media_server, folder, name), env=media_server.env()),
                          media_server.api_key)
    assert "no .jpg" in line and str(folder.name) in line
    assert name not in project_titles(media_server)
    assert not db.exists()
