"""exec/attach over SPDY/3.1 (`v4.channel.k8s.io`), for kubectl ≤ 1.29: one SPDY stream per channel.

kubectl opens the streams itself, each with a `streamtype` header (`error`, `stdin`, `stdout`, `stderr`,
`resize`), and waits for the server's reply to each. `open` replies and waits until every stream the
request's options imply is there (kubelet waits 30 s). Output goes out as DATA frames; stdin's end is a FIN
on the stdin stream; the session ends with the Status on the error stream and a FIN on every stream the
server writes, then the connection closes. The same `Session` interface as the WebSocket form, so
`execution` and `attach` do not know which one they run on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sluice.api.spdy_upgrade import RawConnection
from sluice.runtime.streams import channels, spdy

__all__ = ["SpdySession", "expected_streams"]

log = logging.getLogger("sluice.runtime")

STREAM_TIMEOUT = 30.0
_CHANNEL = {"stdin": channels.STDIN, "stdout": channels.STDOUT, "stderr": channels.STDERR,
            "error": channels.ERROR, "resize": channels.RESIZE}


def expected_streams(*, stdin: bool, stdout: bool, stderr: bool, tty: bool) -> set[str]:
    wanted = {"error"}
    for name, on in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr and not tty), ("resize", tty)):
        if on:
            wanted.add(name)
    return wanted


class SpdySession(channels.Session):
    def __init__(self, conn: RawConnection, expected: set[str]) -> None:
        super().__init__()
        self.conn = conn
        self.expected = expected
        self.parser = spdy.Parser()
        self.out = spdy.Writer()
        self.ids: dict[int, int] = {}  # channel → stream id
        self.kinds: dict[int, str] = {}  # stream id → streamtype
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._backlog: list[spdy.Frame] = []
        self._ended = False

    async def _write(self, *frames: bytes) -> bool:
        async with self._lock:
            ok = await self.conn.send(b"".join(frames))
        if not ok:
            self.closed.set()
        return ok

    async def open(self) -> bool:
        """Reply to the client's streams until all expected ones exist; False if they never come."""
        try:
            async with asyncio.timeout(STREAM_TIMEOUT):
                while not self.expected <= set(self.kinds.values()):
                    data = await self.conn.recv()
                    if data is None:
                        return False
                    for frame in self.parser.feed(data):
                        if isinstance(frame, spdy.SynStream):
                            await self._open_stream(frame)
                        else:
                            self._backlog.append(frame)  # stdin may come before the last stream: keep it
        except (TimeoutError, spdy.ProtocolError) as e:
            log.info("exec over SPDY: streams not opened: %s", e or "timed out")
            return False
        return True

    async def _open_stream(self, frame: spdy.SynStream) -> None:
        kind = frame.headers.get("streamtype", "")
        channel = _CHANNEL.get(kind)
        if channel is None or channel in self.ids:
            await self._write(self.out.rst(frame.stream_id, spdy.PROTOCOL_ERROR))
            return
        self.ids[channel] = frame.stream_id
        self.kinds[frame.stream_id] = kind
        await self._write(self.out.syn_reply(frame.stream_id))

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read_loop())

    async def _handle(self, frame: spdy.Frame) -> bool:
        if isinstance(frame, spdy.Data):
            kind = self.kinds.get(frame.stream_id)
            if kind in ("stdin", "resize"):
                if frame.data:
                    await self.deliver(_CHANNEL[kind], frame.data)
                if frame.fin and kind == "stdin":
                    await self.stdin_closed()
        elif isinstance(frame, spdy.SynStream):
            await self._open_stream(frame)
        elif isinstance(frame, spdy.Ping):
            await self._write(self.out.ping(frame.id))
        elif isinstance(frame, spdy.GoAway):
            return False
        return True

    async def _read_loop(self) -> None:
        try:
            for frame in self._backlog:
                if not await self._handle(frame):
                    return
            self._backlog.clear()
            while True:
                data = await self.conn.recv()
                if data is None:
                    return
                for frame in self.parser.feed(data):
                    if not await self._handle(frame):
                        return
        except (spdy.ProtocolError, ConnectionError):
            pass
        finally:
            self.closed.set()

    async def send(self, channel: int, data: bytes) -> bool:
        sid = self.ids.get(channel)
        if sid is None or self._ended:
            return not self.closed.is_set()
        return await self._write(self.out.data(sid, data))

    async def finish(self, status: bytes | None) -> None:
        if not self._ended:
            frames = []
            error = self.ids.get(channels.ERROR)
            if status is not None and error is not None:
                frames.append(self.out.data(error, status))
            for channel in (channels.STDOUT, channels.STDERR, channels.ERROR):
                if channel in self.ids:
                    frames.append(self.out.data(self.ids[channel], b"", fin=True))
            self._ended = True
            await self._write(*frames)
        await self.stop()

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        self._ended = True
        self.conn.close()
