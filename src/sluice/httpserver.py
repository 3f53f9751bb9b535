"""A lean HTTP/1.1 server for the metrics port: httptools' parser (llhttp, Node's) under an asyncio protocol.

The Prometheus API answers most queries in microseconds, so what a client waits for is mostly the HTTP
stack; aiohttp costs about 0.1 ms per request more than a bare protocol (docs/benchmarks.md, "what an HTTP
stack costs per request"), more than the query. This server does what the metrics port needs and no more:
GET, HEAD and POST with bodies of known length or chunked (decoded by the parser), keep-alive and pipelining
(answered in order), `Expect: 100-continue`, URL-encoded and multipart forms, and the daemon's connection
hygiene (`sluice.connguard`: header and idle deadlines, the per-port cap). Bounds: request line and each
header at most `MAX_FIELD` bytes, at most `MAX_HEADERS` headers (431 or 414 past them, as Go's server), a
body past `MAX_BODY` is read and dropped and the request marked `body_too_large` for the handler to refuse
in its own words. A request must arrive whole (body included) within the header deadline. A handler still
running when its client goes away is cancelled. Responses are built whole (`Response`) and written at once.
"""

from __future__ import annotations

import asyncio
import email.message
import email.parser
import email.policy
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import cast
from urllib.parse import unquote, unquote_plus

import httptools
from multidict import CIMultiDict, MultiDict

from sluice.connguard import ConnectionGuard, GuardedProtocol, Limits
from sluice.hostguard import sockname_port

__all__ = ["Request", "Response", "Handler", "App", "Server", "serve", "MAX_BODY", "MAX_FIELD", "MAX_HEADERS"]

log = logging.getLogger("sluice.http")

MAX_FIELD = 8190  # request line, header name or value (aiohttp's and most servers' limit)
MAX_HEADERS = 128
MAX_BODY = 1 << 20  # aiohttp's default client_max_size, which the metrics port had before
_MAX_QUEUED = 16  # pipelined requests waiting for their turn before reading pauses
_TEXT = "text/plain; charset=utf-8"


class Request:
    """One parsed request. `query` and `form()` are parsed on first use."""

    __slots__ = ("method", "path", "raw_path", "query_string", "headers", "body", "body_too_large", "version", "local_port",
                 "match_info", "keep_alive", "_query")

    def __init__(self, method: str, raw_path: str, query_string: str, headers: CIMultiDict[str], *,
                 version: str = "1.1", local_port: int | None = None) -> None:
        self.method = method
        self.raw_path = raw_path
        self.path = unquote(raw_path, errors="replace")  # percent-decoded
        self.query_string = query_string
        self.headers = headers
        self.body = b""
        self.body_too_large = False
        self.version = version
        self.local_port = local_port  # the port the connection was accepted on
        self.match_info: dict[str, str] = {}
        self.keep_alive = True
        self._query: MultiDict[str] | None = None

    @property
    def query(self) -> MultiDict[str]:
        if self._query is None:
            self._query = _parse_query(self.query_string)
        return self._query

    def form(self) -> MultiDict[str]:
        """The body's form values (`application/x-www-form-urlencoded` or `multipart/form-data`, files left
        out); empty for any other content type, as Go's `ParseForm`. Raises ValueError on a malformed body."""
        ctype = self.headers.get("Content-Type", "")
        kind = ctype.split(";", 1)[0].strip().lower()
        if kind == "application/x-www-form-urlencoded":
            return _parse_query(self.body.decode("utf-8"))
        if kind == "multipart/form-data":
            return _multipart(ctype, self.body)
        return MultiDict()


def _parse_query(qs: str) -> MultiDict[str]:
    """`parse_qsl(qs, keep_blank_values=True)` (Go's `ParseQuery` but for its refusal of `;`), with the
    decoding skipped for the parts that need none: a query's parameters are parsed on every request."""
    out: MultiDict[str] = MultiDict()
    for part in qs.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in part or "+" in part:
            name, value = unquote_plus(name), unquote_plus(value)
        out.add(name, value)
    return out


MAX_PARTS = 1000  # Go's mime/multipart default (GODEBUG multipartmaxparts)


