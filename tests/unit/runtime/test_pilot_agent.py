"""`pilot-agent request GET stats` in istio-proxy: the sidecar's Envoy admin, read as Istio's agent reads it."""

from __future__ import annotations

import http.server
import os
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice import mesh
from sluice.runtime.images import exec_argv

PROXY = {"name": mesh.SIDECAR_CONTAINER, "image": mesh.PROXY_IMAGE}


def test_kubectl_exec_runs_the_builtin_in_istio_proxy_only() -> None:
    argv = exec_argv(PROXY, ["pilot-agent", "request", "GET", "stats"])
    assert argv == [sys.executable, "-m", "sluice.runtime.pilot_agent", "request", "GET", "stats"]
    assert exec_argv({"name": "app", "image": "python:3.12"}, ["pilot-agent", "request"]) == ["pilot-agent", "request"]


class _Admin(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b"cluster.outbound|8000||httpbin.default.svc.cluster.local.upstream_rq_pending_overflow: 21\n"
        code = 200 if self.path == "/stats" else 404
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def admin() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Admin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sluice.runtime.pilot_agent", *args], capture_output=True, text=True,
                          timeout=30, env=env)


def test_loopback_mode_reads_the_admin_socket_the_environment_names(tmp_path: Path) -> None:
    path = str(tmp_path / "admin.sock")
    server = socketserver.ThreadingUnixStreamServer(path, _Admin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cp = run("request", "GET", "stats", env={**os.environ, "SLUICE_ADMIN_SOCKET": path})
        assert (cp.returncode, cp.stderr) == (0, "")
        assert cp.stdout.endswith(".upstream_rq_pending_overflow: 21\n")
    finally:
        server.shutdown()
        server.server_close()


def test_request_prints_the_admin_answer(admin: int) -> None:
    cp = run("request", "GET", "stats", f"--debug-port={admin}")
    assert (cp.returncode, cp.stderr) == (0, "")
    assert cp.stdout.endswith(".upstream_rq_pending_overflow: 21\n")
    cp = run("request", "GET", "nothing", "--debug-port", str(admin))
    assert cp.returncode == 1 and cp.stderr == "Error: GET /nothing: 404\n"


def test_bad_usage_is_a_clear_error() -> None:
    cp = run("proxy")
    assert cp.returncode == 1 and cp.stderr.startswith('Error: unknown command "proxy" for "pilot-agent"')
    cp = run("request", "GET")
    assert cp.returncode == 1 and cp.stderr.startswith("Error: accepts between 2 and 3 arg(s), received 1")
