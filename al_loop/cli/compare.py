"""The ``al-loop compare`` command, registered on a typer app by :func:`add_compare_command`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

_NO_WRAP = ("final", "AULC", "p (Wilcoxon, AULC)")  # numbers a reader compares down the column


def add_compare_command(app: typer.Typer) -> None:
    """Register ``compare`` on ``app`` (errors are :class:`al_loop.errors.AlLoopError`, one line)."""

    @app.command(name="compare")
    def compare_command(
        db: Annotated[list[Path], typer.Option(help="Store(s) to read (read-only); repeat for several.")],
        out: Annotated[Path, typer.Option(help="Folder for the PNGs, summary.md/.csv and report.html.")],
        metric: Annotated[str, typer.Option(help="accuracy or macro_f1; multi-label runs also micro_f1 (compare) and hamming_loss (curves).")] = "accuracy",
        baseline: Annotated[str, typer.Option(help="Strategy each group is paired against (same config).")
                            ] = "random",
        ceiling: Annotated[bool, typer.Option("--ceiling/--no-ceiling",
                                              help="Fit the learner on the whole pool for a ceiling line.")
                           ] = True,
        ceiling_cache: Annotated[Path | None, typer.Option(
            help="Ceiling cache file (default: $AL_LOOP_CACHE_DIR/ceilings.json or "
                 "~/.cache/al-loop/ceilings.json).")] = None,
    ) -> None:
        """Compare label-efficiency curves: plots with the full-data ceiling, a table, paired tests, HTML."""
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        from al_loop.compare import compare, default_cache_path, family_table

        err = Console(stderr=True)
        out_console = Console(width=None if sys.stdout.isatty() else 220)

        def warn(msg: str) -> None:
            err.print(f"[yellow]warning:[/yellow] {msg}", highlight=False, soft_wrap=True)

        result = compare([str(d) for d in db], out, metric=metric, baseline=baseline,
                         cache_path=ceiling_cache or default_cache_path(), ceiling=ceiling, warn=warn)
        out_console.print("groups (runs are averaged within a group only):", highlight=False)
        for line in result.group_lines():
            out_console.print(line, highlight=False, markup=False)
        for fam in result.families:  # one table per family, best AULC first
            headers, cells = family_table([r for r in result.rows if r.family == fam.title])
            table = Table(title=f"{fam.title}: {metric}, label efficiency (mean ± std over seeds)")
            for h in headers:
                table.add_column(h, overflow="fold", no_wrap=h in _NO_WRAP)
            for row_cells in cells:
                table.add_row(*(Text(cell) for cell in row_cells))  # labels hold [..]: not markup
            if all(r.ceiling is None for r in result.rows if r.family == fam.title):
                table.caption = "no full-data ceiling (--no-ceiling, or none could be fitted): no labels-to-target"
            out_console.print(table)
        for note in result.notes:  # e.g. too few seeds for the paired test to reach p < 0.05
            out_console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
        if ceiling:
            err.print(f"ceilings trained: {result.ceilings_trained} (the rest came from the cache)")
        err.print(f"wrote {len(result.pngs)} figure(s), {result.summary_md}, {result.summary_csv}, {result.html}",
                  highlight=False, soft_wrap=True)
