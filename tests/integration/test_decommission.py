"""`sluice rollouts decommission`: the seed story's last step ("check that reviews v2 gets no more requests,
then remove it") with a proof. Istio's helloworld v1/v2 sample and the sleep client (loopback mode): while v2
gets traffic the command refuses and changes nothing; once the VirtualService sends everything to v1 and a
window passes without a request to v2, it scales helloworld-v2 to 0 and keeps the proof (annotation, Event)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import TOOLS, start_daemon, stop_daemon, wait_for
from tests.integration.cli_helpers import Sluice
from tests.integration.netns.test_istio_samples import HELLOWORLD, SLEEP, Kube

ROUTING = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: helloworld
spec:
  host: helloworld
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts: [helloworld]
  http:
  - route:
    - destination: {host: helloworld, subset: %s}
"""

# A bounded stream of requests from the sleep pod (two minutes at most) that ends at its first failed request:
# the test ends it by making the client's sidecar abort every request (ABORT).
TRAFFIC = ("for i in $(seq 600); do curl -sf -o /dev/null http://helloworld:5000/hello || break; sleep 0.2; done")
ABORT = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts: [helloworld]
  http:
  - fault:
      abort: {percentage: {value: 100}, httpStatus: 503}
    route:
    - destination: {host: helloworld, subset: v1}
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    d = start_daemon(tmp_path_factory.mktemp("decommission-home"), network="loopback")
    k = Kube(d)
    try:
        for manifest in (SLEEP, HELLOWORLD):
            k("apply", "-f", "-", input=manifest)
        k("wait", "--for=condition=Available", "deployment", "--all", "--timeout=180s")
        yield k
    finally:
        stop_daemon(d)


def _v2_inbound_lines(k: Kube) -> int:
    out = k("logs", "-l", "app=helloworld,version=v2", "-c", "istio-proxy", "--tail=-1")
    return sum("inbound|" in line for line in out.splitlines())


def _replicas(k: Kube) -> int:
    return int(json.loads(k("get", "deployment", "helloworld-v2", "-o", "json"))["spec"]["replicas"])


def test_busy_version_is_refused_then_idle_version_is_scaled_down(mesh: Kube) -> None:
    sluice = Sluice(mesh.d.env)
    mesh("apply", "-f", "-", input=ROUTING % "v2")
    traffic = subprocess.Popen([str(TOOLS / "kubectl-1.35"), "exec", "deploy/sleep", "--", "sh", "-c", TRAFFIC],
                               env=mesh.d.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _v2_inbound_lines(mesh) >= 3, timeout=60)  # the traffic reaches v2
        busy = sluice("rollouts", "decommission", "deployment/helloworld-v2", "--window", "10s", "--timeout", "3s")
        assert busy.returncode == 1, busy.stdout + busy.stderr
        assert "Traceback" not in busy.stderr
        assert "helloworld-v2 is not idle over the last 10s" in busy.stderr, busy.stderr
        assert "inbound access-log line(s)" in busy.stderr, busy.stderr
        assert _replicas(mesh) == 1
        mesh("apply", "-f", "-", input=ABORT)
        traffic.wait(timeout=60)
    finally:
        if traffic.poll() is None:
            traffic.kill()
            traffic.wait()

    mesh("apply", "-f", "-", input=ROUTING % "v1")
    out = sluice.ok("rollouts", "decommission", "deployment/helloworld-v2", "--window", "10s", "--timeout", "3m")
    assert "deployment.apps/helloworld-v2 scaled to 0" in out, out
    assert "access log of helloworld-v2-" in out, out
    assert _replicas(mesh) == 0
    proof = json.loads(json.loads(mesh("get", "deployment", "helloworld-v2", "-o", "json"))
                       ["metadata"]["annotations"]["sluice.dev/decommission-proof"])
    assert proof["idle"] is True and proof["window"]["seconds"] == 10
    # The metrics saw v2's earlier requests: the proof's queries are about the right series.
    assert any("istio_requests_total" in m["query"] for m in proof["metrics"])
    events = json.loads(mesh("get", "events", "--field-selector", "reason=DecommissionProven", "-o", "json"))
    assert [e["involvedObject"]["name"] for e in events["items"]] == ["helloworld-v2"]
    # the Event tells the whole proof: its window and each query with its answer
    message = events["items"][0]["message"]
    assert "window " in message and "(10s)" in message, message
    assert all(f"{m['query']} = " in message for m in proof["metrics"]), message


def test_metrics_count_the_requests_the_proof_relies_on(mesh: Kube) -> None:
    """The proof's witnesses are not vacuous: the series they select (same selector) counted v2's requests."""
    import re

    from sluice.client.prometheus import PromClient, prometheus_url
    from sluice.daemon.state import Home
    from sluice.rollouts.decommission import idle_queries

    _what, query = idle_queries("default", "helloworld-v2", 60)[0]
    selector = re.search(r"istio_requests_total\{[^}]*\}", query)
    assert selector is not None, query
    prom = PromClient(prometheus_url(Home(mesh.d.home)))

    def counted() -> bool:
        result = prom.query(f"sum({selector.group(0)})").get("result") or []
        return bool(result) and float(result[0]["value"][1]) > 0

    wait_for(counted, timeout=30)
