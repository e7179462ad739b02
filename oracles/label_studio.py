"""Label Studio oracle: batches become tasks, people's annotations become answers.

This is the only module of al-loop that imports ``label_studio_sdk``; it does so
lazily (in :func:`connect`), so importing this module, and registering the
oracle, costs nothing until a campaign actually talks to a server.

Task layout
-----------
Each :class:`~al_loop.types.OutboxItem` becomes one task whose ``data`` holds
the item's payload (``image``: a URL or data URI, see :func:`image_value`; or
``text``) plus ``al_key`` (``"campaign:run:round:pool_id"``), ``al_campaign``,
``al_run``, ``al_round`` and ``al_pool_id`` (an image file also ``al_path``,
its path in the folder). The campaign id (random, made by ``campaign init``, also in
the project's description) makes a campaign own its tasks: lookups and
collects filter on it, so a second store on the same project never takes the
first one's tasks or answers for its own. An oracle built without a campaign id
(stores made before it existed) uses the old keys ``"run:round:pool_id"``. The
model's guess (``item.prediction = {"label": name, "score": p}``) is attached
as a prediction, so annotators see it pre-selected.

Idempotency
-----------
Label Studio does not deduplicate imports, and its SDK retries POSTs on its
own; the client here is built with ``max_retries=0`` and every import is
preceded by a :meth:`~LabelStudioOracle.lookup` of the keys (one filtered
listing per ``(run, round)``), so only the missing keys are sent. After an
ambiguous failure (5xx, dropped connection, timeout) nothing is re-sent
blindly: the oracle backs off, looks the keys up again, and sends what is still
missing. If a key nevertheless appears on several tasks (two processes, an old
client that retried), the lowest task id is kept and the extra tasks that carry
no annotation are deleted; extra tasks that people already annotated are kept
and their annotations are merged into the key's answer by :meth:`collect`.

Answers
-------
Per task the newest annotation (by ``updated_at``, then id) wins; a cancelled
annotation (the *Skip* button) is ``"skipped"``; a choice that is not one of the
run's classes, several choices or none is ``"rejected"`` with a reason (never
mapped to a class); when several annotations disagree, ``disagreement`` lists
them all, newest first. Label Studio deletes annotations for good, so an answer
withdrawn by a person is detected by comparison with what was reported before:
the ``previous_answers`` callback (the store's view: ``{pool_id:
annotation_id}`` for the round) or, without it, what this oracle object
reported earlier; such an item is answered ``"deleted"``.

Faults
------
A server that is down, times out, or answers 5xx/408/429 is retried with
exponential backoff (capped; ``Retry-After`` honoured) until
``LabelStudioRetry.max_wait`` seconds of waiting per call, then a one-line
:class:`LabelStudioUnavailable` (an :class:`~al_loop.errors.OracleError`) is
raised (``campaign run`` gives a call a few seconds and waits itself; a
connection that does not open within ``CONNECT_TIMEOUT`` counts as down); reads are simply repeated and
writes go through lookup first, so nothing is lost or doubled. A rejected API
key raises at once, naming ``LABEL_STUDIO_API_KEY``. The key itself never
appears in messages, logs or reprs.
"""

from __future__ import annotations

import json
import math
import os
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from xml.sax.saxutils import quoteattr

from al_loop.errors import ConfigError, DataError, OracleError
from al_loop.oracle import Oracle
from al_loop.registry import ORACLES
from al_loop.types import Answer, OutboxItem

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

T = TypeVar("T")

