"""``al-loop campaign init|run|status``: annotation campaigns in Label Studio."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from al_loop.cli._common import console, duration, interrupt_hint, out_console
from al_loop.cli.app import campaign_app


@campaign_app.command("init")
def campaign_init(
    db: Annotated[Path, typer.Option(help="Store of the campaign.")],
    label_studio_url: Annotated[str, typer.Option(help="Label Studio URL, e.g. http://127.0.0.1:8080.")],
    labels: Annotated[str, typer.Option(help='Class names, comma-separated: "cat,dog,bird".')],
    data: Annotated[str | None, typer.Option(
        help="Built-in dataset name, features file (.npy/.npz/.csv) or texts (.csv/.txt/.jsonl).")] = None,
    images: Annotated[Path | None, typer.Option(
        help="A folder of photos (.jpg/.png/.webp/.bmp, nested folders allowed, no labels needed); "
             "instead of --data.")] = None,
    encoder: Annotated[str | None, typer.Option(
        help="Encoder of --images (default efficientnet-lite0; pixels, timm:NAME, ...) or of texts "
             "(default tfidf; minilm, hf:NAME).")] = None,
    encoder_weights: Annotated[Path | None, typer.Option(help="Weights file of the encoder.")] = None,
    image_size: Annotated[int | None, typer.Option(help="Side in pixels the encoder sees photos at.")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Leave out photos that cannot be read "
                                           "(listed) instead of stopping.")] = False,
    text_column: Annotated[str | None, typer.Option(help="Column of a .csv/.jsonl that holds the texts "
                                                    "(default: text).")] = None,
    media: Annotated[str, typer.Option(
        help="How photos reach annotators: local-files (served by Label Studio from its document root), url "
             "(--media-url), inline (JPEG data URIs in the tasks), or auto (url with --media-url, else local-files "
             "when the server serves them, else inline).")] = "auto",
    media_url: Annotated[str | None, typer.Option(
        help="Prefix of the photos' URLs (https://, s3://, gs://, azure-blob://): a task's image is PREFIX + the "
             "photo's path in the folder, passed to Label Studio as is (not checked to resolve).")] = None,
    files_root: Annotated[Path | None, typer.Option(
        help="Label Studio's local files document root (default: $LABEL_STUDIO_FILES_ROOT, which "
             "scripts/labelstudio.sh writes to DIR/env).")] = None,
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
    adopt: Annotated[bool, typer.Option("--adopt", help="Share a project (same title) that holds tasks of "
                                        "another campaign; its tasks stay as they are.")] = False,
    mode: Annotated[str, typer.Option(
        help="pull: `campaign run` polls Label Studio; backend: `al-loop serve` is the project's model "
             "(predictions, webhooks).")] = "pull",
    backend_url: Annotated[str | None, typer.Option(
        help="Backend mode: where Label Studio reaches `al-loop serve`, e.g. http://127.0.0.1:9090.")] = None,
    basic_auth_env: Annotated[str | None, typer.Option(
        help="Backend mode: environment variable holding user:password of the basic auth serve checks.")] = None,
    import_pool: Annotated[bool, typer.Option(
        "--import-pool", help="Backend mode: import a task for every pool item first, so that Label Studio's Data "
                              "Manager sorts the whole pool by al-loop's prediction score.")] = False,
    stop: Annotated[list[str], typer.Option(
        help="End the campaign when a rule that needs no labels fires: stable-predictions, max-uncertainty, "
             "overall-uncertainty, classification-change (NAME[:key=value,...]; repeatable).")] = [],  # noqa: B006
    stop_set: Annotated[int, typer.Option(help="Unlabeled items the stopping signals are measured on "
                                          "(0: the whole pool).")] = 2000,
    multilabel: Annotated[bool, typer.Option(
        "--multilabel", help="Annotators pick every label that applies (several choices per task); use a "
                             "multi-label learner (ovr_logreg, mlp_sigmoid, cnn_sigmoid).")] = False,
) -> None:
    """Create (or adopt) the Label Studio project, record it in the store and send the seed batch."""
    from al_loop.campaign import CampaignOptions, init_campaign
    from al_loop.params import parse_params
    from al_loop.registry import STRATEGIES

    STRATEGIES.get(strategy)
    classes = [c.strip() for c in labels.split(",") if c.strip()]
    options = CampaignOptions(url=label_studio_url, title=title or f"al-loop {Path(db).stem}", kind=kind,
                              api_key_env=None if api_key_file else api_key_env,
                              api_key_file=str(api_key_file) if api_key_file else None, media=media,
                              media_url=media_url, files_root=str(files_root) if files_root else None,
                              mode=mode, backend_url=backend_url, basic_auth_env=basic_auth_env,
                              import_pool=import_pool)
    run_id = init_campaign(str(db), data=data, classes=classes, strategy=strategy, batch=batch, init=init,
                           options=options, learner=learner, seed=seed, min_fraction=min_fraction,
                           strategy_params=parse_params(param, [strategy])[strategy], adopt=adopt,
                           log=lambda m: console.print(m, highlight=False),
                           images=str(images) if images is not None else None, encoder=encoder,
                           encoder_weights=str(encoder_weights) if encoder_weights is not None else None,
                           image_size=image_size, skip_bad=skip_bad, text_column=text_column, stop=stop,
                           stop_set=stop_set, multilabel=multilabel)
    if mode == "backend":
        console.print(f"campaign run {run_id} ready: start `al-loop serve --db {db} --port PORT` where Label "
                      f"Studio reaches it ({backend_url}; it registers the model once it listens), then label in "
                      "Label Studio")
    else:
        console.print(f"campaign run {run_id} ready: label in Label Studio, then `al-loop campaign run --db {db}`")


@campaign_app.command("run")
def campaign_run(
    db: Annotated[Path, typer.Option(help="Store of the campaign.")],
    until_labels: Annotated[int | None, typer.Option(help="Stop once this many labels are in.")] = None,
    poll: Annotated[str, typer.Option(help="Seconds between pulls (10s, 1m).")] = "10s",
    min_fraction: Annotated[float | None, typer.Option(help="Share of a round that must be answered.")] = None,
    round_timeout: Annotated[str | None, typer.Option(help="Close a round after this long (e.g. 2h).")] = None,
    cluster: Annotated[str | None, typer.Option(help="Dask: sync, local:N or a scheduler address.")] = None,
    run: Annotated[int | None, typer.Option(help="Campaign run to drive (default: the newest running one).")] = None,
    label_studio_url: Annotated[str | None, typer.Option(
        help="The server moved: check it holds this campaign's project, record the URL, then run.")] = None,
    retry_budget: Annotated[str, typer.Option(
        help="How long to wait out one outage of the server before stopping (state kept), e.g. 10m, 2h.")] = "1h",
) -> None:
    """Pull answers, train, select and push the next batch; Ctrl-C stops (rc 130), running again resumes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from al_loop.campaign import CampaignProgress, run_campaign
    from al_loop.errors import StoreError

    if not db.exists():
        raise StoreError(f"{db} does not exist; start a campaign with `al-loop campaign init --db {db} ...` "
                         "or pass the --db of an existing one")
    interrupt_hint("campaign run", db, f"al-loop campaign run --db {db}")
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("labels", total=until_labels, info="")

        def show(p: CampaignProgress) -> None:
            progress.update(task, completed=p.labeled,
                            info=f"round {p.round} {p.state.lower()}, {p.outstanding} outstanding")

        n = run_campaign(str(db), until_labels=until_labels, poll=duration(poll), min_fraction=min_fraction,
                         round_timeout=duration(round_timeout) if round_timeout else None, on_progress=show,
                         log=lambda m: progress.console.print(m, highlight=False), cluster=cluster, run=run,
                         label_studio_url=label_studio_url, retry_budget=duration(retry_budget))
    console.print(f"{n} label(s) in {db}")


