"""Suite-wide settings: a private embedding cache and no model hub.

Set before any test runs (and inherited by the CLI subprocesses the tests
start): embeddings are cached in a temporary folder of this session, never in
the user's ~/.cache, and Hugging Face libraries never try to reach a hub.
"""

from __future__ import annotations

import os
import tempfile


def pytest_configure(config: object) -> None:
    if "AL_LOOP_CACHE_DIR" not in os.environ:
        os.environ["AL_LOOP_CACHE_DIR"] = tempfile.mkdtemp(prefix="al-loop-test-cache-")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
