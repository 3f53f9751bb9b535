"""fortio's pieces: Go number/duration formatting, its histogram text, the echo server's options, the gRPC
ping/health services, the command line, and `load`/`curl` against a real echo server."""

from __future__ import annotations

import io
import random
import re
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestServer
from tests.conftest import free_port

from sluice.samples.fortio import cli, grpcping
from sluice.samples.fortio.client import parse_target
from sluice.samples.fortio.echo import EchoOptions, create_app, generate_delay, generate_size, generate_status
from sluice.samples.fortio.gofmt import g, gp
from sluice.samples.fortio.load import LoadOptions, plan, run_load
from sluice.samples.fortio.log import WARNING, Logger
from sluice.samples.fortio.stats import Histogram
from sluice.samples.gotime import format_duration, parse_duration


def test_go_number_formatting() -> None:
    assert [g(v) for v in (0.000499, 0.0144329, 1e6, 123456.0, 1e-05, 0.0, 2.5, 100.0)] == [
        "0.000499", "0.0144329", "1e+06", "123456", "1e-05", "0", "2.5", "100"]
    assert gp(0.113738, 9) == "0.113738" and gp(0.0056869, 8) == "0.0056869" and gp(1234567, 6) == "1.23457e+06"


def test_go_durations() -> None:
    assert [format_duration(s) for s in (0.0598524, 1.5, 123.004, 3600, 5e-7, 0, 0.00125)] == [
        "59.8524ms", "1.5s", "2m3.004s", "1h0m0s", "500ns", "0s", "1.25ms"]
    assert parse_duration("1m30s") == 90 and parse_duration("150us") == pytest.approx(150e-6)
    assert parse_duration("0") == 0 and parse_duration("3") is None and parse_duration("s") is None


def test_histogram_text_matches_fortio() -> None:
    h = Histogram(0, 0.001)
    for v in (0.000499, 0.001, 0.0144329):
        h.record(v)
    text = h.export().with_percentiles([50, 99.9]).text("Aggregated Function Time")
    assert text.splitlines() == [
        "Aggregated Function Time : count 3 avg 0.0053106333 +/- 0.006454 min 0.000499 max 0.0144329 sum 0.0159319",
        "# range, mid point, percentile, count",
        ">= 0.000499 <= 0.001 , 0.0007495 , 66.67, 2",
        "> 0.014 <= 0.0144329 , 0.0142165 , 100.00, 1",
        "# target 50% 0.0007495",  # start + (50 - 33.33) / (66.67 - 33.33) * width
        "# target 99.9% 0.0144316",
    ]
    assert Histogram().export().text("Error cases") == "Error cases : no data\n"


def test_echo_option_parsing() -> None:
    rng = random.Random(1)
    assert generate_status("503") == 503
    assert generate_status("abc") == 400 and generate_status("503:200") == 400 and generate_status("503:60,404:50") == 400
    draws = [generate_status("503:50", rng) for _ in range(400)]
    assert 150 < draws.count(503) < 250 and set(draws) == {200, 503}
    assert generate_delay("10s", 1.5) == 1.5 and generate_delay("20ms", 1.5) == pytest.approx(0.02)
    assert generate_delay("bogus", 1.5) == 0
    assert generate_size("100") == 100 and generate_size("") == -1 and generate_size("9999999") == 256 * 1024


async def test_echo_server(make_client: Any) -> None:
    client = await make_client(create_app(EchoOptions(max_delay=0.05), Logger(io.StringIO(), json_mode=True)))
    resp = await client.post("/anything?header=X-Foo:bar", data=b"abcdef", headers={"Content-Type": "text/x"})
    assert resp.status == 200 and await resp.read() == b"abcdef"
    assert resp.headers["X-Foo"] == "bar" and resp.headers["Content-Type"] == "text/x"
    assert (await client.get("/?status=418")).status == 418
    assert (await client.get("/echo?status=503&delay=10s")).status == 503
    resp = await client.get("/?size=10")
    assert len(await resp.read()) == 10 and resp.headers["Content-Type"] == "application/octet-stream"
    debug = await (await client.get("/debug", headers={"X-Test": "1"})).text()
    assert debug.startswith("Φορτίο version 1.75.2 echo debug server up for ") and "\nX-Test: 1" in debug
    ui = await client.get("/fortio/")
    assert ui.status == 404 and "not served" in await ui.text()


async def test_grpc_ping_and_health() -> None:
    port = free_port()
    server = await grpcping.start_server("127.0.0.1", port)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            ping = channel.unary_unary("/fgrpc.PingServer/Ping")
            reply = grpcping.decode_fields(await ping(b"\x08\x07\x1a\x02hi", timeout=5))
            assert reply[1] == 7 and reply[3] == b"hi" and isinstance(reply[2], int) and reply[2] > 0
            check = channel.unary_unary("/grpc.health.v1.Health/Check")
            assert await check(b"", timeout=5) == b"\x08\x01"
            assert await check(b"\x0a\x09ping_down", timeout=5) == b"\x08\x02"
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await check(b"\x0a\x03foo", timeout=5)
            assert e.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await server.stop(0)


