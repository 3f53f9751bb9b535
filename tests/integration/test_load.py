"""The load generator against a real local aiohttp server: counts, status tallies, proxying, refusal, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sluice.load import LoadConfig, TargetRefused
from sluice.load.runner import run_load

# The subprocesses must not pick up a proxy from the developer's shell.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "no_proxy")}


@dataclass
class Target:
    server: TestServer
    hits: Counter[int] = field(default_factory=Counter)
    targets: list[str] = field(default_factory=list)
    peers: set[int] = field(default_factory=set)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    holder: list[Target] = []
    served = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal served
        me = holder[0]
        served += 1
        me.targets.append(request.raw_path)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            me.peers.add(peer[1])
        # Every 10th request fails, so the status tally has two entries to check.
        status = 503 if served % 10 == 0 else 200
        me.hits[status] += 1
        return web.Response(status=status, body=b"x" * 100)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    holder.append(Target(server))
    yield holder[0]
    await server.close()


async def test_open_loop_fixed_count(target: Target) -> None:
    result = await run_load(LoadConfig(target.base + "/x", rate=500, concurrency=4, duration=None, requests=300))
    assert result.requests == 300 and result.responses == 300 and result.errors == {}
    assert result.status_codes == {200: 270, 503: 30} == dict(target.hits)
    assert result.bytes_received == 300 * 100
    assert result.histogram.count == 300
    assert 0 < result.latency.p50 <= result.latency.p99 <= result.latency.max
    assert len(target.peers) <= 4  # keep-alive: at most one connection per worker


async def test_closed_loop_fixed_count(target: Target) -> None:
    result = await run_load(LoadConfig(target.base + "/y", rate=None, concurrency=3, duration=None, requests=400))
    assert result.requests == 400
    assert sum(result.status_codes.values()) == 400 == sum(target.hits.values())
    assert result.status_codes[503] == 40
    assert len(target.peers) <= 3


async def test_duration_bounded_run_releases_the_schedule(target: Target) -> None:
    result = await run_load(LoadConfig(target.base + "/z", rate=200, concurrency=4, duration=1.0))
    # Requests due at 0, 5 ms, … 995 ms: 200 of them, each sent or counted as dropped.
    assert result.requests + result.dropped == 200
    assert result.requests == sum(target.hits.values())
    assert result.elapsed >= 1.0


async def test_through_a_proxy_requests_are_absolute_form(target: Target) -> None:
    result = await run_load(LoadConfig("http://productpage:9080/productpage", rate=None, concurrency=2,
                                       duration=None, requests=20, proxy=target.base,
                                       headers=(("end-user", "jason"),)))
    assert result.requests == 20
    assert set(target.targets) == {"http://productpage:9080/productpage"}


async def test_stop_event_ends_an_unbounded_run(target: Target) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_load(LoadConfig(target.base, rate=100, duration=None), stop=stop))
    while sum(target.hits.values()) < 10:
        await asyncio.sleep(0.02)
    stop.set()
    result = await asyncio.wait_for(task, timeout=15)
    assert result.requests >= 10


async def test_non_loopback_target_is_refused_before_sending(target: Target) -> None:
    with pytest.raises(TargetRefused, match="refusing target"):
        await run_load(LoadConfig("http://192.0.2.10:9080/", requests=5))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "sluice.load", "http://example.com/", env=CLEAN_ENV,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"refusing target" in err


async def test_module_runs_until_sigterm_then_prints_json(target: Target) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sluice.load", target.base + "/steady", "--rate", "100", "--duration", "0",
        "-o", "json", env=CLEAN_ENV, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(20):
            while sum(target.hits.values()) < 20:
                await asyncio.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary["requests"] >= 20
    assert summary["statusCodes"].get("200", 0) + summary["statusCodes"].get("503", 0) == summary["responses"]