@campaign_app.command("pull")
def campaign_pull(
    db: Annotated[Path, typer.Option(help="Store of the campaign.")],
    run: Annotated[int | None, typer.Option(help="Campaign run (default: the newest running one).")] = None,
) -> None:
    """Collect the answers given in Label Studio, without training, selecting or closing a round."""
    from al_loop.campaign import pull_campaign
    from al_loop.errors import StoreError

    if not db.exists():
        raise StoreError(f"{db} does not exist; pass the --db of an existing campaign")
    interrupt_hint("campaign pull", db, f"al-loop campaign pull --db {db}")
    got = pull_campaign(str(db), run=run, log=lambda m: console.print(m, highlight=False))
    console.print(f"run {got['run_id']}: pulled {got['rounds']} round(s): {got['labeled']} new label(s), "
                  f"{got['skipped']} skipped, {got['quarantined']} quarantined, {got['deleted']} withdrawn; "
                  f"`al-loop campaign run --db {db}` goes on from there")


@campaign_app.command("set-url")
def campaign_set_url(
    db: Annotated[Path, typer.Option(help="Store of the campaign.")],
    label_studio_url: Annotated[str, typer.Option(help="Where the campaign's Label Studio answers now.")],
    run: Annotated[int | None, typer.Option(help="Campaign run (default: the newest running one).")] = None,
) -> None:
    """Point a campaign at its moved Label Studio server (checked to hold the same project)."""
    from al_loop.campaign import set_campaign_url
    from al_loop.errors import StoreError

    if not db.exists():
        raise StoreError(f"{db} does not exist; pass the --db of an existing campaign")
    run_id = set_campaign_url(str(db), label_studio_url, run=run, log=lambda m: console.print(m, highlight=False))
    console.print(f"run {run_id} goes on with `al-loop campaign run --db {db}`")


