"""Crash-point harness for Label Studio campaigns: kill -9 at every named point, restart, check.

Run ``python -m tests.harness.campaign_crash_table --trials 10`` (with
``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY`` set, see
``tests/integration/conftest.py``) for the full table. Each trial

1. creates a campaign on digits in a fresh project (forked child: ``init_campaign``),
2. forks a child that runs ``run_campaign`` with ``AL_LOOP_CRASH_AT=point@N``
   (``N`` chosen so that the kill happens in round 1 or 2), while this process
   answers every task with the ground truth, as a person would,
3. forks a second child that resumes the campaign to the end (3 rounds after
   the seed batch), still answered by this process,
4. checks the invariants:

- each item is at the oracle at most once (one task per key) and every sent
  item is there;
- every answered label is in the store exactly once, with the answer given,
  and the store holds no label nobody gave;
- rounds only move forward (the observed ``(round, state)`` never goes back;
  the rounds are contiguous, all but the last LABELED);
- ``PRAGMA integrity_check`` is ok;
- selections and labels equal ``al_loop.api.simulate`` (simulated oracle, same
  seed, batch and init): a crash changes nothing.

Children are forked from a single-threaded parent that has the imports loaded,
so a trial costs seconds instead of fresh interpreters.

Server rows (``--server-dir DIR``, a folder whose ``venv`` holds Label Studio,
e.g. a symlink to the shared server's): the campaign runs against a private
server started from DIR with ``scripts/labelstudio.sh``; when round 1 waits
for people, the server is killed with SIGKILL (the whole process group) and

- ``server restart, same port``: started again with ``LS_KEEP_DATA=1``; it must
  come back on its port and the running ``campaign run`` goes on by itself;
- ``server moved, set-url``: started again on another port (``LS_PORT``); the
  running ``campaign run`` is stopped, ``set_campaign_url`` points the store at
  the new URL (checked to be the same project) and a new run finishes.

The same invariants are checked (one task per key, no lost or invented label,
rounds only forward, selections and labels equal to the simulation).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

CRASH_POINTS = [
    "before_select_commit", "after_select_commit", "during_train", "after_train", "before_send", "after_send",
    "after_dispatch_commit", "after_awaiting", "after_pull", "after_apply", "after_labeled", "after_next_round",
]
#: points that a run started at round 0 AWAITING (seed batch answered) passes once in round 0
ROUND0_HITS = {"after_pull": 1, "after_apply": 1, "after_labeled": 1, "after_next_round": 1}
ROUNDS, BATCH, INIT = 3, 5, 10
CLASSES = [str(i) for i in range(10)]
STATE_ORDER = {"TRAINING": 0, "SELECTED": 1, "DISPATCHED": 2, "AWAITING": 3, "LABELED": 4}


def nth_for(point: str, trial: int) -> int:
    """The ``@N`` that puts the kill in round 1 (even trials) or round 2 (odd trials)."""
    return ROUND0_HITS.get(point, 0) + 1 + trial % 2


# --------------------------------------------------------------------------- a person, simulated


class TruthAnnotator:
    """Answers every task of a project with its ground truth (through the SDK, as the UI does).

    ``given`` maps task id -> ``(pool_id, label)`` of every answer given.
    """

    def __init__(self, url: str, api_key: str, project_id: int, pool: Any) -> None:
        from tests.integration.annotator import Annotator

        self.person = Annotator(url, api_key, project_id)
        self.classes = list(pool.classes)
        self.truth = dict(zip(pool.ids.tolist(), pool.hidden_labels(pool.ids).tolist(), strict=True))
        self.given: dict[int, tuple[int, str]] = {}

    def label_of(self, pool_id: int) -> str:
        return self.classes[int(self.truth[int(pool_id)])]

    def answer_pending(self, only: Callable[[Any], bool] | None = None) -> int:
        """Answer each task not answered yet (that ``only`` accepts); returns how many were answered now."""
        n = 0
        for task in self.person.all_tasks():
            if int(task.id) in self.given or (only is not None and not only(task)):
                continue
            pool_id = int(task.data["al_pool_id"])
            label = self.label_of(pool_id)
            self.person.client.annotations.create(id=int(task.id), result=self.person._result(label),
                                                  completed_by=self.person.user_id, was_cancelled=False)
            self.given[int(task.id)] = (pool_id, label)
            n += 1
        return n

    def keys(self) -> Counter[str]:
        """How many tasks carry each store key ``run:round:pool_id`` (a campaign id prefix is left out)."""
        return Counter(":".join(str(t.data.get("al_key")).split(":")[-3:]) for t in self.person.all_tasks())


# --------------------------------------------------------------------------- store views


def observe(db: str) -> tuple[int, int]:
    """``(round, state rank)`` of the store's current round (``(-1, -1)`` before there is one)."""
    con = sqlite3.connect(db, timeout=30)
    try:
        row = con.execute("SELECT idx, state FROM rounds ORDER BY idx DESC LIMIT 1").fetchone()
    finally:
        con.close()
    return (-1, -1) if row is None else (int(row[0]), STATE_ORDER[row[1]])


