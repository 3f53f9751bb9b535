"""netns mode from outside: pods in their own network namespaces, Services through kube-proxy's rules, and
nothing left behind on the host.

A real daemon (`--network netns`) runs unmodified programs (`python3 -m http.server 8000`, which binds
0.0.0.0) as pods; what is checked is what a user sees: pod and Service addresses from `kubectl get`, the
servers' own access logs, a client pod's output, the namespaces and links on the machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice.runtime.netns.node import NodeNetwork
from tests.conftest import TOOLS, Daemon, free_port, start_daemon, stop_daemon, wait_for
from tests.e2e.mesh import SAMPLES
from tests.integration.netns.kube import Kube

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="netns mode needs root")

# Two replicas of an unmodified `python3 -m http.server 8000` (binds 0.0.0.0, knows nothing of a mesh) with
# sidecars, the same without sidecars, a headless Service, and one with no endpoints.
WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: python:3.11
        command: ["python3", "-m", "http.server", "8000"]
        ports: [{containerPort: 8000}]
        readinessProbe: {tcpSocket: {port: 8000}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: plain}
spec:
  replicas: 2
  selector: {matchLabels: {app: plain}}
  template:
    metadata:
      labels: {app: plain}
      annotations: {sidecar.istio.io/inject: "false"}
    spec:
      containers:
      - name: plain
        image: python:3.11
        command: ["python3", "-m", "http.server", "8000"]
        ports: [{containerPort: 8000}]
        readinessProbe: {tcpSocket: {port: 8000}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: plain}
spec:
  selector: {app: plain}
  ports: [{name: http, port: 80, targetPort: 8000}]
---
apiVersion: v1
kind: Service
metadata: {name: plain-headless}
spec:
  clusterIP: None
  selector: {app: plain}
  ports: [{name: http, port: 8000}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nothing}
  ports: [{name: http, port: 80}]
"""

# Prints its hostname and nameserver once, then one line per request to each URL (status or error).
CLIENT = r"""
import socket, sys, time, urllib.request
print("HOST", socket.gethostname(), open("/etc/resolv.conf").read().split("nameserver")[1].split()[0], flush=True)
while True:
    for url in sys.argv[1:]:
        try:
            print("GOT", url, urllib.request.urlopen(url, timeout=2).status, flush=True)
        except Exception as e:
            print("ERR", url, type(e).__name__, e, flush=True)
    time.sleep(0.3)
"""


def _host_network() -> dict[str, str]:
    def run(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    links = re.sub(r"^\d+: ", "", run("ip", "-o", "link", "show"), flags=re.M)
    return {"routes": run("ip", "route", "show", "table", "all"), "links": links,
            "addrs": run("ip", "-o", "addr", "show"), "nft": run("nft", "list", "ruleset")}


def _netns_names() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


@pytest.fixture(scope="module")
def netns_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Kube, dict[str, str], set[str]]]:
    before, names = _host_network(), _netns_names()
    d = start_daemon(tmp_path_factory.mktemp("netns-home"), network="netns")
    k = Kube(d)
    k("apply", "-f", "-", input=WEB)
    k("apply", "-f", str(SAMPLES / "sleep.yaml"))
    k("wait", "--for=condition=Available", "deployment", "--all", "--timeout=90s")
    yield d, k, before, names
    stop_daemon(d)


def _client(k: Kube, name: str, *urls: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "annotations": {"sidecar.istio.io/inject": "false"}},
           "spec": {"containers": [{"name": "c", "image": "python:3.11",
                                    "command": ["python3", "-c", CLIENT, *urls]}]}}
    k("apply", "-f", "-", input=json.dumps(pod))


def _logs(k: Kube, *args: str) -> str:
    return k("logs", *args, check=False)


def test_unmodified_replicas_answer_kubectl_exec_curl(
        netns_mesh: tuple[Daemon, Kube, dict[str, str], set[str]]) -> None:
    """Istio's way of sending traffic: `kubectl exec deploy/sleep -- curl` to a Service name; both replicas
    of a program that binds 0.0.0.0 answer through the sidecars, with no change to the program or its env."""
    _, k, _, _ = netns_mesh
    pods = json.loads(k("get", "pods", "-l", "app=web", "-o", "json"))["items"]
    names = [p["metadata"]["name"] for p in pods]
    assert len(names) == 2 and all(p["status"]["podIP"].startswith("10.244.") for p in pods)
    vip = json.loads(k("get", "svc", "web", "-o", "json"))["spec"]["clusterIP"]
    assert vip.startswith("10.96.") and vip in k("get", "svc", "web")  # the CLUSTER-IP column

    def served_by_both() -> bool:
        out = k("exec", "deploy/sleep", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                "http://web:8000/")
        assert out == "200", out
        # Behind a sidecar the app sees Envoy's inbound source address, 127.0.0.6, as in Istio.
        return all('127.0.0.6 - - ' in _logs(k, n, "-c", "web") for n in names)

    wait_for(served_by_both, timeout=60, interval=0.2)
    env = k("exec", "deploy/web", "-c", "web", "--", "env")
    assert "HTTP_PROXY" not in env and "http_proxy" not in env
    assert "outbound|8000||web.default.svc.cluster.local" in _logs(k, "deploy/sleep", "-c", "istio-proxy")


