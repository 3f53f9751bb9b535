"""Istio's "Accessing External Services" task on a netns-mode daemon, with the task's commands.

The "external" service is kennethreitz/httpbin in namespace `external`, without a sidecar and without a
Service (nothing in the mesh's registry knows it): the test's stand-in for httpbin.org, reached by its pod's
DNS name (`a-b-c-d.external.pod.cluster.local`, a name the cluster DNS answers) or, once a ServiceEntry
names it, as `httpbin.example.org` (a reserved name: nothing outside this machine is ever asked). Checked as
the task checks it: passthrough under ALLOW_ANY, 502 under REGISTRY_ONLY (switched in the `istio`
ConfigMap as the task's `kubectl get configmap istio … | sed … | kubectl replace` does), a ServiceEntry
(STATIC, then DNS) making the host reachable again, the sidecar's log naming `outbound|80||<host>`, the
metrics labelling the external destination as Istio does, and a VirtualService timeout on the host. Then
the egress gateway task's HTTP part: the sample egress gateway, a Gateway, DestinationRule and VirtualService
sending mesh traffic for the host through the gateway.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import Daemon, start_daemon, stop_daemon, wait_for
from tests.integration.netns.kube import Kube
from tests.integration.netns.test_istio_samples import (
    SLEEP,  # samples/sleep/sleep.yaml, as the task applies it
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="netns mode needs root")
EGRESS_CONTROL = pytest.mark.istio_task("traffic-management/egress/egress-control", "Accessing External Services")

# The external server: outside the mesh (no sidecar) and outside its registry (no Service).
EXTERNAL = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: httpbin
  namespace: external
spec:
  replicas: 1
  selector:
    matchLabels:
      app: httpbin
  template:
    metadata:
      labels:
        app: httpbin
      annotations:
        sidecar.istio.io/inject: "false"
    spec:
      containers:
      - name: httpbin
        image: docker.io/kennethreitz/httpbin
        ports:
        - containerPort: 80
        readinessProbe:
          tcpSocket:
            port: 80
          periodSeconds: 1
"""

# Istio's install ships the mesh config in this ConfigMap; the task's older form edits it in place.
MESH_CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |-
    accessLogFile: /dev/stdout
    outboundTrafficPolicy:
      mode: ALLOW_ANY
"""

SERVICE_ENTRY_STATIC = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin-ext
spec:
  hosts:
  - httpbin.example.org
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: STATIC
  location: MESH_EXTERNAL
  endpoints:
  - address: {ip}
"""

SERVICE_ENTRY_DNS = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin-dns
spec:
  hosts:
  - httpbin-dns.example.org
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: DNS
  location: MESH_EXTERNAL
  endpoints:
  - address: {name}
"""

VIRTUAL_SERVICE_TIMEOUT = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin-ext
spec:
  hosts:
  - httpbin.example.org
  http:
  - timeout: 3s
    route:
    - destination:
        host: httpbin.example.org
      weight: 100
"""


# `dig +tcp +short NAME` against the pod's resolver (kube-dns), with the dnspython Sluice itself uses
DIG_TCP = ("import sys, dns.message, dns.query; "
           "r = dns.query.tcp(dns.message.make_query(sys.argv[1], \"A\"), \"10.96.0.10\", timeout=5); "
           "print(*[a.address for rrset in r.answer for a in rrset])")


