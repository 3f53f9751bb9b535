"""The translation's inputs and outputs: xDS type URLs, mesh options, and who a proxy is.

Used by every builder in this package and, through `sluice.xds.translate`, by the ADS server (which turns
a connected node into a `Proxy`) and the runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from google.protobuf.message import Message

from sluice import mesh
from sluice.resources.loadbalancer import PortMap
from sluice.xds import typeurls

__all__ = [
    "TYPE_LISTENER", "TYPE_ROUTE", "TYPE_CLUSTER", "TYPE_ENDPOINT", "ADS_ORDER", "Resources",
    "MeshOptions", "NetworkMode", "Proxy", "proxy_from_pod", "OUTBOUND_CAPTURE_PORT", "INBOUND_CAPTURE_PORT",
    "STATUS_PORT", "PROMETHEUS_PORT", "RESERVED_PORTS",
]

TYPE_LISTENER = typeurls.LISTENER
TYPE_ROUTE = typeurls.ROUTE
TYPE_CLUSTER = typeurls.CLUSTER
TYPE_ENDPOINT = typeurls.ENDPOINT
ADS_ORDER = typeurls.ADS_ORDER  # the order ADS must push in (sluice.xds.typeurls)

Resources = dict[str, dict[str, Message]]

# How pods reach their sidecar. `loopback`: pods share the host's network, apps send outbound HTTP to the
# sidecar's HTTP proxy and inbound listeners bind the pod IP. `netns`: each pod has its own network
# namespace with istio-init's capture rules, so the sidecar gets Istio's listener model (virtualOutbound
# on 15001, virtualInbound on 15006, per-port listeners that only receive hand-offs).
NetworkMode = Literal["loopback", "netns"]

# Istio's fixed sidecar ports (netns mode): istio-init redirects outbound TCP to 15001 and inbound TCP to
# 15006; 15021 (health) and 15090 (Prometheus) are the bootstrap's static listeners. A Service port that
# collides with one of them gets no listener (Istio's conflictWithReservedListener).
OUTBOUND_CAPTURE_PORT = mesh.PROXY_OUTBOUND_PORT
INBOUND_CAPTURE_PORT = 15006
STATUS_PORT = mesh.PROXY_HEALTH_PORT
PROMETHEUS_PORT = mesh.PROMETHEUS_PORT
RESERVED_PORTS = frozenset({OUTBOUND_CAPTURE_PORT, INBOUND_CAPTURE_PORT, STATUS_PORT, PROMETHEUS_PORT})


@dataclass(frozen=True)
class MeshOptions:
    """Mesh-wide switches that change the generated config (Istio's MeshConfig, the parts we need)."""

    relative_weights: bool = False
    # When set, every HTTP connection manager and TCP proxy also streams access-log entries over gRPC ALS
    # to it: (host, port), or the path of a Unix socket (netns mode: a pod's network has no route to the
    # daemon, its filesystem does).
    als_address: tuple[str, int] | str | None = None
    # The ALS endpoint requires the proxy's client certificate (the bootstrap's static secrets, see
    # sluice.xds.identity): the ALS cluster gets the same mutual-TLS transport socket as xds-grpc.
    als_tls: bool = False
    network: NetworkMode = "loopback"
    # netns mode: the network namespace file (/run/netns/NAME) of the host, where a gateway's listeners
    # bind (its Envoy runs in its own pod namespace but must be reachable on the host's 127.0.0.1).
    host_netns: str | None = None
    # where a gateway's LoadBalancer Service ports are served on the host (the daemon's `gateway_ports`)
    gateway_ports: PortMap = field(default_factory=PortMap)


@dataclass(frozen=True)
class Proxy:
    """One Envoy: a pod's sidecar or an ingress gateway ("router", Istio's node type name)."""

    type: Literal["sidecar", "router"]
    id: str
    ip: str
    pod: str
    namespace: str
    labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str = "default"
    app_ports: tuple[int, ...] = ()
    listen_address: str = ""
    # container port name → number, to resolve a Service's named targetPort against this pod
    port_names: Mapping[str, int] = field(default_factory=dict)


def _containers(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = pod.get("spec") or {}
    return [c for c in spec.get("containers") or [] if isinstance(c, dict)]


def proxy_from_pod(pod: dict[str, Any]) -> Proxy | None:
    """The proxy a stored Pod runs, or None when it has no sidecar, no pod IP yet, or is not a Pod."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ip = str(status.get("podIP") or "")
    if not ip:
        return None
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    containers = _containers(pod)
    sidecar = next((c for c in containers if c.get("name") == mesh.SIDECAR_CONTAINER), None)
    args = [str(a) for a in (sidecar or {}).get("args") or []]
    router = labels.get("istio") == "ingressgateway" or "router" in args
    if sidecar is None and not router:
        return None
    name = str(meta.get("name") or "")
    namespace = str(meta.get("namespace") or "default")
    spec = pod.get("spec") or {}
    ports: list[int] = []
    names: dict[str, int] = {}
    if not router:
        for c in containers:
            if c.get("name") == mesh.SIDECAR_CONTAINER:
                continue
            for p in c.get("ports") or []:
                if isinstance(p, dict) and p.get("containerPort") and str(p.get("protocol") or "TCP") == "TCP":
                    port = int(p["containerPort"])
                    if port not in ports:
                        ports.append(port)
                    if p.get("name"):
                        names.setdefault(str(p["name"]), port)
    node_id = (mesh.router_node_id if router else mesh.sidecar_node_id)(ip, name, namespace)
    return Proxy(
        type="router" if router else "sidecar",
        id=node_id,
        ip=ip,
        pod=name,
        namespace=namespace,
        labels=labels,
        service_account=str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"),
        app_ports=tuple(ports),
        listen_address=mesh.INGRESS_ADDRESS if router else ip,
        port_names=names,
    )
