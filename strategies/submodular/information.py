"""Build any submodular function (base, MI, CG, CMI) from features: the one entry point.

Id frame: positions. ``X`` rows are the ground set ``V`` (positions
``0 .. n-1``); ``Xq`` / ``Xp`` rows are the query set ``Q`` and private set
``P``, which are never candidates.

Names follow SIMILAR (Kothawade et al., NeurIPS 2021) and PRISM (Kothawade et
al., AAAI 2022); the formulas are in the docstrings of the modules that
implement them (:mod:`.facility_location`, :mod:`.graph_cut`, :mod:`.logdet`,
:mod:`.com`):

======== ============ =====================================================
mode     needs        functions
======== ============ =====================================================
base     --           fl, gc, logdet
smi      Q            flvmi, flqmi, gcmi, logdetmi, com
scg      P            flcg, gccg, logdetcg
scmi     Q and P      flcmi, logdetcmi
======== ============ =====================================================

Parameters shared by all: ``eta`` (query relevance vs diversity), ``nu``
(private-set hardness), ``lam`` (graph-cut lambda), ``reg`` (log-det
regulariser). Kernels: dense below ``dense_limit`` items, otherwise a sparse
kNN kernel (facility location, graph cut) or on-demand blocks (log-det); query
and private similarities are always exact (``|Q| x N``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from al_loop.errors import ConfigError
from strategies.submodular.base import SetFunction
from strategies.submodular.com import ConcaveOverModular
from strategies.submodular.facility_location import FacilityLocation, FacilityLocationQueryMI
from strategies.submodular.graph_cut import GraphCut, graph_cut_cg, graph_cut_mi
from strategies.submodular.kernels import FeatureKernel, knn_kernel, prepare, similarity, symmetrize
from strategies.submodular.logdet import log_determinant, logdet_cg, logdet_cmi, logdet_mi

MODES: dict[str, tuple[str, ...]] = {
    "base": ("fl", "gc", "logdet"),
    "smi": ("flvmi", "flqmi", "gcmi", "logdetmi", "com"),
    "scg": ("flcg", "gccg", "logdetcg"),
    "scmi": ("flcmi", "logdetcmi"),
}
FUNCTIONS: tuple[str, ...] = tuple(f for fs in MODES.values() for f in fs)
MODE_OF: dict[str, str] = {f: m for m, fs in MODES.items() for f in fs}

#: family -> mode -> function: how a strategy turns "fl" + "which sets are given" into a function
FAMILIES: dict[str, dict[str, str]] = {
    "fl": {"base": "fl", "smi": "flvmi", "scg": "flcg", "scmi": "flcmi"},
    "flq": {"smi": "flqmi"},
    "gc": {"base": "gc", "smi": "gcmi", "scg": "gccg"},
    "logdet": {"base": "logdet", "smi": "logdetmi", "scg": "logdetcg", "scmi": "logdetcmi"},
    "com": {"smi": "com"},
}


def resolve(family_or_name: str, mode: str) -> str:
    """The function for ``mode`` given a family (``"fl"``) or an explicit name (``"flqmi"``).

    Raises :class:`ConfigError` naming the valid choices when the pair does not exist.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
    if family_or_name in FUNCTIONS and family_or_name not in FAMILIES:
        if MODE_OF[family_or_name] != mode:
            raise ConfigError(f"function {family_or_name!r} is a {MODE_OF[family_or_name]} function, not {mode}; "
                              f"for {mode} use one of {', '.join(MODES[mode])}")
        return family_or_name
    fam = FAMILIES.get(family_or_name)
    if fam is None:
        raise ConfigError(f"unknown submodular function {family_or_name!r}; valid: "
                          f"{', '.join(sorted(set(FAMILIES) | set(FUNCTIONS)))}")
    if mode not in fam:
        valid = sorted(k for k, v in FAMILIES.items() if mode in v)
        raise ConfigError(f"function family {family_or_name!r} has no {mode} form; for {mode} use one of "
                          f"{', '.join(valid)}")
    return fam[mode]


def family_of(name: str) -> str:
    """The family of a family or function name (``"flcmi" -> "fl"``, ``"flqmi" -> "flq"``)."""
    if name in FAMILIES:
        return name
    for fam, forms in FAMILIES.items():
        if name in forms.values():
            return fam
    raise ConfigError(f"unknown submodular function {name!r}; valid: {', '.join(sorted(set(FAMILIES) | set(FUNCTIONS)))}")


def resolve_fallback(function: str, requested: str, effective: str) -> str:
    """Resolve ``function`` for the ``requested`` mode (errors name the fix), then for ``effective``.

    When a round lacks a set (no private items yet) the effective mode is a
    smaller one; the same family is used if it has that form, else facility
    location (``fl``).
    """
    resolve(function, requested)
    fam = family_of(function)
    return resolve(fam if effective in FAMILIES[fam] else "fl", effective)


def _max_sim(Z: np.ndarray, Zo: np.ndarray, metric: str, gamma: float, block: int = 65536) -> np.ndarray:
    """``max_{o} s(z_i, o)`` clipped at 0, shape (n,), in row blocks."""
    out = np.zeros(len(Z), dtype=np.float32)
    if len(Zo) == 0:
        return out
    for s in range(0, len(Z), block):
        out[s:s + block] = similarity(Z[s:s + block], Zo, metric, gamma, clip=True).max(axis=1)
    return out


def _cross(Zo: np.ndarray, Z: np.ndarray, metric: str, gamma: float, block: int = 65536) -> np.ndarray:
    """``s(o, z_j)`` clipped at 0, shape (len(Zo), n), float32."""
    out = np.empty((len(Zo), len(Z)), dtype=np.float32)
    for s in range(0, len(Z), block):
        out[:, s:s + block] = similarity(Zo, Z[s:s + block], metric, gamma, clip=True)
    return out


