"""Annotation campaigns: the loop chooses, people label in Label Studio, the loop learns.

Plain functions behind ``al-loop campaign init/run/status``. The API key is
read from an environment variable or a file each time a command starts; the
store records only *where* to find it (``api_key_env`` / ``api_key_file``),
never the key, and no message prints it. The Label Studio oracle is reached
through the ORACLES registry, so this module does not import the SDK.

Label Studio being down, slow, 5xx or 429: each call retries ``CALL_WAIT``
seconds, then the loop says once that the server is down and keeps waiting
(a reminder every ``STILL_DOWN_EVERY`` seconds, one line when it is back; it
stops with one line after ``--retry-budget``); an HTTP answer that no retry
fixes (the key refused, 401/403; the project gone, 404) ends the command with
one line naming the cause, and the store keeps its state. ``campaign init``
gives a server that does not answer ``INIT_CONTACT_WAIT`` seconds, then stops
before writing anything. A task a person deletes in the round being waited
for: its answer, if any, is withdrawn at the next pull, the loop keeps waiting
for the item and the next ``campaign run`` sends it again, once, with the same
key. An answer withdrawn from a closed round is recorded as withdrawn (shown by
``status``) and not asked again. ``--until-labels`` pulls the open rounds once
more before it stops; ``pull_campaign`` (``campaign pull``) only collects.

Ownership: ``campaign init`` draws a campaign id (``uuid4().hex[:12]``, kept in
the run's ``oracle_params`` so it is written with the run, in one transaction);
it is in every task's key and in the project's description, and the oracle only
sees tasks that carry it. ``init`` refuses a project (same title) that holds
tasks of another campaign unless ``adopt`` is given; then the project is shared
and the other tasks are left as they are. Runs made before campaign ids (no
``campaign_id`` in ``oracle_params``) keep the old keys and work as before.

A moved server: ``set_campaign_url`` (``campaign set-url``, or ``campaign run
--label-studio-url``) checks that the URL holds the run's project (same id,
and the campaign id in its description or tasks) and records the URL in the
run's ``oracle_state`` (``url``), which wins over the one in the config.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from al_loop.api import build_learner, build_pool, build_strategy, record_items, stamp_inputs, validate
from al_loop.config import RunConfig
from al_loop.controller import Controller, withdrawn_ids
from al_loop.errors import ConfigError, DataError, OracleError, StoreError
from al_loop.lease import RunLease
from al_loop.oracle import Oracle
from al_loop.registry import DATASETS, ORACLES
from al_loop.run_pool import RunPool
from al_loop.store import Store, check_sqlite_file
from al_loop.types import RunStatus

ORACLE = "label_studio"
#: seconds ``campaign init`` retries a server that does not answer before it gives up (nothing is written)
INIT_CONTACT_WAIT = 10.0
#: seconds one oracle call of ``campaign run`` retries before the loop takes over (says "down", keeps waiting)
CALL_WAIT = 4.0
#: seconds between the loop's tries while the server is down
OUTAGE_RETRY = 2.0
#: default ``--retry-budget``: how long ``campaign run`` waits out one outage before it stops (state kept)
RETRY_BUDGET = 3600.0
#: seconds between "still down" lines during one outage
STILL_DOWN_EVERY = 300.0


def _check_url(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--label-studio-url {url!r} is not an http(s) URL; write e.g. http://127.0.0.1:8080")


def _key_source(params: dict[str, Any]) -> str:
    if params.get("api_key_file"):
        return f"the key file {params['api_key_file']}"
    return f"${params.get('api_key_env') or 'LABEL_STUDIO_API_KEY'}"


def _key_advice(params: dict[str, Any]) -> str:
    if params.get("api_key_file"):
        return f"put a valid token of that server in the key file {params['api_key_file']}"
    return f"set {params.get('api_key_env') or 'LABEL_STUDIO_API_KEY'} to a valid token of that server"


def _probe(url: str, api_key: str) -> int | None:
    """None when ``url`` answers ``/api/projects`` like Label Studio (JSON), else the HTTP status (0: no JSON)."""
    request = urllib.request.Request(f"{url.rstrip('/')}/api/projects?page_size=1",
                                     headers={"Authorization": f"Token {api_key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 - http(s) checked by _check_url
            json.loads(reply.read(1_000_000) or b"null")
            return None
    except urllib.error.HTTPError as exc:
        return None if exc.code in (401, 403) else exc.code
    except (OSError, ValueError):
        return 0


def _fatal(exc: OracleError, params: dict[str, Any], project: Any, *, db: str | None = None,
           run_id: int | None = None, api_key: str | None = None) -> OracleError:
    """A Label Studio HTTP error that retrying will not fix, as one line naming the cause."""
    status = getattr(exc, "status", None)
    url = params.get("url")
    if status in (401, 403):
        what = str(exc).split(";")[0]  # "Label Studio at URL refused the API key (HTTP 401) while trying to ..."
        out = OracleError(f"{what}; {_key_advice(params)} (this campaign reads the key from {_key_source(params)})")
    elif status == 404 and api_key and url and (code := _probe(str(url), api_key)) is not None:
        where = "--label-studio-url" if db is None else (
            f"the campaign's URL, or point it at its server: `al-loop campaign set-url --db {db} "
            "--label-studio-url URL`")
        answer = f"HTTP {code}" if code else "no JSON"
        out = OracleError(f"{url} does not answer like Label Studio ({answer} on /api/projects); check {where}")
    elif status == 404:
        again = (f"or give the run up and start again: `al-loop runs abandon --db {db} --run {run_id}`, then "
                 f"`al-loop campaign init --db {db} ...`" if db is not None and run_id is not None
                 else "or start a new campaign with `al-loop campaign init`")
        out = OracleError(f"Label Studio project {project} at {url} is gone (HTTP 404: deleted, or the URL names "
                          f"another server); the store keeps its state: restore the project, {again}")
    else:
        return exc
    out.status = status  # type: ignore[attr-defined]
    return out


def resolve_api_key(api_key_env: str | None, api_key_file: str | None) -> str:
    """The API key from ``$api_key_env`` or the first line of ``api_key_file``."""
    if api_key_file:
        path = Path(api_key_file)
        if not path.exists():
            raise ConfigError(f"API key file {path} does not exist; pass --api-key-file PATH of a file with the key")
        key = path.read_text().strip().splitlines()[0].strip() if path.read_text().strip() else ""
        if not key:
            raise ConfigError(f"API key file {path} is empty; put the Label Studio access token in it")
        return key
    name = api_key_env or "LABEL_STUDIO_API_KEY"
    key = os.environ.get(name, "").strip()
    if not key:
        raise ConfigError(f"environment variable {name} is not set; export it with your Label Studio access token "
                          "(or pass --api-key-file)")
    return key


def data_source(data: str | None, classes: Sequence[str], kind: str, *, images: str | None = None,
                encoder: str | None = None, encoder_weights: str | None = None, image_size: int | None = None,
                skip_bad: bool = False, text_column: str | None = None,
                multilabel: bool = False) -> tuple[str, dict[str, Any]]:
    """Dataset name and parameters for ``--data`` (a built-in dataset name or a file) or ``--images DIR``.

    ``multilabel`` (``--multilabel``): annotators give each item a set of the
    classes; recorded as ``multilabel=True`` in the parameters of a file,
    texts or photos (a built-in dataset is what it is: ``fashion-canvas`` is
    multi-label by itself).

    ``--images`` is any folder of photos (nested folders allowed, no labels
    needed): the ``images`` dataset with ``labeled=False`` and the given classes,
    embedded by ``encoder`` (default: the loader's). ``--data`` texts take
    ``text_column`` and ``encoder`` (default tfidf); neither is recorded when
    not given, so older runs keep their dataset keys.
    """
    name, params = _data_source(data, classes, kind, images=images, encoder=encoder, encoder_weights=encoder_weights,
                                image_size=image_size, skip_bad=skip_bad, text_column=text_column)
    if multilabel:
        if name not in ("file", "text", "images"):
            raise ConfigError(f"--multilabel goes with files, texts or --images, not with the built-in {name!r}; "
                              "drop --multilabel")
        params["multilabel"] = True
    return name, params


def _data_source(data: str | None, classes: Sequence[str], kind: str, *, images: str | None = None,
                 encoder: str | None = None, encoder_weights: str | None = None, image_size: int | None = None,
                 skip_bad: bool = False, text_column: str | None = None) -> tuple[str, dict[str, Any]]:
    if kind not in ("image", "text"):
        raise ConfigError(f"unknown --kind {kind!r}; use image or text")
    if images is not None and data is not None:
        raise ConfigError("--images and --data are exclusive; pass --images DIR for a folder of photos, or --data "
                          "for a dataset or file")
    if images is not None:
        return _image_source(images, classes, kind, encoder, encoder_weights, image_size, skip_bad)
    if data is None:
        raise ConfigError("nothing to label; pass --images DIR (a folder of photos) or --data (a dataset or file)")
    if kind == "image" and text_column is not None:
        raise ConfigError("--text-column goes with texts; pass --kind text (or drop --text-column)")
    if data in DATASETS and not Path(data).exists():
        return data, {}
    path = Path(data)
    if not path.exists():
        raise ConfigError(f"--data {data!r} is neither a built-in dataset ({', '.join(DATASETS.names())}) "
                          "nor an existing file")
    suffix = path.suffix.lower()
    if kind == "image" and suffix in TEXT_SUFFIXES - ARRAY_SUFFIXES:
        raise ConfigError(f"--kind image does not fit --data {data}: a {suffix} file holds texts; pass --kind text")
    if kind == "text" and suffix in ARRAY_SUFFIXES - TEXT_SUFFIXES:
        raise ConfigError(f"--kind text does not fit --data {data}: a {suffix} file holds arrays, not texts; "
                          "pass --kind image")
    if kind == "text":
        params: dict[str, Any] = {"path": str(path), "classes": list(classes)}
        if text_column is not None:
            params["text_column"] = text_column
        if encoder is not None:
            params["encoder"] = encoder
        return "text", params
    if encoder is not None:
        raise ConfigError(f"--encoder goes with --images DIR or texts; --data {data} holds features already")
    return "file", {"features": str(path), "unlabeled": True, "classes": list(classes), "kind": "image"}


def _image_source(images: str, classes: Sequence[str], kind: str, encoder: str | None,
                  encoder_weights: str | None, image_size: int | None, skip_bad: bool) -> tuple[str, dict[str, Any]]:
    if kind != "image":
        raise ConfigError(f"--kind {kind} does not fit --images {images}: a folder of photos shows images; "
                          "pass --kind image (or --data FILE for texts)")
    root = Path(images).expanduser()
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise ConfigError(f"--images {images} {what}; pass the folder that holds the photos")
    params: dict[str, Any] = {"root": str(root.resolve()), "labeled": False, "classes": list(classes)}
    if encoder is not None:
        params["encoder"] = encoder
    if encoder_weights is not None:
        params["encoder_weights"] = str(Path(encoder_weights).expanduser().resolve())
    if image_size is not None:
        params["image_size"] = int(image_size)
    if skip_bad:
        params["skip_bad"] = True
    return "images", params


#: ``--media``: how a photo reaches the annotator (``auto`` picks one at init; see :func:`resolve_media`)
MEDIA_CHOICES = ("auto", "local-files", "url", "inline")
#: ``--media-url`` prefixes Label Studio resolves (cloud storages) or a browser loads (web servers)
MEDIA_URL_SCHEMES = ("https://", "http://", "s3://", "gs://", "azure-blob://")
#: environment variables that may name the server's local files document root, first found wins
FILES_ROOT_ENV = ("LABEL_STUDIO_FILES_ROOT", "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", "LOCAL_FILES_DOCUMENT_ROOT")


def check_media_flags(media: str, media_url: str | None, images: str | None) -> None:
    """The ``--media`` flags on their own (before the photos are read or the server is asked)."""
    if media not in MEDIA_CHOICES:
        raise ConfigError(f"unknown --media {media!r}; use one of {', '.join(MEDIA_CHOICES)}")
    if images is None and (media != "auto" or media_url is not None):
        raise ConfigError("--media and --media-url go with --images DIR (the items of --data are not files)")
    if media == "url" and not media_url:
        raise ConfigError("--media url needs --media-url PREFIX (e.g. s3://bucket/photos/ or https://host/photos/); "
                          "each task's image is PREFIX + the photo's path in the folder")
    if media_url is not None and media not in ("auto", "url"):
        raise ConfigError(f"--media-url goes with --media url, not --media {media}; drop one of them")
    if media_url is not None and not media_url.startswith(MEDIA_URL_SCHEMES):
        raise ConfigError(f"--media-url {media_url!r} is no URL Label Studio resolves; start it with one of "
                          f"{', '.join(MEDIA_URL_SCHEMES)}")


def _serves_local_files(url: str, api_key: str, params: dict[str, Any]) -> bool:
    """Whether Label Studio at ``url`` serves local files (asked on a file no storage holds: 404 yes, 403 no)."""
    request = urllib.request.Request(f"{url.rstrip('/')}/data/local-files/?d=al-loop-probe/none.png",
                                     headers={"Authorization": f"Token {api_key}"})
    try:
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - http(s) checked by _check_url
            return True  # a file of that name exists and is served
    except urllib.error.HTTPError as exc:
        body = exc.read(4000).decode(errors="replace")
        if exc.code == 404:
            return True
        if exc.code == 403 and "LOCAL_FILES_SERVING_ENABLED" in body:
            return False
        if exc.code in (401, 403):
            raise OracleError(f"Label Studio at {url} refused the API key (HTTP {exc.code}) while checking whether "
                              f"it serves local files; {_key_advice(params)} (this campaign reads the key from "
                              f"{_key_source(params)})") from None
        raise OracleError(f"Label Studio at {url} answered HTTP {exc.code} on /data/local-files/; check "
                          "--label-studio-url, or pass --media inline") from None
    except OSError as exc:
        raise OracleError(f"no Label Studio answers at {url} ({exc.__class__.__name__}); check --label-studio-url "
                          "and that the server runs (nothing was written)") from None


def resolve_media(media: str, media_url: str | None, images_root: str, url: str, api_key: str,
                  params: dict[str, Any], files_root: str | None = None,
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The media of an image-folder campaign, recorded in the run's oracle params (see ``oracles.label_studio.image_value``).

    ``auto``: ``url`` when ``media_url`` is given, else ``local-files`` when the
    server serves local files, else ``inline`` with a note. ``local-files`` needs
    the server's document root (``files_root``, else the first of
    :data:`FILES_ROOT_ENV` set) and the folder strictly under it; nothing is
    created in Label Studio before these checks pass.
    """
    log = log or (lambda _m: None)
    if media_url is not None:
        return {"mode": "url", "prefix": media_url}
    if media == "inline":
        return {"mode": "inline"}
    if not _serves_local_files(url, api_key, params):
        if media == "local-files":
            raise ConfigError(f"Label Studio at {url} does not serve local files; start it with "
                              "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT="
                              "<a folder above the photos> (scripts/labelstudio.sh does, with LS_FILES_ROOT), or pass "
                              "--media inline")
        log(f"note: Label Studio at {url} does not serve local files, so each photo goes into its task as a JPEG "
            "data URI (long side <= 1024 px); for lighter tasks start the server with local files "
            "(scripts/labelstudio.sh with LS_FILES_ROOT) or pass --media-url")
        return {"mode": "inline"}
    named = files_root or next((os.environ[v] for v in FILES_ROOT_ENV if os.environ.get(v)), None)
    if not named:
        raise ConfigError(f"Label Studio at {url} serves local files but its document root is unknown; pass "
                          "--files-root DIR (its LOCAL_FILES_DOCUMENT_ROOT; scripts/labelstudio.sh exports it as "
                          "LABEL_STUDIO_FILES_ROOT in DIR/env), or --media inline")
    root = Path(named).expanduser().resolve()
    folder = Path(images_root).resolve()
    if root not in folder.parents:
        where = "is itself" if folder == root else "is not under"
        raise ConfigError(f"--images {folder} {where} Label Studio's document root {root} (it serves local files "
                          "from subfolders of it); "
                          f"move the photos into a subfolder of {root}, or start the server with LS_FILES_ROOT="
                          "<a folder above them> (scripts/labelstudio.sh), or pass --media inline")
    return {"mode": "local-files", "root": str(root)}


#: file types by what they hold (a .csv may hold either: its columns decide)
TEXT_SUFFIXES = frozenset({".txt", ".jsonl", ".csv"})
ARRAY_SUFFIXES = frozenset({".npy", ".npz", ".parquet", ".csv"})
_KIND_WORDS = {"image": "images", "text": "texts", "tabular": "table rows (features Label Studio cannot show)"}


def campaign_pool(config: RunConfig, data: str, kind: str) -> Any:
    """The campaign's pool, checked to hold what ``--kind`` shows (before anything is created).

    ``--kind text`` on images (or ``image`` on texts) would create a project whose
    interface cannot show the items: every import then fails with HTTP 400 and
    the run stays in SELECTED. A .csv read as the wrong kind fails in the loader;
    its message gets the hint to pass the other ``--kind``.
    """
    other = "image" if kind == "text" else "text"
    try:
        pool = build_pool(config)
    except DataError as exc:
        if Path(data).suffix.lower() == ".csv":
            raise DataError(f"{exc}; if {data} holds {_KIND_WORDS[other]}, pass --kind {other}") from None
        raise
    if pool.kind != kind:
        if pool.kind in ("image", "text"):
            fix = f"pass --kind {pool.kind}"
        else:
            fix = "campaigns show images or texts: use an image or text dataset"
        what = _KIND_WORDS.get(pool.kind, pool.kind)
        raise ConfigError(f"--kind {kind} does not fit --data {data}: its items are {what}; {fix}")
    return pool


@dataclass(frozen=True)
class CampaignOptions:
    """What ``campaign init`` records for the oracle (never the key itself)."""

    url: str
    title: str
    kind: str = "image"
    api_key_env: str | None = "LABEL_STUDIO_API_KEY"
    api_key_file: str | None = None
    #: how photos of ``--images`` reach annotators (:data:`MEDIA_CHOICES`); the resolved mode is recorded
    media: str = "auto"
    media_url: str | None = None
    #: the server's local files document root (None: from :data:`FILES_ROOT_ENV`)
    files_root: str | None = None
    #: ``pull`` (``campaign run`` polls the server) or ``backend`` (``al-loop serve`` is the project's model)
    mode: str = "pull"
    #: where Label Studio reaches ``al-loop serve`` (backend mode), e.g. http://127.0.0.1:9090
    backend_url: str | None = None
    #: variable holding ``user:password`` of the backend's basic auth (backend mode; never recorded itself)
    basic_auth_env: str | None = None
    #: backend mode: import a task for every pool item before the seed batch (``--import-pool``)
    import_pool: bool = False

    def as_params(self) -> dict[str, Any]:
        params = {"url": self.url, "title": self.title, "kind": self.kind, "api_key_env": self.api_key_env,
                  "api_key_file": self.api_key_file}
        if self.mode == "backend":  # pull runs keep the keys (and the config) they always had
            params.update(mode="backend", backend_url=str(self.backend_url).rstrip("/"))
            if self.basic_auth_env:
                params["basic_auth_env"] = self.basic_auth_env
            if self.import_pool:
                params["import_pool"] = True
        return params


def campaign_params(store: Store, run_id: int) -> dict[str, Any]:
    """The run's oracle parameters, with the URL recorded by ``set-url`` (if any) in place of the first one."""
    params = dict(store.config(run_id).oracle_params)
    moved = store.oracle_state(run_id, "url")
    if moved:
        params["url"] = moved
    return params


def _oracle_for(store: Store, run_id: int, api_key: str, **extra: Any) -> Oracle:
    config = store.config(run_id)
    params = campaign_params(store, run_id)
    cls = ORACLES.get(ORACLE)
    pool = build_pool(config)
    project = store.oracle_state(run_id, "project_id")
    extra.setdefault("campaign_id", params.get("campaign_id"))
    if config.multilabel:
        extra.setdefault("multiple", True)
    if params.get("media"):
        extra.setdefault("media", params["media"])
    if params.get("import_pool"):
        extra.setdefault("pool_source", RunPool(run_id, pool, store))
    if project is None:  # a crash between creating the run and recording the project: adopt by title
        oracle = cls.for_project(params["url"], api_key, params["title"], pool.classes, params["kind"],
                                 previous_answers=lambda r, i: store.round_answers(r, i), **extra)
        store.set_oracle_state(run_id, "project_id", str(oracle.project_id))
        return oracle
    return cls(params["url"], api_key, int(project), pool.classes,
               previous_answers=lambda r, i: store.round_answers(r, i), **extra)


def _check_db_folder(db: str) -> None:
    """The store's folder must exist (and be a folder) before anything is created remotely."""
    folder = Path(db).expanduser().absolute().parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ConfigError(f"the folder of --db {db} ({folder}) {what}; create it or pass another --db")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"the folder of --db {db} ({folder}) is not writable; pass another --db")


