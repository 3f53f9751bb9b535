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

from tests.conftest import TOOLS, Daemon, free_port, start_daemon, stop_daemon, wait_for
from tests.e2e.mesh import (
    SAMPLES,
    api_client,
    deployments_ready,
    pod_ips,
    reviews_version,
    route_weights,
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


def prom_query(base: str, expr: str) -> dict[str, Any]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
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
    home = tmp / "home"
    home.mkdir()
    metrics_port = free_port()
    (home / "config.yaml").write_text(f"metrics_port: {metrics_port}\nscrape_interval: 1\n")
    d = start_daemon(home)
    kube = [str(TOOLS / "kubectl-1.35"), f"--cache-dir={tmp}/kc", "-n", NS]
    try:
        subprocess.run([*kube, "create", "namespace", NS], env=d.env, capture_output=True)
        for f in ("bookinfo.yaml", "destination-rule-all.yaml", "sleep.yaml"):
            subprocess.run([*kube, "apply", "-f", str(SAMPLES / f)], env=d.env, check=True, capture_output=True)
        subprocess.run([*kube, "apply", "-f", "-"], input=STORY_VS, env=d.env, check=True, capture_output=True,
                       text=True)
        apps = client.AppsV1Api(api_client(d))
        wait_for(lambda: deployments_ready(apps, NS), timeout=120, interval=0.25)
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
    wait_for(lambda: route_weights(sleep_ip) == {"v2": 90, "v3": 10}, timeout=30)
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
        for _ in range(200):
            assert via(sleep_ip, "http://reviews:9080/reviews/0")[0] == 200
        # Both stores must have caught up with the same final counters (traffic has stopped).
        wait_for(lambda: scalar_of(prom_query(other, Q_SUM)) == scalar_of(prom_query(base, Q_SUM)) == 500.0,
                 timeout=30, interval=0.5)
        time.sleep(3)  # a few more scrapes of the now-constant counters, so rate() windows hold equal data
        exprs = [
            Q_V2, Q_V3, Q_SUM,
            'sum by (destination_version) (istio_requests_total{reporter="destination",destination_service_name="reviews"})',
            'sum(rate(istio_requests_total{reporter="source",source_workload="sleep"}[1m]))',
            'histogram_quantile(0.5, sum by (le) (istio_request_duration_milliseconds_bucket{reporter="destination"}))',
            'count(istio_requests_total)',
        ]
        for expr in exprs:
            ours, theirs = prom_query(base, expr), prom_query(other, expr)

            def table(data: dict[str, Any]) -> dict[str, float]:
                if data["resultType"] == "scalar":
                    return {"": float(data["result"][1])}
                return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in data["result"]}

            a, b = table(ours), table(theirs)
            assert a.keys() == b.keys(), (expr, a, b)
            for k in a:
                # rate() windows see samples at slightly different scrape times: allow 10 %; the rest is exact.
                tol = 0.10 if "rate(" in expr else 1e-9
                assert math.isclose(a[k], b[k], rel_tol=tol, abs_tol=1e-9), (expr, k, a[k], b[k])
    finally:
        prom.terminate()
        prom.wait(10)
