"""Per-round model view: probabilities and embeddings over the pool, once.

Every strategy of a round reads from one :class:`ModelView`; each quantity is
computed lazily for the whole pool in batches, checked for NaN/Inf, cached,
and indexed by global id. The cache keeps the learner's dtype (float32
embeddings stay float32); a request for consecutive rows returns a read-only
view of it, any other request a copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from al_loop.errors import DataError

if TYPE_CHECKING:
    from al_loop.learners.base import Learner
    from al_loop.pool import Pool


class ModelView:
    """Cached model outputs for one round.

    Parameters
    ----------
    pool : Pool
    learner : Learner or None
        A fitted learner (None before the first labels: only ``features``).
    batch_size : int
        Rows per forward pass.
    """

    def __init__(self, pool: Pool, learner: Learner | None, batch_size: int = 8192) -> None:
        self.pool = pool
        self.learner = learner
        self.batch_size = batch_size
        self._cache: dict[Any, Any] = {}  # what -> tuple of arrays; posterior score keys -> array

    _NOUNS = {"proba": "probabilities", "embed": "embeddings", "grad": "gradient embeddings",
              "grad_factors": "gradient embeddings"}
    _METHODS = {"proba": "predict_proba", "embed": "embed", "grad": "grad_embed", "grad_factors": "grad_factors"}

    def _all(self, what: str) -> tuple[np.ndarray, ...]:
        """The whole pool's ``what``: one array, or the two of ``grad_factors``."""
        if what in self._cache:
            return self._cache[what]
        if what == "features":
            outs: tuple[np.ndarray, ...] = (np.asarray(self.pool.X).reshape(len(self.pool), -1),)
        else:
            if self.learner is None:
                raise DataError(f"no model is trained yet, so there are no {self._NOUNS[what]}; "
                                "label a seed set first")
            fn = getattr(self.learner, self._METHODS[what])
            ids = self.pool.ids
            filled: list[np.ndarray] | None = None  # batch by batch into preallocated arrays (no list of parts)
            for start in range(0, max(1, len(ids)), self.batch_size):
                parts = fn(self.pool, ids[start:start + self.batch_size])
                parts = tuple(np.asarray(p) for p in (parts if isinstance(parts, tuple) else (parts,)))
                if filled is None:
                    filled = [np.empty((len(ids),) + p.shape[1:], dtype=p.dtype) for p in parts]
                for out, part in zip(filled, parts, strict=True):
                    out[start:start + len(part)] = part
            assert filled is not None
            outs = tuple(filled)
            if any(o.dtype.kind == "f" and not np.isfinite(o).all() for o in outs):
                raise DataError(
                    f"the learner produced NaN or Inf {self._NOUNS[what]}; check the features for extreme "
                    "values or lower the learning rate"
                )
        self._cache[what] = outs
        return outs

    def _take(self, what: str, ids: np.ndarray, part: int = 0) -> np.ndarray:
        """Rows of ``ids``; consecutive rows (the whole pool in id order, the common case) are a read-only
        view of the cache, not a copy (at 10^6 x 384 a copy is 1.5 GB in float32)."""
        out = self._all(what)[part]
        rows = self.pool.rows(ids)
        if rows.size and rows[-1] - rows[0] == rows.size - 1 and np.array_equal(rows, np.arange(rows[0], rows[-1] + 1)):
            view = out[int(rows[0]):int(rows[-1]) + 1].view()
            view.flags.writeable = False  # shared by every strategy of the round: copy before changing it
            return view
        return out[rows]

    def proba(self, ids: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (len(ids), n_classes), columns = ``pool.classes``."""
        return self._take("proba", ids)

    def proba_of(self, ids: np.ndarray) -> np.ndarray:
        """Like :meth:`proba` but computes only ``ids`` when the pool was not scored here
        (e.g. the scoring ran on a cluster)."""
        if "proba" in self._cache or self.learner is None:
            return self.proba(ids)
        return np.asarray(self.learner.predict_proba(self.pool, np.asarray(ids, dtype=np.int64)))

    def embed(self, ids: np.ndarray) -> np.ndarray:
        """Penultimate-layer embeddings (or input features), shape (len(ids), d)."""
        return self._take("embed", ids)

    def grad_embed(self, ids: np.ndarray) -> np.ndarray:
        """Last-layer gradient embeddings with the predicted label, shape (len(ids), D)."""
        return self._take("grad", ids)

    def grad_factors(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The factors ``(R, H)`` of :meth:`grad_embed` (see
        :meth:`al_loop.learners.base.Learner.grad_factors`), shapes (len(ids), c) and
        (len(ids), d); None when the learner gives its gradients only whole."""
        from al_loop.learners.base import has_grad_factors

        if self.learner is not None and not has_grad_factors(self.learner):
            return None
        return self._take("grad_factors", ids, 0), self._take("grad_factors", ids, 1)

    def posterior(self, ids: np.ndarray, samples: int, seed: int) -> np.ndarray:
        """Posterior predictive samples of ``ids`` only, shape (len(ids), K, n_classes), float32.

        Not cached and never computed for the whole pool: at 10^6 items x 20
        passes x 10 classes the whole tensor would be 800 MB. Use
        :meth:`posterior_scores` for a per-item score over the pool.
        """
        ids = np.asarray(ids, dtype=np.int64)
        parts = [self._posterior_chunk(ids[start:start + self.batch_size], samples, seed)
                 for start in range(0, len(ids), self.batch_size)]
        if not parts:
            return np.zeros((0, max(1, samples), self.pool.n_classes), dtype=np.float32)
        return np.concatenate(parts, axis=0)

    def posterior_scores(self, name: str, score: Callable[[np.ndarray], np.ndarray], ids: np.ndarray,
                         samples: int, seed: int) -> np.ndarray:
        """``score`` of the posterior samples of every pool item, streamed; returns those of ``ids``.

        ``score`` maps (m, K, C) samples to (m,) scores. The pool is scored in
        chunks of ``batch_size`` items, so memory holds one chunk's samples
        (``batch_size * K * C`` floats) and the (n,) scores, which are cached
        under ``(name, samples, seed)``.
        """
        key = f"posterior:{name}:{int(samples)}:{int(seed)}"
        if key not in self._cache:
            pool_ids = self.pool.ids
            out = np.empty(len(pool_ids), dtype=np.float64)
            for start in range(0, len(pool_ids), self.batch_size):
                chunk = pool_ids[start:start + self.batch_size]
                out[start:start + len(chunk)] = score(self._posterior_chunk(chunk, samples, seed))
            self._cache[key] = out
        return self._cache[key][self.pool.rows(np.asarray(ids, dtype=np.int64))]

    def _posterior_chunk(self, ids: np.ndarray, samples: int, seed: int) -> np.ndarray:
        if self.learner is None:
            raise DataError("no model is trained yet, so there are no posterior samples; label a seed set first")
        out = np.asarray(self.learner.posterior_proba(self.pool, ids, samples, seed))
        if out.ndim != 3 or out.shape[0] != len(ids) or out.shape[2] != self.pool.n_classes:
            raise RuntimeError(f"{type(self.learner).__name__}.posterior_proba returned shape {out.shape} for "
                               f"{len(ids)} ids and {self.pool.n_classes} classes; expected (n, K, C)")
        if not np.isfinite(out).all():
            raise DataError("the learner produced NaN or Inf posterior samples; check the features for extreme "
                            "values or lower the learning rate")
        return out

    def features(self, ids: np.ndarray) -> np.ndarray:
        """Raw inputs flattened, shape (len(ids), d)."""
        return self._take("features", ids)
