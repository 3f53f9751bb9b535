"""The cluster's DNS names, as CoreDNS's `kubernetes` plugin and Istio's DNS proxy serve them. Pure.

`build_table` turns the stored Services, Endpoints, Pods, Namespaces and ServiceEntries into a `NameTable`;
`sluice.dns.answer` turns a query into a response from it. What is in the table (zone `cluster.local`):

* `svc.ns.svc.cluster.local`: A/AAAA of the ClusterIP(s); for a headless Service, of its ready endpoints
  (plus the not-ready ones with `publishNotReadyAddresses`); CNAME for an ExternalName Service.
* `endpoint.svc.ns.svc.cluster.local` for each endpoint of a headless Service, `endpoint` being the address's
  hostname (a pod with `hostname` and `subdomain` = the Service's name gets its hostname, as the endpoints
  controller sets it) or its IP with dashes.
* SRV `_port._proto.svc.ns.svc.cluster.local` for every named port (`svc.ns.svc.cluster.local` itself for all
  ports): priority 0, weight 100 split evenly over the records, the Service's port and name for a ClusterIP
  Service, each endpoint's port and name for a headless one; the targets' addresses go in the additional
  section.
* `a-b-c-d.ns.pod.cluster.local` → a.b.c.d for an existing namespace (`pods insecure`, kubeadm's Corefile),
  or only for a pod of that namespace with that IP (`pods verified`).
* PTR for ClusterIPs and endpoint IPs under `in-addr.arpa`/`ip6.arpa`; TXT `dns-version.cluster.local`.
* The hosts of ServiceEntries (networking.istio.io) that list `addresses`: A/AAAA of those addresses, a
  `*.example.com` host answering for every name below `example.com` (Istio's DNS proxying; CIDR ranges are
  not addresses to answer with, as in Istio). A ServiceEntry without `addresses` answers with the address
  Istio's auto-allocation gives its hosts (`sluice.autoallocate`, 240.240.0.0/16), unless it opted out or
  its resolution is NONE.

Names are compared lower-case, without the trailing dot.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from sluice.autoallocate import auto_addresses, wants_auto_address
from sluice.objects import Obj

__all__ = ["Srv", "Node", "NameTable", "build_table", "normalize", "DEFAULT_ZONE", "DEFAULT_TTL"]

log = logging.getLogger("sluice.dns")

DEFAULT_ZONE = "cluster.local"
DEFAULT_TTL = 30  # kubeadm's Corefile: `kubernetes cluster.local … { ttl 30 }`
DNS_SPEC_VERSION = "1.1.0"

PodMode = Literal["insecure", "verified", "disabled"]


def normalize(name: str) -> str:
    return name.rstrip(".").lower()


@dataclass(frozen=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str


@dataclass
class Node:
    """The records one name owns."""

    a: list[str] = field(default_factory=list)
    aaaa: list[str] = field(default_factory=list)
    srv: list[Srv] = field(default_factory=list)
    cname: str = ""
    ptr: list[str] = field(default_factory=list)
    txt: list[str] = field(default_factory=list)

    def add_ip(self, ip: str) -> None:
        target = self.aaaa if ":" in ip else self.a
        if ip not in target:
            target.append(ip)


@dataclass
class NameTable:
    zone: str = DEFAULT_ZONE
    ttl: int = DEFAULT_TTL
    serial: int = 0
    names: dict[str, Node] = field(default_factory=dict)
    # Names that own nothing but have names below them (`ns.svc.cluster.local`): NODATA, not NXDOMAIN.
    interior: set[str] = field(default_factory=set)
    namespaces: set[str] = field(default_factory=set)
    pod_ips: set[tuple[str, str]] = field(default_factory=set)  # (namespace, ip)
    pod_mode: PodMode = "insecure"
    wildcards: dict[str, Node] = field(default_factory=dict)  # ServiceEntry `*.example.com` → "example.com"

    def authoritative(self, name: str) -> bool:
        """Whether `name` is in a zone this table answers for alone (the cluster zone, or a known reverse)."""
        name = normalize(name)
        if name == self.zone or name.endswith("." + self.zone):
            return True
        return name.endswith((".in-addr.arpa", ".ip6.arpa")) and name in self.names

    def lookup(self, name: str) -> Node | None:
        name = normalize(name)
        node = self.names.get(name)
        if node is not None:
            return node
        return self._pod(name) or self._wildcard(name)

    def _wildcard(self, name: str) -> Node | None:
        """Istio's DNS proxy: the closest `*.suffix` host answers for any name below the suffix."""
        if not self.wildcards:
            return None
        labels = name.split(".")
        for i in range(1, len(labels)):
            node = self.wildcards.get(".".join(labels[i:]))
            if node is not None:
                return node
        return None

    def exists(self, name: str) -> bool:
        """The name owns records or has names below it (NOERROR) — otherwise it is NXDOMAIN."""
        name = normalize(name)
        return name == self.zone or name in self.interior or self.lookup(name) is not None

    def _pod(self, name: str) -> Node | None:
        suffix = f".pod.{self.zone}"
        if self.pod_mode == "disabled" or not name.endswith(suffix):
            return None
        labels = name[: -len(suffix)].split(".")
        if len(labels) != 2:
            return None
        dashed, ns = labels
        ip = _undash(dashed)
        if ip is None or ns not in self.namespaces:
            return None
        if self.pod_mode == "verified" and (ns, ip) not in self.pod_ips:
            return None
        node = Node()
        node.add_ip(ip)
        return node

    # ------------------------------------------------------------------ building
    def node(self, name: str) -> Node:
        name = normalize(name)
        n = self.names.get(name)
        if n is None:
            n = self.names[name] = Node()
            self._mark_interior(name)
        return n

    def _mark_interior(self, name: str) -> None:
        zone = self.zone
        if not (name == zone or name.endswith("." + zone)):
            return
        parts = name.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[i:])
            if parent == zone or not parent.endswith("." + zone):
                break
            self.interior.add(parent)


