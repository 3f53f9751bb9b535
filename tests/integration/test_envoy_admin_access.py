"""Only the daemon reaches an Envoy's admin interface (issue 9, point 5): no local program, web page or other
pod can `POST /quitquitquit` to a sidecar or to the ingress gateway, while `sluice proxy-config`, readiness
and `kubectl exec -c istio-proxy` keep working.

- loopback mode (pods share the host's network on 127.x addresses): the admin is a Unix socket under
  `SLUICE_HOME/runtime/admin/`, mode 0600, owned by the daemon's user, in a 0700 directory; nothing listens
  on `<pod IP>:15000` (or anywhere else on 15000);
- netns mode: the admin is on 127.0.0.1:15000 inside the pod's own network namespace, as Istio binds it:
  `kubectl exec -c istio-proxy -- curl localhost:15000/...` answers, but another pod gets no admin at
  `<pod IP>:15000` (the inbound capture passes the connection to the pod IP, where nothing listens) and the
  host has no route to pod addresses at all.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sluice import mesh
from sluice.runtime.layout import RuntimeLayout
from tests.conftest import TOOLS, Daemon, start_daemon, stop_daemon, wait_for
from tests.integration.cli_helpers import Sluice

NS = "adm"
GW_NS = "istio-system"
SAMPLES = Path(__file__).resolve().parents[2] / "src" / "sluice" / "samples"


def _details_only() -> str:
    docs = [d for d in yaml.safe_load_all((SAMPLES / "bookinfo.yaml").read_text()) if d]
    keep = [d for d in docs if (d["metadata"].get("labels") or {}).get("app") == "details"
            or d["metadata"]["name"] in ("details", "bookinfo-details")]
    return yaml.safe_dump_all(keep)


@dataclass
class Mesh:
    d: Daemon
    network: str
    sluice: Sluice
    cache: Path

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        cp = subprocess.run([str(TOOLS / "kubectl-1.35"), f"--cache-dir={self.cache}", *args], input=input,
                            env=self.d.env, capture_output=True, text=True, timeout=60)
        assert not check or cp.returncode == 0, f"kubectl {' '.join(args)}: {cp.stdout}{cp.stderr}"
        return cp

    def pod(self, ns: str, app_label: str) -> dict[str, Any]:
        items = json.loads(self.kubectl("get", "pods", "-n", ns, "-l", app_label, "-o", "json").stdout)["items"]
        [p] = items
        return dict(p)

    def proxies(self) -> list[dict[str, Any]]:
        return [self.pod(NS, "app=sleep"), self.pod(NS, "app=details"), self.pod(GW_NS, "istio=ingressgateway")]


def _ready(m: Mesh) -> bool:
    try:
        return all(any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
                   for p in m.proxies())
    except ValueError:  # not every pod exists yet
        return False


def running_mesh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 more: str = "") -> Iterator[Mesh]:
    """A daemon in the network mode `request.param` names, with sleep, details and the ingress gateway Ready, and
    the manifests `more` applied in namespace `NS` (for module fixtures: skips netns where it is unavailable)."""
    network = str(request.param)
    if network == "netns":
        from sluice.runtime.netns.node import netns_available

        ok, why = netns_available()
        if not ok:
            pytest.skip(f"netns mode unavailable: {why}")
    tmp = tmp_path_factory.mktemp(f"mesh-{network}")
    d = start_daemon(tmp / "home", network=network)
    m = Mesh(d, network, Sluice(d.env), tmp / "kc")
    try:
        m.kubectl("create", "namespace", NS)
        m.kubectl("apply", "-n", NS, "-f", str(SAMPLES / "sleep.yaml"))
        m.kubectl("apply", "-n", NS, "-f", "-", input=_details_only())
        m.kubectl("apply", "-f", str(SAMPLES / "ingressgateway.yaml"))
        if more:
            m.kubectl("apply", "-n", NS, "-f", "-", input=more)
        wait_for(lambda: _ready(m), timeout=90, interval=0.25)
        yield m
    finally:
        stop_daemon(d)


@pytest.fixture(scope="module", params=["loopback", "netns"])
def admin_mesh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    yield from running_mesh(request, tmp_path_factory)


def _tcp_accepts(ip: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((ip, port)) == 0


def _overlaps_pods(dst: str) -> bool:
    """Whether a route destination (IPv4, from `ip -j route`) covers part of the netns pod network."""
    try:
        net = ipaddress.IPv4Network(dst, strict=False)
    except ValueError:
        return False  # "default", "broadcast …", IPv6
    return net.prefixlen > 0 and net.overlaps(mesh.NETNS_POD_NETWORK)


def _daemon_uid(d: Daemon) -> int:
    assert d.proc is not None
    status = Path(f"/proc/{d.proc.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def _proxy_config_answers(m: Mesh, p: dict[str, Any]) -> None:
    name = f"{p['metadata']['name']}.{p['metadata']['namespace']}"
    out = m.sluice.ok("proxy-config", "clusters", name, "-o", "json")
    clusters = json.loads(out)
    assert any(c.get("name") == "xds-grpc" for c in clusters), out[:500]


def test_admin_is_reachable_only_by_the_daemon(admin_mesh: Mesh) -> None:
    m = admin_mesh
    proxies = m.proxies()
    layout = RuntimeLayout(m.d.home / "runtime")
    for p in proxies:
        ip = p["status"]["podIP"]
        restarts = {c["name"]: c["restartCount"] for c in p["status"]["containerStatuses"]}
        if m.network == "loopback":
            # No TCP admin on the host's loopback: neither on the pod IP nor on the app IP.
            assert not _tcp_accepts(ip, mesh.PROXY_ADMIN_PORT), ip
            assert not _tcp_accepts(mesh.app_ip(ip), mesh.PROXY_ADMIN_PORT)
            st = layout.admin_socket(ip).stat()
            assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
            assert st.st_uid == _daemon_uid(m.d)
            assert stat.S_IMODE(layout.admin_sockets.stat().st_mode) == 0o700
        # What uses the admin still works: proxy-config (through the daemon) and the readiness check.
        _proxy_config_answers(m, p)
        assert restarts[mesh.SIDECAR_CONTAINER] == 0
    if m.network == "loopback":
        assert sorted(p.name for p in layout.admin_sockets.iterdir()) == \
            sorted(f"{p['status']['podIP']}.sock" for p in proxies)
    else:
        assert not layout.admin_sockets.exists() or not any(layout.admin_sockets.iterdir())
        # The host cannot reach a pod's 127.0.0.1 at all, nor its pod IP: no route of the host's own network
        # namespace leads into the pod network (a connection there would leave by the default route, so the
        # test only reads the routing table).
        routes = json.loads(subprocess.run(["ip", "-j", "route", "show", "table", "all"], capture_output=True,
                                           text=True, check=True).stdout)
        inside = [r for r in routes if _overlaps_pods(str(r.get("dst")))]
        assert inside == []


def test_netns_admin_answers_inside_the_pod_only(admin_mesh: Mesh) -> None:
    m = admin_mesh
    if m.network != "netns":
        pytest.skip("pods have their own network only in netns mode")
    sleep, details, gateway = m.proxies()
    # Inside its own pod, the sidecar's admin answers on localhost:15000, as in Istio.
    cp = m.kubectl("exec", "-n", NS, "deploy/details-v1", "-c", "istio-proxy", "--",
                   "curl", "-s", "localhost:15000/stats?filter=^server.live$")
    assert cp.stdout.strip() == "server.live: 1", cp.stdout + cp.stderr
    # From another pod, <pod IP>:15000 is no admin: not for a sidecar (captured inbound, passed on to the pod
    # IP where nothing listens) and not for the gateway (nothing on its pod IP); POST /quitquitquit is no kill.
    for target in (details, gateway):
        ip = target["status"]["podIP"]
        for method in ("GET", "POST"):
            path = "/server_info" if method == "GET" else "/quitquitquit"
            cp = m.kubectl("exec", "-n", NS, "deploy/sleep", "--", "curl", "-s", "--max-time", "5", "-X", method,
                           "-o", "/dev/null", "-w", "%{http_code}", f"http://{ip}:{mesh.PROXY_ADMIN_PORT}{path}",
                           check=False)
            assert cp.stdout.strip() != "200", (ip, method, cp.stdout, cp.stderr)
    # Istio's own open ports into admin (15090 /stats/prometheus, 15021 /healthz/ready) answer just those paths:
    # a path that climbs out of them reaches no other admin handler.
    ip = details["status"]["podIP"]
    for url in (f"http://{ip}:15090/stats/prometheus/../../quitquitquit",
                f"http://{ip}:15021/healthz/ready/../../quitquitquit"):
        cp = m.kubectl("exec", "-n", NS, "deploy/sleep", "--", "curl", "-s", "--max-time", "5", "--path-as-is",
                       "-X", "POST", "-o", "/dev/null", "-w", "%{http_code}", url, check=False)
        assert cp.stdout.strip() != "200", (url, cp.stdout, cp.stderr)
    cp = m.kubectl("exec", "-n", NS, "deploy/sleep", "--", "curl", "-s", "--max-time", "5", "-o", "/dev/null",
                   "-w", "%{http_code}", f"http://{ip}:15021/healthz/ready", check=False)
    assert cp.stdout.strip() == "200", cp.stdout + cp.stderr  # what they are for still works
    # Every Envoy is still the one that started, and still ready: sleep's own too, since its sidecar's 15090 and
    # 15021 listeners are what answer a pod's calls to another pod's 15090/15021 (original-destination hand-off).
    for before, after in ((details, m.pod(NS, "app=details")), (gateway, m.pod(GW_NS, "istio=ingressgateway")),
                          (sleep, m.pod(NS, "app=sleep"))):
        [proxy] = [c for c in after["status"]["containerStatuses"] if c["name"] == mesh.SIDECAR_CONTAINER]
        assert proxy["restartCount"] == 0 and proxy["ready"] and "running" in proxy["state"]
        assert before["metadata"]["uid"] == after["metadata"]["uid"]
    _proxy_config_answers(m, sleep)


def _probed_pod(name: str, annotations: dict[str, str]) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations},
        "spec": {"containers": [{"name": "sleep", "image": "docker.io/curlimages/curl:8.16.0",
                                 "command": ["/bin/sleep", "infinity"]}]}})


def _ready_condition(m: Mesh, name: str) -> dict[str, Any]:
    p = json.loads(m.kubectl("get", "pod", "-n", NS, name, "-o", "json").stdout)
    return next((c for c in p["status"].get("conditions") or [] if c["type"] == "Ready"), {})


def test_sidecar_readiness_is_istios_injected_probe(admin_mesh: Mesh) -> None:
    """The injected istio-proxy carries Istio's startup and readiness probes on 15021 `/healthz/ready`, with the
    `readiness.status.sidecar.istio.io/*` annotations' values, and the pod's readiness follows them: a proxy
    that fails its health check turns the pod unready after `failureThreshold` periods, and ready again."""
    m = admin_mesh
    annotations = {"readiness.status.sidecar.istio.io/periodSeconds": "1",
                   "readiness.status.sidecar.istio.io/failureThreshold": "2"}
    m.kubectl("apply", "-n", NS, "-f", "-", input=_probed_pod("probed", annotations))
    try:
        p = json.loads(m.kubectl("get", "pod", "-n", NS, "probed", "-o", "json").stdout)
        [proxy] = [c for c in p["spec"]["containers"] if c["name"] == mesh.SIDECAR_CONTAINER]
        get = {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"}
        assert proxy["startupProbe"] == {"httpGet": get, "initialDelaySeconds": 0, "periodSeconds": 1,
                                         "timeoutSeconds": 3, "failureThreshold": 600, "successThreshold": 1}
        assert proxy["readinessProbe"] == {"httpGet": get, "initialDelaySeconds": 0, "periodSeconds": 1,
                                           "timeoutSeconds": 3, "failureThreshold": 2, "successThreshold": 1}
        assert proxy["ports"] == [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}]
        wait_for(lambda: _ready_condition(m, "probed").get("status") == "True", timeout=60, interval=0.2)

        def agent(path: str) -> None:
            m.kubectl("exec", "-n", NS, "probed", "-c", "istio-proxy", "--", "pilot-agent", "request", "POST", path)

        agent("healthcheck/fail")  # Envoy's /ready now answers 503 (DRAINING), as pilot-agent's /healthz/ready
        wait_for(lambda: _ready_condition(m, "probed").get("status") == "False", timeout=30, interval=0.2)
        cond = _ready_condition(m, "probed")
        assert cond["reason"] == "ContainersNotReady", cond
        assert cond["message"] == "containers with unready status: [istio-proxy]", cond
        agent("healthcheck/ok")
        wait_for(lambda: _ready_condition(m, "probed").get("status") == "True", timeout=30, interval=0.2)
    finally:
        m.kubectl("delete", "pod", "-n", NS, "probed", "--wait=true", "--timeout=60s", check=False)


def test_bad_readiness_annotations_are_refused_as_istios_injector_does(admin_mesh: Mesh) -> None:
    m = admin_mesh
    if m.network != "loopback":
        pytest.skip("admission is the same in both modes")
    bad = {"readiness.status.sidecar.istio.io/periodSeconds": "soon",
           "readiness.status.sidecar.istio.io/failureThreshold": "-1"}
    cp = m.kubectl("apply", "-n", NS, "-f", "-", input=_probed_pod("refused", bad), check=False)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert ('admission webhook "namespace.sidecar-injector.istio.io" denied the request: 2 errors occurred:\n'
            "\t* invalid value '-1' for annotation 'readiness.status.sidecar.istio.io/failureThreshold': "
            'strconv.ParseUint: parsing "-1": invalid syntax\n'
            "\t* invalid value 'soon' for annotation 'readiness.status.sidecar.istio.io/periodSeconds': "
            'strconv.ParseUint: parsing "soon": invalid syntax') in cp.stderr, cp.stderr
    assert m.kubectl("get", "pod", "-n", NS, "refused", check=False).returncode == 1  # nothing was created
    cp = m.kubectl("apply", "-n", NS, "-f", "-", input=_probed_pod("refused", {"proxy.istio.io/config": "[1, 2"}),
                   check=False)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert ("* invalid value '[1, 2' for annotation 'proxy.istio.io/config': failed to convert to apply proxy "
            "config: yaml: line ") in cp.stderr, cp.stderr
    # status port "0": Istio injects no probes at all, and the pod is ready once its containers run
    m.kubectl("apply", "-n", NS, "-f", "-", input=_probed_pod("unprobed", {"status.sidecar.istio.io/port": "0"}))
    try:
        p = json.loads(m.kubectl("get", "pod", "-n", NS, "unprobed", "-o", "json").stdout)
        [proxy] = [c for c in p["spec"]["containers"] if c["name"] == mesh.SIDECAR_CONTAINER]
        assert "readinessProbe" not in proxy and "startupProbe" not in proxy
        wait_for(lambda: _ready_condition(m, "unprobed").get("status") == "True", timeout=60, interval=0.2)
    finally:
        m.kubectl("delete", "pod", "-n", NS, "unprobed", "--wait=true", "--timeout=60s", check=False)


def _stats(m: Mesh, target: str) -> list[str]:
    """`kubectl exec TARGET -c istio-proxy -- pilot-agent request GET stats`, as the circuit-breaking task reads it."""
    out = m.kubectl("exec", "-n", NS, target, "-c", "istio-proxy", "--", "pilot-agent", "request", "GET", "stats")
    return out.stdout.splitlines()


def test_proxies_keep_istios_stats_and_what_a_pod_asks_for(admin_mesh: Mesh) -> None:
    """Istio's bootstrap keeps only the stats on its inclusion list (its own, the cluster manager's, listener
    manager's, server's, the xDS cluster's); a pod asks for more with `proxy.istio.io/config`'s proxyStatsMatcher,
    as Istio's fortio sample does for `cluster.outbound`."""
    m = admin_mesh
    plain = _stats(m, "deploy/sleep")
    assert "server.live: 1" in plain and any(s.startswith("cluster.xds-grpc.") for s in plain), plain[:20]
    assert any(s.startswith("cluster_manager.") for s in plain) and any(s.startswith("listener_manager.")
                                                                         for s in plain)
    assert not [s for s in plain if s.startswith(("cluster.outbound|", "cluster.inbound|", "http.", "listener."))]
    config = 'proxyStatsMatcher:\n  inclusionPrefixes:\n  - "cluster.outbound"\n'
    m.kubectl("apply", "-n", NS, "-f", "-", input=_probed_pod("counted", {"proxy.istio.io/config": config}))
    try:
        wait_for(lambda: _ready_condition(m, "counted").get("status") == "True", timeout=60, interval=0.2)
        details = f"cluster.outbound|9080||details.{NS}.svc.cluster.local.upstream_rq_total: "
        wait_for(lambda: any(s.startswith(details) for s in _stats(m, "counted")), timeout=30, interval=0.5)
        assert not [s for s in _stats(m, "counted") if s.startswith(("cluster.inbound|", "http."))]
    finally:
        m.kubectl("delete", "pod", "-n", NS, "counted", "--wait=true", "--timeout=60s", check=False)


