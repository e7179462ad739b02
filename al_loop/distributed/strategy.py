"""A Strategy wrapper that routes pool scoring and selection through Dask.

``distribute(strategy, runner)`` wraps a built strategy; the controller calls
``select(view, ctx, budget)`` as usual and gets global ids back. Inside, the
pool is wrapped as a :class:`~al_loop.distributed.chunked.ChunkedPool`
(persisted on the workers once per run), the fitted learner is shipped once
per round as one graph key, and:

=================================  =====================================================
strategy                           distributed path
=================================  =====================================================
entropy, margin, least_confidence  chunked scoring + exact top-b tree (same ids as one machine)
kcenter                            two-round k-center (GreeDi) on embeddings or features
fass                               exact distributed uncertainty filter (top ``beta * b``),
                                   then the single-machine FASS pick on the filtered rows
                                   in one task (same ids as one machine)
=================================  =====================================================

Database writes and oracle calls stay with the controller in the driver; the
wrapper only computes.

Id frame: ``ctx`` holds global ids, so does the returned Selection.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from al_loop.distributed._deps import dask
from al_loop.distributed.chunked import DEFAULT_CHUNK_ROWS, ChunkedPool, from_pool
from al_loop.distributed.client import DaskRunner
from al_loop.distributed.scoring import (
    MEASURES,
    _chunk_top,
    _merge_top,
    embed_array,
    learner_in_graph,
    proba_array,
    uncertainty_array,
    uncertainty_top_k,
)
from al_loop.distributed.selection import DEFAULT_PARTITION_ROWS, two_round_kcenter
from al_loop.errors import ConfigError
from al_loop.strategy import Strategy
from al_loop.types import QueryContext, Selection
from al_loop.view import ModelView

#: Strategy names with a distributed path.
SUPPORTED = (*MEASURES, "kcenter", "fass")


class DistributedSelection(Strategy):
    """Run ``inner``'s pool scoring and selection on Dask.

    Parameters
    ----------
    inner : Strategy
        A built strategy whose ``name`` is in :data:`SUPPORTED`; its
        parameters are used as they are.
    runner : DaskRunner
        From :func:`al_loop.distributed.make_client`; owned by the caller.
    chunk_rows : int
        Rows per pool chunk.
    partition_rows : int
        Target rows per partition of two-round k-center (the number of
        partitions follows from the pool size, never from the worker count).
    n_partitions : int, optional
        Fix the number of partitions instead.

    Notes
    -----
    Uncertainty and FASS give the single-machine batch exactly. Two-round
    k-center gives the single-machine batch when one partition suffices
    (pools up to ``partition_rows``), else a batch whose covering radius is
    within a small factor of it; it depends on the round seed, ``chunk_rows``
    and the partitioning, so a resumed run must use the same values.
    """

    def __init__(self, inner: Strategy, runner: DaskRunner, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 partition_rows: int = DEFAULT_PARTITION_ROWS, n_partitions: int | None = None) -> None:
        if inner.name not in SUPPORTED:
            raise ConfigError(f"strategy {inner.name!r} has no distributed implementation; with --cluster use one "
                              f"of {', '.join(SUPPORTED)}")
        if chunk_rows < 1 or partition_rows < 1 or (n_partitions is not None and n_partitions < 1):
            raise ConfigError("chunk_rows, partition_rows and n_partitions must be positive")
        self.inner = inner
        self.runner = runner
        self.chunk_rows = int(chunk_rows)
        self.partition_rows = int(partition_rows)
        self.n_partitions = n_partitions
        self.name = inner.name  # type: ignore[misc]
        self.requires = inner.requires  # type: ignore[misc]
        self.chunked_: ChunkedPool | None = None
        self.chunked_for_: int | None = None

    def params(self) -> dict[str, Any]:
        """The inner strategy's parameters (what the run record stores)."""
        return self.inner.params()

    def check_learner(self, capabilities: frozenset[str]) -> None:
        self.inner.check_learner(capabilities)

    # --- helpers -----------------------------------------------------------------------
    def _chunked(self, view: ModelView) -> ChunkedPool:
        """The pool as chunks persisted on the workers, built once per pool object."""
        if self.chunked_ is None or self.chunked_for_ != id(view.pool):
            chunked = from_pool(view.pool, self.chunk_rows)
            X, ids = self.runner.persist(chunked.X, chunked.ids)
            self.chunked_ = ChunkedPool(X=X, ids=ids, classes=chunked.classes)
            self.chunked_for_ = id(view.pool)
        return self.chunked_

    def _vectors(self, view: ModelView, pool: ChunkedPool, space: str, model: Any) -> Any:
        if space == "features":
            X = pool.X
            return X.reshape(X.shape[0], -1) if X.ndim > 2 else X
        if view.learner is None:
            raise ConfigError("no model is trained yet, so there are no embeddings; label a seed set first")
        first = view.pool.ids[:1]
        dim = int(np.asarray(view.learner.embed(view.pool, first)).reshape(1, -1).shape[1])
        return embed_array(pool, model, dim)

    @staticmethod
    def _exclude(view: ModelView, ctx: QueryContext) -> np.ndarray:
        return np.setdiff1d(view.pool.ids, np.asarray(ctx.unlabeled_ids, dtype=np.int64))

    # --- selection ---------------------------------------------------------------------
    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        pool = self._chunked(view)
        exclude = self._exclude(view, ctx)
        if self.name in MEASURES:
            return uncertainty_top_k(self.runner, pool, view.learner, self.name, budget, exclude)
        model = learner_in_graph(view.learner)
        if self.name == "kcenter":
            inner: Any = self.inner
            X = self._vectors(view, pool, inner.space, model)
            return two_round_kcenter(self.runner, X, pool.ids, budget, ctx.rng, labeled_ids=ctx.labeled_ids,
                                     exclude_ids=exclude, n_partitions=self.n_partitions,
                                     partition_rows=self.partition_rows, metric=inner.metric, dtype=inner.dtype,
                                     prune=inner.prune)
        return self._fass(view, ctx, budget, pool, model, exclude)

    def _fass(self, view: ModelView, ctx: QueryContext, budget: int, pool: ChunkedPool, model: Any,
              exclude: np.ndarray) -> Selection:
        """FASS: the exact top ``ceil(beta * b)`` filter on the cluster, then its pick in one task."""
        import math

        inner: Any = self.inner
        if inner.measure not in MEASURES:
            raise ConfigError(f"unknown uncertainty measure {inner.measure!r}; valid: {', '.join(MEASURES)}")
        n_unl = len(ctx.unlabeled_ids)
        m = min(n_unl, max(budget, math.ceil(inner.beta * budget)))
        proba = proba_array(pool, model)
        emb = self._vectors(view, pool, "embed", model)
        scores = uncertainty_array(proba, inner.measure)
        pred = proba.argmax(axis=1)
        excl = dask.delayed(np.unique(exclude), traverse=False) if exclude.size else None
        level = [dask.delayed(_top_with_rows, pure=True)(i, s, p, e, m, excl, f"{inner.measure} scores")
                 for i, s, p, e in zip(pool.ids.to_delayed().ravel(), scores.to_delayed().ravel(),
                                       pred.to_delayed().ravel(), emb.to_delayed().ravel(), strict=True)]
        while len(level) > 1:
            level = [dask.delayed(_merge_with_rows, pure=True)(*level[j:j + 2], k=m) for j in range(0, len(level), 2)]
        labeled = np.asarray(ctx.labeled_ids, dtype=np.int64)
        from al_loop.distributed.chunked import gather_rows

        lab_rows = gather_rows(emb, pool.ids, labeled)
        params = {"beta": inner.beta, "function": inner.function, "optimizer": inner.optimizer,
                  "epsilon": inner.epsilon, "lam": inner.lam, "reg": inner.reg, "metric": inner.metric,
                  "n_neighbors": inner.n_neighbors}
        task = dask.delayed(_fass_task, pure=True)(level[0], lab_rows, labeled, np.asarray(ctx.labels, np.int64),
                                                   budget, params, ctx.rng)
        ids, gains, info = self.runner.compute(task)
        info.update({"distributed": True, "chunks": pool.n_chunks})
        return Selection(ids=np.asarray(ids, np.int64), scores=np.asarray(gains, np.float64), info=info)


