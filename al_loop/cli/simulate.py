"""``al-loop simulate`` and ``al-loop resume``: simulated active learning on labeled data."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from al_loop.cli._common import console, ids_option, interrupt_hint, print_summary
from al_loop.cli.app import app


@app.command()
def simulate(
    dataset: Annotated[str, typer.Option(help="Dataset name (digits, breast_cancer, wine, iris, fashion-mnist, fashion-canvas (multi-label), file, text).")] = "digits",
    strategy: Annotated[list[str], typer.Option(help="Strategy name; repeat for several.")] = ["random"],  # noqa: B006
    rounds: Annotated[int, typer.Option(help="Query rounds after the initial batch.")] = 10,
    batch: Annotated[int, typer.Option(help="Items selected per round.")] = 10,
    init: Annotated[int, typer.Option(help="Size of the initial random batch.")] = 20,
    seeds: Annotated[int, typer.Option(help="Number of seeds (0..S-1), one run per strategy and seed.")] = 1,
    db: Annotated[Path, typer.Option(help="SQLite store to write.")] = Path("al-loop.sqlite"),
    learner: Annotated[str, typer.Option(help="Learner: logreg, mlp, cnn; multi-label: ovr_logreg, mlp_sigmoid, cnn_sigmoid.")] = "logreg",
    noise_rate: Annotated[float, typer.Option(help="Chance the simulated annotator gives a wrong class.")] = 0.0,
    skip_rate: Annotated[float, typer.Option(help="Chance the simulated annotator skips an item.")] = 0.0,
    param: Annotated[list[str], typer.Option(help="Strategy parameter KEY=VALUE or NAME.KEY=VALUE.")] = [],  # noqa: B006
    features: Annotated[Path | None, typer.Option(help="Features file (.npy/.npz/.csv/.parquet) for --dataset file.")] = None,
    labels: Annotated[Path | None, typer.Option(help="Labels file (.npy/.csv/.txt) for --dataset file.")] = None,
    label_column: Annotated[str, typer.Option(help="Label column of a .csv features file.")] = "label",
    multilabel: Annotated[bool, typer.Option("--multilabel", help="Each item has a set of labels: 'a;b' in the label column, or a 0/1 matrix .npy (--features/--texts).")] = False,
    data_root: Annotated[Path | None, typer.Option(help="Folder of a torchvision FashionMNIST download.")] = None,
    limit: Annotated[int | None, typer.Option(help="Keep the first N rows (fashion-mnist).")] = None,
    query_ids: Annotated[str | None, typer.Option(help="Query set Q: comma-separated pool ids.")] = None,
    query_file: Annotated[Path | None, typer.Option(help="Query set Q: file with one pool id per line.")] = None,
    private_ids: Annotated[str | None, typer.Option(help="Private set P: comma-separated pool ids.")] = None,
    private_file: Annotated[Path | None, typer.Option(help="Private set P: file with one pool id per line.")] = None,
    batch_schedule: Annotated[str, typer.Option(help="fixed, list:10,20,40 or geometric:1.5.")] = "fixed",
    max_labels: Annotated[int | None, typer.Option(help="Stop when this many items were sent in all.")] = None,
    val_fraction: Annotated[float, typer.Option(help="Share held out as a validation split (stopping rules).")] = 0.0,
    stop_target: Annotated[float | None, typer.Option(help="Stop when the validation metric reaches this.")] = None,
    stop_metric: Annotated[str, typer.Option(help="Validation metric of the stopping rules.")] = "accuracy",
    plateau_rounds: Annotated[int | None, typer.Option(help="Stop after N rounds without validation gain.")] = None,
    plateau_delta: Annotated[float, typer.Option(help="Smallest gain that counts for --plateau-rounds.")] = 0.0,
    stop: Annotated[list[str], typer.Option(help="Stop without labels: stable-predictions, max-uncertainty, overall-uncertainty, classification-change (NAME[:key=value,...]; repeatable).")] = [],  # noqa: B006
    stop_set: Annotated[int, typer.Option(help="Unlabeled items the --stop signals are measured on (0: the whole pool).")] = 2000,
    track_stopping: Annotated[bool, typer.Option("--track-stopping", help="Record the stopping signals every round without stopping.")] = False,
    cluster: Annotated[str | None, typer.Option(help="Dask: sync, local:N or a scheduler address.")] = None,
    init_strategy: Annotated[str, typer.Option(help="Who picks the seed batch: random, typiclust, probcover.")] = "random",
    id_column: Annotated[str | None, typer.Option(help="Column of your own item IDs (.csv/.parquet/.jsonl); exports carry them.")] = None,
    drop_columns: Annotated[list[str], typer.Option(help="Columns that are not features (comma list, repeatable).")] = [],  # noqa: B006
    categorical: Annotated[list[str], typer.Option(help="Columns to one-hot encode (comma list, repeatable).")] = [],  # noqa: B006
    numeric_only: Annotated[bool, typer.Option("--numeric-only", help="Drop the other non-numeric columns (with a note).")] = False,
    impute: Annotated[str | None, typer.Option(help="Missing values: mean, median or drop (the rows).")] = None,
    texts: Annotated[Path | None, typer.Option(help="Labelled texts (.csv or .jsonl), TF-IDF features (or --encoder).")] = None,
    images: Annotated[Path | None, typer.Option(help="Folder of labelled images, one subfolder per class.")] = None,
    encoder: Annotated[str | None, typer.Option(help="Encoder of --images (default efficientnet-lite0) or --texts (default tfidf): pixels, minilm, timm:NAME, ...")] = None,
    encoder_weights: Annotated[Path | None, typer.Option(help="Weights file of --encoder (torchvision:/timm:/hf: models).")] = None,
    image_size: Annotated[int | None, typer.Option(help="Side in pixels the encoder sees (--images).")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Leave unreadable images out (status lists them) instead of stopping.")] = False,
    text_column: Annotated[str, typer.Option(help="Text column of --texts.")] = "text",
    test_fraction: Annotated[float | None, typer.Option(help="Share held out as the test split (default 0.25).")] = None,
    test_features: Annotated[Path | None, typer.Option(help="A test set of your own: features file (as --features).")] = None,
    test_labels: Annotated[Path | None, typer.Option(help="Labels of --test-features when not inside it.")] = None,
    metric: Annotated[str, typer.Option(help="Metric of the summary table: accuracy, macro_f1; multi-label also micro_f1, hamming_loss (all are stored).")
                      ] = "accuracy",
) -> None:
    """Simulate active learning: strategies x seeds, one run each, then a summary table."""
    from al_loop import api
    from al_loop.params import parse_params
    from al_loop.registry import DATASETS, LEARNERS, STRATEGIES
    from al_loop.reports import check_metric
    from al_loop.store import check_sqlite_file, check_writable

    check_metric(metric)

    dataset, dataset_params = own_data_params(
        dataset, features=features, labels=labels, label_column=label_column, id_column=id_column,
        drop_columns=drop_columns, categorical=categorical, numeric_only=numeric_only, impute=impute, texts=texts,
        text_column=text_column, test_fraction=test_fraction, test_features=test_features, test_labels=test_labels,
        media=MediaOptions(images=images, encoder=encoder, encoder_weights=encoder_weights, image_size=image_size,
                           skip_bad=skip_bad), multilabel=multilabel)
    if data_root is not None:
        dataset_params["root"] = str(data_root)
    if limit is not None:
        dataset_params["limit"] = limit
    DATASETS.get(dataset)
    for name in strategy:
        STRATEGIES.get(name)
    LEARNERS.get(learner)
    params = parse_params(param, strategy)
    check_sqlite_file(db)
    check_writable(db)  # a read-only file or folder: one line before any work
    with encode_progress():  # an image folder or texts are encoded here (once: the pool and the cache keep them)
        configs = api.plan_simulation(dataset=dataset, strategies=strategy, seeds=list(range(seeds)), rounds=rounds,
                                      batch=batch, init=init, learner=learner, strategy_params=params,
                                      dataset_params=dataset_params, noise_rate=noise_rate, skip_rate=skip_rate,
                                      query_ids=ids_option(query_ids, query_file),
                                      private_ids=ids_option(private_ids, private_file),
                                      options={"batch_schedule": batch_schedule, "max_labels": max_labels,
                                               "val_fraction": val_fraction, "stop_target": stop_target,
                                               "stop_metric": stop_metric, "plateau_rounds": plateau_rounds,
                                               "plateau_delta": plateau_delta, "init_strategy": init_strategy,
                                               "stop": tuple(stop), "stop_set": stop_set,
                                               "track_stopping": track_stopping,
                                               **({"test_fraction": test_fraction} if test_fraction is not None
                                                  else {})})
    from al_loop.distributed import cluster_session

    interrupt_hint("simulate", db, f"al-loop resume --db {db}")
    with cluster_session(cluster) as runner:  # connect (or fail in one line) before the progress bar
        _with_progress(len(configs) * (rounds + 2), lambda on_round, log: api.run_configs(
            str(db), configs, on_round=on_round, log=log, runner=runner))
    console.print(f"wrote {len(configs)} run(s) to {db}")
    print_summary([str(db)], metric)


@dataclass(frozen=True)
class MediaOptions:
    """simulate's options of image folders and encoders (None / False: not given)."""

    images: Path | None = None
    encoder: str | None = None
    encoder_weights: Path | None = None
    image_size: int | None = None
    skip_bad: bool = False

    def given(self) -> list[str]:
        """The encoder options given, as the user typed them."""
        return [name for name, value in (("--encoder", self.encoder), ("--encoder-weights", self.encoder_weights),
                                         ("--image-size", self.image_size), ("--skip-bad", self.skip_bad))
                if value not in (None, False)]


