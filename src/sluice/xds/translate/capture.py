"""LDS for netns mode: a sidecar's listeners under istio-init's transparent capture (Istio's listener.go,
listener_builder.go, listener_inbound.go, the parts we need; names as `istioctl proxy-config` shows them).

The pod's outbound TCP is redirected to 15001 and its inbound TCP to 15006, so (in Istio's order):
- per-port outbound listeners, `bind_to_port: false`, which only receive connections virtualOutbound hands
  off by their original destination (exact `IP:port` first, then `0.0.0.0:port`):
  - `0.0.0.0_<port>` for HTTP ports, shared by every Service with that port: an HTTP connection manager on
    RDS `"<port>"`, chosen by the http_inspector, and `PassthroughFilterChain` for anything else;
  - `<ClusterIP>_<port>` for TCP ports: a TCP proxy to `outbound|<port>||<fqdn>`, or to the destinations
    (weighted, subsets) of the service's VirtualService `tcp` routes (`destinationSubnets` as their own
    chains); for TLS/HTTPS ports, one chain per SNI of its `tls` routes, behind a `tls_inspector`
    (see `tcp_routes`);
  - `<ClusterIP>_<port>` for ports without a declared protocol: the same TCP proxy, plus an HTTP connection
    manager on RDS `"<fqdn>:<port>"` for what the http_inspector recognises as HTTP;
  - ServiceEntry hosts alike: HTTP ports on `0.0.0.0_<port>`, other ports on `<address>_<port>` for each of
    its addresses (given or auto-allocated), or `0.0.0.0_<port>` when it has none;
- `virtualOutbound` 0.0.0.0:15001 (`use_original_dst`): traffic aimed at 15001 itself to the black hole,
  everything no listener claims to `PassthroughCluster` (under outboundTrafficPolicy REGISTRY_ONLY to
  `BlackHoleCluster`, as are the per-port listeners' passthrough chains);
- `virtualInbound` 0.0.0.0:15006: the original destination restored, one filter chain per inbound port
  (`inbound|<port>||`, HTTP and/or TCP by the port's protocol), passthrough chains for other ports
  (`InboundPassthroughCluster`) and the black hole for 15006 itself.
There is no mTLS, so the inbound chains are Istio's plaintext ones (PeerAuthentication DISABLE): no TLS
inspector, `raw_buffer` chains only. A headless Service's TCP and unnamed ports get one listener per
endpoint, `<podIP>_<port>` (not the proxy's own IP: its app's calls to itself are not captured), to the
service's ORIGINAL_DST cluster. Called by `sluice.xds.translate.generate` and `listeners.build_listeners`.
"""

from __future__ import annotations

from sluice import mesh

from .clusters import BLACKHOLE, INBOUND_PASSTHROUGH, PASSTHROUGH, inbound_ports
from .httproute import RouteContext
from .model import INBOUND_CAPTURE_PORT, OUTBOUND_CAPTURE_PORT, RESERVED_PORTS, Proxy
from .network_filters import http_connection_manager, tcp_proxy
from .protos import typed
from .push_context import PushContext, Service, ServicePort, SidecarScope
from .routes import alias_names, inbound_route_config, outbound_http_ports, sniffed_route_name
from .spec import Obj, is_http_protocol
from .tcp_routes import TLS_INSPECTOR, is_tls_protocol, needs_tls_inspector, tcp_chains, tls_chains

__all__ = ["capture_listeners", "outbound_listeners", "inbound_listener", "own_listener", "VIRTUAL_OUTBOUND",
           "VIRTUAL_INBOUND"]

VIRTUAL_OUTBOUND = "virtualOutbound"
VIRTUAL_INBOUND = "virtualInbound"
_HTTP_ALPNS = ["http/1.1", "h2c"]  # what the http_inspector reports for plaintext HTTP (Istio's plaintextHTTPALPNs)
_RAW_BUFFER = "raw_buffer"
_ORIGINAL_DST = {"name": "envoy.filters.listener.original_dst",
                 "typed_config": typed("envoy.extensions.filters.listener.original_dst.v3.OriginalDst")}
_TLS_PROTOCOLS = frozenset({"TLS", "HTTPS"})
_DNS_PORT = 53
_TLS_INSPECTOR = {"name": "envoy.filters.listener.tls_inspector",
                  "typed_config": typed("envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector")}
# Istio's protocolDetectionTimeout default: 0s, i.e. wait for the client's first bytes however long it takes.
_DETECTION_TIMEOUT = "0s"