def snapshot(db: str) -> dict[str, list[tuple[Any, ...]]]:
    """Selections per round and labels, as comparable lists."""
    con = sqlite3.connect(db, timeout=30)
    try:
        return {
            "selections": con.execute("SELECT round, pool_id FROM selections ORDER BY round, pool_id").fetchall(),
            "labels": con.execute("SELECT pool_id, round, status, label FROM labels ORDER BY pool_id").fetchall(),
        }
    finally:
        con.close()


def violations(db: str, annotator: TruthAnnotator, observed: list[tuple[int, int]],
               reference: dict[str, list[tuple[Any, ...]]] | None = None) -> list[str]:
    """The broken invariants (module docstring) of a finished trial."""
    out: list[str] = []
    if any(b < a for a, b in zip(observed, observed[1:], strict=False)):
        out.append(f"rounds went back: {observed}")
    keys = annotator.keys()
    if any(n > 1 for n in keys.values()):
        out.append(f"task duplicated at the oracle: {sorted(k for k, n in keys.items() if n > 1)}")
    con = sqlite3.connect(db, timeout=30)
    try:
        if con.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            out.append("integrity_check")
        outbox = con.execute("SELECT run_id, round, pool_id, sent_at FROM outbox").fetchall()
        unsent = [f"{r}:{i}:{p}" for r, i, p, sent in outbox if sent is None]
        if unsent:
            out.append(f"outbox rows never sent: {unsent[:5]}")
        missing = [f"{r}:{i}:{p}" for r, i, p, _ in outbox if f"{r}:{i}:{p}" not in keys]
        if missing:
            out.append(f"sent items missing at the oracle: {missing[:5]}")
        if con.execute("SELECT count(*) FROM (SELECT pool_id FROM selections GROUP BY run_id, pool_id "
                       "HAVING count(*) > 1)").fetchone()[0]:
            out.append("an item selected twice")
        stored = con.execute("SELECT pool_id, status, label FROM labels").fetchall()
        rounds = con.execute("SELECT idx, state FROM rounds ORDER BY idx").fetchall()
    finally:
        con.close()
    by_pool: dict[int, list[tuple[str, str | None]]] = {}
    for pool_id, status, label in stored:
        by_pool.setdefault(int(pool_id), []).append((status, label))
    if any(len(v) > 1 for v in by_pool.values()):
        out.append("a label stored twice")
    given = dict(annotator.given.values())
    lost = sorted(p for p in given if p not in by_pool)
    if lost:
        out.append(f"answered labels missing from the store: {lost[:5]}")
    wrong = sorted(p for p, lab in given.items() if p in by_pool and by_pool[p][0] != ("labeled", lab))
    if wrong:
        out.append(f"stored labels differ from the answers: {wrong[:5]}")
    extra = sorted(p for p in by_pool if p not in given)
    if extra:
        out.append(f"labels in the store that nobody gave: {extra[:5]}")
    if [r[0] for r in rounds] != list(range(len(rounds))) or any(s != "LABELED" for _, s in rounds[:-1]):
        out.append(f"rounds not contiguous or an earlier round not LABELED: {rounds}")
    if reference is not None:
        snap = snapshot(db)
        for key in ("selections", "labels"):
            if snap[key] != reference[key]:
                out.append(f"{key} differ from the uninterrupted simulation")
    return out


# --------------------------------------------------------------------------- forked children


