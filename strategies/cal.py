"""Contrastive active learning (CAL), Margatina et al., EMNLP 2021.

A candidate is contrastive when it lies close to labeled examples in the
embedding space but the model predicts differently for it. For each
unlabeled candidate ``x_p`` with its ``k`` nearest *labeled* neighbours
``x_l`` (Euclidean or cosine distance between embeddings), the score is

    s(x_p) = 1/k * sum_l KL( p(y | x_l) || p(y | x_p) )

(Margatina et al. 2021, Algorithm 1, with the model's predicted
distributions for both) and the batch is the top-b scores, ties to the
smaller global id.

``KL(p || q) = sum_c p_c log p_c - sum_c p_c log q_c`` with ``0 log 0 = 0``;
``q`` is floored at ``eps`` so a class the candidate gives probability 0 keeps
the score finite. Since the first term depends on the neighbour only, the
mean over neighbours is ``mean_l sum_c p_lc log p_lc - (mean_l p_l) . log q``:
O(k C) per candidate.

Frame: :func:`cal_scores` works on row positions (of the candidate and the
labeled matrices); :class:`ContrastiveAL` maps global ids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from al_loop.errors import ConfigError, DataError
from al_loop.lazy import lazy_import
from al_loop.registry import STRATEGIES
from al_loop.strategy import Strategy, top_k
from al_loop.types import QueryContext, Selection
from al_loop.view import ModelView
from strategies._geometry import (
    BLOCK_BYTES,
    as_matrix,
    check_metric,
    knn_blocked,
    row_sq_norms,
    rows_per_block,
    tensor_of,
    torch_dtype,
    working_copy,
)

torch = lazy_import("torch")  # imported on first use: listing strategies stays fast

BACKENDS = ("torch", "faiss")


def cal_scores(emb_candidates: Any, emb_labeled: Any, proba_candidates: Any, proba_labeled: Any, k: int = 10,
               metric: str = "euclidean", *, block_bytes: int = BLOCK_BYTES, dtype: str | torch.dtype = "float32",
               backend: str = "torch", eps: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """CAL scores of the candidates and their labeled neighbours.

    Parameters
    ----------
    emb_candidates : ndarray or Tensor, shape (n_u, d)
        Embeddings of the candidates (unlabeled), row ``i`` = candidate ``i``.
    emb_labeled : ndarray or Tensor, shape (n_l, d)
        Embeddings of the labeled points; the only possible neighbours.
    proba_candidates : ndarray, shape (n_u, C)
    proba_labeled : ndarray, shape (n_l, C)
        Model's predicted class distributions (rows sum to 1).
    k : int
        Neighbours per candidate; clamped to ``n_l``.
    metric : {"euclidean", "cosine"}
    block_bytes : int
        Memory of one candidates x labeled distance block (never more).
    dtype : {"float32", "float64", ...}
        Dtype of the neighbour search (float32 by default).
    backend : {"torch", "faiss"}
        ``faiss`` (exact ``IndexFlat``) if installed; its tie order is its own.
    eps : float
        Floor of the candidate probabilities inside the log.

    Returns
    -------
    scores : ndarray of float64, shape (n_u,)
        Mean KL divergence from the neighbours' predictions to the candidate's.
    neighbours : ndarray of int64, shape (n_u, k')
        Row positions into ``emb_labeled``, nearest first (ties: smaller position).
    """
    check_metric(metric, "cal_scores")
    if backend not in BACKENDS:
        raise ConfigError(f"cal_scores got backend={backend!r}; use one of {', '.join(BACKENDS)}")
    if int(k) < 1:
        raise ConfigError(f"CAL needs k >= 1 neighbours, got k={k}; use k=10 as in Margatina et al. 2021")
    tdt = torch_dtype(dtype, "cal_scores")
    assert tdt is not None
    Pu = _proba(proba_candidates, "candidate probabilities")
    Pl = _proba(proba_labeled, "labeled probabilities")
    if metric == "cosine":
        U = working_copy(emb_candidates, "candidate embeddings", tdt, normalize=True, block_bytes=block_bytes)
        L = working_copy(emb_labeled, "labeled embeddings", tdt, normalize=True, block_bytes=block_bytes)
    else:
        U = as_matrix(emb_candidates, "candidate embeddings", tdt)
        L = as_matrix(emb_labeled, "labeled embeddings", tdt)
    n_u, n_l = U.shape[0], L.shape[0]
    if n_l == 0:
        raise DataError("CAL needs labeled points to find neighbours among; label a seed set first")
    if U.shape[1] != L.shape[1] or Pu.shape[0] != n_u or Pl.shape[0] != n_l or Pu.shape[1] != Pl.shape[1]:
        raise DataError(f"CAL inputs disagree in shape: embeddings {tuple(U.shape)}/{tuple(L.shape)}, "
                        f"probabilities {Pu.shape}/{Pl.shape}; pass rows of the same items")
    k = min(int(k), n_l)
    if backend == "faiss":
        nbr = _faiss_knn(U, L, k)
    else:
        nbr, _ = knn_blocked(U, L, k, block_bytes=block_bytes, r_sq=row_sq_norms(L, block_bytes))
    # KL(p_l || q) = sum p_l log p_l - p_l . log q
    Plt = tensor_of(Pl)
    neg_ent_l = torch.where(Plt > 0, Plt * torch.log(Plt.clamp(min=1e-300)), torch.zeros_like(Plt)).sum(dim=1)
    scores = torch.empty(n_u, dtype=torch.float64)
    step = rows_per_block(k * Pl.shape[1], 8, block_bytes)
    nbr_cpu = nbr.cpu()
    for s in range(0, n_u, step):
        idx = nbr_cpu[s:s + step]
        mean_p = Plt[idx].mean(dim=1)  # (b, C)
        log_q = torch.log(tensor_of(Pu[s:s + step]).clamp(min=eps))
        scores[s:s + step] = neg_ent_l[idx].mean(dim=1) - (mean_p * log_q).sum(dim=1)
    return scores.numpy(), nbr_cpu.numpy()


def _proba(P: Any, name: str) -> np.ndarray:
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2:
        raise DataError(f"{name} must be a 2-D (n, C) matrix, got shape {P.shape}")
    if not np.isfinite(P).all():
        raise DataError(f"{name} contain NaN or Inf; check the learner's outputs (a diverged model)")
    if (P < 0).any():
        raise DataError(f"{name} contain negative values; pass probabilities, not logits")
    return P


def _faiss_knn(U: torch.Tensor, L: torch.Tensor, k: int) -> torch.Tensor:
    try:
        import faiss  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError("CAL backend='faiss' needs the faiss package; pip install faiss-cpu or use "
                          "backend='torch'") from None
    index = faiss.IndexFlatL2(L.shape[1])
    index.add(np.ascontiguousarray(L.cpu().to(torch.float32).numpy()))
    _, idx = index.search(np.ascontiguousarray(U.cpu().to(torch.float32).numpy()), k)
    return torch.from_numpy(idx.astype(np.int64))


@STRATEGIES.register("cal")
@dataclass
class ContrastiveAL(Strategy):
    """CAL (Margatina et al. 2021): top-b mean KL between labeled neighbours and the candidate.

    Parameters
    ----------
    k : int
        Labeled neighbours per candidate (10 in the paper).
    metric : {"euclidean", "cosine"}
        Distance between ``view.embed`` vectors.
    block_bytes : int
        Memory budget of one distance block.
    backend : {"torch", "faiss"}
        Neighbour search; ``faiss`` only when installed.
    """

    name = "cal"
    use_when: ClassVar[str] = (
        "the learner's embeddings are meaningful: items whose predictions disagree with their labeled"
        " neighbours'.")
    requires = frozenset({"proba", "embed"})

    k: int = 10
    metric: str = "euclidean"
    block_bytes: int = BLOCK_BYTES
    backend: str = "torch"

    def __post_init__(self) -> None:
        check_metric(self.metric, f"strategy {self.name!r}")
        if self.k < 1:
            raise ConfigError(f"strategy {self.name!r} got k={self.k}; use k >= 1 (10 in the paper)")
        if self.backend not in BACKENDS:
            raise ConfigError(f"strategy {self.name!r} got backend={self.backend!r}; use one of {', '.join(BACKENDS)}")

    def _select(self, view: ModelView, ctx: QueryContext, budget: int) -> Selection:
        t0 = time.perf_counter()
        labeled = np.asarray(ctx.labeled_ids, dtype=np.int64)
        unlabeled = np.asarray(ctx.unlabeled_ids, dtype=np.int64)
        if labeled.size == 0:
            raise DataError("CAL needs labeled points to find neighbours among; label a seed set first")
        scores, _ = cal_scores(view.embed(unlabeled), view.embed(labeled), view.proba(unlabeled),
                               view.proba(labeled), self.k, self.metric, block_bytes=self.block_bytes,
                               backend=self.backend)
        sel = top_k(unlabeled, scores, budget, what="CAL scores")
        return Selection(ids=sel.ids, scores=sel.scores, info={"seconds": time.perf_counter() - t0})
