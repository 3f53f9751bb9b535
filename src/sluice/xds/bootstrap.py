"""The static Envoy bootstrap of a sidecar or gateway: who the proxy is and where its xDS server is.

Called by the runtime when it starts a pod's `istio-proxy` container: it writes the returned dict as
JSON and runs `sluice.xds.envoy.envoy_command` on it. Everything else (listeners, routes, clusters,
endpoints) arrives over ADS. The node metadata mirrors the keys istio-agent puts there, because
telemetry (peer resolution) and `proxy-status` read them.

Two network modes (see `sluice.xds.translate.model.NetworkMode`):
- loopback: admin where the runtime says (a Unix socket under SLUICE_HOME, mode 0600: the host's loopback is
  shared with every local program and web page, and admin can `POST /quitquitquit`), xDS over TCP, upstream
  connections from the pod IP, `INTERCEPTION_MODE: NONE`;
- netns: Envoy runs inside the pod's network namespace with istio-init's capture, as Istio's own
  bootstrap has it: admin on 127.0.0.1:15000, xDS over a Unix socket (the daemon is not on the pod's
  network; the filesystem is shared), `INTERCEPTION_MODE: REDIRECT`, and the static listeners 15090
  (`/stats/prometheus`) and 15021 (`/healthz/ready`, answered by Envoy's own `/ready`, there being no
  pilot-agent).
"""

from __future__ import annotations

import json
from typing import Any

from sluice import mesh
from sluice.resources.proxyconfig import stats_matcher
from sluice.xds.identity import ProxyCredential, static_secrets, upstream_tls
from sluice.xds.translate.model import PROMETHEUS_PORT, STATUS_PORT, NetworkMode

__all__ = ["proxy_bootstrap", "workload_name", "XDS_CLUSTER", "ISTIO_VERSION", "CLUSTER_ID", "NETNS_ADMIN_ADDRESS",
           "ADMIN_CLUSTER", "ADMIN_SOCKET_MODE"]

XDS_CLUSTER = "xds-grpc"
ADMIN_CLUSTER = "prometheus_stats"  # Istio's name for the static cluster that reaches Envoy's own admin
NETNS_ADMIN_ADDRESS = ("127.0.0.1", mesh.PROXY_ADMIN_PORT)  # inside the pod's namespace: not reachable off-pod
ISTIO_VERSION = mesh.PROXY_IMAGE.rsplit(":", 1)[-1]  # the Istio release we behave like
CLUSTER_ID = "Kubernetes"
_MAX_CONNECTIONS = 2**31 - 1  # what istio-agent sets: no limit, but configured so Envoy does not warn
ADMIN_SOCKET_MODE = 0o600  # only the daemon's user may talk to an Envoy admin on a Unix socket


def _addr(address: tuple[str, int] | str, mode: int | None = None) -> dict[str, Any]:
    """A TCP address, or (a path) a Unix socket, with `mode` its file permissions."""
    if isinstance(address, str):
        pipe: dict[str, Any] = {"path": address}
        if mode is not None:
            pipe["mode"] = mode
        return {"pipe": pipe}
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


def _node_metadata(pod: dict[str, Any], pod_ip: str, network: NetworkMode) -> dict[str, Any]:
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
        # loopback: no capture, apps reach the sidecar through HTTP_PROXY; netns: istio-init's REDIRECT rules
        "INTERCEPTION_MODE": "REDIRECT" if network == "netns" else "NONE",
        "POD_PORTS": json.dumps(ports, separators=(",", ":")),
        "ENVOY_PROMETHEUS_PORT": PROMETHEUS_PORT,
        "ENVOY_STATUS_PORT": STATUS_PORT,
    }
    annotations = meta.get("annotations") or {}
    if annotations:
        out["ANNOTATIONS"] = {str(k): str(v) for k, v in annotations.items()}
    return out


def _static_http_listener(port: int, stat_prefix: str, route: dict[str, Any]) -> dict[str, Any]:
    """One of Istio's bootstrap listeners: an HCM on 0.0.0.0:<port> with one inline route to admin."""
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                    "HttpConnectionManager",
           "codec_type": "AUTO", "stat_prefix": stat_prefix,
           # RFC 3986 normalization before routing (Istio's default pathNormalization, BASE): a path that climbs
           # out of the one prefix (`/stats/prometheus/../../quitquitquit`) matches nothing here instead of
           # reaching another admin handler. Other pods' 15090/15021 land here too (the original-destination
           # hand-off finds these wildcard listeners), so this is what stands between a pod and its own admin.
           "normalize_path": True, "merge_slashes": True,
           "route_config": {"virtual_hosts": [{"name": "backend", "domains": ["*"], "routes": [route]}]},
           "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    return {"name": f"0.0.0.0_{port}", "address": _addr(("0.0.0.0", port)),
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": hcm}]}]}


