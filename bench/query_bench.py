"""Query latency over 1 h of demo-shaped data: the story's queries and Kiali-style graph queries, through
sluice's Prometheus API and through Debian's Prometheus holding the same samples (backfilled with promtool).
Prints a Markdown section with both medians and their ratio."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402
from bench.run import exit_on_sigterm  # noqa: E402
from bench.tsdb_bench import istio_series, openmetrics  # noqa: E402
from tests.conftest import TOOLS, free_port, wait_for  # noqa: E402

from sluice.aio import run_server  # noqa: E402
from sluice.daemon.metrics_parts import engine_factory, query_pool, serve_metrics_app  # noqa: E402
from sluice.daemon.state import DaemonOptions  # noqa: E402
from sluice.metrics.api import metrics_app  # noqa: E402
from sluice.metrics.tsdb import TSDB  # noqa: E402

STEP_MS = 5_000
HOUR_MS = 3600_000
LEAD_MS = 900_000
OFF_GRID_MS = 2_500
EVAL_OFFSET_MS = 1_250
RUNS = 15
# A query keeps alternating past its `runs` pairs until both servers together have answered it for this long:
# a 0.3 ms query's median over 15 pairs moved ±10 % between runs (the loopback round trip is most of it),
# over a thousand it holds to a few per cent.
MIN_SECONDS = 1.0
MAX_PAIRS = 5000
STORY = ('sum(istio_requests_total{destination_service_namespace="tutorial", reporter="destination",'
         'destination_service_name="reviews", destination_version="v2"})')
QUERIES = {
    "story: all reviews series": 'istio_requests_total{destination_service_namespace="tutorial", '
                                 'reporter="destination",destination_service_name="reviews"}',
    "story: sum for v2": STORY,
    "story: v2 + v3": f'{STORY} + {STORY.replace("v2", "v3")}',
    "Kiali graph: edge rates": 'sum(rate(istio_requests_total{reporter="destination",'
                               'destination_workload_namespace="tutorial"}[1m])) by (source_workload, '
                               'destination_workload, destination_version, response_code)',
    "Kiali graph: p95 per edge": 'histogram_quantile(0.95, sum(rate(istio_request_duration_milliseconds_bucket{'
                                 'reporter="destination",destination_workload_namespace="tutorial"}[1m])) '
                                 'by (le, source_workload, destination_workload))',
}
RANGE = ('sum(rate(istio_requests_total{reporter="destination",destination_service_name="reviews"}[1m])) '
         'by (destination_version)')

# The shapes Kiali's graph and metrics pages, Flagger's and Argo Rollouts' Istio analysis templates send, each
# evaluated as an instant query and as a range query (1 h at 15 s).
_RT = 'istio_requests_total'
_DUR = 'istio_request_duration_milliseconds_bucket'
_KIALI_BY = ('source_cluster,source_workload_namespace,source_workload,source_canonical_service,'
             'source_canonical_revision,destination_cluster,destination_service_namespace,destination_service,'
             'destination_service_name,destination_workload_namespace,destination_workload,'
             'destination_canonical_service,destination_canonical_revision,request_protocol,response_code,'
             'grpc_response_status,response_flags')
_FLAGGER_SEL = 'reporter="destination",destination_workload_namespace="tutorial",destination_workload=~"reviews-v2"'
_ARGO_SEL = 'reporter="source",destination_service=~"reviews.tutorial.svc.cluster.local"'
SHAPES = {
    "Kiali graph: destination edges > 0": f'sum(rate({_RT}{{reporter="destination",source_workload_namespace!='
                                          f'"istio-system",destination_service_namespace="tutorial"}}[1m])) '
                                          f'by ({_KIALI_BY}) > 0',
    "Kiali graph: source edges > 0": f'sum(rate({_RT}{{reporter="source",source_workload_namespace="tutorial"}}[1m]))'
                                     f' by ({_KIALI_BY}) > 0',
    "Kiali graph: p95 by workload > 0": f'histogram_quantile(0.95, sum(rate({_DUR}{{reporter="destination",'
                                        'destination_workload_namespace="tutorial"}[1m])) by (le,source_workload,'
                                        'destination_workload)) > 0',
    "Kiali metrics: rounded rate by code": f'round(sum(rate({_RT}{{reporter="source",destination_service_name='
                                           '"reviews"}[1m])) by (response_code), 0.001)',
    "Kiali health: error ratio": f'sum(rate({_RT}{{reporter="destination",response_code=~"5.."}}[1m])) by '
                                 f'(destination_workload) / sum(rate({_RT}{{reporter="destination"}}[1m])) by '
                                 '(destination_workload)',
    "share per code (group_left)": f'sum by (destination_workload, response_code) (rate({_RT}{{reporter='
                                   f'"destination"}}[1m])) / ignoring(response_code) group_left sum by '
                                   f'(destination_workload) (rate({_RT}{{reporter="destination"}}[1m]))',
    "Flagger: request-success-rate": f'sum(rate({_RT}{{{_FLAGGER_SEL},response_code!~"5.*"}}[1m])) / '
                                     f'sum(rate({_RT}{{{_FLAGGER_SEL}}}[1m])) * 100',
    "Flagger: request-duration p99": f'histogram_quantile(0.99, sum(rate({_DUR}{{{_FLAGGER_SEL}}}[1m])) by (le))',
    "Argo: success-rate (irate 5m)": f'sum(irate({_RT}{{{_ARGO_SEL},response_code!~"5.*"}}[5m])) / '
                                     f'sum(irate({_RT}{{{_ARGO_SEL}}}[5m]))',
    "Argo: error count or vector(0)": f'sum(increase({_RT}{{{_ARGO_SEL},response_code=~"5.*"}}[5m])) or vector(0)',
    "increase by service (5m)": f'sum by (destination_service_name) (increase({_RT}{{reporter="source"}}[5m]))',
    "subquery: peak rate (10m:30s)": f'max_over_time(sum by (destination_workload) (rate({_RT}{{reporter='
                                     '"destination"}[1m]))[10m:30s])',
    "subquery: avg p90 (5m:15s)": f'avg_over_time(histogram_quantile(0.9, sum by (le) (rate({_DUR}{{reporter='
                                  '"destination",destination_service_name="reviews"}[1m])))[5m:15s])',
    "topk edges": f'topk(5, sum by (source_workload, destination_workload) (rate({_RT}[1m])))',
    "count series by workload": f'count by (destination_workload) ({_RT})',
    "avg latency (sum/count style)": f'sum(rate({_DUR}{{le="+Inf",reporter="destination"}}[1m])) by '
                                     '(destination_workload) / 1000',
    "comparison filter (bool)": f'sum by (destination_workload) (rate({_RT}{{reporter="destination"}}[1m])) > bool 5',
    "5xx absent": f'absent({_RT}{{response_code="500"}})',
    "max over 5 m of buckets": f'max by (le) (max_over_time({_DUR}{{destination_workload="reviews-v3"}}[5m]))',
}


def generate(end_ms: int) -> tuple[list[tuple[tuple[tuple[str, str], ...], list[float]]], list[int]]:
    """Counters and duration histograms for Bookinfo's edges: one sample every 5 s for an hour."""
    series = [s for s in istio_series() if dict(s)["__name__"] in
              ("istio_requests_total", "istio_request_duration_milliseconds_bucket")]
    # The hour the queries cover, plus the 15 minutes before it that their first windows and subqueries reach
    # back into: a first window that saw counters start from nothing is where Prometheus 2.42's rate
    # extrapolation and Prometheus 3's (which sluice follows) differ. Scrapes land 2.5 s off the whole 5 s, so
    # no evaluation time (nor a subquery's inner step) falls on a sample: 2.42's windows include their left
    # edge, 3's do not, and only there would they select different samples.
    times = list(range(end_ms - HOUR_MS - LEAD_MS + OFF_GRID_MS, end_ms, STEP_MS))
    rng = random.Random(7)
    out = []
    for labels in series:
        d = dict(labels)
        rate = 0.2 if d.get("response_code") == "503" else 10.0
        if "le" in d:
            le = float(d["le"])
            rate *= min(1.0, le / 25.0) if le < 1e9 else 1.0
        v, vals = 0.0, []
        for _ in times:
            v += max(0, round(rng.gauss(rate * 5, rate)))
            vals.append(v)
        out.append((labels, vals))
    return out, times


