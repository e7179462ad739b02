"""``al-loop db upgrade``: schema upgrades of a store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from al_loop.cli._common import console
from al_loop.cli.app import db_app


@db_app.command("upgrade")
def db_upgrade(db: Annotated[Path, typer.Option(help="Store to upgrade (a backup is made first).")],
               backup_dir: Annotated[Path | None, typer.Option(help="Folder for the backup (default: beside it).")] = None,
               ) -> None:
    """Back up the store (VACUUM INTO) and migrate it to the current schema version."""
    from al_loop.migrations import upgrade

    old, new, backup = upgrade(db, backup_dir)
    if backup is None:
        console.print(f"{db} is already at schema version {new}; nothing to do")
    else:
        console.print(f"upgraded {db} from schema version {old} to {new}; backup: {backup}")
