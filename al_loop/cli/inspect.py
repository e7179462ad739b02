"""Read-only commands: ``status``, ``export``, ``curves``, ``strategies``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from al_loop.cli._common import console, out_console, print_summary
from al_loop.cli.app import app


@app.command()
def status(db: Annotated[Path, typer.Option(help="Store to read (read-only).")]) -> None:
    """Runs, their rounds and states, labels so far."""
    from rich.table import Table

    from al_loop.store import Store

    store = Store(db, readonly=True)
    try:
        table = Table(title=str(db))
        for col in ("run", "strategy", "seed", "dataset", "status", "round", "state", "labels", "skipped", "last acc"):
            table.add_column(col)
        for run in store.runs():
            assert run.id is not None
            rnd = store.current_round(run.id)
            lab = store.labels(run.id)
            mets = store.metrics(run.id)
            table.add_row(str(run.id), run.strategy, str(run.seed), run.dataset, run.status, str(rnd.idx), rnd.state,
                          str(sum(r.status == "labeled" for r in lab)), str(sum(r.status == "skipped" for r in lab)),
                          f"{mets[-1].accuracy:.4f}" if mets else "-")
        out_console.print(table)
    finally:
        store.close()


@app.command()
def export(
    db: Annotated[Path, typer.Option(help="Store to read (read-only).")],
    what: Annotated[str, typer.Option(
        help="labels, metrics, selections, or rounds (per round: state, phase, the selection's info).")] = "metrics",
    format: Annotated[str, typer.Option(help="jsonl or csv.")] = "jsonl",  # noqa: A002
    out: Annotated[Path | None, typer.Option(help="Output file (default: standard output).")] = None,
) -> None:
    """Export one record per row with run_id, strategy, seed, round, ..."""
    import csv
    import json

    from al_loop.errors import ConfigError
    from al_loop.exports import export_records

    if format not in ("jsonl", "csv"):
        raise ConfigError(f"unknown --format {format!r}; use jsonl or csv")
    records = export_records(str(db), what)
    fh = open(out, "w", newline="") if out else sys.stdout
    try:
        if format == "jsonl":
            for rec in records:
                fh.write(json.dumps(rec) + "\n")
        elif records:
            writer = csv.DictWriter(fh, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    finally:
        if out:
            fh.close()


@app.command()
def curves(
    db: Annotated[list[Path], typer.Option(help="Store(s) to read; repeat for several.")],
    out: Annotated[Path, typer.Option(help="PNG file to write.")] = Path("curves.png"),
    metric: Annotated[str, typer.Option(help="accuracy or macro_f1.")] = "accuracy",
) -> None:
    """Plot metric vs labels: mean and std band over seeds per strategy, AULC in the legend."""
    from al_loop import reports
    from al_loop.errors import ConfigError

    dbs = [str(d) for d in db]
    groups = reports.group_curves(reports.load_curves(dbs, metric))
    if not groups:
        raise ConfigError(f"no run in {dbs} has metrics yet; run `al-loop simulate` or `al-loop resume` first")
    reports.plot_curves(groups, out, metric)
    console.print(f"wrote {out}")
    print_summary(dbs, metric)


@app.command(name="strategies")
def list_strategies() -> None:
    """List the registered strategies and what they need from the learner."""
    from al_loop.registry import STRATEGIES

    for name in STRATEGIES.names():
        cls = STRATEGIES.get(name)
        try:
            needs = ",".join(sorted(cls().requires)) or "-"  # defaults; may depend on parameters
        except Exception:
            needs = "?"
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        out_console.print(f"{name:20s} needs {needs:12s} {doc}")
