"""``al-loop runs abandon`` and ``al-loop runs retry``: a run that cannot go on never blocks a store.

A run whose step raised is ``failed`` (``status`` shows why); ``resume``
skips it. ``retry`` puts it back to ``running`` (after the cause was fixed),
``abandon`` gives it up for good: its rows stay for ``export`` and
``compare``, and nothing drives it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from al_loop.cli._common import console, interrupt_hint
from al_loop.cli.app import runs_app


@runs_app.command("abandon")
def abandon(
    db: Annotated[Path, typer.Option(help="Store of the run.")],
    run: Annotated[int, typer.Option(help="Run id (see `al-loop status`).")],
    reason: Annotated[str | None, typer.Option(help="Why, kept as the run's note.")] = None,
) -> None:
    """Mark a running or failed run abandoned: resume and campaign run leave it alone, export still reads it."""
    from al_loop import api

    interrupt_hint("runs abandon", db)
    before = api.abandon_run(str(db), run, reason)
    console.print(f"run {run} ({before}) is abandoned; its rows stay in {db} for export and compare",
                  highlight=False)


@runs_app.command("retry")
def retry(
    db: Annotated[Path, typer.Option(help="Store of the run.")],
    run: Annotated[int, typer.Option(help="Run id of a failed run (see `al-loop status`).")],
) -> None:
    """Put a failed run back to running; `al-loop resume` then goes on from its last committed step."""
    from al_loop import api

    interrupt_hint("runs retry", db)
    api.retry_run(str(db), run)
    console.print(f"run {run} is running again; `al-loop resume --db {db}` goes on with it", highlight=False)
