"""Helpers for end-to-end tests against a full daemon: Bookinfo running as processes with real Envoys."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

from sluice.runtime.layout import RuntimeLayout
from sluice.runtime.netns.dial import socket_in
from sluice.runtime.netns.node import NodeNetwork
from tests.conftest import TOOLS, Daemon, start_daemon, stop_daemon, wait_for

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "sluice" / "samples"
STORY_NS = "tutorial"


def start_story_mesh(tmp: Path, *, config: str = "", extra: Sequence[str] = (),
                     network: str | None = None) -> Daemon:
    """A daemon (state in `tmp/home`, `config` its config.yaml, pods on `network`) running the story's
    namespace: Bookinfo, its DestinationRules and sleep, then the `extra` manifests; returns once every
    Deployment is available."""
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    if config:
        (home / "config.yaml").write_text(config)
    d = start_daemon(home, network=network)
    kube = [str(TOOLS / "kubectl-1.35"), f"--cache-dir={tmp}/kc", "-n", STORY_NS]
    try:
        subprocess.run([*kube, "create", "namespace", STORY_NS], env=d.env, capture_output=True)
        for f in ("bookinfo.yaml", "destination-rule-all.yaml", "sleep.yaml"):
            subprocess.run([*kube, "apply", "-f", str(SAMPLES / f)], env=d.env, check=True, capture_output=True)
        for doc in extra:
            subprocess.run([*kube, "apply", "-f", "-"], input=doc, env=d.env, check=True, capture_output=True,
                           text=True)
        apps = client.AppsV1Api(api_client(d))
        wait_for(lambda: deployments_ready(apps, STORY_NS), timeout=120, interval=0.25)
    except BaseException:
        stop_daemon(d)
        raise
    return d


def api_client(d: Daemon) -> client.ApiClient:
    return config.new_client_from_config(str(d.kubeconfig))


def pod_ips(core: client.CoreV1Api, ns: str, selector: str) -> list[str]:
    return [p.status.pod_ip for p in core.list_namespaced_pod(ns, label_selector=selector).items
            if p.status and p.status.pod_ip and p.metadata.deletion_timestamp is None]


def deployments_ready(apps: client.AppsV1Api, ns: str) -> bool:
    items = apps.list_namespaced_deployment(ns).items
    return bool(items) and all((d.status.available_replicas or 0) >= (d.spec.replicas or 0)
                               and d.status.observed_generation == d.metadata.generation for d in items)


@dataclass(frozen=True)
class Pod:
    """Where a test's request starts: a pod's IP, and in netns mode its network namespace and a resolver for
    Service names (the test plays the pod's app: it connects from inside the namespace, and the capture
    rules hand the connection to the pod's sidecar, exactly as for the app)."""

    ip: str
    netns: str | None = None
    resolve: Callable[[str], str] | None = None  # netns mode: service name → ClusterIP
    admin: str | None = None  # loopback mode: its Envoy admin's Unix socket (netns: 127.0.0.1:15000 inside)


def pod(d: Daemon, ip: str, core: client.CoreV1Api | None = None, namespace: str = STORY_NS) -> Pod:
    """The `Pod` for a pod IP of daemon `d` (netns mode when the IP is a 10.244.x.y pod address)."""
    if not ip.startswith("10.244."):
        return Pod(ip, admin=str(RuntimeLayout(d.home / "runtime").admin_socket(ip)))
    api = core or client.CoreV1Api(api_client(d))

    def resolve(host: str) -> str:
        name, _, rest = host.partition(".")
        ns = rest.split(".", 1)[0] if rest else namespace
        key = (str(d.home), ns, name)
        if key not in _CLUSTER_IPS:  # a Service keeps its ClusterIP: ask once (also while the daemon is down)
            _CLUSTER_IPS[key] = str(api.read_namespaced_service(name, ns).spec.cluster_ip)
        return _CLUSTER_IPS[key]

    return Pod(ip, NodeNetwork(d.home).pod_path(ip), resolve)


_CLUSTER_IPS: dict[tuple[str, str, str], str] = {}


class _PodConnection(http.client.HTTPConnection):
    def __init__(self, netns: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._netns = netns

    def connect(self) -> None:
        sock = socket_in(self._netns)
        sock.settimeout(self.timeout)
        sock.connect((self.host, self.port))
        self.sock = sock


def via(target: str | Pod, url: str, headers: dict[str, str] | None = None,
        timeout: float = 10) -> tuple[int, bytes]:
    """A request sent the way an app in the pod sends it: through its sidecar as an HTTP proxy (loopback
    mode), or from inside the pod's network namespace to the Service's address (netns mode)."""
    if isinstance(target, str) or target.netns is None:
        ip = target if isinstance(target, str) else target.ip
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://{ip}:15001"}))
        req = urllib.request.Request(url, headers=headers or {})
        try:
            with opener.open(req, timeout=timeout) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read()
    parts = urllib.parse.urlsplit(url)
    assert target.resolve is not None and parts.hostname
    conn = _PodConnection(target.netns, target.resolve(parts.hostname), parts.port or 80, timeout)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                     headers={"Host": parts.netloc, **(headers or {})})
        resp = conn.getresponse()
        return int(resp.status), resp.read()
    finally:
        conn.close()


def reviews_version(body: bytes) -> str:
    """Which reviews version answered, from its own response: the pod that answered (`podname`, as Bookinfo's
    reviews reports it), else its stars: none = v1, black = v2, red = v3. (A v2 or v3 whose ratings call failed
    answers without stars: the pod name still says which it was.)"""
    doc = json.loads(body)
    podname = str(doc.get("podname") or "")
    for v in ("v1", "v2", "v3"):
        if podname.startswith(f"reviews-{v}-"):
            return v
    colors = {(r.get("rating") or {}).get("color") for r in doc.get("reviews", [])}
    if colors == {None}:
        return "v1"
    return {"black": "v2", "red": "v3"}.get(next(iter(colors - {None}), ""), "?")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def envoy_admin(target: Pod, path: str) -> tuple[int, bytes]:
    """GET from a sidecar's Envoy admin, as only the daemon's user can: inside the pod (netns mode) or over
    its Unix socket (loopback mode). Synchronous: callers may run inside an event loop (Playwright's)."""
    conn: http.client.HTTPConnection = _PodConnection(target.netns, "127.0.0.1", 15000, 5) \
        if target.netns is not None else _UnixConnection(str(target.admin), 5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return int(resp.status), resp.read()
    finally:
        conn.close()


def config_dump(target: Pod, resource: str = "dynamic_route_configs") -> dict[str, Any]:
    """A sidecar's Envoy config dump, read from its admin."""
    status, body = envoy_admin(target, f"/config_dump?resource={resource}")
    assert status == 200, body[:200]
    return dict(json.loads(body))


def healthy_endpoints(target: Pod, cluster: str) -> int:
    """How many healthy endpoints a sidecar's Envoy holds for `cluster` (its `/clusters` view): what a routed
    request needs, beyond the route naming the cluster."""
    status, body = envoy_admin(target, "/clusters?format=json")
    assert status == 200, body[:200]
    for c in json.loads(body).get("cluster_statuses", []):
        if c.get("name") == cluster:
            return sum(1 for h in c.get("host_statuses", [])
                       if h.get("health_status", {}).get("eds_health_status", "HEALTHY") == "HEALTHY")
    return 0


def route_weights(target: Pod, vhost_prefix: str = "reviews.") -> dict[str, int]:
    """The weighted clusters a sidecar currently holds for the reviews virtual host."""
    out: dict[str, int] = {}
    for cfg in config_dump(target).get("configs", []):
        for vh in cfg.get("route_config", {}).get("virtual_hosts", []):
            if not vh.get("name", "").startswith(vhost_prefix):
                continue
            for route in vh.get("routes", []):
                action = route.get("route", {})
                if "weighted_clusters" in action:
                    for c in action["weighted_clusters"]["clusters"]:
                        out[c["name"].split("|")[2]] = int(c.get("weight", 0))
                elif "cluster" in action:
                    out[action["cluster"].split("|")[2] or "-"] = 100
            return out
    return out


@dataclass
class SteadyLoad:
    """Requests at a steady pace through a pod's sidecar until stopped; counts answers by status and version."""

    proxy_ip: str | Pod
    url: str
    interval: float = 0.01
    codes: Counter[int] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SteadyLoad:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + 600  # stops by itself
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                code, body = via(self.proxy_ip, self.url)
                self.codes[code] += 1
                if code == 200 and "/reviews/" in self.url:
                    self.versions[reviews_version(body)] += 1
                elif code != 200:
                    self.failures.append(f"{code}: {body[:200]!r}")
            except OSError as e:
                self.failures.append(repr(e))
            time.sleep(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    @property
    def total(self) -> int:
        return sum(self.codes.values())


__all__ = ["SAMPLES", "STORY_NS", "start_story_mesh", "api_client", "pod_ips", "deployments_ready", "via", "reviews_version", "config_dump",
           "route_weights", "SteadyLoad", "wait_for"]
