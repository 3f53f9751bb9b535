"""CDS: the clusters a proxy gets (Istio's cluster.go + cluster_builder.go, the parts we need).

Every proxy gets `outbound|<port>||<fqdn>` for every Service port and `outbound|<port>|<subset>|<fqdn>`
for every subset of the DestinationRule that applies to it (EDS clusters whose endpoints come from
`endpoints`), plus Istio's `BlackHoleCluster` and `PassthroughCluster`, the ALS cluster when telemetry is
on, and, for sidecars, one `inbound|<port>||` cluster per inbound port:
- loopback mode: STATIC, pointing at the app on its app IP;
- netns mode: as Istio builds it under the default PASSTHROUGH inbound policy, ORIGINAL_DST (the pod's own
  `IP:port` that virtualInbound restored) from 127.0.0.6, the source istio-init's rules let through
  instead of capturing again; plus `InboundPassthroughCluster` (the same for undeclared ports). A headless
  Service's outbound clusters are ORIGINAL_DST there too (the pod the app dialled), without endpoints.
A DestinationRule's `tls` (SIMPLE / MUTUAL) gives an outbound cluster its upstream TLS, see `cluster_tls`
(at sidecars, not when it names a Secret and the rule selects no workloads, as in Istio).
A ServiceEntry host's clusters follow its resolution (Istio's cluster builder): STATIC → EDS (its
`endpoints`), NONE → ORIGINAL_DST, DNS → STRICT_DNS and DNS_ROUND_ROBIN → LOGICAL_DNS, their endpoints (or
the host itself) inline and resolved by Envoy, IPv4 only, Istio's 60 s refresh honouring the record's TTL.
A proxy gets the services exported to its namespace (exportTo) only.
Called by `sluice.xds.translate.generate`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from sluice import mesh
from sluice.xds import identity

from . import cluster_tls
from .model import RESERVED_PORTS, Proxy
from .protos import typed
from .push_context import DNS_ROUND_ROBIN_LB, IstioConfig, PushContext, Service, ServicePort, SidecarScope
from .spec import Obj, is_http2_protocol, is_http_protocol, labels_match
from .traffic_policy import apply_policy, default_circuit_breakers, effective_policy

Labels = Mapping[str, str]  # a proxy's workload labels

__all__ = ["shared_clusters", "proxy_clusters", "eds_service", "subset_labels", "inbound_port_protocol",
           "inbound_ports", "BLACKHOLE", "PASSTHROUGH", "INBOUND_PASSTHROUGH", "ALS_CLUSTER", "CONNECT_TIMEOUT",
           "INBOUND_BIND_ADDRESS"]

BLACKHOLE = "BlackHoleCluster"
PASSTHROUGH = "PassthroughCluster"
INBOUND_PASSTHROUGH = "InboundPassthroughCluster"
ALS_CLUSTER = "envoy_accesslog_service"
CONNECT_TIMEOUT = "10s"
# Istio's source for connections from the inbound side to the app ("6 is the magical number for inbound:
# 15006, 127.0.0.6"): istio-init's `-o lo -s 127.0.0.6/32 -j RETURN` keeps them from being captured again.
INBOUND_BIND_ADDRESS = "127.0.0.6"
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_PASSTHROUGH_IDLE_TIMEOUT = "300s"  # Istio's passthrough clusters: a 5-minute idle timeout
_DNS_REFRESH = "60s"  # MeshConfig.dnsRefreshRate's default


def _protocol_options(http2: bool | None, common: Obj, upstream: Obj | None = None) -> Obj:
    """HTTP/2 (True), HTTP/1.1 (False) or, for sniffed ports, whatever the downstream spoke (None)."""
    body: Obj
    if http2 is None:
        body = {"use_downstream_protocol_config": {"http_protocol_options": {}, "http2_protocol_options": {}}}
    else:
        body = {"explicit_http_config": {"http2_protocol_options": {}} if http2 else {"http_protocol_options": {}}}
    if common:
        body["common_http_protocol_options"] = common
    if upstream:
        body["upstream_http_protocol_options"] = upstream
    return {_HTTP_OPTIONS: typed(_HTTP_OPTIONS, body)}


def _socket(ip: str, port: int) -> Obj:
    return {"socket_address": {"address": ip, "port_value": port}}


def _static_cluster(name: str, ip: str, port: int) -> Obj:
    return _static_cluster_at(name, _socket(ip, port))


def _static_cluster_at(name: str, address: Obj) -> Obj:
    return {"name": name, "type": "STATIC", "connect_timeout": CONNECT_TIMEOUT,
            "load_assignment": {"cluster_name": name,
                                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}]}}


def _original_dst_cluster(name: str, bind: str | None = None) -> Obj:
    cluster: Obj = {"name": name, "type": "ORIGINAL_DST", "connect_timeout": CONNECT_TIMEOUT,
                    "lb_policy": "CLUSTER_PROVIDED", "circuit_breakers": default_circuit_breakers()}
    if bind is not None:
        cluster["upstream_bind_config"] = {"source_address": {"address": bind, "port_value": 0}}
    return cluster


def _subset_names(push: PushContext, svc: Service, namespace: str, labels: Labels) -> list[str]:
    dr = push.destination_rule(svc.hostname, namespace, labels)
    if dr is None:
        return []
    names = []
    for s in dr.spec.get("subsets") or []:
        if isinstance(s, dict) and s.get("name") and str(s["name"]) not in names:
            names.append(str(s["name"]))
    return names


def _original_dst_service(push: PushContext, svc: Service) -> bool:
    """Istio's Passthrough resolution: ORIGINAL_DST, no EDS. A ServiceEntry of resolution NONE; in netns mode
    also a headless Service (the pod the app dialled; loopback mode has no original destination to keep)."""
    if svc.external:
        return svc.passthrough
    return push.options.network == "netns" and not svc.cluster_ip


def eds_service(push: PushContext, svc: Service) -> bool:
    """Whether the service's clusters take their endpoints from EDS (not ORIGINAL_DST, not DNS)."""
    return not _original_dst_service(push, svc) and not svc.dns


