"""The framing between the daemon's body pool (`sluice.api.body_pool`) and its worker processes
(`sluice.api.body_worker`), both ways: a 4-byte big-endian length, a JSON header of that length whose `sizes`
lists the payloads, then the payloads. Before its answer a worker writes one byte (`TAKEN`) once it has read a
job whole.

Its own module so that the pool (imported by the registry) does not import the worker (which imports the
registry)."""

from __future__ import annotations

import json
import struct
from typing import IO, Any

__all__ = ["LEN", "TAKEN", "pack", "read_job"]

LEN = struct.Struct(">I")
TAKEN = b"\x01"  # written once a job has been read whole


def pack(head: dict[str, Any], payloads: list[bytes]) -> bytes:
    h = json.dumps({**head, "sizes": [len(p) for p in payloads]}, separators=(",", ":")).encode()
    return b"".join([LEN.pack(len(h)), h, *payloads])


def _read_exactly(f: IO[bytes], n: int) -> bytes | None:
    data = f.read(n)
    return data if data is not None and len(data) == n else None


def read_job(f: IO[bytes]) -> tuple[dict[str, Any], list[bytes]] | None:
    """One frame from a blocking stream, or None at its end (or a frame cut short)."""
    raw = _read_exactly(f, LEN.size)
    if raw is None:
        return None
    h = _read_exactly(f, LEN.unpack(raw)[0])
    if h is None:
        return None
    head = json.loads(h)
    payloads = []
    for size in head.get("sizes", []):
        p = _read_exactly(f, int(size))
        if p is None:
            return None
        payloads.append(p)
    return head, payloads
