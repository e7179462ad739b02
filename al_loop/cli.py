"""The ``al-loop`` command line: a thin typer layer over :mod:`al_loop.api`."""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from al_loop import api, reports
from al_loop.compare_cli import add_compare_command
from al_loop.errors import AlLoopError, ConfigError
from al_loop.registry import DATASETS, LEARNERS, STRATEGIES
from al_loop.store import Store, check_sqlite_file

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="al-loop: simulate active learning, run annotation campaigns, compare strategies.")
console = Console(stderr=True, soft_wrap=True)
add_compare_command(app)
out_console = Console(width=None if sys.stdout.isatty() else 200)  # no truncated columns in pipes


def _coerce(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def parse_params(items: list[str], strategies: list[str]) -> dict[str, dict[str, Any]]:
    """``--param key=value`` (every strategy with that field) or ``--param name.key=value``."""
    result: dict[str, dict[str, Any]] = {s: {} for s in strategies}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--param {item!r} is not KEY=VALUE; write e.g. --param k=10 or --param cal.k=10")
        key, value = item.split("=", 1)
        target, _, field = key.rpartition(".")
        targets = [target] if target else strategies
        hit = False
        for name in targets:
            if name not in result:
                raise ConfigError(f"--param {item!r} names strategy {name!r} that is not run; run it with --strategy")
            cls = STRATEGIES.get(name)
            fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
            if field in fields:
                result[name][field] = _coerce(value)
                hit = True
            elif target:
                raise ConfigError(f"strategy {name!r} has no parameter {field!r}; valid: {sorted(fields) or 'none'}")
        if not hit:
            raise ConfigError(f"no strategy among {strategies} has a parameter {field!r}")
    return result


def _ids_option(ids: str | None, path: Path | None) -> list[int]:
    out: list[int] = []
    if ids:
        try:
            out += [int(v) for v in ids.replace(" ", "").split(",") if v]
        except ValueError:
            raise ConfigError(f"ids {ids!r} are not integers; pass comma-separated pool ids like 3,17,42") from None
    if path:
        if not path.exists():
            raise ConfigError(f"ids file {path} does not exist; give a file with one pool id per line")
        try:
            out += [int(line) for line in path.read_text().split() if line.strip()]
        except ValueError:
            raise ConfigError(f"{path} holds something that is not a pool id; give one integer per line") from None
    return out


@app.command()
def simulate(
    dataset: Annotated[str, typer.Option(help="Dataset name (digits, breast_cancer, wine, iris, fashion-mnist, file).")] = "digits",
    strategy: Annotated[list[str], typer.Option(help="Strategy name; repeat for several.")] = ["random"],  # noqa: B006
    rounds: Annotated[int, typer.Option(help="Query rounds after the initial batch.")] = 10,
    batch: Annotated[int, typer.Option(help="Items selected per round.")] = 10,
    init: Annotated[int, typer.Option(help="Size of the initial random batch.")] = 20,
    seeds: Annotated[int, typer.Option(help="Number of seeds (0..S-1), one run per strategy and seed.")] = 1,
    db: Annotated[Path, typer.Option(help="SQLite store to write.")] = Path("al-loop.sqlite"),
    learner: Annotated[str, typer.Option(help="Learner: logreg, mlp, cnn.")] = "logreg",
    noise_rate: Annotated[float, typer.Option(help="Chance the simulated annotator gives a wrong class.")] = 0.0,
    skip_rate: Annotated[float, typer.Option(help="Chance the simulated annotator skips an item.")] = 0.0,
    param: Annotated[list[str], typer.Option(help="Strategy parameter KEY=VALUE or NAME.KEY=VALUE.")] = [],  # noqa: B006
    features: Annotated[Path | None, typer.Option(help="Features file (.npy/.npz/.csv) for --dataset file.")] = None,
    labels: Annotated[Path | None, typer.Option(help="Labels file (.npy/.csv/.txt) for --dataset file.")] = None,
    label_column: Annotated[str, typer.Option(help="Label column of a .csv features file.")] = "label",
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
    cluster: Annotated[str | None, typer.Option(help="Dask: sync, local:N or a scheduler address.")] = None,
    init_strategy: Annotated[str, typer.Option(help="Who picks the seed batch: random, typiclust, probcover.")] = "random",
) -> None:
    """Simulate active learning: strategies x seeds, one run each, then a summary table."""
    dataset_params: dict[str, Any] = {}
    if dataset == "file" or features is not None:
        dataset = "file"
        dataset_params = {"features": str(features) if features else None,
                          "labels": str(labels) if labels else None, "label_column": label_column}
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
    configs = api.plan_simulation(dataset=dataset, strategies=strategy, seeds=list(range(seeds)), rounds=rounds,
                                  batch=batch, init=init, learner=learner, strategy_params=params,
                                  dataset_params=dataset_params, noise_rate=noise_rate, skip_rate=skip_rate,
                                  query_ids=_ids_option(query_ids, query_file),
                                  private_ids=_ids_option(private_ids, private_file),
                                  options={"batch_schedule": batch_schedule, "max_labels": max_labels,
                                           "val_fraction": val_fraction, "stop_target": stop_target,
                                           "stop_metric": stop_metric, "plateau_rounds": plateau_rounds,
                                           "plateau_delta": plateau_delta, "init_strategy": init_strategy})
    total = len(configs) * (rounds + 2)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("rounds", total=total)
        run_ids = api.run_configs(str(db), configs, on_round=lambda _r, _s: progress.advance(task),
                                  log=lambda msg: progress.console.print(f"[yellow]{msg}"), cluster=cluster)
        progress.update(task, completed=total)
    console.print(f"wrote {len(run_ids)} run(s) to {db}")
    print_summary([str(db)])


def print_summary(dbs: list[str], metric: str = "accuracy") -> None:
    groups = reports.group_curves(reports.load_curves(dbs, metric))
    table = Table(title=f"final {metric} and normalised area under the curve (mean ± std over seeds)")
    for col in ("strategy", "seeds", "labels", f"final {metric}", "AULC"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for row in reports.summary_rows(groups):
        table.add_row(Text(str(row["strategy"])), str(row["seeds"]), str(row["labels"]),
                      f"{row['final_mean']:.4f} ± {row['final_std']:.4f}",
                      f"{row['aulc_mean']:.4f} ± {row['aulc_std']:.4f}")
    out_console.print(table)


@app.command()
def resume(db: Annotated[Path, typer.Option(help="Store whose unfinished runs to finish.")],
           cluster: Annotated[str | None, typer.Option(help="Dask: sync, local:N or a scheduler address.")] = None,
           ) -> None:
    """Finish every unfinished simulated run in the store."""
    Store(db).close()  # validates the file before anything else
    done = api.resume(str(db), log=lambda msg: console.print(f"[yellow]{msg}"), cluster=cluster)
    console.print(f"resumed {len(done)} run(s): {done}" if done else "nothing to resume: every run is finished")


@app.command()
def status(db: Annotated[Path, typer.Option(help="Store to read (read-only).")]) -> None:
    """Runs, their rounds and states, labels so far."""
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


def export_records(db: str, what: str) -> list[dict[str, Any]]:
    """Rows of ``labels``, ``metrics`` or ``selections`` with run columns first."""
    if what not in ("labels", "metrics", "selections"):
        raise ConfigError(f"unknown --what {what!r}; use labels, metrics or selections")
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


@app.command()
def export(
    db: Annotated[Path, typer.Option(help="Store to read (read-only).")],
    what: Annotated[str, typer.Option(help="labels, metrics or selections.")] = "metrics",
    format: Annotated[str, typer.Option(help="jsonl or csv.")] = "jsonl",  # noqa: A002
    out: Annotated[Path | None, typer.Option(help="Output file (default: standard output).")] = None,
) -> None:
    """Export one record per row with run_id, strategy, seed, round, ..."""
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
    dbs = [str(d) for d in db]
    groups = reports.group_curves(reports.load_curves(dbs, metric))
    if not groups:
        raise ConfigError(f"no run in {dbs} has metrics yet; run `al-loop simulate` or `al-loop resume` first")
    reports.plot_curves(groups, out, metric)
    console.print(f"wrote {out}")
    print_summary(dbs, metric)


campaign_app = typer.Typer(no_args_is_help=True, help="Annotation campaigns in Label Studio.")
app.add_typer(campaign_app, name="campaign")


def _duration(text: str) -> float:
    """``10``, ``10s``, ``5m``, ``2h`` -> seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    t = text.strip().lower()
    try:
        return float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise ConfigError(f"bad duration {text!r}; write e.g. 10s, 5m or 2h") from None


@campaign_app.command("init")
def campaign_init(
    db: Annotated[Path, typer.Option(help="Store of the campaign.")],
    data: Annotated[str, typer.Option(help="Built-in dataset name, features file (.npy/.npz/.csv) or texts (.csv/.txt).")],
    label_studio_url: Annotated[str, typer.Option(help="Label Studio URL, e.g. http://127.0.0.1:8080.")],
    labels: Annotated[str, typer.Option(help='Class names, comma-separated: "cat,dog,bird".')],
    strategy: Annotated[str, typer.Option(help="Query strategy.")] = "margin",
    batch: Annotated[int, typer.Option(help="Items per round.")] = 20,
    init: Annotated[int, typer.Option(help="Size of the seed batch (random).")] = 20,
    kind: Annotated[str, typer.Option(help="image or text.")] = "image",
    api_key_env: Annotated[str, typer.Option(help="Environment variable holding the API key.")] = "LABEL_STUDIO_API_KEY",
    api_key_file: Annotated[Path | None, typer.Option(help="File holding the API key (instead of the variable).")] = None,
    title: Annotated[str | None, typer.Option(help="Project title (an existing project of that title is adopted).")] = None,
    learner: Annotated[str, typer.Option(help="Learner: logreg, mlp, cnn.")] = "logreg",
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    min_fraction: Annotated[float, typer.Option(help="Share of a round that must be answered.")] = 1.0,
    param: Annotated[list[str], typer.Option(help="Strategy parameter KEY=VALUE.")] = [],  # noqa: B006
) -> None:
    """Create (or adopt) the Label Studio project, record it in the store and send the seed batch."""
    from al_loop.campaign import CampaignOptions, init_campaign

    STRATEGIES.get(strategy)
    classes = [c.strip() for c in labels.split(",") if c.strip()]
    options = CampaignOptions(url=label_studio_url, title=title or f"al-loop {Path(db).stem}", kind=kind,
                              api_key_env=None if api_key_file else api_key_env,
                              api_key_file=str(api_key_file) if api_key_file else None)
    run_id = init_campaign(str(db), data=data, classes=classes, strategy=strategy, batch=batch, init=init,
                           options=options, learner=learner, seed=seed, min_fraction=min_fraction,
                           strategy_params=parse_params(param, [strategy])[strategy],
                           log=lambda m: console.print(m, highlight=False))
    console.print(f"campaign run {run_id} ready: label in Label Studio, then `al-loop campaign run --db {db}`")


@campaign_app.command("run")
def campaign_run(
    db: Annotated[Path, typer.Option(help="Store of the campaign.")],
    until_labels: Annotated[int | None, typer.Option(help="Stop once this many labels are in.")] = None,
    poll: Annotated[str, typer.Option(help="Seconds between pulls (10s, 1m).")] = "10s",
    min_fraction: Annotated[float | None, typer.Option(help="Share of a round that must be answered.")] = None,
    round_timeout: Annotated[str | None, typer.Option(help="Close a round after this long (e.g. 2h).")] = None,
    cluster: Annotated[str | None, typer.Option(help="Dask: sync, local:N or a scheduler address.")] = None,
) -> None:
    """Pull answers, train, select and push the next batch; Ctrl-C stops cleanly, running again resumes."""
    import signal

    from al_loop.campaign import CampaignProgress, run_campaign

    stop = {"flag": False}

    def _handler(_sig: int, _frame: object) -> None:
        stop["flag"] = True
        console.print("stopping after the current step (state is kept)...")

    previous = signal.signal(signal.SIGINT, _handler)
    try:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("labels", total=until_labels, info="")

            def show(p: CampaignProgress) -> None:
                progress.update(task, completed=p.labeled,
                                info=f"round {p.round} {p.state.lower()}, {p.outstanding} outstanding")

            n = run_campaign(str(db), until_labels=until_labels, poll=_duration(poll), min_fraction=min_fraction,
                             round_timeout=_duration(round_timeout) if round_timeout else None, on_progress=show,
                             should_stop=lambda: stop["flag"], log=lambda m: progress.console.print(m, highlight=False),
                             cluster=cluster)
    finally:
        signal.signal(signal.SIGINT, previous)
    console.print(f"{n} label(s) in {db}" + ("; run `al-loop campaign run` again to resume" if stop["flag"] else ""))


@campaign_app.command("status")
def campaign_status_cmd(db: Annotated[Path, typer.Option(help="Store of the campaign (read-only).")]) -> None:
    """Per round: sent, labeled, skipped, quarantined, waiting; annotator throughput."""
    from al_loop.campaign import campaign_status

    rows = campaign_status(str(db))
    if not rows:
        raise ConfigError(f"{db} holds no campaign; start one with `al-loop campaign init`")
    table = Table(title=f"campaign {db}")
    for col in ("run", "round", "state", "selected", "sent", "labeled", "skipped", "quarantined", "waiting",
                "labels/hour by annotator"):
        table.add_column(col)
    for r in rows:
        tp = ", ".join(f"{k}: {v}" for k, v in sorted(r["throughput"].items())) or "-"
        table.add_row(str(r["run_id"]), str(r["round"]), r["state"], str(r["selected"]), str(r["sent"]),
                      str(r["labeled"]), str(r["skipped"]), str(r["quarantined"]), str(r["waiting"]), Text(tp))
    out_console.print(table)


db_app = typer.Typer(no_args_is_help=True, help="Store maintenance: schema upgrades.")
app.add_typer(db_app, name="db")


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


@app.command(name="strategies")
def list_strategies() -> None:
    """List the registered strategies and what they need from the learner."""
    for name in STRATEGIES.names():
        cls = STRATEGIES.get(name)
        try:
            needs = ",".join(sorted(cls().requires)) or "-"  # defaults; may depend on parameters
        except Exception:
            needs = "?"
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        out_console.print(f"{name:20s} needs {needs:12s} {doc}")


def main() -> None:
    """Console entry point: user errors print one line and exit with status 2."""
    try:
        app(standalone_mode=False)
    except AlLoopError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
    except typer.Abort:
        console.print("aborted")
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise


if __name__ == "__main__":
    main()
