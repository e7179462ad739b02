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
    """Runs, their rounds and states, labels so far; an ended run shows how it ended (finished, failed, ...)."""
    from rich.table import Table
    from rich.text import Text

    from al_loop.run_status import (  # stdlib only: status answers fast
        read_status,
        status_rows,
        unreadable_lines,
    )

    lines = read_status(db)
    headers, rows = status_rows(lines)
    table = Table(title=str(db))
    for col in headers:
        table.add_column(col, overflow="fold")
    for cells in rows:
        table.add_row(*(Text(c) for c in cells))  # notes and names are not markup
    out_console.print(table)
    for line in unreadable_lines(lines):
        out_console.print(Text(line))


@app.command()
def export(
    db: Annotated[Path, typer.Option(help="Store to read (read-only).")],
    what: Annotated[str, typer.Option(
        help="labels, metrics, selections, rounds (per round: state, phase, the selection's info), "
             "or quarantine (answers that were not a class).")] = "metrics",
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
    metric: Annotated[str, typer.Option(help="accuracy or macro_f1; multi-label runs also micro_f1 (compare) and hamming_loss (curves).")] = "accuracy",
) -> None:
    """Plot metric vs labels: mean and std band over seeds per strategy, AULC in the legend."""
    from al_loop import reports
    from al_loop.errors import ConfigError

    dbs = [str(d) for d in db]
    groups = reports.group_curves(reports.load_curves(dbs, metric, log=lambda m: console.print(
        f"[yellow]note:[/yellow] {m}", highlight=False)))
    if not groups:
        raise ConfigError(f"no run in {dbs} has metrics yet; run `al-loop simulate` or `al-loop resume` first")
    reports.plot_curves(groups, out, metric)
    console.print(f"wrote {out}")
    print_summary(dbs, metric)


@app.command(name="strategies")
def list_strategies() -> None:
    """List the registered strategies: what they need, when to use them, their parameters and defaults."""
    from al_loop.registry import STRATEGIES
    from al_loop.strategy_help import format_help, strategy_help

    for i, name in enumerate(STRATEGIES.names()):
        if i:
            out_console.print()
        for line in format_help(strategy_help(name, STRATEGIES.get(name))):
            out_console.print(line, markup=False, highlight=False, soft_wrap=True)
