"""`sluice rollouts controller` run outside the daemon (a daemon started with --no-rollouts-controller, reached
only through its kubeconfig): killed mid-rollout and started again, it carries on from the Rollout's status;
its analysis asks a stock Prometheus (`.tools/bin/prometheus`) that scrapes the daemon's `/metrics`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from sluice.daemon.state import Home
from tests.conftest import TOOLS, Daemon, free_port, start_daemon, stop_daemon, wait_for
from tests.integration.rollouts.helpers import (
    NS,
    events,
    get,
    kubectl,
    promote,
    rollout,
    rollout_status,
    subset_setup,
    vs_weights,
)

pytestmark = pytest.mark.kubectl

STEPS = """      - setWeight: 20
      - pause: {}
      - setWeight: 50
      - pause: {}
      - setWeight: 100
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("rollouts-restart"), extra=["--no-rollouts-controller"])
    kubectl(d, "create", "namespace", NS)
    yield d
    stop_daemon(d)


def controller(d: Daemon, prometheus_url: str = "", metrics_port: int = 0) -> subprocess.Popen[bytes]:
    metrics = (Home(d.home).read_run() or {})["metrics_port"]
    log = open(d.home / "controller.log", "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen([sys.executable, "-m", "sluice.cli", "rollouts", "controller", "--kubeconfig",
                             str(d.kubeconfig), "--prometheus-url", prometheus_url or f"http://127.0.0.1:{metrics}",
                             "--resync", "5", "--metricsport", str(metrics_port)],
                            env=d.env, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def controller_metrics_port() -> int:
    return free_port()


def prom_query(base: str, promql: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{base}/api/v1/query?query={urllib.parse.quote(promql)}", timeout=5) as r:
        return list(json.loads(r.read())["data"]["result"])


@pytest.fixture
def stock_prometheus(daemon: Daemon, controller_metrics_port: int) -> Iterator[str]:
    """A stock Prometheus scraping the daemon's /metrics every second, and the controller's at
    `controller_metrics_port` (job `argo-rollouts`); its base URL once it has scraped the daemon."""
    if not (TOOLS / "prometheus").exists():
        pytest.skip("no .tools/bin/prometheus")
    metrics = (Home(daemon.home).read_run() or {})["metrics_port"]
    port = free_port()
    cfg = daemon.home / "prometheus.yml"
    cfg.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: sluice
    static_configs: [{{targets: ["127.0.0.1:{metrics}"]}}]
  - job_name: argo-rollouts
    static_configs: [{{targets: ["127.0.0.1:{controller_metrics_port}"]}}]
""")
    prom = subprocess.Popen([str(TOOLS / "prometheus"), f"--config.file={cfg}",
                             f"--storage.tsdb.path={daemon.home}/prom", f"--web.listen-address=127.0.0.1:{port}",
                             "--log.level=warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def scraped() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/api/v1/query?query=up%7Bjob%3D%22sluice%22%7D", timeout=5) as r:
                return bool(json.loads(r.read())["data"]["result"])
        except OSError:
            return False

    try:
        wait_for(scraped, timeout=60, interval=0.5)
        yield base
    finally:
        prom.terminate()
        prom.wait(20)


def test_a_restarted_controller_resumes_from_the_status(daemon: Daemon) -> None:
    d = daemon
    kubectl(d, "apply", "-f", "-", input=subset_setup("api"))
    kubectl(d, "apply", "-f", "-", input=rollout("api", STEPS, "v1"))
    first = controller(d)
    try:
        wait_for(lambda: rollout_status(d, "api").get("phase") == "Healthy", timeout=60)
        kubectl(d, "apply", "-f", "-", input=rollout("api", STEPS, "v2"))
        wait_for(lambda: rollout_status(d, "api").get("phase") == "Paused", timeout=60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    v2 = rollout_status(d, "api")["currentPodHash"]
    assert vs_weights(d, "api") == {"stable": 80, "canary": 20}
    promote(d, "api")  # while no controller runs

    second = controller(d)
    try:
        wait_for(lambda: rollout_status(d, "api").get("currentStepIndex") == 3
                 and rollout_status(d, "api").get("phase") == "Paused", timeout=60)
        assert vs_weights(d, "api") == {"stable": 50, "canary": 50}
        st = rollout_status(d, "api")
        assert st["currentPodHash"] == v2 and st["canary"]["weights"]["canary"]["weight"] == 50
        rss = json.loads(kubectl(d, "get", "rs", "-l", "app=api", "-o", "json").stdout)["items"]
        assert sorted(rs["metadata"]["annotations"]["rollout.argoproj.io/revision"] for rs in rss) == ["1", "2"]
        assert get(d, "rollout", "api")["metadata"]["annotations"]["rollout.argoproj.io/revision"] == "2"
        created = [m for r, m in events(d, "api") if r == "NewReplicaSetCreated"]
        assert len(created) == 2, created
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0  # stops cleanly on SIGTERM


def test_analysis_through_a_stock_prometheus(daemon: Daemon, stock_prometheus: str,
                                            controller_metrics_port: int) -> None:
    """The template names no address: the controller's --prometheus-url (the stock Prometheus) answers; the same
    Prometheus scrapes the controller's own metrics, as Argo's."""
    d = daemon
    kubectl(d, "apply", "-f", "-", input="""
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: scraped}
spec:
  args: [{name: job}]
  metrics:
  - name: target-up
    successCondition: len(result) == 1 && result[0] == 1
    provider:
      prometheus:
        query: up{job="{{args.job}}"}
