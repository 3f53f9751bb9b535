"""The part of SPDY/3.1 that `kubectl port-forward` speaks: frames in, frames out, no I/O.

kubectl (client-go's spdystream) opens two streams per forwarded connection and sends SYN_STREAM, DATA,
RST_STREAM, PING and GOAWAY; a server answers with SYN_REPLY, DATA, RST_STREAM and PING echoes. Header
blocks are zlib-compressed with the SPDY/3 dictionary, one compression context per direction for the whole
connection, each block ending in a sync flush. spdystream does no flow control, so neither does this.
Used by `sluice.runtime.streams.portforward`.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

__all__ = ["Parser", "Writer", "SynStream", "Data", "RstStream", "Ping", "GoAway", "Frame", "ProtocolError",
           "DICTIONARY", "CANCEL", "PROTOCOL_ERROR", "REFUSED_STREAM", "INTERNAL_ERROR", "FLAG_FIN"]

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL, INTERNAL_ERROR = 1, 2, 3, 5, 6
MAX_FRAME = 1 << 24  # 24-bit lengths
MAX_HEADER_BLOCK = 64 * 1024  # kubectl's blocks are a few dozen bytes: anything near this is hostile


def _dictionary() -> bytes:
    """The SPDY/3 header-compression dictionary (draft-mbelshe-httpbis-spdy-00, section 2.6.10.1)."""
    words = ("options head post put delete trace accept accept-charset accept-encoding accept-language "
             "accept-ranges age allow authorization cache-control connection content-base content-encoding "
             "content-language content-length content-location content-md5 content-range content-type date "
             "etag expect expires from host if-match if-modified-since if-none-match if-range "
             "if-unmodified-since last-modified location max-forwards pragma proxy-authenticate "
             "proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
             "user-agent vary via warning www-authenticate method get status").split()
    words += ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
    head = b"".join(struct.pack(">I", len(w)) + w.encode() for w in words)
    tail = ("100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
            "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
            "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
            "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
            "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
            "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
    return head + tail.encode()


DICTIONARY = _dictionary()
assert hashlib.sha256(DICTIONARY).hexdigest() == \
    "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02", "SPDY/3 dictionary mismatch"


class ProtocolError(Exception):
    """The peer broke the framing: the connection cannot continue."""


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: dict[str, str]
    fin: bool


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Ping:
    id: int


@dataclass(frozen=True)
class GoAway:
    last_stream_id: int
    status: int


Frame = SynStream | Data | RstStream | Ping | GoAway


def _decode_headers(block: bytes) -> dict[str, str]:
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(block):
            raise ProtocolError("truncated header block")
        out = block[pos:pos + n]
        pos += n
        return out

    (count,) = struct.unpack(">I", take(4))
    headers: dict[str, str] = {}
    for _ in range(count):
        (n,) = struct.unpack(">I", take(4))
        name = take(n).decode("latin-1")
        (n,) = struct.unpack(">I", take(4))
        value = take(n).decode("latin-1")
        if name in headers or name != name.lower():
            raise ProtocolError(f"bad header name {name!r}")
        headers[name] = value.split("\x00")[0]
    return headers


def encode_headers(headers: dict[str, str]) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for k, v in headers.items():
        kb, vb = k.lower().encode("latin-1"), v.encode("latin-1")
        out += [struct.pack(">I", len(kb)), kb, struct.pack(">I", len(vb)), vb]
    return b"".join(out)


class Parser:
    """Turns the bytes a client sends (in pieces of any size) into frames."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            word, flags_len = struct.unpack(">II", self._buf[:8])
            flags, length = flags_len >> 24, flags_len & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            if word & 0x80000000:
                frame = self._control((word >> 16) & 0x7FFF, word & 0xFFFF, flags, payload)
                if frame is not None:
                    frames.append(frame)
            else:
                frames.append(Data(word & 0x7FFFFFFF, payload, bool(flags & FLAG_FIN)))
        return frames

    def _block(self, compressed: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(compressed, MAX_HEADER_BLOCK)
        except zlib.error as e:
            raise ProtocolError(f"header block: {e}") from None
        if self._inflate.unconsumed_tail:
            raise ProtocolError("header block too large")
        return _decode_headers(raw)

    def _control(self, version: int, kind: int, flags: int, p: bytes) -> Frame | None:
        if version != VERSION:
            raise ProtocolError(f"unsupported SPDY version {version}")
        if kind == SYN_STREAM:
            if len(p) < 10:
                raise ProtocolError("short SYN_STREAM")
            (sid,) = struct.unpack(">I", p[:4])
            return SynStream(sid & 0x7FFFFFFF, self._block(p[10:]), bool(flags & FLAG_FIN))
        if kind in (SYN_REPLY, HEADERS):
            self._block(p[4:])  # keeps the shared decompression context in step
            return None
        if kind == RST_STREAM and len(p) == 8:
            sid, status = struct.unpack(">II", p)
            return RstStream(sid & 0x7FFFFFFF, status)
        if kind == PING and len(p) == 4:
            return Ping(struct.unpack(">I", p)[0])
        if kind == GOAWAY and len(p) >= 8:
            last, status = struct.unpack(">II", p[:8])
            return GoAway(last & 0x7FFFFFFF, status)
        if kind in (SETTINGS, WINDOW_UPDATE):
            return None  # no flow control: spdystream has none either
        raise ProtocolError(f"unexpected control frame type {kind}")


class Writer:
    """Builds the frames a server sends."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS, zdict=DICTIONARY)

    @staticmethod
    def _control(kind: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None, fin: bool = False) -> bytes:
        block = self._deflate.compress(encode_headers(headers or {})) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return self._control(SYN_REPLY, FLAG_FIN if fin else 0, struct.pack(">I", stream_id) + block)

    @staticmethod
    def data(stream_id: int, data: bytes, fin: bool = False) -> bytes:
        if len(data) >= MAX_FRAME:
            raise ValueError("DATA frame too large")
        return struct.pack(">II", stream_id, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data

    def rst(self, stream_id: int, status: int) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, id: int) -> bytes:
        return self._control(PING, 0, struct.pack(">I", id))

    def goaway(self, last_stream_id: int, status: int = 0) -> bytes:
        return self._control(GOAWAY, 0, struct.pack(">II", last_stream_id, status))
