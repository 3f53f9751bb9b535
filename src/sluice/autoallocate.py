"""Istio's IP auto-allocation for ServiceEntry hosts (what `ISTIO_META_DNS_AUTO_ALLOCATE` / istiod's
`PILOT_ENABLE_IP_AUTOALLOCATE` give), as one pure function both the cluster DNS and the xDS translation call.

A ServiceEntry without `addresses` whose resolution is not NONE, and not opted out with the label
`networking.istio.io/enable-autoallocate-ip: "false"`, gets one address per non-wildcard host from Istio's
range 240.240.0.0/16 (Class E: never routed anywhere, so it cannot shadow a real address). Apps resolve the
host to it and the sidecar's per-VIP listener claims the connection, so TCP ports work without `addresses`.
Hosts in the cluster zone are left alone: the cluster DNS has real records for them.

Sluice needs it more than Istio does: the cluster DNS has no upstream resolver, so without an allocated
address a ServiceEntry host would not resolve inside a pod at all. The flip side: Istio's Envoy resolves
DNS-type hosts through kube-dns, not through the agent's proxy that answers the allocated address; here both
ask the one cluster DNS, so a DNS ServiceEntry reaches its servers through `endpoints` that name resolvable
addresses (no resolver here knows an outside host anyway). The address is a hash of the host (probing on a
collision, hosts taken in sorted order), so the DNS process and the control plane agree without talking, and
adding or removing one host rarely moves another's address.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from sluice import mesh

__all__ = ["AUTOALLOCATE_LABEL", "AUTOALLOCATE_RANGE", "wants_auto_address", "auto_addresses"]

AUTOALLOCATE_LABEL = "networking.istio.io/enable-autoallocate-ip"
AUTOALLOCATE_RANGE = ipaddress.ip_network("240.240.0.0/16")
_SIZE = AUTOALLOCATE_RANGE.num_addresses - 2  # neither the network nor the broadcast address


def wants_auto_address(se: Mapping[str, Any]) -> bool:
    """Istio's ShouldV2AutoAllocateIP: no `addresses`, resolution other than NONE, not opted out."""
    spec = se.get("spec")
    if not isinstance(spec, Mapping) or spec.get("addresses"):
        return False
    if str(spec.get("resolution") or "NONE") == "NONE":
        return False  # the data plane could not honour the address (it forwards to the original destination)
    labels = (se.get("metadata") or {}).get("labels") or {}
    return str(labels.get(AUTOALLOCATE_LABEL, "")).lower() != "false"


def _in_cluster_zone(host: str) -> bool:
    """A name the cluster DNS answers itself (a headless Service's pod, a pod's name): it keeps its real
    address, which the sidecar's Envoy must also get when it resolves the name (Istio's Envoy asks kube-dns,
    never the agent's DNS proxy; here both ask the one cluster DNS)."""
    return host == mesh.CLUSTER_DOMAIN or host.endswith("." + mesh.CLUSTER_DOMAIN)


def _slot(host: str) -> int:
    return int.from_bytes(hashlib.sha256(host.encode()).digest()[:4], "big") % _SIZE


def auto_addresses(service_entries: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Host (lower case) → its allocated IPv4 address, for every host that should get one."""
    hosts: set[str] = set()
    for se in service_entries:
        if not isinstance(se, Mapping) or not wants_auto_address(se):
            continue
        for h in (se.get("spec") or {}).get("hosts") or []:
            host = str(h).strip().rstrip(".").lower()
            if host and "*" not in host and not _in_cluster_zone(host):
                hosts.add(host)
    used: set[int] = set()
    out: dict[str, str] = {}
    base = int(AUTOALLOCATE_RANGE.network_address) + 1
    for host in sorted(hosts)[:_SIZE]:
        slot = _slot(host)
        while slot in used:
            slot = (slot + 1) % _SIZE
        used.add(slot)
        out[host] = str(ipaddress.IPv4Address(base + slot))
    return out
