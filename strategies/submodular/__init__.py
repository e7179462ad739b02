"""Submodular selection core: kernels, set functions with memoised gains, greedy maximisers.

Everything here works on *positions* ``0 .. n-1`` of a ground set; the
strategy classes (:mod:`strategies.fass`, :mod:`strategies.similar`,
:mod:`strategies.prism`) map global pool ids to positions and back.

- :mod:`.kernels`: dense and sparse kNN similarity kernels (blockwise, no N x N).
- :mod:`.base`: the :class:`SetFunction` interface, :class:`Modular`, :class:`PartitionSum`.
- :mod:`.facility_location`, :mod:`.graph_cut`, :mod:`.logdet`, :mod:`.com`: the families.
- :mod:`.information`: :func:`build_function` by name (FL, GC, LogDet, their MI/CG/CMI).
- :mod:`.maximizers`: naive, lazy and stochastic greedy.
"""

from strategies.submodular.base import Modular, PartitionSum, SetFunction
from strategies.submodular.information import FAMILIES, FUNCTIONS, MODES, build_function, resolve
from strategies.submodular.maximizers import GreedyResult, maximize

__all__ = ["FAMILIES", "FUNCTIONS", "MODES", "GreedyResult", "Modular", "PartitionSum", "SetFunction",
           "build_function", "maximize", "resolve"]
