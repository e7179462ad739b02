"""Where Dask computations run: ``make_client(spec)`` and the :class:`DaskRunner` it returns.

The same graphs run on three back ends, chosen by one string:

- ``"sync"``: Dask's synchronous scheduler in the driver process (debugging,
  tests, machines without spare cores);
- ``"local:N"``: a :class:`distributed.LocalCluster` with ``N`` worker
  processes, one thread each, bound to 127.0.0.1, dashboard off;
- a scheduler address (``tcp://10.0.0.5:8786``, ``tls://...``,
  ``host:port``): an existing cluster, e.g. started with ``dask scheduler`` /
  ``dask worker`` or dask-jobqueue / dask-kubernetes.

Database writes and oracle calls stay in the driver: the runner only computes
Dask collections and hands back small results (top-b ids, partial solutions).
"""

from __future__ import annotations

import re
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from al_loop.distributed._deps import dask, distributed
from al_loop.errors import ConfigError

_ADDRESS = re.compile(r"^(?:(?:tcp|tls|inproc|ucx|ws|wss)://)?[A-Za-z0-9_.\-\[\]:]+:\d+$")


@dataclass(frozen=True)
class ClusterSpec:
    """A parsed ``--cluster`` value.

    Attributes
    ----------
    kind : {"sync", "local", "address"}
    n_workers : int
        Worker processes of a ``local:N`` cluster (0 otherwise).
    address : str
        Scheduler address of an existing cluster ("" otherwise).
    """

    kind: str
    n_workers: int = 0
    address: str = ""


def parse_cluster_spec(spec: str) -> ClusterSpec:
    """Parse ``sync``, ``local:N`` or a scheduler address; one-line ConfigError otherwise."""
    text = str(spec).strip()
    hint = "use sync, local:N (N worker processes) or a scheduler address like tcp://10.0.0.5:8786"
    if text == "sync":
        return ClusterSpec("sync")
    if text.startswith("local:") or text == "local":
        n = text.partition(":")[2]
        if not n.isdigit() or int(n) < 1:
            raise ConfigError(f"bad --cluster spec {spec!r}: local:N needs N >= 1 worker processes; {hint}")
        return ClusterSpec("local", n_workers=int(n))
    if _ADDRESS.match(text):
        return ClusterSpec("address", address=text if "://" in text else f"tcp://{text}")
    raise ConfigError(f"bad --cluster spec {spec!r}; {hint}")


class DaskRunner:
    """A handle on where Dask graphs run; use as a context manager (closes what it started).

    Parameters
    ----------
    spec : ClusterSpec
    client : distributed.Client or None
        None for the synchronous scheduler.
    cluster : distributed.LocalCluster or None
        The cluster this runner started (closed by :meth:`close`).
    """

    def __init__(self, spec: ClusterSpec, client: Any = None, cluster: Any = None) -> None:
        self.spec = spec
        self.client = client
        self.cluster = cluster

    # --- computing ---------------------------------------------------------------------
    def compute(self, *collections: Any) -> Any:
        """Compute Dask collections; returns one result, or a tuple for several.

        With a client the results are gathered into the driver (they are
        meant to be small: top-b ids, partial solutions); with ``sync`` the
        graph runs in this process.
        """
        if self.client is None:
            out = dask.compute(*collections, scheduler="synchronous")
        else:
            futures = self.client.compute(list(collections))
            out = tuple(self.client.gather(futures))
        return out[0] if len(collections) == 1 else out

    def persist(self, *collections: Any) -> Any:
        """Keep collections' chunks in worker memory (in the driver for ``sync``); one result or a tuple."""
        if self.client is None:
            out = dask.persist(*collections, scheduler="synchronous")
        else:
            out = tuple(self.client.persist(list(collections)))
        return out[0] if len(collections) == 1 else out

    @property
    def n_workers(self) -> int:
        """Workers currently connected (1 for ``sync``: the driver itself)."""
        if self.client is None:
            return 1
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def run_on_workers(self, fn: Any) -> dict[str, Any]:
        """``fn()`` on every worker (``{"driver": fn()}`` for ``sync``); for diagnostics only."""
        if self.client is None:
            return {"driver": fn()}
        return dict(self.client.run(fn))

    # --- lifetime ----------------------------------------------------------------------
    def close(self) -> None:
        """Close the client and any cluster this runner started (idempotent)."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def __enter__(self) -> DaskRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.spec.address or (f"local:{self.spec.n_workers}" if self.spec.kind == "local" else "sync")
        return f"DaskRunner({where!r}, open={self.client is not None or self.spec.kind == 'sync'})"


#: a Dask handshake is a few hundred bytes; a first "length" beyond this is some other protocol
_MAX_HANDSHAKE_BYTES = 16 * 2**20
#: how long a refused connection is retried (a scheduler that is just starting)
_REFUSED_RETRY_S = 3.0


def _split_host_port(address: str) -> tuple[str, int]:
    """``tcp://host:port`` -> ``("host", port)`` (IPv6 brackets removed)."""
    loc = address.partition("://")[2] or address
    host, _, port = loc.rpartition(":")
    return host.strip("[]"), int(port)