def test_app_probes_go_through_the_agents_status_port_as_istio_rewrites_them(admin_mesh: Mesh,
                                                                            tmp_path: Path) -> None:
    """Istio's injector rewrites an app's httpGet/tcpSocket probes to the agent's 15020 `/app-health/<c>/…` (and
    its lifecycle handlers to `/app-lifecycle/<c>/…`) and hands the originals to the agent in
    ISTIO_KUBE_APP_PROBERS; the kubelet's probe then answers what the original would: this pod turns Ready only
    once its app serves `/ready`, and its preStop GET reaches the app before it stops."""
    m = admin_mesh
    requests = tmp_path / "requests.log"  # the app's request log (http.server writes it to stderr)
    serve = f'exec python3 -m http.server 8765 --bind "${{SLUICE_BIND:-0.0.0.0}}" 2>>{requests}'
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rewritten", "labels": {"app": "rewritten"}},
           "spec": {"containers": [{
               "name": "web", "image": "python:3.12", "command": ["sh", "-c", serve],
               "ports": [{"name": "http-web", "containerPort": 8765}],
               "readinessProbe": {"httpGet": {"path": "/ready", "port": "http-web"}, "periodSeconds": 1,
                                  "failureThreshold": 1},
               "livenessProbe": {"tcpSocket": {"port": 8765}, "periodSeconds": 5},
               "lifecycle": {"preStop": {"httpGet": {"path": "/stopping", "port": "http-web"}}}}]}}
    m.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(pod))
    try:
        p = json.loads(m.kubectl("get", "pod", "-n", NS, "rewritten", "-o", "json").stdout)
        [web] = [c for c in p["spec"]["containers"] if c["name"] == "web"]
        assert web["readinessProbe"]["httpGet"] == {"path": "/app-health/web/readyz", "port": 15020, "scheme": "HTTP"}
        assert web["livenessProbe"]["httpGet"] == {"path": "/app-health/web/livez", "port": 15020, "scheme": "HTTP"}
        assert "tcpSocket" not in web["livenessProbe"]
        [proxy] = [c for c in p["spec"]["containers"] if c["name"] == mesh.SIDECAR_CONTAINER]
        [probers] = [e["value"] for e in proxy["env"] if e["name"] == "ISTIO_KUBE_APP_PROBERS"]
        assert web["lifecycle"]["preStop"] == {"httpGet": {"path": "/app-lifecycle/web/prestopz", "port": 15020,
                                                           "scheme": "HTTP"}}
        assert json.loads(probers) == {
            "/app-health/web/livez": {"tcpSocket": {"port": 8765}, "timeoutSeconds": 1},
            "/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": 8765, "scheme": "HTTP"},
                                       "timeoutSeconds": 1},
            "/app-lifecycle/web/prestopz": {"httpGet": {"path": "/stopping", "port": 8765, "scheme": "HTTP"}}}
        # serving, but /ready is a 404 until the file exists: the sidecar ready, the app not
        def ready_containers() -> dict[str, bool]:
            p = json.loads(m.kubectl("get", "pod", "-n", NS, "rewritten", "-o", "json").stdout)
            return {c["name"]: c["ready"] for c in p["status"].get("containerStatuses") or []}

        wait_for(lambda: ready_containers() == {"web": False, mesh.SIDECAR_CONTAINER: True}, timeout=60, interval=0.2)
        m.kubectl("exec", "-n", NS, "rewritten", "-c", "web", "--", "sh", "-c", "touch ready")
        wait_for(lambda: _ready_condition(m, "rewritten").get("status") == "True", timeout=30, interval=0.2)
        assert "GET /stopping" not in requests.read_text()
        m.kubectl("delete", "pod", "-n", NS, "rewritten", "--wait=true", "--timeout=60s")
        assert '"GET /stopping HTTP/1.1" 404' in requests.read_text()  # the original preStop, run for the agent
    finally:
        m.kubectl("delete", "pod", "-n", NS, "rewritten", "--wait=true", "--timeout=60s", check=False)