def _media_params(media: MediaOptions, *, images: bool) -> dict[str, Any]:
    """The loader parameters of the encoder options given (the checks that need no data)."""
    from al_loop.errors import ConfigError

    if not images:
        only_images = [g for g in media.given() if g in ("--image-size", "--skip-bad")]
        if only_images:
            raise ConfigError(f"{', '.join(only_images)} go(es) with --images folders, not with --texts; drop it")
    params: dict[str, Any] = {}
    if media.encoder is not None:
        if not media.encoder.strip():
            raise ConfigError("--encoder is empty; pass a name such as efficientnet-lite0, pixels, minilm or tfidf "
                              "(`al-loop encoders` lists them)")
        params["encoder"] = media.encoder
    if media.encoder_weights is not None:
        if not media.encoder_weights.is_file():
            raise ConfigError(f"--encoder-weights {media.encoder_weights} does not exist (or is not a file); pass "
                              "the path of the weights file")
        params["encoder_weights"] = str(media.encoder_weights.resolve())
    if media.image_size is not None:
        if media.image_size < 8:
            raise ConfigError(f"--image-size {media.image_size} is too small; pass 8 or more (e.g. 224)")
        params["image_size"] = media.image_size
    if media.skip_bad:
        params["skip_bad"] = True
    return params


