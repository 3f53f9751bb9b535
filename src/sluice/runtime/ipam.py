"""Pod IP allocation from `mesh.POD_NETWORK` (127.1.0.0/16).

Used by the kubelet. Allocations live in each pod's state directory (`pod.json`), so a restarted daemon
rebuilds the in-use set from disk and every pod keeps its IP. Addresses are handed out round-robin from the
last one allocated (also on disk) so a freed IP is not reused at once while other sidecars may still have it
as an endpoint.

Several daemons (several SLUICE_HOMEs, e.g. a demo and a test run) share the machine's loopback range, so
each address in use is also leased machine-wide: a file per IP in `SLUICE_IPAM_DIR` (default
`/dev/shm/sluice-ipam`, gone after a reboot like the processes) naming the state directory that holds it. A
lease whose state directory no longer exists is stale and taken over.
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


def _lease_dir() -> Path:
    return Path(os.environ.get("SLUICE_IPAM_DIR") or "/dev/shm/sluice-ipam")


class IPAllocator:
    def __init__(self, state_file: Path, in_use: Iterable[str] = ()) -> None:
        self._file = state_file
        self._owner = str(state_file.parent.resolve())
        self._leases = _lease_dir()
        self._leases.mkdir(parents=True, exist_ok=True)
        self._in_use = set(in_use)
        for ip in self._in_use:
            self._lease(ip, force=True)
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
            if ip not in self._in_use and self._lease(ip):
                self._in_use.add(ip)
                self._cursor = n
                tmp = self._file.with_suffix(".tmp")
                tmp.write_text(json.dumps({"last": ip}))
                os.replace(tmp, self._file)
                return ip
        raise PoolExhausted(f"no free pod IP left in {mesh.POD_NETWORK}")

    def claim(self, ip: str) -> None:
        self._in_use.add(ip)
        self._lease(ip, force=True)

    def release(self, ip: str) -> None:
        self._in_use.discard(ip)
        path = self._leases / ip
        try:
            if path.read_text() == self._owner:
                path.unlink()
        except OSError:
            pass

    def _lease(self, ip: str, force: bool = False) -> bool:
        """Take the machine-wide lease on `ip`; False if another live state directory holds it."""
        path = self._leases / ip
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                holder = path.read_text()
            except OSError:
                holder = ""
            if not force and holder != self._owner and holder and Path(holder).is_dir():
                return False
            path.write_text(self._owner)  # ours already, or stale: its state directory is gone
            return True
        with os.fdopen(fd, "w") as f:
            f.write(self._owner)
        return True
