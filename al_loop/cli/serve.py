"""``al-loop serve``: a campaign run as a Label Studio ML backend (predictions, scores, webhooks).

The app lives in ``oracles/ls_backend`` and is reached through the ORACLES
registry (``ORACLES.get("label_studio").backend_app``), so this module imports
only the standard library and typer at top level; FastAPI and uvicorn are
imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from al_loop.cli._common import console, interrupt_hint
from al_loop.cli.app import app


def _basic_auth(var: str | None) -> tuple[str, str] | None:
    import os

    from al_loop.errors import ConfigError

    if var is None:
        return None
    value = os.environ.get(var, "")
    if not value:
        raise ConfigError(f"--basic-auth-env {var}: the variable is not set; set {var}=user:password (the "
                          "credentials the backend is registered with in Label Studio)")
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ConfigError(f"--basic-auth-env {var}: the variable must hold user:password (both non-empty)")
    return user, password


def _check_port(host: str, port: int) -> None:
    import socket

    from al_loop.errors import ConfigError

    if not 0 < port < 65536:
        raise ConfigError(f"--port {port} is not a TCP port; pass 1..65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"--host {host!r} is not an address of this machine ({exc.strerror or exc}); "
                          "pass e.g. 127.0.0.1") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass another --port, or "
                              "stop what listens there") from None


def _register_when_up(server: object, db: str, run_id: int, wait: float = 60.0) -> None:
    """Once ``server`` listens, register a backend-mode run's webhook and ML backend in Label Studio.

    Label Studio calls the model's ``/health`` and ``/setup`` while it registers
    it, so this runs after the socket is open (:func:`al_loop.campaign.connect_backend`,
    idempotent). A failure is one ``note:`` line; the backend keeps serving.
    """
    import time

    from al_loop.errors import AlLoopError

    deadline = time.monotonic() + wait
    while not getattr(server, "started", False):
        if getattr(server, "should_exit", False) or time.monotonic() > deadline:
            return
        time.sleep(0.05)
    from al_loop.campaign import connect_backend

    try:
        got = connect_backend(db, run=run_id, log=lambda m: console.print(m, highlight=False))
    except AlLoopError as exc:
        console.print(f"note: {exc}; the backend keeps serving (Label Studio can be pointed at it by hand)",
                      highlight=False)
        return
    console.print(f"run {run_id}: registered in Label Studio ({', '.join(f'{k} {v}' for k, v in got.items())})",
                  highlight=False)


@app.command("serve")
def serve(
    db: Annotated[Path, typer.Option(help="Store of the campaign.")],
    run: Annotated[int | None, typer.Option(help="Campaign run to serve (default: the newest running one).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (Label Studio calls the backend there).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9090,
    basic_auth_env: Annotated[str | None, typer.Option(
        help="Environment variable holding user:password; requests must carry them (HTTP basic auth, "
             "Label Studio's BASIC_AUTH auth method). Default: the one `campaign init --mode backend` "
             "recorded, if any.")] = None,
    train_every: Annotated[int | None, typer.Option(
        help="Train and send the next batch every N answers of the waiting round, before it is all answered "
             "(kept with the run). Default: when the round's batch is answered (its min_fraction).")] = None,
    pull_every: Annotated[float, typer.Option(
        help="Seconds between pulls of the open rounds, so that an answer whose webhook never came is "
             "recorded.")] = 60.0,
) -> None:
    """Answer Label Studio as its ML backend: /health, /setup, /predict (the round's model), /webhook."""
    from al_loop.errors import ConfigError, StoreError

    if not db.exists():
        raise StoreError(f"{db} does not exist; start a campaign with `al-loop campaign init --db {db} ...` "
                         "or pass the --db of an existing one")
    _check_port(host, port)
    from al_loop.backend_driver import check_settings

    check_settings(train_every, pull_every)
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("al-loop serve needs FastAPI and uvicorn; install them with "
                          "pip install 'al-loop[backend]'") from None

    from al_loop.campaign import campaign_params, pick_run
    from al_loop.lease import RunLease
    from al_loop.registry import ORACLES
    from al_loop.store import Store

    store = Store(db)
    try:
        run_id = pick_run(store, str(db), run)
        params = campaign_params(store, run_id)
        # a backend-mode run registered with basic auth: the same variable, unless another is given
        credentials = _basic_auth(basic_auth_env or params.get("basic_auth_env"))
        with RunLease(store, run_id) as lease:
            try:
                backend = ORACLES.get("label_studio").backend_app(store, run_id, basic_auth=credentials)
            except ImportError as exc:
                raise ConfigError(f"al-loop serve needs FastAPI ({exc}); install it with "
                                  "pip install 'al-loop[backend]'") from None
            version = backend.state.predictor.warm()
            again = f"al-loop serve --db {db} --run {run_id} --host {host} --port {port}"
            interrupt_hint(f"serving run {run_id}", db, again)
            console.print(f"serving run {run_id} of {db} ({version}) at http://{host}:{port}"
                          f"{' with basic auth' if credentials else ''}; Ctrl-C stops", highlight=False)
            server = uvicorn.Server(uvicorn.Config(backend, host=host, port=port, log_level="warning",
                                                   lifespan="on"))
            if params.get("mode") == "backend":
                import threading

                threading.Thread(target=_register_when_up, args=(server, str(db), run_id), daemon=True,
                                 name="al-loop-register-backend").start()
            # the round state machine, advanced by webhook events and the reconciling pull (one worker thread)
            driver = None
            try:
                driver = ORACLES.get("label_studio").backend_driver(
                    store, str(db), run_id, predictor=backend.state.predictor, train_every=train_every,
                    pull_every=pull_every, lease=lease, log=lambda m: console.print(m, highlight=False))
            except ConfigError as exc:  # e.g. no API key: predictions and webhook answers still work
                console.print(f"note: {exc}; the rounds do not advance in this serve (answers from webhooks "
                              "are recorded, `campaign run` advances them)", highlight=False)
            try:
                server.run()
            finally:
                if driver is not None:
                    driver.stop()
    finally:
        store.close()
