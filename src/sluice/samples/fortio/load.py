"""`fortio load`: the periodic runner over the fast HTTP client and the report fortio prints on stderr.

Threads (`-c`) are asyncio tasks with one connection each; `-qps 0` (or negative) is "max qps", otherwise
each thread paces itself at qps/threads; `-n` runs exactly that many calls, else `-t` (5 s by default; 0:
until interrupted). In duration mode each thread makes one warm-up call first, and a non-OK warm-up aborts
the run as fortio does. OK codes are 2xx and 418.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter as Occurrences
from dataclasses import dataclass, field
from typing import TextIO

from sluice.samples.fortio import VERSION
from sluice.samples.fortio.client import FastClient, Target
from sluice.samples.fortio.gofmt import g
from sluice.samples.fortio.log import INFO, VERBOSE, WARNING, Logger
from sluice.samples.fortio.stats import Histogram
from sluice.samples.gotime import format_duration

__all__ = ["LoadOptions", "run_load", "code_is_ok", "plan"]


def code_is_ok(code: int) -> bool:
    return 200 <= code <= 299 or code == 418


@dataclass
class LoadOptions:
    target: Target
    qps: float = 8.0
    threads: int = 4
    duration: float = 5.0  # seconds; <= 0 with exactly == 0: until interrupted
    exactly: int = 0
    percentiles: list[float] = field(default_factory=lambda: [50.0, 75.0, 90.0, 99.0, 99.9])
    resolution: float = 0.001
    headers: list[tuple[str, str]] = field(default_factory=list)
    payload: bytes | None = None
    method: str = ""
    timeout: float = 3.0
    keepalive: bool = True
    allow_initial_errors: bool = False
    abort_on: int = 0
    log_errors: bool = True
    uniform: bool = False
    jitter: bool = False
    nocatchup: bool = False
    proxy: str | None = None  # loopback mode's HTTP_PROXY (the pod's sidecar)


@dataclass(frozen=True)
class Plan:
    threads: int
    calls: list[int]  # per thread; 0 = unbounded (duration or until interrupted)
    header: str  # the "Starting at …" line


def plan(opts: LoadOptions, gomax: int, log: Logger | None = None) -> Plan:
    """How the calls split over the threads, and the line announcing it (periodic.go's setup)."""
    threads = max(1, opts.threads)
    if opts.qps <= 0:
        if opts.exactly <= 0 and opts.duration <= 0:
            return Plan(threads, [0] * threads,
                        f"Starting at max qps with {threads} thread(s) [gomax {gomax}] until interrupted\n")
        head = f"Starting at max qps with {threads} thread(s) [gomax {gomax}] "
        if opts.exactly > 0:
            per, left = divmod(opts.exactly, threads)
            calls = [per + (1 if t < left else 0) for t in range(threads)]
            return Plan(threads, calls, head + f"for exactly {opts.exactly} calls ({per} per thread + {left})\n")
        return Plan(threads, [0] * threads, head + f"for {format_duration(opts.duration)}\n")
    if opts.exactly <= 0 and opts.duration <= 0:
        return Plan(threads, [0] * threads,
                    f"Starting at {g(opts.qps)} qps with {threads} thread(s) [gomax {gomax}] until interrupted\n")
    total = opts.exactly if opts.exactly > 0 else int(opts.qps * opts.duration)
    if total < 2:
        if log:
            log.log(WARNING, "Increasing the number of calls to the minimum of 2 with 1 thread. "
                             "total duration will increase")
        total, threads = 2, 1
    if 2 * threads > total:
        new = total // 2
        if log:
            log.log(WARNING, f"Lowering number of threads - total call {total} -> lowering from {threads} to {new} "
                             "threads")
        threads = new
    per = total // threads
    if opts.exactly > 0:
        left = opts.exactly - per * threads
        calls = [per + (1 if t < left else 0) for t in range(threads)]
        return Plan(threads, calls, f"Starting at {g(opts.qps)} qps with {threads} thread(s) [gomax {gomax}] : "
                                    f"exactly {opts.exactly}, {per} calls each (total {per * threads} + {left})\n")
    return Plan(threads, [per] * threads,
                f"Starting at {g(opts.qps)} qps with {threads} thread(s) [gomax {gomax}] for "
                f"{format_duration(opts.duration)} : {per} calls each (total {per * threads})\n")


@dataclass
class _Thread:
    client: FastClient
    durations: Histogram
    errors: Histogram
    sleeps: Histogram
    sizes: Histogram = field(default_factory=lambda: Histogram(0, 100))
    header_sizes: Histogram = field(default_factory=lambda: Histogram(0, 5))
    codes: Occurrences[int] = field(default_factory=Occurrences)


async def run_load(opts: LoadOptions, out: TextIO, log: Logger, run_id: int = 0) -> int:
    """Run, print fortio's report to `out`, return the exit code."""
    gomax = os.cpu_count() or 1
    url = opts.target.url
    head = f"Fortio {VERSION} running at {g(opts.qps)} queries per second, {gomax}->{gomax} procs"
    if opts.exactly > 0:
        head += f", for {opts.exactly} calls: {url}\n"
    elif opts.duration <= 0:
        head += f", until interrupted: {url}\n"
    else:
        head += f", for {format_duration(opts.duration)}: {url}\n"
    out.write(head)
    out.flush()
    log.log(INFO, "Starting http test", run=run_id, url=url, threads=opts.threads,
            qps=f"{opts.qps if opts.qps > 0 else -1:.1f}", warmup="parallel", **{"conn-reuse": ""})
    p = plan(opts, gomax, log)
    states = [_Thread(FastClient(opts.target, opts.headers, opts.payload, opts.method, opts.timeout, opts.keepalive,
                                 resolution=opts.resolution, proxy=opts.proxy),
                      Histogram(0, opts.resolution), Histogram(0, opts.resolution), Histogram(0, opts.resolution))
              for _ in range(p.threads)]
    if opts.exactly <= 0:
        warm = await asyncio.gather(*(s.client.fetch() for s in states))
        for i, f in enumerate(warm):
            if not opts.allow_initial_errors and not code_is_ok(f.code):
                out.write(f"Aborting because of error {f.code} for {url} ({f.size} bytes)\n")
                for s in states:
                    await s.client.close()
                return 1
            if i == 0:
                log.log(VERBOSE, f"first hit of url {url}: status {f.code:03d}, headers {f.header_size}, total {f.size}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    use_qps = opts.qps > 0
    per_thread_qps = opts.qps / p.threads if use_qps else 0.0
    has_duration = opts.exactly <= 0 and opts.duration > 0
    start_ns = time.monotonic_ns()
    start = start_ns / 1e9
    end = start + opts.duration if has_duration else float("inf")

    async def one(tid: int, st: _Thread) -> None:
        n = p.calls[tid]
        i = 0
        t0 = time.monotonic()
        while not stop.is_set():
            began = time.monotonic_ns()
            # Past the end: max-qps threads stop; paced ones make at least 2 calls and still their last one.
            if has_duration and began / 1e9 >= end and (not use_qps or (i >= 2 and i != n - 1)):
                if use_qps:
                    log.log(WARNING, f"T{tid:03d} warning only did {i} out of {n} calls before reaching "
                                     f"{format_duration(opts.duration)}")
                break
            f = await st.client.fetch()
            latency = (time.monotonic_ns() - began) / 1e9  # whole nanoseconds, as Go's Duration
            st.codes[f.code] += 1
            st.sizes.record(float(f.size))
            st.header_sizes.record(float(f.header_size))
            st.durations.record(latency)
            if not code_is_ok(f.code):
                st.errors.record(latency)
                if opts.log_errors and f.code > 0:
                    log.log(WARNING, "Non ok http code", code=f.code, status=f"HTTP/1.1 {f.code}", thread=tid,
                            run=run_id)
            if opts.abort_on and f.code == opts.abort_on:
                log.log(INFO, "Aborted run because of http code", run=run_id, code=f.code, size=f.size)
                stop.set()
            i += 1
            if n and i >= n:
                break
            if use_qps:
                target = (i + (i / (n - 1) if n > 1 and has_duration else 0)) / per_thread_qps
                wait = target - (time.monotonic() - t0)
                st.sleeps.record(round(wait * 1e9) / 1e9)
                if wait > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), wait)
                    except TimeoutError:
                        pass
            else:
                await asyncio.sleep(0)
        elapsed = time.monotonic() - t0
        log.log(INFO, f"T{tid:03d} ended after {format_duration(elapsed)} : {i} calls. qps={g(i / elapsed if elapsed else 0)}")

    out.write(p.header)
    out.flush()
    await asyncio.gather(*(one(t, s) for t, s in enumerate(states)))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)
    elapsed = (time.monotonic_ns() - start_ns) / 1e9
    durations, errors, sleeps = Histogram(0, opts.resolution), Histogram(0, opts.resolution), Histogram(0, opts.resolution)
    for st in states:
        durations.transfer(st.durations)
        errors.transfer(st.errors)
        sleeps.transfer(st.sleeps)
    count = durations.counter.count
    actual_qps = count / elapsed if elapsed > 0 else 0.0
    out.write(f"Ended after {format_duration(elapsed)} : {count} calls. qps={actual_qps:.5g}\n")
    if use_qps and sleeps.counter.count:
        behind_pct = 100.0 * sleeps.hdata[0] / sleeps.counter.count
        if behind_pct > 5:
            out.write(sleeps.export().with_percentiles([50]).text("Aggregated Sleep Time"))
            out.write(f"WARNING {behind_pct:.2f}% of sleep were falling behind\n")
        else:
            out.write(sleeps.counter.line("Sleep times"))
    dur = durations.export().with_percentiles(opts.percentiles)
    out.write(dur.text("Aggregated Function Time"))
    out.write(errors.export().with_percentiles(opts.percentiles).text("Error cases"))
    out.write("# Socket and IP used for each connection:\n")
    connections = Histogram(0, opts.resolution)
    ip_totals: Occurrences[str] = Occurrences()
    codes: Occurrences[int] = Occurrences()
    sizes, header_sizes = Histogram(0, 100), Histogram(0, 5)
    sockets = 0
    for i, st in enumerate(states):
        await st.client.close()
        addrs = st.client.addresses
        ip_totals.update(addrs)
        resolved = next(iter(addrs)) if len(addrs) == 1 else "[" + ", ".join(f"{k} ({v})" for k, v in addrs.items()) + "]"
        out.write(f"[{i}] {st.client.sockets:3d} socket used, resolved to {resolved}"
                  + st.client.connect_times.counter.line(", connection timing"))
        sockets += st.client.sockets
        connections.transfer(st.client.connect_times)
        codes.update(st.codes)
        sizes.transfer(st.sizes)
        header_sizes.transfer(st.header_sizes)
    if log.enabled(INFO):
        out.write(connections.export().with_percentiles(opts.percentiles).text("Connection time histogram (s)"))
    elif log.enabled(WARNING):
        out.write(connections.counter.line("Connection time (s)"))
    out.write(f"Sockets used: {sockets} (for perfect keepalive, would be {p.threads})\n")
    out.write(f"Uniform: {str(opts.uniform).lower()}, Jitter: {str(opts.jitter).lower()}, "
              f"Catchup allowed: {str(not opts.nocatchup).lower()}\n")
    out.write("IP addresses distribution:\n")
    for addr, n in sorted(ip_totals.items(), key=lambda kv: -kv[1]):
        out.write(f"{addr}: {n}\n")
    for code in sorted(codes):
        out.write(f"Code {code:3d} : {codes[code]} ({100.0 * codes[code] / count if count else 0:.1f} %)\n")
    if log.enabled(VERBOSE):
        out.write(header_sizes.export().text("Response Header Sizes Histogram"))
        out.write(sizes.export().text("Response Body/Total Sizes Histogram"))
    elif log.enabled(WARNING):
        out.write(header_sizes.counter.line("Response Header Sizes"))
        out.write(sizes.counter.line("Response Body/Total Sizes"))
    warmup = 0 if opts.exactly > 0 else opts.threads
    out.write(f"All done {count} calls (plus {warmup} warmup) {1000.0 * dur.avg:.3f} ms avg, {actual_qps:.1f} qps\n")
    out.flush()
    return 0
