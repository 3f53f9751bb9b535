"""`pods/portforward`: TCP connections into a pod, as kubelet forwards them.

Two wire forms:
- SPDY/3.1 (`portforward.k8s.io`): tunnelled in a WebSocket as `SPDY/3.1+portforward.k8s.io` (kubectl ≥ 1.31),
  or on the taken-over connection of a SPDY/3.1 upgrade (older kubectl; `sluice.api.spdy_upgrade`). Either way
  a byte stream of SPDY frames (`sluice.runtime.streams.spdy`). For each local connection kubectl opens an error stream and a data stream
  with the same `requestid` and a `port` header; the server replies to each at once, connects to the port
  when the pair is complete, and copies bytes both ways. A failed connect is one message on the error
  stream (kubectl then ends the whole session, as it does with kubelet).
- WebSocket `v4.channel.k8s.io` with `?ports=P1,P2` (other clients, `sluice port-forward`): one connection per port
  for the life of the WebSocket; channel 2i carries port i's data and 2i+1 its errors, each first
  announcing the port as two little-endian bytes.
Where to connect comes from the pod (`Dial`: port → (network namespace or None, host)).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import WSMsgType, web

from sluice.runtime.netns.dial import open_connection
from sluice.runtime.streams import spdy

__all__ = ["Dial", "ByteStream", "serve_spdy", "serve_spdy_tunnel", "serve_channels", "TUNNEL_PROTOCOL", "CHANNEL_PROTOCOL"]

log = logging.getLogger("sluice.runtime")

TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
CHANNEL_PROTOCOL = "v4.channel.k8s.io"
PAIR_TIMEOUT = 30.0  # kubelet's stream creation timeout
MAX_PAIRS = 256  # forwarded connections open at once in one session
_CHUNK = 32 * 1024

Dial = Callable[[int], tuple[str | None, str]]


@dataclass(frozen=True)
class Target:
    dial: Dial
    pod_name: str
    pod_uid: str

    def failure(self, port: int, err: BaseException) -> str:
        """kubelet's message for a port it could not reach (kubectl shows it, then ends the session)."""
        if isinstance(err, OSError) and err.errno:
            what = os.strerror(err.errno).lower()
        elif isinstance(err, TimeoutError):
            what = "i/o timeout"
        else:
            what = str(err) or type(err).__name__
        netns, host = self.dial(port)
        where = f' inside namespace "{netns}"' if netns else ""
        return (f"error forwarding port {port} to pod {self.pod_name}, uid {self.pod_uid}: failed to connect to "
                f"{host}:{port}{where}: dial tcp {host}:{port}: connect: {what}")

    async def connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        netns, host = self.dial(port)
        return await open_connection(netns, host, port)


# ---------------------------------------------------------------------------------------------- SPDY
class ByteStream(Protocol):
    """A SPDY byte stream: the WebSocket tunnel's binary messages, or a taken-over HTTP connection."""

    async def recv(self) -> bytes | None: ...  # None: the client is gone

    async def send(self, data: bytes) -> bool: ...