def _outbound_keys(push: PushContext, namespace: str, labels: Labels,
                   scope: SidecarScope | None) -> Iterator[tuple[Service, ServicePort, str]]:
    """(service, port, subset) of every outbound cluster a proxy in `namespace` with `labels` (and the Sidecar
    `scope`) gets, in CDS order."""
    for svc in push.visible_services(namespace, scope):
        subsets = _subset_names(push, svc, namespace, labels)
        for sp in svc.ports:
            if sp.protocol == "UDP":
                continue
            yield svc, sp, ""
            for s in subsets:
                yield svc, sp, s


def _outbound_cluster(push: PushContext, svc: Service, sp: ServicePort, subset: str, namespace: str,
                      labels: Labels, sidecar: bool) -> Obj:
    name = mesh.outbound_cluster(sp.port, subset, svc.hostname)
    dr = push.destination_rule(svc.hostname, namespace, labels)
    cluster: Obj = {
        "name": name,
        "type": "EDS",
        "eds_cluster_config": {"service_name": name, "eds_config": {"ads": {}, "resource_api_version": "V3"}},
        "connect_timeout": CONNECT_TIMEOUT,
        "circuit_breakers": default_circuit_breakers(),
    }
    common: Obj = {}
    policy = effective_policy(dr, subset, sp.port)
    apply_policy(cluster, policy, common)
    if _original_dst_service(push, svc):
        for key in ("eds_cluster_config", "maglev_lb_config", "ring_hash_lb_config"):
            cluster.pop(key, None)
        # the only load balancing ORIGINAL_DST allows: the destination is the connection's
        cluster.update({"type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED"})
    elif svc.dns:
        cluster.pop("eds_cluster_config", None)
        cluster.update(_dns_settings(push, svc, sp, subset, dr, name))
    http2: bool | None = is_http2_protocol(sp.protocol)
    if sp.protocol == "UNKNOWN" and push.options.network == "netns":
        http2 = None  # a sniffed port forwards HTTP/1.1 or h2c as it arrived (Istio's setUpstreamProtocol)
    tls = policy.get("tls")
    if sidecar and cluster_tls.sidecar_drops_tls(tls, dr is not None and dr.workload_selector is not None):
        tls = None
    credential = cluster_tls.client_credential(push, namespace, tls)  # its credentialName, in the proxy's namespace
    upstream = cluster_tls.upstream_http_options(tls, credential) if is_http_protocol(sp.protocol) else {}
    if http2 is not False or common or upstream:
        cluster["typed_extension_protocol_options"] = _protocol_options(http2, common, upstream)
    if (socket := cluster_tls.transport_socket(tls, http2 is True, credential)) is not None:
        cluster["transport_socket"] = socket  # DestinationRule TLS origination (SIMPLE / MUTUAL)
    istio: Obj = {"services": [{"host": svc.hostname, "name": svc.name, "namespace": svc.namespace}],
                  "default_original_port": sp.port}
    if subset:
        istio["subset"] = subset
    if dr is not None:
        istio["config"] = dr.config_path
    cluster["metadata"] = {"filter_metadata": {"istio": istio}}
    return cluster