def test_pods_without_sidecars_reach_cluster_ips(
        netns_mesh: tuple[Daemon, Kube, dict[str, str], set[str]]) -> None:
    _, k, _, _ = netns_mesh
    vip = json.loads(k("get", "svc", "plain", "-o", "json"))["spec"]["clusterIP"]
    _client(k, "client", f"http://{vip}/", "http://plain/")
    k("wait", "--for=condition=Ready", "pod/client", "--timeout=60s")
    client_ip = json.loads(k("get", "pod", "client", "-o", "json"))["status"]["podIP"]
    names = [p["metadata"]["name"] for p in json.loads(k("get", "pods", "-l", "app=plain", "-o", "json"))["items"]]
    # kube-proxy's rules pick either replica; each sees the client at its own pod IP (no NAT).
    for name in names:
        wait_for(lambda name=name: f'{client_ip} - - ' in _logs(k, name), timeout=30)
    out = _logs(k, "client")
    assert "HOST client 10.96.0.10" in out  # own hostname, the kubelet's resolv.conf
    assert f"GOT http://{vip}/ 200" in out and "GOT http://plain/ 200" in out


def test_dns_forms_inside_a_pod(netns_mesh: tuple[Daemon, Kube, dict[str, str], set[str]]) -> None:
    _, k, _, _ = netns_mesh
    vip = json.loads(k("get", "svc", "plain", "-o", "json"))["spec"]["clusterIP"]

    def hosts(name: str) -> set[str]:
        out = k("exec", "deploy/sleep", "--", "getent", "ahostsv4", name, check=False)
        return {line.split()[0] for line in out.splitlines() if line.strip()}

    for name in ("plain", "plain.default", "plain.default.svc", "plain.default.svc.cluster.local"):
        assert hosts(name) == {vip}, name
    pod_ips = {p["status"]["podIP"] for p in json.loads(k("get", "pods", "-l", "app=plain", "-o", "json"))["items"]}
    wait_for(lambda: hosts("plain-headless") == pod_ips, timeout=30)
    cp = subprocess.run([str(TOOLS / "kubectl-1.35"), "exec", "deploy/sleep", "--", "getent", "hosts",
                         "no-such-service"], env=k.d.env, capture_output=True, text=True, timeout=30)
    assert cp.returncode == 2  # getent: not found (NXDOMAIN at once, no timeout)
    sleep_pod = json.loads(k("get", "pods", "-l", "app=sleep", "-o", "json"))["items"][0]["metadata"]["name"]
    assert k("exec", "deploy/sleep", "--", "hostname").strip() == sleep_pod


