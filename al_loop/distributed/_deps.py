"""The one place that imports Dask: a missing install becomes a one-line ConfigError.

Every module of :mod:`al_loop.distributed` that needs Dask imports it from
here, so ``import al_loop`` never needs Dask and a user without it gets
``install al-loop[dask]`` instead of a traceback.
"""

from __future__ import annotations

from al_loop.errors import ConfigError

try:
    import dask
    import dask.array as da
    import distributed
    from dask.delayed import Delayed
except ImportError as _exc:  # pragma: no cover - exercised only without dask
    raise ConfigError(
        f"distributed pool scoring needs dask and distributed ({_exc.name} is missing); "
        "install al-loop[dask] (pip install 'al-loop[dask]')"
    ) from None

__all__ = ["Delayed", "da", "dask", "distributed"]