def _top_with_rows(ids: np.ndarray, scores: np.ndarray, pred: np.ndarray, emb: np.ndarray, k: int,
                   exclude: np.ndarray | None, what: str) -> tuple[np.ndarray, ...]:
    ids = np.asarray(ids, dtype=np.int64)
    keep = np.ones(len(ids), dtype=bool) if exclude is None else ~np.isin(ids, exclude)
    top_ids, top_scores = _chunk_top(ids[keep], scores[keep], k, None, what)
    rows = _positions(ids, top_ids)
    return top_ids, top_scores, np.asarray(pred)[rows], np.asarray(emb)[rows]


def _positions(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions in ``ids`` (unique, any order) of the global ids ``wanted`` (all present)."""
    order = np.argsort(ids, kind="stable")
    return order[np.searchsorted(ids[order], wanted)]


def _merge_with_rows(*parts: tuple[np.ndarray, ...], k: int) -> tuple[np.ndarray, ...]:
    ids = np.concatenate([p[0] for p in parts])
    top_ids, top_scores = _merge_top(*((p[0], p[1]) for p in parts), k=k)
    rows = _positions(ids, top_ids)
    return (top_ids, top_scores, np.concatenate([p[2] for p in parts])[rows],
            np.concatenate([p[3] for p in parts], axis=0)[rows])


def _fass_task(filtered: tuple[np.ndarray, ...], lab_rows: tuple[np.ndarray, np.ndarray], labeled: np.ndarray,
               labels: np.ndarray, budget: int, params: dict[str, Any],
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    from strategies.fass import fass_select

    ids, scores, pred, emb = filtered
    order = np.argsort(ids, kind="stable")  # ascending ids: ties favour the smaller id, as on one machine
    ids, scores, pred, emb = ids[order], scores[order], pred[order], emb[order]
    lab_ids, lab_X = lab_rows
    y = np.asarray(labels)[_positions(labeled, lab_ids)] if lab_ids.size else np.zeros(0, np.int64)
    X_lab = lab_X if lab_ids.size else np.zeros((0, emb.shape[1]))
    pos, gains, info = fass_select(emb, pred, scores, X_lab, y, budget, rng=rng, **params)
    return ids[pos], gains, info


def distribute(strategy: Strategy, runner: DaskRunner, **options: Any) -> DistributedSelection:
    """Wrap a built strategy so its scoring and selection run on ``runner``.

    Parameters
    ----------
    strategy : Strategy
        Its ``name`` must be in :data:`SUPPORTED` (else a one-line ConfigError).
    runner : DaskRunner
    **options : chunk_rows, partition_rows, n_partitions (see :class:`DistributedSelection`).
    """
    return DistributedSelection(strategy, runner, **options)