def init_campaign(db: str, *, data: str | None = None, classes: Sequence[str], strategy: str, batch: int,
                  init: int, options: CampaignOptions, learner: str = "logreg", seed: int = 0,
                  strategy_params: dict[str, Any] | None = None, min_fraction: float = 1.0,
                  log: Callable[[str], None] | None = None, adopt: bool = False, images: str | None = None,
                  encoder: str | None = None, encoder_weights: str | None = None, image_size: int | None = None,
                  skip_bad: bool = False, text_column: str | None = None, stop: Sequence[str] = (),
                  stop_set: int = 2000, multilabel: bool = False, **oracle_extra: Any) -> int:
    """Create (or adopt) the project, record the run, and send the seed batch.

    ``stop`` are stopping rules that need no labels (:mod:`al_loop.stopping`):
    the first to fire ends the campaign. A campaign whose learner gives class
    probabilities records the stopping signals every round either way, so
    ``campaign status`` shows them (single-label campaigns only).
    ``multilabel``: annotators pick every class that applies (Label Studio
    ``Choices choice="multiple"``); the learner must be a multi-label one.

    Everything is validated, and the project exists, before the run is written.
    A project of the same title that holds tasks of another campaign is refused
    unless ``adopt``: then it is shared, its other tasks left as they are.
    ``images`` (a folder of photos) replaces ``data``; how its photos reach
    annotators is ``options.media`` (:func:`resolve_media`), checked before
    anything is created in Label Studio and recorded in the run's oracle
    params, so every later ``campaign run`` sends the same URLs. In
    ``local-files`` mode a local files storage of the project over the folder
    is created (or reused) so that Label Studio serves its files. The run
    records the inputs digest (the photos and the encoder).
    """
    log = log or (lambda _m: None)
    _check_db_folder(db)
    check_sqlite_file(Path(db))
    if not classes:
        raise ConfigError('no classes given; pass --labels "cat,dog,bird"')
    check_backend_flags(options.mode, options.backend_url, options.basic_auth_env, options.import_pool)
    check_media_flags(options.media, options.media_url, images)
    dataset, dataset_params = data_source(data, classes, options.kind, images=images, encoder=encoder,
                                          encoder_weights=encoder_weights, image_size=image_size,
                                          skip_bad=skip_bad, text_column=text_column, multilabel=multilabel)
    source = images if images is not None else str(data)
    campaign_id = uuid.uuid4().hex[:12]
    config = RunConfig(dataset=dataset, strategy=strategy, seed=seed, rounds=1_000_000, batch=batch, init=init,
                       learner=learner, strategy_params=dict(strategy_params or {}), oracle=ORACLE,
                       oracle_params={**options.as_params(), "campaign_id": campaign_id},
                       dataset_params=dataset_params, min_fraction=min_fraction, stop=tuple(stop),
                       stop_set=stop_set)
    pool = campaign_pool(config, source, options.kind)
    for note in pool.notes if pool.paths is not None else ():
        log(note)
    config = stamp_inputs(config, pool)
    if tuple(pool.classes) != tuple(classes):
        raise ConfigError(f"--labels {list(classes)} differ from the classes of {source!r} {list(pool.classes)}; "
                          "pass the dataset's class names in its order")
    learner_obj = build_learner(config.learner, pool)
    # the stopping signals read single-label predictions: a multi-label campaign goes without them
    config = replace(config, track_stopping="proba" in learner_obj.capabilities and not pool.multilabel)
    validate(config, pool, learner_obj, build_strategy(config.strategy, config.strategy_params))
    api_key = resolve_api_key(options.api_key_env, options.api_key_file)
    _check_url(options.url)
    media: dict[str, Any] | None = None
    if pool.paths is not None and pool.media_root is not None:
        media = resolve_media(options.media, options.media_url, pool.media_root, options.url, api_key,
                              options.as_params(), options.files_root, log)
        config = replace(config, oracle_params={**config.oracle_params, "media": media})
        log(f"photos reach annotators as {_media_words(media)}")
    try:
        oracle = ORACLES.get(ORACLE).for_project(options.url, api_key, options.title, pool.classes, options.kind,
                                                project_wait=INIT_CONTACT_WAIT, campaign_id=campaign_id,
                                                media=media, **({"multiple": True} if pool.multilabel else {}),
                                                **oracle_extra)
    except OracleError as exc:
        raise _fatal(exc, options.as_params(), options.title, api_key=api_key) from None
    try:
        _claim(oracle, options.title, adopt, log)
        if media is not None and media["mode"] == "local-files":
            _local_storage(oracle, str(pool.media_root), options.url, log)
        registered = _register_backend(oracle, config.oracle_params, log) if options.mode == "backend" else {}
    except BaseException:
        oracle.close()
        raise
    store = Store(db)
    try:
        existing = [r for r in store.runs() if r.id is not None and store.config(r.id).oracle == ORACLE
                    and store.oracle_state(r.id, "project_id") == str(oracle.project_id)]
        if existing:
            raise StoreError(f"{db} already drives Label Studio project {oracle.project_id} (run {existing[0].id}); "
                             "use `al-loop campaign run` to continue it")
        record_items(store, config, pool)  # the user's ids and texts, for exports
        run_id = store.create_run(config)
        store.set_oracle_state(run_id, "project_id", str(oracle.project_id))
        for key, value in registered.items():
            store.set_oracle_state(run_id, key, value)
        log(f"run {run_id}: Label Studio project {oracle.project_id} ({options.title!r})")
        if options.import_pool:  # the seed batch's submit imports the whole pool first (oracles.ls_pool)
            oracle.pool_source, oracle.log = RunPool(run_id, pool, store), log  # type: ignore[attr-defined]
        ctl = Controller(store, run_id, pool, build_learner(config.learner, pool),
                         build_strategy(config.strategy, config.strategy_params), oracle, log=log)
        with RunLease(store, run_id):
            while store.current_round(run_id).state != "AWAITING":
                ctl.step()
        log(f"run {run_id}: sent the seed batch of {len(store.outbox(run_id, 0))} item(s)")
        return run_id
    finally:
        oracle.close()
        store.close()