def probe_scheduler(address: str, timeout: float = 10.0) -> None:
    """Check that a Dask scheduler answers at a ``tcp://`` address, within ``timeout`` seconds in all.

    A Dask scheduler writes its handshake as soon as it accepts a connection,
    while ``distributed.Client`` waits for that handshake without a deadline:
    pointed at an HTTP port it hangs, and a server that answers something else
    makes it allocate a "frame" of the size the first 8 bytes spell (a
    MemoryError). This probe opens a plain socket and reads the first 8
    bytes, the little-endian length of the handshake message.

    Raises
    ------
    ConfigError
        One line: nothing listens there, no answer in time, or the answer is
        not the Dask protocol.
    """
    host, port = _split_host_port(address)
    fix = "start `dask scheduler` there or check --cluster (the scheduler port is 8786 by default)"
    started = time.monotonic()
    deadline = started + timeout
    sock: socket.socket | None = None
    refused: OSError | None = None
    while sock is None:
        left = deadline - time.monotonic()
        if left <= 0:
            why = "connection refused" if refused is not None else f"no connection within {timeout:g} s"
            raise ConfigError(f"cannot reach the Dask scheduler at {address} ({why}); {fix}")
        try:
            sock = socket.create_connection((host, port), timeout=left)
        except ConnectionRefusedError as exc:  # a scheduler may be starting: retry for a moment (3 s at most)
            refused = exc
            deadline = min(deadline, started + _REFUSED_RETRY_S)
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
        except TimeoutError:
            continue
        except OSError as exc:  # unknown host, unreachable network
            raise ConfigError(f"cannot reach the Dask scheduler at {address} ({exc.strerror or exc}); {fix}") from None
    try:
        head = b""
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        while len(head) < 8:
            chunk = sock.recv(8 - len(head))
            if not chunk:
                break
            head += chunk
    except TimeoutError:
        raise ConfigError(f"{address} accepted the connection but sent no Dask handshake within {timeout:g} s "
                          f"(an HTTP server or another service?); {fix}") from None
    except OSError as exc:
        raise ConfigError(f"cannot reach the Dask scheduler at {address} ({exc.strerror or exc}); {fix}") from None
    finally:
        sock.close()
    if len(head) < 8:
        raise ConfigError(f"{address} closed the connection without a Dask handshake; {fix}")
    if head[:4] in (b"HTTP", b"<!DO", b"<htm") or struct.unpack("<Q", head)[0] > _MAX_HANDSHAKE_BYTES:
        raise ConfigError(f"{address} answers in another protocol (first bytes {head[:8]!r}), not Dask's; {fix}")


def make_client(spec: str, timeout: float = 30.0) -> DaskRunner:
    """Start or connect to where Dask graphs run.

    Parameters
    ----------
    spec : str
        ``"sync"``, ``"local:N"`` or a scheduler address (see module docstring).
    timeout : float
        Seconds to wait for a remote scheduler.

    Returns
    -------
    DaskRunner
        Close it (or use ``with``) to stop a LocalCluster it started.
    """
    parsed = parse_cluster_spec(spec)
    if parsed.kind == "sync":
        return DaskRunner(parsed)
    if parsed.kind == "local":
        # dashboard off; the scheduler's small health HTTP endpoint gets a free local port, not 8787
        cluster = distributed.LocalCluster(n_workers=parsed.n_workers, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None,
                                           scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"})
        try:
            client = distributed.Client(cluster, set_as_default=False)
        except BaseException:
            cluster.close()
            raise
        return DaskRunner(parsed, client, cluster)
    if parsed.address.startswith("tcp://"):  # tls/ws/ucx wait for the client to speak first: no probe
        probe_scheduler(parsed.address, timeout=min(timeout, 10.0))
    try:
        client = distributed.Client(parsed.address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"cannot reach the Dask scheduler at {parsed.address} ({type(exc).__name__}); "
                          "start it (dask scheduler) or check --cluster") from None
    return DaskRunner(parsed, client)