def test_command_line() -> None:
    flags = cli.parse(["load", "-c", "2", "-qps", "0", "-n=20", "-loglevel", "Warning", "-keepalive=false",
                       "-H", "a: b", "http://httpbin:8000/get"])
    assert flags.command == "load" and flags.args == ["http://httpbin:8000/get"]
    assert flags.integer("c", 4) == 2 and flags.number("qps", 8) == 0 and flags.integer("n", 0) == 20
    assert not flags.boolean("keepalive", True) and flags.multi["H"] == ["a: b"]
    assert cli.parse(["curl", "-quiet", "http://x/"]).boolean("quiet")
    err = io.StringIO()
    assert cli.main(["load", "-bogus", "http://x"], io.StringIO(), err) == 1
    assert "flag provided but not defined: -bogus" in err.getvalue()
    err = io.StringIO()
    assert cli.main(["load"], io.StringIO(), err) == 1 and "needs a URL" in err.getvalue()
    assert cli.main(["grpcping", "x"], io.StringIO(), io.StringIO()) == 1
    out = io.StringIO()
    assert cli.main(["version"], out, io.StringIO()) == 0 and out.getvalue() == "1.75.2\n"


def test_plan_splits_calls() -> None:
    target = parse_target("http://httpbin:8000/get")
    p = plan(LoadOptions(target, qps=0, threads=3, exactly=30), 2)
    assert p.calls == [10, 10, 10]
    assert p.header == "Starting at max qps with 3 thread(s) [gomax 2] for exactly 30 calls (10 per thread + 0)\n"
    p = plan(LoadOptions(target, qps=0, threads=2, exactly=5), 2)
    assert p.calls == [3, 2]
    p = plan(LoadOptions(target, qps=10, threads=4, duration=1.0), 2)
    assert p.threads == 4 and p.calls == [2, 2, 2, 2]


async def test_load_report_against_echo() -> None:
    server = TestServer(create_app(EchoOptions(), Logger(io.StringIO(), json_mode=True)), host="127.0.0.1")
    await server.start_server()
    try:
        out = io.StringIO()
        log = Logger(out, json_mode=True)
        log.set_level(WARNING)
        opts = LoadOptions(parse_target(f"http://127.0.0.1:{server.port}/echo?status=503:50"), qps=0, threads=2,
                           exactly=20)
        assert await run_load(opts, out, log) == 0
    finally:
        await server.close()
    text = out.getvalue()
    assert '"msg":"Log level is now 3 Warning (was 2 Info)"' in text
    assert "Starting at max qps with 2 thread(s) [gomax " in text
    assert re.search(r"^Ended after [0-9.]+(ms|s|µs) : 20 calls\. qps=", text, re.M)
    assert re.search(r"^Aggregated Function Time : count 20 avg \S+ \+/- \S+ min \S+ max \S+ sum \S+$", text, re.M)
    assert "# range, mid point, percentile, count\n" in text
    assert re.search(r"^# target 99\.9% \S+$", text, re.M)
    codes = dict(re.findall(r"^Code (\d+) : (\d+) \(", text, re.M))
    assert sum(map(int, codes.values())) == 20 and set(codes) <= {"200", "503"}
    assert text.count('"msg":"Non ok http code","code":503') == int(codes.get("503", 0))
    assert "Sockets used: 2 (for perfect keepalive, would be 2)" in text
    assert re.search(r"^All done 20 calls \(plus 0 warmup\) [0-9.]+ ms avg, [0-9.]+ qps$", text, re.M)


async def test_curl_prints_headers_to_stderr_and_body_to_stdout() -> None:
    server = TestServer(create_app(EchoOptions(), Logger(io.StringIO(), json_mode=True)), host="127.0.0.1")
    await server.start_server()
    try:
        out, err = io.StringIO(), io.StringIO()
        flags = cli.parse(["curl", "-payload", "hello", f"http://127.0.0.1:{server.port}/x"])
        assert await cli._curl(flags, out, err) == 0
        assert out.getvalue() == "hello"
        assert err.getvalue().startswith("HTTP/1.1 200 OK\r\n")
        out, err = io.StringIO(), io.StringIO()
        flags = cli.parse(["curl", f"http://127.0.0.1:{server.port}/?status=503"])
        assert await cli._curl(flags, out, err) == 1
        assert "HTTP/1.1 503" in err.getvalue() and "Error status 503" in err.getvalue()
    finally:
        await server.close()


async def test_client_goes_through_the_pods_proxy_in_loopback_mode(stand_in: Any) -> None:
    from sluice.samples.fortio.client import FastClient

    stand_in.answer("/get", 200, {"ok": True})
    client = FastClient(parse_target("http://httpbin:8000/get"), proxy=stand_in.url)
    fetched = await client.fetch()
    await client.close()
    assert fetched.code == 200
    assert stand_in.requests[0].target == "http://httpbin:8000/get"
    assert stand_in.requests[0].headers["host"] == "httpbin:8000"
    assert stand_in.requests[0].headers["user-agent"] == "fortio.org/fortio-1.75.2"


async def test_echo_bad_options_get_clear_answers(make_client: Any) -> None:
    client = await make_client(create_app(EchoOptions(max_delay=0.01), Logger(io.StringIO(), json_mode=True)))
    assert (await client.get("/?status=99999")).status == 400
    assert (await client.get("/?status=503:x")).status == 400
    resp = await client.get("/?header=:x&header=Bad%20Name:1&header=Ok:1")
    assert resp.status == 200 and resp.headers["Ok"] == "1"
    assert (await client.get("/?delay=1h&size=-3")).status == 200
