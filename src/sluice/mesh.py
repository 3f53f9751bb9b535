"""Mesh-wide names and address conventions shared by the runtime, the xDS server and telemetry.

Pods get unique loopback IPs (127.0.0.0/8 needs no root on Linux). A pod with a sidecar has two:
the pod IP, where its Envoy listens (inbound listeners on the container ports, the outbound HTTP proxy on
15001, admin on 15000), and the app IP, where its app containers listen on their container ports. The app
IP is derived from the pod IP (127.1.x.y → 127.2.x.y), so nothing needs to record it. A pod without a
sidecar has only the pod IP, and its app listens there.
"""

from __future__ import annotations

import ipaddress

__all__ = [
    "CLUSTER_DOMAIN", "POD_NETWORK", "NETNS_POD_NETWORK", "NODE_POD_GATEWAY", "SERVICE_NETWORK",
    "DNS_SERVICE_IP", "SIDECAR_CONTAINER", "PROXY_IMAGE", "INJECT_ANNOTATION",
    "PROXY_ADMIN_PORT", "PROXY_OUTBOUND_PORT", "PROXY_HEALTH_PORT", "PROMETHEUS_PORT", "AGENT_STATUS_PORT", "STATUS_PORT_ANNOTATION",
    "INGRESS_ADDRESS", "fqdn", "app_ip",
    "outbound_cluster", "inbound_cluster", "sidecar_node_id", "router_node_id", "parse_node_id",
]

CLUSTER_DOMAIN = "cluster.local"
POD_NETWORK = ipaddress.ip_network("127.1.0.0/16")
# netns mode: Kubernetes' usual ranges, inside the namespaces Sluice makes (the host never routes them).
NETNS_POD_NETWORK = ipaddress.ip_network("10.244.0.0/16")
NODE_POD_GATEWAY = "10.244.0.1"  # the node namespace's bridge address: every pod's default gateway
SERVICE_NETWORK = ipaddress.ip_network("10.96.0.0/12")
DNS_SERVICE_IP = "10.96.0.10"  # kube-dns's conventional ClusterIP; the daemon answers DNS there
_APP_OFFSET = 1 << 16  # 127.1.x.y -> 127.2.x.y
SIDECAR_CONTAINER = "istio-proxy"
PROXY_IMAGE = "docker.io/istio/proxyv2:1.24.0"
INJECT_ANNOTATION = "sidecar.istio.io/inject"
PROXY_ADMIN_PORT = 15000
PROXY_OUTBOUND_PORT = 15001
PROXY_HEALTH_PORT = 15021  # the proxy's `/healthz/ready` (a bootstrap listener): its probes ask it
PROMETHEUS_PORT = 15090  # Envoy's `/stats/prometheus` (a bootstrap listener), the container port `http-envoy-prom`
AGENT_STATUS_PORT = 15020  # pilot-agent's status port (meshConfig.defaultConfig.statusPort): app probes, merged metrics
STATUS_PORT_ANNOTATION = "status.sidecar.istio.io/port"  # moves the agent's status port; "0": none
INGRESS_ADDRESS = "127.0.0.1"  # where the ingress gateway's listeners bind (browser-reachable, loopback only)


def fqdn(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.{CLUSTER_DOMAIN}"


def app_ip(pod_ip: str) -> str:
    """The address a sidecar-injected pod's app containers listen on."""
    addr = ipaddress.ip_address(pod_ip)
    if addr not in POD_NETWORK:
        return pod_ip
    return str(ipaddress.ip_address(int(addr) + _APP_OFFSET))


def outbound_cluster(port: int, subset: str, host: str) -> str:
    return f"outbound|{port}|{subset}|{host}"


def inbound_cluster(port: int) -> str:
    return f"inbound|{port}||"


def sidecar_node_id(pod_ip: str, pod: str, namespace: str) -> str:
    return f"sidecar~{pod_ip}~{pod}.{namespace}~{namespace}.svc.{CLUSTER_DOMAIN}"


def router_node_id(pod_ip: str, pod: str, namespace: str) -> str:
    return f"router~{pod_ip}~{pod}.{namespace}~{namespace}.svc.{CLUSTER_DOMAIN}"


def parse_node_id(node_id: str) -> tuple[str, str, str, str] | None:
    """`sidecar~127.1.0.5~reviews-v2-abc.tutorial~tutorial.svc.cluster.local` → (type, ip, pod, namespace)."""
    parts = node_id.split("~")
    if len(parts) != 4:
        return None
    kind, ip, pod_ns, _ = parts
    pod, _, ns = pod_ns.rpartition(".")
    if not pod or not ns:
        return None
    return kind, ip, pod, ns