class WebSocketBytes:
    """The tunnel form: message boundaries mean nothing, only the bytes."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def recv(self) -> bytes | None:
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                return bytes(msg.data)
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return None

    async def send(self, data: bytes) -> bool:
        if self.ws.closed:
            return False
        try:
            await self.ws.send_bytes(data)
        except (ConnectionError, RuntimeError):
            return False
        return True


@dataclass
class _Pair:
    key: str  # the requestid shared by the two streams
    port: int
    error_id: int = 0
    data_id: int = 0
    task: asyncio.Task[None] | None = None
    writer: asyncio.StreamWriter | None = None
    client_fin: bool = False
    done: bool = False
    timer: asyncio.TimerHandle | None = None
    early: list[bytes] = field(default_factory=list)  # client data before the target connection exists


class _Tunnel:
    def __init__(self, stream: ByteStream, target: Target) -> None:
        self.stream = stream
        self.target = target
        self.parser = spdy.Parser()
        self.out = spdy.Writer()
        self.lock = asyncio.Lock()
        self.pairs: dict[str, _Pair] = {}
        self.by_stream: dict[int, _Pair] = {}
        self.last_id = 0

    async def send(self, *frames: bytes) -> None:
        async with self.lock:
            # Header compression is stateful: frames must leave in the order they were built.
            await self.stream.send(b"".join(frames))

    async def run(self) -> None:
        try:
            while True:
                data = await self.stream.recv()
                if data is None:
                    return
                try:
                    frames = self.parser.feed(data)
                except spdy.ProtocolError as e:
                    log.info("port-forward to %s: %s", self.target.pod_name, e)
                    await self.send(self.out.goaway(self.last_id, 1))
                    return
                for frame in frames:
                    if not await self.handle(frame):
                        return
        finally:
            for pair in list(self.pairs.values()):
                self._drop(pair)

    async def handle(self, frame: spdy.Frame) -> bool:
        if isinstance(frame, spdy.SynStream):
            await self.open_stream(frame)
        elif isinstance(frame, spdy.Data):
            pair = self.by_stream.get(frame.stream_id)
            if pair is not None and frame.stream_id == pair.data_id:
                await self.client_data(pair, frame.data, frame.fin)
        elif isinstance(frame, spdy.RstStream):
            pair = self.by_stream.get(frame.stream_id)
            if pair is not None:
                if frame.stream_id == pair.data_id and not pair.done:
                    await self.send(self.out.data(pair.error_id, b"", fin=True))
                self._drop(pair)
        elif isinstance(frame, spdy.Ping):
            await self.send(self.out.ping(frame.id))
        elif isinstance(frame, spdy.GoAway):
            return False
        return True

    async def open_stream(self, frame: spdy.SynStream) -> None:
        sid, h = frame.stream_id, frame.headers
        self.last_id = max(self.last_id, sid)
        kind = h.get("streamtype", "")
        try:
            port = int(h.get("port", ""))
        except ValueError:
            port = 0
        if kind not in ("error", "data") or not 0 < port < 65536:
            await self.send(self.out.rst(sid, spdy.PROTOCOL_ERROR))
            return
        key = h.get("requestid", "")
        pair = self.pairs.get(key)
        if (pair is None or pair.done) and len(self.pairs) >= MAX_PAIRS:
            await self.send(self.out.rst(sid, spdy.REFUSED_STREAM))
            return
        if pair is None or pair.done:
            pair = _Pair(key, port)
            self.pairs[key] = pair
            pair.timer = asyncio.get_running_loop().call_later(PAIR_TIMEOUT, self._expire, key, pair)
        if (kind == "error" and pair.error_id) or (kind == "data" and pair.data_id) or pair.port != port:
            await self.send(self.out.rst(sid, spdy.PROTOCOL_ERROR))
            return
        if kind == "error":
            pair.error_id = sid
        else:
            pair.data_id = sid
        self.by_stream[sid] = pair
        await self.send(self.out.syn_reply(sid))
        if pair.error_id and pair.data_id:
            if pair.timer is not None:
                pair.timer.cancel()
            pair.task = asyncio.create_task(self.forward(pair))

    def _expire(self, key: str, pair: _Pair) -> None:
        if not (pair.error_id and pair.data_id) and self.pairs.get(key) is pair:
            ids = [i for i in (pair.error_id, pair.data_id) if i]
            asyncio.ensure_future(self.send(*(self.out.rst(i, spdy.REFUSED_STREAM) for i in ids)))
            self._drop(pair)

    async def client_data(self, pair: _Pair, data: bytes, fin: bool) -> None:
        if pair.writer is None:
            pair.early.append(data)
            pair.client_fin = pair.client_fin or fin
            return
        with contextlib.suppress(ConnectionError):
            if data:
                pair.writer.write(data)
                await pair.writer.drain()
            if fin and pair.writer.can_write_eof():
                pair.writer.write_eof()

    async def forward(self, pair: _Pair) -> None:
        try:
            reader, writer = await self.target.connect(pair.port)
        except (OSError, TimeoutError) as e:
            message = self.target.failure(pair.port, e).encode()
            await self.send(self.out.data(pair.error_id, message, fin=True),
                            self.out.rst(pair.data_id, spdy.CANCEL))
            self._drop(pair)
            return
        pair.writer = writer
        try:
            for chunk in pair.early:
                writer.write(chunk)
            if pair.client_fin and writer.can_write_eof():
                writer.write_eof()
            pair.early.clear()
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                await self.send(self.out.data(pair.data_id, data))
        except ConnectionError:
            pass
        finally:
            writer.close()
        if not pair.done:
            await self.send(self.out.data(pair.data_id, b"", fin=True), self.out.data(pair.error_id, b"", fin=True))
            self._drop(pair)

    def _drop(self, pair: _Pair) -> None:
        pair.done = True
        if pair.timer is not None:
            pair.timer.cancel()
        if pair.task is not None and not pair.task.done() and pair.task is not asyncio.current_task():
            pair.task.cancel()
        if pair.writer is not None:
            pair.writer.close()
        for sid in (pair.error_id, pair.data_id):
            self.by_stream.pop(sid, None)
        if self.pairs.get(pair.key) is pair:
            del self.pairs[pair.key]


async def serve_spdy(stream: ByteStream, target: Target) -> None:
    """Forward for a SPDY/3.1 session until the client ends it (the caller closes the transport)."""
    await _Tunnel(stream, target).run()


async def serve_spdy_tunnel(ws: web.WebSocketResponse, target: Target) -> None:
    try:
        await serve_spdy(WebSocketBytes(ws), target)
    finally:
        if not ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.close()


# ---------------------------------------------------------------------------------------------- channels
async def serve_channels(ws: web.WebSocketResponse, target: Target, ports: tuple[int, ...]) -> None:
    lock = asyncio.Lock()

    async def send(channel: int, data: bytes) -> None:
        if not ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                async with lock:
                    await ws.send_bytes(bytes([channel]) + data)

    async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | str:
        try:
            return await target.connect(port)
        except (OSError, TimeoutError) as e:
            return target.failure(port, e)

    # Connect first: whatever the client sends meanwhile waits in the WebSocket's buffer, not lost.
    conns = await asyncio.gather(*(connect(p) for p in ports))
    for i, port in enumerate(ports):
        await send(2 * i, struct.pack("<H", port))
        await send(2 * i + 1, struct.pack("<H", port))
    writers = {i: c[1] for i, c in enumerate(conns) if not isinstance(c, str)}

    async def forward(i: int, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | str) -> None:
        if isinstance(conn, str):
            await send(2 * i + 1, conn.encode())
            return
        reader, writer = conn
        try:
            while data := await reader.read(_CHUNK):
                await send(2 * i, data)
        except ConnectionError:
            pass
        finally:
            writer.close()

    tasks = [asyncio.create_task(forward(i, c)) for i, c in enumerate(conns)]
    async def all_done() -> None:
        await asyncio.gather(*tasks)

    everything = asyncio.create_task(all_done())

    async def read() -> None:
        while True:
            msg = await ws.receive()
            if msg.type != WSMsgType.BINARY:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    return
                continue
            data: bytes = msg.data
            if not data or data[0] % 2 or data[0] // 2 >= len(ports):
                continue
            writer = writers.get(data[0] // 2)
            if writer is not None and len(data) > 1:
                with contextlib.suppress(ConnectionError):
                    writer.write(data[1:])
                    await writer.drain()

    reader = asyncio.create_task(read())
    try:
        await asyncio.wait([reader, everything], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (*tasks, reader):
            t.cancel()
        for w in writers.values():
            w.close()
        # Out of `receive()` before closing, so the close waits for the client's echo.
        await asyncio.gather(everything, reader, return_exceptions=True)
        if not ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.close()
