"""Sockets inside another network namespace, for the daemon's own connections into pods.

The daemon lives in the host's network namespace, where pod and service addresses do not exist. To probe an
app, read a sidecar's admin port, forward a port or serve DNS, it makes the socket *inside* the right
namespace: a worker thread enters the namespace (setns is per thread), creates the socket and leaves; the
socket keeps the namespace it was created in, so the event loop then uses it like any other.

An `Endpoint` is a (host, port) pair or the path of a Unix socket (a loopback-mode Envoy admin, which the
daemon reads over a 0600 socket under SLUICE_HOME rather than a TCP port any local program could reach).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading

from sluice.runtime import linux

__all__ = ["Endpoint", "DIAL_MARK", "socket_in", "open_connection", "open_endpoint", "connect", "http_get", "http_fetch",
           "host_header"]

_lock = threading.Lock()

DIAL_MARK = 0x51CE  # the packet mark of the daemon's connections into pods

Endpoint = tuple[str, int] | str  # host and port, or a Unix socket's path


def socket_in(netns: str | None, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
    """A new socket in the network namespace bound at `netns` (None: the caller's own)."""
    if netns is None:
        return socket.socket(family, type)
    result: list[socket.socket] = []
    error: list[BaseException] = []

    def run() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            linux.enter_netns_file(netns)
            try:
                result.append(socket.socket(family, type))
            finally:
                linux.setns(home, linux.CLONE_NEWNET)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            error.append(e)
        finally:
            os.close(home)

    # A fresh thread each time: a thread that failed to get back home must not be reused.
    with _lock:
        t = threading.Thread(target=run, name="netns-socket", daemon=True)
        t.start()
        t.join()
    if error:
        raise error[0]
    return result[0]


async def connect(netns: str | None, host: str, port: int, timeout: float = 5.0) -> socket.socket:
    """A connected, non-blocking TCP socket to host:port as seen from inside `netns`."""
    sock = socket_in(netns, socket.AF_INET6 if ":" in host else socket.AF_INET)
    if netns is not None:
        # The daemon's own way in (port-forward, probes, the admin port) reaches the pod's real loopback: the
        # loopback load balancer's rules let this mark through (`sluice.runtime.netns.loopback_lb`).
        with contextlib.suppress(OSError):  # needs CAP_NET_ADMIN, which netns mode has
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, DIAL_MARK)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), timeout)
    except BaseException:
        sock.close()
        raise
    return sock


async def open_connection(netns: str | None, host: str, port: int,
                          timeout: float = 5.0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """asyncio streams to host:port from inside `netns` (None: from the daemon's own network)."""
    sock = await connect(netns, host, port, timeout)
    return await asyncio.open_connection(sock=sock)


async def open_endpoint(netns: str | None, endpoint: Endpoint,
                        timeout: float = 5.0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """asyncio streams to a (host, port) from inside `netns`, or to a Unix socket (`netns` does not apply)."""
    if isinstance(endpoint, str):
        return await asyncio.wait_for(asyncio.open_unix_connection(endpoint), timeout)
    return await open_connection(netns, endpoint[0], endpoint[1], timeout)


def host_header(endpoint: Endpoint) -> str:
    return "localhost" if isinstance(endpoint, str) else f"{endpoint[0]}:{endpoint[1]}"


async def http_get(netns: str | None, host: str, port: int, path: str, timeout: float = 10.0,
                   limit: int = 64 * 1024 * 1024) -> tuple[int, bytes]:
    """A plain HTTP/1.1 GET from inside `netns`: (status, body). For small local services (Envoy's admin)."""
    return await http_fetch(netns, (host, port), path, timeout, limit)


async def http_fetch(netns: str | None, endpoint: Endpoint, path: str, timeout: float = 10.0,
                     limit: int = 64 * 1024 * 1024) -> tuple[int, bytes]:
    """`http_get` to any `Endpoint` (a Unix socket too)."""
    async def run() -> tuple[int, bytes]:
        reader, writer = await open_endpoint(netns, endpoint, timeout)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host_header(endpoint)}\r\nConnection: close\r\n\r\n"
                         .encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *headers = head.decode("latin-1").split("\r\n")
            status = int(status_line.split()[1])
            length = next((int(h.split(":", 1)[1]) for h in headers if h.lower().startswith("content-length:")),
                          None)
            chunked = any(h.lower().startswith("transfer-encoding:") and "chunked" in h.lower() for h in headers)
            if chunked:
                body = bytearray()
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    if size == 0:
                        break
                    if len(body) + size > limit:
                        raise ValueError("response too large")
                    body += await reader.readexactly(size)
                    await reader.readexactly(2)
                return status, bytes(body)
            if length is not None:
                if length > limit:
                    raise ValueError("response too large")
                return status, await reader.readexactly(length)
            return status, await reader.read(limit)
        finally:
            writer.close()
    return await asyncio.wait_for(run(), timeout)