def _netns_static_resources() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Istio's bootstrap listeners on 15090 and 15021 (istio-init leaves both uncaptured) and the cluster
    they reach Envoy's admin through."""
    admin = {"name": ADMIN_CLUSTER, "type": "STATIC", "connect_timeout": "0.250s",
             "load_assignment": {"cluster_name": ADMIN_CLUSTER, "endpoints": [{"lb_endpoints": [
                 {"endpoint": {"address": _addr(NETNS_ADMIN_ADDRESS)}}]}]}}
    listeners = [
        _static_http_listener(PROMETHEUS_PORT, "stats", {"match": {"prefix": "/stats/prometheus"},
                                                         "route": {"cluster": ADMIN_CLUSTER}}),
        # pilot-agent answers this in Istio, from Envoy's readiness; here Envoy's /ready answers directly
        _static_http_listener(STATUS_PORT, "agent", {"match": {"prefix": "/healthz/ready"},
                                                     "route": {"cluster": ADMIN_CLUSTER, "prefix_rewrite": "/ready"}}),
    ]
    return listeners, [admin]


def proxy_bootstrap(*, node_id: str, pod: dict[str, Any], pod_ip: str, xds_address: tuple[str, int] | str,
                    admin_address: tuple[str, int] | str | None = None, cluster: str,
                    network: NetworkMode = "loopback", credential: ProxyCredential | None = None) -> dict[str, Any]:
    """A JSON-able Envoy v3 bootstrap: node identity, admin, and ADS over gRPC to `xds_address` (host and
    port, or the path of a Unix socket).

    With `credential` (what the daemon always passes) the proxy talks to xDS and ALS over mutual TLS with
    the pod's certificate (`sluice.xds.identity`); without it, in plain text (in-process tests).

    loopback mode needs `admin_address` (the path of a Unix socket, which gets mode 0600, or host and port);
    netns mode puts admin on 127.0.0.1:15000 in the pod's namespace unless one is given.
    """
    netns = network == "netns"
    if admin_address is None:
        if not netns:
            raise ValueError("loopback mode needs an admin_address")
        admin_address = NETNS_ADMIN_ADDRESS
    ads_source = {"ads": {}, "resource_api_version": "V3",
                  # Wait for the control plane however long it takes, like istio-agent: a sidecar
                  # without its config would send traffic nowhere.
                  "initial_fetch_timeout": "0s"}
    xds_cluster: dict[str, Any] = {
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
    }
    if not isinstance(xds_address, str):  # TCP keepalive means nothing on a Unix socket
        xds_cluster["upstream_connection_options"] = {"tcp_keepalive": {"keepalive_time": 300}}
    xds_cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}},
    }}
    if credential is not None:
        xds_cluster["transport_socket"] = upstream_tls()
    listeners, clusters = _netns_static_resources() if netns else ([], [])
    static: dict[str, Any] = {"clusters": [xds_cluster, *clusters]}
    if listeners:
        static["listeners"] = listeners
    if credential is not None:
        static["secrets"] = static_secrets(credential)
    boot: dict[str, Any] = {
        "node": {
            "id": node_id,
            "cluster": cluster,
            "locality": {},
            "metadata": _node_metadata(pod, pod_ip, network),
        },
        "admin": {"address": _addr(admin_address, ADMIN_SOCKET_MODE)},
    }
    if not netns:
        # Upstream connections leave from the pod IP, so the peer (and its access log) sees which pod
        # called — as a pod's own network namespace does by itself in netns mode.
        boot["cluster_manager"] = {"upstream_bind_config": {"source_address": {"address": pod_ip, "port_value": 0}}}
    boot.update({
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
        "static_resources": static,
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
            # Istio's inclusion list: a stat it leaves out (a cluster's or listener's per-request counters and
            # histograms) is never created, and costs a request nothing
            "stats_matcher": stats_matcher((pod.get("metadata") or {}).get("annotations") or {}, [pod_ip]),
        },
    })
    return boot