def _undash(text: str) -> str | None:
    """`10-244-0-5` → `10.244.0.5`; IPv6 as CoreDNS writes it (`fd00--5`) → `fd00::5`."""
    for candidate in (text.replace("-", "."), text.replace("-", ":")):
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


def _dashed(ip: str) -> str:
    if ":" in ip:
        out = ip.replace(":", "-")
        return out + "0" if out.endswith("-") else out
    return ip.replace(".", "-")


def _reverse(ip: str) -> str | None:
    try:
        return normalize(ipaddress.ip_address(ip).reverse_pointer)
    except ValueError:
        return None


def _ips(values: Iterable[Any]) -> list[str]:
    out = []
    for v in values:
        try:
            out.append(str(ipaddress.ip_address(str(v))))
        except ValueError:
            continue
    return out


def _weights(records: list[tuple[int, str]]) -> list[Srv]:
    """CoreDNS: every record of one priority shares weight 100 evenly (rounded down)."""
    if not records:
        return []
    w = max(1, math.floor(100 / len(records)))
    return [Srv(0, w, port, target) for port, target in records]


def _endpoint_hostname(address: Obj, svc_name: str, pods: dict[tuple[str, str], Obj]) -> str:
    if address.get("hostname"):
        return str(address["hostname"]).lower()
    ref = address.get("targetRef") or {}
    pod = pods.get((str(ref.get("namespace") or ""), str(ref.get("name") or "")))
    spec = (pod or {}).get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == svc_name:
        return str(spec["hostname"]).lower()
    return _dashed(str(address.get("ip") or ""))


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def _srv_name(port: Obj, fq: str) -> str:
    return f"_{normalize(str(port['name']))}._{str(port.get('protocol') or 'TCP').lower()}.{fq}"