def build_function(name: str, X: np.ndarray, Xq: np.ndarray | None = None, Xp: np.ndarray | None = None, *,
                   eta: float = 1.0, nu: float = 1.0, lam: float = 0.5, reg: float = 1.0,
                   metric: str = "cosine", gamma: float | None = None, kernel: str = "auto",
                   n_neighbors: int = 10, dense_limit: int = 20000, cells: int | None = None,
                   rng: np.random.Generator | None = None, psi: str = "sqrt",
                   preselect: Iterable[int] | None = None) -> SetFunction:
    """Instantiate the submodular function ``name`` on the rows of ``X``.

    Parameters
    ----------
    name : str
        One of :data:`FUNCTIONS`.
    X : ndarray, shape (n, d)
        Ground-set features (positions ``0 .. n-1``).
    Xq, Xp : ndarray, shape (|Q|, d) / (|P|, d), optional
        Query and private features (required by the modes that need them).
    eta, nu, lam, reg : float
        See the module docstring.
    metric, gamma : kernel similarity (see :mod:`.kernels`).
    kernel : {"auto", "dense", "sparse"}
        ``auto``: dense when ``n <= dense_limit``.
    n_neighbors, cells, rng : sparse kNN kernel options (see :func:`.kernels.knn_kernel`).
    psi : COM's concave function.
    preselect : iterable of int, optional
        Positions counted as already selected (conditioning).

    Returns
    -------
    SetFunction
    """
    if name not in FUNCTIONS:
        raise ConfigError(f"unknown submodular function {name!r}; valid: {', '.join(FUNCTIONS)}")
    if kernel not in ("auto", "dense", "sparse"):
        raise ConfigError(f"unknown kernel mode {kernel!r}; use auto, dense or sparse")
    for pname, val in (("eta", eta), ("nu", nu), ("lam", lam)):
        if not np.isfinite(val) or val < 0:
            raise ConfigError(f"{pname} must be a finite number >= 0, got {val}")
    if not np.isfinite(reg) or reg < 0:
        raise ConfigError(f"reg must be a finite number >= 0, got {reg}; the default 1.0 is safe")
    mode = MODE_OF[name]
    d = np.asarray(X).reshape(len(X), -1).shape[1]
    Xq = np.zeros((0, d), np.float32) if Xq is None else np.asarray(Xq, np.float32).reshape(len(Xq), -1)
    Xp = np.zeros((0, d), np.float32) if Xp is None else np.asarray(Xp, np.float32).reshape(len(Xp), -1)
    if mode in ("smi", "scmi") and len(Xq) == 0:
        raise ConfigError(f"{name} needs a non-empty query set Q; pass query items or use a {'/'.join(MODES['scg'])} "
                          "function")
    if mode in ("scg", "scmi") and len(Xp) == 0:
        raise ConfigError(f"{name} needs a non-empty private set P; pass private items or use a "
                          f"{'/'.join(MODES['smi'])} function")
    n = len(X)
    sparse = kernel == "sparse" or (kernel == "auto" and n > dense_limit)

    if name.startswith("logdet"):
        K = FeatureKernel(np.concatenate([np.asarray(X, np.float32).reshape(n, -1), Xq, Xp]), metric, gamma, reg)
        v = np.arange(n)
        q = np.arange(n, n + len(Xq))
        p = np.arange(n + len(Xq), n + len(Xq) + len(Xp))
        if name == "logdet":
            return log_determinant(K, v, preselect)
        if name == "logdetmi":
            return logdet_mi(K, v, q, eta, preselect)
        if name == "logdetcg":
            return logdet_cg(K, v, p, nu, preselect)
        return logdet_cmi(K, v, q, p, eta, nu, preselect)

    Z, g = prepare(X, metric, gamma)
    Zq, _ = prepare(Xq, metric, g if metric == "rbf" else None) if len(Xq) else (Xq, g)
    Zp, _ = prepare(Xp, metric, g if metric == "rbf" else None) if len(Xp) else (Xp, g)
    if name == "flqmi":
        return FacilityLocationQueryMI(_cross(Zq, Z, metric, g), eta, preselect)
    if name == "gcmi":
        return graph_cut_mi(_cross(Zq, Z, metric, g), lam, preselect)
    if name == "com":
        return ConcaveOverModular(_cross(Zq, Z, metric, g), eta, psi, preselect)

    def ground_kernel() -> np.ndarray:
        if sparse:
            return knn_kernel(Z, n_neighbors, metric, g if metric == "rbf" else None, clip=True, cells=cells, rng=rng)
        return similarity(Z, Z, metric, g, clip=True)

    if name in ("gc", "gccg"):
        S = ground_kernel()
        if sparse:
            S = symmetrize(S)
        if name == "gc":
            return GraphCut(S, lam, None, preselect)
        return graph_cut_cg(S, _cross(Zp, Z, metric, g), lam, nu, preselect)
    # facility-location family: S[j, i] = s_ij with i represented, j candidate
    S = ground_kernel()
    if sparse:
        S = S.T.tocsr()
    cap = eta * _max_sim(Z, Zq, metric, g) if name in ("flvmi", "flcmi") else None
    floor = nu * _max_sim(Z, Zp, metric, g) if name in ("flcg", "flcmi") else None
    f = FacilityLocation(S, cap=cap, floor=floor, preselect=preselect, copy=False)
    f.name = name  # type: ignore[misc]
    return f
