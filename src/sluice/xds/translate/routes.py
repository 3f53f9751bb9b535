"""RDS: route tables (Istio's httproute.go, the parts we need).

- `http_proxy`: a sidecar's outbound table, served to the HTTP-proxy listener on :15001. One virtual host
  per Service port, `<fqdn>:<port>`, answering every name an app may use (`reviews`, `reviews:9080`,
  `reviews.tutorial`, …, the ClusterIP); its routes come from the mesh VirtualService for the host, or are
  the default route. There is no catch-all host: a request for an unknown host gets Envoy's own
  `404` with response flag `NR` (Istio's ALLOW_ANY passthrough needs ORIGINAL_DST, which cannot work
  behind an HTTP proxy); under outboundTrafficPolicy REGISTRY_ONLY, Istio's `block_all` (502) is.
- a gateway's tables (`http.<port>`, `https.<…>`): see `gateway`.
- `inbound|<port>||`: a sidecar's inbound table (inline in the inbound listener, as Istio does).
- netns mode (transparent capture), Istio's names instead of `http_proxy`: `"<port>"` for each outbound
  HTTP port (one virtual host per Service with that port, plus Istio's `allow_any` catch-all to
  `PassthroughCluster`), and `"<fqdn>:<port>"` for each sniffed (unnamed) Service port: its one host.
  A headless Service's hosts also answer `*.<name>` (its pods' own names). A ServiceEntry host answers its
  own name (a wildcard host as written) and its addresses. Under outboundTrafficPolicy REGISTRY_ONLY the
  catch-all is Istio's `block_all` instead, answering 502.
Called by `sluice.xds.translate.generate` (RDS) and by `listeners` (inline inbound tables).
"""

from __future__ import annotations

from sluice import mesh

from .httproute import DEFAULT_ROUTE_NAME, RouteContext, default_route, virtual_service_routes
from .model import RESERVED_PORTS, Proxy
from .push_context import PushContext, Service, ServicePort, SidecarScope
from .spec import Obj, is_http_protocol

__all__ = ["HTTP_PROXY_ROUTE", "sidecar_route_config", "sidecar_port_route_configs",
           "inbound_route_config", "outbound_http_ports",
           "sniffed_route_name", "catch_all_vhost", "alias_names", "ALLOW_ANY", "BLOCK_ALL"]

HTTP_PROXY_ROUTE = "http_proxy"  # Istio's RDS name for its HTTP-proxy listener
_MAX_DIRECT_BODY = 1024 * 1024  # as Istio: the validation limit rather than Envoy's 4 KiB default
_HTTP_SERVER_PROTOCOLS = ("HTTP", "HTTP2", "GRPC", "GRPC-WEB")


def _route_config(name: str, vhosts: list[Obj]) -> Obj:
    return {"name": name, "virtual_hosts": sorted(vhosts, key=lambda v: str(v["name"])),
            "validate_clusters": False, "max_direct_response_body_size_bytes": _MAX_DIRECT_BODY}


def _external_domains(svc: Service, port: int, proxy_namespace: str) -> list[str]:
    """A ServiceEntry host's domains: the host (no short forms: it is no Kubernetes name), its addresses and the
    names of the ExternalName Services that alias it."""
    names = [svc.hostname, *svc.addresses, *alias_names(svc, proxy_namespace)]
    return [d for n in names for d in (n, f"{n}:{port}")]


def alias_names(svc: Service, proxy_namespace: str) -> list[str]:
    """Each ExternalName Service aliasing `svc`: its FQDN and the short forms a client in `proxy_namespace` may
    use (Istio's generateVirtualHostDomains over `Attributes.Aliases`)."""
    out: list[str] = []
    for namespace, hostname in svc.aliases:
        name = hostname.split(".", 1)[0]
        out += [hostname, *_short_names(name, namespace, proxy_namespace)]
    return out


def _service_domains(svc: Service, port: int, proxy_namespace: str) -> list[str]:
    if svc.external:
        return _external_domains(svc, port, proxy_namespace)
    names = [*_short_names(svc.name, svc.namespace, proxy_namespace), svc.hostname]
    if svc.cluster_ip:
        names.append(svc.cluster_ip)
    names += alias_names(svc, proxy_namespace)
    with_bare = port == svc.default_port  # a bare name may belong to one port only
    out = []
    for n in names:
        if with_bare:
            out.append(n)
        out.append(f"{n}:{port}")
    return out


