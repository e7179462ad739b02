"""One whole active-learning round at 10^6 items, as a user waits for it (issue 18, target 1).

Run:  python benchmarks/round_1m.py                  (N = 1,000,000 x 384; needs a quiet machine, ~20 GiB free)
      python benchmarks/round_1m.py --quick          (N = 20,000: a sanity run, about a minute)
      python benchmarks/round_1m.py --n 100000 --strategies margin,kcenter --threads 1

The pool is N synthetic 384-d float32 embeddings (the MiniLM size): a seeded
10-class Gaussian mixture (class means ``randn * scale``, unit noise), built
in blocks straight into the float32 matrix, plus a 10,000-item test split.
Each strategy runs in a fresh ``spawn`` child process, through the real code
path of a simulation: :func:`al_loop.api.validate`,
:func:`al_loop.api.record_items`, ``Store.create_run`` on a SQLite store in a
temporary folder, a :class:`~al_loop.controller.Controller` with the
simulated oracle. Round 0 (a random seed batch of ``--labeled`` items), its
dispatch and its simulated labels happen through the controller (the
``setup`` in the notes); then round 1's TRAINING -> SELECTED transition (one
``Controller.step()``) is timed:

- ``train``: ``learner.fit``, as the controller records it (``train_seconds``);
- ``score``: computing the model's outputs over the whole pool (probabilities,
  embeddings, gradient embeddings), timed by wrapping ``ModelView._all`` here;
- ``select``: the strategy's ``select`` (the controller's ``select_seconds``) minus ``score``;
- ``store``: ``Store.commit_selection`` (selection, outbox, metrics in one transaction);
- ``total``: the whole step (also evaluation on the test split, the labels read back, the
  predictions sent with the batch: ``other`` in the notes is total minus the three above);
- ``peak GiB``: the child's resident high-water mark (``VmHWM``, reset through
  ``/proc/self/clear_refs`` right before round 1), ``extra GiB`` that minus the
  resident size right before round 1 (what the round itself added on top of the
  pool, the model and the store).

Before a child starts, the extra memory of its strategy is estimated from the
learner's real output dtypes and widths (a tiny fit in the parent) and the
copies the code makes (the ModelView cache and one copy of it, plus the
strategy's working copies: an upper bound); a strategy whose estimate exceeds
the free memory is refused (the estimate is the note) instead of pushing the
machine into the OOM killer, and the child's address space is capped so that
a misestimate ends in a ``MemoryError`` in the child, not in a killed
neighbour. A strategy refused, failed or timed out at N also runs at
``--fallback-n`` (default 200,000), so there is a measured row. Every child
has a ``--timeout`` (default 900 s).

The ``setup`` row records the item ids of the N items once
(``api.record_items``, as for a features file with an id column), timed; the
strategy children start from a copy of that store (``--no-item-ids``: a pool
built in memory, which records nothing). The ``reference`` row is the plain
numpy floor of a margin round in the same run: the same StandardScaler +
LogisticRegression fit on the same labeled rows, one float32 ``X @ W.T``
over the pool, a softmax, and an ``argpartition`` of the margin; no store.

Prints one markdown table.
"""

from __future__ import annotations

import argparse
import glob
import multiprocessing as mp
import os
import platform
import queue
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GIB = 2**30
DEFAULT_STRATEGIES = "margin,kcenter,badge,typiclust,probcover,fass,similar"
#: learners tried in order of cost when a strategy needs a capability the head lacks
LEARNER_ORDER = ("logreg", "mlp", "mlp_dropout", "mlp_ensemble")
#: resident size of the interpreter with numpy, sklearn, torch and the store loaded (measured: ~0.5 GiB)
RUNTIME_BYTES = int(0.6 * GIB)


# ---------------------------------------------------------------- memory readings (this process)

def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _rss() -> int:
    """Resident bytes now."""
    return _status_kib("VmRSS") * 1024


