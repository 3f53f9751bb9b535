"""The story's PromQL, verbatim, against the embedded store — and the same queries against a stock Prometheus
(Debian's) scraping the same mesh. Counts are checked against the requests actually sent and answered."""

from __future__ import annotations

import json
import math
import subprocess
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.conftest import TOOLS, Daemon, free_port, stop_daemon, wait_for
from tests.e2e.mesh import (
    api_client,
    healthy_endpoints,
    pod,
    pod_ips,
    reviews_version,
    route_weights,
    start_story_mesh,
    via,
)
from tests.story import STORY_VS

NS = "tutorial"
Q_ALL = ('istio_requests_total{destination_service_namespace="tutorial", reporter="destination",'
         'destination_service_name="reviews"}')
Q_V2 = ('sum(istio_requests_total{destination_service_namespace="tutorial", reporter="destination",'
        'destination_service_name="reviews", destination_version="v2"})')
Q_V3 = Q_V2.replace('"v2"', '"v3"')
Q_SUM = f"{Q_V2} + {Q_V3}"


def prom_query(base: str, expr: str, at: float | None = None) -> dict[str, Any]:
    params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return dict(body["data"])


def scalar_of(data: dict[str, Any]) -> float | None:
    result = data["result"]
    if data["resultType"] == "scalar":
        return float(result[1])
    return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Path]]:
    tmp = tmp_path_factory.mktemp("metrics")
    d = start_story_mesh(tmp, config="scrape_interval: 1\n", extra=[STORY_VS])
    try:
        yield d, tmp
    finally:
        stop_daemon(d)


def _base(d: Daemon) -> str:
    run = json.loads((d.home / "daemon.json").read_text())
    return f"http://127.0.0.1:{run['metrics_port']}"


def test_story_queries_count_exactly_the_requests_sent(mesh: tuple[Daemon, Path]) -> None:
    d, _ = mesh
    core = client.CoreV1Api(api_client(d))
    sleep_ip = pod_ips(core, NS, "app=sleep")[0]
    sleep = pod(d, sleep_ip)
    wait_for(lambda: route_weights(sleep) == {"v2": 90, "v3": 10}, timeout=30)
    # …and the subsets' endpoints with it (EDS may follow the route by a push): every request below must land.
    subsets = [f"outbound|9080|{v}|reviews.{NS}.svc.cluster.local" for v in ("v2", "v3")]
    wait_for(lambda: all(healthy_endpoints(sleep, c) > 0 for c in subsets), timeout=30)
    answered: Counter[str] = Counter()
    for _ in range(300):
        code, body = via(sleep_ip, "http://reviews:9080/reviews/0")
        assert code == 200
        answered[reviews_version(body)] += 1
    base = _base(d)
    # Envoy flushes access logs about every second and the store samples every second: wait for both.
    wait_for(lambda: scalar_of(prom_query(base, Q_SUM)) == 300.0, timeout=30, interval=0.5)
    assert scalar_of(prom_query(base, Q_V2)) == answered["v2"]
    assert scalar_of(prom_query(base, Q_V3)) == answered["v3"]
    series = prom_query(base, Q_ALL)["result"]
    assert {s["metric"]["destination_version"] for s in series} == {"v2", "v3"}
    labels = series[0]["metric"]
    for name in ("source_workload", "source_app", "destination_workload", "destination_app", "response_code",
                 "response_flags", "request_protocol", "connection_security_policy", "destination_principal",
                 "source_canonical_service", "destination_canonical_revision", "destination_service"):
        assert name in labels, name
    assert labels["source_workload"] == "sleep" and labels["destination_app"] == "reviews"
    assert labels["destination_service"] == "reviews.tutorial.svc.cluster.local"