def fork(fn: Callable[[], None], crash_at: str | None = None,
         while_running: Callable[[], None] | None = None, timeout: float = 300.0) -> int:
    """Run ``fn`` in a forked child; call ``while_running`` every 0.15 s until it exits.

    Returns the exit status (``-9`` when it was killed by SIGKILL). The parent
    must be single-threaded (fork safety).
    """
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            if crash_at:
                os.environ["AL_LOOP_CRASH_AT"] = crash_at
            else:
                os.environ.pop("AL_LOOP_CRASH_AT", None)
            fn()
        except BaseException:  # pragma: no cover - reported by the exit code
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -999
        if while_running is not None:
            while_running()
        time.sleep(0.15)


def reference_for(tmp: str, seed: int) -> dict[str, list[tuple[Any, ...]]]:
    """Selections and labels of ``al_loop.api.simulate`` with the campaign's settings."""
    db = str(Path(tmp) / f"reference-{seed}.sqlite")

    def sim() -> None:
        from al_loop import api

        api.simulate(db, dataset="digits", strategies=["margin"], seeds=[seed], rounds=ROUNDS, batch=BATCH, init=INIT)

    assert fork(sim) == 0, "the reference simulation failed"
    return snapshot(db)


def delete_project(url: str, api_key: str, project_id: int) -> None:
    from label_studio_sdk import LabelStudio

    try:
        LabelStudio(base_url=url, api_key=api_key, max_retries=0).projects.delete(id=project_id)
    except Exception:  # noqa: BLE001 - cleanup only
        pass


def run_trial(point: str | None, trial: int, tmp: str, url: str, api_key: str,
              reference: dict[str, list[tuple[Any, ...]]] | None, seed: int = 0,
              log: Callable[[str], None] = print) -> tuple[bool, list[str]]:
    """One trial; returns ``(killed at the point, violations)``."""
    from al_loop.api import build_pool
    from al_loop.campaign import CampaignOptions, init_campaign, run_campaign
    from al_loop.store import Store

    db = str(Path(tmp) / f"{point}-{trial}-{uuid.uuid4().hex[:6]}.sqlite")
    title = f"al-loop-crash-{point}-{trial}-{uuid.uuid4().hex[:8]}"
    target = INIT + ROUNDS * BATCH
    options = CampaignOptions(url=url, title=title, kind="image")
    env_key = os.environ.get("LABEL_STUDIO_API_KEY")
    os.environ["LABEL_STUDIO_API_KEY"] = api_key
    project_id = None
    try:
        def init() -> None:
            init_campaign(db, data="digits", classes=CLASSES, strategy="margin", batch=BATCH, init=INIT, seed=seed,
                          options=options)

        code = fork(init)
        if code != 0:
            return False, [f"campaign init failed ({code})"]
        store = Store(db, readonly=True)
        try:
            (run_id,) = [r.id for r in store.runs()]
            project_id = int(store.oracle_state(run_id, "project_id") or -1)
            pool = build_pool(store.config(run_id))
        finally:
            store.close()
        person = TruthAnnotator(url, api_key, project_id, pool)
        observed = [observe(db)]

        def people() -> None:
            person.answer_pending()
            observed.append(observe(db))

        def run() -> None:
            run_campaign(db, until_labels=target, poll=0.1)

        killed = False
        if point is not None:
            code = fork(run, f"{point}@{nth_for(point, trial)}", people)
            killed = code == -signal.SIGKILL
            if code not in (0, -signal.SIGKILL):
                return killed, [f"the run with the crash point failed ({code})"]
            observed.append(observe(db))
        code = fork(run, None, people)
        observed.append(observe(db))
        if code != 0:
            return killed, [f"the restarted run failed ({code})"]
        return killed, violations(db, person, observed, reference)
    finally:
        if env_key is None:
            os.environ.pop("LABEL_STUDIO_API_KEY", None)
        else:
            os.environ["LABEL_STUDIO_API_KEY"] = env_key
        if project_id is not None:
            delete_project(url, api_key, project_id)


SERVER_EVENTS = ["server restart, same port", "server moved, set-url"]
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "labelstudio.sh"


