"""Sidecar validation (Istio's ValidateSidecar): workloadSelector, ingress and egress listeners (ports, binds,
capture modes, the egress `namespace/dnsName` hosts), outboundTrafficPolicy.

Called through `sluice.validation.istio.validate` by the API server on every write.
"""

from __future__ import annotations

from typing import Any

from sluice.validation.field import Path
from sluice.validation.istio.common import (
    Ctx,
    check_alpha_workload_selector,
    fqdn_error,
    is_dns1123_label,
    is_ip,
    port_error,
    wildcard_domain_error,
)
from sluice.validation.istio.gateway import parse_protocol

__all__ = ["validate_sidecar", "CAPTURE_MODES", "OUTBOUND_MODES"]

CAPTURE_MODES = ["DEFAULT", "IPTABLES", "NONE"]
OUTBOUND_MODES = ["REGISTRY_ONLY", "ALLOW_ANY"]
_UNIX = "unix://"


def validate_sidecar(ctx: Ctx, spec: dict[str, Any], labels: dict[str, str]) -> None:
    root = Path("spec")
    check_alpha_workload_selector(ctx, spec, root, "sidecar")
    ingress = ctx.lst(spec, "ingress", root)
    egress = ctx.lst(spec, "egress", root)
    policy = ctx.obj(spec, "outboundTrafficPolicy", root)
    if not ingress and not egress and policy is None and spec.get("inboundConnectionPool") is None:
        ctx.invalid(root, "{}", "sidecar: empty configuration provided")
        return
    ports: set[int] = set()
    for i, listener in enumerate(ingress):
        _ingress(ctx, root.child("ingress").index(i), listener, ports)
    ports = set()
    catch_all = False
    for i, listener in enumerate(egress):
        p = root.child("egress").index(i)
        if not isinstance(listener, dict):
            ctx.invalid(p, listener, "egress listener may not be null")
            continue
        port = ctx.obj(listener, "port", p)
        if port is None:
            if catch_all:
                ctx.invalid(p, "{}", "sidecar: egress can have only one listener with empty port")
                continue
            if i == len(egress) - 1:
                catch_all = True
            else:
                ctx.invalid(p, "{}", "sidecar: the egress listener with empty port should be the last listener in "
                            "the list")
        else:
            _egress_port(ctx, p, listener, port, ports)
        _hosts(ctx, p, ctx.str_list(listener, "hosts", p))
    if policy is not None:
        _outbound_policy(ctx, root.child("outboundTrafficPolicy"), policy)


def _port_common(ctx: Ctx, p: Path, port: dict[str, Any]) -> int:
    name = ctx.str_(port, "name", p)
    if name and not is_dns1123_label(name):
        ctx.invalid(p.child("name"), name, f"invalid port name: {name}")
    protocol = ctx.str_(port, "protocol", p)
    if protocol and parse_protocol(protocol) is None:
        ctx.invalid(p.child("protocol"), protocol, f"unsupported protocol: {protocol}")
    if ctx.int_(port, "targetPort", p):
        ctx.forbidden(p.child("targetPort"), "targetPort has no impact on Sidecars")
    return ctx.int_(port, "number", p) or 0


def _unique(ctx: Ctx, p: Path, number: int, seen: set[int]) -> None:
    if number in seen:
        ctx.invalid(p.child("port").child("number"), number, "sidecar: ports on IP bound listeners must be unique")
    seen.add(number)


def _ingress(ctx: Ctx, p: Path, listener: Any, seen: set[int]) -> None:
    if not isinstance(listener, dict):
        ctx.invalid(p, listener, "sidecar: ingress may not be null")
        return
    port = ctx.obj(listener, "port", p)
    if port is None:
        ctx.required(p.child("port"), "sidecar: port is required for ingress listeners")
        return
    pp = p.child("port")
    number = _port_common(ctx, pp, port)
    if err := port_error(number):
        ctx.invalid(pp.child("number"), number, err)
    bind = ctx.str_(listener, "bind", p)
    if bind and not is_ip(bind):
        ctx.invalid(p.child("bind"), bind, f"{bind} is not a valid IP")
    _capture_mode(ctx, p, listener)
    _unique(ctx, p, number, seen)
    endpoint = ctx.str_(listener, "defaultEndpoint", p)
    if endpoint and not endpoint.startswith(_UNIX):
        host, sep, port_text = endpoint.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep:
            ctx.invalid(p.child("defaultEndpoint"), endpoint, f"address {endpoint}: missing port in address")
        elif host not in ("", "127.0.0.1", "0.0.0.0", "::1", "::"):
            ctx.invalid(p.child("defaultEndpoint"), endpoint, "sidecar: defaultEndpoint must be of form "
                        "127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset")
        elif not port_text.isdigit():
            ctx.invalid(p.child("defaultEndpoint"), endpoint,
                        f'sidecar: defaultEndpoint port ({port_text}) is not a number')
        elif err := port_error(int(port_text)):
            ctx.invalid(p.child("defaultEndpoint"), endpoint, err)


