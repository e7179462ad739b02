"""Speed and memory of the submodular core (selection only, plus kernel build time).

Usage::

    python benchmarks/submodular.py            # full run (~8 min on 2 cores)
    python benchmarks/submodular.py --quick    # small sizes, seconds
    python benchmarks/submodular.py --only fl  # rows whose function starts with "fl"

Each row runs in a fresh subprocess so that its peak resident memory is its
own: "peak MiB" is ``ru_maxrss`` at the end minus ``ru_maxrss`` right after the
imports (``import al_loop`` pulls in torch, about 650 MiB, printed once), so it
counts the data, kernel, memo and temporaries of the row.
Data: a Gaussian mixture (100 centres) in ``d`` dimensions, float32, cosine
kernel; ``Q`` and ``P`` are drawn from the same mixture with a fixed seed.
Prints ONE markdown table: function, mode, N, d, k, method, build s, select s,
peak MiB, objective.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _data(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(100, d)).astype(np.float32)
    out = np.empty((n, d), dtype=np.float32)
    step = 65536
    for s in range(0, n, step):
        m = min(step, n - s)
        out[s:s + m] = centres[rng.integers(0, 100, m)] + rng.normal(size=(m, d)).astype(np.float32)
    return out


def run_row(row: dict) -> dict:
    """Build and maximise one workload in this process; returns the measured row."""
    sys.path.insert(0, ROOT)
    from strategies.submodular import build_function, maximize

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # imports (al_loop pulls in torch)
    X = _data(row["N"], row["d"], 0)
    Xq = _data(row.get("nq", 0), row["d"], 1) if row.get("nq") else None
    Xp = _data(row.get("np", 0), row["d"], 2) if row.get("np") else None
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    f = build_function(row["function"], X, Xq, Xp, kernel=row["mode"], n_neighbors=row.get("nn", 10),
                       cells=row.get("cells"), rng=rng, eta=row.get("eta", 1.0), nu=row.get("nu", 1.0))
    t1 = time.perf_counter()
    res = maximize(f, row["k"], row["method"], rng=np.random.default_rng(1), epsilon=0.01)
    t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return dict(row, build_s=round(t1 - t0, 2), select_s=round(t2 - t1, 2), peak_mib=round(peak - base),
                import_mib=round(base),
                objective=res.value, evaluations=int(res.evaluations))


def rows(quick: bool) -> list[dict]:
    if quick:
        return [
            {"function": "fl", "mode": "dense", "N": 2000, "d": 32, "k": 100, "method": "lazy"},
            {"function": "fl", "mode": "dense", "N": 2000, "d": 32, "k": 100, "method": "naive"},
            {"function": "fl", "mode": "dense", "N": 2000, "d": 32, "k": 100, "method": "stochastic"},
            {"function": "fl", "mode": "sparse", "N": 5000, "d": 32, "k": 100, "method": "lazy"},
            {"function": "flvmi", "mode": "dense", "N": 2000, "d": 32, "k": 100, "method": "lazy", "nq": 20},
            {"function": "flcmi", "mode": "dense", "N": 2000, "d": 32, "k": 100, "method": "lazy", "nq": 20,
             "np": 20},
            {"function": "gcmi", "mode": "dense", "N": 20000, "d": 64, "k": 100, "method": "lazy", "nq": 20},
            {"function": "logdetmi", "mode": "dense", "N": 2000, "d": 32, "k": 50, "method": "lazy", "nq": 20},
        ]
    big = {"mode": "sparse", "N": 1_000_000, "d": 128, "k": 1000, "method": "lazy", "cells": 1000}
    out = [
        {"function": "fl", "mode": "dense", "N": 10_000, "d": 64, "k": 1000, "method": "lazy"},
        {"function": "fl", "mode": "dense", "N": 10_000, "d": 64, "k": 1000, "method": "stochastic"},
        {"function": "fl", "mode": "sparse", "N": 50_000, "d": 64, "k": 1000, "method": "lazy"},
        {"function": "fl", "mode": "sparse", "N": 50_000, "d": 512, "k": 1000, "method": "lazy"},
        {"function": "flvmi", "mode": "dense", "N": 10_000, "d": 64, "k": 1000, "method": "lazy", "nq": 50},
        {"function": "flqmi", "mode": "dense", "N": 10_000, "d": 64, "k": 1000, "method": "lazy", "nq": 50},
        {"function": "flcmi", "mode": "dense", "N": 10_000, "d": 64, "k": 1000, "method": "lazy", "nq": 50,
         "np": 50},
        {"function": "gcmi", "mode": "dense", "N": 200_000, "d": 512, "k": 1000, "method": "lazy", "nq": 50},
    ]
    for name in ("fl", "gc", "flvmi", "flqmi", "gcmi", "com", "flcg", "gccg", "flcmi"):
        out.append(dict(big, function=name, nq=50 if name in ("flvmi", "flqmi", "gcmi", "com", "flcmi") else 0,
                        np=50 if name in ("flcg", "gccg", "flcmi") else 0))
    for name in ("logdet", "logdetmi", "logdetcg", "logdetcmi"):
        out.append(dict(big, function=name, k=100, nq=50 if "mi" in name else 0,
                        np=50 if name in ("logdetcg", "logdetcmi") else 0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    ap.add_argument("--only", default="", help="run rows whose function starts with this")
    ap.add_argument("--row", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.row:
        print(json.dumps(run_row(json.loads(args.row))))
        return
    print(f"# load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print("| function | mode | N | d | k | method | build s | select s | peak MiB | objective |")
    imports = None
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows(args.quick):
        if not row["function"].startswith(args.only):
            continue
        proc = subprocess.run([sys.executable, __file__, "--row", json.dumps(row)], capture_output=True, text=True)
        if proc.returncode != 0:
            err = (proc.stderr.strip().splitlines() or ["?"])[-1]
            print(f"| {row['function']} | {row['mode']} | {row['N']} | {row['d']} | {row['k']} | {row['method']} "
                  f"| failed: {err} | | | |", flush=True)
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        imports = r["import_mib"]
        extra = "".join(f" Q={r[key]}" if key == "nq" else f" P={r[key]}" for key in ("nq", "np") if r.get(key))
        print(f"| {r['function']}{extra} | {r['mode']} | {r['N']} | {r['d']} | {r['k']} | {r['method']} "
              f"| {r['build_s']} | {r['select_s']} | {r['peak_mib']} | {r['objective']:.6g} |", flush=True)
    print(f"# load average at end: {os.getloadavg()[0]:.2f}; import baseline (not in peak MiB): {imports} MiB")


if __name__ == "__main__":
    main()