class PrivateServer:
    """A Label Studio started from ``dir`` with ``scripts/labelstudio.sh`` (stopped by its pid group)."""

    def __init__(self, folder: str | Path) -> None:
        self.dir = Path(folder)

    def script(self, command: str, **env: str) -> None:
        import subprocess

        clean = {k: v for k, v in os.environ.items() if k not in ("LS_PORT", "LS_KEEP_DATA")}
        done = subprocess.run(["bash", str(SCRIPT), command, str(self.dir)], capture_output=True, text=True,
                              timeout=240, env={**clean, **env})
        if done.returncode != 0:
            raise RuntimeError(f"labelstudio.sh {command} failed: {done.stderr.strip()[-500:]}")

    @property
    def url(self) -> str:
        return dict(w.split("=", 1) for w in (self.dir / "env").read_text().split()[1:])["LABEL_STUDIO_URL"]

    @property
    def key(self) -> str:
        return (self.dir / "token").read_text().strip()

    def kill(self) -> None:
        """SIGKILL to the server's process group (a crash), then wait until it is gone."""
        pid = int((self.dir / "pid").read_text())
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_server_trial(event: str, trial: int, tmp: str, server: PrivateServer,
                     reference: dict[str, list[tuple[Any, ...]]] | None, seed: int = 0,
                     log: Callable[[str], None] = print) -> tuple[bool, list[str]]:
    """One trial of a server event; returns ``(the event happened as intended, violations)``."""
    from al_loop.api import build_pool
    from al_loop.campaign import CampaignOptions, init_campaign, run_campaign, set_campaign_url
    from al_loop.store import Store

    db = str(Path(tmp) / f"server-{trial}-{uuid.uuid4().hex[:6]}.sqlite")
    stop_flag = Path(db + ".stop")
    target = INIT + ROUNDS * BATCH
    url = server.url
    options = CampaignOptions(url=url, title=f"al-loop-server-{trial}-{uuid.uuid4().hex[:8]}", kind="image")
    env_key = os.environ.get("LABEL_STUDIO_API_KEY")
    os.environ["LABEL_STUDIO_API_KEY"] = server.key
    try:
        def init() -> None:
            init_campaign(db, data="digits", classes=CLASSES, strategy="margin", batch=BATCH, init=INIT, seed=seed,
                          options=options)

        if (code := fork(init)) != 0:
            return False, [f"campaign init failed ({code})"]
        store = Store(db, readonly=True)
        try:
            (run_id,) = [r.id for r in store.runs()]
            project_id = int(store.oracle_state(run_id, "project_id") or -1)
            pool = build_pool(store.config(run_id))
        finally:
            store.close()
        person = TruthAnnotator(url, server.key, project_id, pool)
        observed = [observe(db)]
        happened: list[str] = []

        def people() -> None:
            # round 1 is at the server (people would answer it now): the server crashes. Not "== AWAITING": a
            # person may answer round 1 while it is still DISPATCHED, and the round then never shows AWAITING here
            if not happened and observe(db) >= (1, 2):
                server.kill()
                if event == SERVER_EVENTS[0]:
                    server.script("start", LS_KEEP_DATA="1")
                    happened.append("same" if server.url == url else f"moved to {server.url}")
                else:
                    server.script("start", LS_KEEP_DATA="1", LS_PORT=str(_free_port()))
                    happened.append("moved" if server.url != url else "same")
                    stop_flag.touch()  # the loop cannot reach the old URL: stop it, then set-url
                    from tests.integration.annotator import Annotator

                    person.person = Annotator(server.url, server.key, project_id)  # the browser moves too
                    return
            if not stop_flag.exists() or event == SERVER_EVENTS[0]:
                person.answer_pending()
            observed.append(observe(db))

        def run() -> None:
            run_campaign(db, until_labels=target, poll=0.1, should_stop=stop_flag.exists)

        code = fork(run, None, people)
        observed.append(observe(db))
        if code != 0:
            return bool(happened), [f"the run during the server event failed ({code})"]
        intended = happened == (["same"] if event == SERVER_EVENTS[0] else ["moved"])
        if not happened:
            return False, ["the server event never happened (the run ended first)"]
        if event == SERVER_EVENTS[1]:
            new_url = server.url

            def move() -> None:
                set_campaign_url(db, new_url)

            if (code := fork(move)) != 0:
                return intended, [f"set-url failed ({code})"]
            stop_flag.unlink()
            code = fork(run, None, people)
            observed.append(observe(db))
            if code != 0:
                return intended, [f"the run after set-url failed ({code})"]
        return intended, violations(db, person, observed, reference)
    finally:
        if env_key is None:
            os.environ.pop("LABEL_STUDIO_API_KEY", None)
        else:
            os.environ["LABEL_STUDIO_API_KEY"] = env_key