class _Builder:
    def __init__(self, t: NameTable, endpoints: Iterable[Obj], pods: Iterable[Obj]) -> None:
        self.t = t
        self.pods: dict[tuple[str, str], Obj] = {}
        for p in pods:
            with _skipping_bad(p):
                self.pods[_key(p)] = p
                status = p.get("status") or {}
                ips = [status.get("podIP")] + [x.get("ip") for x in status.get("podIPs") or [] if isinstance(x, dict)]
                t.pod_ips.update((_key(p)[0], ip) for ip in _ips(ips))
        self.endpoints = {_key(e): e for e in endpoints}
        self.reverse: dict[str, str] = {}  # ClusterIP → Service name (wins over an endpoint's name)
        self.endpoint_reverse: dict[str, str] = {}

    def service(self, svc: Obj) -> None:
        t = self.t
        spec = svc.get("spec") or {}
        ns, raw_name = _key(svc)
        ns, name = normalize(ns), normalize(raw_name)
        if not name:
            return
        t.namespaces.add(ns)
        fq = f"{name}.{ns}.svc.{t.zone}"
        if spec.get("type") == "ExternalName":
            if spec.get("externalName"):
                t.node(fq).cname = normalize(str(spec["externalName"]))
            return
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict) and isinstance(p.get("port"), int)]
        headless = not spec.get("clusterIP") or spec.get("clusterIP") == "None"
        if not headless:
            node = t.node(fq)
            for ip in _ips(spec.get("clusterIPs") or [spec["clusterIP"]]):
                node.add_ip(ip)
                self.reverse.setdefault(ip, fq)
            node.srv = _weights([(int(p["port"]), fq) for p in ports])
            for p in ports:
                if p.get("name"):
                    t.node(_srv_name(p, fq)).srv = _weights([(int(p["port"]), fq)])
        # A headless Service's name exists only while it has endpoints (NXDOMAIN otherwise, as in CoreDNS).
        by_port: dict[str, list[tuple[int, str]]] = {}
        all_ports: list[tuple[int, str]] = []
        endpoint_srv: dict[str, list[tuple[int, str]]] = {}
        for subset in (self.endpoints.get((ns, raw_name)) or {}).get("subsets") or []:
            addresses = list(subset.get("addresses") or [])
            if spec.get("publishNotReadyAddresses"):
                addresses += subset.get("notReadyAddresses") or []
            subset_ports = [p for p in subset.get("ports") or []
                            if isinstance(p, dict) and isinstance(p.get("port"), int)]
            for addr in addresses:
                ip = str(addr.get("ip") or "")
                if not _ips([ip]):
                    continue
                # Endpoint names exist for every Service (`10-244-0-5.reviews.ns.svc…`); the Service's own
                # name resolves to the endpoints only when it is headless.
                ep_fq = f"{_endpoint_hostname(addr, raw_name, self.pods)}.{fq}"
                self.endpoint_reverse.setdefault(ip, ep_fq)
                t.node(ep_fq).add_ip(ip)
                if headless:
                    t.node(fq).add_ip(ip)
                for p in subset_ports:
                    endpoint_srv.setdefault(ep_fq, []).append((int(p["port"]), ep_fq))
                    all_ports.append((int(p["port"]), ep_fq))
                    if p.get("name"):
                        by_port.setdefault(_srv_name(p, fq), []).append((int(p["port"]), ep_fq))
        for ep_fq, records in endpoint_srv.items():
            t.node(ep_fq).srv = _weights(records)
        if headless and all_ports:
            t.node(fq).srv = _weights(all_ports)
            for key, records in by_port.items():
                t.node(key).srv = _weights(records)

    def service_entry(self, se: Obj, auto: dict[str, str]) -> None:
        spec = se.get("spec") or {}
        if wants_auto_address(se):
            for host in spec.get("hosts") or []:
                host = normalize(str(host))
                if host in auto:
                    self.t.node(host).add_ip(auto[host])
            return
        addresses: list[str] = []
        for a in spec.get("addresses") or []:
            ip, _, prefix = str(a).partition("/")
            if not prefix or prefix in ("32", "128"):  # a range has no single address to answer with
                addresses += _ips([ip])
        if not addresses:
            return
        for host in spec.get("hosts") or []:
            host = normalize(str(host))
            if host.startswith("*.") and "*" not in host[2:]:
                node = self.t.wildcards.setdefault(host[2:], Node())
            elif host and "*" not in host:
                node = self.t.node(host)
            else:
                continue
            for ip in addresses:
                node.add_ip(ip)

    def finish(self) -> None:
        t = self.t
        # The version of the Kubernetes DNS-Based Service Discovery spec served (CoreDNS answers the same).
        t.node(f"dns-version.{t.zone}").txt = [DNS_SPEC_VERSION]
        for ns in t.namespaces:  # an existing namespace's names exist even when it has no Service (NODATA)
            t.interior.update({f"{ns}.svc.{t.zone}", f"{ns}.pod.{t.zone}", f"svc.{t.zone}", f"pod.{t.zone}"})
        for ip, target in {**self.endpoint_reverse, **self.reverse}.items():
            rev = _reverse(ip)
            if rev:
                t.node(rev).ptr = [target]


@contextlib.contextmanager
def _skipping_bad(obj: Obj) -> Iterator[None]:
    """One malformed object loses its own names, never everyone's."""
    try:
        yield
    except (AttributeError, TypeError, ValueError, KeyError) as e:
        log.warning("dns: skipping %s/%s: %s", *_key(obj), e)


def build_table(*, services: Iterable[Obj] = (), endpoints: Iterable[Obj] = (), pods: Iterable[Obj] = (),
                namespaces: Iterable[Obj] = (), service_entries: Iterable[Obj] = (), zone: str = DEFAULT_ZONE,
                ttl: int = DEFAULT_TTL, pod_mode: PodMode = "insecure", serial: int = 0) -> NameTable:
    t = NameTable(zone=normalize(zone), ttl=ttl, serial=serial, pod_mode=pod_mode)
    t.namespaces = {normalize(_key(n)[1]) for n in namespaces if isinstance(n, dict)}
    b = _Builder(t, [e for e in endpoints if isinstance(e, dict)], [p for p in pods if isinstance(p, dict)])
    for svc in sorted((s for s in services if isinstance(s, dict)), key=_key):
        with _skipping_bad(svc):
            b.service(svc)
    entries = [se for se in service_entries if isinstance(se, dict)]
    auto = auto_addresses(entries)
    for se in entries:
        with _skipping_bad(se):
            b.service_entry(se, auto)
    b.finish()
    return t