@dataclass
class Egress:
    d: Daemon
    k: Kube
    prom: str
    source_pod: str
    external_ip: str

    @property
    def external_name(self) -> str:
        """The external pod's own DNS name (`a-b-c-d.external.pod.cluster.local`): resolvable, in no registry."""
        return f"{self.external_ip.replace('.', '-')}.external.pod.cluster.local"

    def exec_sleep(self, command: str) -> tuple[int, str]:
        """`kubectl exec "$SOURCE_POD" -c sleep -- sh -c COMMAND`: (exit code, stdout + stderr)."""
        import subprocess

        from tests.conftest import TOOLS

        cp = subprocess.run([str(TOOLS / "kubectl-1.35"), "exec", self.source_pod, "-c", "sleep", "--", "sh", "-c",
                             command], env=self.d.env, capture_output=True, text=True, timeout=60)
        return cp.returncode, cp.stdout + cp.stderr

    def eventually(self, command: str, expect: str, timeout: float = 30) -> str:
        """The command's output once it contains `expect` (a change reaches the sidecar shortly after the write)."""
        last: list[str] = [""]

        def attempt() -> bool:
            last[0] = self.exec_sleep(command)[1]
            return expect in last[0]

        try:
            wait_for(attempt, timeout=timeout, interval=0.5)
        except AssertionError:
            raise AssertionError(f"{command!r} never printed {expect!r}; last: {last[0]!r}") from None
        return last[0]

    def set_mode(self, old: str, new: str) -> None:
        """The task's `kubectl get configmap istio -n istio-system -o yaml | sed 's/mode: OLD/mode: NEW/g' |
        kubectl replace -n istio-system -f -`."""
        current = self.k("get", "configmap", "istio", "-n", "istio-system", "-o", "yaml")
        assert f"mode: {old}" in current, current
        self.k("replace", "-n", "istio-system", "-f", "-", input=current.replace(f"mode: {old}", f"mode: {new}"))

    def value(self, query: str) -> float:
        url = f"{self.prom}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(url, timeout=10) as r:
            result = json.loads(r.read())["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0

    def series(self, query: str) -> list[dict[str, str]]:
        url = f"{self.prom}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(url, timeout=10) as r:
            return [s["metric"] for s in json.loads(r.read())["data"]["result"]]


@pytest.fixture(scope="module")
def egress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Egress]:
    home = tmp_path_factory.mktemp("egress-home")
    (home / "config.yaml").write_text("scrape_interval: 0.5\n")
    d = start_daemon(home, network="netns")
    k = Kube(d)
    try:
        k("create", "namespace", "external")
        k("create", "namespace", "istio-system")
        k("apply", "-f", "-", input=MESH_CONFIGMAP)
        k("apply", "-f", "-", input=EXTERNAL)
        k("apply", "-f", "-", input=SLEEP)
        k("wait", "--for=condition=Available", "deployment", "--all", "--timeout=120s")
        k("wait", "-n", "external", "--for=condition=Available", "deployment", "--all", "--timeout=120s")
        source = k("get", "pod", "-l", "app=sleep", "-o", "jsonpath={.items..metadata.name}")
        ip = k("get", "pod", "-n", "external", "-l", "app=httpbin", "-o", "jsonpath={.items..status.podIP}")
        run = json.loads((home / "daemon.json").read_text())
        yield Egress(d, k, f"http://127.0.0.1:{run['metrics_port']}", source, ip)
    finally:
        stop_daemon(d)