""")
    steps = """      - setWeight: 50
      - analysis:
          templates: [{templateName: scraped}]
          args: [{name: job, value: sluice}]
      - setWeight: 100
"""
    kubectl(d, "apply", "-f", "-", input=subset_setup("pay"))
    kubectl(d, "apply", "-f", "-", input=rollout("pay", steps, "v1"))
    proc = controller(d, stock_prometheus, controller_metrics_port)
    try:
        wait_for(lambda: rollout_status(d, "pay").get("phase") == "Healthy", timeout=60)
        v1 = rollout_status(d, "pay")["stableRS"]
        kubectl(d, "apply", "-f", "-", input=rollout("pay", steps, "v2"))
        wait_for(lambda: rollout_status(d, "pay").get("currentPodHash") not in (None, v1), timeout=30)
        v2 = rollout_status(d, "pay")["currentPodHash"]
        wait_for(lambda: rollout_status(d, "pay").get("stableRS") == v2
                 and rollout_status(d, "pay").get("phase") == "Healthy", timeout=90)
        run = get(d, "analysisrun", f"pay-{v2}-2-1")
        assert run["status"]["phase"] == "Successful"
        (m,) = run["status"]["metricResults"]
        assert m["measurements"][0]["value"] == "[1]"
        assert m["metadata"]["ResolvedPrometheusQuery"] == 'up{job="sluice"}'
        assert ("RolloutStepCompleted", "Rollout step 2/3 completed (analysis)") in events(d, "pay")

        # Argo's controller metrics, scraped and parsed by the stock Prometheus
        wait_for(lambda: prom_query(stock_prometheus, 'rollout_info{job="argo-rollouts",name="pay",'
                                                      'phase="Completed",strategy="canary",traffic_router="Istio"}'),
                 timeout=30, interval=0.5)
        wait_for(lambda: prom_query(stock_prometheus, f'analysis_run_metric_phase{{name="pay-{v2}-2-1",'
                                    'metric="target-up",type="Prometheus",phase="Successful"} == 1'),
                 timeout=30, interval=0.5)
        assert prom_query(stock_prometheus, 'sum(rollout_reconcile_count{job="argo-rollouts",name="pay"}) > 0')
        assert prom_query(stock_prometheus, 'controller_clientset_k8s_request_total{kind="rollouts",verb="List"}')
        assert prom_query(stock_prometheus, 'rollout_events_total{name="pay",reason="RolloutCompleted"}')
        # a page that points its own name at 127.0.0.1 is refused (DNS rebinding)
        req = urllib.request.Request(f"http://127.0.0.1:{controller_metrics_port}/metrics",
                                     headers={"Host": "attacker.example"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=5)
        assert refused.value.code == 403
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
