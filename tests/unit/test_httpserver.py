"""The metrics port's HTTP server (`sluice.httpserver`), on the wire: keep-alive and pipelining, bodies (length,
chunked, `Expect: 100-continue`, URL-encoded and multipart forms), bounds answered with their status and the
connection closed, routing errors, a failing handler, a handler cancelled with its client, and the connection
hygiene (header and idle deadlines, the connection cap)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sluice import httpserver
from sluice.connguard import Limits
from sluice.httpserver import App, Request, Response

WAIT = 10.0  # seconds any answer may take before the test fails (a real wait ends as soon as it comes)


def _app(events: list[str] | None = None) -> App:
    app = App()

    async def echo(request: Request) -> Response:
        doc = {"method": request.method, "path": request.path, "query": list(request.query.items()),
               "form": list(request.form().items()) if request.method == "POST" else [],
               "too_large": request.body_too_large, "match": request.match_info}
        return Response(200, json.dumps(doc).encode(), "application/json")

    async def fail(request: Request) -> Response:
        raise RuntimeError("boom")

    async def hang(request: Request) -> Response:
        assert events is not None
        events.append("started")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        return Response()

    for method in ("GET", "POST"):
        app.add(method, "/echo", echo)
    app.add("GET", "/item/{name}/x", echo)
    app.add("GET", "/fail", fail)
    app.add("GET", "/hang", hang)
    return app


@asynccontextmanager
async def _served(app: App, limits: Limits | None = None) -> AsyncIterator[httpserver.Server]:
    server = await httpserver.serve(app, "127.0.0.1", 0, limits=limits)
    try:
        yield server
    finally:
        await server.close()


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response off the wire: status, headers (lower-cased names), body (by Content-Length)."""
    line = await asyncio.wait_for(reader.readline(), WAIT)
    status = int(line.split()[1])
    headers: dict[str, str] = {}
    while True:
        h = await asyncio.wait_for(reader.readline(), WAIT)
        if h in (b"\r\n", b""):
            break
        k, _, v = h.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), WAIT)
    return status, headers, body


