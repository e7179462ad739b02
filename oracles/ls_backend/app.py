"""The FastAPI app of ``al-loop serve``: Label Studio's ML backend protocol for one campaign run.

Routes (the JSON shapes of the official ``label-studio-ml`` backend, and what
Label Studio 1.23 sends and parses in ``label_studio/ml/api_connector.py`` and
``models.py``):

- ``GET /health`` and ``GET /``: ``{"status": "UP", "model_class": "al-loop",
  "model_version": V}``;
- ``POST /setup`` (Label Studio sends ``project``, ``schema``, ``hostname``,
  ``access_token``, ``extra_params``): ``{"model_version": V}``; a ``schema``
  without a ``<Choices>`` control is refused (400), so Label Studio shows the
  backend in error with that line;
- ``POST /predict`` with ``{"tasks": [...], "project": ..., "label_config":
  ..., "params": {...}}``: ``{"results": [{"result": [...], "score": s,
  "model_version": V}, ...]}``, one per task, in order. The result, the score
  and what a task al-loop does not know gets (an empty prediction with a
  one-line ``reason``; the rest of the batch is predicted) are defined in
  :mod:`oracles.ls_backend.model`;
- ``POST /webhook``: the event goes to
  :func:`oracles.ls_backend.webhook.handle_event`, its answer is returned.

``V`` is ``"al-loop run RUN round ROUND"``. Label Studio only adds predictions
to tasks that have none of the current version, so a new round gives new ones.

Errors: a body that is not a JSON object, or whose fields have the wrong type,
is answered 400 ``{"error": "..."}`` (one line); with ``basic_auth`` set,
missing or wrong credentials are answered 401 ``{"error": "..."}`` (Label
Studio sends them when the backend is registered with ``auth_method``
``BASIC_AUTH``); an al-loop error while predicting (the store, the inputs) is
answered 500 ``{"error": "..."}``, one line.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from al_loop.errors import AlLoopError
from al_loop.store import Store
from oracles.ls_backend.model import BadRequest, RunPredictor, choices_target

MODEL_CLASS = "al-loop"


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": _one_line(message)}, status_code=status, headers=headers)


def parse_basic_auth(value: str) -> tuple[str, str]:
    """``("user", "password")`` from ``"user:password"`` (the value of ``serve --basic-auth-env VAR``)."""
    user, sep, password = str(value).partition(":")
    if not sep or not user or not password:
        raise BadRequest("basic auth must be 'user:password' (both non-empty)")
    return user, password


def _authorized(header: str | None, expected: tuple[str, str]) -> str | None:
    """None when ``header`` carries ``expected``, else why not (one line, never the expected values)."""
    if not header:
        return "this backend needs HTTP basic auth; register it in Label Studio with auth method BASIC_AUTH"
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return f"this backend takes HTTP basic auth, not {scheme or 'an empty'} authorization"
    try:
        user, _, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "the basic auth credentials are not base64 of user:password"
    ok = secrets.compare_digest(user.encode(), expected[0].encode())
    ok = secrets.compare_digest(password.encode(), expected[1].encode()) and ok
    return None if ok else "wrong user or password for this backend"


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(body).__name__}")
    return body


def _handle_event(store: Store, run_id: int, payload: dict[str, Any]) -> dict[str, Any]:
    from oracles.ls_backend import webhook

    try:
        return webhook.handle_event(store, run_id, payload)
    except getattr(webhook, "WebhookPayloadError", BadRequest) as exc:  # not a Label Studio event: 400
        raise BadRequest(str(exc)) from None


def create_app(db: Store | str | Path, run_id: int, *, basic_auth: tuple[str, str] | str | None = None) -> FastAPI:
    """The ML backend of campaign run ``run_id`` of ``db`` (a :class:`Store` or its path).

    Parameters
    ----------
    db : Store, str or Path
        The store; a path is opened here (and closed when the app shuts down).
    run_id : int
        The campaign run whose model predicts and whose store the webhook writes.
    basic_auth : (user, password), "user:password" or None
        When given, every request must carry these HTTP basic auth credentials (else 401).

    Returns
    -------
    FastAPI
        ``app.state.predictor`` is its :class:`~oracles.ls_backend.model.RunPredictor`.
    """
    own = not isinstance(db, Store)
    store = Store(db) if own else db
    expected = parse_basic_auth(basic_auth) if isinstance(basic_auth, str) else basic_auth
    predictor = RunPredictor(store, run_id)
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if own:
            store.close()

    app = FastAPI(title=f"al-loop ML backend (run {run_id})", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.predictor = predictor
    app.state.store = store

    if expected is not None:
        @app.middleware("http")
        async def _basic_auth(request: Request, call_next: Any) -> Any:
            why = _authorized(request.headers.get("authorization"), expected)
            if why is not None:
                return _error(401, why, {"WWW-Authenticate": 'Basic realm="al-loop"'})
            return await call_next(request)

    @app.exception_handler(BadRequest)
    async def _bad_request(_request: Request, exc: BadRequest) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(AlLoopError)
    async def _al_loop_error(_request: Request, exc: AlLoopError) -> JSONResponse:
        return _error(500, str(exc))

    def health() -> dict[str, Any]:
        return {"status": "UP", "model_class": MODEL_CLASS, "model_version": predictor.model_version()}

    app.get("/health")(health)
    app.get("/")(health)

    @app.post("/setup")
    async def setup(request: Request) -> dict[str, Any]:
        body = await _body(request)
        schema = body.get("schema")
        if schema is not None and not isinstance(schema, str):
            raise BadRequest(f"schema must be the project's labeling config (a string), got {type(schema).__name__}")
        if schema:
            choices_target(schema, predictor.pool.classes, predictor.kind)
        return {"model_version": await run_in_threadpool(predictor.model_version)}

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        body = await _body(request)
        tasks = body.get("tasks")
        if not isinstance(tasks, list):
            raise BadRequest("'tasks' must be a list of Label Studio tasks"
                             + (" (it is missing)" if tasks is None else f", got {type(tasks).__name__}"))
        bad = next((i for i, t in enumerate(tasks) if not isinstance(t, dict)), None)
        if bad is not None:
            raise BadRequest(f"tasks[{bad}] is not a task object (got {type(tasks[bad]).__name__})")
        config = body.get("label_config")
        if config is not None and not isinstance(config, str):
            raise BadRequest(f"'label_config' must be a string, got {type(config).__name__}")
        params = body.get("params")
        if params is not None and not isinstance(params, dict):
            raise BadRequest(f"'params' must be an object, got {type(params).__name__}")
        results = await run_in_threadpool(predictor.predict, tasks, config)
        return {"results": results}

    @app.post("/webhook")
    async def webhook(request: Request) -> Any:
        body = await _body(request)
        return await run_in_threadpool(_handle_event, store, run_id, body)

    return app
