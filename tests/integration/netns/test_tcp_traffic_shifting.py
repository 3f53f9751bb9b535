"""Istio's "TCP Traffic Shifting" task (istio.io/latest/docs/tasks/traffic-management/tcp-traffic-shifting/) on a
daemon in netns mode and in loopback mode, with the task's manifests and commands, plus the same shift inside
the mesh (netns mode: loopback mode has no transparent capture of an app's TCP).

The task's samples run as istio/istio ships them (sleep, tcp-echo v1/v2, `tcp-echo-all-v1.yaml`,
`tcp-echo-20-v2.yaml`), unedited; the only change is the istio-ingressgateway Service's `tcp` port: 31400 becomes a
free port (its targetPort stays 31400, where the gateway pod listens), since the host's 127.0.0.1 is shared by
tests that run side by side. `INGRESS_HOST` and `TCP_INGRESS_PORT` come from the docs' jsonpath recipes
(`INGRESS_HOST` is 127.0.0.1, the Service's `status.loadBalancer.ingress[0].ip`).

The docs send `(date; sleep 1) | nc $INGRESS_HOST $TCP_INGRESS_PORT` from the sleep pod, and so does the test,
word for word in netns mode: the page's loop runs in bash after the docs' recipes (`kubectl exec "$SLEEP" -c sleep
-- sh -c "… | nc $INGRESS_HOST $TCP_INGRESS_PORT"`, busybox's `nc` in the pod), with `$INGRESS_HOST` = 127.0.0.1,
the load balancer's address. Inside the pod's own network namespace 127.0.0.1 is the pod's loopback; Sluice
reaches the load balancer from there as kube-proxy reaches a LoadBalancer IP from a node
(`sluice.runtime.netns.loopback_lb`): the connection is DNATed inside the pod to the gateway pod's 31400 (the
Service's targetPort) and leaves with the pod's IP, so the gateway logs it as coming from the sleep pod. Unlike a
cloud load balancer's address, 127.0.0.1 is never captured by the sleep pod's sidecar (istio-init leaves
127.0.0.1 alone), so sleep's sidecar neither proxies nor reports these connections; the gateway reports each one
to tcp-echo. A pod keeps its own 127.0.0.1 at the ports it declares (and the sidecar's connections are never
taken): a test shows a program listening there still reaches itself. From the host the test is the loop's client
itself (it sends `date`'s line, reads the reply and half-closes, as busybox's nc does when its input ends), in both
modes. Inside the mesh the sleep pod also runs the docs' loop against tcp-echo itself (`kubectl exec … -- sh -c
"(date; sleep 1) | nc tcp-echo 9000"`), and the shift shows in PromQL with Istio's labels. The same daemon also
serves a VirtualService `tls` route by SNI inside the mesh.
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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import TOOLS, Daemon, free_port, start_daemon, stop_daemon, wait_for
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
    return host, int(port)


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
                      r'(?P<local>[\d.]+:\d+) (?P<remote>[\d.]+):\d+ - -')


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
    assert (host, port) == ("127.0.0.1", task.port)
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


# "Determining the ingress IP and ports" for a load balancer (the two variables this task uses), and the source
# pod as the task names it.
RECIPE = f"""
export INGRESS_HOST=$(kubectl -n istio-system get service istio-ingressgateway -o jsonpath='{{.status.loadBalancer.ingress[0].ip}}')
export TCP_INGRESS_PORT=$(kubectl -n istio-system get service istio-ingressgateway -o jsonpath='{{.spec.ports[?(@.name=="tcp")].port}}')
export SLEEP=$(kubectl get pod -l app=sleep -n {NS} -o jsonpath={{.items..metadata.name}})
"""

# The task's loop, as the page writes it ("Confirm that the tcp-echo service is up and running").
DOCS_LOOP = f"""for i in {{1..20}}; do \\
kubectl exec "$SLEEP" -c sleep -n {NS} -- sh -c "(date; sleep 1) | nc $INGRESS_HOST $TCP_INGRESS_PORT"; \\
done
"""


def _docs_shell(d: Daemon, tmp_path: Path) -> Callable[[str], str]:
    """Runs a snippet of the page in bash after the recipe, with `kubectl` on the PATH, as a reader would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / "kubectl").exists():
        (bin_dir / "kubectl").symlink_to(TOOLS / "kubectl-1.35")
    env = {**d.env, "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}

    def sh(script: str) -> str:
        cp = subprocess.run(["bash", "-c", "set -e\n" + RECIPE + script], env=env, capture_output=True, text=True,
                            timeout=180)
        assert cp.returncode == 0, f"{script}\n{cp.stdout}\n{cp.stderr}"
        return cp.stdout

    return sh


def _versions(lines: list[str]) -> list[str]:
    return [line.split()[0] if line.split() else "" for line in lines]


@pytest.mark.istio_task("traffic-management/tcp-traffic-shifting", "TCP Traffic Shifting")
def test_the_docs_loop_from_the_sleep_pod_to_ingress_host(task: Task, tmp_path: Path) -> None:
    """The docs' loop as they run it, from the sleep pod: `kubectl exec "$SLEEP" -c sleep -- sh -c "(date; sleep
    1) | nc $INGRESS_HOST $TCP_INGRESS_PORT"`, $INGRESS_HOST being the load balancer's 127.0.0.1, which the pod
    reaches as kube-proxy makes a LoadBalancer IP reachable (see the module's docstring)."""
    if task.network != "netns":
        pytest.skip("loopback mode has no pod network namespaces: a pod's 127.0.0.1 is the host's already")
    k = task.k
    sh = _docs_shell(task.d, tmp_path)
    assert sh('echo "$INGRESS_HOST $TCP_INGRESS_PORT"').split() == ["127.0.0.1", str(task.port)]

    def in_pod(body: str, n: int) -> list[str]:
        """`n` rounds of the loop's body in one `kubectl exec` (the page runs one exec per round)."""
        out = sh(f'kubectl exec "$SLEEP" -c sleep -n {NS} -- sh -c "for i in \\$(seq {n}); do {body}; done"')
        return out.splitlines(keepends=True)

    date_nc = "date | nc $INGRESS_HOST $TCP_INGRESS_PORT"
    k("apply", "-f", "-", "-n", NS, input=TCP_ECHO_ALL_V1)
    # all-v1 is in once 40 rounds in a row say "one" (0.8^40 ≈ 1e-4 under the 80/20 an earlier test left)
    wait_for(lambda: set(_versions(in_pod(date_nc, 40))) == {"one"}, timeout=60, interval=0.5)
    out = sh(DOCS_LOOP)  # the page's loop, word for word
    lines = out.splitlines(keepends=True)
    assert len(lines) == 20 and all(_DATE_REPLY.fullmatch(line) for line in lines), out
    assert set(_versions(lines)) == {"one"}, out

    k("apply", "-f", "-", "-n", NS, input=TCP_ECHO_20_V2)
    wait_for(lambda: "two" in _versions(in_pod(date_nc, 10)), timeout=60, interval=0.5)
    query = ('sum(istio_tcp_connections_opened_total{reporter="source",source_workload="istio-ingressgateway",'
             f'destination_service_name="tcp-echo",destination_service_namespace="{NS}"}})')
    before = sum(_value(task.prom, query).values())
    # the loop's body: 3 rounds with `sleep 1` as written, the rest without it, for a split a test can judge
    out_lines = in_pod("(date; sleep 1) | nc $INGRESS_HOST $TCP_INGRESS_PORT", 3)
    n = 150
    out_lines += in_pod(date_nc, n - len(out_lines))
    assert len(out_lines) == n and all(_DATE_REPLY.fullmatch(line) for line in out_lines), out_lines
    twos = _versions(out_lines).count("two")
    assert _within_binomial(twos, n, 0.2), twos
    # each connection went through the gateway, which reports it to tcp-echo …
    wait_for(lambda: sum(_value(task.prom, query).values()) >= before + n, timeout=30)
    # … and logs it as coming from the sleep pod's IP to its own 31400 (the Service's targetPort):
    # `kubectl logs -l istio=ingressgateway -c istio-proxy`
    sleep_ip = k("get", "pod", "-l", "app=sleep", "-n", NS, "-o", "jsonpath={.items..status.podIP}")

    def from_sleep() -> list[re.Match[str]]:
        return [m for m in tcp_log_lines(k, "-l", "istio=ingressgateway", "-n", "istio-system", "--tail=-1")
                if m["remote"] == sleep_ip]

    wait_for(lambda: len(from_sleep()) >= n + 20, timeout=30)
    assert {m["local"].rsplit(":", 1)[1] for m in from_sleep()} == {"31400"}


# A program that owns 127.0.0.1:PORT in its pod, and a client that connects there N times and prints each answer.
LOOPBACK_OWNER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
while True:
    c, _ = s.accept()
    c.sendall(b"own loopback\\n")
    while c.recv(1024):  # to the client's end, so that closing never resets what it has not read yet
        pass
    c.close()
"""
LOOPBACK_CLIENT = """
import socket, sys
for _ in range(int(sys.argv[2])):
    try:
        with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as c:
            c.sendall(b"hello\\n")
            c.shutdown(socket.SHUT_WR)
            print(c.makefile().read().strip() or "closed")
    except OSError as e:
        print(type(e).__name__)
"""


def _owner_pod(name: str, port: int, declared: bool) -> dict[str, object]:
    container: dict[str, object] = {"name": "app", "image": "python:3.11",
                                    "command": [sys.executable, "-c", LOOPBACK_OWNER, str(port)]}
    if declared:
        container["ports"] = [{"containerPort": port}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [container]}}


def test_a_pods_own_loopback_at_a_declared_port_stays_its_own(task: Task) -> None:
    """127.0.0.1 at the gateway's TCP port inside a pod that listens there itself: a pod that declares the port
    (`containerPort`) reaches its own program; one that does not is sent to the gateway like the sleep pod, except
    for its sidecar's own connections (gid 1337) and `kubectl port-forward`'s, which are never taken."""
    if task.network != "netns":
        pytest.skip("loopback mode has no pod network namespaces: a pod's 127.0.0.1 is the host's already")
    k = task.k
    k("apply", "-f", "-", "-n", NS, input=TCP_ECHO_ALL_V1)
    pods = [_owner_pod("loopback-declared", task.port, True), _owner_pod("loopback-undeclared", task.port, False)]
    k("apply", "-n", NS, "-f", "-", input="\n---\n".join(json.dumps(p) for p in pods))
    k("wait", "--for=condition=Ready", "pod/loopback-declared", "pod/loopback-undeclared", "-n", NS,
      "--timeout=120s")

    def connect(pod: str, n: int, container: str = "app") -> list[str]:
        cp = k.run("exec", pod, "-c", container, "-n", NS, "--", sys.executable, "-c", LOOPBACK_CLIENT,
                   str(task.port), str(n), timeout=120)
        assert cp.returncode == 0, cp.stderr
        return cp.stdout.splitlines()

    # the program is listening once its own sidecar (never redirected) gets its answer
    wait_for(lambda: connect("loopback-undeclared", 1, "istio-proxy") == ["own loopback"], timeout=60, interval=0.3)
    wait_for(lambda: connect("loopback-declared", 1) == ["own loopback"], timeout=60, interval=0.3)
    assert connect("loopback-declared", 20) == ["own loopback"] * 20
    assert connect("loopback-declared", 5, "istio-proxy") == ["own loopback"] * 5
    # the same program, the port undeclared: the app's connections go to the load balancer, i.e. the gateway
    # (and on to tcp-echo v1, once the gateway has the listener)
    wait_for(lambda: connect("loopback-undeclared", 1) == ["one hello"], timeout=60, interval=0.3)
    assert connect("loopback-undeclared", 5) == ["one hello"] * 5
    # `kubectl port-forward` reaches the pod's own 127.0.0.1, as on Kubernetes, declared or not
    local = free_port()
    pf = subprocess.Popen([str(TOOLS / "kubectl-1.35"), "port-forward", "pod/loopback-undeclared", "-n", NS,
                           f"{local}:{task.port}"], env=task.d.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    try:
        assert pf.stdout is not None
        assert f"Forwarding from 127.0.0.1:{local} -> {task.port}" in pf.stdout.readline()
        with socket.create_connection(("127.0.0.1", local), timeout=10) as c:
            c.sendall(b"hello\n")
            c.shutdown(socket.SHUT_WR)
            assert c.makefile().read() == "own loopback\n"
    finally:
        pf.terminate()
        pf.wait(10)
    k("delete", "pod", "loopback-declared", "loopback-undeclared", "-n", NS, "--wait=false")


def test_a_pods_127_0_0_1_follows_load_balancer_services_as_they_change(task: Task) -> None:
    """A LoadBalancer Service made after the sleep pod started is reachable from it at 127.0.0.1 at once; its
    endpoints moving (a new selector) move the pod's connections with them; once it is gone, the port is the
    pod's own again (nothing listens: refused)."""
    if task.network != "netns":
        pytest.skip("loopback mode has no pod network namespaces: a pod's 127.0.0.1 is the host's already")
    k = task.k
    port = free_port()
    source_pod = k("get", "pod", "-l", "app=sleep", "-n", NS, "-o", "jsonpath={.items..metadata.name}")

    def nc() -> str:
        cp = k.run("exec", source_pod, "-c", "sleep", "-n", NS, "--", "sh", "-c", f"date | nc 127.0.0.1 {port}")
        return cp.stdout if cp.returncode == 0 else cp.stderr

    def service(version: str) -> str:
        return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo-lb"}, "spec": {
            "type": "LoadBalancer", "selector": {"app": "tcp-echo", "version": version},
            "ports": [{"name": "tcp", "port": port, "targetPort": 9000}]}})

    k("apply", "-n", NS, "-f", "-", input=service("v1"))
    wait_for(lambda: nc().startswith("one "), timeout=30, interval=0.2)
    k("apply", "-n", NS, "-f", "-", input=service("v2"))
    wait_for(lambda: nc().startswith("two "), timeout=30, interval=0.2)
    k("delete", "service", "echo-lb", "-n", NS)
    wait_for(lambda: "Connection refused" in nc(), timeout=30, interval=0.2)


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