def _peak() -> int:
    """Resident high-water mark in bytes since the last :func:`_reset_peak`."""
    try:
        return _status_kib("VmHWM") * 1024
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> int:
    """Reset the high-water mark to the resident size (``clear_refs`` 5); return the resident bytes."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _rss()


def _mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def _cap_address_space(extra: int) -> None:
    """Let this process map at most ``extra`` more bytes (numpy then raises MemoryError past it)."""
    now = _status_kib("VmSize") * 1024
    resource.setrlimit(resource.RLIMIT_AS, (now + extra, resource.RLIM_INFINITY))


def _uncap_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


# ---------------------------------------------------------------- data

def make_data(n: int, d: int, n_classes: int, seed: int, scale: float, n_test: int,
              block: int = 65536) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A seeded Gaussian mixture: ``X`` (n, d) float32, ``y`` (n,) int64 and a test split of ``n_test``.

    Class means are ``randn(C, d) * scale``; each item is its class mean plus
    standard normal noise. Rows are drawn block by block into the float32
    matrix, so construction holds the matrix plus one block.
    """
    rng = np.random.default_rng(seed)
    means = (rng.standard_normal((n_classes, d)) * scale).astype(np.float32)
    total = n + n_test
    y_all = rng.integers(0, n_classes, size=total).astype(np.int64)
    X = np.empty((n, d), dtype=np.float32)
    X_test = np.empty((n_test, d), dtype=np.float32)
    for start in range(0, total, block):
        stop = min(total, start + block)
        chunk = rng.standard_normal((stop - start, d), dtype=np.float32)
        chunk += means[y_all[start:stop]]
        if stop <= n:
            X[start:stop] = chunk
        else:  # the block crosses into (or lies in) the test split
            cut = max(0, n - start)
            X[start:start + cut] = chunk[:cut]
            X_test[start + cut - n:stop - n] = chunk[cut:]
    return X, y_all[:n], X_test, y_all[n:]


def _classes(n_classes: int) -> tuple[str, ...]:
    return tuple(f"class{i}" for i in range(n_classes))


def _config(strategy: str, params: dict[str, Any], learner: str, a: dict[str, Any]) -> Any:
    from al_loop.config import RunConfig

    return RunConfig(dataset="minilm-mixture", strategy=strategy, seed=a["seed"], rounds=1, batch=a["batch"],
                     init=a["labeled"], learner=learner, strategy_params=dict(params),
                     dataset_params={"n": a["n"], "d": a["d"], "classes": a["classes"], "scale": a["scale"],
                                     "seed": a["seed"], "test": a["test"]})


def _pool(a: dict[str, Any], item_ids: bool) -> tuple[Any, dict[str, float]]:
    from al_loop.pool import ItemCatalogue, Pool

    t = time.perf_counter()
    X, y, X_test, y_test = make_data(a["n"], a["d"], a["classes"], a["seed"], a["scale"], a["test"])
    t_data = time.perf_counter() - t
    ids = np.arange(a["n"], dtype=np.int64)
    cat = None
    if item_ids:  # what the user knows each item by: the id column of their features file
        cat = ItemCatalogue(ids=ids, item_ids=[f"doc-{i:07d}" for i in range(a["n"])])
    t = time.perf_counter()
    pool = Pool(X=X, ids=ids, classes=_classes(a["classes"]), y=y, X_test=X_test, y_test=y_test,
                name="minilm-mixture", catalogue=cat)
    return pool, {"data_s": t_data, "pool_s": time.perf_counter() - t}


