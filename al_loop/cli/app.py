"""The typer application: the root ``app``, its sub-apps and the modules that add commands to them.

A command module imports only the standard library, typer and
:mod:`al_loop.cli._common` at top level (a test checks that building the app
imports neither numpy, scikit-learn nor torch), and registers its commands on
the apps defined here when :func:`build_app` imports it.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="al-loop: simulate active learning, run annotation campaigns, compare strategies.")
campaign_app = typer.Typer(no_args_is_help=True, help="Annotation campaigns in Label Studio.")
db_app = typer.Typer(no_args_is_help=True, help="Store maintenance: schema upgrades.")
runs_app = typer.Typer(no_args_is_help=True, help="Runs of a store: abandon one that cannot go on, retry a failed one.")
app.add_typer(campaign_app, name="campaign")
app.add_typer(db_app, name="db")
app.add_typer(runs_app, name="runs")


@app.callback()
def _root(
    plugin: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        [], "--plugin", metavar="MODULE", help="Import this module first (it registers strategies, learners, oracles or datasets); "
                             "repeat for several. Also accepted after the command name."),
) -> None:
    """al-loop: simulate active learning, run annotation campaigns, compare strategies."""
    # the plugins were imported by main() before the command line was parsed (so they may add commands)


#: modules that register commands, in help order
COMMAND_MODULES = (
    "al_loop.cli.simulate",
    "al_loop.cli.query",
    "al_loop.cli.inspect",
    "al_loop.cli.campaign",
    "al_loop.cli.serve",
    "al_loop.cli.db",
    "al_loop.cli.runs",
)

_built = False


def build_app() -> typer.Typer:
    """Import every command module once (they register on :data:`app`) and return the app."""
    global _built
    if not _built:
        from al_loop.cli.compare import add_compare_command

        for name in COMMAND_MODULES:
            importlib.import_module(name)
        add_compare_command(app)
        _built = True
    return app
