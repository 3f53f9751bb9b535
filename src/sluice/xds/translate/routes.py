"""RDS: route tables (Istio's httproute.go, the parts we need).

- `http_proxy`: a sidecar's outbound table, served to the HTTP-proxy listener on :15001. One virtual host
  per Service port, `<fqdn>:<port>`, answering every name an app may use (`reviews`, `reviews:9080`,
  `reviews.tutorial`, …, the ClusterIP); its routes come from the mesh VirtualService for the host, or are
  the default route. There is no catch-all host: a request for an unknown host gets Envoy's own
  `404` with response flag `NR` (Istio's ALLOW_ANY passthrough needs ORIGINAL_DST, which cannot work
  behind an HTTP proxy, and REGISTRY_ONLY's 502 would hide that the host is unknown).
- `http.<port>`: a gateway's table for one server port: one virtual host per Gateway host that a bound
  VirtualService matches.
- `inbound|<port>||`: a sidecar's inbound table (inline in the inbound listener, as Istio does).
Called by `sluice.xds.translate.generate` (RDS) and by `listeners` (inline inbound tables).
"""

from __future__ import annotations

from sluice import mesh

from .httproute import DEFAULT_ROUTE_NAME, RouteContext, default_route, is_catch_all, virtual_service_routes
from .model import Proxy
from .push_context import IstioConfig, PushContext, Service
from .spec import Obj, host_covers, is_http_protocol

__all__ = ["HTTP_PROXY_ROUTE", "sidecar_route_config", "gateway_route_configs", "inbound_route_config",
           "gateway_servers", "gateway_route_name"]

HTTP_PROXY_ROUTE = "http_proxy"  # Istio's RDS name for its HTTP-proxy listener
_MAX_DIRECT_BODY = 1024 * 1024  # as Istio: the validation limit rather than Envoy's 4 KiB default
_HTTP_SERVER_PROTOCOLS = ("HTTP", "HTTP2", "GRPC", "GRPC-WEB")


def _route_config(name: str, vhosts: list[Obj]) -> Obj:
    return {"name": name, "virtual_hosts": sorted(vhosts, key=lambda v: str(v["name"])),
            "validate_clusters": False, "max_direct_response_body_size_bytes": _MAX_DIRECT_BODY}


def _service_domains(svc: Service, port: int, proxy_namespace: str) -> list[str]:
    names = [svc.name] if svc.namespace == proxy_namespace else []
    names += [f"{svc.name}.{svc.namespace}", f"{svc.name}.{svc.namespace}.svc", svc.hostname]
    if svc.cluster_ip:
        names.append(svc.cluster_ip)
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

    for svc in push.services:
        vs = push.mesh_virtual_service(svc.hostname)
        for sp in svc.ports:
            if not is_http_protocol(sp.protocol):
                continue
            routes = virtual_service_routes(RouteContext(push, proxy, vs, sp.port, ("mesh",))) if vs else []
            add(f"{svc.hostname}:{sp.port}", _service_domains(svc, sp.port, proxy.namespace),
                routes or [default_route(push, proxy, svc.hostname, sp.port)])
    # VirtualService hosts that are no Service (e.g. `bookinfo.com`) are reachable on port 80, as in Istio.
    for host, vs in push.mesh_virtual_service_extra_hosts():
        routes = virtual_service_routes(RouteContext(push, proxy, vs, 80, ("mesh",)))
        if routes:
            add(f"{host}:80", [host, f"{host}:80"], routes)
    return _route_config(HTTP_PROXY_ROUTE, vhosts)


def inbound_route_config(port: int) -> Obj:
    """Everything arriving on an app port goes to the app, with Istio's inbound defaults: no timeout
    and a retry only when the request never reached the app."""
    cluster = mesh.inbound_cluster(port)
    route = {"name": DEFAULT_ROUTE_NAME, "match": {"prefix": "/"}, "route": {
        "cluster": cluster, "timeout": "0s",
        "max_stream_duration": {"max_stream_duration": "0s", "grpc_timeout_header_max": "0s"},
        "retry_policy": {"retry_on": "reset-before-request", "num_retries": 2}}}
    return {"name": cluster, "validate_clusters": False,
            "virtual_hosts": [{"name": f"inbound|http|{port}", "domains": ["*"], "routes": [route]}]}


def gateway_route_name(port: int) -> str:
    return f"http.{port}"


def gateway_servers(proxy: Proxy, push: PushContext) -> dict[int, list[tuple[IstioConfig, Obj]]]:
    """Port → the plain-HTTP servers of the Gateways selecting this proxy (HTTPS/TLS/TCP: not yet)."""
    out: dict[int, list[tuple[IstioConfig, Obj]]] = {}
    for gw in push.gateways_for(proxy.labels):
        for server in gw.spec.get("servers") or []:
            if not isinstance(server, dict) or not isinstance(server.get("port"), dict):
                continue
            protocol = str(server["port"].get("protocol") or "").upper()
            number = int(server["port"].get("number") or 0)
            if number and protocol in _HTTP_SERVER_PROTOCOLS and not server.get("tls"):
                out.setdefault(number, []).append((gw, server))
    return out


def _gateway_vhosts(proxy: Proxy, push: PushContext, port: int,
                    servers: list[tuple[IstioConfig, Obj]]) -> list[Obj]:
    by_domain: dict[str, list[Obj]] = {}
    used: set[tuple[str, str, str]] = set()  # (domain, vs namespace, vs name): each VS once per host
    for gw, server in servers:
        ref = f"{gw.namespace}/{gw.name}"
        for vs in push.gateway_virtual_services(ref):
            routes: list[Obj] | None = None
            for raw in server.get("hosts") or []:
                ns_filter, _, shost = str(raw).rpartition("/")
                if ns_filter not in ("", "*", vs.namespace) and not (ns_filter == "." and vs.namespace == gw.namespace):
                    continue
                shost = shost.lower()
                for vhost in vs.hosts:
                    domain = vhost if host_covers(shost, vhost) else shost if host_covers(vhost, shost) else ""
                    if not domain or (domain, vs.namespace, vs.name) in used:
                        continue
                    used.add((domain, vs.namespace, vs.name))
                    if routes is None:
                        routes = virtual_service_routes(RouteContext(push, proxy, vs, port, (ref,)))
                    by_domain.setdefault(domain, []).extend(routes)
    vhosts = []
    for domain, routes in by_domain.items():
        if not routes:
            continue
        # VirtualServices merged on one host: a catch-all from an earlier one must not shadow the rest
        ordered = [r for r in routes if not is_catch_all(r)] + [r for r in routes if is_catch_all(r)]
        vhosts.append({"name": f"{domain}:{port}", "domains": ["*"] if domain == "*" else [domain, f"{domain}:*"],
                       "routes": ordered, "include_request_attempt_count": True})
    if not vhosts:  # nothing bound: answer 404 rather than leave the port without a route table
        vhosts.append({"name": f"blackhole:{port}", "domains": ["*"], "routes": [
            {"name": "default", "match": {"prefix": "/"}, "direct_response": {"status": 404}}]})
    return vhosts


def gateway_route_configs(proxy: Proxy, push: PushContext) -> list[Obj]:
    return [_route_config(gateway_route_name(port), _gateway_vhosts(proxy, push, port, servers))
            for port, servers in sorted(gateway_servers(proxy, push).items())]
