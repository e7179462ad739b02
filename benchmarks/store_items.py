"""Recording a dataset's item ids in the store: ``Store.record_items`` against one ORM object per row.

``python benchmarks/store_items.py --n 1000000`` (issue 18, target 1: the setup of a round at 10^6
items). Each method writes the same rows (global pool id, the user's id ``doc-0000000``...) into a
fresh SQLite store in its own child process; the table gives the time, the child's peak resident
memory beyond what it held before the call, and the rows read back (the objective: every row, equal).
The reference is the code ``record_items`` had before (one ``ItemRow`` added to the session per row,
one commit), timed in the same run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sqlite3
import tempfile
import time
from pathlib import Path


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _ours(db: str, n: int) -> None:
    from al_loop.store import Store

    store = Store(db)
    store.record_items("bench", list(range(n)), item_ids=[f"doc-{i:07d}" for i in range(n)])
    store.close()


def _orm_per_row(db: str, n: int) -> None:
    from al_loop.schema import ItemRow
    from al_loop.store import Store

    store = Store(db)
    ids = [f"doc-{i:07d}" for i in range(n)]
    with store.write() as s:  # the loop record_items ran before issue 18
        for i in range(n):
            s.add(ItemRow(dataset_key="bench", pool_id=i, item_id=ids[i], text=None, path=None))
    store.close()


def _child(method: str, db: str, n: int, out: mp.Queue) -> None:
    import al_loop.schema  # noqa: F401 - imported before the baseline, like the store
    import al_loop.store  # noqa: F401

    before = _peak_kib()
    t0 = time.perf_counter()
    {"record_items": _ours, "ORM row per item (before)": _orm_per_row}[method](db, n)
    out.put((time.perf_counter() - t0, (_peak_kib() - before) / 2**20))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="items")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("record_items", "ORM row per item (before)"):
            db = str(Path(tmp) / f"{len(rows)}.sqlite")
            q: mp.Queue = mp.get_context("spawn").Queue()
            p = mp.get_context("spawn").Process(target=_child, args=(method, db, a.n, q))
            p.start()
            seconds, extra = q.get()
            p.join()
            con = sqlite3.connect(db)
            count, last = con.execute("SELECT count(*), max(item_id) FROM items").fetchone()
            con.close()
            rows.append((method, seconds, extra, count, last, Path(db).stat().st_size / 2**20))
    print(f"N = {a.n:,} item ids")
    print("| method | time s | extra peak GiB | rows | last id | store MiB |")
    print("|---|---:|---:|---:|---|---:|")
    for method, seconds, extra, count, last, mib in rows:
        print(f"| {method} | {seconds:.2f} | {extra:.2f} | {count:,} | {last} | {mib:.0f} |")
    print(f"ratio: {rows[1][1] / rows[0][1]:.1f}x faster")


if __name__ == "__main__":
    main()
