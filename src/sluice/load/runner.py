"""The load run itself: `concurrency` keep-alive connections, paced open loop or closed loop.

Open loop: a pacer releases scheduled send times into a queue (see `pacing`) and each worker — one per
connection — takes the next one, so at most `concurrency` requests are in flight and a backlog forms
when the server is slower than the offered rate. Closed loop: workers send back to back.
Called from `sluice load`, `python -m sluice.load`, the demo's traffic generator and the benchmarks.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import aiohttp

from sluice.load.model import LoadConfig, LoadResult
from sluice.load.pacing import OpenLoopSchedule, pace
from sluice.load.targets import check_target, in_sluice_pod

__all__ = ["run_load", "ProgressCallback", "classify_error"]

ProgressCallback = Callable[[LoadResult], None]

_CLOSED_LOOP_ERROR_PAUSE = 0.01  # keeps a refused target from turning closed loop into a busy spin


def classify_error(exc: BaseException) -> str:
    """A short, stable name for a failed request (the keys of `LoadResult.errors`)."""
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return "timeout"
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return "proxy connect failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "connection refused"
        return "connect failed"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "incomplete body"
    if isinstance(exc, ConnectionResetError | aiohttp.ClientOSError):
        return "connection reset"
    return type(exc).__name__


class _Run:
    """Shared state of one run (single event loop, so no locking)."""

    def __init__(self, config: LoadConfig, stop: asyncio.Event) -> None:
        self.config = config
        self.stop = stop
        self.result = LoadResult(url=config.url, proxy=config.proxy,
                                 target_rate=config.rate if config.open_loop else None,
                                 concurrency=config.concurrency)
        self.started = time.monotonic()
        self.issued = 0  # closed loop: requests handed out so far
        self.released = 0  # open loop: requests the pacer released
        self.queue: asyncio.Queue[float | None] = asyncio.Queue()
        # Beyond this backlog, releases are dropped: a stalled server must not grow memory without bound.
        self.max_backlog = max(1000, int((config.rate or 0) * 5))
        self.headers = dict(config.headers)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def snapshot(self) -> LoadResult:
        self.result.elapsed = self.elapsed()
        return self.result

    async def send(self, session: aiohttp.ClientSession, scheduled: float) -> bool:
        cfg, res = self.config, self.result
        try:
            async with session.request(cfg.method, cfg.url, headers=self.headers, data=cfg.body or None,
                                       proxy=cfg.proxy, allow_redirects=False) as resp:
                body = await resp.read()
            res.responses += 1
            res.status_codes[resp.status] = res.status_codes.get(resp.status, 0) + 1
            res.bytes_received += len(body)
            ok = True
        except (aiohttp.ClientError, OSError) as e:  # OSError covers TimeoutError
            name = classify_error(e)
            res.errors[name] = res.errors.get(name, 0) + 1
            ok = False
        res.bytes_sent += len(cfg.body)
        res.requests += 1
        res.histogram.record(int((time.monotonic() - scheduled) * 1e9))
        return ok

    async def open_worker(self, session: aiohttp.ClientSession) -> None:
        while True:
            scheduled = await self.queue.get()
            if scheduled is None:
                return
            if self.stop.is_set():
                self.result.dropped += 1  # due before the end, but no connection was free in time
                continue
            await self.send(session, scheduled)

    async def closed_worker(self, session: aiohttp.ClientSession) -> None:
        limit = self.config.requests
        while not self.stop.is_set() and (limit is None or self.issued < limit):
            self.issued += 1
            if not await self.send(session, time.monotonic()):
                await asyncio.sleep(_CLOSED_LOOP_ERROR_PAUSE)

    def release(self, scheduled: float) -> None:
        if self.queue.qsize() >= self.max_backlog:
            self.result.dropped += 1
        else:
            # Latency counts from release, not from `scheduled`: time spent waiting for a busy connection
            # is the server's doing and counts, the pacer's own timer jitter (≈1 ms in asyncio) is not.
            self.queue.put_nowait(time.monotonic())

    async def sleep_or_stop(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def pacer(self) -> None:
        cfg = self.config
        assert cfg.rate
        schedule = OpenLoopSchedule(cfg.rate, start=self.started)
        end = None if cfg.duration is None else self.started + cfg.duration
        self.released = await pace(schedule, release=self.release, clock=time.monotonic, sleep=self.sleep_or_stop,
                   stopped=self.stop.is_set, end=end, limit=cfg.requests)
        if end is not None and not self.stop.is_set() and (cfg.requests is None or self.released < cfg.requests):
            # The last request is due up to 1/rate before the end; the run still lasts the full duration,
            # so that achieved rps is measured over the same window as the target.
            await self.sleep_or_stop(end - time.monotonic())
        # Workers finish the backlog (or count it as dropped once the run is stopped), then exit.
        for _ in range(cfg.concurrency):
            self.queue.put_nowait(None)


async def run_load(config: LoadConfig, *, stop: asyncio.Event | None = None,
                   on_progress: ProgressCallback | None = None, progress_interval: float = 0.5) -> LoadResult:
    """Run `config` and return what was measured.

    Raises `TargetRefused` (before sending anything) for a target outside this machine. Ends at
    `duration`, after `requests`, or when `stop` is set — whichever comes first; requests in flight then
    finish (each bounded by `timeout`). `on_progress` gets the live result every `progress_interval` s.
    """
    check_target(config.url, config.proxy, contained=in_sluice_pod(os.environ))
    stop = stop or asyncio.Event()
    run = _Run(config, stop)
    connector = aiohttp.TCPConnector(limit=config.concurrency, force_close=False, enable_cleanup_closed=False)
    timeout = aiohttp.ClientTimeout(total=config.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(),
                                     auto_decompress=False) as session:
        deadline: asyncio.TimerHandle | None = None
        if config.duration is not None:
            deadline = asyncio.get_running_loop().call_later(config.duration, stop.set)
        worker = run.open_worker if config.open_loop else run.closed_worker
        tasks = [asyncio.create_task(worker(session)) for _ in range(config.concurrency)]
        if config.open_loop:
            tasks.append(asyncio.create_task(run.pacer()))
        reporter = None
        if on_progress is not None:
            reporter = asyncio.create_task(_report(run, on_progress, progress_interval))
        try:
            await asyncio.gather(*tasks)
        finally:
            stop.set()  # tells the reporter, and any task left on an error, to finish
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if deadline is not None:
                deadline.cancel()
            if reporter is not None:
                await reporter
    return run.snapshot()


async def _report(run: _Run, on_progress: ProgressCallback, interval: float) -> None:
    while not run.stop.is_set():
        on_progress(run.snapshot())
        await run.sleep_or_stop(interval)
    on_progress(run.snapshot())