def _http_inspector(disabled_ports: list[int] | None = None) -> Obj:
    out: Obj = {"name": "envoy.filters.listener.http_inspector",
                "typed_config": typed("envoy.extensions.filters.listener.http_inspector.v3.HttpInspector")}
    if disabled_ports:
        rules = [{"destination_port_range": {"start": p, "end": p + 1}} for p in sorted(disabled_ports)]
        out["filter_disabled"] = rules[0] if len(rules) == 1 else {"or_match": {"rules": rules}}
    return out


def _address(ip: str, port: int) -> Obj:
    return {"socket_address": {"address": ip, "port_value": port}}


def _blackhole_chain(push: PushContext, name: str, port: int) -> Obj:
    return {"name": name, "filter_chain_match": {"destination_port": port},
            "filters": [tcp_proxy(push, BLACKHOLE, logs=False)]}


def _passthrough_chain(push: PushContext, name: str, blocked: bool) -> Obj:
    """Where connections no service claims go: PassthroughCluster, or under REGISTRY_ONLY (`blocked`: the mesh's
    policy, or the proxy's Sidecar's) the black hole (the connection is closed at once)."""
    return {"name": name, "filters": [tcp_proxy(push, BLACKHOLE if blocked else PASSTHROUGH)]}


def _outbound_listener(name: str, ip: str, port: int, chains: list[Obj], default: Obj | None,
                       inspect_http: bool) -> Obj:
    listener: Obj = {"name": name, "address": _address(ip, port), "traffic_direction": "OUTBOUND",
                     "bind_to_port": False, "continue_on_listener_filters_timeout": True,
                     "listener_filters_timeout": _DETECTION_TIMEOUT, "filter_chains": chains}
    if inspect_http:
        listener["listener_filters"] = [_http_inspector()]
    if default is not None:
        listener["default_filter_chain"] = default
    return listener


def _http_match(port: int | None = None) -> Obj:
    match: Obj = {"transport_protocol": _RAW_BUFFER, "application_protocols": list(_HTTP_ALPNS)}
    if port is not None:
        match = {"destination_port": port, **match}
    return match


def _outbound_http_listener(push: PushContext, port: int, hcm: Obj, blocked: bool) -> Obj:
    name = f"0.0.0.0_{port}"
    chain = {"name": name, "filter_chain_match": _http_match(), "filters": [hcm]}
    return _outbound_listener(name, "0.0.0.0", port, [chain],
                              _passthrough_chain(push, "PassthroughFilterChain", blocked), inspect_http=True)


def _outbound_vip_listener(proxy: Proxy, push: PushContext, scope: SidecarScope | None, svc: Service,
                           sp: ServicePort, sniff_hcm: Obj | None, ip: str | None = None) -> Obj:
    """`<ip>_<port>` for one service port: the ClusterIP, or (headless) one endpoint's pod IP."""
    ip = ip or svc.cluster_ip
    name = f"{ip}_{sp.port}"
    cluster = mesh.outbound_cluster(sp.port, "", svc.hostname)
    vs = push.mesh_virtual_service(svc.hostname, proxy.namespace, scope)
    ctx = RouteContext(push, proxy, vs, sp.port, ("mesh",)) if vs else None
    tls = is_tls_protocol(sp.protocol)
    chains = tls_chains(ctx, cluster, push) if tls else tcp_chains(ctx, cluster, push)
    # chains that match on something come first, under names of their own; the catch-all keeps the listener's
    built = [c.build(f"{name}|{i}" if c.server_names or c.prefix_ranges else name) for i, c in enumerate(chains)]
    default = next((c for c in built if "filter_chain_match" not in c), None)
    if sniff_hcm is None:
        listener = _outbound_listener(name, ip, sp.port, built, None, inspect_http=False)
    else:
        http = {"name": name, "filter_chain_match": _http_match(), "filters": [sniff_hcm]}
        listener = _outbound_listener(name, ip, sp.port, [c for c in built if c is not default] + [http], default,
                                      inspect_http=True)
    if needs_tls_inspector(chains):
        listener["listener_filters"] = [TLS_INSPECTOR, *listener.get("listener_filters", [])]
    return listener