def _multipart(ctype: str, body: bytes) -> MultiDict[str]:
    boundary = email.message.Message()
    boundary["Content-Type"] = ctype
    marker = boundary.get_param("boundary")
    if not isinstance(marker, str) or not marker:
        raise ValueError("no multipart boundary param in Content-Type")
    if body.count(b"--" + marker.encode("latin-1")) > MAX_PARTS + 1:
        raise ValueError("multipart: message too large")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + body)
    if not msg.is_multipart():
        raise ValueError("multipart: NextPart: EOF")
    out: MultiDict[str] = MultiDict()
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename() is not None:
            continue
        payload = part.get_payload(decode=True)
        out.add(name, payload.decode("utf-8") if isinstance(payload, bytes) else "")
    return out


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = _TEXT
    headers: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def text(text: str, status: int = 200, content_type: str = _TEXT) -> Response:
        return Response(status, text.encode(), content_type)


Handler = Callable[[Request], Awaitable[Response]]
# Runs before routing; a response refuses the request (the host check).
Check = Callable[[Request], "Response | None"]


class App:
    """Routes by method and path; a path may hold `{name}` segments, given to the handler in `match_info`.
    GET routes answer HEAD too. Unknown paths get Go's `404 page not found`, a known path with another method
    405 with `Allow`."""

    def __init__(self, check: Check | None = None) -> None:
        self.check = check
        self._exact: dict[str, dict[str, Handler]] = {}
        self._patterns: list[tuple[tuple[str, ...], dict[str, Handler]]] = []
        self.on_cleanup: list[Callable[[], None]] = []

    def add(self, method: str, path: str, handler: Handler) -> None:
        methods = [method, "HEAD"] if method == "GET" else [method]
        if "{" in path:
            parts = tuple(path.split("/"))
            table = next((t for p, t in self._patterns if p == parts), None)
            if table is None:
                table = {}
                self._patterns.append((parts, table))
        else:
            table = self._exact.setdefault(path, {})
        for m in methods:
            table[m] = handler

    def _resolve(self, path: str, raw_path: str) -> tuple[dict[str, Handler], dict[str, str]] | None:
        table = self._exact.get(path)
        if table is not None:
            return table, {}
        segments = raw_path.split("/")  # split before decoding: an encoded "/" stays inside its segment
        for parts, table in self._patterns:
            if len(parts) != len(segments):
                continue
            info: dict[str, str] = {}
            for want, got in zip(parts, segments, strict=True):
                if want.startswith("{") and want.endswith("}"):
                    if not got:
                        break
                    info[want[1:-1]] = unquote(got, errors="replace")
                elif want != unquote(got, errors="replace"):
                    break
            else:
                return table, info
        return None

    async def handle(self, request: Request) -> Response:
        if self.check is not None:
            refused = self.check(request)
            if refused is not None:
                return refused
        found = self._resolve(request.path, request.raw_path)
        if found is None:
            return Response.text("404 page not found\n", 404)
        table, request.match_info = found
        handler = table.get(request.method)
        if handler is None:
            allow = ", ".join(sorted(table))
            return Response(405, b"Method Not Allowed\n", _TEXT, (("Allow", allow),))
        return await handler(request)

    def cleanup(self) -> None:
        for fn in self.on_cleanup:
            fn()


class _Refuse(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


_date_cache: tuple[int, bytes] = (0, b"")


def _date() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]


_REASONS = {s.value: s.phrase for s in HTTPStatus}


def _head(status: int, content_type: str, length: int, extra: Iterable[tuple[str, str]], close: bool,
          keep_alive_10: bool) -> bytes:
    reason = _REASONS.get(status, "Unknown")
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in extra]
    if close:
        lines.append("Connection: close")
    elif keep_alive_10:
        lines.append("Connection: keep-alive")
    return ("\r\n".join(lines) + "\r\nDate: ").encode("latin-1") + _date() + b"\r\n\r\n"


