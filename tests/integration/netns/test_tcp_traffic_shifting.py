"""Istio's "TCP Traffic Shifting" task (istio.io/latest/docs/tasks/traffic-management/tcp-traffic-shifting/) on a
daemon in netns mode and in loopback mode, with the task's manifests and commands, plus the same shift inside
the mesh (netns mode: loopback mode has no transparent capture of an app's TCP).

The task's samples run as istio/istio ships them (sleep, tcp-echo v1/v2, `tcp-echo-all-v1.yaml`,
`tcp-echo-20-v2.yaml`), unedited; the only change is the istio-ingressgateway Service's `tcp` port: 31400 becomes a
free port (its targetPort stays 31400, where the gateway pod listens), since the host's 127.0.0.1 is shared by
tests that run side by side. `INGRESS_HOST` and `TCP_INGRESS_PORT` come from the docs' jsonpath recipes
(INGRESS_HOST falls back to 127.0.0.1, the gateway's address, where the Service has no load-balancer status yet).

The docs send `(date; sleep 1) | nc $INGRESS_HOST $TCP_INGRESS_PORT` from the sleep pod. `$INGRESS_HOST` is the
load balancer's address, the host's 127.0.0.1; inside the sleep pod (its own network namespace) 127.0.0.1 is the
pod's own loopback, where nothing listens — as on minikube, whose `minikube tunnel` publishes the LoadBalancer on
the host's 127.0.0.1 only. So the test runs the conversation twice: from the host, where it is that loop's client
(it sends `date`'s line, reads the reply and half-closes, as busybox's nc does when its input ends), and, in netns
mode, from inside the sleep pod with the docs' loop and its busybox `nc` aimed at the gateway's Service
(`nc istio-ingressgateway.istio-system $TCP_INGRESS_PORT`), which is how a pod reaches the gateway on Kubernetes:
sleep's sidecar sends it to the gateway pod's 31400. Inside the mesh the sleep pod also runs the docs' loop
against tcp-echo itself (`kubectl exec … -- sh -c "(date; sleep 1) | nc tcp-echo 9000"`), and the shift shows in
PromQL with Istio's labels. The same daemon also serves a VirtualService `tls` route by SNI inside the mesh.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, free_port, start_daemon, stop_daemon, wait_for
from tests.integration.netns.test_istio_samples import SLEEP, TCP_ECHO, Kube
from tests.integration.xds.test_xds_tcp_tls_envoy import make_certs

NS = "istio-io-tcp-traffic-shifting"
GATEWAY_SAMPLE = Path(__file__).resolve().parents[3] / "src" / "sluice" / "samples" / "ingressgateway.yaml"

# samples/tcp-echo/tcp-echo-all-v1.yaml (istio/istio master), license header left out.
TCP_ECHO_ALL_V1 = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: tcp-echo-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 31400
      name: tcp
      protocol: TCP
    hosts:
    - "*"
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: tcp-echo-destination
spec:
  host: tcp-echo
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tcp-echo
spec:
  hosts:
  - "*"
  gateways:
  - tcp-echo-gateway
  tcp:
  - match:
    - port: 31400
    route:
    - destination:
        host: tcp-echo
        port:
          number: 9000
        subset: v1
"""

# samples/tcp-echo/tcp-echo-20-v2.yaml
TCP_ECHO_20_V2 = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tcp-echo
spec:
  hosts:
  - "*"
  gateways:
  - tcp-echo-gateway
  tcp:
  - match:
    - port: 31400
    route:
    - destination:
        host: tcp-echo
        port:
          number: 9000
        subset: v1
      weight: 80
    - destination:
        host: tcp-echo
        port:
          number: 9000
        subset: v2
      weight: 20
"""

# the in-mesh shift: sleep → tcp-echo:9000, no gateway
TCP_ECHO_MESH_70_30 = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tcp-echo-mesh
spec:
  hosts:
  - tcp-echo
  tcp:
  - match:
    - port: 9000
    route:
    - destination:
        host: tcp-echo
        subset: v1
      weight: 70
    - destination:
        host: tcp-echo
        subset: v2
      weight: 30
"""

_DATE_REPLY = re.compile(r"(one|two) \w{3} \w{3} +\d+ \d\d:\d\d:\d\d \w+ \d{4}\n")


