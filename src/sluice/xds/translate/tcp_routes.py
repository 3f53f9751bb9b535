"""VirtualService `tcp` and `tls` rules → filter chains ending in a TCP proxy (Istio's listener_builder
`buildSidecarOutboundTCPFilterChainOpts` / `buildSidecarOutboundTLSFilterChainOpts` and gateway.go's
`buildGatewayNetworkFiltersFrom{TCP,TLS}Routes`, the parts we need).

A match applies to a proxy and port when its static predicates hold (`port`, `sourceLabels`,
`sourceNamespace`, `gateways`); its runtime predicates become the chain's `filter_chain_match`:
`destinationSubnets` → `prefix_ranges`, `sniHosts` → `server_names` (read by the `tls_inspector`).
- TCP (a sidecar's TCP port): the first rule with a match that applies and names no subnet (or with no
  match at all) is the default chain, and ends the list; rules whose matches all name subnets add one chain
  each before it. Without such a rule the default chain goes to `outbound|<port>||<fqdn>`.
- TLS (a sidecar's TLS/HTTPS port, a gateway's PASSTHROUGH server): one chain per distinct (SNI hosts,
  subnets) of the matches that apply; without any, one chain to `outbound|<port>||<fqdn>` with no SNI match.
Each chain's TCP proxy goes to one destination (`stat_prefix` = its cluster) or splits between the
weighted ones (`stat_prefix` = `<vs name>.<vs namespace>`, as Istio names it). Called by `capture`
(sidecars) and `gateway_tcp` (gateways).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass

from .httproute import RouteContext, destination_cluster
from .network_filters import tcp_proxy
from .protos import typed
from .push_context import IstioConfig, PushContext
from .spec import Obj, gateway_ref, labels_match

__all__ = ["TLS_INSPECTOR", "Chain", "tcp_chains", "tls_chains", "route_filter", "static_match",
           "needs_tls_inspector", "is_tls_protocol"]

TLS_INSPECTOR = {"name": "envoy.filters.listener.tls_inspector",
                 "typed_config": typed("envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector")}


@dataclass(frozen=True)
class Chain:
    """One filter chain: what it matches at run time and its TCP proxy."""

    filter: Obj
    server_names: tuple[str, ...] = ()
    prefix_ranges: tuple[str, ...] = ()

    def build(self, name: str) -> Obj:
        match: Obj = {}
        if self.prefix_ranges:
            match["prefix_ranges"] = [_cidr(c) for c in self.prefix_ranges]
        if self.server_names:
            match["server_names"] = list(self.server_names)
        chain: Obj = {"name": name, "filters": [self.filter]}
        if match:
            chain["filter_chain_match"] = match
        return chain


def is_tls_protocol(protocol: str) -> bool:
    """Istio's Protocol.IsTLS: ports whose traffic is TLS, routed by the VirtualService's `tls` rules."""
    return protocol in ("TLS", "HTTPS")


def needs_tls_inspector(chains: Collection[Chain]) -> bool:
    return any(c.server_names for c in chains)


def _cidr(value: str) -> Obj:
    net = ipaddress.ip_network(value, strict=False)
    return {"address_prefix": str(net.network_address), "prefix_len": net.prefixlen}


def _valid_cidrs(values: object) -> tuple[str, ...]:
    out = []
    for v in values if isinstance(values, list) else []:
        try:
            ipaddress.ip_network(str(v), strict=False)
        except ValueError:
            continue  # validation rejects these; a stored one must not break the push
        out.append(str(v))
    return tuple(out)


def static_match(ctx: RouteContext, match: Obj) -> bool:
    """Istio's matchTCP / matchTLS: the predicates known when the config is generated."""
    gateways = [gateway_ref(str(g), ctx.vs.namespace) for g in match.get("gateways") or []]
    if gateways and not any(g in ctx.gateways for g in gateways):
        return False
    source = {str(k): str(v) for k, v in (match.get("sourceLabels") or {}).items()}
    if not labels_match(source, ctx.proxy.labels):
        return False
    port = match.get("port")
    if port and int(port) != ctx.port:
        return False
    ns = match.get("sourceNamespace")
    return not ns or ns == ctx.proxy.namespace


