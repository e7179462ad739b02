"""Bulk predictions of ``al-loop serve`` against a real Label Studio, with the server's own task import as reference.

    source .ls-server/env && python benchmarks/backend_bulk.py            # 2,000 and 10,000 tasks
    python benchmarks/backend_bulk.py --sizes 10000 --chunk 1000

For each size N a fresh project (text tasks keyed like a campaign's) is made;
the rows (tasks per second, the same N for each) are:

- ``import tasks (reference)``: the server's own import, ``POST /api/projects/ID/import``
  in chunks of ``--chunk`` (default 5,000; what ``oracle.submit`` sends, without its look-ups);
- ``list tasks without predictions``: :func:`oracles.ls_backend.rounds.tasks_without`,
  the server-side filter that makes a pass resumable;
- ``write predictions``: :func:`oracles.ls_backend.rounds.write_predictions`, the whole pass
  (the listing, ``POST /api/projects/ID/import/predictions`` per chunk, the progress in the store);
  the model is left out (a fixed class), ``/predict``'s cost is ``benchmarks/backend_predict.py``'s.

The last column extrapolates each rate to 100,000 tasks (linear: the time of
N tasks times 100,000 / N). The project is deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path

CLASSES = ("cat", "dog", "bird")


def bench(n: int, chunk: int, url: str, key: str) -> list[tuple[str, float]]:
    from al_loop.config import RunConfig
    from al_loop.store import Store
    from al_loop.types import OutboxItem
    from oracles.label_studio import LabelStudioOracle, LabelStudioRetry, task_for
    from oracles.ls_backend.rounds import tasks_without, write_predictions

    campaign = uuid.uuid4().hex[:12]
    oracle = LabelStudioOracle.for_project(url, key, f"al-loop-bench-bulk-{campaign}", CLASSES, "text",
                                           campaign_id=campaign, retry=LabelStudioRetry(timeout=600))
    tmp = tempfile.mkdtemp()
    store = Store(Path(tmp) / "b.sqlite")
    run = store.create_run(RunConfig(dataset="iris", strategy="random", oracle="label_studio",
                                     oracle_params={"url": url, "title": "bench", "kind": "text",
                                                    "campaign_id": campaign}))
    rows: list[tuple[str, float]] = []
    try:
        tasks = [task_for(OutboxItem(run_id=run, round=0, pool_id=i, payload={"text": f"item {i}"}), CLASSES,
                          campaign) for i in range(n)]
        t0 = time.perf_counter()
        for start in range(0, n, chunk):
            oracle.client.projects.import_tasks(id=oracle.project_id, request=tasks[start:start + chunk])
        rows.append(("import tasks (reference)", time.perf_counter() - t0))
        version = f"al-loop run {run} round 1"
        t0 = time.perf_counter()
        found = tasks_without(oracle, run, version)
        rows.append(("list tasks without predictions", time.perf_counter() - t0))
        assert len(found) == n, (len(found), n)

        def predict(part: list[dict]) -> list[dict]:
            return [{"result": [{"from_name": "label", "to_name": "text", "type": "choices",
                                 "value": {"choices": [CLASSES[t["data"]["al_pool_id"] % 3]]}}], "score": 0.5}
                    for t in part]

        t0 = time.perf_counter()
        written = write_predictions(oracle, store, run, version, predict, chunk=chunk)
        rows.append(("write predictions", time.perf_counter() - t0))
        assert written == n, (written, n)
    finally:
        try:
            oracle.client.projects.delete(id=oracle.project_id)
        finally:
            oracle.close()
            store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,10000")
    parser.add_argument("--chunk", type=int, default=5000, help="tasks per request (rounds.CHUNK)")
    args = parser.parse_args()
    url, key = os.environ.get("LABEL_STUDIO_URL", ""), os.environ.get("LABEL_STUDIO_API_KEY", "")
    if not url or not key:
        raise SystemExit("set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (source the env file of scripts/labelstudio.sh)")
    print(f"Label Studio at {url}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"chunks of {args.chunk}")
    print("| tasks | step | seconds | tasks/s | 100,000 tasks (extrapolated) |")
    print("|---:|---|---:|---:|---:|")
    for n in (int(s) for s in args.sizes.split(",")):
        for name, seconds in bench(n, args.chunk, url, key):
            print(f"| {n:,} | {name} | {seconds:.1f} | {n / seconds:,.0f} | {seconds * 100_000 / n / 60:.1f} min |",
                  flush=True)


if __name__ == "__main__":
    main()
