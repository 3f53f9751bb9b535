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
    """Pod IPs from `network`. `machine_wide` leases each address on the machine too (loopback mode, where
    every daemon shares 127.0.0.0/8); in netns mode each daemon's pods live behind its own node namespace,
    so its addresses need no lease, and the first host address is the node's (the pods' gateway)."""

    def __init__(self, state_file: Path, in_use: Iterable[str] = (), *,
                 network: ipaddress.IPv4Network | ipaddress.IPv6Network = mesh.POD_NETWORK, machine_wide: bool = True,
                 reserved: int = 0) -> None:
        self._file = state_file
        self._owner = str(state_file.parent.resolve())
        self._network = network
        self._machine_wide = machine_wide
        self._leases = _lease_dir()
        if machine_wide:
            self._leases.mkdir(parents=True, exist_ok=True)
        self._in_use = set(in_use)
        for ip in self._in_use:
            self._lease(ip, force=True)
        net = network
        self._first = int(net.network_address) + 1 + reserved
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
        raise PoolExhausted(f"no free pod IP left in {self._network}")

    def claim(self, ip: str) -> None:
        self._in_use.add(ip)
        self._lease(ip, force=True)

    def release(self, ip: str) -> None:
        self._in_use.discard(ip)
        if not self._machine_wide:
            return
        path = self._leases / ip
        try:
            if path.read_text() == self._owner:
                path.unlink()
        except OSError:
            pass

    def _lease(self, ip: str, force: bool = False) -> bool:
        """Take the machine-wide lease on `ip`; False if another live state directory holds it."""
        if not self._machine_wide:
            return True
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
