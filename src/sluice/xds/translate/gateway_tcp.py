"""LDS for a gateway's TCP and TLS-passthrough servers (Istio's gateway.go `buildGatewayTCPBasedFilterChains`,
the parts we need).

- a server of protocol TCP (or MONGO, MYSQL, REDIS): one listener on the server's port whose TCP proxy
  goes where the first `tcp` rule of a bound VirtualService sends it (a rule applies when it has no match, or
  one whose `port` and `gateways` fit the server); weighted destinations split the connections;
- a server of protocol TLS or HTTPS with `tls.mode: PASSTHROUGH`: a `tls_inspector` reads the client's SNI
  and one filter chain per `sniHosts` entry of the bound VirtualServices' `tls` rules proxies the still
  encrypted bytes to its destination (an unknown SNI gets no chain: the connection is closed).
A VirtualService is bound when it names the Gateway and one of its hosts fits one of the server's
(`ns/host` filters included). A server that nothing routes gets no listener, so its port refuses
connections. AUTO_PASSTHROUGH and TLS termination for TCP servers are not built here. Called by
`listeners._gateway_listeners`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from .httproute import RouteContext
from .model import Proxy
from .push_context import IstioConfig, PushContext
from .spec import Obj, host_covers
from .tcp_routes import TLS_INSPECTOR, Chain, route_filter, static_match

__all__ = ["gateway_tcp_listeners", "gateway_tcp_chains", "TCP_SERVER_PROTOCOLS"]

TCP_SERVER_PROTOCOLS = frozenset({"TCP", "MONGO", "MYSQL", "REDIS"})
_PASSTHROUGH_MODES = frozenset({"PASSTHROUGH"})


def _server_kind(server: Obj) -> str | None:
    """"tcp", "passthrough" or None (HTTP, TLS termination, AUTO_PASSTHROUGH: not built here)."""
    protocol = str((server.get("port") or {}).get("protocol") or "").upper()
    tls = server.get("tls") if isinstance(server.get("tls"), dict) else None
    if protocol in TCP_SERVER_PROTOCOLS and tls is None:
        return "tcp"
    if protocol in ("TLS", "HTTPS") and tls is not None and str(tls.get("mode") or "") in _PASSTHROUGH_MODES:
        return "passthrough"
    return None


def _bound(vs: IstioConfig, gw: IstioConfig, server: Obj) -> bool:
    """Istio's pickMatchingGatewayHosts, as a yes/no: a server host (after its `ns/` filter) fits a VS host."""
    for raw in server.get("hosts") or []:
        ns_filter, _, shost = str(raw).rpartition("/")
        if ns_filter not in ("", "*", vs.namespace) and not (ns_filter == "." and vs.namespace == gw.namespace):
            continue
        shost = shost.lower()
        if any(host_covers(shost, h) or host_covers(h, shost) for h in vs.hosts):
            return True
    return False


def _tcp_chain(proxy: Proxy, push: PushContext, gw: IstioConfig, server: Obj, port: int) -> Chain | None:
    ref = f"{gw.namespace}/{gw.name}"
    for vs in push.gateway_virtual_services(ref, proxy.namespace):
        if not _bound(vs, gw, server):
            continue
        ctx = RouteContext(push, proxy, vs, port, (ref,))
        for rule in vs.spec.get("tcp") or []:
            if not isinstance(rule, dict):
                continue
            matches = [m for m in rule.get("match") or [] if isinstance(m, dict)]
            if matches and not any(static_match(ctx, m) for m in matches):
                continue
            network = route_filter(ctx, rule.get("route"))
            if network is not None:
                return Chain(network)
    return None


def _sni_chains(proxy: Proxy, push: PushContext, gw: IstioConfig, server: Obj, port: int,
                taken: set[str]) -> list[Chain]:
    ref = f"{gw.namespace}/{gw.name}"
    out: list[Chain] = []
    for vs in push.gateway_virtual_services(ref, proxy.namespace):
        if not _bound(vs, gw, server):
            continue
        ctx = RouteContext(push, proxy, vs, port, (ref,))
        for rule in vs.spec.get("tls") or []:
            if not isinstance(rule, dict):
                continue
            for m in rule.get("match") or []:
                if not isinstance(m, dict) or not static_match(ctx, m):
                    continue
                # Envoy rejects two chains with the same match: the first VirtualService to claim an SNI keeps it
                sni = tuple(h for h in (str(s).lower() for s in m.get("sniHosts") or []) if h not in taken)
                network = route_filter(ctx, rule.get("route"))
                if not sni or network is None:
                    continue
                taken.update(sni)
                out.append(Chain(network, server_names=sni))
    return out


def gateway_tcp_chains(proxy: Proxy, push: PushContext,
                       skip_ports: Collection[int] = ()) -> dict[int, tuple[str, list[Chain]]]:
    """Server port → ("tcp" | "passthrough", its filter chains) for the Gateways selecting `proxy`; ports
    nothing routes are left out. (A builder of HTTPS listeners may merge a port's passthrough chains into
    its own listener, which needs the same `tls_inspector`.)"""
    by_port: dict[int, tuple[str, list[Chain]]] = {}
    taken: dict[int, set[str]] = {}
    for gw in push.gateways_for(proxy.labels):
        for server in gw.spec.get("servers") or []:
            if not isinstance(server, dict) or not isinstance(server.get("port"), dict):
                continue
            kind = _server_kind(server)
            port = int(server["port"].get("number") or 0)
            if kind is None or not port or port in skip_ports:
                continue
            have_kind, chains = by_port.setdefault(port, (kind, []))
            if have_kind != kind:
                continue  # a port is TCP or TLS, not both: the first server decides (Istio rejects the other)
            if kind == "tcp":
                chain = _tcp_chain(proxy, push, gw, server, port)
                if chain is not None and not chains:
                    chains.append(chain)
            else:
                chains += _sni_chains(proxy, push, gw, server, port, taken.setdefault(port, set()))
    return {port: value for port, value in sorted(by_port.items()) if value[1]}


def gateway_tcp_listeners(proxy: Proxy, push: PushContext, *, address: Callable[[int], Obj],
                          skip_ports: Collection[int] = (),
                          listen_port: Callable[[int], int] = lambda port: port,
                          name: Callable[[int], str] = lambda port: f"0.0.0.0_{port}") -> list[Obj]:
    """The listeners of the TCP and TLS-passthrough servers of the Gateways selecting `proxy`, by port.

    `address(port)` is the listener's address for a bound port; `skip_ports`: server ports already served
    (HTTP); `listen_port`: the port a server's port is bound on (the gateway Service's mapping, if any);
    `name(port)`: the listener's name for a bound port (Istio's `0.0.0.0_<port>` by default)."""
    out = []
    bound: set[int] = set()
    for port, (kind, chains) in gateway_tcp_chains(proxy, push, skip_ports).items():
        bind = listen_port(port)
        if bind in bound:
            continue  # two server ports bound on one port: the first one's
        bound.add(bind)
        listener_name = name(bind)
        listener: Obj = {"name": listener_name, "address": address(bind), "traffic_direction": "OUTBOUND",
                         "filter_chains": [c.build(listener_name if kind == "tcp"
                                                   else f"{listener_name}|{c.server_names[0]}")
                                           for c in chains]}
        if kind == "passthrough":
            listener["listener_filters"] = [TLS_INSPECTOR]
        out.append(listener)
    return out
