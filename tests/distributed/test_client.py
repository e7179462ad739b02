"""make_client specs: one-line errors for bad specs, the synchronous back end."""

from __future__ import annotations

import numpy as np
import pytest

from al_loop.distributed import cluster_session, make_client, maybe_distribute, parse_cluster_spec
from al_loop.distributed._deps import da
from al_loop.errors import ConfigError
from strategies.uncertainty import EntropySampling


@pytest.mark.parametrize(("spec", "kind", "workers", "address"), [
    ("sync", "sync", 0, ""),
    ("local:3", "local", 3, ""),
    ("tcp://10.0.0.5:8786", "address", 0, "tcp://10.0.0.5:8786"),
    ("scheduler.internal:8786", "address", 0, "tcp://scheduler.internal:8786"),
])
def test_parse_valid_specs(spec: str, kind: str, workers: int, address: str) -> None:
    parsed = parse_cluster_spec(spec)
    assert (parsed.kind, parsed.n_workers, parsed.address) == (kind, workers, address)


@pytest.mark.parametrize("spec", ["local:0", "local:x", "local", "", "banana", "tcp://host"])
def test_bad_spec_is_a_one_line_config_error(spec: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_client(spec)
    assert "\n" not in str(err.value) and "--cluster" in str(err.value)


def test_unreachable_scheduler_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler"):
        make_client("tcp://127.0.0.1:9", timeout=1)


def test_sync_runner_computes_in_process() -> None:
    with make_client("sync") as runner:
        x = da.arange(10, chunks=3)
        assert runner.compute(x.sum()) == 45
        a, b = runner.compute(x.max(), x.min())
        assert (a, b) == (9, 0)
        assert runner.n_workers == 1


def test_wiring_without_a_cluster_changes_nothing() -> None:
    strategy = EntropySampling()
    with cluster_session(None) as runner:
        assert runner is None
        assert maybe_distribute(strategy, runner) is strategy


def test_unsupported_strategy_is_refused_in_one_line() -> None:
    from strategies.uncertainty import RandomSampling

    with cluster_session("sync") as runner, pytest.raises(ConfigError, match="no distributed implementation"):
        maybe_distribute(RandomSampling(), runner)


def test_chunked_pool_rejects_misaligned_ids() -> None:
    from al_loop.distributed import ChunkedPool
    from al_loop.errors import DataError

    X = da.zeros((10, 2), chunks=(5, 2))
    with pytest.raises(DataError, match="same row chunks"):
        ChunkedPool(X=X, ids=da.arange(10, chunks=4, dtype=np.int64), classes=("a", "b"))


def test_missing_dask_is_a_one_line_config_error() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['distributed'] = None\n"
            "from al_loop.errors import ConfigError\n"
            "import al_loop.distributed as d\n"
            "try:\n    d.make_client('sync')\nexcept ConfigError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert "install al-loop[dask]" in out and "\n" not in out
