"""PromQL safety: how a loop-side endpoint answers while a pathological query runs, before (main's engine, on the
event loop, Python regexes) and after (RE2, the worker pool, the safeguards); and query throughput with the
worker pool. Each server is a child process holding 1 h of data (200 series, one sample every 5 s) behind
`metrics_app` on the metrics port's server, with `/ping` on the same event loop standing in for the API server.

Usage: `python bench/promql_safety_bench.py [BEFORE_SRC]`: BEFORE_SRC is the `src/` of a checkout from before
this work (e.g. `git worktree add /tmp/before f3020e8`); without it only the "after" rows run. Prints a
Markdown section; the whole run stays under a minute.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AFTER_SRC = ROOT / "src"
WINDOW_S = 5.0  # how long a pathological query is watched (a frozen server is killed after it)
PING_EVERY_S = 0.1
PING_TIMEOUT_S = 2.0
PATHOLOGICAL = [
    ("`{__name__=~\"(.+)+z\"}`, timeout 5s", "/api/v1/query", {"query": '{__name__=~"(.+)+z"}', "timeout": "5s"}),
    ("backtracking `(a\\|aa)*c` on a 34-char value, timeout 1s", "/api/v1/query",
     {"query": 'count({path=~"(a|aa)*c"})', "timeout": "1s"}),
    ("subquery `[3h:1ms]`, timeout 1s", "/api/v1/query",
     {"query": "max_over_time(m[3h:1ms])", "timeout": "1s"}),
    ("1000 nested parentheses", "/api/v1/query", {"query": "(" * 1000 + "1" + ")" * 1000}),
    ("range query running into its timeout: `quantile_over_time(0.5, m[1h])` over 1 h at 1 s, timeout 2s",
     "/api/v1/query_range", {"query": "quantile_over_time(0.5, m[1h])", "start": "7200", "end": "10800",
                             "step": "1", "timeout": "2s"}),
]
THROUGHPUT_QUERIES = ['sum by (j) (rate(m[5m]))', 'histogram_quantile(0.9, sum by (le) (rate(m[1m])))',
                      'topk(5, m)', 'count(m)']
CLIENTS = 4
THROUGHPUT_S = 5.0

SERVER = r"""
import asyncio, sys, time
src, port, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, src)
from aiohttp import web
from sluice.metrics.api import metrics_app
from sluice.metrics.promql import Engine
from sluice.metrics.series import labels_of
from sluice.metrics.tsdb import TSDB

