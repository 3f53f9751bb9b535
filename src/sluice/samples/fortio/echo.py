"""fortio `server`'s HTTP side: the echo handler with its query options, `/debug`, the redirector, and the
TCP/UDP echo servers.

Echo options (also `-echo-server-default-params` when the request has no query): `status=503` or
`status=503:20,404:10` (percentages; the rest 200), `delay=150ms` or `delay=10ms:20,1s:5` (capped at
`-max-echo-delay`, 1.5 s), `size=1024` or `size=512:10` (a payload instead of the echo), `header=K:V`
(repeatable), `close=true` or `close=5.3` (percent). Bad values get fortio's answers (`status` → 400).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import socket
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from aiohttp import web

from sluice.samples.fortio import VERSION
from sluice.samples.fortio.log import ERROR, VERBOSE, WARNING, Logger
from sluice.samples.gotime import format_duration, parse_duration

__all__ = ["create_app", "generate_status", "generate_delay", "generate_size", "probability", "EchoOptions",
           "tcp_echo", "MAX_PAYLOAD"]

MAX_PAYLOAD = 256 * 1024  # fortio's -maxpayloadsizekb default
_PAYLOAD = bytes(random.Random(0).randrange(32, 127) for _ in range(MAX_PAYLOAD))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # a valid header name


def _weighted(spec: str, parse: Callable[[str], float | int | None], log: Logger | None, what: str
              ) -> tuple[list[float], list[float | int]] | None:
    """fortio's `value:percent,…` lists: cumulative percentages (≤ 100) and values, None if malformed."""
    weights: list[float] = []
    values: list[float | int] = []
    total = 0.0
    for entry in spec.split(","):
        parts = entry.split(":")
        if len(parts) != 2:
            if log:
                log.log(WARNING, f"Should have exactly 1 : in {what} list {spec} -> {entry}")
            return None
        value = parse(parts[0])
        if value is None:
            if log:
                log.log(WARNING, f"Bad input {what} {spec} -> {parts[0]}, not a number before colon")
            return None
        try:
            p = float(parts[1].removesuffix("%"))
        except ValueError:
            p = -1.0
        if not 0 <= p <= 100:
            if log:
                log.log(WARNING, f"Percentage is not a [0. - 100.] number in {spec} -> {parts[1]}")
            return None
        total += p
        if round(total, 6) > 100:
            if log:
                log.log(WARNING, f"Sum of percentage is greater than 100 in {spec}")
            return None
        weights.append(round(total, 6))
        values.append(value)
    return weights, values


def _roll(weights: list[float], values: list[float | int], rng: random.Random) -> float | int | None:
    res = 100.0 * rng.random()
    for w, v in zip(weights, values, strict=True):
        if res <= w:
            return v
    return None


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def generate_status(spec: str, rng: random.Random | None = None, log: Logger | None = None) -> int:
    """`status=`: a code, or a draw from `code:percent,…` (the remainder is 200); malformed → 400."""
    rng = rng or random.Random()
    if "," not in spec and ":" not in spec:
        code = _int(spec)
        if code is None:
            if log:
                log.log(WARNING, f"Bad input status {spec}, not a number nor comma and colon separated % list")
            return 400
        return code
    table = _weighted(spec, _int, log, "status")
    if table is None:
        return 400
    picked = _roll(*table, rng)
    return int(picked) if picked is not None else 200


def generate_delay(spec: str, max_delay: float, rng: random.Random | None = None, log: Logger | None = None
                   ) -> float:
    """`delay=`: seconds to wait (≤ max_delay); 0 when absent or malformed."""
    if not spec:
        return 0.0
    rng = rng or random.Random()
    if "," not in spec and ":" not in spec:
        d = parse_duration(spec)
        if d is None:
            if log:
                log.log(WARNING, f"Bad input delay {spec}, not a duration nor comma and colon separated % list")
            return 0.0
        return max(0.0, min(d, max_delay))
    table = _weighted(spec, parse_duration, log, "delay")
    if table is None:
        return 0.0
    picked = _roll(*table, rng)
    return max(0.0, min(float(picked), max_delay)) if picked is not None else 0.0


def generate_size(spec: str, rng: random.Random | None = None, log: Logger | None = None) -> int:
    """`size=`: payload bytes to answer with instead of the echo (-1: echo), capped at MAX_PAYLOAD."""
    if not spec:
        return -1
    rng = rng or random.Random()
    if "," not in spec and ":" not in spec:
        n = _int(spec)
        return -1 if n is None else max(0, min(n, MAX_PAYLOAD))
    table = _weighted(spec, _int, log, "size")
    if table is None:
        return -1
    picked = _roll(*table, rng)
    return max(0, min(int(picked), MAX_PAYLOAD)) if picked is not None else -1


def probability(value: str, rng: random.Random | None = None) -> bool:
    """`close=`/`gzip=`: false when empty or "false", true for "true" or text, else a percent chance."""
    if value in ("", "false"):
        return False
    if value == "true":
        return True
    try:
        p = float(value)
    except ValueError:
        return True
    return 100.0 * (rng or random).random() <= p