def _media_words(media: dict[str, Any]) -> str:
    if media["mode"] == "local-files":
        return f"local files served by Label Studio (document root {media['root']})"
    if media["mode"] == "url":
        return f"URLs {media['prefix']}<path> (resolved by Label Studio's storage; not checked here)"
    return "JPEG data URIs inside the tasks (long side <= 1024 px)"


def _local_storage(oracle: Any, folder: str, url: str, log: Callable[[str], None]) -> None:
    """Create (or reuse) the project's local files storage over ``folder``; the server's refusal as one line."""
    try:
        storage = oracle.ensure_local_storage(folder)
    except OracleError as exc:
        if getattr(exc, "status", None) != 400:
            raise
        why = str(exc).split(": ", 1)[-1].split("; check the project")[0]
        raise ConfigError(f"Label Studio at {url} refused a local files storage over {folder} ({why}); start the "
                          "server with LS_FILES_ROOT=<a folder above the photos>, or pass --files-root with its "
                          "real document root, or --media inline") from None
    log(f"Label Studio serves the photos of {folder} through local files storage {storage} of project "
        f"{oracle.project_id} (never synced: al-loop imports its own tasks)")


#: ``campaign init --mode``
MODES = ("pull", "backend")
#: the Label Studio events ``al-loop serve`` is sent (its ``/webhook``): answers given, changed, withdrawn
WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED",
                   "TASKS_DELETED")
