"""The channel protocol of `pods/exec` and `pods/attach` over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`).

Every message is binary: one byte of channel (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; v5 adds 255,
"no more data on channel N"), then the payload. The session ends with exactly one Status on channel 3 and a
close frame with code 1000, the only ending kubectl reads as success. Used by `sluice.runtime.streams.execution`
and `sluice.runtime.streams.attach`; the Status bodies are built here, byte for byte as kubelet writes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

__all__ = ["Session", "ChannelSession", "success", "exit_code", "internal_error", "STDIN", "STDOUT", "STDERR", "ERROR",
           "RESIZE", "CLOSE", "ResizeDecoder"]

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def success() -> bytes:
    return _dump({"metadata": {}, "status": "Success"})


def exit_code(code: int) -> bytes:
    """What kubelet writes for a command that exited non-zero; kubectl exits with `code`."""
    return _dump({"metadata": {}, "status": "Failure",
                  "message": f"command terminated with non-zero exit code: command terminated with exit code {code}",
                  "reason": "NonZeroExitCode",
                  "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}})


def internal_error(message: str) -> bytes:
    """`apierrors.NewInternalError`: kubectl prints `error: Internal error occurred: <message>` and exits 1."""
    return _dump({"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {message}",
                  "reason": "InternalError", "details": {"causes": [{"message": message}]}, "code": 500})


class ResizeDecoder:
    """Channel 4 is a byte stream of JSON objects `{"Width":W,"Height":H}`; yields (columns, rows)."""

    def __init__(self) -> None:
        self._buf = ""
        self._json = json.JSONDecoder()

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        self._buf += data.decode("utf-8", "replace")
        out: list[tuple[int, int]] = []
        while True:
            text = self._buf.lstrip()
            if not text:
                self._buf = ""
                return out
            try:
                obj, end = self._json.raw_decode(text)
            except ValueError:
                if len(text) > 4096:  # never a partial size: drop the garbage
                    self._buf = ""
                else:
                    self._buf = text
                return out
            self._buf = text[end:]
            if isinstance(obj, dict):
                keys = {str(k).lower(): v for k, v in obj.items()}
                w, h = keys.get("width"), keys.get("height")
                if isinstance(w, int) and isinstance(h, int) and 0 <= w < 65536 and 0 <= h < 65536:
                    out.append((w, h))


class Session:
    """One exec/attach session, whatever carries it: send on channels, hear stdin, its end and resizes.

    The runner (`execution`, `attach`) sets the `on_*` callbacks, calls `start()` once the program runs,
    `send()` for output and `finish(status)` at the end; `closed` is set when the client goes away.
    """

    def __init__(self) -> None:
        self.on_stdin: Callable[[bytes], Awaitable[None]] | None = None
        self.on_stdin_close: Callable[[], Awaitable[None]] | None = None
        self.on_resize: Callable[[int, int], None] | None = None
        self.closed = asyncio.Event()
        self.progress = 0  # output messages sent so far (to tell trickling output from none at all)
        self._resize = ResizeDecoder()

    async def deliver(self, channel: int, payload: bytes) -> None:
        """What the client sent on `channel` (stdin or resize)."""
        if channel == STDIN and self.on_stdin is not None:
            await self.on_stdin(payload)
        elif channel == RESIZE and self.on_resize is not None:
            for w, h in self._resize.feed(payload):
                self.on_resize(w, h)

    async def stdin_closed(self) -> None:
        if self.on_stdin_close is not None:
            await self.on_stdin_close()

    def start(self) -> None:
        raise NotImplementedError

    async def send(self, channel: int, data: bytes) -> bool:
        """False once the client is gone."""
        raise NotImplementedError

    async def finish(self, status: bytes | None) -> None:
        """The one Status on the error channel (if any), then end the session cleanly."""
        raise NotImplementedError

    async def stop(self) -> None:
        """End the session (idempotent)."""
        raise NotImplementedError


class ChannelSession(Session):
    """An upgraded exec/attach WebSocket (`v5.channel.k8s.io` or `v4.channel.k8s.io`)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        super().__init__()
        self.ws = ws
        self.v5 = ws.ws_protocol == "v5.channel.k8s.io"
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        # Read for the whole session: aiohttp answers kubectl's pings only inside `receive`.
        self._reader = asyncio.create_task(self._read_loop())

    async def send(self, channel: int, data: bytes) -> bool:
        if self.ws.closed:
            return False
        try:
            async with self._lock:
                await self.ws.send_bytes(bytes([channel]) + data)
        except (ConnectionError, RuntimeError):
            self.closed.set()
            return False
        return True

    async def _read_loop(self) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type != WSMsgType.BINARY:
                    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                        return
                    continue  # text frames carry nothing in the binary protocols
                data: bytes = msg.data
                if not data:
                    continue
                if data[0] == CLOSE:
                    if self.v5 and data[1:] == bytes([STDIN]):
                        await self.stdin_closed()
                else:
                    await self.deliver(data[0], data[1:])
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self.closed.set()

    async def finish(self, status: bytes | None) -> None:
        if status is not None:
            await self.send(ERROR, status)
        await self.stop()

    async def stop(self) -> None:
        # The reader must be out of `receive()` first: closing under a waiting reader drops the connection
        # without waiting for the client's close frame, which some clients report as an abnormal closure.
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError, asyncio.TimeoutError):
                await self.ws.close()
