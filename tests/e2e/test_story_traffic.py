"""The user story with real traffic: Bookinfo as processes, real Envoy sidecars, the real kubectl.

Counts come from the services' own responses (reviews v2 answers black stars, v3 red), never from our
metrics. One daemon for the module; the tests run in order, as the story does.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from sluice.mesh import app_ip as mesh_app_ip
from sluice.runtime.netns.node import NodeNetwork
from tests.conftest import TOOLS, Daemon, start_daemon, stop_daemon, wait_for
from tests.e2e.mesh import (
    SAMPLES,
    Pod,
    SteadyLoad,
    api_client,
    deployments_ready,
    pod,
    pod_ips,
    reviews_version,
    route_weights,
    start_story_mesh,
    via,
)
from tests.story import STORY_VS, with_weights

NS = "tutorial"
REVIEWS = "http://reviews:9080/reviews/0"


class Mesh:
    def __init__(self, daemon: Daemon, tmp: Path, network: str) -> None:
        self.d = daemon
        self.network = network
        self.api = api_client(daemon)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.cache = tmp / "kcache"
        self.tmp = tmp

    def kubectl(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        cp = subprocess.run([str(TOOLS / "kubectl-1.35"), f"--cache-dir={self.cache}", "-n", NS, *args],
                            input=input, env={**self.d.env, **(env or {})}, capture_output=True, text=True,
                            timeout=120)
        if check and cp.returncode != 0:
            raise AssertionError(f"kubectl {args}: {cp.stdout}\n{cp.stderr}")
        return cp

    @property
    def sleep_ip(self) -> Pod:
        """Where the story's requests start: the sleep pod (its sidecar)."""
        return pod(self.d, pod_ips(self.core, NS, "app=sleep")[0], self.core)

    def sidecars(self) -> list[Pod]:
        return [pod(self.d, p.status.pod_ip, self.core) for p in self.core.list_namespaced_pod(NS).items
                if p.status.pod_ip and p.metadata.deletion_timestamp is None
                and any(c.name == "istio-proxy" for c in p.spec.containers)]

    def wait_weights(self, expected: dict[str, int]) -> None:
        """Until every sidecar in the namespace holds these weights for reviews (from Envoy's config dump)."""
        wait_for(lambda: all(route_weights(p) == expected for p in self.sidecars()), timeout=30)


# The story runs twice: pods in their own network namespaces with transparent capture, and on loopback.
@pytest.fixture(scope="module", params=["netns", "loopback"])
def mesh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    if request.param == "netns" and os.geteuid() != 0:
        pytest.skip("netns mode needs root")
    tmp = tmp_path_factory.mktemp("story")
    d = start_story_mesh(tmp, network=request.param)
    try:
        yield Mesh(d, tmp, request.param)
    finally:
        stop_daemon(d)


@pytest.mark.istio_task("traffic-management/traffic-shifting", "Traffic Shifting")
@pytest.mark.istio_sample("bookinfo", "Bookinfo")
def test_split_90_10_lands_within_binomial_tolerance(mesh: Mesh) -> None:
    cp = mesh.kubectl("apply", "-f", "-", input=STORY_VS)
    assert "virtualservice.networking.istio.io/reviews" in cp.stdout
    mesh.wait_weights({"v2": 90, "v3": 10})
    n = 2000
    versions: Counter[str] = Counter()
    for _ in range(n):
        code, body = via(mesh.sleep_ip, REVIEWS)
        assert code == 200, body[:300]
        versions[reviews_version(body)] += 1
    assert versions["v1"] == 0 and versions["?"] == 0
    sd = math.sqrt(n * 0.1 * 0.9)
    assert abs(versions["v3"] - n * 0.1) <= 4.5 * sd, versions  # 4.5 sigma: a false failure ~1 in 150,000
    assert versions["v2"] + versions["v3"] == n


def test_describe_shows_pod_and_deployment_events(mesh: Mesh) -> None:
    pod = mesh.core.list_namespaced_pod(NS, label_selector="app=ratings").items[0].metadata.name
    out = mesh.kubectl("describe", "pod", pod).stdout
    assert "Started container ratings" in out and "Started container istio-proxy" in out
    assert "Scheduled" in out
    # As in kube: the Deployment scales a ReplicaSet, the ReplicaSet creates the pods.
    assert "Scaled up replica set ratings-v1-" in mesh.kubectl("describe", "deployment", "ratings-v1").stdout
    assert "Created pod: ratings-v1-" in mesh.kubectl("describe", "rs", "-l", "app=ratings").stdout


@pytest.mark.istio_task("traffic-management/traffic-shifting", "Traffic Shifting")
def test_weights_change_under_load_without_failures(mesh: Mesh) -> None:
    load = SteadyLoad(mesh.sleep_ip, REVIEWS).start()
    try:
        for v2, v3 in ((80, 20), (70, 30)):
            mesh.kubectl("apply", "-f", "-", input=with_weights(v2, v3))
            mesh.wait_weights({"v2": v2, "v3": v3})
        mesh.kubectl("apply", "-f", str(SAMPLES / "virtual-service-reviews-v3.yaml"))
        mesh.wait_weights({"v3": 100})
        before = load.total
        wait_for(lambda: load.total >= before + 50)
    finally:
        load.stop()
    assert load.failures == []
    assert load.total >= 50 and set(load.versions) <= {"v2", "v3"}