#: the title the ML backend has in the project's Model settings
BACKEND_TITLE = "al-loop"


def check_backend_flags(mode: str, backend_url: str | None, basic_auth_env: str | None,
                        import_pool: bool = False) -> None:
    """``--mode``, ``--backend-url``, ``--basic-auth-env`` and ``--import-pool`` on their own (before anything is read or created)."""
    if mode not in MODES:
        raise ConfigError(f"unknown --mode {mode!r}; use pull (campaign run polls Label Studio) or backend "
                          "(al-loop serve is the project's model)")
    if mode == "pull":
        if backend_url is not None or basic_auth_env is not None:
            raise ConfigError("--backend-url and --basic-auth-env go with --mode backend; add it, or drop them")
        if import_pool:
            raise ConfigError("--import-pool goes with --mode backend (al-loop serve writes the pool's "
                              "predictions); add --mode backend --backend-url URL, or drop it")
        return
    if not backend_url:
        raise ConfigError("--mode backend needs --backend-url URL: where Label Studio reaches `al-loop serve`, "
                          "e.g. http://127.0.0.1:9090")
    if not backend_url.startswith(("http://", "https://")):
        raise ConfigError(f"--backend-url {backend_url!r} is not an http(s) URL; write e.g. http://127.0.0.1:9090")
    if basic_auth_env is not None:
        basic_auth(basic_auth_env)