MESH_HOLD = """apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    defaultConfig:
      holdApplicationUntilProxyStarts: true
"""


@pytest.mark.parametrize("where", ["pod", "mesh"])
def test_hold_application_until_proxy_starts(admin_mesh: Mesh, where: str) -> None:
    """`holdApplicationUntilProxyStarts` in a pod's ProxyConfig, or in the mesh config's `defaultConfig` for every
    pod: Istio's injector puts istio-proxy first with a postStart `pilot-agent wait`, and the kubelet starts the
    app only once that hook has seen Envoy ready: the app's very first request, made as it starts, goes through
    a configured sidecar. A pod's own ProxyConfig overrides the mesh's default."""
    m = admin_mesh
    if where == "mesh":
        cp = m.kubectl("apply", "-f", "-", input=MESH_HOLD)
        assert "Warning" not in cp.stderr, cp.stderr  # acted on, so not named as stored-only
        unheld = {"apiVersion": "v1", "kind": "Pod",
                  # a body over 64 KiB: admitted where the injector can read the mesh config, not in a body worker
                  "metadata": {"name": "unheld", "annotations": {
                      "proxy.istio.io/config": "holdApplicationUntilProxyStarts: false", "padding": "x" * 70_000}},
                  "spec": {"containers": [{"name": "app", "image": "busybox", "command": ["sleep", "3600"]}]}}
        try:
            m.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(unheld))
            p = json.loads(m.kubectl("get", "pod", "-n", NS, "unheld", "-o", "json").stdout)
            assert [c["name"] for c in p["spec"]["containers"]] == ["app", mesh.SIDECAR_CONTAINER]
            assert "lifecycle" not in p["spec"]["containers"][1]
        finally:
            m.kubectl("delete", "pod", "-n", NS, "unheld", "--wait=false", check=False)
    try:
        _first_call_through_the_proxy(m, {} if where == "mesh" else {
            "proxy.istio.io/config": '{"holdApplicationUntilProxyStarts": true}'})
    finally:
        if where == "mesh":
            m.kubectl("delete", "configmap", "-n", "istio-system", "istio", check=False)