class _Conn(GuardedProtocol):
    """One connection: parses requests as they arrive, serves them one at a time in order."""

    def __init__(self, app: App, guard: ConnectionGuard, local_port: int | None = None) -> None:
        super().__init__(guard)
        self.app = app
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.local_port = local_port  # known from the listening socket, else read from the connection's
        self.close_after = False  # no request after the ones queued (EOF, an upgrade, a parse error)
        # requests parsed and waiting their turn, each with its answer when it is refused without a handler
        self.queue: deque[tuple[Request, Response | None]] = deque()
        self.task: asyncio.Task[None] | None = None
        self.awaiting = True  # the running deadline is for a request (not for idleness)
        # the request being parsed
        self._url: list[bytes] = []
        self._url_len = 0
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._body_len = 0
        self._req: Request | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if not self.guard.admit(self):
            self.closed = True
            self.transport.abort()
            return
        if self.local_port is None:
            self.local_port = sockname_port(transport.get_extra_info("sockname"))
        self.arm_header_deadline(first=True)

    def data_received(self, data: bytes) -> None:
        if self.closed or self.close_after:
            return
        if self.busy == 0 and not self.queue and not self.awaiting:  # the first bytes of the next request
            self.awaiting = True
            self.arm_header_deadline(first=False)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.close_after = True  # the request before the upgrade is served; nothing after it
        except httptools.HttpParserError as e:
            # a bound a callback enforced arrives as the parser's callback error, with it as the context
            ctx = e.__context__
            if isinstance(ctx, _Refuse):
                self._refuse(ctx.status, ctx.text)
            else:
                self._refuse(400, f"400 Bad Request: {e}\n")
            return
        self._pump()

    def eof_received(self) -> bool | None:
        return None  # the client is gone (as aiohttp has it): close, which also cancels a running handler

    def pause_writing(self) -> None:  # a client not reading its answers sends no more requests for now
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closed and len(self.queue) < _MAX_QUEUED:
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.disarm()
        self.guard.forget(self)
        self.queue.clear()
        if self.task is not None:
            self.task.cancel()  # the handler ends with its client

    def abort(self) -> None:
        self.closed = True
        self.guard.forget(self)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def _refuse(self, status: int, text: str) -> None:
        """A request that cannot be parsed or is over a bound: answered after those before it, then closed."""
        self.close_after = True
        req = Request("GET", "", "", CIMultiDict(), local_port=self.local_port)
        req.keep_alive = False
        self.queue.append((req, Response.text(text, status)))
        self._pump()

    def quiet(self) -> bool:
        return self.busy == 0 and not self.queue

    # -- parser callbacks -----------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url, self._url_len, self._headers, self._body, self._body_len = [], 0, [], [], 0
        self._req = None

    def on_url(self, url: bytes) -> None:
        self._url_len += len(url)
        if self._url_len > MAX_FIELD:
            raise _Refuse(414, "414 URI Too Long\n")
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) > MAX_FIELD or len(value) > MAX_FIELD or len(self._headers) >= MAX_HEADERS:
            raise _Refuse(431, "431 Request Header Fields Too Large\n")
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        try:
            url = httptools.parse_url(b"".join(self._url))
        except httptools.HttpParserInvalidURLError:
            raise _Refuse(400, "400 Bad Request: malformed request target\n") from None
        headers: CIMultiDict[str] = CIMultiDict(self._headers)
        path = (url.path or b"/").decode("latin-1")
        query = (url.query or b"").decode("latin-1")
        self._req = Request(self.parser.get_method().decode("latin-1"), path, query, headers,
                            version=self.parser.get_http_version(), local_port=self.local_port)
        if headers.get("Expect", "").lower() == "100-continue" and self.transport is not None:
            length = headers.get("Content-Length", "")
            if not (length.isdigit() and int(length) > MAX_BODY):
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_len += len(body)
        if self._body_len <= MAX_BODY:
            self._body.append(body)
        elif self._body:
            self._body = []  # over the bound: the rest is read and dropped, the handler refuses

    def on_message_complete(self) -> None:
        req = self._req
        if req is None:
            return
        req.body = b"".join(self._body)
        req.body_too_large = self._body_len > MAX_BODY
        req.keep_alive = self.parser.should_keep_alive()
        self._body = []
        self._req = None
        self.queue.append((req, None))  # `_pump` takes it and ends the header deadline
        if len(self.queue) >= _MAX_QUEUED and self.transport is not None:
            self.transport.pause_reading()

    # -- serving --------------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Serve the queued requests in order. Each handler's first step runs here, at once: most answers
        (a small query evaluated on the loop) need no wait, so they are written without a task and without
        another turn of the loop; a handler that does wait goes on in a task from where it stopped."""
        while self.task is None and self.queue and not self.closed:
            req, answer = self.queue.popleft()
            self.busy += 1
            self.requests += 1
            self.awaiting = False
            self.disarm()
            coro = self._serve(req, answer)
            try:
                waiting_on = coro.send(None)
            except StopIteration:
                if not self._served(req):
                    return
                continue
            task = self.loop.create_task(_rest(coro, waiting_on))
            self.task = task
            task.add_done_callback(functools.partial(self._task_done, req))
            return

    def _task_done(self, req: Request, _task: asyncio.Task[None]) -> None:
        self.task = None
        if self._served(req):
            self._pump()

    def _served(self, req: Request) -> bool:
        """After an answer: whether requests are waiting to be served next."""
        if self.closed:
            return False
        if self.queue:
            if self.transport is not None and len(self.queue) < _MAX_QUEUED:
                self.transport.resume_reading()
            return True
        if self.close_after or not req.keep_alive:
            if self.transport is not None:
                self.transport.close()
        else:
            self.awaiting = False
            self.arm_idle_deadline()
        return False

    async def _serve(self, req: Request, answer: Response | None) -> None:
        try:
            if answer is not None:
                resp = answer
            else:
                try:
                    resp = await self.app.handle(req)
                except asyncio.CancelledError:
                    raise
                except Exception:  # never a traceback to the client; the log keeps it
                    log.exception("%s %s failed", req.method, req.path)
                    resp = Response.text("500 Internal Server Error\n", 500)
            self._write(req, resp)
        finally:
            self.busy -= 1

    def _write(self, req: Request, resp: Response) -> None:
        if self.transport is None or self.closed:
            return
        close = not req.keep_alive or (self.close_after and not self.queue)
        head = _head(resp.status, resp.content_type, len(resp.body), resp.headers, close,
                     req.version == "1.0" and req.keep_alive)
        self.transport.write(head if req.method == "HEAD" else head + resp.body)


async def _rest(coro: Coroutine[object, None, None], waiting_on: object) -> None:
    """The rest of a coroutine whose first step already ran and stopped at `waiting_on` (what it handed the
    loop: the future it waits for, or None to yield a turn), run in the task that awaits this."""
    await _Resume(coro, waiting_on)


class _Resume:
    """Hands the task the stopped coroutine's `waiting_on`, then relays the task's sends and throws (a
    result ready, a cancellation) into the coroutine, as if the task had run it from its start."""

    def __init__(self, coro: Coroutine[object, None, None], waiting_on: object) -> None:
        self.coro = coro
        self.waiting_on = waiting_on

    def __await__(self) -> Generator[object, None, None]:
        coro, out = self.coro, self.waiting_on
        while True:
            try:
                sent = yield out
            except BaseException as exc:  # noqa: BLE001 - relayed as is (a cancellation, mostly)
                try:
                    out = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    out = coro.send(sent)
                except StopIteration:
                    return


class Server:
    """A listening metrics port; `close()` stops it, ends its connections and runs the app's cleanups."""

    def __init__(self, server: asyncio.Server, guard: ConnectionGuard, app: App) -> None:
        self._server = server
        self.guard = guard
        self.app = app

    @property
    def port(self) -> int:
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    @property
    def connections(self) -> int:
        return len(self.guard.conns)

    async def close(self) -> None:
        self._server.close()
        for conn in list(self.guard.conns):
            conn.abort()
        await self._server.wait_closed()
        self.app.cleanup()


async def serve(app: App, host: str, port: int, *, limits: Limits | None = None, backlog: int = 64) -> Server:
    """Listen on `host`:`port` (0: any free port). Raises OSError when the port cannot be bound."""
    limits = limits or Limits()
    guard = ConnectionGuard(limits, f"http://{host}:{port}")
    loop = asyncio.get_running_loop()
    listening: int | None = None  # the one port every socket listens on; read when a connection comes
    server = await loop.create_server(lambda: _Conn(app, guard, listening), host, port, backlog=backlog,
                                      reuse_address=True, start_serving=False)
    ports = [int(sock.getsockname()[1]) for sock in server.sockets]
    if len(set(ports)) == 1:  # (port 0 on a name with two addresses gets a port per socket: read per connection)
        listening = ports[0]
    if port == 0:
        guard.name = f"http://{host}:{ports[0]}"
    await server.start_serving()
    return Server(server, guard, app)
