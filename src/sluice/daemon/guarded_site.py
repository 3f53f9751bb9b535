"""An aiohttp site with connection hygiene, for the daemon's aiohttp ports (the API server and the console).

Used by `sluice.daemon.main` (the API server, TLS) and `console_service` in place of `web.TCPSite`; the
metrics port's own server (`sluice.httpserver`) keeps the same rules. aiohttp bounds request lines and
headers, but not how long a client may take to send them, nor how many connections it may hold. Here every
accepted connection is wrapped and kept in a `sluice.connguard.ConnectionGuard` (header and idle deadlines,
the per-port cap; see there); the header deadline also covers the TLS handshake, whose failures are logged
sparingly as well.

Requests in progress (watches, log follows) have no deadline here: they end when their handler does.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.web import RequestHandler

from sluice.connguard import ConnectionGuard, Guarded, GuardedProtocol, Limits
from sluice.daemon.state import DaemonOptions

__all__ = ["GuardedSite", "Limits", "limits_for", "connection_cap", "raise_fd_limit", "RUNNER_OPTIONS"]

log = logging.getLogger("sluice.connections")

# For every `web.AppRunner` behind a guarded site: handlers end when their client goes away (a watch or a
# log follow must not outlive its connection), and aiohttp's own bounds on request lines and headers.
RUNNER_OPTIONS: dict[str, Any] = {"handler_cancellation": True, "max_line_size": 8190, "max_field_size": 8190,
                                  "max_headers": 128}


def raise_fd_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit (what a server holding many sockets needs; the
    common default of 1024 is for interactive programs). Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def limits_for(options: DaemonOptions) -> Limits:
    """The limits `config.yaml` asks for; the connection cap shares the descriptors among the 3 HTTP ports."""
    return Limits(header_timeout=options.header_timeout, idle_timeout=options.idle_timeout,
                  max_connections=options.max_connections or connection_cap(3))


def connection_cap(ports: int, fd_limit: int | None = None) -> int:
    """Connections each of `ports` HTTP ports may hold: together at most half the descriptors, so pods' logs,
    the store and xDS keep the other half; between 16 and 4096 per port."""
    if fd_limit is None:
        fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max(16, min(4096, fd_limit // 2 // max(1, ports)))


class _Guard(ConnectionGuard):
    """The connections of one site, and which of them carries each request's transport."""

    def __init__(self, limits: Limits, name: str) -> None:
        super().__init__(limits, name)
        self.by_transport: dict[asyncio.BaseTransport, _Conn] = {}

    def forget(self, conn: Guarded) -> None:
        super().forget(conn)
        app = getattr(conn, "app_transport", None)
        if app is not None:
            self.by_transport.pop(app, None)


