"""istio-init's traffic capture for one pod, as the nftables ruleset Istio's native-nftables mode writes.

Pure: `capture_rules(annotations)` returns the `nft -f` script for the pod's network namespace (applied by
`sluice.runtime.netns.node`). The rules mirror `istio-iptables -p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x ""
-b '*' -d 15090,15021,15020` (the injector's defaults) and its annotation overrides, in the order
`IptablesConfigurator.Run` builds them (see shared/reference/istio_capture_and_listeners.md §1): outbound TCP
goes to Envoy's 15001 unless it comes from the proxy (uid or gid 1337) or goes to localhost; inbound TCP to the
pod goes to 15006 except Istio's own ports. Tables are `inet istio-proxy-nat`, re-created whole on every apply.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from sluice import mesh

__all__ = ["CaptureConfig", "CaptureError", "capture_config", "capture_rules", "PROXY_GID", "PROXY_UID",
           "TABLE"]

PROXY_UID = 1337
PROXY_GID = 1337
OUTBOUND_PORT = 15001
INBOUND_PORT = 15006
TUNNEL_PORT = 15008  # HBONE: never captured
STATUS_PORT = mesh.AGENT_STATUS_PORT
TABLE = "istio-proxy-nat"
INBOUND_PASSTHROUGH_SOURCE = "127.0.0.6/32"  # the address Envoy's inbound side connects to the app from
LOOPBACK = "127.0.0.1/32"

_A = "traffic.sidecar.istio.io/"


class CaptureError(ValueError):
    """An annotation istio-init would refuse (the pod cannot start, as with a failing istio-init)."""


@dataclass(frozen=True)
class CaptureConfig:
    include_inbound_ports: str = "*"  # "*", "" (no inbound capture) or a list
    exclude_inbound_ports: tuple[int, ...] = (mesh.PROMETHEUS_PORT, mesh.PROXY_HEALTH_PORT, STATUS_PORT)
    include_outbound_ranges: str = "*"
    exclude_outbound_ranges: tuple[str, ...] = ()
    include_outbound_ports: tuple[int, ...] = ()
    exclude_outbound_ports: tuple[int, ...] = ()


def _ports(value: str, what: str) -> tuple[int, ...]:
    out: list[int] = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or not 0 < int(part) < 65536:
            raise CaptureError(f'{_A}{what}: "{part}" is not a valid port')
        if int(part) not in out:
            out.append(int(part))
    return tuple(out)


def _cidrs(value: str, what: str) -> tuple[str, ...]:
    out: list[str] = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            net = ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise CaptureError(f'{_A}{what}: "{part}" is not a valid CIDR') from None
        if net.version == 4:  # pods are IPv4-only here, as istio-iptables without dual stack
            out.append(str(net))
    return tuple(out)


def capture_config(annotations: Mapping[str, str]) -> CaptureConfig:
    """The istio-init arguments a pod's annotations select (the injector's template, `excludeInboundPort`)."""
    get = {k: str(v) for k, v in annotations.items()}.get
    include_in = get(_A + "includeInboundPorts", "*").strip()
    if include_in not in ("*", ""):
        include_in = ",".join(str(p) for p in _ports(include_in, "includeInboundPorts"))
    status = get(mesh.STATUS_PORT_ANNOTATION, str(STATUS_PORT)).strip() or str(STATUS_PORT)
    excluded = [mesh.PROMETHEUS_PORT, mesh.PROXY_HEALTH_PORT,
                *_ports(get(_A + "excludeInboundPorts", ""), "excludeInboundPorts")]
    for p in _ports(status, "status port"):
        if p not in excluded:
            excluded.append(p)
    include_out = get(_A + "includeOutboundIPRanges", "*").strip()
    if include_out not in ("*", ""):
        include_out = ",".join(_cidrs(include_out, "includeOutboundIPRanges"))
    exclude_out = get(_A + "excludeOutboundIPRanges", "").strip()
    if exclude_out == "*":
        raise CaptureError(f"{_A}excludeOutboundIPRanges: '*' is not allowed (use includeOutboundIPRanges: \"\")")
    return CaptureConfig(
        include_inbound_ports=include_in,
        exclude_inbound_ports=tuple(excluded),
        include_outbound_ranges=include_out,
        exclude_outbound_ranges=_cidrs(exclude_out, "excludeOutboundIPRanges"),
        include_outbound_ports=_ports(get(_A + "includeOutboundPorts", ""), "includeOutboundPorts"),
        exclude_outbound_ports=_ports(get(_A + "excludeOutboundPorts", ""), "excludeOutboundPorts"),
    )


def capture_rules(cfg: CaptureConfig) -> str:
    """The `nft -f` script that (re)creates the pod's capture table."""
    t = f"inet {TABLE}"
    lines = [f"add table {t}", f"flush table {t}",
             f"add chain {t} prerouting {{ type nat hook prerouting priority -100 ; }}",
             f"add chain {t} output {{ type nat hook output priority -100 ; }}"]
    for chain in ("istio-inbound", "istio-redirect", "istio-in-redirect", "istio-output"):
        lines.append(f"add chain {t} {chain}")

    def rule(chain: str, body: str) -> None:
        lines.append(f"add rule {t} {chain} {body}")

    rule("istio-inbound", f"tcp dport {TUNNEL_PORT} counter return")
    rule("istio-redirect", f"meta l4proto tcp counter redirect to :{OUTBOUND_PORT}")
    rule("istio-in-redirect", f"meta l4proto tcp counter redirect to :{INBOUND_PORT}")
    # Inbound: everything but the excluded ports ('*'), or only the listed ports.
    if cfg.include_inbound_ports == "*":
        rule("prerouting", "meta l4proto tcp counter jump istio-inbound")
        for port in cfg.exclude_inbound_ports:
            rule("istio-inbound", f"tcp dport {port} counter return")
        rule("istio-inbound", "meta l4proto tcp counter jump istio-in-redirect")
    elif cfg.include_inbound_ports:
        rule("prerouting", "meta l4proto tcp counter jump istio-inbound")
        for listed in cfg.include_inbound_ports.split(","):
            rule("istio-inbound", f"tcp dport {listed} counter jump istio-in-redirect")
    # Outbound.
    rule("output", "counter jump istio-output")
    for port in cfg.exclude_outbound_ports:
        rule("istio-output", f"tcp dport {port} counter return")
        rule("istio-output", f"udp dport {port} counter return")
    rule("istio-output", f"oifname lo ip saddr {INBOUND_PASSTHROUGH_SOURCE} counter return")
    for match, ident in (("skuid", PROXY_UID), ("skgid", PROXY_GID)):
        # The proxy calling its own pod IP over lo (an app calling its own service) goes to the inbound side.
        rule("istio-output", f"oifname lo meta l4proto tcp ip daddr != {LOOPBACK} tcp dport != {TUNNEL_PORT} "
                             f"{match} {ident} counter jump istio-in-redirect")
        rule("istio-output", f"oifname lo {match} != {ident} counter return")
        rule("istio-output", f"{match} {ident} counter return")
    rule("istio-output", f"ip daddr {LOOPBACK} counter return")
    for cidr in cfg.exclude_outbound_ranges:
        rule("istio-output", f"ip daddr {cidr} counter return")
    for port in cfg.include_outbound_ports:
        rule("istio-output", f"tcp dport {port} counter jump istio-redirect")
    if cfg.include_outbound_ranges == "*":
        rule("istio-output", "counter jump istio-redirect")
    elif cfg.include_outbound_ranges:
        for cidr in cfg.include_outbound_ranges.split(","):
            rule("istio-output", f"ip daddr {cidr} counter jump istio-redirect")
    return "\n".join(lines) + "\n"
