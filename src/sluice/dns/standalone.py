"""Cluster DNS as its own process: `python -m sluice.dns.standalone STATE ADDRESS [PORT]`.

Kubernetes' DNS (CoreDNS) keeps answering while the API server restarts; so does this. The kubelet starts it
inside the node network namespace (through `sluice.runtime.enter`) in its own session, so it outlives a
daemon that crashes, and writes the name snapshot to STATE (`NameWatcher.objects()`, JSON) on every change,
then sends SIGHUP. The process binds ADDRESS:PORT (UDP and TCP), serves the table built from the last
snapshot it read, re-reads on SIGHUP (and when the file's mtime changes, in case a signal was missed), and
exits on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from typing import Any

from sluice.dns.names import NameTable, build_table
from sluice.dns.server import DnsServer

__all__ = ["main", "load_table"]


def load_table(path: str) -> NameTable:
    """The table for the snapshot at `path` (an empty table if it is missing or unreadable)."""
    try:
        with open(path) as f:
            data: dict[str, Any] = json.load(f)
    except (OSError, ValueError):
        data = {}
    return build_table(namespaces=data.get("namespaces") or [], services=data.get("services") or [],
                       endpoints=data.get("endpoints") or [], pods=data.get("pods") or [],
                       service_entries=data.get("service_entries") or [])


async def serve(state: str, address: str, port: int) -> None:
    tables = [load_table(state)]
    mtimes = [_mtime(state)]

    def reload() -> None:
        mtimes[0] = _mtime(state)
        tables[0] = load_table(state)

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    udp.bind((address, port))
    tcp.bind((address, port))
    tcp.listen(128)
    server = DnsServer(lambda: tables[0])
    await server.start(udp=[udp], tcp=[tcp])
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, reload)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(f"serving DNS on {address}:{port}", flush=True)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            if _mtime(state) != mtimes[0]:
                reload()
    await server.stop()


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        sys.stderr.write("usage: python -m sluice.dns.standalone STATE ADDRESS [PORT]\n")
        return 2
    asyncio.run(serve(argv[0], argv[1], int(argv[2]) if len(argv) == 3 else 53))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