#: ``name`` of the Choices control and of the data field per kind.
CONTROL_NAME = "label"
KINDS = {"image": "Image", "text": "Text"}
#: the ``model_version`` of every prediction al-loop attaches (the round is the task's ``al_round``);
#: :meth:`LabelStudioOracle.submit` keeps the project's model_version at it
MODEL_VERSION = "al-loop"
ENV_URL = "LABEL_STUDIO_URL"
ENV_API_KEY = "LABEL_STUDIO_API_KEY"
#: seconds to open a connection; a server that does not accept within it counts as down
CONNECT_TIMEOUT = 5.0


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class LabelStudioRetry:
    """How the oracle waits for a server that is down, slow or rate-limiting.

    Attributes
    ----------
    max_wait : float
        Seconds of backoff one public call (``submit``, ``lookup``, ``collect``)
        may spend in total before it raises :class:`OracleError`.
    initial_delay, max_delay : float
        First backoff delay and its cap (seconds); the delay doubles per retry.
        A ``Retry-After`` header overrides the computed delay.
    timeout : float
        Seconds one HTTP request may take.
    batch_size : int
        Tasks per import request.
    """

    max_wait: float = 300.0
    initial_delay: float = 0.5
    max_delay: float = 30.0
    timeout: float = 60.0
    batch_size: int = 500

    def __post_init__(self) -> None:
        for name in ("max_wait", "initial_delay", "max_delay", "timeout"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"LabelStudioRetry.{name} must be a finite number >= 0, got {value!r}")
        if self.timeout <= 0:
            raise ConfigError(f"LabelStudioRetry.timeout must be > 0 seconds, got {self.timeout!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ConfigError(f"LabelStudioRetry.batch_size must be an int >= 1, got {self.batch_size!r}")


# --------------------------------------------------------------------------- pure helpers


def labeling_config(classes: Sequence[str], kind: str, multiple: bool = False) -> str:
    """Label Studio XML for single-choice classification of images or texts.

    Parameters
    ----------
    classes : sequence of str
        Class names, in display order; each becomes a ``<Choice value=...>``.
    kind : {"image", "text"}
        What an annotator sees: ``$image`` (URL or data URI) or ``$text``.

    Returns
    -------
    str
        The ``label_config`` of the project. Annotators use *Skip* for an item
        that fits no class; it comes back as a ``"skipped"`` answer.
        ``multiple`` (a multi-label run): ``choice="multiple"``, not required,
        so a submitted annotation with no choice is the empty label set.
    """
    if kind not in KINDS:
        raise ConfigError(f"Label Studio campaigns need kind 'image' or 'text', got {kind!r}; use an image or text pool")
    names = [str(c) for c in classes]
    if not names:
        raise ConfigError("no classes for the Label Studio project; give at least one class name")
    if len(set(names)) != len(names):
        raise ConfigError(f"class names repeat in {names}; give each class once")
    if any(not n.strip() for n in names):
        raise ConfigError(f"empty class name in {names}; give every class a visible name")
    if multiple:
        from al_loop.multilabel import SEP

        bad = [n for n in names if SEP in n]
        if bad:
            raise ConfigError(f"class name(s) {bad[:3]} contain {SEP!r}, which separates a multi-label answer's "
                              "labels; rename them")
    choices = "\n".join(f"    <Choice value={quoteattr(n)}/>" for n in names)
    header = ("Pick every label that applies (none: submit without a choice); press Skip if unsure" if multiple
              else "Pick the class; press Skip if none fits")
    mode = 'choice="multiple" showInline="true"' if multiple else 'choice="single" showInline="true" required="true"'
    return (
        "<View>\n"
        f"  <{KINDS[kind]} name=\"{kind}\" value=\"${kind}\"/>\n"
        f"  <Header value=\"{header}\"/>\n"
        f"  <Choices name=\"{CONTROL_NAME}\" toName=\"{kind}\" {mode}>\n"
        f"{choices}\n"
        "  </Choices>\n"
        "</View>"
    )


def parse_labeling_config(config: str) -> tuple[str | None, tuple[str, ...]]:
    """``(kind, classes)`` of a project's label config (``kind`` None if not image/text).

    Reads the first ``<Choices>`` control (``name="label"`` preferred) and the
    object tag it points to.
    """
    try:
        root = ET.fromstring(config)
    except ET.ParseError as exc:
        raise OracleError(f"the project's label config is not valid XML ({exc}); fix it in Label Studio's settings") from None
    controls = [el for el in root.iter() if el.tag == "Choices"]
    if not controls:
        return None, ()
    control = next((el for el in controls if el.get("name") == CONTROL_NAME), controls[0])
    classes = tuple(ch.get("value", "") for ch in control.iter("Choice"))
    target = control.get("toName")
    kind = None
    for el in root.iter():
        if el.get("name") == target and el.tag in KINDS.values():
            kind = next(k for k, tag in KINDS.items() if tag == el.tag)
    return kind, classes


def choice_mode(config: str) -> str | None:
    """``"single"`` or ``"multiple"``: the ``choice`` of the label config's ``<Choices>`` (None without one)."""
    try:
        root = ET.fromstring(config)
    except ET.ParseError:
        return None
    controls = [el for el in root.iter() if el.tag == "Choices"]
    if not controls:
        return None
    control = next((el for el in controls if el.get("name") == CONTROL_NAME), controls[0])
    return "multiple" if control.get("choice") == "multiple" else "single"


def parse_key(key: str) -> tuple[int, int, int]:
    """``(run_id, round, pool_id)`` of a key ``"run:round:pool_id"``."""
    parts = key.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        run, round_, pool_id = (int(p) for p in parts)
    except ValueError:
        raise DataError(f"malformed item key {key!r}; keys are 'run:round:pool_id' (OutboxItem.key)") from None
    return run, round_, pool_id


def remote_key(key: str, campaign_id: str | None) -> str:
    """The ``al_key`` a task carries for the store key ``key`` (prefixed by the campaign id, if any)."""
    return f"{campaign_id}:{key}" if campaign_id else key


#: how an image file reaches the annotator (``media["mode"]``, recorded in the run's oracle params)
MEDIA_MODES = ("local-files", "url", "inline")
#: the URL under which Label Studio serves a file of a local files storage (``d``: path under its document root)
LOCAL_FILES_URL = "/data/local-files/?d="
#: regex filter of al-loop's local files storage: matches no file name, so a sync imports nothing
LOCAL_STORAGE_NO_SYNC = "^$"
#: ``inline`` photos are shrunk so that their long side is at most this (pixels)
INLINE_MAX_SIDE = 1024
#: JPEG quality of ``inline`` photos
INLINE_QUALITY = 90


def image_value(payload: Mapping[str, Any], media: Mapping[str, Any] | None) -> str:
    """The task's ``image`` value for an image file (``payload["image_file"]``) in a campaign's media mode.

    Parameters
    ----------
    payload : mapping
        ``{"image_file": absolute path, "path": path relative to the folder}``
        (:meth:`al_loop.pool.Pool.payload` of an image folder).
    media : mapping
        The campaign's media (``oracle_params["media"]``):

        - ``{"mode": "local-files", "root": DIR}``: ``/data/local-files/?d=<path
          under DIR, URL-quoted>``, served by Label Studio from a local files
          storage of the project (``DIR`` is its ``LOCAL_FILES_DOCUMENT_ROOT``). The
          URL names no host, so it stays right when the server moves.
        - ``{"mode": "url", "prefix": P}``: ``P`` + the relative path, passed
          through for Label Studio's cloud storage (s3://, gs://, azure-blob://)
          or a web server (https://) to resolve; nothing checks that it resolves.
        - ``{"mode": "inline"}``: the photo itself as a JPEG ``data:`` URI, its
          long side shrunk to :data:`INLINE_MAX_SIDE`. The fallback for a server
          that does not serve local files. Label Studio can take a file without
          making a task (``POST /api/projects/ID/import?commit_to_project=false``
          keeps a FileUpload served at ``/data/upload/...``), but such an upload
          cannot be looked up by key: a retried upload after an ambiguous failure
          leaves a second copy, and its URL would have to be kept per item outside
          the task. A data URI needs no state and is rebuilt identically.

    Returns
    -------
    str
        The value of the task's ``image`` field.
    """
    mode = (media or {}).get("mode")
    path = str(payload.get("path") or "")
    if mode == "url":
        prefix = str(media["prefix"])  # type: ignore[index]
        return prefix + ("" if prefix.endswith("/") else "/") + path
    if mode == "local-files":
        from pathlib import Path
        from urllib.parse import quote

        root = Path(str(media["root"]))  # type: ignore[index]
        file = Path(str(payload["image_file"]))
        try:
            rel = file.relative_to(root).as_posix()
        except ValueError:
            raise DataError(f"image {file} is not under Label Studio's document root {root}; move the folder under "
                            "it (the campaign serves its files from there)") from None
        return LOCAL_FILES_URL + quote(rel)
    if mode == "inline":
        return inline_image(str(payload["image_file"]))
    raise ConfigError(f"the campaign has no media mode for image files (got {mode!r}); use one of "
                      f"{', '.join(MEDIA_MODES)}")


def inline_image(path: str, max_side: int = INLINE_MAX_SIDE) -> str:
    """A photo as a JPEG ``data:`` URI, upright (EXIF), RGB, its long side at most ``max_side`` pixels."""
    import base64
    import io

    from PIL import Image

    from al_loop.media import open_rgb

    try:
        img = open_rgb(path)
    except OSError as exc:
        raise DataError(f"cannot read image {path} ({exc}); fix or remove it") from None
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=INLINE_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def pool_task_data(run_id: int, pool_id: int, payload: Any, campaign_id: str | None = None,
                   media: Mapping[str, Any] | None = None, *, what: str | None = None) -> dict[str, Any]:
    """The ``data`` of pool item ``pool_id``'s task before any round selects it (no ``al_key``, no ``al_round``).

    The annotator's object (``text`` or ``image``, an image file as
    :func:`image_value` says for ``media``, its relative path in ``al_path``)
    and ``al_run``, ``al_pool_id``, ``al_campaign``. A task that a round sends
    adds ``al_key`` and ``al_round`` (:func:`task_for`); ``campaign init
    --import-pool`` imports every item's task with this data first.
    """
    payload = payload if isinstance(payload, Mapping) else {}
    if "image_file" in payload:
        payload = {**payload, "image": image_value(payload, media), "al_path": payload.get("path")}
    if not any(k in payload for k in KINDS):
        raise DataError(
            f"{what or f'pool item {pool_id}'} has no 'image' or 'text' in its payload; Label Studio campaigns need "
            "an image or text pool"
        )
    data = {k: v for k, v in payload.items() if k in KINDS or k == "al_path"}
    data.update(al_run=int(run_id), al_pool_id=int(pool_id))
    if campaign_id:
        data["al_campaign"] = campaign_id
    return data


def task_for(item: OutboxItem, classes: Sequence[str], campaign_id: str | None = None,
             media: Mapping[str, Any] | None = None, multiple: bool = False) -> dict[str, Any]:
    """The Label Studio task (data + prediction) for one outbox item (of campaign ``campaign_id``).

    An image file (``payload["image_file"]``) becomes the task's ``image`` as
    :func:`image_value` says for ``media``; its relative path goes in ``al_path``.
    ``multiple``: the prediction's label is a set string (``"a;b"``), pre-selected as several choices.
    """
    data = pool_task_data(item.run_id, item.pool_id, item.payload, campaign_id, media, what=f"item {item.key}")
    data.update(al_key=remote_key(item.key, campaign_id), al_round=item.round)
    task: dict[str, Any] = {"data": data}
    pred = item.prediction or {}
    label = pred.get("label")
    picked = None
    if label is not None and multiple:
        from al_loop.multilabel import split_set

        names = split_set(label)
        picked = names if all(n in classes for n in names) else None
    elif label is not None and str(label) in classes:
        picked = [str(label)]
    if picked:  # an empty predicted set pre-selects nothing: no prediction
        obj = next(k for k in KINDS if k in data)
        result = {"from_name": CONTROL_NAME, "to_name": obj, "type": "choices", "value": {"choices": picked}}
        score = pred.get("score")
        # One version for every round: Label Studio shows only predictions of the project's model_version
        # (the first import fixes it), so a version per round hid pre-annotations from round 2 on.
        prediction: dict[str, Any] = {"model_version": MODEL_VERSION, "result": [result]}
        if isinstance(score, int | float) and math.isfinite(score):
            prediction["score"] = float(score)
        task["predictions"] = [prediction]
    return task


def _stamp(annotation: Mapping[str, Any]) -> tuple[datetime, int]:
    """Sort key of an annotation: ``(updated_at or created_at, id)``."""
    raw = annotation.get("updated_at") or annotation.get("created_at")
    when = datetime.min
    if isinstance(raw, datetime):
        when = raw
    elif isinstance(raw, str):
        try:
            when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            pass
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when, int(annotation.get("id") or 0)


def _as_dict(obj: Any) -> Mapping[str, Any] | None:
    """An annotation as a plain mapping (the SDK gives dicts or pydantic models, by endpoint)."""
    if isinstance(obj, Mapping):
        return obj
    dump = getattr(obj, "model_dump", None) or getattr(obj, "dict", None)
    if callable(dump):
        out = dump()
        return out if isinstance(out, Mapping) else None
    return None


def _iso(value: Any) -> str | None:
    """A server time stamp in one format, UTC: ``2026-12-02T01:30:03.500195Z``.

    The SDK gives strings (``...Z``) on some endpoints and datetimes on others;
    the store compares and shows these stamps, so they must not depend on the
    endpoint an answer came through. A string that is no time is kept as it is.
    """
    if value is None:
        return None
    when = value
    if not isinstance(when, datetime):
        try:
            when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.isoformat(timespec="microseconds") + "Z"


def _outcome(annotation: Mapping[str, Any], classes: Sequence[str],
             multiple: bool = False) -> tuple[str, str | None, str | None]:
    """``(status, label, reason)`` of one annotation; ``multiple``: the label is the canonical set string."""
    if annotation.get("was_cancelled"):
        return "skipped", None, None
    results = [r for r in annotation.get("result") or [] if isinstance(r, Mapping) and r.get("type") == "choices"]
    ours = [r for r in results if r.get("from_name") == CONTROL_NAME] or results
    picked: list[str] = []
    for r in ours:
        picked.extend(str(c) for c in (r.get("value") or {}).get("choices") or [])
    if multiple:
        from al_loop.multilabel import SEP, canonical

        outside = sorted({c for c in picked if c not in classes})
        if outside:
            return "rejected", None, (f"choice(s) {outside} are not labels of this run (labels: "
                                      f"{', '.join(classes)})")
        return "labeled", canonical(SEP.join(picked), classes), None
    if not picked:
        return "rejected", None, "the annotation holds no choice"
    if len(picked) > 1:
        return "rejected", None, f"several choices {picked} in a single-choice task"
    if picked[0] not in classes:
        return "rejected", None, f"choice {picked[0]!r} is not a class of this run (classes: {', '.join(classes)})"
    return "labeled", picked[0], None


def answer_from_annotations(
    pool_id: int,
    annotations: Iterable[Mapping[str, Any]],
    classes: Sequence[str],
    annotators: Mapping[int, str] | None = None,
    multiple: bool = False,
) -> Answer | None:
    """The answer about one item from the annotations on its task(s).

    Parameters
    ----------
    pool_id : int
        Global pool id of the item.
    annotations : iterable of dict
        Label Studio annotation JSON (``id``, ``result``, ``was_cancelled``,
        ``updated_at``, ``completed_by``, ...), in any order.
    classes : sequence of str
        Valid class names.
    annotators : mapping, optional
        User id -> name (e-mail) for the ``annotator`` field.
    multiple : bool
        A multi-label run: every choice of an annotation is one of its labels.

    Returns
    -------
    Answer or None
        The newest annotation's answer (``None`` when there is no annotation),
        with ``disagreement`` set when annotations differ.
    """
    anns = sorted(annotations, key=_stamp, reverse=True)
    if not anns:
        return None
    names = annotators or {}

    def who(a: Mapping[str, Any]) -> str | None:
        # One name per user whatever the endpoint: the e-mail (the users list, or the user object some
        # endpoints put in ``completed_by``), "user ID" only when the server names the user nowhere.
        uid, email = a.get("completed_by"), None
        if isinstance(uid, Mapping):
            uid, email = uid.get("id"), uid.get("email") or uid.get("username")
        if uid is None:
            return None
        return names.get(int(uid)) or email or f"user {uid}"

    outcomes = [_outcome(a, classes, multiple) for a in anns]
    newest, (status, label, reason) = anns[0], outcomes[0]
    disagreement = None
    if len(anns) > 1:
        def short(o: tuple[str, str | None, str | None], a: Mapping[str, Any]) -> str:
            text = o[1] if o[0] == "labeled" else ("skip" if o[0] == "skipped" else "invalid")
            return f"{text}({who(a) or '?'})"

        if len({(o[0], o[1]) for o in outcomes}) > 1 or any(o[0] == "rejected" for o in outcomes):
            disagreement = " vs ".join(short(o, a) for o, a in zip(outcomes, anns, strict=True))
    return Answer(
        pool_id=int(pool_id),
        status=status,
        label=label,
        reason=reason,
        annotation_id=str(newest.get("id")),
        updated_at=_iso(newest.get("updated_at") or newest.get("created_at")),
        annotator=who(newest),
        disagreement=disagreement,
    )


# --------------------------------------------------------------------------- transport


def connect(url: str, api_key: str, timeout: float = 60.0) -> LabelStudio:
    """A Label Studio client that never retries by itself (``max_retries=0``).

    Both arguments are always passed: the SDK would otherwise read
    ``LABEL_STUDIO_API_KEY`` at import time and default to ``localhost:8000``.
    """
    if not url:
        raise ConfigError(f"no Label Studio URL; set {ENV_URL} (e.g. source DIR/env after scripts/labelstudio.sh start DIR)")
    if not api_key:
        raise ConfigError(f"no Label Studio API key; set {ENV_API_KEY} (scripts/labelstudio.sh start writes it to DIR/env)")
    import httpx
    from label_studio_sdk import LabelStudio

    # A server that is down must show within seconds (the campaign loop says so); a slow answer may take ``timeout``.
    http = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)), follow_redirects=True)
    return LabelStudio(base_url=url.rstrip("/"), api_key=api_key, max_retries=0, httpx_client=http)