class Task:
    def __init__(self, d: Daemon, k: Kube, prom: str, port: int, network: str) -> None:
        self.d, self.k, self.prom, self.port, self.network = d, k, prom, port, network


@pytest.fixture(scope="module", params=["netns", "loopback"])
def task(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Task]:
    network = str(request.param)
    if network == "netns" and os.geteuid() != 0:
        pytest.skip("netns mode needs root")
    home = tmp_path_factory.mktemp("tcp-shift-home")
    (home / "config.yaml").write_text("scrape_interval: 0.5\n")
    d = start_daemon(home, network=network)
    k = Kube(d)
    port = free_port()
    try:
        # Before you begin: the ingress gateway, a namespace for the task, sleep as the source pod.
        k("apply", "-f", str(GATEWAY_SAMPLE))
        _gateway_tcp_port(k, port)
        k("create", "namespace", NS)
        k("apply", "-f", "-", "-n", NS, input=SLEEP)
        # Apply weight-based TCP routing: the tcp-echo services.
        k("apply", "-f", "-", "-n", NS, input=TCP_ECHO)
        k("wait", "--for=condition=Available", "deployment", "--all", "-n", NS, "--timeout=180s")
        k("wait", "--for=condition=Available", "deployment", "--all", "-n", "istio-system", "--timeout=180s")
        run = json.loads((home / "daemon.json").read_text())
        yield Task(d, k, f"http://127.0.0.1:{run['metrics_port']}", port, network)
    finally:
        stop_daemon(d)


def _gateway_tcp_port(k: Kube, port: int) -> None:
    """The istio-ingressgateway Service's `tcp` port (31400 in Istio's install) as `port`, to the gateway pod's
    31400 (the Gateway server's port: the host listens at the Service's port, the pod at its targetPort)."""
    svc = json.loads(k("get", "svc", "istio-ingressgateway", "-n", "istio-system", "-o", "json"))
    names = [p.get("name") for p in svc["spec"]["ports"]]
    value = {"name": "tcp", "port": port, "targetPort": 31400, "protocol": "TCP"}
    op = ({"op": "replace", "path": f"/spec/ports/{names.index('tcp')}", "value": value} if "tcp" in names
          else {"op": "add", "path": "/spec/ports/-", "value": value})
    k("patch", "svc", "istio-ingressgateway", "-n", "istio-system", "--type=json", "-p", json.dumps([op]))


