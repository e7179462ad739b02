"""Named crash points for the kill-and-resume tests.

``crash_point(name)`` does nothing unless the environment variable
``AL_LOOP_CRASH_AT`` names this point (``name`` or ``name@N`` for the N-th
time it is reached, 1-based); then the process kills itself with SIGKILL, as
``kill -9`` would. Tests set the variable in a subprocess only.
"""

from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    target = os.environ.get("AL_LOOP_CRASH_AT")
    if not target:
        return
    point, _, nth = target.partition("@")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == (int(nth) if nth else 1):
        os.kill(os.getpid(), signal.SIGKILL)
