"""`pilot-agent request <METHOD> <path> [<body>]` in the istio-proxy container: Istio's way to read the sidecar's
Envoy admin (`kubectl exec POD -c istio-proxy -- pilot-agent request GET stats`, as the circuit-breaking task
does); and `pilot-agent wait`, the postStart hook Istio's injector gives the proxy for
`holdApplicationUntilProxyStarts` (poll `--url`, 15021 `/healthz/ready`, every `--periodMillis` until it answers
200 or `--timeoutSeconds` pass). Sluice runs no pilot-agent, so `kubectl exec` and the kubelet's exec hooks run
this instead (see `images.exec_argv`).

Envoy's admin listens on 127.0.0.1:15000 inside the pod (netns mode) or on a 0600 Unix socket that the
container's environment names in `SLUICE_ADMIN_SOCKET` (loopback mode, where pods share the host's network and
a TCP admin would be open to every local process); the body is written to stdout as Envoy returns it.
"""

from __future__ import annotations

import http.client
import os
import socket
import sys
import time
import urllib.parse

__all__ = ["main"]

_USAGE = "Usage:\n  pilot-agent request <method> <path> [<body>] [flags]\n  pilot-agent wait [flags]\n"
_WAIT_FLAGS = {"timeoutSeconds": 60, "requestTimeoutMillis": 500, "periodMillis": 500}


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def _request(host: str, port: int, method: str, path: str, body: str, timeout: float = 30) -> tuple[int, bytes]:
    """`host` a Unix socket's path, or a name or address to reach at `port`."""
    conn = (_UnixConnection(host, timeout) if host.startswith("/")
            else http.client.HTTPConnection(host, port, timeout=timeout))
    try:
        conn.request(method, "/" + path.lstrip("/"), body=body.encode() if body else None)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _ready(url: str, timeout: float) -> str | None:
    """None when `url` answers 200; else why not. Where the pods share the host's network (loopback mode) the
    proxy's 15021 is not the pod's own: its Envoy's admin `/ready` (the Unix socket) answers for it, as the
    kubelet's probe of 15021 does."""
    admin = os.environ.get("SLUICE_ADMIN_SOCKET", "")
    parts = urllib.parse.urlsplit(url)
    if admin.startswith("/") and parts.port == 15021:
        target, port, path = admin, 0, "/ready"
    else:
        target, port, path = parts.hostname or "localhost", parts.port or 80, parts.path or "/"
    try:
        status, _ = _request(target, port, "GET", path, "", timeout)
    except OSError as e:
        return str(e)
    return None if status == 200 else f"HTTP status code {status}"


def _wait(args: list[str]) -> int:
    flags: dict[str, int] = dict(_WAIT_FLAGS)
    url = "http://localhost:15021/healthz/ready"
    it = iter(args)
    for a in it:
        name, _, value = a.lstrip("-").partition("=")
        if name not in (*flags, "url") or not a.startswith("-"):
            sys.stderr.write(f"Error: unknown flag: {a}\n" + _USAGE)
            return 1
        value = value or next(it, "")
        if name == "url":
            url = value
        elif value.lstrip("-").isdigit():
            flags[name] = int(value)
        else:
            sys.stderr.write(f'Error: invalid argument "{value}" for "--{name}" flag\n')
            return 1
    print(f"Waiting for Envoy proxy to be ready (timeout: {flags['timeoutSeconds']} seconds)...", flush=True)
    deadline = time.monotonic() + flags["timeoutSeconds"]
    error: str | None = "not checked yet"
    while time.monotonic() < deadline:
        time.sleep(flags["periodMillis"] / 1000)
        error = _ready(url, flags["requestTimeoutMillis"] / 1000)
        if error is None:
            print("Envoy is ready!", flush=True)
            return 0
    sys.stderr.write(f"Error: timeout waiting for Envoy proxy to become ready. Last error: {error}\n")
    return 1


def main(argv: list[str]) -> int:
    if argv and argv[0] == "wait":
        return _wait(argv[1:])
    port = 15000
    args: list[str] = []
    it = iter(argv)
    for a in it:
        if a.startswith("--debug-port"):
            value = a.partition("=")[2] or next(it, "")
            if not value.isdigit():
                sys.stderr.write(f'Error: invalid argument "{value}" for "--debug-port" flag\n')
                return 1
            port = int(value)
        else:
            args.append(a)
    if not args or args[0] != "request":
        sys.stderr.write(f'Error: unknown command "{args[0] if args else ""}" for "pilot-agent"\n' + _USAGE)
        return 1
    if not 3 <= len(args) <= 4:
        sys.stderr.write(f"Error: accepts between 2 and 3 arg(s), received {len(args) - 1}\n" + _USAGE)
        return 1
    method, path, body = args[1].upper(), args[2], args[3] if len(args) == 4 else ""
    admin_socket = os.environ.get("SLUICE_ADMIN_SOCKET", "")
    hosts = [admin_socket] if admin_socket.startswith("/") and port == 15000 else ["127.0.0.1"]
    for host in hosts:
        try:
            status, data = _request(host, port, method, path, body)
        except (ConnectionRefusedError, FileNotFoundError):
            continue
        except OSError as e:
            sys.stderr.write(f"Error: {e}\n")
            return 1
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        if status >= 400:
            sys.stderr.write(f"Error: {method} /{path.lstrip('/')}: {status}\n")
            return 1
        return 0
    sys.stderr.write(f"Error: dial tcp 127.0.0.1:{port}: connect: connection refused\n")
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