def own_data_params(dataset: str, *, features: Path | None, labels: Path | None, label_column: str,
                    id_column: str | None, drop_columns: list[str], categorical: list[str], numeric_only: bool,
                    impute: str | None, texts: Path | None, text_column: str, test_fraction: float | None,
                    test_features: Path | None, test_labels: Path | None,
                    media: MediaOptions | None = None, multilabel: bool = False) -> tuple[str, dict[str, Any]]:
    """Dataset name and parameters of simulate's data options (only the options given are recorded).

    ``multilabel`` (``--multilabel``) records ``multilabel=True`` for ``--features`` and ``--texts`` data.

    ``--images DIR`` is the ``images`` dataset (labelled: one subfolder per
    class) and records its encoder always, the default included
    (``efficientnet-lite0``), so a run is rebuilt with the encoder it started
    with whatever a later release defaults to; ``--texts`` records an
    ``--encoder`` only when given (none: TF-IDF, as before).

    Raises ConfigError for options that cannot go together or that the chosen data cannot use.
    """
    from al_loop.errors import ConfigError

    name, params = _own_data_params(dataset, features=features, labels=labels, label_column=label_column,
                                    id_column=id_column, drop_columns=drop_columns, categorical=categorical,
                                    numeric_only=numeric_only, impute=impute, texts=texts, text_column=text_column,
                                    test_fraction=test_fraction, test_features=test_features,
                                    test_labels=test_labels, media=media)
    if multilabel:
        if name not in ("file", "text"):
            hint = "; fashion-canvas is multi-label by itself" if name != "images" else ""
            raise ConfigError(f"--multilabel goes with --features tables or --texts, not with {name!r}{hint}; "
                              "drop --multilabel")
        params["multilabel"] = True
    return name, params