@EGRESS_CONTROL
def test_egress_control_task(egress: Egress) -> None:
    e = egress
    # Envoy passthrough to external services (ALLOW_ANY, the default).
    head = f'curl -sSI http://{e.external_name}/status/200 | grep "HTTP/"'
    assert e.eventually(head, "HTTP/1.1 200 OK").strip() == "HTTP/1.1 200 OK"

    # Controlled access: REGISTRY_ONLY blocks every host the registry does not know, with Istio's 502.
    e.set_mode("ALLOW_ANY", "REGISTRY_ONLY")
    assert e.eventually(head, "HTTP/1.1 502 Bad Gateway").strip() == "HTTP/1.1 502 Bad Gateway"
    code, out = e.exec_sleep("curl -sS http://httpbin.example.org/headers")
    assert code != 0 and "Could not resolve host" in out, out  # no ServiceEntry yet: not even a name
    blocked = (f'istio_requests_total{{reporter="source",source_workload="sleep",response_code="502",'
               f'destination_service_name="BlackHoleCluster",destination_service="{e.external_name}"}}')
    wait_for(lambda: e.value(f"sum({blocked})") >= 1, timeout=30)

    # Access an external HTTP service: a ServiceEntry puts it in the registry (STATIC: its address given).
    e.k("apply", "-f", "-", input=SERVICE_ENTRY_STATIC.format(ip=e.external_ip))
    out = e.eventually("curl -sS http://httpbin.example.org/headers", '"Host": "httpbin.example.org"')
    headers = json.loads(out)["headers"]
    assert headers["User-Agent"].startswith("curl/") and "X-Envoy-Attempt-Count" in headers, headers
    # the host resolves in the pod to the address Istio's auto-allocation gives it (240.240.0.0/16)
    code, out = e.exec_sleep("getent hosts httpbin.example.org || nslookup httpbin.example.org")
    assert "240.240." in out, out
    # … which the ServiceEntry's status shows, as Istio's ip-autoallocate controller writes it
    wait_for(lambda: e.k("get", "serviceentry", "httpbin-ext", "-o", "jsonpath={.status.addresses[0].value}")
             == out.split()[0], timeout=30)
    # DNS over TCP (the cluster DNS is in Istio's registry as kube-dns) is not black-holed
    code, tcp_answer = e.exec_sleep(f"{sys.executable} -c '{DIG_TCP}' httpbin.example.org")
    assert code == 0 and tcp_answer.split() == [out.split()[0]], (out, tcp_answer)
    wait_for(lambda: "outbound|80||httpbin.example.org" in e.k("logs", e.source_pod, "-c", "istio-proxy"),
             timeout=30)
    assert e.exec_sleep(head)[1].strip() == "HTTP/1.1 502 Bad Gateway"  # other hosts stay blocked

    # DNS resolution: Envoy resolves the ServiceEntry's endpoint name through the cluster DNS.
    e.k("apply", "-f", "-", input=SERVICE_ENTRY_DNS.format(name=e.external_name))
    e.eventually("curl -sS http://httpbin-dns.example.org/headers", '"Host": "httpbin-dns.example.org"')

    # Manage traffic to external services: a VirtualService timeout on the ServiceEntry host.
    delay = 'curl -o /dev/null -sS -w "%{http_code}\\n" http://httpbin.example.org/delay/5'
    assert e.exec_sleep(delay) == (0, "200\n")
    e.k("apply", "-f", "-", input=VIRTUAL_SERVICE_TIMEOUT)
    assert e.eventually(delay, "504").strip() == "504"

    # Istio's metrics name the external service by its host; its workload is unknown (no sidecar there).
    selector = 'reporter="source",destination_service="httpbin.example.org",source_workload="sleep"'
    wait_for(lambda: e.value(f'sum(istio_requests_total{{{selector},response_code="504"}})') >= 1, timeout=30)
    # (A request sent while the pod's DNS already answered the new host but its sidecar did not yet have the
    # ServiceEntry was black-holed, 502: the loop above retried it. Those series say BlackHoleCluster, rightly.)
    routed = [labels for labels in e.series(f"istio_requests_total{{{selector}}}") if labels["response_code"] != "502"]
    assert {labels["response_code"] for labels in routed} >= {"200", "504"}
    for labels in routed:
        assert labels["destination_service_name"] == "httpbin.example.org", labels
        assert labels["destination_workload"] == "unknown", labels

    # Back to ALLOW_ANY: unknown hosts pass through again.
    e.set_mode("REGISTRY_ONLY", "ALLOW_ANY")
    e.eventually(head, "HTTP/1.1 200 OK")


@EGRESS_CONTROL
def test_a_bad_mesh_config_is_named_on_write(egress: Egress) -> None:
    import subprocess

    from tests.conftest import TOOLS

    bad = MESH_CONFIGMAP.replace("mode: ALLOW_ANY", "mode: [ALLOW_ANY")
    cp = subprocess.run([str(TOOLS / "kubectl-1.35"), "apply", "-f", "-"], input=bad, env=egress.d.env,
                        capture_output=True, text=True, timeout=60)
    try:
        assert cp.returncode == 0, cp.stderr
        assert "Warning: ConfigMap istio-system/istio: invalid mesh config in data.mesh" in cp.stderr, cp.stderr
        # the mesh keeps its defaults: unknown hosts pass through
        egress.eventually(f'curl -sSI http://{egress.external_name}/status/200 | grep "HTTP/"', "HTTP/1.1 200 OK")
    finally:
        egress.k("apply", "-f", "-", input=MESH_CONFIGMAP)


SERVICE_ENTRY_CNN = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: cnn
spec:
  hosts:
  - edition.example.org
  ports:
  - number: 80
    name: http-port
    protocol: HTTP
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
  endpoints:
  - address: {name}
