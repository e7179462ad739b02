"""Suite-wide settings: a private embedding cache, no model hub, one worker for the servers.

Set before any test runs (and inherited by the CLI subprocesses the tests
start): embeddings are cached in a temporary folder of this session, never in
the user's ~/.cache, and Hugging Face libraries never try to reach a hub.

Under pytest-xdist (``make test`` runs ``-n auto --dist loadgroup``) each
worker gets its own cache folder, so a test that counts cache misses never sees
another worker's entries, and every test under ``tests/integration`` (one Label
Studio server, private servers on free ports, kill-and-resume timing) runs on
one worker, in file order, as without xdist.
"""

from __future__ import annotations

import os
import signal
import tempfile

import pytest

#: set by this conftest when it made the cache folder (so a worker may make its own instead)
_OWNED = "AL_LOOP_TEST_CACHE_OWNED"
#: the xdist group of the tests that share servers
SERVER_GROUP = "servers"
#: node ids of the tests that share servers start so (relative to the rootdir, where pyproject.toml is)
_INTEGRATION_PREFIX = "tests/integration/"


def pytest_configure(config: pytest.Config) -> None:
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # started in the background of a shell without job control (`cmd &`): SIGINT is ignored and every
        # CLI the tests start would inherit that, so their Ctrl-C tests could not interrupt anything
        signal.signal(signal.SIGINT, signal.default_int_handler)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if "AL_LOOP_CACHE_DIR" not in os.environ or (worker and os.environ.get(_OWNED) == "1"):
        os.environ["AL_LOOP_CACHE_DIR"] = tempfile.mkdtemp(prefix=f"al-loop-test-cache-{worker or 'main'}-")
        os.environ[_OWNED] = "1"
    if worker and "OMP_NUM_THREADS" not in os.environ:  # workers share the cores instead of fighting for them
        share = max(1, (os.cpu_count() or 1) // max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(share)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """With ``--dist loadgroup``: every test under ``tests/integration`` as one unit of work, the others
    one by one. (xdist 3.8's own ``xdist_group`` marks set a private node id that pytest 9 no longer
    reads, so they group nothing; this scheduler groups by path instead.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ServersOnOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return SERVER_GROUP if nodeid.startswith(_INTEGRATION_PREFIX) else nodeid

    return ServersOnOneWorker(config, log)
