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
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROBE = ("import sys, json, runpy; sys.argv = {argv!r}; "
         "from al_loop.cli import main\n"
         "try:\n    main()\nexcept SystemExit:\n    pass\n"
         "print(json.dumps({{'torch': 'torch' in sys.modules, 'sklearn': 'sklearn' in sys.modules}}), file=sys.stderr)")


def timed(cmd: list[str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024.0, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    db = tmp / "s.sqlite"
    subprocess.run([sys.executable, "-c", "from al_loop.cli import main; main()", "simulate", "--dataset", "iris",
                    "--strategy", "random", "--rounds", "2", "--batch", "5", "--init", "6", "--db", str(db)],
                   capture_output=True, check=True)
    cases = {
        "reference: python -c pass": [sys.executable, "-c", "pass"],
        "reference: eager imports of the old CLI": [sys.executable, "-c", "import al_loop.api, al_loop.reports"],
        "al-loop --help": [sys.executable, "-c", PROBE.format(argv=["al-loop", "--help"])],
        "al-loop status --db s.sqlite": [sys.executable, "-c", PROBE.format(argv=["al-loop", "status", "--db",
                                                                                 str(db)])],
        "al-loop strategies": [sys.executable, "-c", PROBE.format(argv=["al-loop", "strategies"])],
    }
    print("| command | median s | best s | peak RSS MiB (max so far) | torch / sklearn imported |")
    print("|---|---|---|---|---|")
    for name, cmd in cases.items():
        walls, peaks, flags = [], [], ""
        for _ in range(args.repeats):
            wall, peak, last = timed(cmd)
            walls.append(wall)
            peaks.append(peak)
            if last.startswith("{"):
                got = json.loads(last)
                flags = f"{'yes' if got['torch'] else 'no'} / {'yes' if got['sklearn'] else 'no'}"
        print(f"| {name} | {statistics.median(walls):.3f} | {min(walls):.3f} | {max(peaks):.0f} | {flags or '-'} |")


if __name__ == "__main__":
    main()
