"""``al-loop serve``'s ``/predict`` for a batch of tasks, against the learner's ``predict_proba`` on the same items.

    python benchmarks/backend_predict.py                  # digits, logreg, 100 tasks, 30 repeats
    python benchmarks/backend_predict.py --tasks 100 --strategy kcenter --repeats 50

A campaign-like run (oracle ``label_studio``, the simulated oracle answering at
once) is driven to round 2 with a batch of ``--tasks``; the app of
:func:`oracles.ls_backend.app.create_app` runs under a real uvicorn on
127.0.0.1 and is called over HTTP (keep-alive) with those tasks. Rows (median
and max of ``--repeats``, milliseconds):

- ``reference``: the round's fitted learner, ``predict_proba`` on the same ids, in-process;
- ``/predict, new ids``: the model view exists (fitted), the tasks' probabilities are not
  cached yet (cleared before each call): parse, check each task, one ``predict_proba``,
  ranks from the store, the JSON answer;
- ``/predict, same ids``: the call repeated (probabilities cached per pool id);
- ``/predict, first call``: once, the model fitted from the store in the call (what
  ``serve`` does before it listens, so Label Studio never waits for it).
"""

from __future__ import annotations

import argparse
import platform
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path


def campaign_store(path: Path, strategy: str, batch: int):
    from al_loop import api
    from al_loop.config import RunConfig
    from al_loop.controller import Controller
    from al_loop.store import Store
    from oracles.simulated import SimulatedOracle

    config = api.stamp_inputs(RunConfig(dataset="digits", strategy=strategy, seed=0, rounds=1000, batch=batch,
                                        init=40, oracle="label_studio",
                                        oracle_params={"url": "http://127.0.0.1:1", "title": "bench",
                                                       "kind": "image", "campaign_id": "bench0000001"}))
    store = Store(path)
    run = store.create_run(config)
    pool = api.build_pool(config)
    ctl = Controller(store, run, pool, api.build_learner(config.learner, pool), api.build_strategy(strategy, {}),
                     SimulatedOracle(pool, 0))
    while not (store.current_round(run).idx == 2 and store.current_round(run).state == "AWAITING"):
        ctl.step()
    return store, run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--strategy", default="margin")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    import httpx
    import numpy as np
    import uvicorn

    from oracles.ls_backend.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        store, run = campaign_store(Path(tmp) / "bench.sqlite", args.strategy, args.tasks)
        batch = [s for s in store.selections(run) if s.round == 2]
        tasks = [{"id": i, "data": {"image": "x", "al_campaign": "bench0000001", "al_run": run,
                                    "al_pool_id": s.pool_id}} for i, s in enumerate(batch)]
        body = {"tasks": tasks, "project": "1.1", "label_config": None, "params": {}}
        app = create_app(store, run)
        predictor = app.state.predictor
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        rows: list[tuple[str, list[float]]] = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            t0 = time.perf_counter()
            first = http.post("/predict", json=body)
            first_ms = (time.perf_counter() - t0) * 1000
            assert first.status_code == 200 and len(first.json()["results"]) == len(tasks), first.text
            view = predictor.fitted()
            ids = np.asarray([s.pool_id for s in batch], dtype=np.int64)
            ref = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                view.learner.predict_proba(predictor.pool, ids)
                ref.append((time.perf_counter() - t0) * 1000)
            rows.append(("reference: learner.predict_proba", ref))
            fresh = []
            for _ in range(args.repeats):
                view.best.clear()
                t0 = time.perf_counter()
                reply = http.post("/predict", json=body)
                fresh.append((time.perf_counter() - t0) * 1000)
                assert reply.status_code == 200
            rows.append(("/predict, new ids", fresh))
            same = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                reply = http.post("/predict", json=body)
                same.append((time.perf_counter() - t0) * 1000)
            rows.append(("/predict, same ids", same))
            rows.append(("/predict, first call (fits the model)", [first_ms]))
        server.should_exit = True
        thread.join(10)
        store.close()
    print(f"{args.tasks} tasks, digits ({len(predictor.pool)} pool items), learner logreg, strategy "
          f"{args.strategy}, round 2; {platform.processor() or platform.machine()}, python "
          f"{platform.python_version()}")
    print(f"| {'variant':<40} | {'median ms':>10} | {'max ms':>8} |")
    print(f"|{'-' * 42}|{'-' * 12}|{'-' * 10}|")
    for name, times in rows:
        print(f"| {name:<40} | {statistics.median(times):>10.1f} | {max(times):>8.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