def _v2_inbound_lines(mesh: Mesh) -> list[str]:
    out = mesh.kubectl("logs", "-l", "app=reviews,version=v2", "-c", "istio-proxy", "--tail=-1").stdout
    return [line for line in out.splitlines() if "inbound|9080||" in line]


def test_delete_v2_after_full_shift_loses_no_request(mesh: Mesh) -> None:
    mesh.wait_weights({"v3": 100})
    logged = _v2_inbound_lines(mesh)
    assert logged, "the v2 sidecar logged the requests it served before the switch"
    load = SteadyLoad(mesh.sleep_ip, REVIEWS).start()
    try:
        wait_for(lambda: load.total >= 100)
        assert _v2_inbound_lines(mesh) == logged  # no request reached v2 after the switch
        cp = mesh.kubectl("delete", "deployment", "reviews-v2")
        assert 'deployment.apps "reviews-v2" deleted' in cp.stdout
        wait_for(lambda: not pod_ips(mesh.core, NS, "app=reviews,version=v2"), timeout=60)
        before = load.total
        wait_for(lambda: load.total >= before + 50)
    finally:
        load.stop()
    assert load.failures == []
    assert load.versions.keys() == {"v3"}


@pytest.mark.istio_task("traffic-management/request-routing", "Request Routing")
def test_header_match_routes_jason_to_v2(mesh: Mesh) -> None:
    mesh.kubectl("apply", "-f", str(SAMPLES / "bookinfo.yaml"))  # bring reviews-v2 back
    wait_for(lambda: deployments_ready(mesh.apps, NS), timeout=60)
    mesh.kubectl("apply", "-f", "-", input="""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v3}
""")
    wait_for(lambda: all(reviews_version(via(mesh.sleep_ip, REVIEWS, {"end-user": "jason"})[1]) == "v2"
                         for _ in range(5)), timeout=30)
    for _ in range(50):
        assert reviews_version(via(mesh.sleep_ip, REVIEWS, {"end-user": "jason"})[1]) == "v2"
        assert reviews_version(via(mesh.sleep_ip, REVIEWS, {"end-user": "bob"})[1]) == "v3"


@pytest.mark.istio_task("traffic-management/fault-injection", "Fault Injection")
def test_fault_injection_abort_and_delay(mesh: Mesh) -> None:
    mesh.kubectl("apply", "-f", "-", input="""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts: [ratings]
  http:
  - match:
    - headers: {x-fault: {exact: abort}}
    fault:
      abort: {httpStatus: 418, percentage: {value: 100}}
    route:
    - destination: {host: ratings, subset: v1}
  - match:
    - headers: {x-fault: {exact: delay}}
    fault:
      delay: {fixedDelay: 0.2s, percentage: {value: 100}}
    route:
    - destination: {host: ratings, subset: v1}
  - route:
    - destination: {host: ratings, subset: v1}
""")
    wait_for(lambda: via(mesh.sleep_ip, "http://ratings:9080/ratings/0", {"x-fault": "abort"})[0] == 418,
             timeout=30)
    codes = Counter(via(mesh.sleep_ip, "http://ratings:9080/ratings/0", {"x-fault": "abort"})[0] for _ in range(20))
    assert codes == Counter({418: 20})
    assert via(mesh.sleep_ip, "http://ratings:9080/ratings/0")[0] == 200
    assert via(mesh.sleep_ip, "http://ratings:9080/ratings/0", {"x-fault": "delay"})[0] == 200
    # Envoy marks delayed requests with response flag DI in the sleep sidecar's access log.
    wait_for(lambda: any(" DI " in line for line in mesh.kubectl(
        "logs", "-l", "app=sleep", "-c", "istio-proxy", "--tail=-1").stdout.splitlines()), timeout=10)