class _Conn(GuardedProtocol):
    """One accepted connection: deadlines and bookkeeping, forwarding everything to aiohttp's handler."""

    def __init__(self, guard: _Guard, make_handler: Callable[[], RequestHandler],
                 ssl_context: ssl.SSLContext | None) -> None:
        super().__init__(guard)
        self.guard: _Guard = guard
        self.make_handler = make_handler
        self.ssl_context = ssl_context
        self.raw: asyncio.Transport | None = None
        self.app_transport: asyncio.Transport | None = None
        self.inner: RequestHandler | None = None
        self.early: list[bytes] = []  # decrypted bytes that arrive before the handler is attached
        # Raw bytes (the TLS ClientHello) read before the handshake began: uvloop starts reading once
        # `connection_made` returns, whatever it paused, so they can arrive here before `start_tls` takes over.
        self.pre_tls: list[bytes] = []
        self.tls_begun = False
        self.awaiting_headers = True  # the running deadline is for headers (not for idleness)
        self.tls_task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's TCP transport is one, though not a subclass
        self.raw = transport
        if not self.guard.admit(self):
            self.closed = True
            transport.abort()
            return
        self.arm_header_deadline(first=True)
        if self.ssl_context is None:
            self._attach(transport)
        else:
            transport.pause_reading()  # start_tls takes the bytes from here
            self.tls_task = self.loop.create_task(self._start_tls(transport, self.ssl_context))

    async def _start_tls(self, transport: asyncio.Transport, ctx: ssl.SSLContext) -> None:
        self.tls_begun = True
        pre, self.pre_tls = b"".join(self.pre_tls), []
        if pre:
            # start_tls schedules the TLS protocol's connection_made and the resumed reading before it waits:
            # two hops from here land after both, where the bytes are handed to the TLS protocol first.
            self.loop.call_soon(self.loop.call_soon, _replay, transport, pre)
        try:
            app = await self.loop.start_tls(transport, self, ctx, server_side=True,
                                            ssl_handshake_timeout=self.guard.limits.header_timeout)
        except Exception as e:  # noqa: BLE001 - any handshake failure: drop the connection, log sparingly
            self.guard.ratelog("tls", f"{self.guard.name}: TLS handshake failed: {e or type(e).__name__}",
                               level=logging.INFO)
            self.abort()
            self.connection_lost(None)
            return
        if app is None or self.closed:
            if app is not None:
                app.abort()
            return
        self._attach(app)

    def _attach(self, transport: asyncio.Transport) -> None:
        self.app_transport = transport
        self.guard.by_transport[transport] = self
        self.inner = self.make_handler()
        self.inner.connection_made(transport)
        early, self.early = self.early, []
        for chunk in early:
            self.inner.data_received(chunk)

    def data_received(self, data: bytes) -> None:
        if self.ssl_context is not None and not self.tls_begun:
            assert self.raw is not None
            self.raw.pause_reading()
            self.pre_tls.append(data)
            return
        if self.busy == 0 and not self.awaiting_headers:  # the first bytes of the next request
            self.awaiting_headers = True
            self.arm_header_deadline(first=False)
        if self.inner is None:
            self.early.append(data)
        else:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self.inner is not None:
            self.inner.eof_received()
        return None  # close the transport, as aiohttp's handler asks

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        self.closed = True
        self.guard.forget(self)
        inner, self.inner = self.inner, None
        if inner is not None:
            inner.connection_lost(exc)

    def abort(self) -> None:
        self.closed = True
        self.guard.forget(self)  # now, not when the transport reports the loss: a burst must not reuse a victim
        for t in (self.app_transport, self.raw):
            if t is not None and not t.is_closing():
                t.abort()

    # -- requests -------------------------------------------------------------------------------------
    def request_started(self) -> None:
        self.busy += 1
        self.requests += 1
        self.awaiting_headers = False
        self.disarm()

    def request_done(self) -> None:
        self.busy -= 1
        if self.busy == 0 and not self.closed:
            self.awaiting_headers = False
            self.arm_idle_deadline()


def _replay(transport: asyncio.Transport, data: bytes) -> None:
    """Hand bytes read off `transport` to the protocol it has now (the TLS one), as if read just now."""
    if transport.is_closing():
        return
    proto: Any = transport.get_protocol()
    if not hasattr(proto, "get_buffer"):  # a plain Protocol (uvloop's TLS protocol is a buffered one)
        proto.data_received(data)
        return
    view = memoryview(data)
    while view:
        buf = memoryview(proto.get_buffer(len(view)))
        n = min(len(buf), len(view))
        buf[:n] = view[:n]
        proto.buffer_updated(n)
        view = view[n:]


Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class GuardedSite(web.BaseSite):
    """`web.TCPSite` with the limits above (see the module docstring)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, limits: Limits,
                 ssl_context: ssl.SSLContext | None = None, backlog: int = 64) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._guard = _Guard(limits, f"{'https' if ssl_context else 'http'}://{host}:{port}")

    @property
    def name(self) -> str:
        return self._guard.name

    @property
    def connections(self) -> int:
        return len(self._guard.conns)

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        guard = self._guard
        inner: Handler = server.request_handler

        async def tracked(request: web.BaseRequest) -> web.StreamResponse:
            conn = guard.by_transport.get(request.transport) if request.transport is not None else None
            if conn is None:
                return await inner(request)
            conn.request_started()
            try:
                return await inner(request)
            finally:
                conn.request_done()

        server.request_handler = tracked
        ctx = self._ssl_context
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Conn(guard, server, ctx), self._host, self._port,
                                                backlog=self._backlog, reuse_address=True)