def _own_data_params(dataset: str, *, features: Path | None, labels: Path | None, label_column: str,
                     id_column: str | None, drop_columns: list[str], categorical: list[str], numeric_only: bool,
                     impute: str | None, texts: Path | None, text_column: str, test_fraction: float | None,
                     test_features: Path | None, test_labels: Path | None,
                     media: MediaOptions | None = None) -> tuple[str, dict[str, Any]]:
    from al_loop.errors import ConfigError

    media = media or MediaOptions()
    table = {"drop_columns": ",".join(drop_columns), "categorical": ",".join(categorical),
             "numeric_only": numeric_only, "impute": impute}
    table = {k: v for k, v in table.items() if v}
    if test_fraction is not None and test_features is not None:
        raise ConfigError("--test-fraction and --test-features both choose the test set; give one of them")
    if media.images is not None:
        for name, value in (("--texts", texts), ("--features", features), ("--labels", labels)):
            if value is not None:
                raise ConfigError(f"--images and {name} are two data sources; give one of them")
        if dataset not in ("digits", "images"):  # digits is the default: only an explicit other name conflicts
            raise ConfigError(f"--images is the 'images' dataset, not {dataset!r}; drop --dataset or pass "
                              "--dataset images")
        unused = [f"--{k.replace('_', '-')}" for k in table] + [
            name for name, value in (("--id-column", id_column), ("--test-features", test_features),
                                     ("--test-labels", test_labels)) if value is not None]
        if unused:
            raise ConfigError(f"{', '.join(unused)} apply to --features tables, not to --images; drop them (the "
                              "class folders are the labels; hold images out with --test-fraction)")
        params = {"root": str(media.images.resolve()) if media.images.is_dir() else str(media.images),
                  "labeled": True, "encoder": "efficientnet-lite0", **_media_params(media, images=True)}
        return "images", params
    if texts is None and dataset not in ("images", "text") and media.given():
        what = "--features tables" if (dataset == "file" or features is not None) else f"the built-in {dataset!r}"
        raise ConfigError(f"{', '.join(media.given())} go(es) with --images DIR or --texts FILE, not with {what}; "
                          "drop it or pass --images/--texts")
    if dataset == "images":
        raise ConfigError("--dataset images needs --images DIR (one subfolder of images per class)")
    if texts is not None:
        if features is not None or labels is not None:
            raise ConfigError("--texts and --features/--labels are two data sources; give one of them")
        if dataset not in ("digits", "text"):  # digits is the default: only an explicit other name conflicts
            raise ConfigError(f"--texts is the 'text' dataset, not {dataset!r}; drop --dataset or pass --dataset text")
        unused = [f"--{k.replace('_', '-')}" for k in table] + (["--test-features"] if test_features else []) + (
            ["--test-labels"] if test_labels else [])
        if unused:
            raise ConfigError(f"{', '.join(unused)} apply to --features tables, not to --texts; drop them "
                              "(hold texts out with --test-fraction)")
        params = {"path": str(texts), "text_column": text_column, "label_column": label_column,
                  **_media_params(media, images=False)}
        return "text", {**params, **({"id_column": id_column} if id_column else {})}
    if dataset == "text":
        raise ConfigError("--dataset text needs --texts FILE (.csv or .jsonl with --text-column and "
                          "--label-column)")
    if dataset == "file" or features is not None:
        params = {"features": str(features) if features else None, "labels": str(labels) if labels else None,
                  "label_column": label_column, **table}
        for key, value in (("id_column", id_column), ("test_features", test_features), ("test_labels", test_labels)):
            if value is not None:
                params[key] = str(value)
        return "file", params
    given = [name for name, value in (("--labels", labels), ("--id-column", id_column),
                                      ("--test-features", test_features), ("--test-labels", test_labels))
             if value is not None] + [f"--{k.replace('_', '-')}" for k in table]
    if given:
        raise ConfigError(f"{', '.join(given)} need(s) --features FILE (or --texts FILE); without it the built-in "
                          f"dataset {dataset!r} would run")
    return dataset, {}


def _encode_columns() -> tuple[Any, ...]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn())


def _encode_reporter(progress: Any) -> Any:
    """A ``(done, total)`` callback that shows the encode as an ``encoding`` task of ``progress``."""
    task: list[Any] = []

    def report(done: int, total: int) -> None:
        if not task:
            task.append(progress.add_task("encoding", total=total))
        progress.update(task[0], completed=done, total=total)

    return report


