"""ServiceEntry validation (Istio's ValidateServiceEntry): hosts, addresses, ports, resolution vs endpoints.

Called through `sluice.validation.istio.validate` by the API server on every write.
"""

from __future__ import annotations

from typing import Any

from sluice.validation.field import Path
from sluice.validation.istio.common import (
    Ctx,
    check_alpha_workload_selector,
    check_export_to,
    check_labels,
    check_port,
    fqdn_error,
    ip_subnet_error,
    is_dns1123_label,
    is_ip,
    wildcard_domain_error,
)
from sluice.validation.istio.gateway import HTTP_PROTOCOLS, TLS_PROTOCOLS, parse_protocol

__all__ = ["validate_service_entry", "RESOLUTIONS", "LOCATIONS"]

RESOLUTIONS = ["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"]
LOCATIONS = ["MESH_EXTERNAL", "MESH_INTERNAL"]
_TCP_PROTOCOLS = frozenset({"TCP", "HTTPS", "TLS", "Mongo", "Redis", "MySQL"})
_AUTOALLOCATE_LABEL = "networking.istio.io/enable-autoallocate-ip"


def validate_service_entry(ctx: Ctx, spec: dict[str, Any], labels: dict[str, str]) -> None:
    root = Path("spec")
    resolution = ctx.str_(spec, "resolution", root) or "NONE"
    if resolution not in RESOLUTIONS:
        ctx.not_supported(root.child("resolution"), resolution, RESOLUTIONS)
    location = ctx.str_(spec, "location", root) or "MESH_EXTERNAL"
    if location not in LOCATIONS:
        ctx.not_supported(root.child("location"), location, LOCATIONS)

    selector = check_alpha_workload_selector(ctx, spec, root, "service entry")
    endpoints = ctx.lst(spec, "endpoints", root)
    if selector is not None:
        if spec.get("endpoints") is not None:
            ctx.forbidden(root.child("endpoints"),
                          "only one of WorkloadSelector or Endpoints is allowed in Service Entry")

    hosts = ctx.str_list(spec, "hosts", root)
    if not hosts:
        ctx.required(root.child("hosts"), "service entry must have at least one host")
    for i, host in enumerate(hosts):
        p = root.child("hosts").index(i)
        if host == "*":
            ctx.invalid(p, host, f"invalid host {host}")
            continue
        if err := wildcard_domain_error(host):
            ctx.invalid(p, host, err)
        if resolution != "DYNAMIC_DNS" and "*" in host and not host.startswith("*."):
            ctx.warn(f'partial wildcard "{host}" not allowed')

    addresses = ctx.str_list(spec, "addresses", root)
    for i, addr in enumerate(addresses):
        if err := ip_subnet_error(addr):
            ctx.invalid(root.child("addresses").index(i), addr, err)
    if any("/" in a for a in addresses) and resolution not in ("NONE", "STATIC"):
        ctx.invalid(root.child("addresses"), addresses,
                    "CIDR addresses are allowed only for NONE/STATIC resolution types")

    port_names: set[str] = set()
    port_numbers: set[int] = set()
    protocols: list[str | None] = []
    autoallocate = labels.get(_AUTOALLOCATE_LABEL, "true") != "false"
    for i, port in enumerate(ctx.lst(spec, "ports", root)):
        p = root.child("ports").index(i)
        if not isinstance(port, dict):
            ctx.required(p, "service entry port may not be null")
            continue
        name = ctx.str_(port, "name", p)
        number = ctx.int_(port, "number", p) or 0
        protocol = ctx.str_(port, "protocol", p)
        if name in port_names:
            ctx.invalid(p.child("name"), name, f'service entry port name "{name}" already defined')
        port_names.add(name)
        if number in port_numbers:
            ctx.invalid(p.child("number"), number, f"service entry port {number} already defined")
        port_numbers.add(number)
        target = ctx.int_(port, "targetPort", p)
        if target:
            check_port(ctx, p.child("targetPort"), target)
        if not addresses and not autoallocate and protocol in ("", "TCP"):
            ctx.warn("addresses are required for ports serving TCP (or unset) protocol when IP Autoallocation "
                     "is not enabled")
        if not is_dns1123_label(name):
            ctx.invalid(p.child("name"), name, f"invalid port name: {name}")
        proto = parse_protocol(protocol) if protocol else None
        if protocol and proto is None:
            ctx.invalid(p.child("protocol"), protocol, f"unsupported protocol: {protocol}")
        protocols.append(proto)
        check_port(ctx, p.child("number"), number)

    _check_resolution(ctx, root, spec, resolution, location, hosts, addresses, endpoints, port_names, protocols)

    # plain TCP cannot tell hosts apart (no Host header, no SNI), so several hosts need NONE resolution
    if resolution != "NONE" and len(hosts) > 1:
        if any(p not in HTTP_PROTOCOLS and p not in TLS_PROTOCOLS for p in protocols):
            ctx.invalid(root.child("hosts"), hosts, "multiple hosts provided with non-HTTP, non-TLS ports")
    check_export_to(ctx, root.child("exportTo"), ctx.str_list(spec, "exportTo", root), service_entry=True)