class LabelStudioHTTPError(OracleError):
    """Label Studio answered an HTTP error that retrying will not fix (``status`` holds the code)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class LabelStudioUnavailable(OracleError):
    """The server stayed down, slow or rate-limiting for a call's whole retry budget.

    Nothing was lost: reads are repeated and writes are looked up first. The
    campaign loop catches it, says once that the server is down and keeps
    waiting; ``url``, ``op`` (what was tried), ``what`` (the last failure) and
    ``waited`` (seconds) let it say so in its own words.
    """

    def __init__(self, message: str, url: str, op: str, what: str, waited: float) -> None:
        super().__init__(message)
        self.url, self.op, self.what, self.waited = url, op, what, waited


class _Transient(Exception):
    """A failure worth retrying; ``retry_after`` in seconds when the server said so."""

    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.retry_after = retry_after


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class _Backoff:
    """Exponential backoff with a total budget; one per public call.

    The budget counts from the first failure and includes the time the failed
    requests themselves took (a server that hangs until the timeout uses it up
    as surely as one that refuses at once).
    """

    def __init__(self, retry: LabelStudioRetry, url: str, sleep: Callable[[float], None],
                 clock: Callable[[], float]) -> None:
        self.retry, self.url, self.sleep, self.clock = retry, url, sleep, clock
        self.slept = 0.0
        self.attempt = 0
        self.first_failure: float | None = None

    @property
    def waited(self) -> float:
        since = 0.0 if self.first_failure is None else self.clock() - self.first_failure
        return max(self.slept, since)

    def wait(self, op: str, failure: _Transient) -> None:
        """Sleep before the next try, or raise :class:`OracleError` when the budget is spent."""
        if self.first_failure is None:
            self.first_failure = self.clock()
        left = self.retry.max_wait - self.waited
        delay = min(self.retry.max_delay, self.retry.initial_delay * 2.0**self.attempt)
        if failure.retry_after is not None:
            delay = failure.retry_after
        if left <= 0 or delay > left + 1e-9:
            raise LabelStudioUnavailable(
                f"Label Studio at {self.url} failed to {op} ({failure.what}) after {self.attempt + 1} tries "
                f"and {self.waited:.0f}s of waiting; check the server and rerun (nothing was lost), "
                f"or raise the retry budget (max_wait={self.retry.max_wait:g}s)",
                self.url, op, failure.what, self.waited,
            )
        self.sleep(delay)  # Ctrl-C interrupts it (KeyboardInterrupt is never caught here)
        self.slept += delay
        self.attempt += 1


def _classify(exc: BaseException, url: str, op: str) -> _Transient:
    """Map an SDK/httpx exception to :class:`_Transient`, or raise a one-line OracleError."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    if isinstance(exc, ApiError):
        status = exc.status_code or 0
        if status in (401, 403):
            raise LabelStudioHTTPError(  # carries the status: callers must not retry a refused key
                f"Label Studio at {url} refused the API key (HTTP {status}) while trying to {op}; "
                f"set {ENV_API_KEY} to a valid token of that server (scripts/labelstudio.sh writes it to DIR/env)",
                status,
            ) from None
        if status >= 500 or status in (408, 409, 429):
            return _Transient(f"HTTP {status}", _retry_after(exc.headers))
        detail = exc.body.get("detail") if isinstance(exc.body, Mapping) else exc.body
        detail = " ".join(str(detail).split())[:200]
        raise LabelStudioHTTPError(
            f"Label Studio at {url} answered HTTP {status} to {op}: {detail}; check the project id and settings",
            status,
        ) from None
    if isinstance(exc, httpx.TransportError):
        return _Transient(type(exc).__name__)
    raise exc


