"""Records for ``al-loop export``: one dict per label, selection or metric row, run columns first.

Labels and selections carry, next to ``pool_id`` (the item's 0-based row in the
data file as loaded), the user's own ``item_id`` (``--id-column``; None when the
data had none), when any run of the store has files (image folders), the item's
``path`` (relative to the folder) and, when any run has texts, the item's ``text``.
Selections and rounds carry the round's ``phase``: the strategy that picked
its batch (round 0: the run's init strategy; ``switch``: the inner strategy it
ran that round; None for a round that has not selected). Rounds carry the
whole ``Selection.info`` as a JSON string (``info``).

Labels carry who answered and how: ``annotation_id`` (the oracle's id of the
deciding answer), ``annotator`` (Label Studio: the e-mail), ``disagreement``
(every annotator's answer, newest first, when they differ) and ``updated_at``
(UTC). ``quarantine`` holds the answers that were not a valid class (one row
per answer, kept after the item is labelled again) with the ``answer``, the
``reason`` (with the annotators' disagreement, if any), ``annotation_id``,
``recorded_at`` and ``labeled_now`` (whether the item has a label today).
Columns come in a fixed order: run columns, ``round``, ``pool_id``,
``item_id`` (and ``path``, ``text``), then the table's own.
"""

from __future__ import annotations

import json
from typing import Any

from al_loop.errors import ConfigError
from al_loop.store import Store

EXPORTS = ("labels", "metrics", "quarantine", "rounds", "selections")


def _items_by_run(store: Store, runs: list[Any]) -> dict[int, dict[int, Any]]:
    """``{run_id: {pool_id: ItemRow}}`` from the ``items`` table (runs of one dataset share one read)."""
    by_key: dict[str, dict[int, Any]] = {}
    out: dict[int, dict[int, Any]] = {}
    for run in runs:
        key = store.config(run.id).dataset_key()
        if key not in by_key:
            by_key[key] = store.items(key)
        out[run.id] = by_key[key]
    return out


def _phase(run: Any, init_strategy: str, idx: int, info: dict[str, Any]) -> str:
    """Name of the strategy that picked round ``idx``'s batch (see the module docstring)."""
    if idx == 0:
        return init_strategy
    return str(info.get("phase", run.strategy))


def export_records(db: str, what: str) -> list[dict[str, Any]]:
    """Rows of ``labels``, ``metrics``, ``quarantine``, ``rounds`` or ``selections``, run columns first (read-only)."""
    if what not in EXPORTS:
        import difflib

        close = difflib.get_close_matches(str(what), EXPORTS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"unknown --what {what!r}; {hint}use one of {', '.join(EXPORTS)}")
    store = Store(db, readonly=True)
    try:
        records: list[dict[str, Any]] = []
        runs = store.runs()
        items = _items_by_run(store, runs) if what in ("labels", "quarantine", "selections") else {}
        with_text = any(row.text is not None for per_run in items.values() for row in per_run.values())
        with_path = any(row.path is not None for per_run in items.values() for row in per_run.values())

        def item(run_id: int, pool_id: int) -> dict[str, Any]:
            # the user's own id (and file, text) next to pool_id; the same columns in every record
            row = items.get(run_id, {}).get(pool_id)
            extra: dict[str, Any] = {"item_id": row.item_id if row else None}
            if with_path:
                extra["path"] = row.path if row else None
            if with_text:
                extra["text"] = row.text if row else None
            return extra

        for run in runs:
            assert run.id is not None
            base = {"run_id": run.id, "strategy": run.strategy, "seed": run.seed}
            if what == "labels":
                for r in store.labels(run.id):
                    records.append({**base, "round": r.round, "pool_id": r.pool_id, **item(run.id, r.pool_id),
                                    "label": r.label, "status": r.status, "source": r.source,
                                    "annotation_id": r.annotation_id, "annotator": r.annotator,
                                    "disagreement": r.disagreement, "updated_at": r.updated_at})
            elif what == "quarantine":
                labeled = {r.pool_id for r in store.labels(run.id)}
                for q in sorted(store.quarantine(run.id), key=lambda q: (q.round, q.pool_id, q.recorded_at)):
                    records.append({**base, "round": q.round, "pool_id": q.pool_id, **item(run.id, q.pool_id),
                                    "answer": q.answer, "reason": q.reason, "annotation_id": q.annotation_id,
                                    "recorded_at": q.recorded_at, "labeled_now": q.pool_id in labeled})
            elif what == "metrics":
                for m in store.metrics(run.id):
                    records.append({**base, "round": m.round, "n_labels": m.n_labels, "accuracy": m.accuracy,
                                    "macro_f1": m.macro_f1, "select_seconds": m.select_seconds,
                                    "train_seconds": m.train_seconds})
            elif what == "rounds":
                init = store.config(run.id).init_strategy
                for rnd in store.rounds(run.id):
                    info = json.loads(rnd.info_json) if rnd.info_json else {}
                    selected = rnd.state != "TRAINING"  # a round in TRAINING has not selected (yet)
                    records.append({**base, "round": rnd.idx, "state": rnd.state, "budget": rnd.budget,
                                    "phase": _phase(run, init, rnd.idx, info) if selected else None,
                                    "info": rnd.info_json})
            else:
                init = store.config(run.id).init_strategy
                infos = store.round_info(run.id)
                phases = {r.idx: _phase(run, init, r.idx, infos.get(r.idx, {})) for r in store.rounds(run.id)}
                for s in store.selections(run.id):
                    records.append({**base, "round": s.round, "pool_id": s.pool_id, **item(run.id, s.pool_id),
                                    "rank": s.rank, "score": s.score, "phase": phases.get(s.round)})
        return records
    finally:
        store.close()