def _dns_settings(push: PushContext, svc: Service, sp: ServicePort, subset: str, dr: IstioConfig | None,
                  name: str) -> Obj:
    """A DNS-resolved ServiceEntry cluster: Envoy resolves its endpoints' names (STRICT_DNS: every address;
    LOGICAL_DNS: the first, Istio's DNS_ROUND_ROBIN)."""
    endpoints = list(push.endpoints(svc.hostname, sp.port))
    if subset:
        labels = subset_labels(dr, subset)
        endpoints = [e for e in endpoints if labels_match(labels, e.labels)]
    lb = [{"endpoint": {"address": {"socket_address": {"address": e.ip, "port_value": e.port}}}}
          for e in endpoints]
    out: Obj = {"type": "LOGICAL_DNS" if svc.resolution == DNS_ROUND_ROBIN_LB else "STRICT_DNS",
                "dns_lookup_family": "V4_ONLY", "dns_refresh_rate": _DNS_REFRESH, "respect_dns_ttl": True,
                "load_assignment": {"cluster_name": name}}
    if lb:
        out["load_assignment"]["endpoints"] = [{"locality": {}, "lb_endpoints": lb}]
    return out


def subset_labels(dr: IstioConfig | None, subset: str) -> dict[str, str]:
    for s in (dr.spec.get("subsets") or []) if dr else []:
        if isinstance(s, dict) and s.get("name") == subset:
            return {str(k): str(v) for k, v in (s.get("labels") or {}).items()}
    return {}


def _outbound_clusters(push: PushContext, namespace: str, labels: Labels, sidecar: bool,
                       scope: SidecarScope | None) -> list[Obj]:
    return [_outbound_cluster(push, svc, sp, subset, namespace, labels, sidecar)
            for svc, sp, subset in _outbound_keys(push, namespace, labels, scope)]


def _passthrough_cluster(name: str, bind: str | None = None) -> Obj:
    """Istio's PassthroughCluster / InboundPassthroughCluster: to the connection's original destination."""
    cluster = _original_dst_cluster(name, bind)
    cluster["typed_extension_protocol_options"] = _protocol_options(None, {"idle_timeout": _PASSTHROUGH_IDLE_TIMEOUT})
    return cluster


def _mesh_clusters(push: PushContext) -> list[Obj]:
    out: list[Obj] = [{"name": BLACKHOLE, "type": "STATIC", "connect_timeout": CONNECT_TIMEOUT}]
    if push.options.network == "netns":
        # virtualOutbound's catch-all and the `allow_any` virtual host send unknown destinations here.
        out += [_passthrough_cluster(PASSTHROUGH), _passthrough_cluster(INBOUND_PASSTHROUGH, INBOUND_BIND_ADDRESS)]
    else:
        # Nothing routes to the black hole or passthrough cluster (unknown hosts get Envoy's 404 NR, see
        # routes.py); they exist so the names telemetry and `proxy-config` users know are present.
        # ORIGINAL_DST cannot recover the destination behind an HTTP proxy; with use_http_header a
        # request may still name it in `x-envoy-original-dst-host`.
        out.append({"name": PASSTHROUGH, "type": "ORIGINAL_DST", "connect_timeout": CONNECT_TIMEOUT,
                    "lb_policy": "CLUSTER_PROVIDED", "original_dst_lb_config": {"use_http_header": True},
                    "circuit_breakers": default_circuit_breakers()})
    als_address = push.options.als_address
    if als_address is not None:
        if isinstance(als_address, str):
            als = _static_cluster_at(ALS_CLUSTER, {"pipe": {"path": als_address}})
        else:
            als = _static_cluster(ALS_CLUSTER, als_address[0], int(als_address[1]))
        als["typed_extension_protocol_options"] = _protocol_options(True, {})
        if push.options.als_tls:
            als["transport_socket"] = identity.upstream_tls()
        out.append(als)
    return out


