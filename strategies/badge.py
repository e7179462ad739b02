"""BADGE: batch active learning by diverse gradient embeddings, Ash et al. (ICLR 2020).

Each unlabeled point is represented by the gradient of the cross-entropy
loss, at the model's own predicted label, with respect to the last layer's
weights (``view.grad_embed``: ``(p - e_yhat) (x) h``, norm large when the model
is uncertain); the batch is chosen by k-means++ seeding (Arthur &
Vassilvitskii 2007) in that space, which trades off magnitude (uncertainty)
against diversity.

First center: the paper's Algorithm 1 runs plain k-means++ seeding; the
authors' released implementation (``init_centers`` in the BADGE repository)
starts from the embedding of largest norm, and so do we by default
(``first="max_norm"``; ties to the smaller global id). ``first="random"``
draws it uniformly from ``rng`` (textbook k-means++). Every later center is
drawn with probability proportional to its squared distance to the nearest
chosen center (D^2 sampling) with the round's ``ctx.rng``.

Seeding is incremental: the O(N) vector of squared distances to the nearest
center is updated with one pass over the embeddings per pick
(:class:`strategies._geometry.MinSqDist`), never an N x N matrix. Each
gradient embedding is an outer product ``r_i (x) h_i``, so by default the
embeddings are never formed: the pass runs over the two factors
(:class:`strategies._geometry.ProductMinSqDist`, ``gradients="factored"``).

Frame: :func:`kmeanspp_seed` works on row positions; :class:`Badge` maps ids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from al_loop.errors import ConfigError
from al_loop.lazy import lazy_import
from al_loop.registry import STRATEGIES
from al_loop.strategy import Strategy
from al_loop.types import QueryContext, Selection
from al_loop.view import ModelView
from strategies._geometry import (
    DTYPES,
    MinSqDist,
    ProductMinSqDist,
    as_matrix,
    check_dtype,
    torch_dtype,
    working_copy,
)

torch = lazy_import("torch")  # imported on first use: listing strategies stays fast

FIRST = ("max_norm", "random")
#: ``factored``: distances from the two factors of each gradient (:class:`ProductMinSqDist`; the
#: default when the learner gives them); ``whole``: the formed ``(N, c d)`` matrix, as published
GRADIENTS = ("factored", "whole")


def kmeanspp_seed(G: Any, k: int, rng: np.random.Generator, *, first: str = "max_norm",
                  dtype: str | torch.dtype | None = None) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ seeding of ``k`` rows of ``G``.

    Parameters
    ----------
    G : ndarray or Tensor, shape (N, D)
        Points (BADGE: gradient embeddings of the candidates). Used without a
        copy when already a contiguous matrix of the working dtype.
    k : int
        Centers to pick; clamped to ``N``.
    rng : numpy.random.Generator
        The only randomness (one ``rng.random()`` per D^2 draw, one
        ``rng.integers`` for ``first="random"``).
    first : {"max_norm", "random"}
        Rule for the first center (see the module docstring).
    dtype : {"float32", "float64", "float16", "bfloat16"} or None
        Working dtype (None: keep ``G``'s).

    Returns
    -------
    picks : ndarray of int64, shape (min(k, N),)
        Row positions in pick order.
    scores : ndarray of float64, shape (min(k, N),)
        Squared norm for the first pick (``first="max_norm"``; 0 for
        ``"random"``), then the squared distance to the nearest earlier
        center at the time of each pick.

    Notes
    -----
    A row at distance 0 from the chosen centers (a duplicate) has weight 0 and
    is never drawn while any row has positive weight; when none has, the
    smallest not-yet-chosen position is taken (forced).
    """
    if first not in FIRST:
        raise ConfigError(f"kmeanspp_seed got first={first!r}; use one of {', '.join(FIRST)}")
    Gt = as_matrix(G, "gradient embeddings", torch_dtype(dtype, "kmeanspp_seed"))
    return _seed(MinSqDist(Gt), Gt.shape[0], Gt.device, k, rng, first)


