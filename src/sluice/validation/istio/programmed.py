"""Which fields of the Istio kinds Sluice programs into Envoy, and which stored fields it does not (yet).

`PROGRAMMED` is the one table: per kind, the spec field paths that `sluice.xds.translate` turns into Envoy
config (read off httproute.py, routes.py, capture.py, clusters.py, traffic_policy.py, endpoints.py,
push_context.py). Any field of a stored object that the table does not cover is reported by `unprogrammed`,
at its shallowest uncovered path, so the API server answers the write with a `Warning` header and
`sluice analyze` lists it (SLU0001), until someone programs the field and adds it here.

Path syntax (one entry per line, easy to extend):
  `spec.http[].timeout`            the field and everything below it is programmed
  `[]`                             any item of a list; `*` any key of a map (labels, header names)
  `spec.exportTo[]=*`              programmed only for these values (`A|B|C`, compared case-insensitively)
  `!spec.http[].match[].headers.@request*`   an exception inside a covered subtree (`fnmatch` per segment)
Values that ask for nothing (null, false, 0, "", [], {}) are never reported. Fields that change nothing in
Istio either (names, a Gateway port's `targetPort`) count as programmed. The table describes netns mode,
the default; loopback mode (the fallback) also leaves VirtualService `tcp` and `tls` routes out.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PROGRAMMED", "Unprogrammed", "unprogrammed", "warnings", "gaps", "MAX_WARNINGS"]

MAX_WARNINGS = 20  # per write: a Warning header each; the rest are summed up in one more line


def _under(prefixes: Iterable[str], paths: Iterable[str]) -> tuple[str, ...]:
    """Every path below every prefix (a policy that appears at several places); exceptions stay exceptions."""
    ps = tuple(paths)
    return tuple(f"!{pre}.{p[1:]}" if p.startswith("!") else f"{pre}.{p}" for pre in prefixes for p in ps)


_DESTINATION = ("host", "subset", "port.number")
_STRING_MATCH_MAPS = ("headers", "withoutHeaders")

# --- VirtualService: httproute.py (rules), routes.py (hosts, gateways), capture.py (tcp) ---------------
_HTTP_MATCH = (
    "name", "uri", "scheme", "method", "authority", "port", "sourceLabels", "gateways", "queryParams",
    "ignoreUriCase", "sourceNamespace",
    *(f"{m}.*" for m in _STRING_MATCH_MAPS),
    # `@request.auth.claims.*` matches need RequestAuthentication (JWT), which Sluice does not serve
    *(f"!{m}.@request*" for m in _STRING_MATCH_MAPS),
)
_HTTP_ROUTE = (
    "name",
    *_under(["match[]"], _HTTP_MATCH),
    *_under(["route[].destination"], _DESTINATION),
    "route[].weight", "route[].headers",
    "redirect", "directResponse",
    "rewrite.uri", "rewrite.authority", "rewrite.uriRegexRewrite",
    "timeout",
    "retries.attempts", "retries.perTryTimeout", "retries.retryOn", "retries.retryRemoteLocalities",
    "retries.backoff",
    "fault.delay.fixedDelay", "fault.delay.percentage", "fault.delay.percent",
    "fault.abort.httpStatus", "fault.abort.grpcStatus", "fault.abort.percentage",
    *_under(["mirror", "mirrors[].destination"], _DESTINATION),
    "mirrors[].percentage", "mirrorPercentage", "mirrorPercent",
    "corsPolicy",
    "headers",
)
_TCP_ROUTE = (
    "match[].port", "match[].sourceLabels", "match[].sourceNamespace", "match[].gateways",
    "match[].destinationSubnets",
    *_under(["route[].destination"], _DESTINATION),
    "route[].weight",
)
# tcp_routes.py (sidecars: SNI filter chains), gateway_tcp.py (PASSTHROUGH servers)
_TLS_ROUTE = (
    "match[].sniHosts", "match[].port", "match[].destinationSubnets", "match[].sourceLabels",
    "match[].sourceNamespace", "match[].gateways",
    *_under(["route[].destination"], _DESTINATION),
    "route[].weight",
)

# --- DestinationRule: traffic_policy.py, clusters.py, endpoints.py --------------------------------------
_POLICY = (
    "loadBalancer.simple=UNSPECIFIED|ROUND_ROBIN|RANDOM|LEAST_REQUEST|LEAST_CONN",
    *_under(["loadBalancer.consistentHash"], (
        "httpHeaderName", "httpCookie.name", "httpCookie.path", "httpCookie.ttl", "useSourceIp",
        "httpQueryParameterName", "ringHash.minimumRingSize", "maglev.tableSize", "minimumRingSize")),
    *_under(["connectionPool.tcp"], (
        "maxConnections", "connectTimeout", "tcpKeepalive", "maxConnectionDuration", "idleTimeout")),
    *_under(["connectionPool.http"], (
        "http1MaxPendingRequests", "http2MaxRequests", "maxRetries", "idleTimeout", "maxRequestsPerConnection")),
    "outlierDetection",
    # cluster_tls.py: TLS origination from files or a Secret (credentialName); ISTIO_MUTUAL (no mesh mTLS) is not
    "tls.mode=DISABLE|SIMPLE|MUTUAL",
    *_under(["tls"], ("sni", "caCertificates", "clientCertificate", "privateKey", "subjectAltNames",
                      "insecureSkipVerify", "caCrl", "credentialName")),
)
_TRAFFIC_POLICY = (*_POLICY, *_under(["portLevelSettings[]"], ("port.number", *_POLICY)))

PROGRAMMED: dict[str, tuple[str, ...]] = {
    "VirtualService": (
        "spec.hosts",
        "spec.gateways",
        *_under(["spec.http[]"], _HTTP_ROUTE),
        *_under(["spec.tcp[]"], _TCP_ROUTE),
        *_under(["spec.tls[]"], _TLS_ROUTE),
        "spec.exportTo",  # push_context.py: Istio's VirtualServicesForGateway
    ),
    "DestinationRule": (
        "spec.host",
        *_under(["spec.trafficPolicy"], _TRAFFIC_POLICY),
        "spec.subsets[].name",
        "spec.subsets[].labels",
        *_under(["spec.subsets[].trafficPolicy"], _TRAFFIC_POLICY),
        "spec.exportTo",  # push_context.py: Istio's namespace-local and exported rule indexes
        "spec.workloadSelector",  # push_context.py: applied to the selected workloads' outbound traffic only
    ),
    # gateway.py: HTTP and HTTPS servers; gateway_tcp.py: TCP servers and TLS PASSTHROUGH
    "Gateway": (
        "spec.selector",
        "spec.servers[].hosts",
        "spec.servers[].name",
        "spec.servers[].port.number",
        "spec.servers[].port.name",
        "spec.servers[].port.targetPort",  # for ServiceEntries only, in Istio too
        "spec.servers[].port.protocol=HTTP|HTTP2|GRPC|GRPC-WEB|HTTPS|TCP|MONGO|MYSQL|REDIS|TLS",
        # gateway.py: HTTPS termination with Secrets (credentialName), httpsRedirect
        "spec.servers[].tls.mode=PASSTHROUGH|SIMPLE|MUTUAL|OPTIONAL_MUTUAL",
        *_under(["spec.servers[].tls"], (
            "httpsRedirect", "credentialName", "credentialNames", "minProtocolVersion", "maxProtocolVersion",
            "cipherSuites", "subjectAltNames", "verifyCertificateSpki", "verifyCertificateHash")),
    ),
    # push_context.py (ServiceEntry → services), clusters.py (by resolution), dns/names.py (addresses)
    "ServiceEntry": (
        "spec.hosts",
        "spec.addresses",  # single IPs and /32; a CIDR range is checked by validation but not routed
        "spec.ports[].number", "spec.ports[].name", "spec.ports[].protocol", "spec.ports[].targetPort",
        "spec.location",  # changes nothing without mesh mTLS, in Istio too
        "spec.resolution=NONE|STATIC|DNS|DNS_ROUND_ROBIN",
        "spec.endpoints[].address", "spec.endpoints[].ports", "spec.endpoints[].labels",
        "spec.workloadSelector",
        "spec.exportTo",
    ),
    # push_context.py (which Sidecar scopes a proxy; the services and VirtualServices its egress hosts select;
    # its outbound policy): the catch-all egress listener. Listeners of their own (ingress, egress ports, binds,
    # capture modes), connection pools and an egress proxy are not built.
    "Sidecar": (
        "spec.workloadSelector",
        "spec.egress[].hosts",
        "spec.egress[].captureMode=DEFAULT",
        "spec.outboundTrafficPolicy.mode",
    ),
}


@dataclass
class _Node:
    """One path segment of the table, as a trie: what ends here and what lies below."""

    children: dict[str, _Node] = field(default_factory=dict)  # literal segments, `[]` included
    patterns: list[tuple[str, _Node]] = field(default_factory=list)  # `*`, `@request*`: fnmatch'ed keys
    programmed: bool = False  # a plain entry ends here: this field and all below it
    values: frozenset[str] | None = None  # `path=A|B` entries ending here: only these values
    exception: bool = False  # a `!path` entry ends here
    positive_below: bool = False  # some programmed (or value) entry lies strictly below
    special_below: bool = False  # some exception or value entry lies strictly below

    def step(self, segment: str) -> list[_Node]:
        out = [self.children[segment]] if segment in self.children else []
        if segment != "[]":
            out += [n for pattern, n in self.patterns if fnmatch.fnmatchcase(segment, pattern)]
        return out


def _segments(path: str) -> tuple[str, ...]:
    out: list[str] = []
    for part in path.split("."):
        name = part.removesuffix("[]")
        out.append(name)
        if name != part:
            out.append("[]")
    return tuple(out)


def _trie(entries: Iterable[str]) -> _Node:
    root = _Node()
    for entry in entries:
        exception = entry.startswith("!")
        path, _, values = entry.removeprefix("!").partition("=")
        node = root
        for segment in _segments(path):
            node.special_below = node.special_below or exception or bool(values)
            node.positive_below = node.positive_below or not exception  # a value entry is programmed too
            if segment == "[]" or not any(c in segment for c in "*?["):
                node = node.children.setdefault(segment, _Node())
            else:
                found = next((n for p, n in node.patterns if p == segment), None)
                if found is None:
                    found = _Node()
                    node.patterns.append((segment, found))
                node = found
        if exception:
            node.exception = True
        elif values:
            node.values = (node.values or frozenset()) | {v.upper() for v in values.split("|")}
        else:
            node.programmed = True
    return root


_TRIES: dict[str, _Node] = {kind: _trie(entries) for kind, entries in PROGRAMMED.items()}


def _empty(value: Any) -> bool:
    return value is None or value is False or value == 0 or value == "" or value == [] or value == {}


@dataclass(frozen=True)
class Unprogrammed:
    """One stored field Sluice does not program: `spec.http[0].delegate`, or a value it does not support."""

    kind: str
    path: str
    value: Any = None  # set when only this value is unsupported (the field itself is programmed)

    @property
    def what(self) -> str:
        if self.value is None:
            return f"{self.path} is stored but not applied: Sluice does not program this field into Envoy yet"
        return (f"{self.path}: {json.dumps(self.value)} is stored but not applied: Sluice does not program "
                "this value into Envoy yet")

    @property
    def warning(self) -> str:
        return f"{self.kind} {self.what}"


def _walk(kind: str, nodes: list[_Node], covered: bool, value: Any, shown: str) -> Iterator[Unprogrammed]:
    """`nodes`: the table's nodes that name this field; `covered`: an ancestor is programmed as a whole."""
    if _empty(value):
        return
    if any(n.exception for n in nodes):
        yield Unprogrammed(kind, shown)
        return
    allowed = [n.values for n in nodes if n.values is not None]
    if allowed and not isinstance(value, dict | list):
        if not any(str(value).upper() in v for v in allowed):
            yield Unprogrammed(kind, shown, value)
        return
    covered = covered or bool(allowed) or any(n.programmed for n in nodes)
    if covered:
        # a programmed subtree is done unless an exception or a value entry sits inside it
        if not any(n.special_below for n in nodes):
            return
    elif not any(n.positive_below for n in nodes):
        yield Unprogrammed(kind, shown)
        return
    if isinstance(value, dict):
        for key, child in value.items():
            below = [c for n in nodes for c in n.step(str(key))]
            yield from _walk(kind, below, covered, child, f"{shown}.{key}")
    elif isinstance(value, list):
        below = [c for n in nodes for c in n.step("[]")]
        for i, child in enumerate(value):
            yield from _walk(kind, below, covered, child, f"{shown}[{i}]")


