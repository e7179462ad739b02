"""A small threaded HTTP proxy on 127.0.0.1 that injects faults in front of a real server.

Faults are queued rules; each matches a method and a path fragment and fires
``times`` times:

- ``"commit_then_500"``: forward the request (the server commits), answer 500.
- ``"commit_then_drop"``: forward, then close the connection without an answer.
- ``"429"``: answer 429 with ``Retry-After`` without forwarding.
- ``"500"``: answer 500 without forwarding.

:meth:`FaultProxy.down_for` closes the listening socket for N seconds
(connections are refused, as for a server that is down) and reopens it on the
same port. Every request is logged as ``(method, path, outcome)``.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
               "content-length", "host"}


@dataclass
class Rule:
    kind: str
    method: str
    path_contains: str
    times: int
    retry_after: float = 1.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy: FaultProxy

    def log_message(self, format: str, *args: object) -> None:  # quiet; FaultProxy.log keeps the record
        pass

    def setup(self) -> None:
        super().setup()
        proxy = self.server.proxy  # type: ignore[attr-defined]
        with proxy._lock:
            proxy.conns.add(self.connection)

    def _handle(self) -> None:
        proxy = self.server.proxy  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        rule = proxy._take(self.command, self.path)
        kind = rule.kind if rule else "forward"
        if kind == "429":
            proxy._record(self.command, self.path, "429")
            self._reply(429, b'{"detail": "slow down"}', [("Retry-After", f"{rule.retry_after:g}")])
            return
        if kind == "500":
            proxy._record(self.command, self.path, "500")
            self._reply(500, b'{"detail": "injected"}', [])
            return
        try:
            status, headers, payload = proxy._forward(self.command, self.path, self.headers, body)
        except OSError as exc:
            proxy._record(self.command, self.path, f"upstream error {exc}")
            self._reply(502, b'{"detail": "upstream down"}', [])
            return
        if kind == "commit_then_500":
            proxy._record(self.command, self.path, f"committed {status}, answered 500")
            self._reply(500, b'{"detail": "injected after commit"}', [])
        elif kind == "commit_then_drop":
            proxy._record(self.command, self.path, f"committed {status}, dropped")
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        else:
            proxy._record(self.command, self.path, str(status))
            self._reply(status, payload, headers)

    def _reply(self, status: int, payload: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        if not any(n.lower() == "content-type" for n, _ in headers):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class FaultProxy:
    """Proxy ``127.0.0.1:<port>`` -> ``upstream``; use as a context manager.

    Parameters
    ----------
    upstream : str
        Base URL of the real server, e.g. ``http://127.0.0.1:8085``.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self.conns: set[socket.socket] = set()  # open client connections, cut by down_for
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._open(0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---------------------------------------------------------------- lifecycle

    def _open(self, port: int) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        server.daemon_threads = True
        server.proxy = self  # type: ignore[attr-defined]
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def _close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def down_for(self, seconds: float) -> threading.Thread:
        """Refuse connections for ``seconds``, then listen on the same port again.

        Open keep-alive connections are cut too, so a client cannot keep talking
        to a server that is "down".
        """
        self._close()
        with self._lock:
            conns, self.conns = list(self.conns), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._record("-", "-", f"down for {seconds:g}s")

        def reopen() -> None:
            time.sleep(seconds)
            for _ in range(50):
                try:
                    self._open(self.port)
                    self._record("-", "-", "up")
                    return
                except OSError:
                    time.sleep(0.1)

        thread = threading.Thread(target=reopen, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- faults

    def inject(self, kind: str, method: str = "POST", path_contains: str = "", times: int = 1,
               retry_after: float = 1.0) -> None:
        """Queue a fault for the next ``times`` requests that match."""
        if kind not in {"commit_then_500", "commit_then_drop", "429", "500"}:
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self.rules.append(Rule(kind, method.upper(), path_contains, times, retry_after))

    def _take(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.times > 0 and rule.method == method and rule.path_contains in path:
                    rule.times -= 1
                    return rule
        return None

    def _record(self, method: str, path: str, outcome: str) -> None:
        with self._lock:
            self.log.append((method, path, outcome))

    def outcomes(self, fragment: str) -> list[str]:
        """Outcomes of the logged requests whose path contains ``fragment``."""
        with self._lock:
            return [o for _m, p, o in self.log if fragment in p]

    def _forward(self, method: str, path: str, headers: object, body: bytes | None
                 ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=120)
        try:
            out = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}  # type: ignore[attr-defined]
            out["Host"] = f"{self.upstream_host}:{self.upstream_port}"
            if body is not None:
                out["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=out)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, resp.getheaders(), payload
        finally:
            conn.close()
