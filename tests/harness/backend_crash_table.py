"""Crash-point harness for backend-mode campaigns: ``kill -9`` of ``al-loop serve`` at every named point.

Run ``python -m tests.harness.backend_crash_table --server-dir DIR --trials 10``
(``DIR`` holds a Label Studio venv, e.g. a symlink ``DIR/venv`` to the shared
server's) for the full table. The harness starts a private Label Studio from
``DIR`` that may call 127.0.0.1 (``SSRF_PROTECTION_ENABLED=false``,
``ML_BLOCK_LOCAL_IP=false``: Label Studio posts its webhooks to ``serve``) and
stops it by its pid group at the end. Each trial

1. creates a backend-mode campaign on digits (``campaign init --mode backend``,
   a forked child): the project, its webhook to ``serve`` and the seed batch;
2. starts ``al-loop serve`` (a real process) with ``AL_LOOP_CRASH_AT=point@N``
   while this process answers every task of rounds ``0..ROUNDS`` with the
   ground truth through the API, as a person would (a round once ``serve``
   wrote its bulk predictions, or ``PREDICTION_WAIT`` seconds after it appeared), so each answer reaches
   ``serve`` as Label Studio's own webhook call (or fails to, while ``serve``
   is dead: Label Studio keeps the annotation and ``serve`` must find it);
3. when ``serve`` died by SIGKILL, starts it again without a crash point;
   stops it (SIGTERM) once round ``ROUNDS + 1`` waits for people;
4. checks the invariants of :func:`tests.harness.campaign_crash_table.violations`
   (one task per key at the server and every sent item there, every answer in
   the store once and as given, no label nobody gave, rounds only forward and
   contiguous, ``PRAGMA integrity_check``) and that the selections of rounds
   ``0..ROUNDS`` and the labels equal ``al_loop.api.simulate`` (simulated
   oracle, same seed, batch and init): a crash changes nothing. Backend
   specifics: no round's Data Manager view twice, and no task holds two
   predictions of one model version.

Crash points: the controller's (reached through the backend driver's steps)
and the backend's own, ``webhook_after_record`` (an answer recorded, the
webhook not answered yet), ``after_round_view`` (the round's view made, its
bulk predictions not yet) and ``after_prediction_chunk`` (a chunk of bulk
predictions written at the server, its progress not recorded).

The server row ``label studio restart`` keeps ``serve`` running and kills
Label Studio (SIGKILL to its process group) once round 1 is at the server,
starts it again on the same port with its data, and checks the same
invariants: ``serve`` rides out the outage and the campaign finishes.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.campaign_crash_table import (
    BATCH,
    CLASSES,
    INIT,
    ROUNDS,
    PrivateServer,
    TruthAnnotator,
    _free_port,
    delete_project,
    fork,
    format_table,
    observe,
    snapshot,
    violations,
)

#: the points a backend campaign passes (the first ones are the controller's, the last three the backend's)
BACKEND_POINTS = [
    "before_select_commit", "after_select_commit", "during_train", "before_send", "after_send",
    "after_dispatch_commit", "after_pull", "after_apply", "after_labeled",
    "webhook_after_record", "after_round_view", "after_prediction_chunk",
]
SERVER_EVENTS = ["label studio restart"]
#: Label Studio may call local addresses (webhooks and the ML backend at 127.0.0.1)
ALLOW_LOCAL = {"SSRF_PROTECTION_ENABLED": "false", "ML_BLOCK_LOCAL_IP": "false"}
KEY_ENV = "AL_LOOP_BACKEND_HARNESS_KEY"
#: seconds a trial may take before it is reported as hung
TRIAL_TIMEOUT = 600.0
#: seconds people wait for a round's predictions before they answer it anyway (a crash may have cut them short)
PREDICTION_WAIT = 10.0


@dataclass(frozen=True)
class Plan:
    """The campaign of a trial: seed batch, batch size, rounds answered after the seed batch."""

    init: int = INIT
    batch: int = BATCH
    rounds: int = ROUNDS

    @property
    def labels(self) -> int:
        return self.init + self.rounds * self.batch


def reference_for(tmp: str, seed: int, plan: Plan = Plan()) -> dict[str, list[tuple[Any, ...]]]:
    """Selections and labels of ``al_loop.api.simulate`` with the campaign's settings."""
    db = str(Path(tmp) / f"reference-{seed}-{plan.init}-{plan.batch}-{plan.rounds}.sqlite")

    def sim() -> None:
        from al_loop import api

        api.simulate(db, dataset="digits", strategies=["margin"], seeds=[seed], rounds=plan.rounds,
                     batch=plan.batch, init=plan.init)

    assert fork(sim) == 0, "the reference simulation failed"
    return snapshot(db)


def nth_for(point: str, trial: int) -> int:
    """Which pass of ``point`` kills ``serve``: the 1st, 2nd or 3rd (rounds 0 to 2, depending on the point)."""
    return 1 + trial % 3