def unprogrammed(kind: str, obj: dict[str, Any]) -> list[Unprogrammed]:
    """Every field of `obj`'s spec that Sluice stores but does not program, shallowest path first in
    document order; empty for kinds the table does not list (they are not Istio config)."""
    root = _TRIES.get(kind)
    if root is None:
        return []
    return list(_walk(kind, root.step("spec"), False, obj.get("spec"), "spec"))


def warnings(kind: str, obj: dict[str, Any]) -> list[str]:
    """The admission warnings for one write: at most MAX_WARNINGS lines, then how many more there are."""
    found = unprogrammed(kind, obj)
    out = [u.warning for u in found[:MAX_WARNINGS]]
    if len(found) > MAX_WARNINGS:
        out.append(f"{kind}: {len(found) - MAX_WARNINGS} more fields are stored but not applied "
                   "(`sluice analyze` lists them all)")
    return out


def _schema_gaps(schema: Any, nodes: list[_Node], covered: bool, shown: str) -> Iterator[str]:
    if not isinstance(schema, dict):
        return
    if any(n.exception for n in nodes):
        yield shown
        return
    allowed = [n.values for n in nodes if n.values is not None]
    if allowed and schema.get("type") not in ("object", "array"):
        yield f"{shown} other than {', '.join(sorted(frozenset().union(*allowed)))}"
        return
    covered = covered or bool(allowed) or any(n.programmed for n in nodes)
    if covered and not any(n.special_below for n in nodes):
        return
    if not covered and not any(n.positive_below for n in nodes):
        yield shown
        return
    if schema.get("type") == "array":
        yield from _schema_gaps(schema.get("items"), [c for n in nodes for c in n.step("[]")], covered, f"{shown}[]")
        return
    for key, child in (schema.get("properties") or {}).items():
        yield from _schema_gaps(child, [c for n in nodes for c in n.step(key)], covered, f"{shown}.{key}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        # a map: the table's key patterns, each with the map's value schema
        keys = sorted({p for n in nodes for p, _ in n.patterns})
        for key in keys:
            yield from _schema_gaps(extra, [c for n in nodes for c in n.step(key)], covered, f"{shown}.{key}")


def gaps(kind: str, spec_schema: dict[str, Any]) -> list[str]:
    """Every field of `kind`'s spec (its OpenAPI schema) that Sluice does not program, at its shallowest
    path: what `unprogrammed` would report for an object that sets everything."""
    root = _TRIES.get(kind)
    if root is None:
        return []
    return list(_schema_gaps(spec_schema, root.step("spec"), False, "spec"))