def _egress_port(ctx: Ctx, p: Path, listener: dict[str, Any], port: dict[str, Any], seen: set[int]) -> None:
    pp = p.child("port")
    number = _port_common(ctx, pp, port)
    bind = ctx.str_(listener, "bind", p)
    mode = _capture_mode(ctx, p, listener)
    if number == 0:
        if not bind.startswith(_UNIX):
            ctx.invalid(p.child("bind"), bind, "sidecar: ports with 0 value must have a unix domain socket bind "
                        "address")
        if mode not in ("DEFAULT", "NONE"):
            ctx.invalid(p.child("captureMode"), mode,
                        "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners")
        return
    if err := port_error(number):
        ctx.invalid(pp.child("number"), number, err)
    if bind and not is_ip(bind):
        ctx.invalid(p.child("bind"), bind, f"{bind} is not a valid IP")
    _unique(ctx, p, number, seen)


def _capture_mode(ctx: Ctx, p: Path, listener: dict[str, Any]) -> str:
    mode = ctx.str_(listener, "captureMode", p) or "DEFAULT"
    if mode not in CAPTURE_MODES:
        ctx.not_supported(p.child("captureMode"), mode, CAPTURE_MODES)
    return mode


def _hosts(ctx: Ctx, p: Path, hosts: list[str]) -> None:
    """`namespace/dnsName` each (Istio's ValidateNamespaceSlashWildcardHostname), with its duplicate warnings."""
    if not hosts:
        ctx.required(p.child("hosts"), "sidecar: egress listener must contain at least one host")
        return
    by_namespace: dict[str, set[str]] = {}
    for i, host in enumerate(hosts):
        hp = p.child("hosts").index(i)
        ns, slash, name = host.partition("/")
        if slash and not ns.startswith("~"):
            names = by_namespace.setdefault(ctx.namespace if ns == "." else ns, set())
            if name in names or (name != "*" and "*" in names) or (name == "*" and names):
                ctx.warn(f"duplicated egress host: {host}")
            names.add(name)
        for problem in _host_errors(host):
            ctx.invalid(hp, host, problem)
    if "*" in by_namespace.get("*", set()) and len(by_namespace) != 1:
        ctx.warn("`*/*` host select all resources, no other hosts can be added")


def _host_errors(host: str) -> list[str]:
    ns, slash, name = host.partition("/")
    if not slash:
        return ["host must be of form namespace/dnsName"]
    errs: list[str] = []
    if not ns or not name:
        errs.append("config namespace and dnsName in host entry cannot be empty")
    bare = ns.removeprefix("~")
    if bare not in ("", "*", ".") and not is_dns1123_label(bare):
        errs.append(f'invalid namespace value "{ns}" in sidecar')
    if name != "*" and "." not in name:
        errs.append("short names (non FQDN) are not allowed")
    if err := wildcard_domain_error(name):
        errs.append(err)
    if "*" in name and len(name) != 1 and not name.startswith("*."):
        errs.append(f'partial wildcard "{name}" not allowed')
    return errs


def _outbound_policy(ctx: Ctx, p: Path, policy: dict[str, Any]) -> None:
    mode = ctx.str_(policy, "mode", p) or "REGISTRY_ONLY"
    if mode == "ALLOW_ANY_DYNAMIC_DNS":
        ctx.invalid(p.child("mode"), mode,
                    "sidecar: ALLOW_ANY_DYNAMIC_DNS mode is only supported in MeshConfig, not in Sidecar resource")
        return
    if mode not in OUTBOUND_MODES:
        ctx.not_supported(p.child("mode"), mode, OUTBOUND_MODES)
        return
    proxy = ctx.obj(policy, "egressProxy", p)
    if proxy is None:
        return
    ep = p.child("egressProxy")
    if mode != "ALLOW_ANY":
        ctx.invalid(ep, "{...}", "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode")
        return
    host = ctx.str_(proxy, "host", ep)
    if err := fqdn_error(host):
        ctx.invalid(ep.child("host"), host, err)
    port = ctx.obj(proxy, "port", ep)
    if port is None:
        ctx.required(ep.child("port"), "sidecar: egress_proxy port must be non-nil")