def _threads(n: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def _db_bytes(path: str) -> int:
    return sum(os.path.getsize(p) for p in glob.glob(path + "*"))


# ---------------------------------------------------------------- cases (each runs in a child process)

def case_items(a: dict[str, Any], db: str, q: Any) -> dict[str, Any]:
    """Build the pool and record its N item ids in a fresh store (the template the strategy runs copy)."""
    from al_loop import api
    from al_loop.store import Store

    base = _reset_peak()
    pool, times = _pool(a, item_ids=True)
    config = _config("random", {}, "logreg", a)
    t = time.perf_counter()
    store = Store(db)
    wrote = api.record_items(store, config, pool)
    store.close()
    secs = time.perf_counter() - t
    return {"seconds": secs, "peak": _peak(), "extra": _peak() - base, "wrote": wrote, "db_bytes": _db_bytes(db),
            **times}


def case_round(a: dict[str, Any], strategy: str, params: dict[str, Any], learner_name: str,
               template: str | None, workdir: str, mem_cap: int | None, q: Any) -> dict[str, Any]:
    """Round 0 through the controller (setup), then round 1's TRAINING -> SELECTED, timed and measured."""
    from al_loop import api
    from al_loop.controller import Controller
    from al_loop.store import Store
    from al_loop.types import RoundState
    from al_loop.view import ModelView

    t_setup = time.perf_counter()
    pool, times = _pool(a, item_ids=False)
    config = _config(strategy, params, learner_name, a)
    learner = api.build_learner(learner_name, pool)
    strat = api.build_strategy(strategy, params)
    api.validate(config, pool, learner, strat)
    db = os.path.join(workdir, "round.sqlite")
    if template is not None:
        for path in glob.glob(template + "*"):
            shutil.copy(path, db + path[len(template):])
    store = Store(db)
    api.record_items(store, config, pool)  # an in-memory pool has no catalogue: nothing to write
    run_id = store.create_run(config)
    logs: list[str] = []
    ctl = Controller(store, run_id, pool, learner, strat, api.build_oracle(config, pool), log=logs.append)
    while True:
        rnd = store.current_round(run_id)
        if rnd.idx == 1 and rnd.state == RoundState.TRAINING.value:
            break
        if rnd.idx > 1 or ctl.step() == "done":
            raise RuntimeError(f"round 0 did not lead to round 1 (round {rnd.idx} {rnd.state})")
    setup_s = time.perf_counter() - t_setup
    q.put({"stage": "setup", "seconds": setup_s})  # also starts the queue's feeder thread before the cap

    score: dict[str, float] = {}
    all_orig = ModelView._all

    def timed_all(self: ModelView, what: str) -> np.ndarray:
        if what == "features" or what in self._cache:
            return all_orig(self, what)
        t = time.perf_counter()
        out = all_orig(self, what)
        score[what] = score.get(what, 0.0) + time.perf_counter() - t
        return out

    commit_orig = Store.commit_selection
    commit: list[float] = []

    def timed_commit(self: Store, *args: Any, **kwargs: Any) -> None:
        t = time.perf_counter()
        commit_orig(self, *args, **kwargs)
        commit.append(time.perf_counter() - t)

    ModelView._all = timed_all  # type: ignore[method-assign]
    Store.commit_selection = timed_commit  # type: ignore[method-assign]
    if mem_cap is not None:
        _cap_address_space(mem_cap)
    base = _reset_peak()
    t = time.perf_counter()
    try:
        ctl.step()
    finally:
        total = time.perf_counter() - t
        peak = _peak()
        _uncap_address_space()
        ModelView._all = all_orig  # type: ignore[method-assign]
        Store.commit_selection = commit_orig  # type: ignore[method-assign]
    rnd = store.current_round(run_id)
    if rnd.idx != 1 or rnd.state != RoundState.SELECTED.value:
        raise RuntimeError(f"round 1 ended in state {rnd.state}, not SELECTED")
    metric = next(m for m in store.metrics(run_id) if m.round == 1)
    picks = [s.pool_id for s in store.selections(run_id) if s.round == 1]
    info = store.round_info(run_id).get(1, {})
    store.close()
    return {"train": metric.train_seconds, "select_all": metric.select_seconds, "score": sum(score.values()),
            "score_parts": score, "store": sum(commit), "total": total, "peak": peak, "extra": peak - base,
            "base": base, "setup": setup_s, "picks": picks, "accuracy": metric.accuracy, "info": info,
            "db_bytes": _db_bytes(db), "logs": logs, **times}


def case_reference(a: dict[str, Any], q: Any) -> dict[str, Any]:
    """The plain numpy floor of a margin round: fit, one X @ W.T, softmax, argpartition of the margin."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, _, _ = make_data(a["n"], a["d"], a["classes"], a["seed"], a["scale"], a["test"])
    n = len(X)
    # the controller's round-0 draw: the same labeled rows as the strategy runs
    labeled = np.sort(np.random.default_rng([a["seed"], 0]).choice(np.arange(n), size=a["labeled"], replace=False))
    base = _reset_peak()
    t0 = time.perf_counter()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=1.0))
    model.fit(X[labeled].astype(np.float64), y[labeled])
    t1 = time.perf_counter()
    sc, lr = model[0], model[-1]
    W = (lr.coef_ / sc.scale_).astype(np.float32)  # the scaler folded into the weights
    b = (lr.intercept_ - W.astype(np.float64) @ sc.mean_).astype(np.float32)
    logits = X @ W.T
    logits += b
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    t2 = time.perf_counter()
    top2 = np.partition(logits, logits.shape[1] - 2, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    margin[labeled] = np.inf
    picks = np.argpartition(margin, a["batch"])[:a["batch"]]
    t3 = time.perf_counter()
    return {"train": t1 - t0, "score": t2 - t1, "select": t3 - t2, "total": t3 - t0, "peak": _peak(),
            "extra": _peak() - base, "picks": sorted(int(p) for p in picks)}


def _child(fn_name: str, args: tuple[Any, ...], threads: int, q: Any) -> None:
    _threads(threads)
    try:
        q.put({"stage": "result", "row": globals()[fn_name](*args, q)})
    except BaseException as exc:  # MemoryError included: report it, keep the table going
        _uncap_address_space()
        q.put({"stage": "result", "row": {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}})


def run_child(fn_name: str, args: tuple[Any, ...], threads: int, timeout: float, label: str) -> dict[str, Any]:
    """Run ``fn_name(*args)`` in a spawned child; a dict with ``error`` on failure, death or timeout."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(fn_name, args, threads, q))
    t0 = time.monotonic()
    p.start()
    setup = None
    row: dict[str, Any] | None = None
    while row is None:
        left = timeout - (time.monotonic() - t0)
        if left <= 0:
            p.terminate()
            p.join(10)
            if p.is_alive():
                p.kill()
            where = f"in round 1 (setup took {setup:.0f} s)" if setup is not None else "during setup"
            row = {"error": f"timed out after {timeout:.0f} s {where}", "timed_out": True}
            break
        try:
            msg = q.get(timeout=min(2.0, left))
        except queue.Empty:
            if not p.is_alive():
                try:
                    msg = q.get(timeout=2.0)
                except queue.Empty:
                    code = p.exitcode
                    why = " (killed: out of memory?)" if code in (-9, 137) else ""
                    row = {"error": f"child died with exit code {code}{why}"}
                    break
            else:
                continue
        if msg["stage"] == "setup":
            setup = msg["seconds"]
        else:
            row = msg["row"]
    p.join(30)
    if p.is_alive():
        p.kill()
    if setup is not None:
        row.setdefault("setup", setup)
    secs = row.get("total", row.get("seconds", time.monotonic() - t0))
    status = row.get("error") or f"{secs:.2f} s"
    print(f"  {label}: {status}", file=sys.stderr, flush=True)
    return row


# ---------------------------------------------------------------- learner choice and memory estimates

def probe_learner(name: str, d: int, n_classes: int) -> dict[str, tuple[int, int]]:
    """``{what: (width, itemsize)}`` of the learner's outputs, from a fit on 200 synthetic items."""
    from al_loop import api
    from al_loop.pool import Pool

    X, y, _, _ = make_data(200, d, n_classes, 1, 1.0, 0)
    pool = Pool(X=X, ids=np.arange(200), classes=_classes(n_classes), y=y)
    learner = api.build_learner(name, pool)
    learner.fit(pool, pool.ids, y, seed=0)
    out: dict[str, tuple[int, int]] = {}
    for what, fn in (("proba", "predict_proba"), ("embed", "embed"), ("grad", "grad_embed")):
        try:
            arr = np.asarray(getattr(learner, fn)(pool, pool.ids[:2]))
        except NotImplementedError:
            continue
        out[what] = (int(np.prod(arr.shape[1:])), arr.itemsize)
    return out


def choose_learner(strategy: str, params: dict[str, Any], head: str) -> tuple[str, str | None]:
    """``head`` when it serves ``strategy``, else the cheapest learner of :data:`LEARNER_ORDER` that does."""
    from al_loop import api
    from al_loop.errors import ConfigError

    strat = api.build_strategy(strategy, params)
    for name in (head, *[n for n in LEARNER_ORDER if n != head]):
        try:
            strat.check_learner(api.build_learner(name, None).capabilities)  # type: ignore[arg-type]
        except ConfigError as exc:
            if name == head:
                why = str(exc).split(";")[0]
            continue
        return name, None if name == head else f"{head} refused: {why}"
    raise RuntimeError(f"no learner of {LEARNER_ORDER} serves strategy {strategy!r}")


def estimate(strategy: str, params: dict[str, Any], a: dict[str, Any],
             probe: dict[str, tuple[int, int]]) -> tuple[int | None, str]:
    """Upper-bound estimate of the round's memory beyond the pool (bytes) and what it is made of.

    A model output over the pool is counted twice (the ModelView's batches and
    their concatenation, or the cache and the rows a strategy takes from it);
    the strategies' own copies are read from their code (checked against the
    measured ``extra GiB`` at N = 20,000 and 100,000).
    """
    n, d, u = a["n"], a["d"], a["n"] - a["labeled"]

    def out(what: str) -> int:
        width, size = probe.get(what, (0, 8))
        return n * width * size

    def gib(x: float) -> str:
        return f"{x / GIB:.1f} GiB"

    pca = n * d * 4 + n * d * 8 + 2 * n * 50 * 8  # feature rows (a copy unless consecutive), float64 points, result
    if strategy == "margin":
        return 2 * out("proba"), f"probabilities x2 {gib(2 * out('proba'))}"
    if strategy == "kcenter":
        if params.get("space", "embed") == "features":
            return 2 * n * d * 4, f"feature rows + float32 work {gib(2 * n * d * 4)}"
        return 2 * out("embed") + n * d * 4, f"embed cache x2 {gib(2 * out('embed'))} + float32 work {gib(n * d * 4)}"
    if strategy == "badge" and params.get("gradients", "factored") == "factored":
        c, h = a["classes"], probe.get("embed", (d, 8))[0]  # residuals (n, c) and last-layer inputs (n, h)
        cache, work = n * (c + h) * 8, u * (c + h) * 4
        return cache + work, f"grad factors {n:,} x ({c} + {h}) float64 {gib(cache)} + float32 work {gib(work)}"
    if strategy == "badge":
        width = probe.get("grad", (0, 8))[0]
        return 2 * out("grad") + u * width * 4, (f"grad cache {n:,} x {width} x{probe.get('grad', (0, 8))[1]} B, "
                                                  f"x2 {gib(2 * out('grad'))} + float32 work {gib(u * width * 4)}")
    if strategy == "similar":
        what = {"grad": "grad", "embed": "embed"}.get(params.get("embedding", "grad"), "features")
        width = probe.get(what, (d, 4))[0]
        big = 2 * out(what) if what != "features" else n * d * 4
        unit = 2 * n * width * 4  # the kernel's float32 copy and its unit-normalised rows (metric=cosine)
        return big + unit, f"{what} cache x2 {gib(big)} + float32 unit rows x2 {gib(unit)}"
    if strategy == "fass":
        return 2 * out("embed") + 2 * out("proba"), f"embed cache x2 {gib(2 * out('embed'))}"
    if strategy in ("typiclust", "probcover"):
        if params.get("space", "pca") == "embed":
            return 2 * out("embed"), f"embed cache x2 {gib(2 * out('embed'))}"
        extra = " + ball graph (edges depend on delta)" if strategy == "probcover" else ""
        return pca, f"feature rows + float64 points + projection {gib(pca)}{extra}"
    return None, "no estimate"


# ---------------------------------------------------------------- table

def _s(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


def _g(x: float | None) -> str:
    return "" if x is None else f"{x / GIB:.2f}"


def _mib(x: int) -> str:
    return f"{x / 2**20:,.1f} MiB"


def fmt_row(name: str, learner: str, r: dict[str, Any]) -> str:
    notes = list(r.get("notes", []))
    if "error" in r:
        cells = [name, learner, "", "", "", "", "", "", "", "; ".join([r["error"], *notes])]
        return "| " + " | ".join(cells) + " |"
    cells = [name, learner, _s(r.get("train")), _s(r.get("score")), _s(r.get("select")), _s(r.get("store")),
             _s(r.get("total")), _g(r.get("peak")), _g(r.get("extra")), "; ".join(notes)]
    return "| " + " | ".join(cells) + " |"


def _round_notes(r: dict[str, Any], est: int | None) -> None:
    r["select"] = r["select_all"] - r["score"]
    other = r["total"] - r["train"] - r["select_all"] - r["store"]
    notes = [f"{len(r['picks'])} picks"]
    if r.get("accuracy") is not None:
        notes.append(f"acc {r['accuracy']:.3f}")
    parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["score_parts"].items()))
    if parts:
        notes.append(f"score = {parts}")
    notes.append(f"other {other:.2f} s")
    if est is not None:
        notes.append(f"est. extra {est / GIB:.1f} GiB")
    info = {k: v for k, v in r.get("info", {}).items() if k in ("delta", "n_edges", "n_clusters", "mode",
                                                                  "function", "rare_query", "random_fallback")}
    if info:
        notes.append(", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()))
    notes.append(f"setup {r['setup']:.1f} s, store {_mib(r['db_bytes'])}")
    notes.extend(r.get("logs", [])[:2])
    r["notes"] = notes + r.get("notes", [])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="pool items")
    ap.add_argument("--d", type=int, default=384, help="embedding width")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--labeled", type=int, default=1000, help="round-0 random seed batch")
    ap.add_argument("--batch", type=int, default=1000, help="items selected in round 1")
    ap.add_argument("--strategies", default=DEFAULT_STRATEGIES, help="comma list of registered strategies")
    ap.add_argument("--param", action="append", default=[], metavar="NAME.KEY=VALUE",
                    help="a strategy parameter, as al-loop's --param (repeatable)")
    ap.add_argument("--learner", default="logreg", help="the head (a strategy that needs more gets the cheapest "
                                                        "learner that has it)")
    ap.add_argument("--fallback-n", type=int, default=200_000,
                    help="N for a strategy refused, failed or timed out at --n")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per child process")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="BLAS/torch threads per child")
    ap.add_argument("--max-gib", type=float, default=None,
                    help="memory a round may add beyond the pool (default: MemAvailable at start minus "
                         "the pool and 1 GiB)")
    ap.add_argument("--scale", type=float, default=0.2, help="spread of the class means (0.2: ~93%% accuracy)")
    ap.add_argument("--test", type=int, default=10_000, help="test split size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-item-ids", action="store_true", help="skip recording N item ids in the store")
    ap.add_argument("--no-reference", action="store_true", help="skip the numpy reference row")
    ap.add_argument("--quick", action="store_true", help="N = 20,000: a sanity run")
    args = ap.parse_args()
    if args.quick:
        args.n = 20_000
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # inherited by the spawned children

    from al_loop.params import parse_params

    names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    params = parse_params(args.param, names)
    a = {"n": args.n, "d": args.d, "classes": args.classes, "labeled": args.labeled, "batch": args.batch,
         "scale": args.scale, "test": args.test, "seed": args.seed}
    t_start = time.time()
    load0 = os.getloadavg()[0]
    avail = _mem_available()

    def budget(n: int) -> int:
        if args.max_gib is not None:
            return int(args.max_gib * GIB)
        return max(GIB, avail - n * args.d * 4 - RUNTIME_BYTES - GIB)

    learners = {s: choose_learner(s, params[s], args.learner) for s in names}
    probes = {ln: probe_learner(ln, args.d, args.classes) for ln, _ in set(learners.values())}
    rows: list[tuple[str, str, dict[str, Any]]] = []
    templates: dict[int, str | None] = {}
    tmp = tempfile.mkdtemp(prefix="round_1m_")
    try:
        def template(n: int) -> str | None:
            if args.no_item_ids:
                return None
            if n not in templates:
                db = os.path.join(tmp, f"items-{n}.sqlite")
                an = dict(a, n=n)
                r = run_child("case_items", (an, db), args.threads, args.timeout, f"setup N={n:,}")
                if "error" in r:
                    rows.append((f"setup N={n:,}", "-", r))
                    templates[n] = None
                else:
                    r["total"] = r["seconds"]
                    r["notes"] = [f"api.record_items of {n:,} item ids {r['seconds']:.1f} s; synthesize the "
                                  f"pool {r['data_s']:.1f} s, Pool() {r['pool_s']:.1f} s; store {_mib(r['db_bytes'])}"]
                    rows.append((f"setup: record_items, N={n:,}", "-", r))
                    templates[n] = db
            return templates[n]

        template(args.n)
        ref = None
        if not args.no_reference:
            ref = run_child("case_reference", (a,), args.threads, args.timeout, "reference")
            if "error" not in ref:
                ref["notes"] = [f"{len(ref['picks'])} picks; StandardScaler + LogisticRegression(max_iter=500) "
                                "fit, float32 X @ W.T + softmax, argpartition; no store"]
            rows.append(("reference: numpy margin round", "sklearn LR", ref))

        for s in names:
            learner, why_learner = learners[s]
            sizes = [args.n] + ([args.fallback_n] if args.fallback_n < args.n else [])
            for n in sizes:
                an = dict(a, n=n)
                est, est_text = estimate(s, params[s], an, probes[learner])
                cap = budget(n)
                label = s if n == args.n else f"{s} @ N={n:,}"
                if est is not None and est > cap:
                    r = {"error": f"refused: est. {est / GIB:.1f} GiB beyond the pool ({est_text}) > "
                                  f"{cap / GIB:.1f} GiB allowed"}
                    print(f"  {label}: {r['error']}", file=sys.stderr, flush=True)
                    rows.append((label, learner, r))
                    continue
                workdir = tempfile.mkdtemp(dir=tmp)
                r = run_child("case_round", (an, s, params[s], learner, template(n), workdir, cap + GIB),
                              args.threads, args.timeout, label)
                shutil.rmtree(workdir, ignore_errors=True)
                if "error" in r:
                    if est is not None:
                        r["notes"] = [f"est. extra {est / GIB:.1f} GiB ({est_text})"]
                else:
                    _round_notes(r, est)
                    if why_learner:
                        r["notes"].append(why_learner)
                    if s == "margin" and ref is not None and "error" not in ref and n == args.n:
                        same = len(set(r["picks"]) & set(ref["picks"]))
                        ref["notes"].append(f"{same}/{len(ref['picks'])} of margin's picks")
                rows.append((label, learner, r))
                if "error" not in r:
                    break
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nN = {args.n:,} x d = {args.d} float32 ({args.n * args.d * 4 / GIB:.2f} GiB), {args.classes} classes, "
          f"{args.labeled:,} labeled (round 0, random), batch {args.batch:,}; {platform.processor() or platform.machine()}"
          f", {os.cpu_count()} cores, {args.threads} thread(s) per child, MemAvailable {avail / GIB:.1f} GiB; "
          f"load average {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end; {time.time() - t_start:.0f} s in all\n")
    print("| strategy | learner | train s | score s | select s | store s | total s | peak GiB | extra GiB | notes |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, learner, r in rows:
        print(fmt_row(name, learner, r))


if __name__ == "__main__":
    main()
