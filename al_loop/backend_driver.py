"""The backend driver: the round state machine advanced by events instead of a polling loop.

``al-loop serve`` (Label Studio calls it: webhooks, predictions) records each
answer as it arrives (``oracles.ls_backend.webhook``) and hands the rest to
one :class:`BackendDriver` worker thread: closing the round when its batch is
answered (the run's ``min_fraction`` rule, :meth:`Controller._await`) or
every ``train_every`` answers, training, selecting and dispatching the next
batch through :meth:`Controller.step` and the oracle's ``submit`` (as
``campaign run`` does), and a reconcile (the pull of ``campaign pull``) every
``pull_every`` seconds, so an event Label Studio never delivered is still
collected.

Why here and not under ``oracles/``: the driver needs only the controller, the
store and the :class:`~al_loop.oracle.Oracle` interface; everything Label
Studio specific (the round's Data Manager view, predictions for the pool)
comes in as callables (``after_dispatch``), so ``al_loop`` keeps importing no
oracle (the one-way rule of ``docs/architecture.md``) and a driver works for
any asynchronous oracle.

Crash safety: the driver keeps nothing the store does not have. Each
transition is one :meth:`Controller.step` (one store transaction, as in pull
mode); the round closing by ``train_every`` is one ``set_state``; the events
the queue held when the process died were already recorded by the request
that brought them. On start the worker first reconciles (pulls every open
round) and then advances, so ``kill -9`` at any moment followed by a restart
leaves no duplicate round and no lost answer.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from al_loop.controller import Controller
from al_loop.errors import ConfigError, OracleError, RunLockedError
from al_loop.types import RoundState

#: ``oracle_state`` key of ``--train-every`` (kept with the run, so a restart goes on with it)
TRAIN_EVERY_KEY = "train_every"
#: ``oracle_state`` key of the oracle's user names (``{user id: name}``; the webhook names annotators with it)
ANNOTATORS_KEY = "annotators"
#: ``oracle_state`` key of the bulk prediction progress (``{"model_version", "written", "total"}``)
PREDICTIONS_KEY = "predictions"
#: default seconds between reconciling pulls
PULL_EVERY = 60.0


def check_settings(train_every: int | None, pull_every: float) -> None:
    """``--train-every`` and ``--pull-every`` as ``al-loop serve`` takes them (else one line)."""
    if train_every is not None and train_every < 1:
        raise ConfigError(f"--train-every must be a positive number of answers, got {train_every}")
    if not (math.isfinite(pull_every) and pull_every > 0):
        raise ConfigError(f"--pull-every must be a positive number of seconds, got {pull_every:g}")


class BackendDriver:
    """Advance one campaign run from events, in one worker thread.

    Parameters
    ----------
    controller : Controller
        The run's controller (its store, run id and oracle are used).
    train_every : int, optional
        Close the waiting round (train and select the next one) once it has
        this many answers, even before ``min_fraction`` of it is answered.
        Recorded in the run's ``oracle_state``; None: the recorded value, if any.
    pull_every : float
        Seconds between reconciling pulls of every open round.
    log : callable, optional
        One-line messages.
    after_dispatch : callable, optional
        ``(round) -> None``, called once a round's batch is at the oracle (and
        once at start for the waiting round); must be idempotent (Label
        Studio: the round's Data Manager view).
    lease : RunLease, optional
        Checked before each transition (another process took the run: the worker stops).
    """

    def __init__(self, controller: Controller, *, train_every: int | None = None, pull_every: float = PULL_EVERY,
                 log: Callable[[str], None] | None = None, after_dispatch: Callable[[int], None] | None = None,
                 lease: Any = None) -> None:
        check_settings(train_every, pull_every)
        self.ctl = controller
        self.store = controller.store
        self.run_id = controller.run_id
        self.log = log or (lambda _m: None)
        self.after_dispatch = after_dispatch
        self.lease = lease
        self.pull_every = float(pull_every)
        if train_every is not None:
            self.store.set_oracle_state(self.run_id, TRAIN_EVERY_KEY, str(int(train_every)))
        recorded = self.store.oracle_state(self.run_id, TRAIN_EVERY_KEY)
        self.train_every = int(recorded) if recorded else None
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()  # the start's reconcile and advance are done
        self._thread: threading.Thread | None = None
        self._announced: set[int] = set()
        self._names: dict[str, str] = {}
        #: the last error the worker met (one line), None after a clean pass
        self.last_error: str | None = None
        #: what the worker did so far: pulls, rounds dispatched, events handled
        self.counts = {"pulls": 0, "dispatched": 0, "events": 0}

    # -- the request side -------------------------------------------------------------
    def notify(self, result: Mapping[str, Any] | None = None, payload: Any = None) -> None:
        """Ask the worker to look at the run (after a webhook event; ``result`` from ``handle_event``).

        ``payload`` (the event itself) is not used: the request recorded it already.
        """
        self._queue.put(dict(result or {}))

    def start(self) -> None:
        """Start the worker thread (reconcile first, then advance)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._work, name=f"al-loop-backend-run-{self.run_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the worker after its current transition."""
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def drain(self) -> None:
        """Wait until the worker has done its start (reconcile, advance) and every notification given so far."""
        if self._thread is not None:
            self._ready.wait()
        self._queue.join()

    # -- the worker -------------------------------------------------------------------
    def _work(self) -> None:
        try:
            self._guarded(self.reconcile)
            self._guarded(self.advance)
        finally:
            self._ready.set()
        next_pull = time.monotonic() + self.pull_every
        while not self._stop.is_set():
            got: list[dict[str, Any] | None] = []
            try:
                got.append(self._queue.get(timeout=max(0.0, next_pull - time.monotonic())))
            except queue.Empty:
                pass
            while True:  # coalesce: one advance for every notification that is waiting
                try:
                    got.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                if any(g is None for g in got) or self._stop.is_set():
                    return
                events = [g for g in got if g is not None]
                self.counts["events"] += len(events)
                tick = time.monotonic() >= next_pull
                if tick:
                    self._guarded(self.reconcile)
                    next_pull = time.monotonic() + self.pull_every
                else:
                    pulls = sorted({int(r) for e in events for r in e.get("pull") or ()})
                    if pulls:
                        self._guarded(self.ctl.pull, pulls)
                self._guarded(self.advance, train=any(e.get("train") for e in events), tick=tick)
            finally:
                for _ in got:
                    self._queue.task_done()

    def _guarded(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn``; an oracle outage or error is one line and the next tick tries again."""
        try:
            out = fn(*args, **kwargs)
            self.last_error = None
            return out
        except RunLockedError as exc:
            self.log(f"run {self.run_id}: {exc}; the backend worker stops")
            self._stop.set()
        except OracleError as exc:
            line = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            if line != self.last_error:
                self.log(f"run {self.run_id}: {line}; state kept, the backend worker tries again in "
                         f"{self.pull_every:.0f} s or at the next event")
            self.last_error = line
        except Exception as exc:  # noqa: BLE001 - the worker must outlive one bad transition; said in one line
            line = f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
            self.log(f"run {self.run_id}: the backend worker failed ({line}); state kept, it tries again at "
                     "the next event or pull")
            self.last_error = line
        return None

    # -- the steps (callable directly; the worker calls them) ---------------------------------
    def open_rounds(self) -> list[int]:
        """Rounds a pull looks at: the waiting one and closed ones with items still unanswered."""
        return [r.idx for r in self.store.rounds(self.run_id)
                if r.state == RoundState.AWAITING.value
                or (r.state == RoundState.LABELED.value and self.store.round_progress(self.run_id, r.idx)["waiting"])]

    def reconcile(self, rounds: Iterable[int] | None = None) -> dict[str, int]:
        """Pull the open rounds (answers whose webhook never came, edits, deletions); counts of what changed."""
        if self.lease is not None:
            self.lease.check()
        self.record_annotators()
        got = self.ctl.pull(self.open_rounds() if rounds is None else rounds)
        self.counts["pulls"] += 1
        new = got["labeled"] + got["skipped"] + got["quarantined"] + got["deleted"]
        if new:
            self.log(f"run {self.run_id}: the reconciling pull found {new} change(s) no event had brought")
        return got

    def record_annotators(self) -> None:
        """Keep the oracle's user names (``annotator_names()``, if it has them) in ``oracle_state``.

        A webhook event names its annotator by user id only; with these names
        it records the e-mail a pull would record.
        """
        names_of = getattr(self.ctl.oracle, "annotator_names", None)
        if not callable(names_of):
            return
        names = {str(k): str(v) for k, v in dict(names_of()).items()}
        if names and names != self._names:
            self.store.set_oracle_state(self.run_id, ANNOTATORS_KEY, json.dumps(names, sort_keys=True))
            self._names = names

    def _answered(self, idx: int) -> tuple[int, int]:
        prog = self.store.round_progress(self.run_id, idx)
        return prog["labeled"] + prog["skipped"] + prog["quarantined"], prog["selected"]

    def advance(self, train: bool = False, tick: bool = True) -> int:
        """Step the run until it waits for answers again; the number of rounds dispatched.

        The waiting round closes when ``min_fraction`` of it is answered (the
        controller's rule), at ``train_every`` answers, or on ``train`` (the
        *Start training* button) when it has at least one answer. Without
        ``tick`` (an event woke the worker) a round that the answers recorded
        so far cannot close is left without asking the oracle.
        """
        dispatched = 0
        while not self._stop.is_set():
            if self.lease is not None:
                self.lease.check()
            if self.store.run(self.run_id).status != "running":
                return dispatched
            rnd = self.store.current_round(self.run_id)
            if rnd.state == RoundState.AWAITING.value:
                self._announce(rnd.idx)
                answered, selected = self._answered(rnd.idx)
                rule = None
                if train and answered > 0:
                    rule = "Start training was pressed"
                elif self.train_every is not None and answered >= self.train_every:
                    rule = f"--train-every {self.train_every}"
                if rule is not None:
                    self.store.set_state(self.run_id, rnd.idx, RoundState.AWAITING, RoundState.LABELED)
                    self.log(f"run {self.run_id} round {rnd.idx}: closed with {answered}/{selected} answered "
                             f"({rule})")
                    train = False
                    continue
                if not tick and answered < math.ceil(self.ctl.min_fraction * selected):
                    return dispatched
            result = self.ctl.step()
            if rnd.state == RoundState.SELECTED.value and result == "advanced":
                dispatched += 1
                self.counts["dispatched"] += 1
                self.log(f"run {self.run_id} round {rnd.idx}: sent {len(self.store.outbox(self.run_id, rnd.idx))} "
                         "item(s)")
            if result in ("waiting", "done"):
                return dispatched
        return dispatched

    def _announce(self, idx: int) -> None:
        """``after_dispatch`` once per process for a waiting round (idempotent on the oracle's side)."""
        if self.after_dispatch is None or idx in self._announced:
            return
        self.after_dispatch(idx)
        self._announced.add(idx)