class BackendServer(PrivateServer):
    """The private Label Studio of the harness: allowed to call local addresses."""

    def script(self, command: str, **env: str) -> None:
        super().script(command, **{**ALLOW_LOCAL, **env})


class Serve:
    """One ``al-loop serve`` process of a trial (its own session: killed with its children)."""

    def __init__(self, db: str, port: int, key: str, log_path: Path) -> None:
        self.db, self.port, self.key, self.log_path = db, port, key, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, crash_at: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k != "AL_LOOP_CRASH_AT"}
        env[KEY_ENV] = self.key
        if crash_at:
            env["AL_LOOP_CRASH_AT"] = crash_at
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from al_loop.cli import main; main()", "serve", "--db", self.db,
                 "--port", str(self.port), "--pull-every", "5"],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.code()
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(30)


def predicted(db: str, run_id: int) -> str | None:
    """The model version of the newest bulk predictions serve recorded (``oracle_state`` ``predictions``)."""
    import json

    con = sqlite3.connect(db, timeout=30)
    try:
        row = con.execute("SELECT value FROM oracle_state WHERE run_id = ? AND key = 'predictions'",
                          (run_id,)).fetchone()
    finally:
        con.close()
    try:
        return json.loads(row[0]).get("model_version") if row else None
    except (ValueError, AttributeError):
        return None


def backend_extras(db: str, url: str, key: str, project_id: int, run_id: int) -> list[str]:
    """The backend's own invariants: one view per round, at most one prediction per task and model version."""
    import httpx

    out: list[str] = []
    headers = {"Authorization": f"Token {key}"}
    views = httpx.get(f"{url}/api/dm/views?project={project_id}", headers=headers, timeout=60).json()
    titles = Counter(v["data"].get("title") for v in views)
    twice = sorted(t for t, n in titles.items() if n > 1 and str(t).startswith("al-loop round"))
    if twice:
        out.append(f"views made twice: {twice}")
    tasks = httpx.get(f"{url}/api/tasks?project={project_id}&page_size=1000&fields=all", headers=headers,
                      timeout=120).json()["tasks"]
    doubled = [t["id"] for t in tasks
               if any(n > 1 for n in Counter(p["model_version"] for p in t.get("predictions") or []).values())]
    if doubled:
        out.append(f"tasks with two predictions of one model version: {doubled[:5]}")
    return out


def compare(db: str, reference: dict[str, list[tuple[Any, ...]]], rounds: int = ROUNDS) -> list[str]:
    """Selections of rounds ``0..rounds`` and all labels against the uninterrupted simulation."""
    con = sqlite3.connect(db, timeout=30)
    try:
        sel = con.execute("SELECT round, pool_id FROM selections WHERE round <= ? ORDER BY round, pool_id",
                          (rounds,)).fetchall()
        labels = con.execute("SELECT pool_id, round, status, label FROM labels ORDER BY pool_id").fetchall()
    finally:
        con.close()
    out = []
    if sel != [r for r in reference["selections"] if r[0] <= rounds]:
        out.append("selections differ from the uninterrupted simulation")
    if labels != reference["labels"]:
        out.append("labels differ from the uninterrupted simulation")
    return out