@contextmanager
def encode_progress(progress: Any = None) -> Iterator[None]:
    """Show the encodes of the block (the embedding cache's progress callback) as a bar with an ETA on stderr.

    The API never prints: the cache reports ``(done, total)`` per chunk to the
    callback of :func:`al_loop.encode_progress.reporting_progress`, set here for
    the block only. ``progress``: an open rich Progress to add the task to (a
    second live display cannot run beside it); None: a bar of its own, shown
    only if something is encoded (a cache hit or tabular data shows nothing).
    """
    from al_loop.encode_progress import reporting_progress

    if progress is not None:
        with reporting_progress(_encode_reporter(progress)):
            yield
        return
    from rich.progress import Progress

    own = Progress(*_encode_columns(), console=console, transient=False)
    started: list[bool] = []
    inner = _encode_reporter(own)

    def report(done: int, total: int) -> None:
        if not started:
            own.start()
            started.append(True)
        inner(done, total)

    try:
        with reporting_progress(report):
            yield
    except BaseException:
        own.live.transient = True  # an error is one line: the bar goes
        raise
    finally:
        if started:
            own.stop()


def _with_progress(total: int, work: Any) -> Any:
    """Run ``work(on_round, log)`` under a progress bar of ``total`` rounds (and of any encode it does)."""
    from rich.progress import Progress

    with Progress(*_encode_columns(), console=console, transient=False) as progress:
        task = progress.add_task("rounds", total=total)
        try:
            with encode_progress(progress):  # resume builds the pools (and may encode) inside the rounds
                result = work(lambda _r, _s: progress.advance(task),
                              lambda msg: progress.console.print(f"[yellow]{msg}"))
        except BaseException:
            progress.live.transient = True  # an error is one line: the bar goes
            raise
        progress.update(task, completed=total)
    return result


def _others_waiting(db: Path) -> str:
    """Why ``resume`` had nothing to do: every run ended, or the unfinished ones are campaigns or queries."""
    from al_loop.store import Store

    store = Store(db, readonly=True)
    try:
        others = [(r, store.config(r).oracle) for r in store.unfinished_runs()]
    finally:
        store.close()
    others = [(r, o) for r, o in others if o != "simulated"]
    if not others:
        return "every simulated run has ended"
    how = {"label_studio": f"`al-loop campaign run --db {db}`", "labels_file": "`al-loop query` with the run's files"}
    parts = [f"run {r} ({o}: go on with {how.get(o, 'its own command')})" for r, o in others]
    return "every simulated run has ended; not simulations: " + ", ".join(parts)


def _rounds_to_go(db: Path) -> int:
    """Progress steps (round changes and run ends, as ``on_round`` counts them) left to the store's unfinished runs."""
    from al_loop.store import Store

    store = Store(db, readonly=True)
    try:
        total = 0
        for run_id in store.unfinished_runs():
            config = store.config(run_id)
            if config.oracle == "simulated":  # resume drives these only
                total += max(config.rounds + 2 - store.current_round(run_id).idx, 1)
        return total
    finally:
        store.close()


@app.command()
def resume(db: Annotated[Path, typer.Option(help="Store whose unfinished runs to finish.")],
           cluster: Annotated[str | None, typer.Option(help="Dask: sync, local:N or a scheduler address.")] = None,
           metric: Annotated[str, typer.Option(help="Metric of the summary table: accuracy or macro_f1.")
                             ] = "accuracy",
           ) -> None:
    """Finish every unfinished simulated run in the store (a progress bar, then their summary table)."""
    from al_loop import api
    from al_loop.reports import check_metric
    from al_loop.store import Store

    check_metric(metric)
    if not db.exists():  # never create a store here: a typo would "resume" an empty one
        from al_loop.errors import StoreError

        raise StoreError(f"{db} does not exist; pass the --db of an existing store")
    Store(db).close()  # validates the file (and that it can be written) before anything else
    interrupt_hint("resume", db, f"al-loop resume --db {db}")
    total = _rounds_to_go(db)
    if total:
        from al_loop.distributed import cluster_session

        with cluster_session(cluster) as runner:  # connect (or fail in one line) before the progress bar
            done = _with_progress(total, lambda on_round, log: api.resume(str(db), on_round=on_round, log=log,
                                                                          runner=runner))
    else:
        done = api.resume(str(db), log=lambda msg: console.print(f"[yellow]{msg}"), cluster=cluster)
    console.print(f"resumed {len(done)} run(s): {done}" if done else f"nothing to resume: {_others_waiting(db)}")
    if done:
        print_summary([str(db)], metric, run_ids=done)
