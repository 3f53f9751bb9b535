"""Small readers of Istio / Kubernetes spec values shared by the builders.

Durations, percentages, StringMatch → Envoy matchers, host-name resolution and port protocols. Stored
objects have passed validation, so these readers are lenient: a value they cannot read is skipped rather
than failing the whole push.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sluice import mesh
from sluice.objects import Obj
from sluice.validation.istio.common import parse_duration

__all__ = [
    "Obj", "sub", "duration", "duration_ns", "fraction_of_percent", "int_percent", "string_matcher", "is_present_match",
    "resolve_host", "host_covers", "labels_match", "port_protocol", "protocol_by_name", "is_http_protocol",
    "is_http2_protocol", "gateway_ref",
]

_NS_PER_S = 10**9


def sub(parent: Any, key: str) -> Obj:
    """`parent[key]` when it is an object, else an empty one."""
    value = parent.get(key) if isinstance(parent, Mapping) else None
    return value if isinstance(value, dict) else {}


def duration_ns(value: Any) -> int | None:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float):  # some clients send seconds as a number
        return int(value * _NS_PER_S)
    return None


def duration(value: Any) -> str | None:
    """An Istio duration (`1.5s`, `100ms`, `1h`) as a protobuf JSON Duration (`1.500s`)."""
    ns = duration_ns(value)
    if ns is None or ns < 0:
        return None
    seconds, rest = divmod(ns, _NS_PER_S)
    return f"{seconds}s" if rest == 0 else f"{seconds}.{rest:09d}".rstrip("0") + "s"


def fraction_of_percent(value: Any) -> Obj:
    """Istio's `Percent` (0-100, fractional) as Envoy's FractionalPercent per million, as Istio converts it."""
    pct = float(value.get("value", 0) if isinstance(value, Mapping) else value or 0)
    return {"numerator": int(round(pct * 10000)), "denominator": "MILLION"}


def int_percent(value: int) -> Obj:
    return {"numerator": int(value), "denominator": "HUNDRED"}


def is_present_match(sm: Any) -> bool:
    """Istio reads an empty StringMatch, or regex `*`, as "the header is present"."""
    if not isinstance(sm, Mapping) or not any(k in sm for k in ("exact", "prefix", "regex")):
        return True
    return "regex" in sm and sm["regex"] == "*"


def string_matcher(sm: Mapping[str, Any], *, ignore_case: bool = False) -> Obj | None:
    """Istio StringMatch → Envoy `type.matcher.v3.StringMatcher`."""
    out: Obj
    if "exact" in sm:
        out = {"exact": str(sm["exact"])}
    elif "prefix" in sm:
        out = {"prefix": str(sm["prefix"])}
    elif "regex" in sm:
        out = {"safe_regex": {"regex": str(sm["regex"])}}
    else:
        return None
    if ignore_case and "safe_regex" not in out:
        out["ignore_case"] = True
    return out


def resolve_host(host: str, namespace: str, namespaces: frozenset[str] = frozenset()) -> str:
    """A host as written in a VirtualService / DestinationRule, relative to its namespace, as an FQDN.

    `reviews` → `reviews.<ns>.svc.cluster.local`; `reviews.other` (a known namespace) and
    `reviews.other.svc` → `reviews.other.svc.cluster.local`; FQDNs and wildcards stay as written.
    """
    h = host.strip().lower()
    if not h or h.startswith("*"):
        return h
    parts = h.split(".")
    if len(parts) == 1:
        return mesh.fqdn(h, namespace)
    if len(parts) == 2 and parts[1] in namespaces:
        return mesh.fqdn(parts[0], parts[1])
    if len(parts) == 3 and parts[2] == "svc":
        return mesh.fqdn(parts[0], parts[1])
    return h


def host_covers(pattern: str, host: str) -> bool:
    """Whether a (possibly wildcard) host pattern matches a concrete host."""
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return host.endswith(pattern[1:])
    return pattern == host


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


_PROTOCOLS = {"http": "HTTP", "http2": "HTTP2", "grpc": "GRPC", "grpc-web": "GRPC-WEB", "https": "HTTPS",
              "tcp": "TCP", "tls": "TLS", "mongo": "MONGO", "mysql": "MYSQL", "redis": "REDIS", "udp": "UDP",
              "h2c": "HTTP2", "kubernetes.io/h2c": "HTTP2", "kubernetes.io/ws": "HTTP", "kubernetes.io/wss": "HTTPS"}


def port_protocol(port: Mapping[str, Any]) -> str:
    """Istio's protocol selection for a Service port: `appProtocol`, else the name's `<proto>[-suffix]`."""
    if str(port.get("protocol") or "TCP").upper() in ("UDP", "SCTP"):
        return "UDP"
    app = str(port.get("appProtocol") or "").lower()
    if app in _PROTOCOLS:
        return _PROTOCOLS[app]
    name = str(port.get("name") or "").lower()
    for candidate in (name, name.split("-", 1)[0]):
        if candidate in _PROTOCOLS:
            return _PROTOCOLS[candidate]
    return "UNKNOWN"  # Istio sniffs these; through an HTTP proxy they can only be HTTP


def protocol_by_name(name: str) -> str:
    """A protocol as a ServiceEntry or Gateway port spells it (`HTTP`, `tcp`, `TLS`); empty or unknown is sniffed."""
    return _PROTOCOLS.get(name.strip().lower(), "UNKNOWN")


def is_http_protocol(protocol: str) -> bool:
    return protocol in ("HTTP", "HTTP2", "GRPC", "GRPC-WEB", "UNKNOWN")


def is_http2_protocol(protocol: str) -> bool:
    return protocol in ("HTTP2", "GRPC", "GRPC-WEB")


def gateway_ref(name: str, namespace: str) -> str:
    """A VirtualService `gateways` entry as `<ns>/<name>` (or `mesh`), resolving short and legacy forms."""
    if name == "mesh" or "/" in name:
        return name
    if "." in name:  # legacy FQDN form: <name>.<ns>.svc.cluster.local
        parts = name.split(".")
        return f"{parts[1]}/{parts[0]}"
    return f"{namespace}/{name}"