def _first_call_through_the_proxy(m: Mesh, annotations: dict[str, str]) -> None:
    first_call = ("import urllib.request, time\n"
                  "try:\n"
                  "    print('first call', urllib.request.urlopen('http://details:9080/details/0', timeout=5).status,"
                  " flush=True)\n"
                  "except Exception as e:\n"
                  "    print('first call failed', e, flush=True)\n"
                  "time.sleep(3600)\n")
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "held", "labels": {"app": "held"},
                        "annotations": annotations},
           "spec": {"terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "app", "image": "python:3.12", "command": ["python3", "-c", first_call]}]}}
    m.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(pod))
    try:
        p = json.loads(m.kubectl("get", "pod", "-n", NS, "held", "-o", "json").stdout)
        assert [c["name"] for c in p["spec"]["containers"]] == [mesh.SIDECAR_CONTAINER, "app"]
        assert p["spec"]["containers"][0]["lifecycle"] == {
            "postStart": {"exec": {"command": ["pilot-agent", "wait"]}}}
        assert p["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] == "app"

        def first() -> str:
            cp = m.kubectl("logs", "-n", NS, "held", "-c", "app", check=False)
            return cp.stdout.strip() if cp.returncode == 0 else ""

        wait_for(first, timeout=60, interval=0.2)
        assert first() == "first call 200"
    finally:
        m.kubectl("delete", "pod", "-n", NS, "held", "--wait=true", "--timeout=60s", check=False)