def kmeanspp_seed_factored(R: Any, H: Any, k: int, rng: np.random.Generator, *, first: str = "max_norm",
                           dtype: str | torch.dtype | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`kmeanspp_seed` of the rows ``g_i = outer(R[i], H[i]).ravel()``, never formed.

    Parameters
    ----------
    R : ndarray or Tensor, shape (N, c)
    H : ndarray or Tensor, shape (N, d)
        Factors of the points (:meth:`al_loop.view.ModelView.grad_factors`); distances come from
        :class:`strategies._geometry.ProductMinSqDist`, so memory is ``N (c + d)`` instead of ``N c d``.
    k, rng, first, dtype
        As :func:`kmeanspp_seed` (None: the dtype of ``H``).

    Returns
    -------
    picks, scores
        As :func:`kmeanspp_seed`; the same picks as on the formed rows up to floating rounding
        (the two compute the same distances in a different order).
    """
    if first not in FIRST:
        raise ConfigError(f"kmeanspp_seed got first={first!r}; use one of {', '.join(FIRST)}")
    Ht = as_matrix(H, "gradient embeddings", torch_dtype(dtype, "kmeanspp_seed"))
    Rt = as_matrix(R, "gradient embeddings", Ht.dtype)
    return _seed(ProductMinSqDist(Rt, Ht), Ht.shape[0], Ht.device, k, rng, first)


def _seed(md: MinSqDist | ProductMinSqDist, n: int, device: Any, k: int, rng: np.random.Generator,
          first: str) -> tuple[np.ndarray, np.ndarray]:
    """The k-means++ draws over ``md``'s squared distances (see :func:`kmeanspp_seed`)."""
    k = min(int(k), n)
    picks = np.empty(k, dtype=np.int64)
    scores = np.zeros(k, dtype=np.float64)
    if k == 0:
        return picks, scores
    taken = torch.zeros(n, dtype=torch.bool, device=device)
    cs = torch.empty(n, dtype=torch.float64, device=device)
    if first == "max_norm":
        pos = int(torch.argmax(md.sq))
        scores[0] = float(md.sq[pos])
    else:
        pos = int(rng.integers(n))
    for i in range(k):
        if i:
            torch.cumsum(md.mind, dim=0, dtype=torch.float64, out=cs)
            total = float(cs[-1])
            if total > 0:
                u = rng.random() * total
                pos = int(torch.searchsorted(cs, torch.tensor([u], dtype=torch.float64, device=cs.device),
                                             right=True)[0])
                if pos >= n or float(md.mind[pos]) <= 0:  # u rounded up to the total: the last positive weight
                    pos = int(torch.nonzero(md.mind > 0).flatten()[-1])
            else:  # every remaining row duplicates a center: forced
                pos = int(torch.nonzero(~taken).flatten()[0])
            scores[i] = float(md.mind[pos])
        picks[i] = pos
        taken[pos] = True
        md.add(pos)
        md.mind[pos] = 0.0  # weight 0: never drawn again
    return picks, scores


@STRATEGIES.register("badge")
@dataclass
class Badge(Strategy):
    """BADGE (Ash et al. 2020): k-means++ seeding on last-layer gradient embeddings.

    Parameters
    ----------
    first : {"max_norm", "random"}
        First-center rule (``max_norm`` follows the authors' code).
    dtype : {"float32", "float64", "float16", "bfloat16"}
        Working dtype of the embeddings during seeding.
    gradients : {"factored", "whole"}
        ``factored`` (default): each gradient embedding ``(p - e_yhat) h^T`` stays as its two
        factors and distances come from ``<g_i, g_j> = <r_i, r_j> <h_i, h_j>``, ``N (c + d)``
        numbers instead of ``N c d`` (at 10^6 items x 384 x 10 classes: 1.6 GB instead of 15 GB
        in float32, and passes 10x cheaper); a learner that gives only whole gradients uses the
        whole form. ``whole``: the formed matrix, as in the paper and the authors' code. Both
        compute the same distances, in a different floating order.
    """

    name = "badge"
    use_when: ClassVar[str] = (
        "batches are large and should be both uncertain and diverse (needs a learner with gradient "
        "embeddings).")
    requires = frozenset({"grad"})

    first: str = "max_norm"
    dtype: str = "float32"
    gradients: str = "factored"

    def __post_init__(self) -> None:
        if self.first not in FIRST:
            raise ConfigError(f"strategy {self.name!r} got first={self.first!r}; use one of {', '.join(FIRST)}")
        if self.gradients not in GRADIENTS:
            raise ConfigError(f"strategy {self.name!r} got gradients={self.gradients!r}; "
                              f"use one of {', '.join(GRADIENTS)}")
        check_dtype(self.dtype, f"strategy {self.name!r}")

    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        t0 = time.perf_counter()
        ids = np.asarray(ctx.unlabeled_ids, dtype=np.int64)  # ascending: position order = id order
        # the whole pool's factors are read-only views of the cache; the unlabeled rows are gathered
        # straight into the working dtype (taking them first would copy the float64 cache: 3 GB at 10^6 x 384)
        factors = view.grad_factors(view.pool.ids) if self.gradients == "factored" else None
        if factors is not None:
            R, H = factors
            dt, rows = DTYPES[self.dtype], view.pool.rows(ids)
            picks, scores = kmeanspp_seed_factored(working_copy(R, "gradient embeddings", dt, rows=rows),
                                                   working_copy(H, "gradient embeddings", dt, rows=rows), budget,
                                                   ctx.rng, first=self.first)
            form = "factored"
        else:
            G = working_copy(np.asarray(view.grad_embed(ids)).reshape(len(ids), -1), "gradient embeddings",
                             DTYPES[self.dtype])
            picks, scores = kmeanspp_seed(G, budget, ctx.rng, first=self.first)
            form = "whole"
        return Selection(ids=ids[picks], scores=scores,
                         info={"seconds": time.perf_counter() - t0, "gradients": form})
