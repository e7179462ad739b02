"""The ``al-loop`` command line: a thin typer layer over :mod:`al_loop.api`.

:func:`main` owns the process's manners: a user error prints one line
(``error: ...``) and exits 2; a usage error (unknown option, bad value,
missing option) prints one line naming the option and exits 2; Ctrl-C exits
130 and SIGTERM 143, each with one line saying what stopped, that the store
is consistent and how to go on. Only the standard library is imported at
module level, so an interrupt while the rest is imported prints no traceback.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of our output went away (`al-loop export | head`)

_received: dict[str, int | None] = {"signal": None}


def _on_sigterm(signum: int, _frame: object) -> None:
    _received["signal"] = signum
    raise KeyboardInterrupt


def _plugin_args(args: list[str]) -> tuple[list[str], list[str]]:
    """Split ``--plugin MODULE`` / ``--plugin=MODULE`` (anywhere on the line) from the other arguments."""
    plugins: list[str] = []
    rest: list[str] = []
    it = iter(range(len(args)))
    for i in it:
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        if arg == "--plugin":
            if i + 1 >= len(args):
                rest.append(arg)  # let the parser report the missing value
                continue
            plugins.append(args[i + 1])
            next(it, None)
        elif arg.startswith("--plugin="):
            plugins.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return plugins, rest


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _print_error(message: str) -> None:
    print(f"error: {_one_line(message)}", file=sys.stderr, flush=True)


def _run(args: list[str]) -> int:
    from typer._click import exceptions as click_exc  # typer bundles its own click
    from typer.exceptions import Abort, Exit
    from typer.main import get_command

    from al_loop.cli._common import reset_interrupt_hint
    from al_loop.cli.app import build_app
    from al_loop.errors import AlLoopError
    from al_loop.registry import import_plugins

    reset_interrupt_hint()
    plugins, args = _plugin_args(args)
    try:
        import_plugins(plugins)
        command = get_command(build_app())
        with command.make_context("al-loop", args) as ctx:
            command.invoke(ctx)
        return 0
    except click_exc.NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx is not None else _one_line(exc.format_message()))
        return 0
    except click_exc.UsageError as exc:
        hint = ""
        if exc.ctx is not None:
            hint = f" (see `{exc.ctx.command_path} --help`)"
        _print_error(exc.format_message() + hint)
        return EXIT_USAGE
    except click_exc.ClickException as exc:
        _print_error(exc.format_message())
        return EXIT_USAGE
    except Exit as exc:
        return int(exc.exit_code or 0)
    except Abort:
        raise KeyboardInterrupt from None
    except AlLoopError as exc:
        _print_error(str(exc))
        return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``al-loop``); exits with 0, 2 (usage or data), 130 (Ctrl-C) or 143 (SIGTERM)."""
    args = list(sys.argv[1:] if argv is None else argv)
    _received["signal"] = None
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave SIGTERM alone
        previous = None
    try:
        code = _run(args)
    except KeyboardInterrupt:
        code = _interrupted()
    except BrokenPipeError:
        code = _broken_pipe()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    raise SystemExit(code)


def _broken_pipe() -> int:
    """The reader closed the pipe: stop quietly (no traceback when Python flushes stdout at exit)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def _interrupted() -> int:
    terminated = _received["signal"] == signal.SIGTERM
    try:
        from al_loop.cli._common import interrupt_message

        line = interrupt_message("SIGTERM" if terminated else "Ctrl-C")
    except BaseException:  # interrupted while the CLI itself was imported
        line = "interrupted"
    print(f"\n{line}", file=sys.stderr, flush=True)
    return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


if __name__ == "__main__":
    main()