def _call(fn: Callable[[], T], *, op: str, url: str, backoff: _Backoff | None) -> T:
    """Run an idempotent request, retrying transient failures with ``backoff`` (None: once)."""
    while True:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified just below; anything unknown re-raises
            failure = _classify(exc, url, op)
            if backoff is None:
                raise failure from None
            backoff.wait(op, failure)


# --------------------------------------------------------------------------- projects


def ensure_project(client: LabelStudio, title: str, classes: Sequence[str], kind: str,
                   retry: LabelStudioRetry | None = None,
                   description: str = "al-loop active learning campaign", multiple: bool = False) -> int:
    """Create the campaign's project, or adopt the existing one with this title.

    Parameters
    ----------
    client : LabelStudio
        From :func:`connect`.
    title : str
        Project title; an existing project with exactly this title is adopted.
    classes : sequence of str
        The run's class names.
    kind : {"image", "text"}
        What annotators see.
    retry : LabelStudioRetry, optional
        Backoff settings for a server that is down or busy.
    description : str
        Description of a project created here (an adopted one keeps its own).
    multiple : bool
        A multi-label run: the project's choices are ``choice="multiple"``
        (an adopted project must be so too).

    Returns
    -------
    int
        The project id (record it in the store with the run).

    Raises
    ------
    OracleError
        When the adopted project's label config names other classes (order is
        ignored) or another kind of data, or several projects have the title.
    """
    config = labeling_config(classes, kind, multiple)
    retry = retry or LabelStudioRetry()
    url = client._client_wrapper.get_base_url()
    backoff = _Backoff(retry, url, time.sleep, time.monotonic)
    matches = [p for p in _all_projects(client, url, backoff) if p.title == title]
    if len(matches) > 1:
        ids = sorted(int(p.id) for p in matches)
        raise OracleError(f"{len(matches)} Label Studio projects are titled {title!r} (ids {ids}); rename all but one or pass the project id")
    if matches:
        project = _call(lambda: client.projects.get(id=matches[0].id), op="read the project", url=url, backoff=backoff)
        have_kind, have = parse_labeling_config(project.label_config or "")
        if sorted(have) != sorted(str(c) for c in classes):
            raise OracleError(
                f"Label Studio project {project.id} ({title!r}) has classes {list(have)}, the run has {list(classes)}; "
                "use another project title or fix the project's labeling interface"
            )
        if have_kind != kind:
            raise OracleError(
                f"Label Studio project {project.id} ({title!r}) shows {have_kind or 'no image/text'} data, "
                f"the run needs {kind}; use another project title"
            )
        want = "multiple" if multiple else "single"
        have_mode = choice_mode(project.label_config or "")
        if have_mode != want:
            raise OracleError(
                f"Label Studio project {project.id} ({title!r}) takes {have_mode} choice(s) per task and the run is "
                f"{'multi' if multiple else 'single'}-label; use another project title or set choice=\"{want}\" "
                "in its labeling interface"
            )
        return int(project.id)
    # Creating is not idempotent: after an ambiguous failure, look for the title before trying again.
    while True:
        try:
            created = client.projects.create(title=title, label_config=config, description=description)
            return int(created.id)
        except Exception as exc:  # noqa: BLE001
            failure = _classify(exc, url, "create the project")
            backoff.wait("create the project", failure)
            found = [p for p in _all_projects(client, url, backoff) if p.title == title]
            if found:
                return min(int(p.id) for p in found)


def _all_projects(client: LabelStudio, url: str, backoff: _Backoff) -> list[Any]:
    out: list[Any] = []
    page = 1
    while True:
        pager = _call(lambda p=page: client.projects.list(page=p, page_size=100),  # type: ignore[misc]
                      op="list projects", url=url, backoff=backoff)
        items = list(pager.items or [])
        out.extend(items)
        if not items or getattr(pager.response, "next", None) is None:
            return out
        page += 1


# --------------------------------------------------------------------------- the oracle