def sidecar_route_config(proxy: Proxy, push: PushContext) -> Obj:
    """`http_proxy`: depends on the proxy's namespace (short names, DestinationRules) and labels
    (`sourceLabels`), so callers may share it among proxies that agree on both."""
    vhosts: list[Obj] = []
    seen: set[str] = set()

    def add(name: str, domains: list[str], routes: list[Obj]) -> None:
        fresh = [d for d in domains if d.lower() not in seen]
        seen.update(d.lower() for d in fresh)
        if fresh:
            vhosts.append({"name": name, "domains": fresh, "routes": routes,
                           "include_request_attempt_count": True})

    scope = push.scope_of(proxy)
    for svc in push.visible_services(proxy.namespace, scope):
        vs = push.mesh_virtual_service(svc.hostname, proxy.namespace, scope)
        for sp in svc.ports:
            if not is_http_protocol(sp.protocol):
                continue
            routes = virtual_service_routes(RouteContext(push, proxy, vs, sp.port, ("mesh",))) if vs else []
            add(f"{svc.hostname}:{sp.port}", _service_domains(svc, sp.port, proxy.namespace),
                routes or [default_route(push, proxy, svc.hostname, sp.port)])
    # VirtualService hosts that are no Service (e.g. `bookinfo.com`) are reachable on port 80, as in Istio.
    for host, vs in push.mesh_virtual_service_extra_hosts(proxy.namespace, scope):
        routes = virtual_service_routes(RouteContext(push, proxy, vs, 80, ("mesh",)))
        if routes:
            add(f"{host}:80", [host, f"{host}:80"], routes)
    if push.registry_only_for(scope):
        vhosts.append(catch_all_vhost(push, scope))  # the host is unknown *and* not allowed: Istio's 502
    return _route_config(HTTP_PROXY_ROUTE, vhosts)


ALLOW_ANY = "allow_any"  # Istio's catch-all virtual host under outboundTrafficPolicy ALLOW_ANY (the default)
BLOCK_ALL = "block_all"  # … and under REGISTRY_ONLY
_PASSTHROUGH = "PassthroughCluster"


def outbound_http_ports(push: PushContext, namespace: str | None = None,
                        scope: SidecarScope | None = None) -> list[int]:
    """netns mode: the ports that get a shared `0.0.0.0_<port>` HTTP listener and a `"<port>"` table (for a
    proxy in `namespace`: of the services exported to it and in its Sidecar's `scope`)."""
    services = push.services if namespace is None else push.visible_services(namespace, scope)
    ports = {sp.port for svc in services for sp in svc.ports
             if is_http_protocol(sp.protocol) and sp.protocol != "UNKNOWN"}
    return sorted(ports - RESERVED_PORTS)


def sniffed_route_name(svc: Service, port: int) -> str:
    return f"{svc.hostname}:{port}"


def _short_names(name: str, namespace: str, proxy_namespace: str) -> list[str]:
    """Istio's GenerateAltVirtualHosts: the short names of `name.namespace.svc.cluster.local` a client in
    `proxy_namespace` may use."""
    if namespace == proxy_namespace:
        return [name, f"{name}.{namespace}", f"{name}.{namespace}.svc"]
    return [f"{name}.{namespace}", f"{name}.{namespace}.svc"]


def _port_domains(svc: Service, port: int, proxy_namespace: str) -> list[str]:
    """Every Host a request for the service on `port` may carry, with and without `:<port>`."""
    if svc.external:
        return _external_domains(svc, port, proxy_namespace)
    names = [svc.hostname, *_short_names(svc.name, svc.namespace, proxy_namespace), *alias_names(svc, proxy_namespace)]
    if not svc.cluster_ip:
        # headless: a pod's own name under the service's (`web-0.web…`, a StatefulSet's) means the same host
        names += [f"*.{n}" for n in names]
    else:
        names.append(svc.cluster_ip)
    return [d for n in names for d in (n, f"{n}:{port}")]


def _service_routes(push: PushContext, proxy: Proxy, scope: SidecarScope | None, svc: Service,
                    sp: ServicePort) -> list[Obj]:
    vs = push.mesh_virtual_service(svc.hostname, proxy.namespace, scope)
    routes = virtual_service_routes(RouteContext(push, proxy, vs, sp.port, ("mesh",))) if vs else []
    return routes or [default_route(push, proxy, svc.hostname, sp.port)]


