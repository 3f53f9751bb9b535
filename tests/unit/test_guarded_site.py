"""GuardedSite in-process: header and idle deadlines, the per-port cap that displaces idle connections before
refusing, and requests in progress (a watch) untouched by any deadline."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from aiohttp import web
from tests.conftest import free_port

from sluice.aio import run_server
from sluice.daemon.guarded_site import RUNNER_OPTIONS, GuardedSite, Limits
from sluice.daemon.pki import ensure_pki

LIMITS = Limits(header_timeout=0.5, idle_timeout=1.0, max_connections=3)


@pytest.fixture
async def site() -> AsyncIterator[tuple[int, asyncio.Event]]:
    release = asyncio.Event()

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def hold(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await release.wait()  # a long-lived stream, like a watch
        await resp.write(b"done")
        return resp

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/hold", hold)
    runner = web.AppRunner(app, access_log=None, **RUNNER_OPTIONS)
    await runner.setup()
    port = free_port()
    await GuardedSite(runner, "127.0.0.1", port, limits=LIMITS).start()
    try:
        yield port, release
    finally:
        release.set()
        await runner.cleanup()


async def _closed(reader: asyncio.StreamReader, timeout: float = 5.0) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), timeout) is not None
    except (ConnectionError, OSError):
        return True


async def _get(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    return reader, writer, await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)


async def test_partial_headers_are_cut_at_the_deadline(site: tuple[int, asyncio.Event]) -> None:
    port, _ = site
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await _closed(reader) and loop.time() - started >= LIMITS.header_timeout * 0.9
    writer.close()


async def test_idle_keepalive_is_closed_and_a_next_request_must_finish_its_headers(
        site: tuple[int, asyncio.Event]) -> None:
    port, _ = site
    reader, writer, head = await _get(port, "/ok")
    assert head.startswith(b"HTTP/1.1 200")
    await reader.readexactly(2)
    writer.write(b"GET /ok HTTP/1.1\r\n")  # the next request starts, then stalls
    assert await _closed(reader, LIMITS.idle_timeout * 5)
    writer.close()
    reader, writer, _ = await _get(port, "/ok")
    await reader.readexactly(2)
    assert await _closed(reader, LIMITS.idle_timeout * 5)  # idle after its request
    writer.close()


async def test_cap_displaces_idle_connections_then_refuses_when_all_are_busy(
        site: tuple[int, asyncio.Event]) -> None:
    port, release = site
    silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(LIMITS.max_connections)]
    _, writer, head = await _get(port, "/ok")  # the oldest silent connection makes room
    assert head.startswith(b"HTTP/1.1 200")
    writer.close()
    for _r, w in silent:
        w.close()
    holds = [await _get(port, "/hold") for _ in range(LIMITS.max_connections)]
    # every connection serves a stream: a new one is refused
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _closed(reader)
    writer.close()
    release.set()
    for r, w, head in holds:
        assert head.startswith(b"HTTP/1.1 200")
        assert b"done" in await asyncio.wait_for(r.readuntil(b"done"), 5)
        w.close()


async def test_a_stream_outlives_both_deadlines(site: tuple[int, asyncio.Event]) -> None:
    port, release = site
    hold_reader, hold_writer, head = await _get(port, "/hold")
    assert head.startswith(b"HTTP/1.1 200")
    # a connection opened after the stream started is closed for idleness: both deadlines have passed since
    reader, writer, _ = await _get(port, "/ok")
    await reader.readexactly(2)
    assert await _closed(reader, LIMITS.idle_timeout * 5)
    writer.close()
    release.set()
    assert b"done" in await asyncio.wait_for(hold_reader.readuntil(b"done"), 5)
    hold_writer.close()


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_every_tls_handshake_completes_on_either_loop(loop_kind: str, tmp_path: Path) -> None:
    """The daemon serves TLS through this site on uvloop (`sluice.aio.run_server`), which starts reading a
    connection as soon as it is made, so the ClientHello can reach the site before its handshake begins: every
    one of many back-to-back connections must still be answered (half stalled until the deadline before)."""
    pki = ensure_pki(tmp_path / "pki")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pki.server_cert, pki.server_key)
    client_ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    port = free_port()

    def fetch(_: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(12)

    async def main() -> list[bytes]:
        app = web.Application()
        app.router.add_get("/ok", _ok)
        runner = web.AppRunner(app, access_log=None, **RUNNER_OPTIONS)
        await runner.setup()
        await GuardedSite(runner, "127.0.0.1", port, limits=Limits(header_timeout=10, idle_timeout=10,
                                                                     max_connections=64),
                          ssl_context=server_ctx).start()
        try:
            with ThreadPoolExecutor(4) as pool:
                loop = asyncio.get_running_loop()
                return list(await asyncio.gather(*(loop.run_in_executor(pool, fetch, i) for i in range(120))))
        finally:
            await runner.cleanup()

    answers = run_server(main()) if loop_kind == "uvloop" else asyncio.run(main())
    assert answers == [b"HTTP/1.1 200"] * 120


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")
