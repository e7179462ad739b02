"""``al-loop query``: the next batch for your own labelling pipeline (no simulator, no Label Studio)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from al_loop.cli._common import console, interrupt_hint, out_console
from al_loop.cli.app import app


@app.command()
def query(
    db: Annotated[Path, typer.Option(help="SQLite store of the query runs (created on the first call).")],
    features: Annotated[Path, typer.Option(help="Features of every item (.csv/.parquet/.npy/.npz).")],
    strategy: Annotated[str, typer.Option(help="Query strategy (`al-loop strategies` lists them).")],
    batch: Annotated[int, typer.Option(help="Items to list: the unlabeled rest of earlier batches plus new picks.")] = 10,
    labeled: Annotated[Path | None, typer.Option(help="CSV of your labels (ID column and label column); "
                                                      "leave out on a first call with nothing labeled.")] = None,
    out: Annotated[Path | None, typer.Option(help="CSV file for the batch (default: print it).")] = None,
    id_column: Annotated[str | None, typer.Option(help="ID column of the features file (default: row numbers).")] = None,
    labeled_id_column: Annotated[str | None, typer.Option(
        help="ID column of the labeled file (default: --id-column, or item_id).")] = None,
    label_column: Annotated[str, typer.Option(help="Label column of the labeled file.")] = "label",
    classes: Annotated[str | None, typer.Option(
        help="Every class, comma-separated, on the first call (classes cannot be added later).")] = None,
    seed: Annotated[int, typer.Option(help="Run seed: the same files and seed give the same batch.")] = 0,
    learner: Annotated[str, typer.Option(help="Learner: logreg, mlp, cnn.")] = "logreg",
    init_strategy: Annotated[str, typer.Option(
        help="Who picks while nothing is labeled: random, typiclust, probcover.")] = "random",
    param: Annotated[list[str], typer.Option(help="Strategy parameter KEY=VALUE.")] = [],  # noqa: B006
    skip_label: Annotated[str | None, typer.Option(
        help="A label value meaning 'skipped' (never offered again).")] = None,
    drop_columns: Annotated[str | None, typer.Option(
        help="Columns of the features file that are not features (comma-separated).")] = None,
) -> None:
    """Record your labels, train, and write the next batch to label (one round per call)."""
    from al_loop import api
    from al_loop.params import parse_params
    from al_loop.query import parse_classes

    interrupt_hint("query", store=db, resume="al-loop query ... (the same command again)")
    params = parse_params(list(param), [strategy])[strategy] if param else {}
    result = api.query(str(db), features=str(features), strategy=strategy, batch=batch,
                       labeled=None if labeled is None else str(labeled), id_column=id_column, seed=seed,
                       learner=learner, init_strategy=init_strategy, label_column=label_column,
                       labeled_id_column=labeled_id_column, classes=parse_classes(classes),
                       strategy_params=params, skip_label=skip_label, out=None if out is None else str(out),
                       dataset_params={"drop_columns": drop_columns} if drop_columns else None,
                       log=lambda msg: console.print(f"note: {msg}", highlight=False, markup=False))
    if out is None:
        from al_loop.query import write_batch

        write_batch(sys.stdout, result, id_column or "item_id")
        console.print(result.summary(), highlight=False, markup=False)
    else:
        out_console.print(result.summary(str(out)), highlight=False, markup=False)