def basic_auth(env: str | None) -> tuple[str, str] | None:
    """``(user, password)`` from ``$env`` (``user:password``), or None without a variable name."""
    if not env:
        return None
    value = os.environ.get(env, "")
    user, sep, password = value.partition(":")
    if not value:
        raise ConfigError(f"environment variable {env} (--basic-auth-env) is not set; export it as user:password, "
                          "the basic auth al-loop serve checks")
    if not sep or not user or not password:
        raise ConfigError(f"environment variable {env} (--basic-auth-env) is not user:password; write it as "
                          "USER:PASSWORD (the password may hold ':')")
    return user, password


def _register_backend(oracle: Any, params: dict[str, Any], log: Callable[[str], None], *,
                      pending_note: bool = True) -> dict[str, str]:
    """Register (or adopt, by URL) the webhook and the ML backend of a backend-mode run; their ids.

    The webhook is registered at once (Label Studio does not call it then). The
    ML backend only when ``al-loop serve`` already answers at the backend URL:
    Label Studio calls its ``/health`` and ``/setup`` before it accepts it, and
    1.23 has no way to skip that. When nothing answers yet the id is left out
    (``ml_backend`` pending) and ``al-loop serve`` registers it once it listens
    (:func:`connect_backend`). Wrong basic auth and a blocked local address end
    the command with one line.
    """
    from oracles.label_studio import BackendAuthRefused, BackendUnreachable, LocalAddressBlocked

    url = params["backend_url"]
    auth = basic_auth(params.get("basic_auth_env"))
    out: dict[str, str] = {}
    try:
        out["webhook_id"] = str(oracle.ensure_webhook(f"{url}/webhook", WEBHOOK_ACTIONS))
        try:
            out["ml_backend_id"] = str(oracle.ensure_ml_backend(url, BACKEND_TITLE, auth))
        except BackendUnreachable:
            if pending_note:
                log(f"nothing answers at {url} yet: `al-loop serve` registers the model with project "
                    f"{oracle.project_id} once it listens (Label Studio calls a model's /health and /setup before "
                    "it accepts it)")
            return out
    except (LocalAddressBlocked, BackendAuthRefused) as exc:
        raise ConfigError(str(exc)) from None
    log(f"Label Studio project {oracle.project_id} uses the model at {url} (ML backend {out['ml_backend_id']}, "
        f"webhook {out['webhook_id']})")
    return out