def test_port_forward_into_a_pod(netns_mesh: tuple[Daemon, Kube, dict[str, str], set[str]]) -> None:
    _, k, _, _ = netns_mesh
    port = free_port()
    pf = subprocess.Popen([str(TOOLS / "kubectl-1.35"), "port-forward", "deploy/plain", f"{port}:8000"],
                          env=k.d.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert pf.stdout is not None
        assert f"Forwarding from 127.0.0.1:{port} -> 8000" in pf.stdout.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.status == 200 and b"Directory listing" in r.read()
    finally:
        pf.terminate()
        pf.wait(10)


def test_status_says_which_network(netns_mesh: tuple[Daemon, Kube, dict[str, str], set[str]]) -> None:
    d, _, _, _ = netns_mesh
    out = subprocess.run([sys.executable, "-m", "sluice.cli", "status"], env=d.env, capture_output=True, text=True,
                         timeout=30).stdout
    assert re.search(r"pod network\s+netns", out), out


def test_a_service_without_endpoints_refuses_at_once(
        netns_mesh: tuple[Daemon, Kube, dict[str, str], set[str]]) -> None:
    _, k, _, _ = netns_mesh
    vip = json.loads(k("get", "svc", "empty", "-o", "json"))["spec"]["clusterIP"]
    _client(k, "lonely", f"http://{vip}/")
    wait_for(lambda: "Connection refused" in _logs(k, "lonely"), timeout=30)


def test_restart_adopts_pods_and_keeps_their_network(
        netns_mesh: tuple[Daemon, Kube, dict[str, str], set[str]], tmp_path: Path) -> None:
    d, k, _, _ = netns_mesh
    before = {p["metadata"]["name"]: p["status"]["podIP"]
              for p in json.loads(k("get", "pods", "-o", "json"))["items"]}
    assert d.proc is not None
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    restarted = start_daemon(d.home, port=d.api_port, xds_port=d.xds_port, network="netns")
    d.proc = restarted.proc
    after = {p["metadata"]["name"]: p["status"]["podIP"]
             for p in json.loads(k("get", "pods", "-o", "json"))["items"]}
    assert after == before
    vip = json.loads(k("get", "svc", "plain", "-o", "json"))["spec"]["clusterIP"]
    _client(k, "after-restart", f"http://{vip}/", "http://web:8000/")
    wait_for(lambda: f"GOT http://{vip}/ 200" in _logs(k, "after-restart"), timeout=30)
    wait_for(lambda: "GOT http://web:8000/ 200" in _logs(k, "after-restart", "-c", "c"), timeout=30)


def test_probes_run_inside_the_pod(netns_mesh: tuple[Daemon, Kube, dict[str, str], set[str]]) -> None:
    """An httpGet probe reaches the app on the pod's address, and an exec probe runs in the pod's network: its
    `127.0.0.1:8000` is the pod's own app (nothing listens there on the host)."""
    _, k, _, _ = netns_mesh
    reach_app = ["python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 8000), 1)"]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "probed", "annotations": {"sidecar.istio.io/inject": "false"}},
           "spec": {"containers": [
               {"name": "web", "image": "python:3.11", "command": ["python3", "-m", "http.server", "8000"],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8000}, "periodSeconds": 1}},
               {"name": "watcher", "image": "python:3.11", "command": ["sleep", "3600"],
                "readinessProbe": {"exec": {"command": reach_app}, "periodSeconds": 1}}]}}
    k("apply", "-f", "-", input=json.dumps(pod))
    k("wait", "--for=condition=Ready", "pod/probed", "--timeout=60s")
    statuses = json.loads(k("get", "pod", "probed", "-o", "json"))["status"]["containerStatuses"]
    assert all(s["ready"] for s in statuses)
    ip = json.loads(k("get", "pod", "probed", "-o", "json"))["status"]["podIP"]
    # The httpGet probe reached the app, from inside the pod (as Istio's rewritten probes do).
    assert f'{ip} - - ' in _logs(k, "probed", "-c", "web")


def test_capture_annotations_are_honoured(netns_mesh: tuple[Daemon, Kube, dict[str, str], set[str]]) -> None:
    """`traffic.sidecar.istio.io/excludeOutboundPorts: "80"`: the pod's calls to port 80 bypass its sidecar,
    its calls to other ports are still captured."""
    _, k, _, _ = netns_mesh
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "partial", "annotations": {"traffic.sidecar.istio.io/excludeOutboundPorts": "80"}},
           "spec": {"containers": [{"name": "c", "image": "python:3.11",
                                    "command": ["python3", "-c", CLIENT, "http://plain/", "http://web:8000/"]}]}}
    k("apply", "-f", "-", input=json.dumps(pod))
    wait_for(lambda: "GOT http://plain/ 200" in _logs(k, "partial", "-c", "c")
             and "GOT http://web:8000/ 200" in _logs(k, "partial", "-c", "c"), timeout=60)
    proxy_log = _logs(k, "partial", "-c", "istio-proxy")
    assert "outbound|8000||web.default.svc.cluster.local" in proxy_log
    assert "plain.default.svc.cluster.local" not in proxy_log


def test_down_leaves_nothing_behind(netns_mesh: tuple[Daemon, Kube, dict[str, str], set[str]]) -> None:
    # Runs last in this module: stops the daemon.
    d, _, before, names = netns_mesh
    # Only this daemon's namespaces: other daemons on the machine (tests running side by side) make their own.
    ours = NodeNetwork(d.home).prefix + "-"
    made = {n for n in _netns_names() - names if n.startswith(ours)}
    assert any(n.endswith("-node") for n in made) and len(made) >= 4
    stop_daemon(d)
    assert {n for n in _netns_names() if n.startswith(ours)} == set()
    assert _host_network() == before