def _destination(ctx: RouteContext, dest: Obj) -> str:
    """The cluster of a route destination, its port picked as Istio's GetDestinationCluster does."""
    return destination_cluster(ctx, dest)[0]


def route_filter(ctx: RouteContext, route: object) -> Obj | None:
    """The TCP proxy for a rule's `route` list; None when it names no destination."""
    dests = [d for d in route if isinstance(d, dict) and isinstance(d.get("destination"), dict)] \
        if isinstance(route, list) else []
    if not dests:
        return None
    if len(dests) == 1:
        cluster = _destination(ctx, dests[0]["destination"])
        return tcp_proxy(ctx.push, cluster)
    weighted = [(_destination(ctx, d["destination"]), int(d.get("weight") or 0)) for d in dests]
    weighted = [(c, w) for c, w in weighted if w > 0]  # Istio leaves zero weights out
    if len(weighted) <= 1:
        return tcp_proxy(ctx.push, weighted[0][0]) if weighted else None
    return tcp_proxy(ctx.push, weighted[0][0], weighted=weighted, stat_prefix=f"{ctx.vs.name}.{ctx.vs.namespace}")


def _rules(vs: IstioConfig, key: str) -> list[Obj]:
    return [r for r in vs.spec.get(key) or [] if isinstance(r, dict)]


def tcp_chains(ctx: RouteContext | None, default_cluster: str, push: PushContext) -> list[Chain]:
    """A TCP port's chains from the VirtualService in `ctx` (None: there is none)."""
    out: list[Chain] = []
    for rule in _rules(ctx.vs, "tcp") if ctx else []:
        assert ctx is not None
        matches = [m for m in rule.get("match") or [] if isinstance(m, dict)]
        network = route_filter(ctx, rule.get("route"))
        if network is None:
            continue
        if not matches:
            return [*out, Chain(network)]
        subnets: list[str] = []
        for m in matches:
            if not static_match(ctx, m):
                continue
            cidrs = _valid_cidrs(m.get("destinationSubnets"))
            if not cidrs:
                return [*out, Chain(network)]  # a match on any address: the default, nothing after it
            subnets += [c for c in cidrs if c not in subnets]
        if subnets:
            out.append(Chain(network, prefix_ranges=tuple(subnets)))
    return [*out, Chain(tcp_proxy(push, default_cluster))]


def tls_chains(ctx: RouteContext | None, default_cluster: str | None, push: PushContext,
               allowed_sni: Collection[str] | None = None) -> list[Chain]:
    """A TLS port's chains from the VirtualService in `ctx`. `default_cluster`: where a connection goes when
    no rule applies (a sidecar's service port), or None (a gateway: no chain). `allowed_sni`: a gateway
    server's hosts, which each SNI host must fall under."""
    out: list[Chain] = []
    seen: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
    for rule in _rules(ctx.vs, "tls") if ctx else []:
        assert ctx is not None
        network = route_filter(ctx, rule.get("route"))
        if network is None:
            continue
        for m in rule.get("match") or []:
            if not isinstance(m, dict) or not static_match(ctx, m):
                continue
            sni = tuple(str(h).lower() for h in m.get("sniHosts") or [])
            if allowed_sni is not None:
                sni = tuple(h for h in sni if _sni_allowed(h, allowed_sni))
                if not sni:
                    continue
            key = (sni, _valid_cidrs(m.get("destinationSubnets")))
            if key in seen:
                continue  # an earlier match with the same run-time predicates wins (Istio)
            seen.add(key)
            out.append(Chain(network, server_names=sni, prefix_ranges=key[1]))
    if not out and default_cluster is not None:
        out.append(Chain(tcp_proxy(push, default_cluster)))
    return out


def _sni_allowed(sni: str, hosts: Collection[str]) -> bool:
    for h in hosts:
        if h == "*" or h == sni:
            return True
        if h.startswith("*.") and (sni.endswith(h[1:]) or sni == h):
            return True
        if sni.startswith("*.") and h.endswith(sni[1:]):
            return True
    return False