class EchoOptions:
    def __init__(self, debug_path: str = "/debug", ui_path: str = "/fortio/", default_params: str = "",
                 max_delay: float = 1.5) -> None:
        self.debug_path = debug_path
        self.ui_path = ui_path
        self.default_params = default_params
        self.max_delay = max_delay


def create_app(opts: EchoOptions, log: Logger) -> web.Application:
    started = time.monotonic()

    def query_of(request: web.Request) -> dict[str, list[str]]:
        raw = request.query_string
        if "?" not in request.raw_path and opts.default_params:
            raw = opts.default_params
        return parse_qs(raw, keep_blank_values=True)

    async def common(request: web.Request, query: dict[str, list[str]], headers: dict[str, list[str]]) -> None:
        wait = generate_delay((query.get("delay") or [""])[0], opts.max_delay, log=log)
        if wait > 0:
            log.log(VERBOSE, f"Sleeping for {format_duration(wait)}")
            await asyncio.sleep(wait)
        if probability((query.get("close") or [""])[0]):
            headers.setdefault("Connection", []).append("close")
        for hdr in query.get("header", []):
            name, sep, value = hdr.partition(":")
            if not sep or not _TOKEN.match(name) or "\n" in value or "\r" in value:
                log.log(ERROR, f"invalid extra header '{hdr}', expecting Key: Value")
                continue
            headers.setdefault(name, []).append(value)

    def respond(status: int, body: bytes, headers: dict[str, list[str]]) -> web.Response:
        resp = web.Response(status=status, body=body)
        for k, vs in headers.items():
            for v in vs:
                resp.headers.add(k, v)
        if resp.headers.get("Connection", "").lower() == "close":
            resp.force_close()
        return resp

    async def echo(request: web.Request) -> web.StreamResponse:
        query = query_of(request)
        headers: dict[str, list[str]] = {}
        await common(request, query, headers)
        status_spec = (query.get("status") or [""])[0]
        status = generate_status(status_spec, log=log) if status_spec else 200
        if not 100 <= status <= 999:
            log.log(WARNING, f"Bad input status {status_spec}: {status} is not an HTTP status code")
            status = 400  # Go's server refuses to write such a code; answer as for a malformed status
        size = generate_size((query.get("size") or [""])[0], log=log)
        data = await request.read()
        if size >= 0:
            headers.setdefault("Content-Type", ["application/octet-stream"])
            return respond(status, _PAYLOAD[:size], headers)
        ctype = request.headers.get("Content-Type")
        if ctype:
            headers.setdefault("Content-Type", [ctype])
        return respond(status, data, headers)

    async def debug(request: web.Request) -> web.StreamResponse:
        query = query_of(request)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        remote = (f"[{peer[0]}]:{peer[1]}" if ":" in str(peer[0]) else f"{peer[0]}:{peer[1]}") if peer else ""
        uptime = format_duration(round(time.monotonic() - started, 1))
        lines = [f"Φορτίο version {VERSION} echo debug server up for {uptime} on {socket.gethostname()} - "
                 f"request from {remote}", "", f"{request.method} {request.raw_path} HTTP/{request.version.major}."
                 f"{request.version.minor}", "", "headers:", "", f"Host: {request.host}"]
        grouped: dict[str, list[str]] = {}
        for k, v in request.headers.items():
            if k.lower() != "host":
                grouped.setdefault("-".join(p.capitalize() for p in k.split("-")), []).append(v)
        body = (await request.read())[:512]
        text = "\n".join(lines) + "".join(f"\n{k}: {','.join(vs)}" for k, vs in sorted(grouped.items()))
        text += "\n\nbody:\n\n" + body.decode("utf-8", "replace") + "\n"
        if (query.get("env") or [""])[0] == "dump":
            text += "\nenvironment:\n\n" + "".join(f"{k}={v}\n" for k, v in os.environ.items())
        headers: dict[str, list[str]] = {"Content-Type": ["text/plain; charset=UTF-8"]}
        await common(request, query, headers)
        return respond(200, text.encode(), headers)

    async def ui(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, content_type="text/plain",
                            text=f"fortio's UI ({opts.ui_path}) is not served by sluice's built-in fortio: "
                                 "use the echo server, /debug, or `fortio load` from the command line\n")

    async def route(request: web.Request) -> web.StreamResponse:
        path = request.path
        if opts.ui_path and (path + "/" == opts.ui_path or path.startswith(opts.ui_path)):
            return await ui(request)
        if opts.debug_path:
            echo_debug = opts.debug_path.rstrip("/") + "/echo/"
            if path.startswith(echo_debug):
                return await echo(request)
            if path == opts.debug_path:
                return await debug(request)
        return await echo(request)

    app = web.Application(client_max_size=MAX_PAYLOAD * 4)
    app.router.add_route("*", "/{tail:.*}", route)
    return app


async def tcp_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """fortio's tcp-echo: everything received goes back."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


class UDPEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert isinstance(self.transport, asyncio.DatagramTransport)
        self.transport.sendto(data, addr)


async def redirect(request: web.Request) -> web.StreamResponse:
    """fortio's https redirector (port 8081): everything to the https:// form of the same URL."""
    raise web.HTTPMovedPermanently(f"https://{request.host}{request.raw_path}")
