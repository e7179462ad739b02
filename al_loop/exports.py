"""Records for ``al-loop export``: one dict per label, selection or metric row, run columns first."""

from __future__ import annotations

from typing import Any

from al_loop.errors import ConfigError
from al_loop.store import Store

EXPORTS = ("labels", "metrics", "selections")


def export_records(db: str, what: str) -> list[dict[str, Any]]:
    """Rows of ``labels``, ``metrics`` or ``selections`` with run columns first (store opened read-only)."""
    if what not in EXPORTS:
        raise ConfigError(f"unknown --what {what!r}; use {', '.join(EXPORTS)}")
    store = Store(db, readonly=True)
    try:
        records: list[dict[str, Any]] = []
        for run in store.runs():
            assert run.id is not None
            base = {"run_id": run.id, "strategy": run.strategy, "seed": run.seed}
            if what == "labels":
                for r in store.labels(run.id):
                    records.append({**base, "round": r.round, "pool_id": r.pool_id, "label": r.label,
                                    "status": r.status, "source": r.source})
            elif what == "metrics":
                for m in store.metrics(run.id):
                    records.append({**base, "round": m.round, "n_labels": m.n_labels, "accuracy": m.accuracy,
                                    "macro_f1": m.macro_f1, "select_seconds": m.select_seconds,
                                    "train_seconds": m.train_seconds})
            else:
                for s in store.selections(run.id):
                    records.append({**base, "round": s.round, "pool_id": s.pool_id, "rank": s.rank, "score": s.score})
        return records
    finally:
        store.close()
