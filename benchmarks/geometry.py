"""Speed and memory of the geometric strategies: k-center greedy, CAL, BADGE.

Run:  python benchmarks/geometry.py            (default sizes, a few minutes on 2 cores)
      python benchmarks/geometry.py --quick    (small sanity run, seconds)

Prints ONE table. Every case runs in a fresh subprocess and the peak
resident memory mark (VmHWM) is reset right after the input matrices were
made: ``peak MiB`` is the process's peak during the case (python + torch +
inputs + work), ``extra MiB`` that peak minus the resident memory before the
case started (what the algorithm itself added).

The memory-bandwidth floor of an incremental greedy step is one ``X @ v``
over the same matrix, timed in the same process right before and after the
case (the machine may be shared; the floor moves with the load, so the ratio
is what to compare). ``ratio`` is seconds per pass over the matrix divided
by that floor. A k-center run from ``n_l`` labeled points makes ``1 + k``
passes (the labeled centers in one blocked matrix product, then one per
pick); BADGE makes ``k``. ``numpy-sgemv`` is the plain loop a user would
write (one GEMM for the labeled points, one ``sgemv`` per pick), timed in
the same run: ours should never be slower than it.

Synthetic data: "clustered" embeddings are 64 Gaussian clusters with
different spreads (like penultimate features of a trained classifier);
"isotropic" is one standard Gaussian (the worst case for pruning).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    """Peak resident memory since the last :func:`_reset_peak` (VmHWM), else since start."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> float:
    """Reset the peak-RSS mark to the current RSS (Linux ``clear_refs`` 5) and return the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _rss_mib()


def _data(n: int, d: int, kind: str, seed: int) -> Any:
    import torch

    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    if kind == "clustered":
        n_clusters = 64
        means = torch.randn(n_clusters, d, generator=g)
        spread = 0.15 + 0.25 * torch.rand(n_clusters, generator=g)
        assign = torch.randint(0, n_clusters, (n,), generator=g)
        step = 65536
        for s in range(0, n, step):
            a = assign[s:s + step]
            X[s:s + step].mul_(spread[a, None]).add_(means[a])
    return X


def _floor(X: Any, reps: int = 7) -> float:
    """Median seconds of one matrix-vector product over all of X (the bandwidth floor)."""
    import torch

    v = X[0].clone()
    out = torch.empty(X.shape[0], dtype=X.dtype)
    torch.mv(X, v, out=out)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.mv(X, v, out=out)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


# ---------------------------------------------------------------- cases (each runs in a child process)

def case_kcenter(n: int, d: int, k: int, n_lab: int, kind: str, variant: str, ref_k: int) -> dict[str, Any]:
    import torch

    from strategies.kcenter import _PrunedState, k_center_greedy

    X = _data(n, d, kind, seed=0)
    centers = np.arange(0, n, n // n_lab)[:n_lab]
    base = _reset_peak()
    row: dict[str, Any] = {"method": f"kcenter-{variant}", "N": n, "d": d, "k": k, "data": kind}
    if variant == "numpy-ref":  # plain reference loop: one (N, d) temporary per step
        Xn = X.numpy()
        f0 = _floor(X)
        t = time.perf_counter()
        # the labeled centers by the norm expansion (untimed setup); the timed steps are the naive loop
        sq = (Xn * Xn).sum(axis=1)
        mind = np.full(n, np.inf, dtype=np.float32)
        for c in centers:
            mind = np.minimum(mind, np.maximum(sq + sq[c] - 2 * (Xn @ Xn[c]), 0))
        mind[centers] = -np.inf
        picks = []
        t_steps = time.perf_counter()
        for _ in range(ref_k):
            p = int(np.argmax(mind))
            picks.append(p)
            mind = np.minimum(mind, ((Xn - Xn[p]) ** 2).sum(axis=1))
            mind[p] = -np.inf
        per_pass = (time.perf_counter() - t_steps) / ref_k
        secs = per_pass * ref_k
        f1 = _floor(X)
        ours, _ = k_center_greedy(X, centers, ref_k)
        row.update(k=ref_k, seconds=secs, per_pass_ms=per_pass * 1e3, floor_ms=(f0 + f1) / 2 * 1e3,
                   note=f"same picks as ours: {ours.tolist() == picks}")
    elif variant == "numpy-sgemv":  # the plain loop a user would write: one GEMM for the labeled, one sgemv a step
        Xn = X.numpy()
        f0 = _floor(X)
        t = time.perf_counter()
        sq = np.einsum("ij,ij->i", Xn, Xn)
        mind = np.full(n, np.inf, dtype=np.float32)
        C, c_sq = Xn[centers], sq[centers]
        step = max(1, (64 << 20) // (4 * max(1, len(centers))))
        for s in range(0, n, step):
            blk = sq[s:s + step, None] + c_sq[None, :] - 2 * (Xn[s:s + step] @ C.T)
            mind[s:s + step] = np.maximum(blk.min(axis=1), 0)
        mind[centers] = -np.inf
        picks_ref = np.empty(k, dtype=np.int64)
        dot = np.empty(n, dtype=np.float32)
        for i in range(k):
            p = int(np.argmax(mind))
            picks_ref[i] = p
            np.dot(Xn, Xn[p], out=dot)
            dot *= -2
            dot += sq
            dot += sq[p]
            np.maximum(dot, 0, out=dot)
            np.minimum(mind, dot, out=mind)
            mind[p] = -np.inf
        secs = time.perf_counter() - t
        f1 = _floor(X)
        row.update(seconds=secs, per_pass_ms=secs / (k + 1) * 1e3, floor_ms=(f0 + f1) / 2 * 1e3,
                   picks=picks_ref.tolist(), note="reference")
    else:
        dtype = {"plain": "float32", "pruned": "float32", "float16": "float16", "bfloat16": "bfloat16"}[variant]
        Xw = X if dtype == "float32" else X.to(getattr(torch, dtype))
        if dtype != "float32":
            del X
            base = _reset_peak()
        f0 = _floor(Xw)
        rows_read = None
        t = time.perf_counter()
        if variant == "pruned":
            orig_init = _PrunedState.__init__
            states: list[Any] = []

            def spy(self, *a, **kw):  # count the rows the pruned variant reads
                orig_init(self, *a, **kw)
                states.append(self)
            _PrunedState.__init__ = spy  # type: ignore[method-assign]
            picks, scores = k_center_greedy(Xw, centers, k, prune=True)
            _PrunedState.__init__ = orig_init  # type: ignore[method-assign]
            rows_read = states[0].rows_read
        else:
            picks, scores = k_center_greedy(Xw, centers, k)
        secs = time.perf_counter() - t
        f1 = _floor(Xw)
        passes = 1 + k  # the labeled centers are one blocked product, then one pass per pick
        row.update(seconds=secs, per_pass_ms=secs / passes * 1e3, floor_ms=(f0 + f1) / 2 * 1e3,
                   picks=picks.tolist(), scores=scores.tolist())
        note = f"r_k={scores[-1]:.3f}"
        if rows_read is not None:
            note += f"; read {rows_read / (passes * n):.1%} of rows, {states[0].whole_passes} whole passes"
        row["note"] = note
    row["peak_mib"] = _peak_mib()
    row["extra_mib"] = row["peak_mib"] - base
    return row


def case_cal(n: int, d: int, n_lab: int, budget: int, n_classes: int, variant: str) -> dict[str, Any]:
    import torch

    from al_loop.strategy import top_k
    from strategies.cal import cal_scores

    X = _data(n, d, "clustered", seed=1)
    g = torch.Generator().manual_seed(2)
    proba = torch.softmax(3 * torch.randn(n, n_classes, generator=g, dtype=torch.float64), dim=1).numpy()
    lab = np.arange(0, n, n // n_lab)[:n_lab]
    unl = np.setdiff1d(np.arange(n), lab)
    emb_u, emb_l = X[torch.from_numpy(unl)], X[torch.from_numpy(lab)]
    del X
    p_u, p_l = proba[unl], proba[lab]
    base = _reset_peak()
    t = time.perf_counter()
    if variant == "ours":
        scores, _ = cal_scores(emb_u, emb_l, p_u, p_l, 10)
    else:  # plain reference: full n_u x n_l float64 distance matrix, argpartition, KL in numpy
        U, Lm = emb_u.numpy().astype(np.float64), emb_l.numpy().astype(np.float64)
        D = (U * U).sum(1)[:, None] + (Lm * Lm).sum(1)[None, :] - 2 * U @ Lm.T
        nbr = np.argpartition(D, 10, axis=1)[:, :10]
        del D
        pl = p_l[nbr]  # (n_u, 10, C)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(pl > 0, pl * (np.log(pl) - np.log(np.maximum(p_u, 1e-12))[:, None, :]), 0).sum(-1)
        scores = kl.mean(1)
    sel = top_k(unl, scores, budget)
    secs = time.perf_counter() - t
    return {"method": f"cal-{variant}", "N": n, "d": d, "k": budget, "data": f"{n_lab} labeled, C={n_classes}",
            "seconds": secs, "peak_mib": _peak_mib(), "extra_mib": _peak_mib() - base, "picks": sel.ids.tolist(),
            "note": f"mean top score {sel.scores.mean():.4f}"}


def case_badge(n: int, dim_h: int, n_classes: int, k: int, variant: str, ref_k: int) -> dict[str, Any]:
    import torch

    from strategies.badge import kmeanspp_seed

    D = dim_h * n_classes
    # realistic gradient embeddings (p - e_yhat) x h, built block by block: no (N, C, d) temporary
    g = torch.Generator().manual_seed(3)
    G = torch.empty(n, D)
    step = 16384
    for s in range(0, n, step):
        m = min(step, n - s)
        h = torch.relu(torch.randn(m, dim_h, generator=g))
        p = torch.softmax(2 * torch.randn(m, n_classes, generator=g), dim=1)
        p[torch.arange(m), p.argmax(1)] -= 1
        G[s:s + m] = (p[:, :, None] * h[:, None, :]).reshape(m, D)
    base = _reset_peak()
    f0 = _floor(G)
    t = time.perf_counter()
    if variant == "ours":
        kmeanspp_seed(G, k, np.random.default_rng(0))
        passes, note = k, "incremental D^2 seeding"
    else:  # plain loop: (N, D) temporary per pick, numpy sampling
        Gn = G.numpy()
        rng = np.random.default_rng(0)
        sq = (Gn * Gn).sum(1)
        picks_l = [int(np.argmax(sq))]
        mind = ((Gn - Gn[picks_l[0]]) ** 2).sum(1)
        for _ in range(ref_k - 1):
            w = np.maximum(mind, 0).astype(np.float64)
            p = int(rng.choice(n, p=w / w.sum()))
            picks_l.append(p)
            mind = np.minimum(mind, ((Gn - Gn[p]) ** 2).sum(1))
        passes, note = ref_k, "numpy loop"
        k = ref_k
    secs = time.perf_counter() - t
    f1 = _floor(G)
    return {"method": f"badge-{variant}", "N": n, "d": D, "k": k, "data": f"d={dim_h} x C={n_classes}",
            "seconds": secs, "per_pass_ms": secs / passes * 1e3, "floor_ms": (f0 + f1) / 2 * 1e3,
            "peak_mib": _peak_mib(), "extra_mib": _peak_mib() - base, "note": note}


def _child(fn_name: str, kwargs: dict[str, Any], q: Any) -> None:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    try:
        q.put(globals()[fn_name](**kwargs))
    except Exception as exc:  # report, keep the table going
        q.put({"method": fn_name, "error": f"{type(exc).__name__}: {exc}"})


def run_case(fn_name: str, **kwargs: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(fn_name, kwargs, q))
    p.start()
    row = q.get()
    p.join()
    print(f"  done {row.get('method')} in {row.get('seconds', float('nan')):.2f}s", file=sys.stderr, flush=True)
    return row


def _fmt(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"| {row['method']} | error: {row['error']} |"
    ratio = row["per_pass_ms"] / row["floor_ms"] if "floor_ms" in row else None
    cells = [row["method"], row.get("data", ""), f"{row['N']:,}", str(row["d"]), str(row["k"]),
             f"{row['seconds']:.2f}", f"{row['peak_mib']:.0f}", f"{row['extra_mib']:.0f}",
             f"{row['per_pass_ms']:.2f}" if "per_pass_ms" in row else "",
             f"{row['floor_ms']:.2f}" if "floor_ms" in row else "",
             f"{ratio:.2f}x" if ratio is not None else "", row.get("note", "")]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sanity run")
    ap.add_argument("--no-scale", action="store_true", help="skip the N=1,000,000 scale check")
    ap.add_argument("--only", choices=("kcenter",), help="run only these rows")
    args = ap.parse_args()
    if args.quick:
        n, d, k, n_lab, big_n, ref_k = 20_000, 64, 100, 20, 50_000, 5
        cal_n, badge_h, badge_k = 20_000, 32, 50
    else:
        n, d, k, n_lab, big_n, ref_k = 200_000, 512, 1000, 100, 1_000_000, 10
        cal_n, badge_h, badge_k = 200_000, 128, 200
    t0 = time.time()
    load0 = os.getloadavg()[0]
    rows = []
    kc = dict(n=n, d=d, n_lab=n_lab, ref_k=ref_k)
    rows.append(run_case("case_kcenter", k=k, kind="clustered", variant="plain", **kc))
    rows.append(run_case("case_kcenter", k=k, kind="clustered", variant="pruned", **kc))
    rows.append(run_case("case_kcenter", k=k // 3, kind="clustered", variant="float16", **kc))
    rows.append(run_case("case_kcenter", k=k, kind="clustered", variant="numpy-sgemv", **kc))
    rows.append(run_case("case_kcenter", k=k, kind="clustered", variant="numpy-ref", **kc))
    rows.append(run_case("case_kcenter", k=k // 10, kind="isotropic", variant="plain", **kc))
    rows.append(run_case("case_kcenter", k=k // 10, kind="isotropic", variant="pruned", **kc))
    if args.only == "kcenter":
        args.no_scale = True
    if args.only is None:
        rows.append(run_case("case_cal", n=cal_n, d=d, n_lab=1000 if not args.quick else 200, budget=k,
                             n_classes=10, variant="ours"))
        rows.append(run_case("case_cal", n=cal_n, d=d, n_lab=1000 if not args.quick else 200, budget=k,
                             n_classes=10, variant="reference"))
        rows.append(run_case("case_badge", n=n, dim_h=badge_h, n_classes=10, k=badge_k, variant="ours",
                             ref_k=ref_k))
        rows.append(run_case("case_badge", n=n, dim_h=badge_h, n_classes=10, k=badge_k, variant="numpy-ref",
                             ref_k=ref_k))
    if not args.no_scale:
        rows.append(run_case("case_kcenter", n=big_n, d=128, k=100, n_lab=100, kind="clustered", variant="plain",
                             ref_k=ref_k))
        rows.append(run_case("case_kcenter", n=big_n, d=128, k=100, n_lab=100, kind="clustered",
                             variant="pruned", ref_k=ref_k))
        rows.append(run_case("case_cal", n=big_n, d=128, n_lab=1000, budget=1000, n_classes=10, variant="ours"))
        rows.append(run_case("case_badge", n=big_n, dim_h=128, n_classes=1, k=100, variant="ours", ref_k=ref_k))

    # agreement notes computed from the child results
    by = {(r["method"], r.get("data"), r.get("N")): r for r in rows if "error" not in r}
    plain = by.get(("kcenter-plain", "clustered", n))
    for r in rows:
        if "error" in r or r.get("N") != n or plain is None:
            continue
        if r["method"] == "kcenter-pruned" and r.get("data") == "clustered":
            r["note"] += f"; picks identical to plain: {r['picks'] == plain['picks']}"
        if r["method"] == "kcenter-numpy-sgemv":
            r["note"] += f"; same picks as plain: {r['picks'] == plain['picks']}; plain takes " \
                         f"{plain['seconds'] / r['seconds']:.2f}x its time"
        if r["method"] == "kcenter-float16":
            m = len(r["picks"])
            overlap = len(set(r["picks"]) & set(plain["picks"][:m])) / m
            r["note"] += f"; overlap with float32 first {m}: {overlap:.1%} (float32 r_{m}=" \
                         f"{_radius_at(plain, m):.3f})"
    iso = [r for r in rows if r.get("data") == "isotropic" and "error" not in r]
    if len(iso) == 2:
        iso[1]["note"] += f"; picks identical to plain: {iso[0]['picks'] == iso[1]['picks']}"
    cal = [r for r in rows if r["method"].startswith("cal-") and r.get("N") == cal_n and "error" not in r]
    if len(cal) == 2:
        cal[0]["note"] += f"; same batch as reference: {sorted(cal[0]['picks']) == sorted(cal[1]['picks'])}; " \
                          f"{cal[1]['seconds'] / cal[0]['seconds']:.1f}x faster"

    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch threads={os.cpu_count()}, load average at start {load0:.2f}, at end {os.getloadavg()[0]:.2f}; "
          f"total {time.time() - t0:.0f}s\n")
    print("| method | data | N | d | k | seconds | peak MiB | extra MiB | ms/pass | floor ms | ratio | notes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(_fmt(r))


def _radius_at(row: dict[str, Any], m: int) -> float:
    return float(row["scores"][m - 1]) if len(row.get("scores", [])) >= m else float("nan")


if __name__ == "__main__":
    main()
