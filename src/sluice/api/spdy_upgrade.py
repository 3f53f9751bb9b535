"""Taking over an HTTP/1.1 connection for a SPDY/3.1 upgrade, which aiohttp does not do by itself.

aiohttp treats only `Upgrade: websocket` as an upgrade, so kubectl's `POST` with `Upgrade: SPDY/3.1` arrives
as an ordinary request. `accept` answers it with `101 Switching Protocols` (and the negotiated
`X-Stream-Protocol-Version`), then installs itself as the connection's payload parser — the hook aiohttp's own
WebSocketResponse uses — so every later byte from the client comes here instead of to the HTTP parser. The
handler keeps the request open for as long as the SPDY session lasts. Used by `sluice.api.streaming`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

__all__ = ["RawConnection", "accept", "offered_protocols"]

_PAUSE_AT = 1024 * 1024  # bytes received but not yet consumed, before the socket stops being read
_RESUME_AT = 256 * 1024
_WRITE_HIGH = 256 * 1024


def offered_protocols(request: web.Request) -> list[str]:
    """`X-Stream-Protocol-Version` values, one header line each (or comma-joined), in the client's order."""
    return [p.strip() for h in request.headers.getall("X-Stream-Protocol-Version", []) for p in h.split(",")
            if p.strip()]


class RawConnection:
    """The bytes of an upgraded connection: `recv()` (None at the end), `send()`, `close()`."""

    def __init__(self, request: web.Request) -> None:
        transport = request.transport
        assert transport is not None
        self._transport = transport
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._pending = 0
        self._paused = False

    # --- the payload-parser interface aiohttp calls (RequestHandler.data_received / connection_lost)
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._queue.put_nowait(bytes(data))
        self._pending += len(data)
        if self._pending > _PAUSE_AT and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self._queue.put_nowait(None)

    # --- for the session
    async def recv(self) -> bytes | None:
        data = await self._queue.get()
        if data is None:
            self._queue.put_nowait(None)  # stays at the end for every later call
            return None
        self._pending -= len(data)
        if self._paused and self._pending < _RESUME_AT and not self._transport.is_closing():
            self._paused = False
            self._transport.resume_reading()
        return data

    async def send(self, data: bytes) -> bool:
        if self._transport.is_closing():
            return False
        self._transport.write(data)
        while self._transport.get_write_buffer_size() > _WRITE_HIGH and not self._transport.is_closing():
            await asyncio.sleep(0.01)  # a slow client: let the buffer drain
        return not self._transport.is_closing()

    def close(self) -> None:
        self._transport.close()


async def accept(request: web.Request, protocol: str) -> tuple[web.StreamResponse, RawConnection]:
    """Answer 101 with `protocol` and take the connection over."""
    conn = RawConnection(request)
    protocol_handler: Any = request.protocol
    protocol_handler.set_parser(conn)  # from now on the client's bytes are SPDY frames, not HTTP
    resp = web.StreamResponse(status=101, headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                                                   "X-Stream-Protocol-Version": protocol})
    resp.force_close()
    await resp.prepare(request)
    return resp, conn
