"""VirtualService validation (Istio's ValidateVirtualService): hosts, gateways, http/tcp/tls rules, exportTo.

Called through `sluice.validation.istio.validate` by the API server on every write.
"""

from __future__ import annotations

from typing import Any

from sluice.validation.field import Path
from sluice.validation.istio.common import (
    Ctx,
    check_export_to,
    check_gateway_names,
    check_labels,
    check_port,
    host_matches,
    host_subset_of,
    ip_subnet_error,
    is_ip,
    is_jwt_claim_header,
    wildcard_domain_error,
)
from sluice.validation.istio.destination import check_route_destinations
from sluice.validation.istio.httproute import check_http_route
from sluice.validation.istio.unreachable import find_unreachable_rules

__all__ = ["validate_virtual_service", "MESH_GATEWAY"]

MESH_GATEWAY = "mesh"
_SNI_FORMAT = "outbound_.<port>_._.<hostname>"


def _gateway_host_error(domain: str, sni: bool) -> str | None:
    """Hosts of gateway-bound VirtualServices may also be AUTO_PASSTHROUGH SNI names (`outbound_.80_._.host`)."""
    if sni and domain.startswith("outbound_") and len(domain) <= 255:
        parts = domain.split("_")
        if len(parts) < 4:
            return f"domain name {domain} invalid, should follow '{_SNI_FORMAT}' format"
        port, hostname = parts[1].strip("."), parts[3].strip(".")
        if not any(c.isdigit() for c in port):
            return f'domain name "{domain}" invalid (label "{port}" invalid). should follow {_SNI_FORMAT} format'
        if not any(c.isalpha() for c in hostname):
            return f'domain name "{domain}" invalid (label "{hostname}" invalid). should follow {_SNI_FORMAT} format'
        return None
    return wildcard_domain_error(domain)


def _has_sni_hosts(spec: dict[str, Any]) -> bool:
    routes = spec.get("tls")
    for route in routes if isinstance(routes, list) else []:
        matches = route.get("match") if isinstance(route, dict) else None
        for match in matches if isinstance(matches, list) else []:
            if isinstance(match, dict) and match.get("sniHosts"):
                return True
    return False


def validate_virtual_service(ctx: Ctx, spec: dict[str, Any]) -> None:
    root = Path("spec")
    hosts = ctx.str_list(spec, "hosts", root)
    gateways = ctx.str_list(spec, "gateways", root)
    http = ctx.lst(spec, "http", root)
    tcp = ctx.lst(spec, "tcp", root)
    tls = ctx.lst(spec, "tls", root)

    if not hosts:
        # no hosts: this is a delegate, which only carries http rules for its root VirtualService
        if gateways:
            ctx.forbidden(root.child("gateways"), "delegate virtual service must have no gateways specified")
        if tls:
            ctx.forbidden(root.child("tls"), "delegate virtual service must have no tls route specified")
        if tcp:
            ctx.forbidden(root.child("tcp"), "delegate virtual service must have no tcp route specified")

    to_gateway = bool(gateways) and MESH_GATEWAY not in gateways
    to_mesh = not to_gateway
    check_gateway_names(ctx, root.child("gateways"), gateways)
    if not to_gateway:
        _check_jwt_routing(ctx, root, http, gateways)

    all_valid = True
    sni = _has_sni_hosts(spec)
    for i, host in enumerate(hosts):
        err = _gateway_host_error(host, sni) if to_gateway else wildcard_domain_error(host)
        if err:
            if not is_ip(host):
                ctx.invalid(root.child("hosts").index(i), host, err)
                all_valid = False
        elif to_mesh and host == "*":
            ctx.invalid(root.child("hosts").index(i), host,
                        "wildcard host * is not allowed for virtual services bound to the mesh gateway")
            all_valid = False
    if all_valid:
        for i, a in enumerate(hosts):
            for j in range(i + 1, len(hosts)):
                if host_matches(a, hosts[j]):
                    ctx.invalid(root.child("hosts").index(j), hosts[j],
                                f"duplicate hosts in virtual service: {a} & {hosts[j]}")

    if not http and not tcp and not tls:
        ctx.required(root.child("http"), "http, tcp or tls must be provided in virtual service")
    for i, route in enumerate(http):
        p = root.child("http").index(i)
        if route is None:
            ctx.required(p, "http route may not be null")
        elif not isinstance(route, dict):
            ctx.type_invalid(p, route, "an object")
        else:
            check_http_route(ctx, p, route, in_delegate=not hosts)
    for i, route in enumerate(tls):
        if isinstance(route, dict):
            _check_tls_route(ctx, root.child("tls").index(i), route, hosts, to_gateway)
    for i, route in enumerate(tcp):
        if isinstance(route, dict):
            _check_tcp_route(ctx, root.child("tcp").index(i), route)

    check_export_to(ctx, root.child("exportTo"), ctx.str_list(spec, "exportTo", root))
    for finding in find_unreachable_rules(spec):
        ctx.warn(finding.message)