def run_server_table(trials: int, server_dir: str, log: Callable[[str], None] = print,
                     events: list[str] | None = None) -> list[tuple[str, int, int, int]]:
    """Rows ``(event, trials, trials where it happened as intended, trials with violations)``.

    Starts a private server from ``server_dir`` (fresh data) and stops it at the end.
    """
    import al_loop.api  # noqa: F401  (imported once in the parent; children inherit it)
    import al_loop.campaign  # noqa: F401
    import oracles.label_studio  # noqa: F401
    import tests.integration.annotator  # noqa: F401

    server = PrivateServer(server_dir)
    server.script("start", LS_PORT=str(_free_port()))
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            refs = {seed: reference_for(tmp, seed) for seed in sorted({t % 3 for t in range(trials)})}
            for event in events or SERVER_EVENTS:
                happened = bad = 0
                for trial in range(trials):
                    ok, broken = run_server_trial(event, trial, tmp, server, refs[trial % 3], seed=trial % 3,
                                                  log=log)
                    happened += ok
                    if broken:
                        bad += 1
                        log(f"{event} trial {trial}: {broken}")
                rows.append((event, trials, happened, bad))
                log(f"{event}: {trials} trial(s), as intended {happened}, violations {bad}")
    finally:
        server.kill()
        (Path(server_dir) / "pid").unlink(missing_ok=True)
    return rows


def run_table(trials: int, points: list[str], url: str, api_key: str,
              log: Callable[[str], None] = print) -> list[tuple[str, int, int, int]]:
    """Rows ``(point, trials, killed there, trials with violations)``."""
    import al_loop.api  # noqa: F401  (imported once in the parent; children inherit it)
    import al_loop.campaign  # noqa: F401
    import oracles.label_studio  # noqa: F401
    import tests.integration.annotator  # noqa: F401

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        refs = {seed: reference_for(tmp, seed) for seed in sorted({t % 3 for t in range(trials)})}
        for point in points:
            reached = bad = 0
            for trial in range(trials):
                seed = trial % 3
                killed, broken = run_trial(point, trial, tmp, url, api_key, refs[seed], seed=seed, log=log)
                reached += killed
                if not killed:
                    log(f"{point} trial {trial}: the crash point was not reached")
                if broken:
                    bad += 1
                    log(f"{point} trial {trial}: {broken}")
            rows.append((point, trials, reached, bad))
            log(f"{point}: {trials} trial(s), killed there {reached}, violations {bad}")
    return rows


def format_table(rows: list[tuple[str, int, int, int]]) -> str:
    lines = ["| crash point | trials | killed there | violations |", "|---|---|---|---|"]
    lines += [f"| {point} | {n} | {reached} | {bad} |" for point, n, reached, bad in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--points", nargs="*", default=CRASH_POINTS)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--server-dir", default=None,
                        help="folder with a Label Studio venv: add the server restart / moved rows (private server)")
    parser.add_argument("--server-trials", type=int, default=None, help="trials per server row (default --trials)")
    args = parser.parse_args()
    if args.server_dir and not args.points:  # only the server rows
        rows = run_server_table(args.server_trials or args.trials, args.server_dir,
                                log=lambda m: print(m, file=sys.stderr))
        print(format_table(rows).replace("crash point", "server event").replace("killed there", "as intended"))
        return 1 if any(r[3] or r[2] < r[1] for r in rows) else 0
    url, key = os.environ.get("LABEL_STUDIO_URL", ""), os.environ.get("LABEL_STUDIO_API_KEY", "")
    if not url or not key:
        print("set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (scripts/labelstudio.sh start DIR; source DIR/env)",
              file=sys.stderr)
        return 2
    rows = run_table(args.trials, args.points, url.rstrip("/"), key, log=lambda m: print(m, file=sys.stderr))
    if args.server_dir:
        rows += run_server_table(args.server_trials or args.trials, args.server_dir,
                                 log=lambda m: print(m, file=sys.stderr))
    if args.json:
        args.json.write_text(json.dumps(rows))
    print(format_table(rows))
    return 1 if any(r[3] or r[2] < r[1] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
