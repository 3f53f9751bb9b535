"""Pod IP allocation from `mesh.POD_NETWORK` (127.1.0.0/16).

Used by the kubelet. Allocations live in each pod's state directory (`pod.json`), so a restarted daemon
rebuilds the in-use set from disk and every pod keeps its IP. Addresses are handed out round-robin from the
last one allocated (also on disk) so a freed IP is not reused at once while other sidecars may still have it
as an endpoint.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterable
from pathlib import Path

from sluice import mesh

__all__ = ["IPAllocator", "PoolExhausted"]


class PoolExhausted(Exception):
    pass


class IPAllocator:
    def __init__(self, state_file: Path, in_use: Iterable[str] = ()) -> None:
        self._file = state_file
        self._in_use = set(in_use)
        net = mesh.POD_NETWORK
        self._first = int(net.network_address) + 1
        self._last = int(net.broadcast_address) - 1
        self._cursor = self._first - 1
        try:
            self._cursor = int(ipaddress.ip_address(json.loads(state_file.read_text())["last"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass

    def allocate(self) -> str:
        span = self._last - self._first + 1
        for step in range(1, span + 1):
            n = self._first + (self._cursor - self._first + step) % span
            if n & 0xFF in (0, 255):
                continue  # .0 and .255 work on loopback but look wrong in `get pods -o wide`
            ip = str(ipaddress.ip_address(n))
            if ip not in self._in_use:
                self._in_use.add(ip)
                self._cursor = n
                tmp = self._file.with_suffix(".tmp")
                tmp.write_text(json.dumps({"last": ip}))
                os.replace(tmp, self._file)
                return ip
        raise PoolExhausted(f"no free pod IP left in {mesh.POD_NETWORK}")

    def claim(self, ip: str) -> None:
        self._in_use.add(ip)

    def release(self, ip: str) -> None:
        self._in_use.discard(ip)
