"""On-disk records shared by the write-ahead log and snapshots: the record codecs, and the snapshots' framing
(the WAL frames the same payloads its own way, see `wal`).

Every record is `<u32 payload length><u32 crc32(payload)><payload>`, and a payload starts with its type byte.
A reader stops at the first record that is cut short or fails its checksum: that is the torn tail a crash or
`kill -9` leaves behind, and everything before it is intact because records are only ever appended.
"""

from __future__ import annotations

import struct
import zlib
from array import array
from collections.abc import Iterator
from typing import BinaryIO

from sluice.metrics.series import Labels

FRAME = struct.Struct("<II")
MAX_RECORD = 1 << 30

# Record types.
SERIES = 1  # sid, labels
SAMPLES = 2  # one scrape: t, target, present sids + values, stale sids
TARGET = 3  # target id, name
CHUNK = 4  # snapshot only: sid, max t, encoded chunk
HEAD = 5  # snapshot only: sid, head timestamps, head values
LAST = 6  # snapshot only: target id, sids of its last scrape
END = 7  # snapshot only: completeness marker

_SERIES_HEAD = struct.Struct("<BIH")
_STR_LEN = struct.Struct("<H")
_SAMPLES_HEAD = struct.Struct("<BqIII")
_ID_HEAD = struct.Struct("<BI")
_CHUNK_HEAD = struct.Struct("<BIq")
_HEAD_HEAD = struct.Struct("<BII")


def frame(payload: bytes) -> bytes:
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def read_frames(f: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """Yield (offset after the record, payload) for each intact record; stop quietly at a torn one."""
    data = f.read()
    off = 0
    end = len(data)
    while off + FRAME.size <= end:
        n, crc = FRAME.unpack_from(data, off)
        start = off + FRAME.size
        if n > MAX_RECORD or start + n > end:
            return
        payload = data[start:start + n]
        if zlib.crc32(payload) != crc:
            return
        off = start + n
        yield off, payload


def _put_str(out: list[bytes], s: str) -> None:
    b = s.encode()
    out.append(_STR_LEN.pack(len(b)))
    out.append(b)


def encode_series(sid: int, labels: Labels) -> bytes:
    out = [_SERIES_HEAD.pack(SERIES, sid, len(labels))]
    for name, value in labels:
        _put_str(out, name)
        _put_str(out, value)
    return b"".join(out)


def decode_series(p: bytes) -> tuple[int, Labels]:
    _, sid, count = _SERIES_HEAD.unpack_from(p)
    off = _SERIES_HEAD.size
    strs: list[str] = []
    for _ in range(count * 2):
        (n,) = _STR_LEN.unpack_from(p, off)
        off += _STR_LEN.size
        strs.append(p[off:off + n].decode())
        off += n
    return sid, tuple(zip(strs[0::2], strs[1::2], strict=True))


def encode_samples(t_ms: int, target: int, sids: array[int], values: array[float], stale: array[int]) -> bytes:
    head = _SAMPLES_HEAD.pack(SAMPLES, t_ms, target, len(sids), len(stale))
    return head + sids.tobytes() + values.tobytes() + stale.tobytes()


def decode_samples(p: bytes) -> tuple[int, int, array[int], array[float], array[int]]:
    _, t_ms, target, n, n_stale = _SAMPLES_HEAD.unpack_from(p)
    off = _SAMPLES_HEAD.size
    sids = array("I")
    sids.frombytes(p[off:off + 4 * n])
    off += 4 * n
    values = array("d")
    values.frombytes(p[off:off + 8 * n])
    off += 8 * n
    stale = array("I")
    stale.frombytes(p[off:off + 4 * n_stale])
    return t_ms, target, sids, values, stale


def encode_target(tid: int, name: str) -> bytes:
    return _ID_HEAD.pack(TARGET, tid) + name.encode()


def decode_target(p: bytes) -> tuple[int, str]:
    _, tid = _ID_HEAD.unpack_from(p)
    return tid, p[_ID_HEAD.size:].decode()


def encode_last(tid: int, sids: array[int]) -> bytes:
    return _ID_HEAD.pack(LAST, tid) + sids.tobytes()


def decode_last(p: bytes) -> tuple[int, array[int]]:
    _, tid = _ID_HEAD.unpack_from(p)
    sids = array("I")
    sids.frombytes(p[_ID_HEAD.size:])
    return tid, sids


def encode_chunk(sid: int, max_t: int, chunk: bytes) -> bytes:
    return _CHUNK_HEAD.pack(CHUNK, sid, max_t) + chunk


def decode_chunk(p: bytes) -> tuple[int, int, bytes]:
    _, sid, max_t = _CHUNK_HEAD.unpack_from(p)
    return sid, max_t, p[_CHUNK_HEAD.size:]


def encode_head(sid: int, ts: array[int], vs: array[float]) -> bytes:
    return _HEAD_HEAD.pack(HEAD, sid, len(ts)) + ts.tobytes() + vs.tobytes()


def decode_head(p: bytes) -> tuple[int, array[int], array[float]]:
    _, sid, n = _HEAD_HEAD.unpack_from(p)
    off = _HEAD_HEAD.size
    ts = array("q")
    ts.frombytes(p[off:off + 8 * n])
    vs = array("d")
    vs.frombytes(p[off + 8 * n:off + 16 * n])
    return sid, ts, vs
