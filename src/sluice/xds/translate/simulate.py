"""A small route simulator: where would Envoy send this request, given the generated resources?

Replays Envoy's virtual-host selection (exact domain, then the longest `*.suffix`, then the longest
`prefix*`, then `*`) and first-match route selection (path, headers, query parameters) over a generated
RouteConfiguration, as Istio's pilot/pkg/simulation does. Used by the translation tests and handy for
`proxy-config`-style debugging; it models routing only, not filters (faults are reported, not applied).

`match_connection` does the same one level down for netns mode's captured connections: which listener and
filter chain a connection to `IP:port` lands on (exact `IP:port`, then `0.0.0.0:port`, then virtualOutbound;
or virtualInbound for inbound ones) and what its first network filter sends it to.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from google.protobuf import json_format

from .model import INBOUND_CAPTURE_PORT, OUTBOUND_CAPTURE_PORT, TYPE_LISTENER, TYPE_ROUTE, Resources

__all__ = ["Decision", "route_request", "Hop", "match_connection"]


@dataclass(frozen=True)
class Decision:
    virtual_host: str
    route_name: str
    clusters: tuple[tuple[str, int], ...] = ()  # (cluster, weight); weight 100 for a single cluster
    direct_status: int | None = None
    redirect: Mapping[str, Any] | None = None
    mirrors: tuple[str, ...] = ()
    action: Mapping[str, Any] = field(default_factory=dict)  # the route action as JSON, for other asserts
    per_filter: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cluster(self) -> str | None:
        """The destination when there is exactly one."""
        return self.clusters[0][0] if len(self.clusters) == 1 else None


def _domain_rank(domain: str, host: str) -> tuple[int, int] | None:
    d = domain.lower()
    if d == host:
        return (4, len(d))
    if d == "*":
        return (1, 0)
    if d.startswith("*") and host.endswith(d[1:]) and len(host) > len(d) - 1:
        return (3, len(d))
    if d.endswith("*") and host.startswith(d[:-1]) and len(host) > len(d) - 1:
        return (2, len(d))
    return None


def _string_match(m: Mapping[str, Any], value: str) -> bool:
    ignore = bool(m.get("ignore_case"))
    v = value.lower() if ignore else value
    for key, test in (("exact", lambda p: v == p), ("prefix", lambda p: v.startswith(p)),
                      ("suffix", lambda p: v.endswith(p)), ("contains", lambda p: p in v)):
        if key in m:
            pattern = str(m[key])
            return bool(test(pattern.lower() if ignore else pattern))
    if "safe_regex" in m:
        return re.fullmatch(str(m["safe_regex"]["regex"]), value) is not None
    return False


def _header_ok(h: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
    value = headers.get(str(h["name"]).lower())
    invert = bool(h.get("invert_match"))
    if value is None:
        if h.get("present_match"):
            return invert
        if not h.get("treat_missing_header_as_empty"):
            return False
        value = ""
    result = True if h.get("present_match") else _string_match(h.get("string_match") or {}, value)
    return result != invert


def _route_ok(match: Mapping[str, Any], path: str, headers: Mapping[str, str]) -> bool:
    bare, _, query = path.partition("?")
    sensitive = match.get("case_sensitive", True)
    p = bare if sensitive else bare.lower()

    def norm(s: str) -> str:
        return s if sensitive else s.lower()

    if "prefix" in match and not p.startswith(norm(str(match["prefix"]))):
        return False
    if "path" in match and p != norm(str(match["path"])):
        return False
    if "safe_regex" in match and re.fullmatch(str(match["safe_regex"]["regex"]), bare) is None:
        return False
    if not all(_header_ok(h, headers) for h in match.get("headers", [])):
        return False
    params = dict(parse_qsl(query, keep_blank_values=True))
    for q in match.get("query_parameters", []):
        value = params.get(str(q["name"]))
        if value is None or not (q.get("present_match") or _string_match(q.get("string_match") or {}, value)):
            return False
    return True


def route_request(resources: Resources, authority: str, path: str = "/", *, headers: Mapping[str, str] | None = None,
                  method: str = "GET", route_config: str = "http_proxy") -> Decision | None:
    """The route Envoy would pick for a request, or None for Envoy's `404 NR` (no host or route matches)."""
    msg = resources.get(TYPE_ROUTE, {}).get(route_config)
    if msg is None:
        return None
    rc = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    host = authority.lower()
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    hdrs.update({":authority": authority, ":method": method, ":path": path, ":scheme": "http"})
    best: tuple[tuple[int, int], Mapping[str, Any]] | None = None
    for vh in rc.get("virtual_hosts", []):
        for d in vh.get("domains", []):
            rank = _domain_rank(d, host)
            if rank is not None and (best is None or rank > best[0]):
                best = (rank, vh)
    if best is None:
        return None
    vh = best[1]
    for r in vh.get("routes", []):
        if not _route_ok(r.get("match", {}), path, hdrs):
            continue
        name, per_filter = str(r.get("name", "")), r.get("typed_per_filter_config", {})
        if "direct_response" in r:
            return Decision(vh["name"], name, direct_status=int(r["direct_response"]["status"]),
                            per_filter=per_filter)
        if "redirect" in r:
            return Decision(vh["name"], name, redirect=r["redirect"], per_filter=per_filter)
        action = r.get("route", {})
        if "cluster" in action:
            clusters: tuple[tuple[str, int], ...] = ((str(action["cluster"]), 100),)
        else:
            clusters = tuple((str(c["name"]), int(c.get("weight", 0)))
                             for c in action.get("weighted_clusters", {}).get("clusters", []))
        mirrors = tuple(str(m["cluster"]) for m in action.get("request_mirror_policies", []))
        return Decision(vh["name"], name, clusters=clusters, mirrors=mirrors, action=action, per_filter=per_filter)
    return None


