"""`/metrics` of `sluice rollouts controller` run on its own, on 127.0.0.1 at Argo's metrics port (8090 by
default, `--metricsport`), for a Prometheus to scrape as it scrapes Argo's controller.

A small threaded server held to the daemon's rules for its ports: loopback only, a `Host` that names this server
(DNS-rebinding defence, `sluice.hostguard`), a read timeout for each connection (slowloris) and at most
`MAX_CONNECTIONS` at once (more are closed at once).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sluice.metrics.exposition import FamilyLike

__all__ = ["MetricsServer", "DEFAULT_PORT"]

DEFAULT_PORT = 8090  # Argo's --metricsport
MAX_CONNECTIONS = 16
READ_TIMEOUT_S = 10.0


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    timeout = READ_TIMEOUT_S
    server_version = "sluice-rollouts-controller"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        from sluice.hostguard import host_allowed, refusal

        host, port = self.headers.get("Host"), self.server.server_address[1]
        if not host_allowed(host, port):
            self._answer(403, refusal(host, port) + "\n", "text/plain; charset=utf-8")
            return
        if self.path.split("?", 1)[0] != "/metrics":
            self._answer(404, "404 page not found\n", "text/plain; charset=utf-8")
            return
        from sluice.metrics.exposition import CONTENT_TYPE, render

        self._answer(200, render(self.server.families()), CONTENT_TYPE)

    def _answer(self, code: int, text: str, content_type: str) -> None:
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # a scrape every few seconds is not worth a log line


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, families: Callable[[], list[FamilyLike]]) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.families = families
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):  # too many at once: this one is closed
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def serve_in_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, name="rollouts-metrics", daemon=True)
        t.start()
        return t

    def get_request(self) -> tuple[socket, Any]:
        sock, addr = super().get_request()
        sock.settimeout(READ_TIMEOUT_S)
        return sock, addr
