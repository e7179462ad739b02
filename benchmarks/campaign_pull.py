"""Pull time per round of a campaign: the incremental pull against the old full pull, in the same run.

Needs a Label Studio server (``source DIR/env`` after ``scripts/labelstudio.sh start DIR``). A campaign
on digits (``--batch`` items a round, a simulated person answering every task with its ground truth)
runs ``--rounds`` rounds; before each training the controller's pull (:meth:`Controller._pull_all`:
the round just closed, rounds with unanswered items, every closed round only each ``full_pull_every``
seconds) is timed, and every ``--every`` rounds the old full pull (``collect`` of every earlier round)
is timed too. The project is deleted at the end.

    python benchmarks/campaign_pull.py --rounds 50 --batch 2 --every 5
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--init", type=int, default=10)
    parser.add_argument("--every", type=int, default=5, help="time the old full pull every N rounds")
    args = parser.parse_args()

    from al_loop.api import build_learner, build_pool, build_strategy
    from al_loop.campaign import CampaignOptions, _oracle_for, init_campaign
    from al_loop.controller import Controller
    from al_loop.store import Store
    from tests.harness.campaign_crash_table import CLASSES, TruthAnnotator, delete_project

    url, key = os.environ["LABEL_STUDIO_URL"], os.environ["LABEL_STUDIO_API_KEY"]
    db = str(Path(tempfile.mkdtemp()) / "pull.sqlite")
    run_id = init_campaign(db, data="digits", classes=CLASSES, strategy="margin", batch=args.batch, init=args.init,
                           options=CampaignOptions(url=url, title=f"al-loop-bench-pull-{uuid.uuid4().hex[:8]}"))
    store = Store(db)
    oracle = _oracle_for(store, run_id, key)
    project = oracle.project_id  # type: ignore[attr-defined]
    config = store.config(run_id)
    pool = build_pool(config)
    person = TruthAnnotator(url, key, project, pool)
    ctl = Controller(store, run_id, pool, build_learner(config.learner, pool),
                     build_strategy(config.strategy, config.strategy_params), oracle)
    times: dict[int, float] = {}
    pull = ctl._pull_all

    def timed(upto: int) -> None:
        t0 = time.perf_counter()
        pull(upto)
        times[upto] = time.perf_counter() - t0

    ctl._pull_all = timed  # type: ignore[method-assign]
    rows = []
    try:
        while store.current_round(run_id).idx <= args.rounds:
            result = ctl.step()
            if result == "done":
                break
            if result == "waiting":
                person.answer_pending()
                continue
            idx = store.current_round(run_id).idx
            if idx in times and not any(r[0] == idx for r in rows):
                full = None
                if idx % args.every == 0 or idx == 1:
                    t0 = time.perf_counter()
                    for r in range(idx):
                        oracle.collect(run_id, r)
                    full = time.perf_counter() - t0
                rows.append((idx, times[idx], full))
    finally:
        oracle.close()
        store.close()
        delete_project(url, key, project)
    print("| round | incremental pull s | old full pull s (every round again) |")
    print("|---|---|---|")
    for idx, inc, full in rows:
        if full is not None or idx == rows[-1][0]:
            print(f"| {idx} | {inc:.2f} | {'-' if full is None else f'{full:.2f}'} |")
    print(f"first pull of the process (full, round 1): {rows[0][1]:.2f} s; "
          f"mean incremental pull over rounds 2-{rows[-1][0]}: {sum(r[1] for r in rows[1:]) / max(1, len(rows) - 1):.2f} s")


if __name__ == "__main__":
    main()