@campaign_app.command("connect")
def campaign_connect(
    db: Annotated[Path, typer.Option(help="Store of a backend-mode campaign.")],
    run: Annotated[int | None, typer.Option(help="Campaign run (default: the newest running one).")] = None,
) -> None:
    """Register (or adopt) the run's model and webhook in Label Studio once `al-loop serve` listens."""
    from al_loop.campaign import connect_backend
    from al_loop.errors import StoreError

    if not db.exists():
        raise StoreError(f"{db} does not exist; pass the --db of an existing campaign")
    got = connect_backend(str(db), run=run, log=lambda m: console.print(m, highlight=False))
    console.print(f"the model is ML backend {got['ml_backend_id']} of the project (webhook {got['webhook_id']}); "
                  "Label Studio's Model settings show it connected")


@campaign_app.command("status")
def campaign_status_cmd(
    db: Annotated[Path, typer.Option(help="Store of the campaign (read-only).")],
    run: Annotated[int | None, typer.Option(help="Show this campaign run only.")] = None,
) -> None:
    """Per round: sent, labeled, skipped, quarantined, waiting; annotator throughput."""
    from rich.table import Table
    from rich.text import Text

    from al_loop.campaign import campaign_status
    from al_loop.errors import ConfigError

    rows = campaign_status(str(db))
    if not rows:
        raise ConfigError(f"{db} holds no campaign; start one with `al-loop campaign init`")
    if run is not None:
        runs = sorted({r["run_id"] for r in rows})
        rows = [r for r in rows if r["run_id"] == run]
        if not rows:
            raise ConfigError(f"run {run} is not a campaign run of {db} (campaign runs: {', '.join(map(str, runs))})")
    from al_loop.campaign import stopping_status

    stopping = stopping_status(str(db))
    table = Table(title=f"campaign {db}")
    for col in ("run", "round", "state", "selected", "sent", "labeled", "skipped", "quarantined", "withdrawn",
                "waiting", "labels/hour by annotator", "kappa", "changed", "max unc.", "mean unc."):
        table.add_column(col)

    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    for r in rows:
        tp = ", ".join(f"{k}: {'-' if v is None else v}" for k, v in sorted(r["throughput"].items())) or "-"
        sig = stopping.get(r["run_id"], {}).get("rounds", {}).get(r["round"])
        signals = [num(getattr(sig, "kappa", None), ".4f"), num(getattr(sig, "changed", None), ".2%"),
                   num(getattr(sig, "max_uncertainty", None), ".3f"),
                   num(getattr(sig, "mean_uncertainty", None), ".3f")]
        table.add_row(str(r["run_id"]), str(r["round"]), r["state"], str(r["selected"]), str(r["sent"]),
                      str(r["labeled"]), str(r["skipped"]), str(r["quarantined"]), str(r.get("withdrawn", 0)),
                      str(r["waiting"]), Text(tp), *signals)
    out_console.print(table)
    for run_id, got in sorted(stopping.items()):
        if run is None or run_id == run:
            for line in got["lines"]:
                out_console.print(f"run {run_id}: {line}", highlight=False)
    from al_loop.campaign import prediction_progress

    for run_id, got in sorted(prediction_progress(str(db)).items()):
        if run is None or run_id == run:
            out_console.print(f"run {run_id}: predictions of {got['model_version']} written to "
                              f"{got['written']}/{got['total']} task(s) (al-loop serve)", highlight=False)
