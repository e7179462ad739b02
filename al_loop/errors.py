"""Error types of al-loop.

Every error a user can cause is an :class:`AlLoopError` whose message is one
line naming the cause and the fix. The CLI prints the message alone (no
traceback) and exits with status 2.
"""

from __future__ import annotations


class AlLoopError(Exception):
    """A user-facing error: one line, cause and fix."""


class ConfigError(AlLoopError):
    """Bad configuration: unknown name, impossible parameter."""


class PluginMissingError(ConfigError):
    """A plugin module a run needs cannot be imported (the environment's fault, not the run's)."""


class DataError(AlLoopError):
    """Bad input data: NaN/Inf, duplicate ids, mismatched lengths, empty pool."""


class InputsChangedError(DataError):
    """A run's input files differ from those it started with (putting them back fixes it: not the run's fault)."""


class StoreError(AlLoopError):
    """The SQLite store cannot be used: not SQLite, foreign, wrong schema."""


class OracleError(AlLoopError):
    """The oracle cannot be reached or answered something unusable."""


class RunLockedError(StoreError):
    """Another process is writing the same run."""


class RunFailedError(AlLoopError):
    """One or more runs failed (each is marked ``failed`` in the store with its reason)."""