async def _serve(app: web.Application, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    while True:
        await asyncio.sleep(3600)


def serve(app: web.Application, port: int) -> None:
    """Serve an aiohttp app on 127.0.0.1:`port` from a background thread (bench/console_bench.py's console)."""
    threading.Thread(target=lambda: asyncio.run(_serve(app, port)), daemon=True).start()


def loaded_tsdb(end_ms: int) -> TSDB:
    data, times = generate(end_ms)
    tsdb = TSDB(None)
    for i, t in enumerate(times):
        tsdb.append(t, ((labels, vals[i]) for labels, vals in data), scrape_target="bench")
    return tsdb


def serve_forever(port: int, end_ms: int) -> None:
    """The sluice side: its own process, as the daemon is and as Prometheus is (a server thread inside the
    benchmark's process would share its GIL with the timing client and pay for it), serving the daemon's
    metrics port stack: its application, query pool and engine limits on its HTTP server."""
    tsdb = loaded_tsdb(end_ms)
    options = DaemonOptions()

    async def serve() -> None:
        pool = query_pool(options)
        app = metrics_app(tsdb, engine_factory(tsdb, options), pool=pool)
        await serve_metrics_app(app, port, options)
        while True:
            await asyncio.sleep(3600)

    run_server(serve())  # the daemon's loop


def timed(base: str, path: str, params: dict[str, str]) -> float:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = json.loads(r.read())
    took = (time.perf_counter() - t0) * 1000
    assert body["status"] == "success", body
    return took


def _answer(base: str, path: str, params: dict[str, str]) -> object:
    with urllib.request.urlopen(f"{base}{path}?{urllib.parse.urlencode(params)}", timeout=60) as r:
        data = json.loads(r.read())["data"]
    if isinstance(data["result"], list):
        data["result"] = sorted(data["result"], key=lambda s: sorted(s["metric"].items()))
        for s in data["result"]:
            for pt in s.get("values", []) + ([s["value"]] if "value" in s else []):
                pt[1] = round(float(pt[1]), 9)  # Go and Python print the same float alike; sums may differ in order
    return data


def same_answer(ours: str, theirs: str, path: str, params: dict[str, str]) -> None:
    """Both servers must answer a query alike before its timing means anything."""
    a, b = _answer(ours, path, params), _answer(theirs, path, params)
    if a == b:
        return
    # Prometheus 2.42 assembles a range result's series in Go map order, so `topk`/`bottomk` over ties pick
    # different series from one run to the next (checked: five runs, five answers): no answer to match there.
    if any(_answer(theirs, path, params) != b for _ in range(4)):
        print(f"note: Prometheus's own answers vary between runs for {params['query']!r} ({path})", file=sys.stderr)
        return
    print(f"warning: answers differ for {params['query']!r} ({path})", file=sys.stderr)


def main(runs: int = RUNS, only: str = "", min_seconds: float = MIN_SECONDS) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sluice-query-bench-"))
    end_ms = (int(time.time() * 1000) // STEP_MS) * STEP_MS
    data, times = generate(end_ms)
    ours_port, prom_port = free_port(), free_port()
    exit_on_sigterm()
    server = prom = None
    try:
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(ours_port), str(end_ms)])
        om = tmp / "data.om"
        openmetrics(data, times, om)
        subprocess.run([str(TOOLS / "promtool"), "tsdb", "create-blocks-from", "openmetrics", str(om),
                        str(tmp / "prom")], check=True, capture_output=True)
        om.unlink()
        prom = subprocess.Popen([str(TOOLS / "prometheus"), f"--storage.tsdb.path={tmp / 'prom'}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}", "--config.file=/dev/null",
                                 "--log.level=error", "--storage.tsdb.retention.time=30d"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ours, theirs = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{prom_port}"
        # 1.25 s before the last whole 5 s: off the scrapes and off every subquery's inner steps (whole 15 s/30 s).
        at = f"{(end_ms - EVAL_OFFSET_MS) / 1000:.3f}"

        def ready(base: str) -> bool:
            try:
                return timed(base, "/api/v1/query", {"query": STORY, "time": at}) >= 0
            except OSError:
                return False

        wait_for(lambda: ready(ours) and ready(theirs), timeout=120, interval=0.5)
        start = f"{(end_ms - EVAL_OFFSET_MS - HOUR_MS) / 1000:.3f}"
        cases = [(name, "/api/v1/query", {"query": q, "time": at}) for name, q in QUERIES.items()]
        cases.append(("range: reviews split, 1 h at 15 s", "/api/v1/query_range",
                      {"query": RANGE, "start": start, "end": at, "step": "15"}))
        for name, q in SHAPES.items():
            cases.append((f"{name}", "/api/v1/query", {"query": q, "time": at}))
            cases.append((f"{name}, range", "/api/v1/query_range",
                          {"query": q, "start": start, "end": at, "step": "15"}))
        cases = [c for c in cases if only.lower() in c[0].lower()]
        for _name, path, params in cases:
            same_answer(ours, theirs, path, params)
        rows = []
        for name, path, params in cases:
            # Interleaved, alternating which goes first, so both see the same machine load.
            a: list[float] = []
            b: list[float] = []
            spent_ms = 0.0
            while len(a) < MAX_PAIRS and (len(a) < runs or spent_ms < min_seconds * 1000 or len(a) % 2):
                first, second = (ours, theirs) if len(a) % 2 == 0 else (theirs, ours)
                x, y = timed(first, path, params), timed(second, path, params)
                a.append(x if first == ours else y)
                b.append(y if first == ours else x)
                spent_ms += x + y
            rows.append((name, statistics.median(a), statistics.median(b), len(a)))
    finally:
        for proc in (server, prom):  # whatever started, also when the bench is stopped or promtool fails
            if proc is not None:
                proc.terminate()
                proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    n_samples = len(data) * len(times)
    print("## PromQL query latency (`bench/query_bench.py`)\n")
    print(f"75 minutes of demo-shaped data ({len(data)} series: `istio_requests_total` and the duration buckets "
          f"for Bookinfo's edges, both reporters; one sample every 5 s; {n_samples:,} samples), loaded into "
          "sluice's TSDB (served from its own process through the daemon's metrics-port stack: its HTTP server "
          "`sluice.httpserver` with the connection limits, query pool, query limits, the daemon's loop, uvloop) and backfilled into Debian's Prometheus 2.42 with promtool. Each query "
          f"alternates between the two servers at least {runs} times and until both together have answered it "
          f"for {min_seconds:g} s (HTTP on loopback, a new connection each time; who goes first alternates);"
          " the table has the medians. Instant queries at the end of the hour, range queries over the hour at "
          "15 s; neither the scrapes nor subqueries' inner steps fall on a window's edge (Prometheus 2.42's windows "
          "include their left edge, 3's do not).\n")
    print("| query | sluice ms | Prometheus ms | ratio | pairs |")
    print("|---|---:|---:|---:|---:|")
    for name, ours_ms, theirs_ms, n in rows:
        print(f"| {name} | {ours_ms:.2f} | {theirs_ms:.2f} | {ours_ms / theirs_ms:.2f}× | {n} |")
    ratios = [ours_ms / theirs_ms for _, ours_ms, theirs_ms, _ in rows]
    print(f"\n{len(rows)} queries; ratio median {statistics.median(ratios):.2f}×, worst {max(ratios):.2f}×, "
          f"{sum(r <= 1.0 for r in ratios)} at or below 1.0×.")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:  # the sluice side's own process (started by main)
        serve_forever(int(sys.argv[2]), int(sys.argv[3]))
    else:
        ap = argparse.ArgumentParser(description=__doc__)
        ap.add_argument("--runs", type=int, default=RUNS, help=f"timed runs per query and server (default {RUNS})")
        ap.add_argument("--only", default="", metavar="TEXT",
                        help="only the queries whose name contains TEXT (case-insensitive)")
        ap.add_argument("--min-seconds", type=float, default=MIN_SECONDS,
                        help=f"keep alternating a query until both servers have spent this long on it (default "
                             f"{MIN_SECONDS:g})")
        args = ap.parse_args()
        main(args.runs, args.only, args.min_seconds)