@dataclass(frozen=True)
class Hop:
    """Where a captured connection goes: its listener and filter chain, then the RDS table (`route_config`)
    of an HTTP connection manager on RDS, or a cluster (a TCP proxy's, or an inline route table's first)."""

    listener: str
    chain: str
    route_config: str | None = None
    cluster: str | None = None


def _socket(listener: Mapping[str, Any]) -> tuple[str, int]:
    sock = listener.get("address", {}).get("socket_address", {})
    return str(sock.get("address", "")), int(sock.get("port_value", 0))


def _best(chains: list[Mapping[str, Any]], key: str, value: Any) -> list[Mapping[str, Any]]:
    """Envoy's filter chain match, one criterion: chains that name `value` beat chains that name nothing;
    chains that name something else drop out."""
    def named(c: Mapping[str, Any]) -> Any:
        return c.get("filter_chain_match", {}).get(key)

    exact = [c for c in chains if named(c) is not None and (value in named(c) if isinstance(named(c), list)
                                                             else named(c) == value)]
    return exact or [c for c in chains if not named(c)]


def _by_prefix(chains: list[Mapping[str, Any]], ip: str) -> list[Mapping[str, Any]]:
    """Envoy's destination IP match: the longest `prefix_ranges` entry holding `ip`, else chains naming none."""
    addr = ipaddress.ip_address(ip)
    best = -1
    found: list[Mapping[str, Any]] = []
    for c in chains:
        ranges = c.get("filter_chain_match", {}).get("prefix_ranges")
        if not ranges:
            continue
        for r in ranges:
            net = ipaddress.ip_network(f"{r['address_prefix']}/{int(r.get('prefix_len', 0))}", strict=False)
            if addr in net and net.prefixlen >= best:
                found = found if net.prefixlen == best else []
                best = net.prefixlen
                found.append(c)
    return found or [c for c in chains if not c.get("filter_chain_match", {}).get("prefix_ranges")]


def _by_server_name(chains: list[Mapping[str, Any]], sni: str | None) -> list[Mapping[str, Any]]:
    """Envoy's SNI match: an exact name, else the longest `*.suffix`, else chains naming none."""
    def names(c: Mapping[str, Any]) -> list[str]:
        return list(c.get("filter_chain_match", {}).get("server_names", []))

    if sni:
        exact = [c for c in chains if sni in names(c)]
        if exact:
            return exact
        wild = [(len(n), c) for c in chains for n in names(c) if n.startswith("*.") and sni.endswith(n[1:])]
        if wild:
            longest = max(w for w, _ in wild)
            return [c for w, c in wild if w == longest]
    return [c for c in chains if not names(c)]


def match_connection(resources: Resources, ip: str, port: int, *, http: bool, inbound: bool = False,
                     sni: str | None = None) -> Hop | None:
    """The listener, filter chain and destination of a connection to `ip:port` after capture (outbound:
    handed off by virtualOutbound; `inbound`: virtualInbound), whose first bytes are HTTP/1.1 or not, or a
    TLS ClientHello naming `sni`. A TCP proxy splitting by weight shows its first cluster."""
    listeners = {n: json_format.MessageToDict(m, preserving_proto_field_name=True)
                 for n, m in resources.get(TYPE_LISTENER, {}).items()}
    by_address = {_socket(lst): lst for lst in listeners.values()}
    capture = ("0.0.0.0", INBOUND_CAPTURE_PORT if inbound else OUTBOUND_CAPTURE_PORT)
    listener = by_address.get(capture) if inbound else (
        by_address.get((ip, port)) or by_address.get(("0.0.0.0", port)) or by_address.get(capture))
    if listener is None:
        return None
    chains: list[Mapping[str, Any]] = _best(list(listener.get("filter_chains", [])), "destination_port", port)
    chains = _by_server_name(_by_prefix(chains, ip), sni)
    for key, value in (("transport_protocol", "tls" if sni else "raw_buffer"),
                       ("application_protocols", "http/1.1" if http else None)):
        chains = _best(chains, key, value)
    chain = chains[0] if chains else listener.get("default_filter_chain")
    if chain is None:
        return None
    hop = Hop(str(listener["name"]), str(chain.get("name", "")))
    config = chain["filters"][0]["typed_config"]
    if "rds" in config:
        return Hop(hop.listener, hop.chain, route_config=str(config["rds"]["route_config_name"]))
    if "route_config" in config:
        route = config["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
        return Hop(hop.listener, hop.chain, cluster=str(route["cluster"]))
    weighted = config.get("weighted_clusters", {}).get("clusters")
    return Hop(hop.listener, hop.chain, cluster=str(weighted[0]["name"] if weighted else config.get("cluster")))