def run_trial(point: str | None, trial: int, tmp: str, server: BackendServer,
              reference: dict[str, list[tuple[Any, ...]]], seed: int = 0,
              log: Callable[[str], None] = print, plan: Plan = Plan(),
              event: str | None = None) -> tuple[bool, list[str]]:
    """One trial: a crash at ``point``, or the server ``event``, or (both None) neither.

    Returns ``(the crash or event happened as intended, violations)``.
    """
    from al_loop.api import build_pool
    from al_loop.campaign import CampaignOptions, init_campaign
    from al_loop.store import Store

    tag = f"{point or event or 'plain'}-{trial}-{uuid.uuid4().hex[:6]}".replace(" ", "_")
    db = str(Path(tmp) / f"{tag}.sqlite")
    port = _free_port()
    url, key = server.url, server.key
    options = CampaignOptions(url=url, title=f"al-loop-backend-{tag}", kind="image", api_key_env=KEY_ENV,
                              mode="backend", backend_url=f"http://127.0.0.1:{port}")
    os.environ[KEY_ENV] = key
    project_id = None
    serve = Serve(db, port, key, Path(tmp) / f"{tag}.log")
    try:
        def init() -> None:
            init_campaign(db, data="digits", classes=CLASSES, strategy="margin", batch=plan.batch, init=plan.init,
                          seed=seed, options=options)

        if (code := fork(init)) != 0:
            return False, [f"campaign init failed ({code})"]
        store = Store(db, readonly=True)
        try:
            (run_id,) = [r.id for r in store.runs()]
            project_id = int(store.oracle_state(run_id, "project_id") or -1)
            pool = build_pool(store.config(run_id))
        finally:
            store.close()
        person = TruthAnnotator(url, key, project_id, pool)
        observed = [observe(db)]
        serve.start(f"{point}@{nth_for(point, trial)}" if point else None)
        killed = restarted = False
        happened: list[str] = []
        deadline = time.monotonic() + TRIAL_TIMEOUT
        last = plan.rounds
        first_seen: dict[int, float] = {}

        def ready(idx: int) -> bool:
            """People answer round ``idx`` once serve wrote its predictions (at most PREDICTION_WAIT s later)."""
            if idx > last:
                return False
            if idx == 0:  # no model yet: round 0 gets no predictions
                return True
            since = first_seen.setdefault(idx, time.monotonic())
            return predicted(db, run_id) == f"al-loop run {run_id} round {idx}" or (
                time.monotonic() - since > PREDICTION_WAIT)

        while observe(db) < (last + 1, 3):  # until the round after the last one answered waits for people
            if time.monotonic() > deadline:
                return killed, [f"no round {last + 1} within {TRIAL_TIMEOUT:.0f} s (see {serve.log_path})"]
            code = serve.code()
            if code is not None:
                if code != -signal.SIGKILL or restarted:
                    return killed, [f"serve exited with {code} (see {serve.log_path})"]
                killed = restarted = True
                serve.start()
            if event == SERVER_EVENTS[0] and not happened and observe(db) >= (1, 2):
                server.kill()  # round 1 is at the server: Label Studio crashes, serve keeps running
                time.sleep(2.0)
                server.script("start", LS_KEEP_DATA="1")
                happened.append("same" if server.url == url else f"moved to {server.url}")
            person.answer_pending(only=lambda t: ready(int(t.data.get("al_round", 0))))
            observed.append(observe(db))
            time.sleep(0.2)
        code = serve.stop()
        observed.append(observe(db))
        if code not in (0, 143, -signal.SIGTERM):
            return killed, [f"serve did not stop cleanly ({code}, see {serve.log_path})"]
        broken = violations(db, person, observed, None) + compare(db, reference, last)
        broken += backend_extras(db, url, key, project_id, run_id)
        intended = killed if point else (happened == ["same"] if event else True)
        if broken:
            log(f"{tag}: serve log {serve.log_path}")
        return intended, broken
    finally:
        serve.stop()
        os.environ.pop(KEY_ENV, None)
        if project_id is not None:
            delete_project(url, key, project_id)


def run_table(trials: int, points: list[str], server_dir: str, events: list[str] | None = None,
              log: Callable[[str], None] = print, keep: str | None = None) -> list[tuple[str, int, int, int]]:
    """Rows ``(point or event, trials, killed there / as intended, trials with violations)``.

    Starts the private server from ``server_dir`` (fresh data) and stops it at the end.
    """
    import al_loop.api  # noqa: F401  (imported once in the parent; children inherit it)
    import al_loop.campaign  # noqa: F401
    import oracles.label_studio  # noqa: F401
    import tests.integration.annotator  # noqa: F401

    server = BackendServer(server_dir)
    server.script("start", LS_PORT=str(_free_port()))
    rows = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            tmp = keep or scratch
            refs = {seed: reference_for(tmp, seed) for seed in sorted({t % 3 for t in range(trials)})}
            for point in [*points, *(events if events is not None else SERVER_EVENTS)]:
                as_point, event = (point, None) if point in BACKEND_POINTS else (None, point)
                reached = bad = 0
                for trial in range(trials):
                    ok, broken = run_trial(as_point, trial, tmp, server, refs[trial % 3], seed=trial % 3, log=log,
                                           event=event)
                    reached += ok
                    if not ok:
                        log(f"{point} trial {trial}: {'not killed there' if as_point else 'not as intended'}")
                    if broken:
                        bad += 1
                        log(f"{point} trial {trial}: {broken}")
                rows.append((point, trials, reached, bad))
                log(f"{point}: {trials} trial(s), killed there / as intended {reached}, violations {bad}")
    finally:
        server.kill()
        (Path(server_dir) / "pid").unlink(missing_ok=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--server-dir", required=True, help="folder whose venv holds Label Studio")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--points", nargs="*", default=BACKEND_POINTS)
    parser.add_argument("--events", nargs="*", default=SERVER_EVENTS)
    parser.add_argument("--keep", default=None, help="keep the stores and serve logs in this folder")
    args = parser.parse_args()
    unknown = [p for p in args.points if p not in BACKEND_POINTS] + [e for e in args.events if e not in SERVER_EVENTS]
    if unknown:
        print(f"unknown crash point or event: {', '.join(unknown)}", file=sys.stderr)
        return 2
    rows = run_table(args.trials, args.points, args.server_dir, args.events, log=lambda m: print(m, file=sys.stderr),
                     keep=args.keep)
    print(format_table(rows).replace("killed there", "killed there / as intended"))
    return 1 if any(r[3] or r[2] < r[1] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