def test_retries_hide_a_flaky_upstream(mesh: Mesh) -> None:
    port = 8080
    server = (
        "import http.server,os,itertools\n"
        "n=itertools.count()\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        i=next(n); code=503 if i%2==0 else 200\n"
        "        print('request',i,code,flush=True)\n"
        "        self.send_response(code); self.send_header('content-length','2'); self.end_headers()\n"
        "        self.wfile.write(b'ok')\n"
        "    def log_message(self,*a): pass\n"
        f"http.server.ThreadingHTTPServer((os.environ['SLUICE_BIND'],{port}),H).serve_forever()\n")
    manifest = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "flaky"},
        "spec": {"selector": {"matchLabels": {"app": "flaky"}}, "template": {
            "metadata": {"labels": {"app": "flaky", "version": "v1"}},
            "spec": {"containers": [{"name": "flaky", "image": "python:3.11", "command": [sys.executable, "-c", server],
                                     "ports": [{"containerPort": port}]}]}}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "flaky"},
           "spec": {"selector": {"app": "flaky"}, "ports": [{"name": "http", "port": port}]}}
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "flaky"},
          "spec": {"hosts": ["flaky"], "http": [{"route": [{"destination": {"host": "flaky"}}],
                                                 "retries": {"attempts": 3, "retryOn": "5xx"}}]}}
    mesh.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in (manifest, svc, vs)))
    wait_for(lambda: deployments_ready(mesh.apps, NS), timeout=60)
    url = f"http://flaky:{port}/"
    wait_for(lambda: via(mesh.sleep_ip, url)[0] == 200, timeout=30)
    codes = Counter(via(mesh.sleep_ip, url)[0] for _ in range(40))
    assert codes == Counter({200: 40})  # every other upstream answer is a 503; retries hide them all
    vs["spec"]["http"][0]["retries"] = {"attempts": 0}
    mesh.kubectl("apply", "-f", "-", input=json.dumps(vs))
    wait_for(lambda: 503 in {via(mesh.sleep_ip, url)[0] for _ in range(4)}, timeout=30)


def test_killed_app_process_restarts(mesh: Mesh) -> None:
    pod = mesh.core.list_namespaced_pod(NS, label_selector="app=ratings").items[0]
    name = pod.metadata.name

    def restarts() -> int:
        p = mesh.core.read_namespaced_pod(name, NS)
        return next(c.restart_count for c in p.status.container_statuses if c.name == "ratings")

    before = restarts()
    pid = _container_pid(mesh.d.home, pod.metadata.uid, "ratings")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: restarts() == before + 1, timeout=60)
    wait_for(lambda: via(mesh.sleep_ip, "http://ratings:9080/ratings/0")[0] == 200, timeout=60)


def test_killed_daemon_restarts_without_interrupting_traffic(mesh: Mesh) -> None:
    pods_before = sorted((p.metadata.name, p.status.pod_ip) for p in mesh.core.list_namespaced_pod(NS).items)
    load = SteadyLoad(mesh.sleep_ip, "http://productpage:9080/productpage").start()
    try:
        wait_for(lambda: load.total >= 20)
        assert mesh.d.proc is not None
        mesh.d.proc.send_signal(signal.SIGKILL)
        mesh.d.proc.wait()
        before = load.total
        wait_for(lambda: load.total >= before + 20)  # traffic flows while the daemon is down
        d2 = start_daemon(mesh.d.home, port=mesh.d.api_port, xds_port=mesh.d.xds_port, network=mesh.network)
        mesh.d.proc = d2.proc
        wait_for(lambda: deployments_ready(mesh.apps, NS), timeout=60)
        before = load.total
        wait_for(lambda: load.total >= before + 20)
    finally:
        load.stop()
    assert load.failures == []
    pods_after = sorted((p.metadata.name, p.status.pod_ip) for p in mesh.core.list_namespaced_pod(NS).items)
    assert pods_after == pods_before  # adopted: no duplicates, nothing restarted


def _container_pid(home: Path, pod_uid: str, container: str) -> int:
    """The pid of a container's current run, as its shim recorded it (`N.pid`: pid, start time, start ns).
    Built-in programs run in a process forked from the kubelet's fork server, so neither the command line
    nor /proc's environ names them."""
    runs = (home / "runtime" / "pods" / pod_uid / "containers" / container).glob("*.pid")
    latest = max(runs, key=lambda f: int(f.stem), default=None)
    if latest is None:
        raise AssertionError(f"no recorded run for {container} in pod {pod_uid}")
    return int(latest.read_text().split()[0])


def test_no_processes_left_after_down(mesh: Mesh) -> None:
    ips = [p.status.pod_ip for p in mesh.core.list_namespaced_pod(NS).items if p.status.pod_ip]
    assert ips
    stop_daemon(mesh.d)  # SIGTERM: the daemon stops every pod before it exits
    left = [e.name for e in Path("/proc").iterdir() if e.name.isdigit() and _from_home(e, mesh.d.home)]
    assert left == []
    if mesh.network == "netns":
        made = [n for n in os.listdir("/run/netns") if n.startswith(NodeNetwork(mesh.d.home).prefix)] \
            if os.path.isdir("/run/netns") else []
        assert made == []  # every pod namespace, the node namespace and the host handle are gone
        return
    listening = [(ip, port) for ip in ips for port in (9080, 15000, 15001) if _accepts(ip, port)]
    listening += [(mesh_app_ip(ip), 9080) for ip in ips if _accepts(mesh_app_ip(ip), 9080)]
    assert listening == []


def _accepts(ip: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((ip, port)) == 0


def _from_home(entry: Path, home: Path) -> bool:
    try:
        return str(home).encode() in (entry / "cmdline").read_bytes()
    except OSError:
        return False
