"""How fast the CLI answers: ``--help``, ``status`` and ``strategies``, against the eager imports of before.

Each command runs as a fresh process ``REPEATS`` times; the table gives the
median and the best wall time, the peak resident memory of the child and
whether torch / scikit-learn were imported. The references, timed in the
same run: an empty interpreter (``python -c pass``) and the imports the CLI
made eagerly before it became lazy (``al_loop.api`` and ``al_loop.reports``,
which pull in numpy, scikit-learn, sqlmodel and matplotlib).

    python benchmarks/cli_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPORT = ("import json, resource, sys; print(json.dumps({'torch': 'torch' in sys.modules, 'sklearn': 'sklearn' in "
          "sys.modules, 'rss': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), file=sys.stderr)")


def probe(argv: list[str]) -> str:
    """Code that runs the CLI with ``argv`` in a fresh interpreter, then reports."""
    return (f"import sys; sys.argv = {argv!r}; from al_loop.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n" + REPORT)


def timed(cmd: list[str]) -> tuple[float, dict[str, object]]:
    """Wall time of one fresh process and what it reported (modules imported, peak RSS in KiB)."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    return wall, json.loads(proc.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--reference-tree", type=Path, default=None,
                        help="a checkout of an older al-loop (e.g. `git worktree add /tmp/old 41d662b`): its "
                             "commands are timed too, as the reference")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    db = tmp / "s.sqlite"
    subprocess.run([sys.executable, "-c", "from al_loop.cli import main; main()", "simulate", "--dataset", "iris",
                    "--strategy", "random", "--rounds", "2", "--batch", "5", "--init", "6", "--db", str(db)],
                   capture_output=True, check=True)
    cases = {
        "reference: python -c pass": [sys.executable, "-c", REPORT],
        "reference: eager imports of the old CLI": [sys.executable, "-c",
                                                    "import al_loop.api, al_loop.reports\n" + REPORT],
        "al-loop --help": [sys.executable, "-c", probe(["al-loop", "--help"])],
        "al-loop status --db s.sqlite": [sys.executable, "-c", probe(["al-loop", "status", "--db", str(db)])],
        "al-loop strategies": [sys.executable, "-c", probe(["al-loop", "strategies"])],
    }
    if args.reference_tree is not None:
        import os

        old = str(args.reference_tree.resolve())
        for label, argv in (("--help", ["al-loop", "--help"]), ("status", ["al-loop", "status", "--db", str(db)]),
                            ("strategies", ["al-loop", "strategies"])):
            unhook = ("import sys; sys.meta_path = [f for f in sys.meta_path "  # the editable install maps al_loop here
                      "if not type(f).__module__.startswith('__editable__')]\n")
            cases[f"reference: {label} of {args.reference_tree.name}"] = [
                "env", f"--chdir={old}", f"PYTHONPATH={old}", sys.executable, "-c", unhook + probe(argv)]
        del os
    print("| command | median s | best s | peak RSS MiB | torch / sklearn imported |")
    print("|---|---|---|---|---|")
    for name, cmd in cases.items():
        walls, peaks, flags = [], [], ""
        for _ in range(args.repeats):
            wall, got = timed(cmd)
            walls.append(wall)
            peaks.append(float(got["rss"]) / 1024.0)  # type: ignore[arg-type]
            flags = f"{'yes' if got['torch'] else 'no'} / {'yes' if got['sklearn'] else 'no'}"
        print(f"| {name} | {statistics.median(walls):.3f} | {min(walls):.3f} | {max(peaks):.0f} | {flags} |")


if __name__ == "__main__":
    main()