def catch_all_vhost(push: PushContext, scope: SidecarScope | None = None) -> Obj:
    """What answers a Host no service claims: Istio's `allow_any` (to PassthroughCluster) or, under
    REGISTRY_ONLY (the mesh's, or the proxy's Sidecar's), `block_all` (502, Istio's answer for a destination
    outside the registry)."""
    if push.registry_only_for(scope):
        return {"name": BLOCK_ALL, "domains": ["*"], "include_request_attempt_count": True, "routes": [{
            "name": BLOCK_ALL, "match": {"prefix": "/"}, "direct_response": {"status": 502}}]}
    return {"name": ALLOW_ANY, "domains": ["*"], "include_request_attempt_count": True, "routes": [{
        "name": ALLOW_ANY, "match": {"prefix": "/"},
        "route": {"cluster": _PASSTHROUGH, "timeout": "0s",
                  "max_stream_duration": {"max_stream_duration": "0s", "grpc_timeout_header_max": "0s"}}}]}


def _port_route_config(proxy: Proxy, push: PushContext, port: int) -> Obj:
    vhosts: list[Obj] = []
    seen: set[str] = set()
    scope = push.scope_of(proxy)
    for svc in push.visible_services(proxy.namespace, scope):
        for sp in svc.ports:
            if sp.port != port or not is_http_protocol(sp.protocol) or sp.protocol == "UNKNOWN":
                continue
            fresh = [d for d in _port_domains(svc, port, proxy.namespace) if d.lower() not in seen]
            seen.update(d.lower() for d in fresh)
            if fresh:
                vhosts.append({"name": f"{svc.hostname}:{port}", "domains": fresh,
                               "routes": _service_routes(push, proxy, scope, svc, sp), "include_request_attempt_count": True})
    if port == 80:
        # VirtualService hosts that are no Service (e.g. `bookinfo.com`) are reachable on port 80, as in Istio.
        for host, vs in push.mesh_virtual_service_extra_hosts(proxy.namespace, scope):
            routes = virtual_service_routes(RouteContext(push, proxy, vs, 80, ("mesh",)))
            fresh = [d for d in (host, f"{host}:80") if d not in seen]
            seen.update(fresh)
            if routes and fresh:
                vhosts.append({"name": f"{host}:80", "domains": fresh, "routes": routes,
                               "include_request_attempt_count": True})
    vhosts.append(catch_all_vhost(push, scope))
    return _route_config(str(port), vhosts)


def sidecar_port_route_configs(proxy: Proxy, push: PushContext) -> list[Obj]:
    """netns mode: `"<port>"` per outbound HTTP port, then `"<fqdn>:<port>"` per sniffed Service port.

    Like `sidecar_route_config`, they depend only on the proxy's namespace and labels."""
    scope = push.scope_of(proxy)
    out = [_port_route_config(proxy, push, port) for port in outbound_http_ports(push, proxy.namespace, scope)]
    for svc in push.visible_services(proxy.namespace, scope):
        for sp in svc.ports:
            if sp.protocol == "UNKNOWN" and sp.port not in RESERVED_PORTS:
                # a sniffed listener belongs to one service: its one host answers every Host (Istio)
                out.append(_route_config(sniffed_route_name(svc, sp.port), [{
                    "name": f"{svc.hostname}:{sp.port}", "domains": ["*"],
                    "routes": _service_routes(push, proxy, scope, svc, sp), "include_request_attempt_count": True}]))
    return out


def inbound_route_config(port: int, cluster: str | None = None) -> Obj:
    """Everything arriving on an app port goes to the app, with Istio's inbound defaults: no timeout
    and a retry only when the request never reached the app. (`cluster`: netns mode's passthrough
    chain, port 0, sends to InboundPassthroughCluster instead of `inbound|<port>||`.)"""
    cluster = cluster or mesh.inbound_cluster(port)
    route = {"name": DEFAULT_ROUTE_NAME, "match": {"prefix": "/"}, "route": {
        "cluster": cluster, "timeout": "0s",
        "max_stream_duration": {"max_stream_duration": "0s", "grpc_timeout_header_max": "0s"},
        "retry_policy": {"retry_on": "reset-before-request", "num_retries": 2}}}
    return {"name": cluster, "validate_clusters": False,
            "virtual_hosts": [{"name": f"inbound|http|{port}", "domains": ["*"], "routes": [route]}]}