"""

EGRESS_GATEWAY_ROUTING = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - edition.example.org
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: egressgateway-for-cnn
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: cnn
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct-cnn-through-egress-gateway
spec:
  hosts:
  - edition.example.org
  gateways:
  - istio-egressgateway
  - mesh
  http:
  - match:
    - gateways:
      - mesh
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: cnn
        port:
          number: 80
      weight: 100
  - match:
    - gateways:
      - istio-egressgateway
      port: 80
    route:
    - destination:
        host: edition.example.org
        port:
          number: 80
      weight: 100
"""


@pytest.mark.istio_task("traffic-management/egress/egress-gateway", "Egress Gateways")
def test_egress_gateway_task(egress: Egress) -> None:
    """The egress gateway task's HTTP part: edition.cnn.com is the external pod as `edition.example.org` (a
    DNS ServiceEntry whose endpoint is the pod's DNS name, since no resolver here knows the host itself)."""
    from sluice.samples import sample_path

    e = egress
    e.k("apply", "-f", sample_path("egressgateway.yaml"))
    e.k("wait", "-n", "istio-system", "--for=condition=Available", "deployment/istio-egressgateway",
        "--timeout=120s")
    e.k("apply", "-f", "-", input=SERVICE_ENTRY_CNN.format(name=e.external_name))
    politics = "curl -sSL -o /dev/null -D - http://edition.example.org/status/200"
    e.eventually(politics, "HTTP/1.1 200 OK")
    e.k("apply", "-f", "-", input=EGRESS_GATEWAY_ROUTING)

    def via_gateway() -> bool:
        out = e.exec_sleep(politics)[1]
        logs = e.k("logs", "-l", "istio=egressgateway", "-c", "istio-proxy", "-n", "istio-system")
        return "HTTP/1.1 200 OK" in out and "outbound|80||edition.example.org" in logs

    wait_for(via_gateway, timeout=30, interval=0.5)
    line = next(x for x in e.k("logs", "-l", "istio=egressgateway", "-c", "istio-proxy", "-n",
                               "istio-system").splitlines() if "outbound|80||edition.example.org" in x)
    assert '"GET /status/200 HTTP/2" 200' in line and '"edition.example.org"' in line, line
    # the client's sidecar sent it to the gateway's subset, not to the host (its log line is written when the
    # sidecar's file log flushes, which may be after the gateway's)
    wait_for(lambda: "outbound|80|cnn|istio-egressgateway.istio-system.svc.cluster.local"
             in e.k("logs", e.source_pod, "-c", "istio-proxy"), timeout=10, interval=0.25)


SLEEP_DIRECT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: sleep-direct
spec:
  replicas: 1
  selector:
    matchLabels:
      app: sleep-direct
  template:
    metadata:
      labels:
        app: sleep-direct
      annotations:
        traffic.sidecar.istio.io/includeOutboundIPRanges: "10.96.0.0/12"
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: sleep
        image: docker.io/curlimages/curl:8.16.0
        command: ["/bin/sleep", "infinity"]
"""


@EGRESS_CONTROL
def test_direct_access_bypasses_the_sidecar(egress: Egress) -> None:
    """The task's "Direct access to external services": with only the service range captured
    (includeOutboundIPRanges), the external address is reached without the sidecar, even under REGISTRY_ONLY."""
    e = egress
    e.k("apply", "-f", "-", input=SLEEP_DIRECT)
    e.k("wait", "--for=condition=Available", "deployment/sleep-direct", "--timeout=120s")
    pod = e.k("get", "pod", "-l", "app=sleep-direct", "-o", "jsonpath={.items..metadata.name}")
    e.set_mode("ALLOW_ANY", "REGISTRY_ONLY")
    try:
        e.eventually(f'curl -sSI http://{e.external_name}/status/200 | grep "HTTP/"', "HTTP/1.1 502 Bad Gateway")
        direct = Egress(e.d, e.k, e.prom, pod, e.external_ip)
        headers = json.loads(direct.eventually(f"curl -sS http://{e.external_name}/headers", '"Host"'))["headers"]
        assert headers["Host"] == e.external_name
        assert not any(h.startswith("X-Envoy") for h in headers), headers  # no sidecar on the way
    finally:
        e.set_mode("REGISTRY_ONLY", "ALLOW_ANY")
