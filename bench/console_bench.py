"""Console performance: the graph API over 1 h of data, and the graph page in Chromium with 100 workloads.

1. The graph API for the demo mesh (Bookinfo's edges, both reporters, one sample every 5 s for an hour) with a
   1 h window, every graph type: median and worst of repeated HTTP round trips on loopback.
2. The same API and the graph page for a synthetic namespace of 100 workloads (34 apps, up to 3 versions each,
   each workload calling two others): API latency, time to the first drawn graph, time to redraw after a
   refresh, the main thread's longest task during that redraw, and the delay from a click on a node to the
   side panel showing it.

Prints a Markdown section (bench/run.py collects it into docs/benchmarks.md).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.query_bench import HOUR_MS, STEP_MS, generate, serve  # noqa: E402
from bench.tsdb_bench import BUCKETS  # noqa: E402
from tests.conftest import free_port, wait_for  # noqa: E402

from sluice.api.registry import Registry  # noqa: E402
from sluice.console.api import console_app  # noqa: E402
from sluice.console.auth import ConsoleAuth  # noqa: E402
from sluice.metrics.promql import Engine  # noqa: E402
from sluice.metrics.series import Labels, labels_of  # noqa: E402
from sluice.metrics.tsdb import TSDB  # noqa: E402
from sluice.resources.kinds import by_kind  # noqa: E402
from sluice.store.sqlite import Store  # noqa: E402

RUNS = 20
STATIC = ROOT / "src" / "sluice" / "console" / "static"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SYNTH_NS = "synthetic"
SYNTH_STEP_MS = 15_000
TOKEN = "console-bench-token"  # the API server's token stands in: scripts send it as a bearer token
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def synthetic_series() -> list[Labels]:
    """100 workloads (app-<i> v1..v3), each calling the services of two later apps, both reporters."""
    workloads = [(f"app-{i}", f"v{v}") for i in range(34) for v in range(1, 4)][:100]
    rng = random.Random(11)
    out: list[Labels] = []
    for k, (app, ver) in enumerate(workloads):
        targets = {workloads[min(len(workloads) - 1, k + rng.randint(1, 20))] for _ in range(2)}
        for dst, dver in targets:
            if dst == app:
                continue
            for reporter in ("source", "destination"):
                base = {"reporter": reporter, "source_workload": f"{app}-{ver}", "source_workload_namespace": SYNTH_NS,
                        "source_app": app, "source_version": ver, "source_canonical_service": app,
                        "source_canonical_revision": ver, "source_cluster": "Kubernetes",
                        "destination_workload": f"{dst}-{dver}", "destination_workload_namespace": SYNTH_NS,
                        "destination_app": dst, "destination_version": dver,
                        "destination_service": f"{dst}.{SYNTH_NS}.svc.cluster.local",
                        "destination_service_name": dst, "destination_service_namespace": SYNTH_NS,
                        "destination_canonical_service": dst, "destination_canonical_revision": dver,
                        "destination_cluster": "Kubernetes", "request_protocol": "http", "response_code": "200",
                        "grpc_response_status": "", "response_flags": "-"}
                out.append(labels_of({"__name__": "istio_requests_total", **base}))
                for le in BUCKETS:
                    out.append(labels_of({"__name__": "istio_request_duration_milliseconds_bucket", **base, "le": le}))
    return out


def fill(tsdb: TSDB, series: list[Labels], end_ms: int, step_ms: int) -> int:
    times = list(range(end_ms - HOUR_MS + step_ms, end_ms + 1, step_ms))
    rng = random.Random(5)
    rates = [rng.choice((1.0, 2.0, 5.0)) for _ in series]
    vals = [0.0] * len(series)
    for t in times:
        vals = [v + r * step_ms / 1000 for v, r in zip(vals, rates, strict=True)]
        tsdb.append(t, zip(series, vals, strict=True), scrape_target="bench")
    return len(series) * len(times)


def registry(tmp: Path) -> Registry:
    reg = Registry(Store(tmp / "db"))
    for ns in ("tutorial", SYNTH_NS):
        reg.ensure_namespace(ns)
    vs, dr = by_kind("networking.istio.io", "VirtualService"), by_kind("networking.istio.io", "DestinationRule")
    assert vs is not None and dr is not None
    reg.create(dr, "v1", "tutorial", {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "reviews", "namespace": "tutorial"},
        "spec": {"host": "reviews", "subsets": [{"name": v, "labels": {"version": v}} for v in ("v1", "v2", "v3")]}})
    reg.create(vs, "v1", "tutorial", {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "tutorial"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [
            {"destination": {"host": "reviews", "subset": "v2"}, "weight": 90},
            {"destination": {"host": "reviews", "subset": "v3"}, "weight": 10}]}]}})
    return reg


def _get(url: str) -> Any:
    return urllib.request.urlopen(urllib.request.Request(url, headers=BEARER), timeout=60)


def _answers(url: str) -> bool:
    try:
        return timed_get(url) >= 0
    except OSError:  # not listening yet
        return False


def timed_get(url: str) -> float:
    t0 = time.perf_counter()
    with _get(url) as r:
        r.read()
        assert r.status == 200
    return (time.perf_counter() - t0) * 1000


def api_rows(base: str, ns: str) -> list[tuple[str, float, float, float, int]]:
    """Per graph type: the first (cold: chunks not yet decoded) call, then the median and worst of RUNS."""
    rows = []
    for gt in ("versionedApp", "workload", "app", "service"):
        url = f"{base}/api/namespaces/{ns}/graph?graphType={gt}&duration=1h"
        t0 = time.perf_counter()
        with _get(url) as r:
            body = json.loads(r.read())
        first = (time.perf_counter() - t0) * 1000
        edges = len(body["elements"]["edges"])
        times = [timed_get(url) for _ in range(RUNS)]
        rows.append((gt, first, statistics.median(times), max(times), edges))
    return rows


def page_numbers(base: str) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = b.new_page(viewport={"width": 1400, "height": 900})
        page.add_init_script("""
          window.__longest = 0;
          new PerformanceObserver(l => { for (const e of l.getEntries())
            window.__longest = Math.max(window.__longest, e.duration); }).observe({type: 'longtask', buffered: true});
        """)
        t0 = time.perf_counter()
        # The address with a login token, as `sluice console` prints it: the console sets its session cookie.
        page.goto(f"{base}/graph?namespace={SYNTH_NS}&graphType=versionedApp&duration=3600&refresh=0&token={TOKEN}")
        page.wait_for_function("document.querySelector('[data-testid=graph]')?.dataset.updated >= 1", timeout=60_000)
        out["first"] = (time.perf_counter() - t0) * 1000
        g = page.evaluate("window.sluiceGraph()")
        out["nodes"], out["edges"] = len(g["nodes"]), len(g["edges"])
        redraws, longest = [], []
        refresh = page.locator("[data-testid=refresh-button]")
        for _ in range(5):
            n = int(page.locator("[data-testid=graph]").get_attribute("data-updated") or "0")
            page.evaluate("window.__longest = 0")
            t0 = time.perf_counter()
            refresh.click()
            page.wait_for_function(f"document.querySelector('[data-testid=graph]').dataset.updated > {n}")
            redraws.append((time.perf_counter() - t0) * 1000)
            longest.append(float(page.evaluate("window.__longest")))
        out["redraw"] = statistics.median(redraws)
        out["longest_task"] = max(longest)
        # A click on a node (its rendered position, as a user would) until the side panel names it.
        clicks = []
        g = page.evaluate("window.sluiceGraph()")
        box = page.locator("[data-testid=graph]").bounding_box()
        assert box is not None
        inside = [n for n in g["nodes"] if n.get("nodeType") == "app" and n.get("version")
                  and 0 < n["renderedX"] < box["width"] and 0 < n["renderedY"] < box["height"]]
        for node in inside[:5]:
            t0 = time.perf_counter()
            page.mouse.click(box["x"] + node["renderedX"], box["y"] + node["renderedY"])
            page.locator("[data-testid=graph-side-panel]").get_by_text(node["app"], exact=False).first.wait_for()
            clicks.append((time.perf_counter() - t0) * 1000)
        out["click"] = statistics.median(clicks) if clicks else None
        b.close()
    return out


def main() -> None:
    if not (STATIC / "index.html").is_file():
        sys.exit("the console UI is not built: run `make ui` first")
    tmp = Path(tempfile.mkdtemp(prefix="sluice-console-bench-"))
    end_ms = (int(time.time() * 1000) // STEP_MS) * STEP_MS
    tsdb = TSDB(None)
    demo, times = generate(end_ms)
    for i, t in enumerate(times):
        tsdb.append(t, ((labels, vals[i]) for labels, vals in demo), scrape_target="demo")
    synth = synthetic_series()
    synth_samples = fill(tsdb, synth, end_ms, SYNTH_STEP_MS)
    reg = registry(tmp)
    port = free_port()
    auth = ConsoleAuth.for_home(tmp, TOKEN, port)
    serve(console_app(reg, lambda expr: Engine(tsdb).instant(expr, end_ms), auth=auth, static_dir=STATIC), port)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(f"{base}/api/namespaces"), timeout=30, interval=0.2)
    demo_rows = api_rows(base, "tutorial")
    synth_rows = api_rows(base, SYNTH_NS)
    page = page_numbers(base)

    print("## Console (`bench/console_bench.py`)\n")
    print(f"Graph API (`/api/namespaces/<ns>/graph?duration=1h`), median and worst of {RUNS} HTTP round trips on "
          f"loopback. The demo mesh: Bookinfo's edges, both reporters, one sample every 5 s for the hour "
          f"({len(demo):,} series, {len(demo) * len(times):,} samples). The synthetic namespace: 100 workloads "
          f"({len(synth):,} series, one sample every 15 s, {synth_samples:,} samples). Target: under 200 ms for the "
          "demo mesh.\n")
    print("| namespace | graph type | edges | first call ms | median ms | worst ms |")
    print("|---|---|---:|---:|---:|---:|")
    for ns, rows in (("tutorial (demo)", demo_rows), ("synthetic (100 workloads)", synth_rows)):
        for gt, first, med, worst, edges in rows:
            print(f"| {ns} | {gt} | {edges} | {first:.0f} | {med:.0f} | {worst:.0f} |")
    print("\nThe first call of a graph type decodes the hour's chunks (the versioned-app graph comes first, so it pays "
          "for the rest); later calls, like the page's refreshes, find them decoded.")
    click = f"{page['click']:.0f} ms" if page["click"] is not None else "not measured"
    print(f"\nThe graph page in headless Chromium (Debian's, via Playwright) with the synthetic namespace "
          f"({page['nodes']} nodes, {page['edges']} edges drawn, versioned-app graph, 1 h window): first graph "
          f"drawn {page['first']:.0f} ms after navigation (includes the API call and the dagre layout); a refresh "
          f"redraws in {page['redraw']:.0f} ms (median of 5, mostly the API call), the main thread's longest task "
          f"during it {page['longest_task']:.0f} ms (0: none over the browser's 50 ms long-task threshold); a click on a node shows its side panel in {click}.")


if __name__ == "__main__":
    main()