def _ingress(k: Kube) -> tuple[str, int]:
    """The docs' recipe: INGRESS_HOST and TCP_INGRESS_PORT from the istio-ingressgateway Service."""
    host = k("-n", "istio-system", "get", "service", "istio-ingressgateway",
             "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
    port = k("-n", "istio-system", "get", "service", "istio-ingressgateway",
             "-o", 'jsonpath={.spec.ports[?(@.name=="tcp")].port}')
    return host or "127.0.0.1", int(port)


def nc_date(host: str, port: int) -> str:
    """`(date; sleep 1) | nc HOST PORT`'s output: date's line goes out, the echo comes back; at the end of its
    input nc stops sending, and the server closes."""
    line = subprocess.run(["date"], capture_output=True, text=True, check=True).stdout.encode()
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(line)
        reader = s.makefile("rb")
        reply = reader.readline()
        s.shutdown(socket.SHUT_WR)
        rest = reader.read()
    return (reply + rest).decode()


def _loop(host: str, port: int, n: int) -> list[str]:
    """`for i in {1..n}; do … nc $INGRESS_HOST $TCP_INGRESS_PORT; done`"""
    return [nc_date(host, port) for _ in range(n)]


# Istio's default TEXT access log line for a TCP connection (EnvoyTextLogFormat, whose HTTP fields print `-`):
# [start] "- - -" 0 - - - "-" <bytes received> <bytes sent> <duration> - "-" "-" "-" "-" "<upstream host>"
# <upstream cluster> <upstream local> <downstream local> <downstream remote> <SNI> <route name>
_TCP_LOG = re.compile(r'\[\d{4}-\d\d-\d\dT[\d:.]+Z\] "- - -" 0 - - - "-" (?P<received>\d+) (?P<sent>\d+) \d+ - '
                      r'"-" "-" "-" "-" "(?P<upstream>[\d.]+:\d+)" (?P<cluster>\S+) [\d.]+:\d+ '
                      r'(?P<local>[\d.]+:\d+) [\d.]+:\d+ - -')


def tcp_log_lines(k: Kube, *args: str) -> list[re.Match[str]]:
    """The TCP connections `kubectl logs … -c istio-proxy` shows, in Istio's format."""
    out = k("logs", *args, "-c", "istio-proxy")
    return [m for m in map(_TCP_LOG.fullmatch, out.splitlines()) if m is not None]


def _value(prom: str, query: str) -> dict[str, float]:
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as r:
        result = json.loads(r.read())["data"]["result"]
    return {str(x["metric"].get("destination_version", "")): float(x["value"][1]) for x in result}


def _within_binomial(count: int, n: int, p: float) -> bool:
    """±4 standard deviations: a 1-in-15000 flake."""
    sd = (n * p * (1 - p)) ** 0.5
    return abs(count - n * p) <= 4 * sd


@pytest.mark.istio_task("traffic-management/tcp-traffic-shifting", "TCP Traffic Shifting")
def test_all_traffic_to_v1_then_20_percent_to_v2_through_the_gateway(task: Task) -> None:
    k = task.k
    k("apply", "-f", "-", "-n", NS, input=TCP_ECHO_ALL_V1)
    host, port = _ingress(k)
    assert port == task.port
    # the gateway's listener appears once the push reaches it
    wait_for(lambda: _connects(host, port), timeout=60, interval=0.5)
    out = _loop(host, port, 20)
    assert all(_DATE_REPLY.fullmatch(line) for line in out), out
    assert {line.split()[0] for line in out} == {"one"}, out  # "all one"

    k("apply", "-f", "-", "-n", NS, input=TCP_ECHO_20_V2)
    vs = json.loads(k("get", "virtualservice", "tcp-echo", "-o", "json", "-n", NS))
    assert [r["weight"] for r in vs["spec"]["tcp"][0]["route"]] == [80, 20]
    wait_for(lambda: nc_date(host, port).startswith("two "), timeout=60, interval=0)  # the new weights are in
    out = _loop(host, port, 20)  # the docs' loop …
    out += _loop(host, port, 180)  # … and more of the same, for a split a test can judge
    assert all(_DATE_REPLY.fullmatch(line) for line in out), out
    twos = sum(line.startswith("two ") for line in out)
    assert _within_binomial(twos, len(out), 0.2), (twos, len(out))

    # the gateway reports every connection with the version of the pod it reached
    query = ('sum by (destination_version) (istio_tcp_connections_opened_total{reporter="source",'
             'source_workload="istio-ingressgateway",destination_service_name="tcp-echo",'
             f'destination_service_namespace="{NS}"}})')
    # (at least: the connections that waited for the listener and for the new weights count too)
    want = {"v1": 20 + len(out) - twos, "v2": twos}
    wait_for(lambda: all(_value(task.prom, query).get(v, 0) >= c for v, c in want.items()), timeout=30)
    assert set(_value(task.prom, query)) == {"v1", "v2"}

    # and logs each one as Istio's gateway does (`kubectl logs -l istio=ingressgateway -c istio-proxy`):
    # date's line each way, to a tcp-echo pod's 9000 through the subset's cluster
    def gateway_lines() -> list[re.Match[str]]:
        return tcp_log_lines(k, "-l", "istio=ingressgateway", "-n", "istio-system", "--tail=-1")

    wait_for(lambda: len(gateway_lines()) >= len(out), timeout=30)
    lines = gateway_lines()
    clusters = {m["cluster"] for m in lines}
    assert clusters == {f"outbound|9000|{v}|tcp-echo.{NS}.svc.cluster.local" for v in ("v1", "v2")}, clusters
    assert {m["upstream"].rsplit(":", 1)[1] for m in lines} == {"9000"}
    assert all(int(m["sent"]) == int(m["received"]) + len("one ") for m in lines)  # the echo's prefix


@pytest.mark.istio_task("traffic-management/tcp-traffic-shifting", "TCP Traffic Shifting")
def test_the_docs_loop_from_the_sleep_pod_through_the_gateway_service(task: Task) -> None:
    """The docs' loop as they run it, from the sleep pod (`kubectl exec … -c sleep -- sh -c "… | nc …"`), aimed
    at the gateway's Service instead of `$INGRESS_HOST` (the host's loopback, see the module's docstring)."""
    if task.network != "netns":
        pytest.skip("loopback mode has no transparent capture: an app's own TCP connections bypass the sidecar")
    k = task.k
    k("apply", "-f", "-", "-n", NS, input=TCP_ECHO_ALL_V1)
    k("apply", "-f", "-", "-n", NS, input=TCP_ECHO_20_V2)
    _, port = _ingress(k)
    source_pod = k("get", "pod", "-l", "app=sleep", "-n", NS, "-o", "jsonpath={.items..metadata.name}")
    gateway = f"istio-ingressgateway.istio-system {port}"

    def sleep_sh(script: str) -> list[str]:
        cp = k.run("exec", source_pod, "-c", "sleep", "-n", NS, "--", "sh", "-c", script, timeout=120)
        assert cp.returncode == 0, cp.stderr
        return cp.stdout.splitlines(keepends=True)

    def reached() -> bool:
        return bool(re.fullmatch(r"(one|two) .*\n", "".join(sleep_sh(f"date | nc {gateway}"))))

    wait_for(reached, timeout=60, interval=0.5)  # the sleep sidecar's listener for the gateway's port is in
    # the docs: for i in {1..20}; do sh -c "(date; sleep 1) | nc $INGRESS_HOST $TCP_INGRESS_PORT"; done
    # (3 rounds with `sleep 1` as written, the rest without it, for a split a test can judge)
    out = sleep_sh(f"for i in 1 2 3; do (date; sleep 1) | nc {gateway}; done")
    n = 150
    out += sleep_sh(f"for i in $(seq {n - len(out)}); do date | nc {gateway}; done")
    assert len(out) == n and all(_DATE_REPLY.fullmatch(line) for line in out), out
    twos = sum(line.startswith("two ") for line in out)
    assert _within_binomial(twos, n, 0.2), twos
    # sleep's sidecar reports its connections to the gateway's Service; the gateway, its own to tcp-echo
    query = ('sum(istio_tcp_connections_opened_total{reporter="source",source_workload="sleep",'
             f'source_workload_namespace="{NS}",destination_service_name="istio-ingressgateway",'
             'destination_workload="istio-ingressgateway"})')
    wait_for(lambda: sum(_value(task.prom, query).values()) >= n, timeout=30)
    # sleep's sidecar logs each connection in Istio's TCP format: to the gateway pod's 31400 through the
    # gateway Service's cluster (`kubectl logs <sleep pod> -c istio-proxy`)
    gateway_cluster = f"outbound|{port}||istio-ingressgateway.istio-system.svc.cluster.local"

    def sidecar_lines() -> list[re.Match[str]]:
        return [m for m in tcp_log_lines(k, source_pod, "-n", NS) if m["cluster"] == gateway_cluster]

    wait_for(lambda: len(sidecar_lines()) >= n, timeout=30)
    lines = sidecar_lines()
    assert {m["upstream"].rsplit(":", 1)[1] for m in lines} == {"31400"}
    assert all(int(m["sent"]) == int(m["received"]) + len("one ") for m in lines)


def test_weighted_tcp_route_inside_the_mesh(task: Task) -> None:
    """The docs' loop from the sleep pod (its busybox `nc` included), aimed at tcp-echo inside the mesh."""
    if task.network != "netns":
        pytest.skip("loopback mode has no transparent capture: an app's own TCP connections bypass the sidecar")
    k = task.k
    if k.run("get", "destinationrule", "tcp-echo-destination", "-n", NS).returncode != 0:
        k("apply", "-f", "-", "-n", NS, input=TCP_ECHO_ALL_V1)
    k("apply", "-f", "-", "-n", NS, input=TCP_ECHO_MESH_70_30)
    source_pod = k("get", "pod", "-l", "app=sleep", "-n", NS, "-o", "jsonpath={.items..metadata.name}")

    def sleep_sh(script: str) -> list[str]:
        cp = k.run("exec", source_pod, "-c", "sleep", "-n", NS, "--", "sh", "-c", script, timeout=120)
        assert cp.returncode == 0, cp.stderr
        return cp.stdout.splitlines(keepends=True)

    wait_for(lambda: sleep_sh("date | nc tcp-echo 9000")[0].startswith("two "), timeout=60, interval=0)
    out = sleep_sh("for i in 1 2 3; do (date; sleep 1) | nc tcp-echo 9000; done")  # as the docs write it
    n = 200
    out += sleep_sh(f"for i in $(seq {n - len(out)}); do date | nc tcp-echo 9000; done")
    assert len(out) == n and all(_DATE_REPLY.fullmatch(line) for line in out), out
    twos = sum(line.startswith("two ") for line in out)
    assert _within_binomial(twos, n, 0.3), twos
    query = ('sum by (destination_version) (istio_tcp_connections_opened_total{reporter="source",'
             f'source_workload="sleep",source_workload_namespace="{NS}",destination_service_name="tcp-echo"}})')
    wait_for(lambda: _value(task.prom, query).get("v2", 0) >= twos + 1, timeout=30)
    k("delete", "virtualservice", "tcp-echo-mesh", "-n", NS)


def _connects(host: str, port: int) -> bool:
    try:
        return nc_date(host, port).startswith(("one ", "two "))
    except OSError:
        return False


# An HTTPS server on 8443 answering `<name> <Host>`: the destination of the TLS route below.
HTTPS_SERVER = """
import http.server, ssl, sys
name, cert, key = sys.argv[1:4]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{name} {self.headers['Host']}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
server = http.server.HTTPServer(("0.0.0.0", 8443), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


def _https_deployment(version: str, certs: Path) -> dict[str, object]:
    labels = {"app": "secure", "version": version}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"secure-{version}"},
            "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                "containers": [{"name": "secure", "image": "python:3.11", "command": [
                    sys.executable, "-c", HTTPS_SERVER, f"secure-{version}", str(certs / "server.crt"),
                    str(certs / "server.key")],
                    "ports": [{"containerPort": 8443}],
                    "readinessProbe": {"tcpSocket": {"port": 8443}, "periodSeconds": 1}}]}}}}


def test_tls_route_by_sni_inside_the_mesh(task: Task, tmp_path: Path) -> None:
    """An app's own TLS (curl, verifying the server) to a Service's HTTPS port: its sidecar picks the subset
    by the SNI the VirtualService's `tls` rules name, and the server's sidecar hands the bytes on untouched."""
    if task.network != "netns":
        pytest.skip("loopback mode has no transparent capture: an app's own TCP connections bypass the sidecar")
    k = task.k
    certs = make_certs(tmp_path)
    objects = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "secure"},
         "spec": {"selector": {"app": "secure"}, "ports": [{"name": "https", "port": 443, "targetPort": 8443}]}},
        _https_deployment("v1", certs), _https_deployment("v2", certs),
        {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "secure"},
         "spec": {"host": "secure", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                                {"name": "v2", "labels": {"version": "v2"}}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "secure"},
         "spec": {"hosts": ["secure", "*.secure.example"], "tls": [
             {"match": [{"port": 443, "sniHosts": ["a.secure.example"]}],
              "route": [{"destination": {"host": "secure", "subset": "v1"}}]},
             {"match": [{"port": 443, "sniHosts": ["b.secure.example"]}],
              "route": [{"destination": {"host": "secure", "subset": "v2"}}]}]}},
    ]
    k("apply", "-n", NS, "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects))
    k("wait", "--for=condition=Available", "deployment/secure-v1", "deployment/secure-v2", "-n", NS, "--timeout=120s")

    def curl(sni: str) -> str:
        cp = k.run("exec", "deploy/sleep", "-c", "sleep", "-n", NS, "--", "curl", "-sS", "--cacert",
                   str(certs / "ca.crt"), "--connect-to", f"{sni}:443:secure:443", f"https://{sni}/")
        return cp.stdout if cp.returncode == 0 else cp.stderr

    wait_for(lambda: curl("a.secure.example") == "secure-v1 a.secure.example\n", timeout=60, interval=0.5)
    assert {curl("a.secure.example") for _ in range(5)} == {"secure-v1 a.secure.example\n"}
    assert {curl("b.secure.example") for _ in range(5)} == {"secure-v2 b.secure.example\n"}
    # an SNI no rule names has no filter chain: the sidecar closes the connection
    assert curl("c.secure.example").startswith("curl: (35)")