def connect_backend(db: str, *, run: int | None = None, log: Callable[[str], None] | None = None,
                    **oracle_extra: Any) -> dict[str, str]:
    """Register (or adopt) a backend-mode run's webhook and ML backend; record and return their ids.

    ``al-loop serve`` calls it once it listens (Label Studio calls the backend
    while it registers it, so not from the app's startup, before the socket is
    open). Idempotent: registrations at the same URL are adopted. A backend
    that Label Studio still cannot reach raises the one line of
    :class:`~oracles.label_studio.BackendUnreachable`.
    """
    log = log or (lambda _m: None)
    store = Store(db)
    try:
        run_id = pick_run(store, db, run)
        params = campaign_params(store, run_id)
        if params.get("mode") != "backend":
            raise ConfigError(f"run {run_id} of {db} is a pull-mode campaign (`al-loop campaign run`); start a "
                              "campaign with `campaign init --mode backend --backend-url URL` to serve it")
        run_id, params, api_key, oracle = _open_run(store, db, run_id, oracle_extra)
        try:
            try:
                got = _register_backend(oracle, params, log, pending_note=False)
            except OracleError as exc:
                raise _fatal(exc, params, oracle.project_id, db=db, run_id=run_id, api_key=api_key) from None
            for key, value in got.items():
                store.set_oracle_state(run_id, key, value)
            if "ml_backend_id" not in got:
                raise OracleError(f"Label Studio at {params['url']} could not reach the model at "
                                  f"{params['backend_url']}; check that `al-loop serve` listens there")
            return got
        finally:
            oracle.close()
    finally:
        store.close()


@dataclass
class CampaignProgress:
    run_id: int
    round: int
    labeled: int
    outstanding: int
    state: str


def _claim(oracle: Any, title: str, adopt: bool, log: Callable[[str], None]) -> None:
    """Refuse a project holding another campaign's tasks (unless ``adopt``); put the campaign id in its description."""
    summary = oracle.project_summary()
    if summary["foreign"]:
        owners = ", ".join(summary["foreign_campaigns"]) or "unknown"
        if not adopt:
            raise ConfigError(
                f"Label Studio project {oracle.project_id} ({title!r}) holds {summary['foreign']} task(s) of "
                f"another campaign (campaign id {owners}); pass another --title, or --adopt to share the project "
                "(its tasks stay as they are and this campaign ignores them)")
        log(f"adopting Label Studio project {oracle.project_id} ({title!r}): its {summary['foreign']} task(s) "
            f"of campaign {owners} stay as they are; this campaign ({oracle.campaign_id}) sees only its own tasks")
    oracle.claim_project()


def campaign_runs(store: Store) -> list[int]:
    return [r.id for r in store.runs() if r.id is not None and store.config(r.id).oracle == ORACLE]


def _open_run(store: Store, db: str, run: int | None,
              oracle_extra: dict[str, Any]) -> tuple[int, dict[str, Any], str, Oracle]:
    """The campaign run to drive or pull (``--run`` or the newest running one), its parameters, key and oracle."""
    run_id = pick_run(store, db, run)
    params = campaign_params(store, run_id)
    api_key = resolve_api_key(params.get("api_key_env"), params.get("api_key_file"))
    try:
        oracle = _oracle_for(store, run_id, api_key, **oracle_extra)
    except OracleError as exc:
        raise _fatal(exc, params, params.get("title"), db=db, run_id=run_id, api_key=api_key) from None
    return run_id, params, api_key, oracle


def pick_run(store: Store, db: str, run: int | None) -> int:
    """The campaign run ``run``, or without it the newest running campaign run."""
    runs = campaign_runs(store)
    if run is not None:
        if run not in runs:
            listed = ", ".join(map(str, runs)) or "none"
            raise ConfigError(f"run {run} is not a campaign run of {db} (campaign runs: {listed})")
        status = store.run(run).status
        if status != RunStatus.RUNNING.value:
            raise ConfigError(f"campaign run {run} of {db} is {status}; pick a running one with --run, or start "
                              f"a new campaign with `al-loop campaign init --db {db} ...`")
        return run
    running = [r for r in runs if store.run(r).status == RunStatus.RUNNING.value]
    if not running:
        raise ConfigError(f"{db} has no unfinished campaign; start one with `al-loop campaign init`")
    return max(running)


def set_campaign_url(db: str, url: str, *, run: int | None = None, log: Callable[[str], None] | None = None,
                     **oracle_extra: Any) -> int:
    """Point a campaign run at its moved server, after checking that ``url`` holds the same project.

    The project id of the run must exist at ``url`` and carry the run's campaign
    id (in its description or its tasks; runs without a campaign id: the same
    title). Otherwise one line, and the store is unchanged. Returns the run id.
    """
    log = log or (lambda _m: None)
    _check_url(url)
    store = Store(db)
    try:
        run_id = pick_run(store, db, run)
        params = {**campaign_params(store, run_id), "url": url}
        project = store.oracle_state(run_id, "project_id")
        if project is None:
            raise ConfigError(f"run {run_id} of {db} has no Label Studio project yet; run `al-loop campaign run "
                              f"--db {db}` against the old URL, or start a new campaign")
        api_key = resolve_api_key(params.get("api_key_env"), params.get("api_key_file"))
        from oracles.label_studio import LabelStudioRetry  # no SDK import until a request is made

        retry = oracle_extra.pop("retry", None) or LabelStudioRetry()
        # a wrong URL fails in seconds, as at init; only the project is read, so no classes are needed
        oracle = ORACLES.get(ORACLE)(url, api_key, int(project), (), campaign_id=params.get("campaign_id"),
                                     retry=replace(retry, max_wait=min(retry.max_wait, INIT_CONTACT_WAIT)),
                                     **oracle_extra)
        try:
            try:
                summary = oracle.project_summary()
            except OracleError as exc:
                if getattr(exc, "status", None) == 404 and _probe(url, api_key) is None:
                    raise ConfigError(f"Label Studio at {url} has no project {project}; this is not the server "
                                      f"of run {run_id} (the store keeps {campaign_params(store, run_id)['url']})")\
                        from None
                raise _fatal(exc, params, project, api_key=api_key) from None
        finally:
            oracle.close()
        cid = params.get("campaign_id")
        same = (cid in summary["description"] or summary["ours"] > 0) if cid else summary["title"] == params["title"]
        if not same:
            owner = f"campaign {cid}" if cid else f"title {params['title']!r}"
            raise ConfigError(f"Label Studio project {project} at {url} ({summary['title']!r}) is not the project of "
                              f"run {run_id} ({owner} not found in it); the store is unchanged")
        store.set_oracle_state(run_id, "url", url.rstrip("/"))
        log(f"run {run_id}: Label Studio project {project} is now reached at {url.rstrip('/')}")
        return run_id
    finally:
        store.close()