async def _closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection (EOF or a reset) within WAIT."""
    try:
        return await asyncio.wait_for(reader.read(), WAIT) == b""
    except ConnectionResetError:
        return True


async def test_keep_alive_pipelining_and_http10() -> None:
    async with _served(_app()) as server:
        r, w = await asyncio.open_connection("127.0.0.1", server.port)
        host = f"Host: 127.0.0.1:{server.port}\r\n"
        w.write(f"GET /echo?a=1&b=x+y HTTP/1.1\r\n{host}\r\n".encode())
        status, headers, body = await _response(r)
        assert status == 200 and headers["content-type"] == "application/json" and "date" in headers
        assert json.loads(body)["query"] == [["a", "1"], ["b", "x y"]]
        # two requests in one write: answered in order on the same connection
        w.write(f"GET /echo?n=2 HTTP/1.1\r\n{host}\r\nGET /item/a%2Fb/x?n=3 HTTP/1.1\r\n{host}\r\n".encode())
        first, second = await _response(r), await _response(r)
        assert json.loads(first[2])["query"] == [["n", "2"]]
        # routed by segment, then decoded: an encoded "/" stays in its segment
        assert json.loads(second[2])["path"] == "/item/a/b/x" and json.loads(second[2])["match"] == {"name": "a/b"}
        w.write(f"GET /echo HTTP/1.1\r\n{host}Connection: close\r\n\r\n".encode())
        status, headers, _ = await _response(r)
        assert status == 200 and headers["connection"] == "close"
        assert await _closed(r)
        w.close()

        r, w = await asyncio.open_connection("127.0.0.1", server.port)
        w.write(b"GET /echo HTTP/1.0\r\n\r\n")  # HTTP/1.0 without keep-alive: one answer, then closed
        assert (await _response(r))[0] == 200
        assert await _closed(r)
        w.close()


async def test_bodies_chunked_expect_continue_and_multipart() -> None:
    async with _served(_app()) as server:
        r, w = await asyncio.open_connection("127.0.0.1", server.port)
        w.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n6\r\nquery=\r\n5\r\nup%7B\r\n3\r\n%7D\r\n0\r\n\r\n")
        status, _, body = await _response(r)
        assert status == 200 and json.loads(body)["form"] == [["query", "up{}"]]

        form = b"q=1&q=2"
        w.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(form))
        assert await asyncio.wait_for(r.readline(), WAIT) == b"HTTP/1.1 100 Continue\r\n"
        assert await asyncio.wait_for(r.readline(), WAIT) == b"\r\n"
        w.write(form)
        status, _, body = await _response(r)
        assert status == 200 and json.loads(body)["form"] == [["q", "1"], ["q", "2"]]

        multipart = (b"--XX\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\nsum(up)\r\n"
                     b"--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nfile\r\n"
                     b"--XX--\r\n")
        w.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX\r\n"
                b"Content-Length: %d\r\n\r\n" % len(multipart) + multipart)
        status, _, body = await _response(r)
        assert status == 200 and json.loads(body)["form"] == [["query", "sum(up)"]]  # the file is left out

        big = b"a=" + b"x" * httpserver.MAX_BODY
        w.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: %d\r\n\r\n" % len(big) + big)
        status, _, body = await _response(r)  # read and dropped; the handler is told
        assert status == 200 and json.loads(body)["too_large"] is True and json.loads(body)["form"] == []
        w.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")  # and the connection still serves
        assert (await _response(r))[0] == 200
        w.close()


async def test_bounds_bad_requests_and_routing_errors() -> None:
    async with _served(_app()) as server:
        for request, status in [
            (b"GET /echo?" + b"a" * (httpserver.MAX_FIELD + 1) + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
            (b"GET /echo HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(httpserver.MAX_HEADERS + 1))
             + b"\r\n", 431),
            (b"GET /echo HTTP/1.1\r\nX-Long: " + b"v" * (httpserver.MAX_FIELD + 1) + b"\r\n\r\n", 431),
            (b"NOT A REQUEST\r\n\r\n", 400),
        ]:
            r, w = await asyncio.open_connection("127.0.0.1", server.port)
            w.write(request)
            got, headers, _ = await _response(r)
            assert (got, headers["connection"]) == (status, "close")
            assert await _closed(r)
            w.close()

        r, w = await asyncio.open_connection("127.0.0.1", server.port)
        w.write(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\nDELETE /echo HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\nHEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await _response(r))[::2] == (404, b"404 page not found\n")
        status, headers, _ = await _response(r)
        assert status == 405 and headers["allow"] == "GET, HEAD, POST"
        status, _, body = await _response(r)
        assert status == 500 and b"boom" not in body  # no traceback or exception text to the client
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: " in head and b"Content-Length: 0" not in head
        w.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")  # a HEAD answer has no body: the next answer follows
        assert (await _response(r))[0] == 200
        w.close()


async def test_a_handler_ends_with_its_client() -> None:
    events: list[str] = []
    async with _served(_app(events)) as server:
        r, w = await asyncio.open_connection("127.0.0.1", server.port)
        w.write(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        while "started" not in events:
            await asyncio.sleep(0.01)
        w.close()
        for _ in range(int(WAIT / 0.01)):
            if "cancelled" in events:
                break
            await asyncio.sleep(0.01)
        assert events == ["started", "cancelled"]


async def test_header_and_idle_deadlines_and_the_connection_cap() -> None:
    limits = Limits(header_timeout=0.3, idle_timeout=0.6, max_connections=2)
    async with _served(_app(), limits) as server:
        slow_r, slow_w = await asyncio.open_connection("127.0.0.1", server.port)
        slow_w.write(b"GET /echo HTTP/1.1\r\nHost:")  # never finished: closed at the header deadline
        assert await _closed(slow_r)
        slow_w.close()

        idle_r, idle_w = await asyncio.open_connection("127.0.0.1", server.port)
        idle_w.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await _response(idle_r))[0] == 200
        assert await _closed(idle_r)  # kept alive, then idle past the idle deadline
        idle_w.close()
        while server.connections:
            await asyncio.sleep(0.01)

        # At the cap, a new connection closes the oldest one that is not serving a request.
        old_r, old_w = await asyncio.open_connection("127.0.0.1", server.port)
        old_w.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await _response(old_r))[0] == 200
        busy_r, busy_w = await asyncio.open_connection("127.0.0.1", server.port)
        busy_w.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await _response(busy_r))[0] == 200
        new_r, new_w = await asyncio.open_connection("127.0.0.1", server.port)
        assert await _closed(old_r)
        new_w.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await _response(new_r))[0] == 200
        for w in (old_w, busy_w, new_w):
            w.close()