def _check_jwt_routing(ctx: Ctx, root: Path, http: list[Any], gateways: list[str]) -> None:
    """JWT-claim routing needs the gateway's RequestAuthentication, so sidecars cannot do it."""
    for i, route in enumerate(http):
        matches = route.get("match") if isinstance(route, dict) else None
        for j, match in enumerate(matches if isinstance(matches, list) else []):
            if not isinstance(match, dict):
                continue
            for key in ("headers", "withoutHeaders"):
                names = match.get(key)
                for name in names if isinstance(names, dict) else {}:
                    if is_jwt_claim_header(name):
                        ctx.invalid(root.child("http").index(i).child("match").index(j).child(key).key(name), name,
                                    f"JWT claim based routing (key: {name}) is only supported for gateway, "
                                    f"found no gateways: [{' '.join(gateways)}]")


def _check_l4_match(ctx: Ctx, path: Path, match: dict[str, Any]) -> None:
    for i, subnet in enumerate(ctx.str_list(match, "destinationSubnets", path)):
        if err := ip_subnet_error(subnet):
            ctx.invalid(path.child("destinationSubnets").index(i), subnet, err)
    port = ctx.int_(match, "port", path)
    if port:
        check_port(ctx, path.child("port"), port)
    check_labels(ctx, path.child("sourceLabels"), ctx.str_map(match, "sourceLabels", path))
    check_gateway_names(ctx, path.child("gateways"), ctx.str_list(match, "gateways", path))


def _check_tls_route(ctx: Ctx, path: Path, route: dict[str, Any], hosts: list[str], to_gateway: bool) -> None:
    matches = ctx.lst(route, "match", path)
    if not matches:
        ctx.required(path.child("match"), "TLS route must have at least one match condition")
    for j, match in enumerate(matches):
        p = path.child("match").index(j)
        if not isinstance(match, dict):
            ctx.required(p, "TLS match may not be null")
            continue
        sni_hosts = ctx.str_list(match, "sniHosts", p)
        if not sni_hosts:
            ctx.required(p.child("sniHosts"), "TLS match must have at least one SNI host")
        for k, sni in enumerate(sni_hosts):
            _check_sni_host(ctx, p.child("sniHosts").index(k), sni, hosts, to_gateway)
        _check_l4_match(ctx, p, match)
    routes = ctx.lst(route, "route", path)
    if not routes:
        ctx.required(path.child("route"), "TLS route is required")
    check_route_destinations(ctx, path.child("route"), routes, http=False)


def _check_sni_host(ctx: Ctx, path: str, sni: str, hosts: list[str], to_gateway: bool) -> None:
    err = _gateway_host_error(sni, True) if to_gateway else wildcard_domain_error(sni)
    if err:
        if is_ip(sni):
            ctx.warn(f'using an IP address ("{sni}") goes against SNI spec and most clients do not support this')
        else:
            ctx.invalid(path, sni, err)
        return
    if not any(host_subset_of(sni, h) for h in hosts):
        ctx.invalid(path, sni, f'SNI host "{sni}" is not a compatible subset of any of the virtual service '
                               f"hosts: [{', '.join(hosts)}]")


def _check_tcp_route(ctx: Ctx, path: Path, route: dict[str, Any]) -> None:
    for j, match in enumerate(ctx.lst(route, "match", path)):
        p = path.child("match").index(j)
        if not isinstance(match, dict):
            ctx.required(p, "tcp match may not be nil")
            continue
        _check_l4_match(ctx, p, match)
    routes = ctx.lst(route, "route", path)
    if not routes:
        ctx.required(path.child("route"), "TCP route is required")
    check_route_destinations(ctx, path.child("route"), routes, http=False)