END = 3 * 3600_000
db = TSDB(None)
series = [labels_of({"__name__": "m", "i": str(i), "j": str(i % 10), "le": str(i % 5)}) for i in range(199)]
# Real metric names are long, which is what makes a nested quantifier explode in a backtracking engine.
series.append(labels_of({"__name__": "istio_request_duration_milliseconds_bucket", "path": "a" * 34}))
for t in range(END - 3600_000, END + 1, 5000):
    db.append(t, [(s, float(t // 1000 + k)) for k, s in enumerate(series)], scrape_target="x")

kwargs = {}
try:
    from sluice.metrics.workers import QueryPool
    kwargs["pool"] = QueryPool(workers, 16)
except ImportError:
    pass
try:  # the metrics port's own server (sluice.httpserver), or aiohttp in a checkout from before it
    from sluice import httpserver
except ImportError:
    httpserver = None
if httpserver is not None:
    async def ping(request):
        return httpserver.Response.text("ok")

    app = metrics_app(db, lambda lb: Engine(db), extra_routes=[("GET", "/ping", ping)], now=lambda: END / 1000,
                      **kwargs)
    print("ready", flush=True)

    async def main():
        await httpserver.serve(app, "127.0.0.1", port)
        await asyncio.Event().wait()

    asyncio.run(main())
else:
    async def ping(request):
        return web.Response(text="ok")

    app = metrics_app(db, lambda lb: Engine(db), extra_routes=[web.get("/ping", ping)], now=lambda: END / 1000,
                      **kwargs)
    print("ready", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, src: Path, workers: int = 2) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(src), str(self.port), str(workers)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        assert self.proc.stdout is not None
        self.proc.stdout.readline()  # "ready": data loaded
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.get("/ping", {}, 1)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("bench server did not start")

    def get(self, path: str, params: dict[str, str], timeout: float) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.port}{path}?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def watch(server: Server, path: str, params: dict[str, str]) -> tuple[str, list[float], int]:
    """Run the query while pinging; returns (the query's outcome, ping latencies in ms, unanswered pings)."""
    outcome: dict[str, str] = {}

    def run() -> None:
        start = time.monotonic()
        try:
            status, body = server.get(path, params, WINDOW_S + 1)
            err = json.loads(body).get("errorType", "") if status != 200 else ""
            outcome["text"] = f"{status}{' ' + err if err else ''} after {time.monotonic() - start:.2f} s"
        except OSError:
            outcome["text"] = f"no answer in {WINDOW_S:.0f} s"

    q = threading.Thread(target=run, daemon=True)
    q.start()
    lat: list[float] = []
    lost = 0
    end = time.monotonic() + WINDOW_S
    while time.monotonic() < end and q.is_alive():
        t0 = time.monotonic()
        try:
            server.get("/ping", {}, PING_TIMEOUT_S)
            lat.append((time.monotonic() - t0) * 1000)
        except OSError:
            lost += 1
        time.sleep(max(0.0, PING_EVERY_S - (time.monotonic() - t0)))
    q.join(0.5)
    return outcome.get("text", f"no answer in {WINDOW_S:.0f} s"), lat, lost


def throughput(server: Server) -> tuple[float, float]:
    """(queries/s over CLIENTS concurrent clients, /ping p99 ms meanwhile)."""
    done = [0]
    stop = time.monotonic() + THROUGHPUT_S

    def client(k: int) -> None:
        i = k
        while time.monotonic() < stop:
            server.get("/api/v1/query", {"query": THROUGHPUT_QUERIES[i % len(THROUGHPUT_QUERIES)]}, 30)
            done[0] += 1
            i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    lat = []
    while time.monotonic() < stop:
        s = time.monotonic()
        server.get("/ping", {}, 30)
        lat.append((time.monotonic() - s) * 1000)
        time.sleep(PING_EVERY_S)
    for th in threads:
        th.join()
    return done[0] / (time.monotonic() - t0), _pct(lat, 0.99)


def main() -> None:
    versions = [("after", AFTER_SRC)]
    if len(sys.argv) > 1:
        versions.insert(0, ("before", Path(sys.argv[1])))
    rows = []
    tput = []
    for name, src in versions:
        server = Server(src)
        try:
            for label, path, params in PATHOLOGICAL:
                text, lat, lost = watch(server, path, params)
                p99 = f"{_pct(lat, 0.99):.1f}" if lat else "–"
                med = f"{statistics.median(lat):.1f}" if lat else "–"
                rows.append(f"| {label} | {name} | {text} | {len(lat)} / {len(lat) + lost} | {med} | {p99} |")
                if lost or "no answer" in text:  # frozen: start a fresh server for the next query
                    server.stop()
                    server = Server(src)
            if name == "before":
                tput.append(("before (on the event loop)", *throughput(server)))
        finally:
            server.stop()
    for workers in (1, 2):
        server = Server(AFTER_SRC, workers)
        try:
            tput.append((f"after, {workers} worker thread{'s' if workers > 1 else ''}", *throughput(server)))
        finally:
            server.stop()

    print("## PromQL safety (`bench/promql_safety_bench.py`)\n")
    print("A server process with 1 h of data (200 series, one named `istio_request_duration_milliseconds_bucket`; a sample every 5 s) behind the Prometheus API, and "
          "`/ping` on the same event loop standing in for the API server and xDS. While each query runs, `/ping` "
          f"is fetched every {PING_EVERY_S * 1000:.0f} ms (client timeout {PING_TIMEOUT_S:.0f} s; a frozen server is "
          f"killed after {WINDOW_S:.0f} s). *Before*: main's engine (evaluation on the loop, Python's backtracking "
          "`re`); *after*: RE2, the query worker pool and the safeguards.\n")
    print("| query | engine | query's answer | pings answered | ping p50 ms | ping p99 ms |")
    print("|---|---|---|---:|---:|---:|")
    print("\n".join(rows))
    print(f"\nThroughput: {CLIENTS} clients sending instant queries over the hour's data "
          f"({', '.join(f'`{q}`' for q in THROUGHPUT_QUERIES)}) in turn for {THROUGHPUT_S:.0f} s, with `/ping` "
          "every 100 ms meanwhile.\n")
    print("| engine | queries/s | ping p99 ms |")
    print("|---|---:|---:|")
    for name, qps, p99 in tput:
        print(f"| {name} | {qps:.1f} | {p99:.1f} |")


if __name__ == "__main__":
    main()