@ORACLES.register("label_studio")
class LabelStudioOracle(Oracle):
    """Oracle backed by a Label Studio project (people answer asynchronously).

    Parameters
    ----------
    url : str
        Server URL, e.g. ``http://127.0.0.1:8085``.
    api_key : str
        A user's access token (legacy ``Token``); never shown in messages.
    project_id : int
        The project (see :func:`ensure_project` / :meth:`for_project`).
    classes : sequence of str
        The run's class names; any other answer is rejected, never mapped.
    retry : LabelStudioRetry, optional
        Backoff and batching settings.
    previous_answers : callable, optional
        ``(run_id, round) -> {pool_id: annotation_id}`` of the answers the
        store holds for the round; lets :meth:`collect` report deletions made
        while this process was not running. Without it, deletions are found
        relative to what this object reported earlier.
    sleep, clock : callable, optional
        Injected by tests (defaults ``time.sleep`` / ``time.monotonic``).
    campaign_id : str, optional
        The campaign that owns the tasks (see *Task layout*); None: old keys.
    max_wait : float, optional
        Overrides ``retry.max_wait``: the campaign loop gives each call a few
        seconds (it waits for a server that is down itself, and says so),
        while a direct user of the oracle keeps the long default.
    media : mapping, optional
        How image files reach annotators (``{"mode": "local-files", "root": DIR}``,
        ``{"mode": "url", "prefix": P}`` or ``{"mode": "inline"}``; see
        :func:`image_value`); recorded in the run's oracle params by ``campaign init``.
    pool_source : RunPool, optional
        The run's whole pool (:class:`al_loop.run_pool.RunPool`), given for a
        campaign started with ``--import-pool``: the project holds a task per
        pool item (:mod:`oracles.ls_pool`), :meth:`submit` imports the missing
        ones first and then marks the selected items' tasks instead of creating them.
    log : callable, optional
        One-line progress messages (the pool import).
    multiple : bool
        A multi-label run: the project takes several choices per task and an
        answer is the set of them (:mod:`al_loop.multilabel`'s ``"a;b"``).
    """

    name = "label_studio"
    needs_hidden_labels = False
    #: answers arrive later and may change (the controller pulls earlier rounds before training)
    asynchronous = True
    #: tasks per listing request
    page_size: int = 1000

    def __init__(
        self,
        url: str,
        api_key: str,
        project_id: int,
        classes: Sequence[str],
        retry: LabelStudioRetry | None = None,
        previous_answers: Callable[[int, int], Mapping[int, str]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        campaign_id: str | None = None,
        max_wait: float | None = None,
        media: Mapping[str, Any] | None = None,
        pool_source: Any = None,
        log: Callable[[str], None] | None = None,
        multiple: bool = False,
    ) -> None:
        self.url = url.rstrip("/")
        self.multiple = bool(multiple)
        self._api_key = api_key
        self.project_id = int(project_id)
        self.classes = tuple(str(c) for c in classes)
        self.retry = retry or LabelStudioRetry()
        if max_wait is not None:
            self.retry = replace(self.retry, max_wait=float(max_wait))
        self.previous_answers = previous_answers
        self.sleep = sleep
        self.clock = clock
        self.campaign_id = campaign_id or None
        self.media = dict(media) if media else None
        self.client_: LabelStudio | None = None
        self.reported_: dict[tuple[int, int], dict[int, str]] = {}
        self.annotators_: dict[int, str] = {}
        self.model_version_: str | None = None
        self.pool_source = pool_source
        self.log = log or (lambda _m: None)
        self.pool_tasks_: dict[int, int] | None = None

    def __repr__(self) -> str:
        return f"LabelStudioOracle(url={self.url!r}, project_id={self.project_id}, classes={list(self.classes)})"

    # ----------------------------------------------------------------- construction helpers

    @classmethod
    def for_project(cls, url: str, api_key: str, title: str, classes: Sequence[str], kind: str,
                    **kwargs: Any) -> LabelStudioOracle:
        """Ensure the project titled ``title`` (create or adopt) and return an oracle on it.

        ``project_wait`` (seconds, optional) caps the backoff of finding or creating
        the project (``campaign init`` uses it so that a wrong URL or a server that
        is not up fails in seconds, before anything is written); the oracle itself
        keeps ``retry``.
        """
        project_wait = kwargs.pop("project_wait", None)
        retry = kwargs.get("retry") or LabelStudioRetry()
        client = connect(url, api_key, retry.timeout)
        first = retry if project_wait is None else replace(retry, max_wait=min(retry.max_wait, float(project_wait)))
        campaign = kwargs.get("campaign_id")
        description = f"al-loop active learning campaign {campaign}" if campaign else "al-loop active learning campaign"
        project_id = ensure_project(client, title, classes, kind, first, description=description,
                                    multiple=bool(kwargs.get("multiple", False)))
        oracle = cls(url, api_key, project_id, classes, **kwargs)
        oracle.client_ = client
        return oracle

    @classmethod
    def from_env(cls, project_id: int, classes: Sequence[str], **kwargs: Any) -> LabelStudioOracle:
        """An oracle on ``project_id`` using ``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY``."""
        url, key = os.environ.get(ENV_URL, ""), os.environ.get(ENV_API_KEY, "")
        if not url or not key:
            raise ConfigError(
                f"set {ENV_URL} and {ENV_API_KEY} (scripts/labelstudio.sh start DIR writes them to DIR/env)"
            )
        return cls(url, key, project_id, classes, **kwargs)

    @staticmethod
    def backend_app(db: Any, run_id: int, *, basic_auth: tuple[str, str] | str | None = None) -> Any:
        """The ML backend app of ``al-loop serve`` for run ``run_id`` (:func:`oracles.ls_backend.app.create_app`).

        The seam between the CLI and :mod:`oracles.ls_backend`: ``al_loop`` reaches it through
        ``ORACLES.get("label_studio")``; FastAPI is imported here, on first use.
        """
        from oracles.ls_backend.app import create_app

        return create_app(db, run_id, basic_auth=basic_auth)

    @staticmethod
    def backend_driver(store: Any, db: str, run_id: int, **kwargs: Any) -> Any:
        """The started backend driver of ``al-loop serve`` (:func:`oracles.ls_backend.driver.start_driver`).

        Advances the run's rounds from webhook events and a reconciling pull;
        ``.stop()`` ends it. Reached, like :meth:`backend_app`, through ``ORACLES.get("label_studio")``.
        """
        from oracles.ls_backend.driver import start_driver

        return start_driver(store, db, run_id, **kwargs)

    @property
    def client(self) -> LabelStudio:
        if self.client_ is None:
            self.client_ = connect(self.url, self._api_key, self.retry.timeout)
        return self.client_

    def close(self) -> None:
        if self.client_ is not None:
            wrapper = getattr(self.client_, "_client_wrapper", None)
            http = getattr(getattr(wrapper, "httpx_client", None), "httpx_client", None)
            if http is not None:
                http.close()
            self.client_ = None

    def _backoff(self) -> _Backoff:
        return _Backoff(self.retry, self.url, self.sleep, self.clock)

    def _read(self, fn: Callable[[], T], op: str, backoff: _Backoff) -> T:
        return _call(fn, op=op, url=self.url, backoff=backoff)

    # ----------------------------------------------------------------- reading tasks

    def _round_tasks(self, run_id: int, round_: int, backoff: _Backoff, *, full: bool,
                     counter: str | None = None) -> list[Any]:
        """Tasks of ``(run, round)``; ``full`` adds annotations (else id + data only).

        ``counter`` (``"total_annotations"`` / ``"cancelled_annotations"``) keeps only
        tasks where it is > 0: listing annotations is ~5 ms per task on the
        community server, so ``collect`` asks only for the answered ones.
        """
        items = [
            {"filter": "filter:tasks:data.al_run", "operator": "equal", "type": "Number", "value": int(run_id)},
            {"filter": "filter:tasks:data.al_round", "operator": "equal", "type": "Number", "value": int(round_)},
        ]
        if self.campaign_id:
            items.append(self._campaign_filter())
        if counter is not None:
            items.append({"filter": f"filter:tasks:{counter}", "operator": "greater", "type": "Number", "value": 0})
        return self._list_tasks(items, backoff, full=full)

    def _list_tasks(self, items: list[dict[str, Any]], backoff: _Backoff, *, full: bool) -> list[Any]:
        """Every task matching the Data Manager filter ``items`` (all of them), page by page."""
        query = json.dumps({"filters": {"conjunction": "and", "items": items}})
        extra: dict[str, Any] = {"fields": "all"} if full else {
            "include": "id,data,total_annotations,cancelled_annotations,annotations_ids"}
        out: list[Any] = []
        page = 1
        while True:
            def fetch(p: int = page) -> Any:
                return self.client.tasks.list(project=self.project_id, query=query, page=p,
                                              page_size=self.page_size, **extra)

            try:
                pager = self._read(fetch, "list tasks", backoff)
            except LabelStudioHTTPError as exc:
                if exc.status == 404 and page > 1:  # "Invalid page": the listing shrank meanwhile
                    return out
                raise
            got = list(pager.items or [])
            out.extend(got)
            total = getattr(pager.response, "total", None)
            # "total" rather than a short page: the server may cap page_size below ours.
            if not got or (len(out) >= total if isinstance(total, int) else len(got) < self.page_size):
                return out
            page += 1

    def _find(self, keys: Sequence[str], backoff: _Backoff) -> dict[str, list[int]]:
        """``{key: sorted task ids}`` for the keys present in the project."""
        wanted = {remote_key(k, self.campaign_id): k for k in keys}
        groups = {parse_key(k)[:2] for k in wanted.values()}
        found: dict[str, list[int]] = defaultdict(list)
        for run_id, round_ in sorted(groups):
            for task in self._round_tasks(run_id, round_, backoff, full=False):
                key = (task.data or {}).get("al_key")
                if key in wanted:
                    found[wanted[key]].append(int(task.id))
        return {k: sorted(v) for k, v in found.items()}

    def lookup(self, keys: Sequence[str]) -> dict[str, str]:
        """``{key: task id}`` (lowest id when a key sits on several tasks) for keys in the project."""
        found = self._find(list(keys), self._backoff())
        return {k: str(ids[0]) for k, ids in found.items()}

    # ----------------------------------------------------------------- ownership (campaign id)

    def _campaign_filter(self, operator: str = "equal") -> dict[str, Any]:
        return {"filter": "filter:tasks:data.al_campaign", "operator": operator, "type": "String",
                "value": str(self.campaign_id)}

    def _count_tasks(self, items: list[dict[str, Any]], backoff: _Backoff) -> tuple[int, list[Any]]:
        """``(number of tasks matching the filter items, up to 100 of them with id + data)``."""
        query = json.dumps({"filters": {"conjunction": "and", "items": items}})
        pager = self._read(lambda: self.client.tasks.list(project=self.project_id, query=query, page=1,
                                                          page_size=100, include="id,data"),
                           "list tasks", backoff)
        tasks = list(pager.items or [])
        total = getattr(pager.response, "total", None)
        return (total if isinstance(total, int) else len(tasks)), tasks

    def project_summary(self) -> dict[str, Any]:
        """Title, description, number of tasks, tasks of this campaign and campaign ids of the others.

        ``foreign_campaigns`` names the other campaigns met in (up to 100 of) the
        project's tasks; ``"none (older al-loop)"`` stands for tasks without a campaign id.
        """
        backoff = self._backoff()
        project = self._read(lambda: self.client.projects.get(id=self.project_id), "read the project", backoff)
        total, sample = self._count_tasks([], backoff)
        ours = self._count_tasks([self._campaign_filter()], backoff)[0] if self.campaign_id and total else 0
        others = sorted({str((t.data or {}).get("al_campaign") or "none (older al-loop)") for t in sample
                         if not self.campaign_id or (t.data or {}).get("al_campaign") != self.campaign_id})
        return {"title": project.title, "description": project.description or "", "tasks": total,
                "ours": ours, "foreign": total - ours, "foreign_campaigns": others}

    def claim_project(self) -> None:
        """Add this campaign's id to the project's description (an adopted project names every campaign it serves)."""
        if not self.campaign_id:
            return
        backoff = self._backoff()
        project = self._read(lambda: self.client.projects.get(id=self.project_id), "read the project", backoff)
        text = project.description or ""
        if self.campaign_id not in text:
            text = f"{text}; al-loop campaign {self.campaign_id}" if text else \
                f"al-loop active learning campaign {self.campaign_id}"
            self._read(lambda: self.client.projects.update(id=self.project_id, description=text),
                       "update the project's description", backoff)

    # ----------------------------------------------------------------- local files

    def ensure_local_storage(self, path: str) -> int:
        """The id of a local files import storage of the project over ``path``, created if there is none.

        Label Studio serves ``/data/local-files/?d=...`` only for a file whose
        folder lies in (or under) the path of a local files storage of a project
        the user can see; al-loop's tasks name their files that way. The storage
        is never synced (a sync would import tasks of its own, without keys): its
        regex filter matches no file name, so a *Sync* pressed by hand imports
        nothing either. A storage of the project whose path holds ``path`` is reused.
        """
        import os

        want = os.path.normpath(path)
        backoff = self._backoff()
        have = self._read(lambda: self.client.import_storage.local.list(project=self.project_id),
                          "list the project's local files storages", backoff)
        for storage in have or []:
            root = os.path.normpath(str(getattr(storage, "path", "") or ""))
            if root and (want == root or want.startswith(root.rstrip(os.sep) + os.sep)):
                return int(storage.id)
        created = self._read(
            lambda: self.client.import_storage.local.create(
                project=self.project_id, path=want, use_blob_urls=True, regex_filter=LOCAL_STORAGE_NO_SYNC,
                title=f"al-loop files {self.campaign_id or ''}".strip(),
                description="serves the images of al-loop's tasks; al-loop imports its own tasks, do not sync"),
            "create a local files storage", backoff)
        return int(created.id)

    # ----------------------------------------------------------------- submitting

    def pool_tasks(self) -> dict[int, int]:
        """``{pool id: task id}`` of every pool item (``--import-pool``), imported first where missing.

        Read from the run's recorded import once per oracle object; see
        :func:`oracles.ls_pool.ensure_pool_tasks`.
        """
        if self.pool_source is None:
            raise ConfigError("this campaign did not import its pool (campaign init --import-pool)")
        if self.pool_tasks_ is None:
            from oracles.ls_pool import ensure_pool_tasks

            self.pool_tasks_ = ensure_pool_tasks(self, self.pool_source, self.log)
        return self.pool_tasks_

    def submit(self, items: Sequence[OutboxItem]) -> dict[str, str]:
        """Put each item in the project: a new task, or (``--import-pool``) its pool task marked for the round.

        Returns
        -------
        dict
            ``{key: task id}`` for every item (new or already there).
        """
        if not items:
            return {}
        by_key = {it.key: it for it in items}
        tasks = {k: task_for(it, self.classes, self.campaign_id, self.media, multiple=self.multiple)  # bad payloads fail before any send
                 for k, it in by_key.items()}
        backoff = self._backoff()
        pool_tasks = dict(self.pool_tasks()) if self.pool_source is not None else {}
        patched: set[str] = set()
        clean_sends = 0
        while True:
            found = self._find(list(by_key), backoff)
            missing = [k for k in by_key if k not in found]
            marked = [(pool_tasks[by_key[k].pool_id], k) for k in missing if by_key[k].pool_id in pool_tasks]
            if marked:
                from oracles.ls_pool import mark_selected

                again = [k for _t, k in marked if k in patched]
                if again:
                    raise OracleError(
                        f"Label Studio project {self.project_id} took the round's data for pool task "
                        f"{pool_tasks[by_key[again[0]].pool_id]} ({again[0]}) but does not list it in the round; "
                        "check that the project's tasks keep their 'al_key' and 'al_round' data fields")
                patched.update(k for _t, k in marked)
                gone = set(mark_selected(self, [(t, tasks[k]["data"]) for t, k in marked], backoff))
                for t, k in marked:  # a pool task deleted in Label Studio: the item gets a new task
                    if t in gone:
                        del pool_tasks[by_key[k].pool_id]
                continue
            if not missing:
                break
            if clean_sends >= 2:
                raise OracleError(
                    f"Label Studio project {self.project_id} accepted {len(missing)} task(s) but does not list them "
                    f"(e.g. {missing[0]}); check that the project's tasks keep their 'al_key' data field"
                )
            clean_sends += 1
            size = self.retry.batch_size
            for start in range(0, len(missing), size):
                chunk = [tasks[k] for k in missing[start:start + size]]
                try:
                    _call(lambda c=chunk: self.client.projects.import_tasks(  # type: ignore[misc]
                        id=self.project_id, request=c, return_task_ids=True),
                        op="import tasks", url=self.url, backoff=None)
                except _Transient as failure:
                    # Ambiguous: the server may have committed. Wait, then look up before re-sending.
                    backoff.wait("import tasks", failure)
                    clean_sends = 0
                    break
        self._drop_duplicates({k: ids for k, ids in found.items() if len(ids) > 1}, backoff)
        if any("predictions" in t for t in tasks.values()):
            self._keep_model_version(backoff)
        return {k: str(found[k][0]) for k in by_key}

    def _keep_model_version(self, backoff: _Backoff) -> None:
        """Set the project's model_version to :data:`MODEL_VERSION` if it is another one.

        Label Studio shows annotators (``/api/projects/ID/next``, the task view)
        only the predictions whose model_version is the project's; it takes the
        version of the first import and keeps it. A project made by an older
        al-loop (one version per round, ``al-loop:RUN:ROUND``) is moved to the
        single version here, once per oracle object. Pre-annotations are a help,
        not an answer: a server that refuses the change (HTTP 400) is left as it is.
        """
        if self.model_version_ == MODEL_VERSION:
            return
        project = self._read(lambda: self.client.projects.get(id=self.project_id), "read the project", backoff)
        if (getattr(project, "model_version", None) or "") != MODEL_VERSION:
            try:
                self._read(lambda: self.client.projects.update(id=self.project_id, model_version=MODEL_VERSION),
                           "set the project's model version", backoff)
            except LabelStudioHTTPError as exc:
                if exc.status != 400:
                    raise
                return
        self.model_version_ = MODEL_VERSION

    def _drop_duplicates(self, dups: Mapping[str, list[int]], backoff: _Backoff) -> None:
        """Delete extra tasks of a key (all but the lowest id) that nobody annotated."""
        for _key, ids in sorted(dups.items()):
            for task_id in ids[1:]:
                task = self._read(lambda t=task_id: self.client.tasks.get(id=str(t)),  # type: ignore[misc]
                                  "read a duplicate task", backoff)
                if (task.total_annotations or 0) + (task.cancelled_annotations or 0) > 0 or task.annotations:
                    continue
                try:
                    self._read(lambda t=task_id: self.client.tasks.delete(id=str(t)),  # type: ignore[misc]
                               "delete a duplicate task", backoff)
                except LabelStudioHTTPError as exc:
                    if exc.status != 404:  # 404: already gone (a retried delete)
                        raise

    # ----------------------------------------------------------------- collecting

    def _annotator_names(self, ids: set[int], backoff: _Backoff) -> Mapping[int, str]:
        if ids - set(self.annotators_):
            try:
                users = self._read(lambda: self.client.users.list(), "list users", backoff)
                for u in users:
                    self.annotators_[int(u.id)] = u.email or u.username or f"user {u.id}"
            except OracleError:
                pass  # names are cosmetic; "user <id>" is used instead
        return self.annotators_

    def annotator_names(self) -> dict[int, str]:
        """``{user id: e-mail}`` of the server's users, listed now (``{}`` when the listing fails).

        The names :meth:`collect` gives annotators; the backend driver keeps
        them for the webhook, whose events name users by id only.
        """
        self.annotators_ = {}
        return dict(self._annotator_names({-1}, self._backoff()))

    def collect(self, run_id: int, round_: int) -> list[Answer]:
        """Current answers for the round's items, one per answered (or withdrawn) item.

        Returns
        -------
        list of Answer
            Sorted by pool id: ``labeled`` / ``skipped`` / ``rejected`` for items
            with an annotation; ``deleted`` for items answered before (per
            ``previous_answers`` or this object's memory) whose annotations are gone.
            Unanswered items are absent (the answers may be partial).
        """
        backoff = self._backoff()
        before = (dict(self.previous_answers(run_id, round_)) if self.previous_answers is not None
                  else self.reported_.get((run_id, round_), {}))
        tasks = {t.id: t for counter in ("total_annotations", "cancelled_annotations")
                 for t in self._round_tasks(run_id, round_, backoff, full=True, counter=counter)}
        answered = {int((t.data or {}).get("al_pool_id", -1)) for t in tasks.values()}
        gone = {int(p) for p in before} - answered
        present: set[int] = set()
        # The counters the filters use can stay 0 on an annotated task (seen on 1.23 under load);
        # ``annotations_ids`` is computed from the annotations, so a light listing finds those tasks.
        for light in self._round_tasks(run_id, round_, backoff, full=False):
            pool_id = int((light.data or {}).get("al_pool_id", -1))
            if pool_id in gone:
                present.add(pool_id)
            if light.id in tasks:
                continue
            has = str(getattr(light, "annotations_ids", None) or "").strip(", ")
            if pool_id in gone or has:
                if has or (light.total_annotations or 0) + (light.cancelled_annotations or 0) > 0:
                    try:
                        tasks[light.id] = self._read(lambda t=light.id: self.client.tasks.get(id=str(t)),  # type: ignore[misc]
                                                     "read a task", backoff)
                    except LabelStudioHTTPError as exc:
                        if exc.status != 404:  # 404: deleted since the listing; reported as deleted below
                            raise
                        present.discard(pool_id)
        per_item: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
        for task in tasks.values():
            data = task.data or {}
            if str(data.get("al_key", "")) != remote_key(f"{run_id}:{round_}:{data.get('al_pool_id')}",
                                                         self.campaign_id):
                continue
            pool_id = int(data["al_pool_id"])
            per_item[pool_id].extend(d for d in map(_as_dict, task.annotations or []) if d is not None)
        user_ids = {int(a["completed_by"]) for anns in per_item.values() for a in anns
                    if isinstance(a.get("completed_by"), int)}
        names = self._annotator_names(user_ids, backoff) if user_ids else {}
        answers: dict[int, Answer] = {}
        for pool_id, anns in per_item.items():
            answer = answer_from_annotations(pool_id, anns, self.classes, names, multiple=self.multiple)
            if answer is not None:
                answers[pool_id] = answer
        for pool_id, annotation_id in before.items():
            if int(pool_id) not in answers and annotation_id is not None:
                answers[int(pool_id)] = Answer(
                    pool_id=int(pool_id), status="deleted", annotation_id=str(annotation_id),
                    reason="the annotation was deleted in Label Studio"
                    if int(pool_id) in present else "the task was deleted in Label Studio",
                )
        self.reported_[(run_id, round_)] = {
            p: a.annotation_id for p, a in answers.items() if a.status != "deleted" and a.annotation_id
        }
        return [answers[p] for p in sorted(answers)]

    # ----------------------------------------------------------------- backend mode (al-loop serve)

    def _rest(self, method: str, path: str, op: str, backoff: _Backoff, body: Any = None) -> Any:
        """One REST call with the token; transient failures retried with ``backoff``, others one line."""
        import httpx

        def once() -> Any:
            with httpx.Client(timeout=httpx.Timeout(self.retry.timeout, connect=min(self.retry.timeout,
                                                                                      CONNECT_TIMEOUT))) as http:
                reply = http.request(method, f"{self.url}{path}", json=body,
                                     headers={"Authorization": f"Token {self._api_key}"})
            if reply.status_code >= 500 or reply.status_code in (408, 429):
                raise _Transient(f"HTTP {reply.status_code}", _retry_after(dict(reply.headers)))
            if reply.status_code >= 400:
                raise _rest_error(self.url, op, reply)
            return reply.json() if reply.content else None

        while True:
            try:
                return once()
            except httpx.TransportError as exc:
                backoff.wait(op, _Transient(type(exc).__name__))
            except _Transient as failure:
                backoff.wait(op, failure)

    def ensure_webhook(self, url: str, actions: Sequence[str]) -> int:
        """The id of the project's webhook to ``url`` (created with ``actions`` and payloads if there is none).

        A webhook of the project whose URL is ``url`` is adopted and its actions
        are set to ``actions`` (a re-run of ``campaign init`` registers nothing
        twice). Label Studio checks only that the URL is not a blocked address
        (its SSRF protection); it does not call it here.
        """
        backoff = self._backoff()
        want = url.rstrip("/")
        have = self._rest("GET", f"/api/webhooks?project={self.project_id}", "list the project's webhooks",
                          backoff) or []
        body = {"project": self.project_id, "url": want, "send_payload": True, "send_for_all_actions": False,
                "actions": list(actions), "is_active": True}
        for hook in have:
            if str(hook.get("url", "")).rstrip("/") == want and hook.get("project") == self.project_id:
                if sorted(hook.get("actions") or []) != sorted(actions) or not hook.get("is_active", True):
                    self._rest("PATCH", f"/api/webhooks/{hook['id']}", "update the webhook", backoff, body)
                return int(hook["id"])
        created = self._rest("POST", "/api/webhooks", "register the webhook", backoff, body)
        return int(created["id"])

    def ensure_ml_backend(self, url: str, title: str, basic_auth: tuple[str, str] | None = None) -> int:
        """The id of the project's ML backend at ``url``, registered (not interactive) if there is none.

        Label Studio validates a registration: it calls the backend's ``/health``
        and ``/setup`` before it answers (there is no "skip validation" in 1.23),
        so the backend (``al-loop serve``) must already answer at ``url``;
        otherwise :class:`BackendUnreachable`. A backend of the project at
        ``url`` is adopted (its auth updated when ``basic_auth`` is given).
        """
        backoff = self._backoff()
        want = url.rstrip("/")
        have = self._rest("GET", f"/api/ml?project={self.project_id}", "list the project's ML backends",
                          backoff) or []
        body: dict[str, Any] = {"project": self.project_id, "url": want, "title": title, "is_interactive": False,
                                "auth_method": "NONE"}
        if basic_auth is not None:
            body.update(auth_method="BASIC_AUTH", basic_auth_user=basic_auth[0], basic_auth_pass=basic_auth[1])
        for backend in have:
            if str(backend.get("url", "")).rstrip("/") == want:
                if basic_auth is not None or backend.get("auth_method") != "NONE":
                    self._rest("PATCH", f"/api/ml/{backend['id']}", "update the ML backend", backoff, body)
                return int(backend["id"])
        created = self._rest("POST", "/api/ml", "register the ML backend", backoff, body)
        return int(created["id"])

    def ml_backend_state(self, backend_id: int) -> str:
        """Label Studio's view of the backend (``CONNECTED``, ``DISCONNECTED``, ``ERROR``, ...), asked now."""
        got = self._rest("GET", f"/api/ml/{int(backend_id)}", "read the ML backend", self._backoff())
        return str(got.get("readable_state") or got.get("state") or "")


class BackendUnreachable(OracleError):
    """Label Studio could not reach the backend at registration (its ``/health`` or ``/setup`` failed)."""


class BackendAuthRefused(OracleError):
    """The backend answered Label Studio's ``/health`` with 401: the basic auth given does not fit it."""


class LocalAddressBlocked(OracleError):
    """Label Studio refuses to call a local address (its SSRF protection; 1.23 blocks 127.0.0.0/8 by default)."""


#: what a Label Studio started for backend mode on the same machine needs in its environment
ALLOW_LOCAL_ENV = "SSRF_PROTECTION_ENABLED=false ML_BLOCK_LOCAL_IP=false"


def _rest_error(url: str, op: str, reply: Any) -> OracleError:
    """An HTTP 4xx of a registration call as one line (and the error class that says what to do)."""
    try:
        body = reply.json()
    except ValueError:
        body = {"detail": reply.text[:200]}
    detail = body.get("detail") if isinstance(body, Mapping) else None
    errors = body.get("validation_errors") if isinstance(body, Mapping) else None
    text = " ".join(f"{detail or ''} {errors or ''}".split()) if detail or errors else " ".join(str(body).split())
    if "reserved network address" in text:
        return LocalAddressBlocked(
            f"Label Studio at {url} refuses to call a local address while trying to {op} ({text}); start it with "
            f"{ALLOW_LOCAL_ENV} in its environment (a server on the same machine as al-loop serve), or give "
            "--backend-url an address it may call")
    if reply.status_code in (401, 403):
        return LabelStudioHTTPError(
            f"Label Studio at {url} refused the API key (HTTP {reply.status_code}) while trying to {op}; "
            f"set {ENV_API_KEY} to a valid token of that server", reply.status_code)
    if "authentication parameters" in text:
        return BackendAuthRefused(f"the backend refused Label Studio's basic auth (HTTP 401 on /health) while "
                                  f"trying to {op}; give --basic-auth-env the variable that holds the user:password "
                                  "al-loop serve was started with")
    if "health check failed" in text or "doesn't look like a valid ML backend" in text:
        why = text.split("Additional info:")[-1].strip(" .]}'\"") if "Additional info:" in text else text[:200]
        return BackendUnreachable(f"Label Studio at {url} could not reach the backend while trying to {op} "
                                  f"({why[:200]}); start `al-loop serve` first")
    return LabelStudioHTTPError(f"Label Studio at {url} answered HTTP {reply.status_code} to {op}: {text[:300]}",
                                reply.status_code)