def _check_resolution(ctx: Ctx, root: Path, spec: dict[str, Any], resolution: str, location: str,
                      hosts: list[str], addresses: list[str], endpoints: list[Any], port_names: set[str],
                      protocols: list[str | None]) -> None:
    if resolution == "NONE":
        if endpoints:
            ctx.forbidden(root.child("endpoints"), "no endpoints should be provided for resolution type none")
        if spec.get("workloadSelector") is not None:
            ctx.warn("workloadSelector should not be set when resolution mode is NONE")
    elif resolution == "STATIC":
        for i, ep in enumerate(endpoints):
            _check_endpoint(ctx, root.child("endpoints").index(i), ep, port_names, dns=False)
    elif resolution in ("DNS", "DNS_ROUND_ROBIN"):
        if not endpoints:
            for i, host in enumerate(hosts):
                if err := fqdn_error(host):
                    ctx.invalid(root.child("hosts").index(i), host,
                                "hosts must be FQDN or contain only prefix wildcards if no endpoints are provided "
                                f"for resolution mode {resolution}, {err}")
                    break
        if resolution == "DNS_ROUND_ROBIN" and len(endpoints) > 1:
            ctx.invalid(root.child("endpoints"), len(endpoints),
                        f"there must only be 0 or 1 endpoint for resolution mode {resolution}")
        for i, ep in enumerate(endpoints):
            _check_endpoint(ctx, root.child("endpoints").index(i), ep, port_names, dns=True)
        if addresses and len(hosts) > 1 and any(p in _TCP_PROTOCOLS for p in protocols):
            ctx.warn("service entry can not have more than one host specified simultaneously with address and "
                     "tcp port")
    elif resolution == "DYNAMIC_DNS":
        for i, host in enumerate(hosts):
            if not host.startswith("*"):
                ctx.invalid(root.child("hosts").index(i), host,
                            f"host must be wildcarded for resolution mode {resolution}")
        if addresses:
            ctx.forbidden(root.child("addresses"),
                          f"addresses cannot be set for resolution type {resolution}. HTTP route domains will only "
                          "be generated from the hosts field values")
        if endpoints:
            ctx.forbidden(root.child("endpoints"),
                          f"endpoints cannot be set for resolution type {resolution}. Destination IP address "
                          "determined from hosts field values")
        for i, proto in enumerate(protocols):
            if proto not in ("HTTP", "TLS", "GRPC", "HTTP2"):
                ctx.invalid(root.child("ports").index(i).child("protocol"), proto or "",
                            f"only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution type {resolution}")
        if location not in ("MESH_EXTERNAL", "MESH_INTERNAL"):
            ctx.invalid(root.child("location"), location,
                        f"location must be MESH_EXTERNAL or MESH_INTERNAL for resolution type {resolution}")


def _check_endpoint(ctx: Ctx, path: Path, ep: Any, port_names: set[str], *, dns: bool) -> None:
    """A WorkloadEntry inside a ServiceEntry: an IP (STATIC), or an IP / FQDN (DNS); ports named as the SE's."""
    if not isinstance(ep, dict):
        ctx.required(path, "endpoint cannot be nil")
        return
    addr = ctx.str_(ep, "address", path)
    network = ctx.str_(ep, "network", path)
    if not addr:
        if not network:
            ctx.required(path.child("address"), "address is required")
            return
        ctx.warn(f'address is unset with network "{network}"')
    unix = addr.startswith("unix://")
    ports = ctx.obj(ep, "ports", path) or {}
    if unix:
        sock = addr.removeprefix("unix://")
        if not sock.startswith("@") and (not sock.startswith("/") or sock.endswith("/")):
            ctx.invalid(path.child("address"), addr, f"{sock} is not an absolute path to a file")
        if ports:
            ctx.forbidden(path.child("ports"), f"unix endpoint {addr} must not include ports")
        if len(port_names) != 1:
            ctx.invalid(path.child("address"), addr, "exactly 1 service port required for unix endpoints")
    elif addr and not is_ip(addr):
        if not dns:
            ctx.invalid(path.child("address"), addr, f'endpoint address "{addr}" is not a valid IP address')
        elif fqdn_error(addr):
            ctx.invalid(path.child("address"), addr, f'endpoint address "{addr}" is not a valid FQDN or an IP address')
    for name, number in ports.items():
        pp = path.child("ports").key(name)
        if name not in port_names:
            ctx.invalid(pp, number, f"endpoint port {number} is not defined by the service entry")
        if not is_dns1123_label(name):
            ctx.invalid(pp, name, f"invalid port name: {name}")
        if isinstance(number, int) and not isinstance(number, bool):
            check_port(ctx, pp, number)
        else:
            ctx.type_invalid(pp, number, "an integer")
    check_labels(ctx, path.child("labels"), ctx.str_map(ep, "labels", path))
