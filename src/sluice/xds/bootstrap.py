"""The static Envoy bootstrap of a sidecar or gateway: who the proxy is and where its xDS server is.

Called by the runtime when it starts a pod's `istio-proxy` container: it writes the returned dict as
JSON and runs `sluice.xds.envoy.envoy_command` on it. Everything else (listeners, routes, clusters,
endpoints) arrives over ADS. The node metadata mirrors the keys istio-agent puts there, because
telemetry (peer resolution) and `proxy-status` read them.
"""

from __future__ import annotations

import json
from typing import Any

from sluice import mesh

__all__ = ["proxy_bootstrap", "workload_name", "XDS_CLUSTER", "ISTIO_VERSION", "CLUSTER_ID"]

XDS_CLUSTER = "xds-grpc"
ISTIO_VERSION = mesh.PROXY_IMAGE.rsplit(":", 1)[-1]  # the Istio release we behave like
CLUSTER_ID = "Kubernetes"
_MAX_CONNECTIONS = 2**31 - 1  # what istio-agent sets: no limit, but configured so Envoy does not warn


def _addr(address: tuple[str, int]) -> dict[str, Any]:
    return {"socket_address": {"address": address[0], "port_value": int(address[1])}}


def workload_name(pod: dict[str, Any]) -> str:
    """The Deployment (or other controller) name a pod belongs to, as Istio's WORKLOAD_NAME."""
    meta = pod.get("metadata") or {}
    name = str(meta.get("name") or "")
    labels = meta.get("labels") or {}
    template_hash = str(labels.get("pod-template-hash") or "")
    for ref in meta.get("ownerReferences") or []:
        if not isinstance(ref, dict) or not ref.get("controller", True):
            continue
        owner = str(ref.get("name") or "")
        if ref.get("kind") == "ReplicaSet" and template_hash and owner.endswith("-" + template_hash):
            return owner[: -len(template_hash) - 1]
        if owner:
            return owner
    if template_hash and f"-{template_hash}-" in name:
        return name.split(f"-{template_hash}-", 1)[0]
    return name


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod.get("spec") or {}
    return [c for c in spec.get("containers") or [] if isinstance(c, dict)]


def _pod_ports(pod: dict[str, Any]) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = []
    for c in _containers(pod):
        if c.get("name") == mesh.SIDECAR_CONTAINER:
            continue
        for p in c.get("ports") or []:
            if isinstance(p, dict) and p.get("containerPort"):
                entry: dict[str, Any] = {"containerPort": int(p["containerPort"]),
                                         "protocol": str(p.get("protocol") or "TCP")}
                if p.get("name"):
                    entry["name"] = str(p["name"])
                ports.append(entry)
    return ports


def _node_metadata(pod: dict[str, Any], pod_ip: str) -> dict[str, Any]:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    namespace = str(meta.get("namespace") or "default")
    workload = workload_name(pod)
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    app_containers = [str(c.get("name")) for c in _containers(pod) if c.get("name") != mesh.SIDECAR_CONTAINER]
    ports = _pod_ports(pod)
    out: dict[str, Any] = {
        "NAMESPACE": namespace,
        "NAME": str(meta.get("name") or ""),
        "LABELS": labels,
        "INSTANCE_IPS": pod_ip,
        "SERVICE_ACCOUNT": str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"),
        "WORKLOAD_NAME": workload,
        "OWNER": f"kubernetes://apis/apps/v1/namespaces/{namespace}/deployments/{workload}",
        "CLUSTER_ID": CLUSTER_ID,
        "MESH_ID": mesh.CLUSTER_DOMAIN,
        "ISTIO_VERSION": ISTIO_VERSION,
        "APP_CONTAINERS": ",".join(app_containers),
        "INTERCEPTION_MODE": "NONE",  # no iptables: apps reach the sidecar through HTTP_PROXY
        "POD_PORTS": json.dumps(ports, separators=(",", ":")),
        "ENVOY_PROMETHEUS_PORT": 15090,
        "ENVOY_STATUS_PORT": 15021,
    }
    annotations = meta.get("annotations") or {}
    if annotations:
        out["ANNOTATIONS"] = {str(k): str(v) for k, v in annotations.items()}
    return out


def proxy_bootstrap(*, node_id: str, pod: dict[str, Any], pod_ip: str, xds_address: tuple[str, int],
                    admin_address: tuple[str, int], cluster: str) -> dict[str, Any]:
    """A JSON-able Envoy v3 bootstrap: node identity, admin, and ADS over gRPC to `xds_address`."""
    ads_source = {"ads": {}, "resource_api_version": "V3",
                  # Wait for the control plane however long it takes, like istio-agent: a sidecar
                  # without its config would send traffic nowhere.
                  "initial_fetch_timeout": "0s"}
    return {
        "node": {
            "id": node_id,
            "cluster": cluster,
            "locality": {},
            "metadata": _node_metadata(pod, pod_ip),
        },
        "admin": {"address": _addr(admin_address)},
        # Upstream connections leave from the pod IP, so the peer (and its access log) sees which pod
        # called — as with a pod's own network namespace in Kubernetes.
        "cluster_manager": {"upstream_bind_config": {"source_address": {"address": pod_ip, "port_value": 0}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {
                    "cluster_name": XDS_CLUSTER,
                    # Reconnect quickly when the daemon restarts; the default back-off reaches 30 s.
                    "retry_policy": {"retry_back_off": {"base_interval": "0.1s", "max_interval": "1s"}},
                }}],
            },
            "cds_config": ads_source,
            "lds_config": ads_source,
        },
        "static_resources": {
            "clusters": [{
                "name": XDS_CLUSTER,
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {"cluster_name": XDS_CLUSTER,
                                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _addr(xds_address)}}]}]},
                # The one control-plane stream must never be refused by Envoy's own circuit breakers.
                "circuit_breakers": {"thresholds": [{"priority": "DEFAULT", "max_connections": 100000,
                                                     "max_pending_requests": 100000, "max_requests": 100000},
                                                    {"priority": "HIGH", "max_connections": 100000,
                                                     "max_pending_requests": 100000, "max_requests": 100000}]},
                "upstream_connection_options": {"tcp_keepalive": {"keepalive_time": 300}},
                "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}},
                }},
            }],
        },
        "overload_manager": {
            "resource_monitors": [{
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.resource_monitors."
                             "downstream_connections.v3.DownstreamConnectionsConfig",
                    "max_active_downstream_connections": _MAX_CONNECTIONS,
                },
            }],
        },
        "stats_config": {
            # Envoy's default tag extraction gives `/stats/prometheus` the envoy_cluster_* label names
            # Istio's dashboards expect; Istio's own request metrics come from ALS, not from here.
            "use_all_default_tags": True,
        },
    }
