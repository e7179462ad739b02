"""`--cluster` at an address where no Dask scheduler answers: one line, bounded time, nothing written."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from al_loop.distributed import DaskRunner, make_client
from al_loop.distributed.client import probe_scheduler
from al_loop.errors import ConfigError
from tests.test_cli import one_line_error, run_cli

ARGS = ["simulate", "--strategy", "margin", "--rounds", "1", "--batch", "5", "--init", "10"]


def _closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_port() -> Iterator[int]:
    """A tiny HTTP server on 127.0.0.1 (it waits for a request line, as the dashboard would)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def talker_port() -> Iterator[int]:
    """A server that writes an HTTP status line as soon as it accepts (what made Dask raise MemoryError)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(srv.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        srv.close()


def test_closed_port_is_connection_refused() -> None:
    addr = f"tcp://127.0.0.1:{_closed_port()}"
    with pytest.raises(ConfigError, match="connection refused") as err:
        make_client(addr, timeout=1)
    assert "\n" not in str(err.value) and addr in str(err.value) and "--cluster" in str(err.value)


def test_http_port_is_refused_without_the_dask_handshake(http_port: int) -> None:
    with pytest.raises(ConfigError, match="sent no Dask handshake") as err:
        make_client(f"127.0.0.1:{http_port}", timeout=1)
    assert "\n" not in str(err.value)


def test_server_answering_http_is_another_protocol(talker_port: int) -> None:
    with pytest.raises(ConfigError, match="another protocol") as err:
        probe_scheduler(f"tcp://127.0.0.1:{talker_port}", timeout=2)
    assert "HTTP" in str(err.value) and "\n" not in str(err.value)


def test_probe_accepts_a_real_scheduler(cluster2: DaskRunner) -> None:
    address = cluster2.cluster.scheduler_address
    probe_scheduler(address, timeout=5)
    with make_client(address) as runner:
        assert runner.spec.kind == "address" and runner.n_workers == 2


@pytest.mark.parametrize("where", ["closed", "http"])
def test_cli_cluster_nowhere_one_line_and_no_store(where: str, http_port: int, tmp_path, capsys,
                                                   monkeypatch) -> None:
    port = _closed_port() if where == "closed" else http_port
    db = tmp_path / "c.sqlite"
    code, _, err = run_cli([*ARGS, "--db", str(db), "--cluster", f"tcp://127.0.0.1:{port}"], capsys, monkeypatch)
    line = one_line_error(err)
    assert code == 2 and f"127.0.0.1:{port}" in line and "--cluster" in line
    assert not db.exists()