def run_campaign(db: str, *, until_labels: int | None = None, poll: float = 10.0, min_fraction: float | None = None,
                 round_timeout: float | None = None, on_progress: Callable[[CampaignProgress], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, log: Callable[[str], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep, cluster: str | None = None,
                 run: int | None = None, label_studio_url: str | None = None,
                 retry_budget: float = RETRY_BUDGET, still_down_every: float = STILL_DOWN_EVERY,
                 full_pull_every: float | None = None, **oracle_extra: Any) -> int:
    """Drive the store's unfinished campaign until ``until_labels`` labels, the end, or ``should_stop``.

    A server that is down, slow or rate-limiting: each oracle call retries for
    ``CALL_WAIT`` seconds, then the loop says in one line that the server is
    down and keeps waiting (a reminder every ``still_down_every`` seconds, one
    line when it is back); after ``retry_budget`` seconds of one outage it stops
    with one line, the state kept. At ``until_labels`` every open round is
    pulled once more before stopping. ``full_pull_every`` overrides
    :attr:`Controller.full_pull_every`. ``run`` picks the campaign run (default: the newest running
    one); ``label_studio_url`` first moves it to that URL (see
    :func:`set_campaign_url`). Returns the number of labels in the store at the end.
    """
    log = log or (lambda _m: None)
    should_stop = should_stop or (lambda: False)
    if not (math.isfinite(retry_budget) and retry_budget > 0):
        raise ConfigError(f"--retry-budget must be a positive duration (e.g. 10m), got {retry_budget:g} s")
    if "retry" not in oracle_extra:  # the loop waits for a server that is down itself, and says so
        oracle_extra.setdefault("max_wait", CALL_WAIT)
    if label_studio_url is not None:
        run = set_campaign_url(db, label_studio_url, run=run, log=log,
                               **{k: v for k, v in oracle_extra.items() if k == "retry"})
    store = Store(db)
    try:
        run_id, params, api_key, oracle = _open_run(store, db, run, oracle_extra)
        config = store.config(run_id)
        pool = build_pool(config)
        from al_loop.distributed import cluster_session, maybe_distribute

        try:
            with cluster_session(cluster) as runner, RunLease(store, run_id) as lease:
                strategy = maybe_distribute(build_strategy(config.strategy, config.strategy_params), runner)
                ctl = Controller(store, run_id, pool, build_learner(config.learner, pool), strategy, oracle,
                                 log=log, round_timeout=round_timeout, min_fraction=min_fraction)
                if full_pull_every is not None:
                    ctl.full_pull_every = full_pull_every
                try:
                    return _loop(store, run_id, ctl, lease, until_labels, poll, on_progress, should_stop, log,
                                 sleep, _Patience(retry_budget, still_down_every))
                except OracleError as exc:
                    raise _fatal(exc, params, oracle.project_id, db=db, run_id=run_id, api_key=api_key) from None
        finally:
            oracle.close()
    finally:
        store.close()


def _labeled(store: Store, run_id: int) -> int:
    return sum(r.status == "labeled" for r in store.labels(run_id))


def _span(seconds: float) -> str:
    """``75 s``, ``12 min``, ``3.5 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class _Patience:
    """How the loop waits out an outage; ``since``/``told`` (monotonic) describe the current one."""

    budget: float
    still_down_every: float
    clock: Callable[[], float] = time.monotonic
    since: float | None = None
    told: float = 0.0

    def failed(self, exc: OracleError, log: Callable[[str], None]) -> None:
        """A call found the server down: say so once (then a reminder now and then), or give up."""
        now, url = self.clock(), getattr(exc, "url", "?")
        if self.since is None:
            self.since, self.told = now - float(getattr(exc, "waited", 0.0)), now
            log(f"Label Studio at {url} is down ({exc.what} while trying to {exc.op}); "  # type: ignore[attr-defined]
                f"the loop keeps waiting, state kept (Ctrl-C stops it; gives up after --retry-budget "
                f"{_span(self.budget)})")
            return
        down = now - self.since
        if down >= self.budget:
            raise OracleError(f"Label Studio at {url} has been down for {_span(down)} (--retry-budget "
                              f"{_span(self.budget)}); campaign run stopped with the state kept: run it again "
                              "once the server answers")
        if now - self.told >= self.still_down_every:
            self.told = now
            log(f"Label Studio at {url} is still down after {_span(down)}; the loop keeps waiting")

    def answered(self, log: Callable[[str], None], url: str) -> None:
        if self.since is not None:
            log(f"Label Studio at {url} is back after {_span(self.clock() - self.since)}; the loop goes on")
            self.since = None


def _final_pull(store: Store, run_id: int, ctl: Controller) -> str:
    """Pull every open round once more (answers given since the last pull); what it brought, in words."""
    rounds = [r.idx for r in store.rounds(run_id)
              if r.state == "AWAITING" or (r.state == "LABELED" and store.round_progress(run_id, r.idx)["waiting"])]
    if not rounds:
        return "no round is open"
    try:
        got = ctl.pull(rounds)
    except OracleError as exc:
        if getattr(exc, "status", None) is not None:
            raise
        return f"the final pull failed ({exc.__class__.__name__}); `al-loop campaign pull` collects the answers later"
    new = got["labeled"] + got["skipped"] + got["quarantined"]
    return (f"a final pull of round(s) {', '.join(map(str, rounds))} got {new} new answer(s)"
            + (f" and {got['deleted']} withdrawn" if got["deleted"] else ""))


def _loop(store: Store, run_id: int, ctl: Controller, lease: RunLease, until_labels: int | None, poll: float,
          on_progress: Callable[[CampaignProgress], None] | None, should_stop: Callable[[], bool],
          log: Callable[[str], None], sleep: Callable[[float], None], patience: _Patience | None = None) -> int:
    patience = patience or _Patience(RETRY_BUDGET, STILL_DOWN_EVERY)
    url = getattr(ctl.oracle, "url", "?")
    failures = 0
    while not should_stop():
        lease.check()
        labeled = _labeled(store, run_id)
        if until_labels is not None and labeled >= until_labels:
            pulled = _final_pull(store, run_id, ctl)
            labeled = _labeled(store, run_id)
            log(f"run {run_id}: {labeled} labels reached (--until-labels {until_labels}); {pulled}; stopping")
            return labeled
        try:
            result = ctl.step()
            failures = 0
            patience.answered(log, url)
        except OracleError as exc:
            if getattr(exc, "status", None) is not None:  # an HTTP answer (bad key, project gone): no retry helps
                raise
            if hasattr(exc, "waited"):  # the server is down, slow or rate-limiting (LabelStudioUnavailable)
                patience.failed(exc, log)
                _sleep_until(min(poll, OUTAGE_RETRY), should_stop, sleep)
                continue
            failures += 1
            wait = min(poll * failures, 300.0)
            log(f"Label Studio: {exc}; state kept, retrying in {wait:.0f} s")
            _sleep_until(wait, should_stop, sleep)
            continue
        if result == "done":
            log(f"run {run_id}: {store.run(run_id).status}")
            return _labeled(store, run_id)
        rnd = store.current_round(run_id)
        if on_progress is not None:
            prog = store.round_progress(run_id, rnd.idx)
            on_progress(CampaignProgress(run_id, rnd.idx, _labeled(store, run_id), prog["waiting"], rnd.state))
        if result == "waiting":
            _sleep_until(poll, should_stop, sleep)
    return _labeled(store, run_id)


def _sleep_until(seconds: float, should_stop: Callable[[], bool], sleep: Callable[[float], None]) -> None:
    end = time.monotonic() + seconds
    while not should_stop() and time.monotonic() < end:
        sleep(min(0.2, max(0.0, end - time.monotonic())))


def pull_campaign(db: str, *, run: int | None = None, log: Callable[[str], None] | None = None,
                  **oracle_extra: Any) -> dict[str, int]:
    """Collect the answers of every sent round of a campaign run, without training, selecting or moving a round.

    Late labels, edits and deletions are applied as ``campaign run`` would apply
    them; the next ``campaign run`` goes on from there. Returns the counts of
    what changed (``labeled``, ``skipped``, ``quarantined``, ``deleted``) and ``rounds``.
    """
    log = log or (lambda _m: None)
    store = Store(db)
    try:
        run_id, params, api_key, oracle = _open_run(store, db, run, oracle_extra)
        try:
            config = store.config(run_id)
            pool = build_pool(config)
            with RunLease(store, run_id):
                ctl = Controller(store, run_id, pool, build_learner(config.learner, pool),
                                 build_strategy(config.strategy, config.strategy_params), oracle, log=log)
                rounds = [r.idx for r in store.rounds(run_id) if r.state in ("AWAITING", "LABELED")]
                try:
                    got = ctl.pull(rounds)
                except OracleError as exc:
                    raise _fatal(exc, params, oracle.project_id, db=db, run_id=run_id, api_key=api_key) from None
            return {**got, "rounds": len(rounds), "run_id": run_id}
        finally:
            oracle.close()
    finally:
        store.close()


def campaign_status(db: str) -> list[dict[str, Any]]:
    """Per campaign round: sent, labeled, skipped, quarantined, waiting, annotator throughput (labels/hour)."""
    store = Store(db, readonly=True)
    try:
        rows = []
        for run_id in campaign_runs(store):
            labels = store.labels(run_id)
            by_round: dict[int, list[Any]] = {}
            for lab in labels:
                by_round.setdefault(lab.round, []).append(lab)
            for rnd in store.rounds(run_id):
                prog = store.round_progress(run_id, rnd.idx)
                prog["withdrawn"] = len(withdrawn_ids(store, run_id, rnd.idx))  # not waiting: never asked again
                prog["waiting"] = max(0, prog["waiting"] - prog["withdrawn"])
                rows.append({"run_id": run_id, "round": rnd.idx, "state": rnd.state, **prog,
                             "throughput": _throughput(by_round.get(rnd.idx, []))})
        return rows
    finally:
        store.close()


def stopping_status(db: str) -> dict[int, dict[str, Any]]:
    """Per campaign run that records stopping signals: ``{"rounds": {round: Signals}, "lines": [...]}``.

    ``lines`` are :func:`al_loop.stopping.describe`'s (the latest signals, how
    long predictions have been stable, each ``--stop`` rule's state), then the
    run's end when a rule ended it.
    """
    from al_loop.stopping import Signals, describe, parse_rule

    store = Store(db, readonly=True)
    try:
        out: dict[int, dict[str, Any]] = {}
        for run_id in campaign_runs(store):
            config = store.config(run_id)
            history = [Signals.of(r) for r in store.stop_signals(run_id)]
            if not config.tracks_stopping:
                continue
            lines = describe([parse_rule(r) for r in config.stop], history)
            run = store.run(run_id)
            if run.status != RunStatus.RUNNING.value and run.note:
                lines.append(f"run {run.status}: {run.note}")
            out[run_id] = {"rounds": {s.round: s for s in history}, "lines": lines}
        return out
    finally:
        store.close()


def prediction_progress(db: str) -> dict[int, dict[str, Any]]:
    """Per campaign run served by ``al-loop serve``: its bulk predictions (``model_version``, ``written``, ``total``)."""
    from al_loop.backend_driver import PREDICTIONS_KEY

    store = Store(db, readonly=True)
    try:
        out = {}
        for run_id in campaign_runs(store):
            raw = store.oracle_state(run_id, PREDICTIONS_KEY)
            if raw:
                out[run_id] = json.loads(raw)
        return out
    finally:
        store.close()


#: a labels/hour figure needs at least this many answers of one annotator in a round ...
RATE_MIN_ANSWERS = 2
#: ... spread over at least this many seconds; below either, ``status`` shows "-"
RATE_MIN_SPAN = 60.0


def _utc(stamp: str) -> datetime | None:
    """A stored ``updated_at`` as a naive UTC time (stores hold ``...Z``, ``...+00:00`` or naive stamps)."""
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo is not None else when


def _throughput(labels: Sequence[Any]) -> dict[str, float | None]:
    """Labels per hour per annotator (keyed by the stored name, the e-mail), from ``updated_at``.

    The rate is the answers after the first over the time from the first to the
    last: ``(n - 1) / span``. One answer, or answers closer together than
    :data:`RATE_MIN_SPAN`, give no figure (None, shown as "-"): "1.0
    labels/hour" for a single answer meant nothing.
    """
    stamps: dict[str, list[datetime]] = {}
    for lab in labels:
        when = _utc(lab.updated_at) if lab.updated_at else None
        if when is not None and lab.annotator:
            stamps.setdefault(lab.annotator, []).append(when)
    out: dict[str, float | None] = {}
    for who, ts in stamps.items():
        span = (max(ts) - min(ts)).total_seconds()
        enough = len(ts) >= RATE_MIN_ANSWERS and span >= RATE_MIN_SPAN
        out[who] = round((len(ts) - 1) / (span / 3600.0), 1) if enough else None
    return out