def inbound_port_protocol(push: PushContext, proxy: Proxy, port: int) -> str:
    """The protocol of an app port, from the Service ports that target it (Istio's inbound protocol)."""
    services = push.services_selecting(proxy.namespace, proxy.labels)
    for svc in services:
        for sp in svc.ports:
            if sp.target_port == port:
                return sp.protocol
    # a named targetPort: the Proxy knows only port numbers, so fall back to the same-numbered port
    for svc in services:
        for sp in svc.ports:
            if isinstance(sp.target_port, str) and sp.port == port:
                return sp.protocol
    return "UNKNOWN"


def inbound_ports(push: PushContext, proxy: Proxy) -> list[tuple[int, str]]:
    """netns mode: (port, protocol) of every port virtualInbound gives its own filter chains, by port.

    The target ports of the Services selecting the pod (named ones resolved against its container ports)
    with their protocol, then the pod's other container ports, sniffed (`UNKNOWN`). Istio leaves the latter
    to its passthrough chains; a chain of their own keeps `inbound|<port>||` in their telemetry.
    """
    found: dict[int, str] = {}
    for svc in push.services_selecting(proxy.namespace, proxy.labels):
        for sp in svc.ports:
            target = sp.target_port if isinstance(sp.target_port, int) else proxy.port_names.get(sp.target_port)
            if target is not None and sp.protocol != "UDP":
                found.setdefault(target, sp.protocol)
    for port in proxy.app_ports:
        found.setdefault(port, "UNKNOWN")
    return sorted((p, proto) for p, proto in found.items() if p not in RESERVED_PORTS)


def _services_metadata(services: list[Service]) -> Obj:
    return {"filter_metadata": {"istio": {"services": [
        {"host": s.hostname, "name": s.name, "namespace": s.namespace} for s in services]}}}


def _netns_inbound_clusters(push: PushContext, proxy: Proxy) -> list[Obj]:
    services = push.services_selecting(proxy.namespace, proxy.labels)
    out = []
    for port, protocol in inbound_ports(push, proxy):
        cluster = _original_dst_cluster(mesh.inbound_cluster(port), INBOUND_BIND_ADDRESS)
        if is_http2_protocol(protocol) or protocol == "UNKNOWN":
            cluster["typed_extension_protocol_options"] = _protocol_options(
                True if protocol != "UNKNOWN" else None, {})
        cluster["metadata"] = _services_metadata(services)
        out.append(cluster)
    return out


def _inbound_clusters(push: PushContext, proxy: Proxy) -> list[Obj]:
    if push.options.network == "netns":
        return _netns_inbound_clusters(push, proxy)
    out = []
    services = push.services_selecting(proxy.namespace, proxy.labels)
    for port in proxy.app_ports:
        cluster = _static_cluster(mesh.inbound_cluster(port), mesh.app_ip(proxy.ip), port)
        cluster["circuit_breakers"] = default_circuit_breakers()
        if is_http2_protocol(inbound_port_protocol(push, proxy, port)):
            cluster["typed_extension_protocol_options"] = _protocol_options(True, {})
        cluster["metadata"] = {"filter_metadata": {"istio": {"services": [
            {"host": s.hostname, "name": s.name, "namespace": s.namespace} for s in services]}}}
        out.append(cluster)
    return out


def shared_clusters(push: PushContext, namespace: str, labels: Labels, sidecar: bool,
                    scope: SidecarScope | None) -> list[Obj]:
    """The clusters every sidecar (`sidecar`) or every gateway in `namespace` gets, the DestinationRules
    selecting `labels` applied and a sidecar's Sidecar scope (the caller memoises them per push, namespace,
    proxy kind, `PushContext.rules_selecting` and the scope)."""
    return _outbound_clusters(push, namespace, labels, sidecar, scope) + _mesh_clusters(push)


def proxy_clusters(proxy: Proxy, push: PushContext) -> list[Obj]:
    """The clusters only this proxy has: a sidecar's inbound clusters."""
    return _inbound_clusters(push, proxy) if proxy.type == "sidecar" else []
