"""The TSDB's write-ahead log files (`wal-N`): record framing, a reader that survives damage, a writer that
survives a full disk.

Used by `sluice.metrics.tsdb.db.TSDB` (which owns what the payloads mean, see `records`). A file starts with
`MAGIC`; then every record is

    <4 bytes SYNC><u32 payload length><u32 crc32(payload)><u32 crc32 of the 12 bytes before><payload>

The header has its own checksum, so a reader can trust a record's length even when its payload is damaged and
skip exactly that record; when the header itself is damaged it looks for the next `SYNC` whose header checks
out and carries on from there. Damage followed by at least one intact record is a *corruption*: the skipped
bytes are reported (the caller logs and counts them). Damage with nothing intact after it is the *torn tail*
a crash or `kill -9` leaves while a write is under way: it is dropped quietly and cut off the file.

Files without `MAGIC` are the first format (`<u32 length><u32 crc32(payload)><payload>`, no header checksum,
written before this module existed): they are still read; a record whose payload fails its checksum is
skipped when the record after it is intact, and anything else ends the file as before.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MAGIC", "frame", "read", "read_file", "WalReadResult", "Corruption", "WalWriter"]

MAGIC = b"SLUICE-WAL\x00\x02"
SYNC = b"\xa5WAL"
_HEAD = struct.Struct("<4sIII")  # sync, length, payload crc, header crc
_LEGACY = struct.Struct("<II")
MAX_RECORD = 1 << 30


def frame(payload: bytes) -> bytes:
    head = struct.pack("<4sII", SYNC, len(payload), zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head)) + payload


@dataclass(frozen=True)
class Corruption:
    offset: int  # where the damaged bytes start
    length: int  # how many bytes were skipped


@dataclass
class WalReadResult:
    payloads: list[bytes] = field(default_factory=list)
    corruptions: list[Corruption] = field(default_factory=list)
    good_end: int = 0  # the end of the last intact record (or of the magic): where a torn tail is cut
    size: int = 0

    @property
    def torn(self) -> bool:
        return self.good_end < self.size


def _header_at(data: bytes, off: int, end: int) -> int | None:
    """The payload length if an intact record header starts at `off`."""
    if off + _HEAD.size > end:
        return None
    sync, n, _crc, hcrc = _HEAD.unpack_from(data, off)
    if sync != SYNC or zlib.crc32(data[off:off + 12]) != hcrc or n > MAX_RECORD:
        return None
    return int(n)


def _next_header(data: bytes, off: int, end: int) -> int:
    """The offset of the next intact header at or after `off`, or -1."""
    while True:
        off = data.find(SYNC, off, end)
        if off < 0 or _header_at(data, off, end) is not None:
            return off
        off += 1


def read(data: bytes) -> WalReadResult:
    """Every intact record of one WAL file's bytes, plus where damage was skipped and where the tail is torn."""
    end = len(data)
    if data.startswith(MAGIC):
        off = len(MAGIC)
    else:
        legacy = _read_legacy(data)
        if legacy.payloads or _next_header(data, 0, end) < 0:
            return legacy
        off = 0  # a damaged magic in front of records of this format
    out = WalReadResult(size=len(data), good_end=off)
    damaged: int | None = None  # start of damage not yet known to be followed by an intact record
    while off < end:
        n = _header_at(data, off, end)
        if n is None:
            nxt = _next_header(data, off + 1, end)
            if nxt < 0:
                break  # nothing intact after this: a torn tail
            damaged = off if damaged is None else damaged
            off = nxt
            continue
        start = off + _HEAD.size
        if start + n > end:
            break  # the last record was cut short: a torn tail
        payload = data[start:start + n]
        if zlib.crc32(payload) != _HEAD.unpack_from(data, off)[2]:
            damaged = off if damaged is None else damaged
            off = start + n
            continue
        if damaged is not None:
            out.corruptions.append(Corruption(damaged, off - damaged))
            damaged = None
        out.payloads.append(payload)
        off = start + n
        out.good_end = off
    return out


def _legacy_at(data: bytes, off: int, end: int) -> tuple[int, bool] | None:
    """(length, payload intact) of a first-format record at `off`, or None when it does not fit the file."""
    if off + _LEGACY.size > end:
        return None
    n, crc = _LEGACY.unpack_from(data, off)
    start = off + _LEGACY.size
    if n > MAX_RECORD or start + n > end:
        return None
    return n, zlib.crc32(data[start:start + n]) == crc


def _read_legacy(data: bytes) -> WalReadResult:
    out = WalReadResult(size=len(data))
    end = len(data)
    off = 0
    while off < end:
        rec = _legacy_at(data, off, end)
        if rec is None:
            break
        n, ok = rec
        nxt = off + _LEGACY.size + n
        if not ok:
            # Without a header checksum the length is trusted only if an intact record follows it.
            after = _legacy_at(data, nxt, end)
            if after is None or not after[1]:
                break
            out.corruptions.append(Corruption(off, nxt - off))
            off = nxt
            continue
        out.payloads.append(data[off + _LEGACY.size:nxt])
        off = nxt
        out.good_end = off
    return out


def read_file(path: Path) -> WalReadResult:
    return read(path.read_bytes())


class WalWriter:
    """Appends framed records to one WAL file with plain `os.write`s (into the page cache: they survive
    `kill -9`; `sync` makes them durable). A write that fails (ENOSPC, EIO) is cut back off the file before
    the error is raised, so the file never holds half a batch and can be appended to again later."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.size = os.fstat(self._fd).st_size

    def write(self, data: bytes) -> None:
        if self.size == 0:
            data = MAGIC + data  # with the first batch, so a full disk never leaves a file without it
        view = memoryview(data)
        done = 0
        try:
            while done < len(view):
                done += os.write(self._fd, view[done:])
        except OSError:
            try:
                os.ftruncate(self._fd, self.size)
            except OSError:
                pass
            raise
        self.size += len(data)

    def sync(self) -> None:
        os.fsync(self._fd)

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