def test_stock_prometheus_agrees(mesh: tuple[Daemon, Path]) -> None:
    d, tmp = mesh
    base = _base(d)
    port = free_port()
    cfg = tmp / "prometheus.yml"
    cfg.write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sluice
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:{base.rsplit(':', 1)[1]}"]
""")
    prom = subprocess.Popen([str(TOOLS / "prometheus"), f"--config.file={cfg}", f"--storage.tsdb.path={tmp}/prom",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    other = f"http://127.0.0.1:{port}"
    try:
        core = client.CoreV1Api(api_client(d))
        sleep_ip = pod_ips(core, NS, "app=sleep")[0]

        def scraped() -> bool:
            try:
                return scalar_of(prom_query(other, Q_SUM)) is not None
            except OSError:
                return False

        wait_for(scraped, timeout=60, interval=0.5)
        # Let the stock Prometheus build up 20 s of history, so rate() windows below hold the same data in both.
        wait_for(lambda: (scalar_of(prom_query(other, "count_over_time(up[1m])")) or 0) >= 22, timeout=60,
                 interval=0.5)
        for _ in range(200):
            assert via(sleep_ip, "http://reviews:9080/reviews/0")[0] == 200
        # Both stores must have caught up with the same final counters (traffic has stopped).
        wait_for(lambda: scalar_of(prom_query(other, Q_SUM)) == scalar_of(prom_query(base, Q_SUM)) == 500.0,
                 timeout=30, interval=0.5)
        time.sleep(3)  # a few more scrapes of the now-constant counters, so rate() windows hold equal data
        at = time.time()
        exprs = [
            Q_V2, Q_V3, Q_SUM,
            'sum by (destination_version) (istio_requests_total{reporter="destination",destination_service_name="reviews"})',
            'sum(rate(istio_requests_total{reporter="source",source_workload="sleep"}[20s]))',
            'sum by (destination_workload) (increase(istio_requests_total{reporter="destination"}[20s]))',
            'histogram_quantile(0.5, sum by (le) (istio_request_duration_milliseconds_bucket{reporter="destination"}))',
            'count(istio_requests_total)',
        ]
        for expr in exprs:
            ours, theirs = prom_query(base, expr, at), prom_query(other, expr, at)

            def table(data: dict[str, Any]) -> dict[str, float]:
                if data["resultType"] == "scalar":
                    return {"": float(data["result"][1])}
                return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in data["result"]}

            a, b = table(ours), table(theirs)
            assert a.keys() == b.keys(), (expr, a, b)
            for k in a:
                # rate()/increase() extrapolate from samples taken at slightly different scrape times in the two
                # stores: allow 15 %; everything else must agree exactly.
                tol = 0.15 if "rate(" in expr or "increase(" in expr else 1e-9
                assert math.isclose(a[k], b[k], rel_tol=tol, abs_tol=1e-9), (expr, k, a[k], b[k])
    finally:
        prom.terminate()
        prom.wait(10)


def test_sluice_query_and_stat(mesh: tuple[Daemon, Path]) -> None:
    d, _ = mesh
    import sys

    sluice = str(Path(sys.executable).parent / "sluice")
    cp = subprocess.run([sluice, "query", Q_V2], env=d.env, capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    assert lines[0].split() == ["METRIC", "VALUE"] and float(lines[1].split()[-1]) > 0
    cp = subprocess.run([sluice, "query", "sum(", "-o", "json"], env=d.env, capture_output=True, text=True)
    assert cp.returncode == 1 and "bad_data" in cp.stderr and "parse error" in cp.stderr
    cp = subprocess.run([sluice, "stat", "-n", NS, "--window", "5m"], env=d.env, capture_output=True, text=True,
                        timeout=60)
    assert cp.returncode == 0, cp.stderr
    rows = {line.split()[0]: line.split() for line in cp.stdout.splitlines()}
    assert rows["NAME"] == ["NAME", "MESHED", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99"]
    assert rows["reviews-v2"][1] == "1/1" and rows["reviews-v2"][2] == "100.00%"
    assert rows["reviews-v2"][3].endswith("rps") and rows["reviews-v2"][4].endswith("ms")


def test_console_graph_shows_the_split(mesh: tuple[Daemon, Path]) -> None:
    d, _ = mesh
    base = _base(d)
    core = client.CoreV1Api(api_client(d))
    sleep_ip = pod_ips(core, NS, "app=sleep")[0]
    # rate() counts a counter's increase from its first stored sample on, as Prometheus's does: requests made
    # before a series' first sample are not in any window holding that sample (a burst faster than the scrape
    # interval can put 272 of 300 requests there, and the split read 76/24). So the graph is read over a window
    # that starts after both versions' series exist and have been sampled, holding only the traffic sent here.
    def sampled() -> bool:
        if {s["metric"].get("destination_version") for s in prom_query(base, Q_ALL)["result"]} >= {"v2", "v3"}:
            return True
        for _ in range(10):
            assert via(sleep_ip, "http://reviews:9080/reviews/0")[0] == 200
        return False

    wait_for(sampled, timeout=60, interval=1)
    start = time.time()
    # A sample after `start`, so that the window below begins after every series' first one.
    wait_for(lambda: min(float(s["value"][0]) for s in prom_query(base, f"timestamp({Q_ALL})")["result"]) > start,
             timeout=30, interval=0.5)
    before = scalar_of(prom_query(base, Q_SUM)) or 0.0
    baseline = counted = {v: scalar_of(prom_query(base, q)) or 0.0 for v, q in (("v2", Q_V2), ("v3", Q_V3))}
    for _ in range(200):
        assert via(sleep_ip, "http://reviews:9080/reviews/0")[0] == 200
    wait_for(lambda: scalar_of(prom_query(base, Q_SUM)) == before + 200, timeout=30, interval=0.5)
    # what the destination counters say the 200 did, for the failure message
    counted = {v: (scalar_of(prom_query(base, q)) or 0.0) - counted[v] for v, q in (("v2", Q_V2), ("v3", Q_V3))}

    run = json.loads((d.home / "daemon.json").read_text())
    req_headers = {"Authorization": f"Bearer {d.token}"}  # a script's credential: the kubeconfig's bearer token
    share: dict[str, float] = {}
    edges: list[tuple[str, str, dict[str, str]]] = []

    def split() -> bool:
        # reviews has more than one caller (sleep here, productpage when other tests go through it), and each
        # edge's httpPercentReq is a share of its own source's requests: the split is the edges' request rates
        # into each version, summed. 200 requests at 90/10 fall outside 80–97 with a chance below 1 in 1,000.
        window = math.ceil(time.time() - start)
        url = (f"http://127.0.0.1:{run['console_port']}/api/namespaces/{NS}/graph?graphType=versionedApp"
               f"&duration={window}s")
        with urllib.request.urlopen(urllib.request.Request(url, headers=req_headers), timeout=30) as r:
            graph = json.loads(r.read())
        nodes = {n["data"]["id"]: n["data"] for n in graph["elements"]["nodes"]}
        rates = {"v2": 0.0, "v3": 0.0}
        edges.clear()
        for e in graph["elements"]["edges"]:
            target = nodes[e["data"]["target"]]
            if target.get("app") == "reviews" and target.get("version") in rates:
                rates[target["version"]] += float(e["data"]["traffic"]["rates"].get("http") or 0)
                edges.append((nodes[e["data"]["source"]].get("workload") or e["data"]["source"], target["version"],
                              e["data"]["traffic"]["rates"]))
        total = sum(rates.values())
        share.clear()
        share.update({v: 100 * r / total for v, r in rates.items()} if total else {})
        return bool(share) and 80 < share["v2"] < 97

    try:
        wait_for(split, timeout=30, interval=2)
    except AssertionError as e:
        # What the store says now, for the cause: the counters' growth since the 200 began (a late count shows
        # here, not in `counted`) and each reporter's rate by version over the graph's window.
        now_counted = {v: (scalar_of(prom_query(base, q)) or 0.0) - baseline[v] for v, q in (("v2", Q_V2),
                                                                                              ("v3", Q_V3))}
        window = math.ceil(time.time() - start)
        rates = {rep: {r["metric"].get("destination_version"): round(float(r["value"][1]), 3) for r in prom_query(
            base, f'sum by (destination_version) (rate(istio_requests_total{{reporter="{rep}",'
                  f'destination_service_name="reviews",destination_service_namespace="{NS}"}}[{window}s]))')["result"]}
            for rep in ("source", "destination")}
        raise AssertionError(f"the graph's split into reviews: {share}, over its edges {edges}; the 200 requests "
                             f"by the destination counters: {counted} when counted, {now_counted} now; rates "
                             f"over {window}s by reporter: {rates}") from e


def test_deleted_workload_series_go_stale_but_history_stays(mesh: tuple[Daemon, Path]) -> None:
    d, tmp = mesh
    base = _base(d)
    q = 'istio_requests_total{reporter="destination",destination_workload="reviews-v2"}'
    assert prom_query(base, q)["result"]
    subprocess.run([str(TOOLS / "kubectl-1.35"), f"--cache-dir={tmp}/kc", "-n", NS, "delete", "deployment",
                    "reviews-v2"], env=d.env, check=True, capture_output=True)
    # A stale marker ends the series at once, not after the 5-minute lookback.
    wait_for(lambda: prom_query(base, q)["result"] == [], timeout=90, interval=1)
    history = prom_query(base, f"max_over_time({q}[10m])")["result"]
    assert history and all(float(r["value"][1]) > 0 for r in history)
