"""The backend driver of ``al-loop serve`` for Label Studio: built, subscribed to the webhook, started.

:func:`start_driver` opens the run's oracle as ``campaign run`` does (each
call gives the server ``CALL_WAIT`` seconds; the worker says an outage in one
line and tries again), builds the :class:`~al_loop.backend_driver.BackendDriver`
with the Label Studio hook of :mod:`oracles.ls_backend.rounds` (the round's
view, then bulk predictions by the served model) and subscribes it to
:func:`oracles.ls_backend.webhook.handle_event`. The CLI reaches it through
``ORACLES.get("label_studio").backend_driver(...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from al_loop.backend_driver import PULL_EVERY, BackendDriver


@dataclass
class RunningDriver:
    """A started driver and what :meth:`stop` releases."""

    driver: BackendDriver
    oracle: Any
    unsubscribe: Callable[[], None]

    def stop(self, timeout: float | None = 60.0) -> None:
        """Unsubscribe, stop the worker after its current transition, close the oracle."""
        self.unsubscribe()
        self.driver.stop(timeout)
        self.oracle.close()


def start_driver(store: Any, db: str, run_id: int, *, predictor: Any = None, train_every: int | None = None,
                 pull_every: float = PULL_EVERY, lease: Any = None,
                 log: Callable[[str], None] | None = None) -> RunningDriver:
    """Build, subscribe and start the backend driver of run ``run_id`` (see the module docstring).

    ``predictor`` (the app's :class:`~oracles.ls_backend.model.RunPredictor`)
    writes each round's predictions to the project's unlabeled tasks; None: no
    bulk predictions.
    """
    from al_loop.api import build_learner, build_pool, build_strategy
    from al_loop.campaign import CALL_WAIT, _open_run
    from al_loop.controller import Controller
    from oracles.ls_backend import rounds, webhook

    log = log or (lambda _m: None)
    run_id, _params, _key, oracle = _open_run(store, db, run_id, {"max_wait": CALL_WAIT})
    try:
        config = store.config(run_id)
        pool = build_pool(config)
        ctl = Controller(store, run_id, pool, build_learner(config.learner, pool),
                         build_strategy(config.strategy, config.strategy_params), oracle, log=log)
        driver = BackendDriver(ctl, train_every=train_every, pull_every=pull_every, log=log, lease=lease,
                               after_dispatch=rounds.after_dispatch(oracle, store, run_id, predictor, log))
    except BaseException:
        oracle.close()
        raise
    unsubscribe = webhook.subscribe(store, run_id, driver.notify)
    driver.start()
    return RunningDriver(driver, oracle, unsubscribe)