def _listener_ips(push: PushContext, svc: Service, sp: ServicePort) -> list[str]:
    """The addresses a TCP or sniffed service port gets `<ip>_<port>` listeners on: the ClusterIP; a headless
    Service's endpoint IPs; a ServiceEntry's addresses (given or auto-allocated), or without any, every
    address (`0.0.0.0_<port>`, as Istio does for such a ServiceEntry port)."""
    if svc.external:
        return list(svc.addresses) or ["0.0.0.0"]
    if svc.cluster_ip:
        return [svc.cluster_ip]
    return sorted({e.ip for e in push.endpoints(svc.hostname, sp.port)})


def _outbound_sni_listener(proxy: Proxy, push: PushContext, port: int,
                           services: list[tuple[Service, ServicePort]], blocked: bool) -> Obj:
    """`0.0.0.0_<port>` for the TLS/HTTPS ports of ServiceEntries without addresses (Istio's wildcard egress,
    e.g. `*.wikipedia.org` of resolution NONE): the TLS inspector reads the SNI, one chain per host (the
    first ServiceEntry to claim a host wins) proxies to its cluster, and any other name gets what unknown
    destinations get (passthrough, or the black hole under REGISTRY_ONLY)."""
    chains: list[Obj] = []
    seen: set[str] = set()
    name = f"0.0.0.0_{port}"
    for svc, sp in services:
        if svc.hostname in seen:
            continue
        seen.add(svc.hostname)
        cluster = mesh.outbound_cluster(sp.port, "", svc.hostname)
        names = [svc.hostname, *alias_names(svc, proxy.namespace)]
        chains.append({"name": cluster, "filter_chain_match": {"server_names": names, "transport_protocol": "tls"},
                       "filters": [tcp_proxy(push, cluster)]})
    listener = _outbound_listener(name, "0.0.0.0", port, chains,
                                  _passthrough_chain(push, "PassthroughFilterChain", blocked), inspect_http=False)
    listener["listener_filters"] = [_TLS_INSPECTOR]
    return listener


def _virtual_outbound(push: PushContext, blocked: bool) -> Obj:
    port = OUTBOUND_CAPTURE_PORT
    return {"name": VIRTUAL_OUTBOUND, "address": _address("0.0.0.0", port), "use_original_dst": True,
            "traffic_direction": "OUTBOUND", "filter_chains": [
                # a connection aimed at 15001 itself must not be passed through back to it
                _blackhole_chain(push, f"{VIRTUAL_OUTBOUND}-blackhole", port),
                _passthrough_chain(push, f"{VIRTUAL_OUTBOUND}-catchall-tcp", blocked)]}


def _inbound_hcm(push: PushContext, port: int, cluster: str) -> Obj:
    return http_connection_manager(push, stat_prefix=f"inbound_0.0.0.0_{port}", route_filters=False,
                                   route_config=inbound_route_config(port, cluster))


def _virtual_inbound(proxy: Proxy, push: PushContext) -> Obj:
    port = INBOUND_CAPTURE_PORT
    chains: list[Obj] = [
        # a connection aimed at 15006 itself would otherwise loop
        _blackhole_chain(push, f"{VIRTUAL_INBOUND}-blackhole", port),
        {"name": f"{VIRTUAL_INBOUND}-catchall-http", "filter_chain_match": _http_match(), "filters": [
            http_connection_manager(push, stat_prefix=f"inbound_0.0.0.0_{port}", route_filters=False,
                                    route_config=inbound_route_config(0, INBOUND_PASSTHROUGH))]},
        {"name": VIRTUAL_INBOUND, "filter_chain_match": {"transport_protocol": _RAW_BUFFER},
         "filters": [tcp_proxy(push, INBOUND_PASSTHROUGH)]},
    ]
    declared = [port]
    for target, protocol in inbound_ports(push, proxy):
        name = f"0.0.0.0_{target}"
        cluster = mesh.inbound_cluster(target)
        tcp = {"name": name, "filter_chain_match": {"destination_port": target, "transport_protocol": _RAW_BUFFER},
               "filters": [tcp_proxy(push, cluster)]}
        if protocol == "UNKNOWN":  # sniffed: HTTP when the inspector says so, else TCP
            chains.append({"name": name, "filter_chain_match": _http_match(target),
                           "filters": [_inbound_hcm(push, target, cluster)]})
            chains.append(tcp)
            continue
        declared.append(target)  # Istio disables the http_inspector on declared ports
        if is_http_protocol(protocol):
            chains.append({"name": name, "filter_chain_match": {"destination_port": target,
                                                                 "transport_protocol": _RAW_BUFFER},
                           "filters": [_inbound_hcm(push, target, cluster)]})
        else:
            chains.append(tcp)
    return {"name": VIRTUAL_INBOUND, "address": _address("0.0.0.0", port), "traffic_direction": "INBOUND",
            "continue_on_listener_filters_timeout": True, "listener_filters_timeout": _DETECTION_TIMEOUT,
            "listener_filters": [_ORIGINAL_DST, _http_inspector(declared)], "filter_chains": chains}


def outbound_listeners(proxy: Proxy, push: PushContext) -> list[Obj]:
    """The per-port outbound listeners and virtualOutbound. They depend on the proxy's namespace and labels
    only (VirtualService `sourceLabels`/`sourceNamespace`), so callers may share them among such proxies;
    each proxy then drops the listeners on its own IP (`own_listener`)."""
    out: list[Obj] = []
    scope = push.scope_of(proxy)
    blocked = push.registry_only_for(scope)
    http_ports = outbound_http_ports(push, proxy.namespace, scope)
    for port in http_ports:
        out.append(_outbound_http_listener(
            push, port, http_connection_manager(push, stat_prefix=f"outbound_0.0.0.0_{port}", rds=str(port)),
            blocked))
    vips: dict[str, tuple[int, str, Obj]] = {}
    sni: dict[int, list[tuple[Service, ServicePort]]] = {}
    for svc in push.visible_services(proxy.namespace, scope):
        for sp in svc.ports:
            if sp.protocol == "UDP" or sp.port in RESERVED_PORTS:
                continue
            if sp.protocol != "UNKNOWN" and is_http_protocol(sp.protocol):
                continue  # on 0.0.0.0_<port>
            if svc.external and not svc.addresses and sp.protocol in _TLS_PROTOCOLS and sp.port not in http_ports:
                sni.setdefault(sp.port, []).append((svc, sp))  # told apart by SNI on 0.0.0.0_<port>
                continue
            for ip in _listener_ips(push, svc, sp):
                if f"{ip}_{sp.port}" in vips or (ip == "0.0.0.0" and sp.port in http_ports):
                    continue  # the first service to claim an address wins (Istio's listener conflict rule)
                hcm = None
                if sp.protocol == "UNKNOWN" and ip != "0.0.0.0":
                    hcm = http_connection_manager(push, stat_prefix=f"outbound_{ip}_{sp.port}",
                                                  rds=sniffed_route_name(svc, sp.port))
                vips[f"{ip}_{sp.port}"] = (sp.port, ip, _outbound_vip_listener(proxy, push, scope, svc, sp, hcm, ip))
    for port, services in sni.items():
        if f"0.0.0.0_{port}" not in vips:
            vips[f"0.0.0.0_{port}"] = (port, "0.0.0.0", _outbound_sni_listener(proxy, push, port, services, blocked))
    dns = f"{mesh.DNS_SERVICE_IP}_{_DNS_PORT}"
    if blocked and dns not in vips:
        # Istio's registry has kube-dns (a Service); Sluice's cluster DNS has no Service object, and DNS over
        # TCP (truncated answers) must not be black-holed with the rest of the unknown destinations.
        vips[dns] = (_DNS_PORT, mesh.DNS_SERVICE_IP, _outbound_listener(
            dns, mesh.DNS_SERVICE_IP, _DNS_PORT, [{"name": dns, "filters": [tcp_proxy(push, PASSTHROUGH)]}], None,
            inspect_http=False))
    out += [listener for _, _, listener in sorted(vips.values(), key=lambda v: (v[0], v[1]))]
    out.append(_virtual_outbound(push, blocked))
    return out


def inbound_listener(proxy: Proxy, push: PushContext) -> Obj:
    """virtualInbound: this pod's own ports."""
    return _virtual_inbound(proxy, push)


def own_listener(proxy: Proxy, name: str) -> bool:
    """A headless service's listener on this proxy's own pod IP: Istio leaves it out (traffic to self does
    not flow through an outbound listener)."""
    return name.startswith(f"{proxy.ip}_")


def capture_listeners(proxy: Proxy, push: PushContext) -> list[Obj]:
    """Every listener of a netns-mode sidecar, in Istio's order (outbound per port, virtualOutbound,
    virtualInbound)."""
    outbound = [lst for lst in outbound_listeners(proxy, push) if not own_listener(proxy, str(lst["name"]))]
    return [*outbound, inbound_listener(proxy, push)]
