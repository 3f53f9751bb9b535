"""The console's traffic graph, built the way Kiali builds it, as Cytoscape-style JSON.

Role: `graph_queries` lists the PromQL Kiali runs for a namespace graph (requests from
`istio_requests_total` and response times from `istio_request_duration_milliseconds_*`: incoming edges
from `reporter="destination"` telemetry, outgoing edges from `reporter="source"` telemetry, rates over
the whole selected window, evaluated as instant queries at the end of the window). `build_graph` turns
the results (instant vectors) into nodes and edges. It is pure: no I/O, no clock; the same inputs give
the same JSON.

Callers: `sluice.console.api` (the `/api/namespaces/{ns}/graph` endpoint and the health summaries) and
the unit tests on recorded metric data.

Facts followed (Kiali `graph/telemetry/istio/istio.go`, `appender/response_time.go`, `config.go`):
- node identity per graph type (`versionedApp`: app+version, `app`: app, `workload`: workload; a
  destination without a workload is a service node; `unknown` sources are one `unknown` node);
- service nodes are injected between a workload and the workloads behind a named service (on by
  default), and the service graph is the workload graph reduced to service-to-service edges;
- a time series reported by both proxies is applied to an edge once (the destination query runs
  first);
- response time goes on the service→workload edge when a service node is injected; the first query
  that gives an edge its value wins;
- traffic distribution (`httpPercentReq`) is the edge's share of its source node's outbound rate per
  protocol, counting only the edges in the final graph;
- health from the default traffic tolerances: 5xx degraded > 0 %, failure >= 10 %; 4xx degraded
  >= 10 %, failure >= 20 %; no response (`-`) and gRPC errors degraded > 0 %, failure >= 10 %.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sluice.console.inventory import names_service, qualified_names
from sluice.metrics.promql.values import Sample
from sluice.rollouts.istio import vs_refs
from sluice.rollouts.summary import rollout_services

__all__ = [
    "GraphType", "GraphInputs", "GRAPH_TYPES", "REQUEST_QUERIES", "RESPONSE_TIME_QUERIES",
    "graph_queries", "build_graph", "health_status", "node_health", "Tolerance", "DEFAULT_TOLERANCES",
]

GraphType = Literal["versionedApp", "workload", "app", "service"]
GRAPH_TYPES: tuple[str, ...] = ("versionedApp", "workload", "app", "service")

# Query names, in the order Kiali runs (and applies) them.
REQUEST_QUERIES: tuple[str, ...] = ("requests_unserviced", "requests_in", "requests_out")
RESPONSE_TIME_QUERIES: tuple[str, ...] = ("response_time_in", "response_time_out")

# The instant vectors `graph_queries` names, keyed by those names (missing keys: no samples).
GraphInputs = Mapping[str, Sequence[Sample]]

UNKNOWN = "unknown"
_REQUEST_GROUP_BY = (
    "source_cluster,source_workload_namespace,source_workload,source_canonical_service,"
    "source_canonical_revision,destination_cluster,destination_service_namespace,destination_service,"
    "destination_service_name,destination_workload_namespace,destination_workload,"
    "destination_canonical_service,destination_canonical_revision,request_protocol,response_code,"
    "grpc_response_status,response_flags"
)
_RT_GROUP_BY = (
    "source_cluster,source_workload_namespace,source_workload,source_canonical_service,"
    "source_canonical_revision,destination_cluster,destination_service_namespace,destination_service,"
    "destination_service_name,destination_workload_namespace,destination_workload,"
    "destination_canonical_service,destination_canonical_revision"
)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def graph_queries(namespace: str, window_s: int, graph_type: str = "versionedApp",
                  response_time: str = "95", *, idle_edges: bool = False) -> dict[str, str]:
    """Kiali's PromQL for a namespace graph, by name (`REQUEST_QUERIES` then `RESPONSE_TIME_QUERIES`).

    `response_time` is a percentile (`50`, `95`, `99`) or `avg`; the service graph has no response
    time queries (edges into service nodes are routing, not work).
    """
    ns = _quote(namespace)
    ns_re = _quote(re.escape(namespace))
    w = int(window_s)
    idle = "" if idle_edges else " > 0"
    metric = "istio_requests_total"
    out = {
        "requests_unserviced": (
            f'sum(rate({metric}{{reporter="source",source_workload_namespace!="{ns}",'
            f'destination_workload_namespace="unknown",destination_workload="unknown",'
            f'destination_service=~"^.+\\\\.{ns_re}\\\\..+$"}}[{w}s])) by ({_REQUEST_GROUP_BY}){idle}'),
        "requests_in": (
            f'sum(rate({metric}{{reporter="destination",destination_workload_namespace="{ns}"}}[{w}s])) '
            f"by ({_REQUEST_GROUP_BY}){idle}"),
        "requests_out": (
            f'sum(rate({metric}{{reporter="source",source_workload_namespace="{ns}"}}[{w}s])) '
            f"by ({_REQUEST_GROUP_BY}){idle}"),
    }
    if graph_type == "service":
        return out
    selectors = {"response_time_in": f'reporter="destination",destination_service_namespace="{ns}"',
                 "response_time_out": f'reporter="source",source_workload_namespace="{ns}"'}
    base = "istio_request_duration_milliseconds"
    for name, sel in selectors.items():
        if response_time == "avg":
            out[name] = (f"sum(rate({base}_sum{{{sel}}}[{w}s])) by ({_RT_GROUP_BY}) / "
                         f"sum(rate({base}_count{{{sel}}}[{w}s])) by ({_RT_GROUP_BY}) > 0")
        else:
            q = float(response_time) / 100.0
            out[name] = (f"histogram_quantile({q:.2f}, sum(rate({base}_bucket{{{sel}}}[{w}s])) "
                         f"by (le,{_RT_GROUP_BY})) > 0")
    return out


# ---------------------------------------------------------------------------------------------- health
@dataclass(frozen=True)
class Tolerance:
    """One traffic-health rule: the % of requests whose code matches `code` (per protocol)."""

    code: str  # regular expression over the response code (`-` for no response)
    protocol: str  # regular expression over the protocol
    degraded: float
    failure: float


# Kiali's `AddHealthDefault` (config/config.go): percentages of requests.
DEFAULT_TOLERANCES: tuple[Tolerance, ...] = (
    Tolerance(r"^5\d\d$", "http", 0.0, 10.0),
    Tolerance(r"^4\d\d$", "http", 10.0, 20.0),
    Tolerance(r"^[1-9]$|^1[0-6]$", "grpc", 0.0, 10.0),
    Tolerance(r"^-$", "http|grpc", 0.0, 10.0),
)
_STATUS_RANK = {"NA": 0, "Healthy": 1, "Degraded": 2, "Failure": 3}


def _worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=lambda s: _STATUS_RANK[s], default="NA")


def health_status(codes: Mapping[tuple[str, str], float],
                  tolerances: Sequence[Tolerance] = DEFAULT_TOLERANCES) -> tuple[str, float]:
    """(status, error %) for request rates keyed by (protocol, code).

    Status: `NA` without traffic; per tolerance, 0 % → Healthy, >= failure → Failure, >= degraded (and
    > 0) → Degraded; the worst wins. The error % is the share of codes any tolerance matches.
    """
    statuses: list[str] = []
    errors = 0.0
    by_protocol: dict[str, float] = {}
    for (proto, _), v in codes.items():
        by_protocol[proto] = by_protocol.get(proto, 0.0) + v
    total = sum(by_protocol.values())
    if total <= 0:
        return "NA", 0.0
    counted: set[tuple[str, str]] = set()
    for tol in tolerances:
        for proto, proto_total in by_protocol.items():
            if proto_total <= 0 or not re.fullmatch(tol.protocol, proto):
                continue
            matched = [(k, v) for k, v in codes.items() if k[0] == proto and re.search(tol.code, k[1])]
            pct = 100.0 * sum(v for _, v in matched) / proto_total
            for k, v in matched:
                if k not in counted:
                    counted.add(k)
                    errors += v
            if pct <= 0:
                statuses.append("Healthy")
            elif pct >= tol.failure:
                statuses.append("Failure")
            elif pct >= tol.degraded:
                statuses.append("Degraded")
            else:
                statuses.append("Healthy")
    return _worst(statuses or ["Healthy"]), 100.0 * errors / total


# ---------------------------------------------------------------------------------------------- model
@dataclass
class _Node:
    id: str
    node_type: str  # app | workload | service | unknown
    namespace: str
    workload: str = ""
    app: str = ""
    version: str = ""
    service: str = ""
    injected: bool = False
    dest_services: set[tuple[str, str]] = field(default_factory=set)
    inbound: dict[tuple[str, str], float] = field(default_factory=dict)  # (protocol, code) → rps
    outbound: dict[tuple[str, str], float] = field(default_factory=dict)


@dataclass
class _Edge:
    source: str
    dest: str
    protocol: str
    # (code, flags, host) → rps
    responses: dict[tuple[str, str, str], float] = field(default_factory=dict)
    seen: set[tuple[str, ...]] = field(default_factory=set)
    response_time: float | None = None

    @property
    def rate(self) -> float:
        return sum(self.responses.values())


def _ok(v: str) -> bool:
    return v not in ("", UNKNOWN)


class _Graph:
    def __init__(self, graph_type: str, inject: bool) -> None:
        self.graph_type = graph_type
        self.inject = inject
        self.nodes: dict[str, _Node] = {}
        self.edges: dict[tuple[str, str, str], _Edge] = {}

    def node_id(self, svc_ns: str, svc: str, wl_ns: str, wl: str, app: str, ver: str) -> tuple[str, str]:
        """Kiali's `graph.Id`: (id, nodeType). The service graph is built as a workload graph."""
        if not _ok(wl):
            if _ok(svc):
                return f"svc:{svc_ns}:{svc}", "service"
            return UNKNOWN, "unknown"
        if self.graph_type in ("app", "versionedApp") and _ok(app):
            if self.graph_type == "versionedApp" and _ok(ver):
                return f"app:{wl_ns}:{app}:{ver}", "app"
            return f"app:{wl_ns}:{app}", "app"
        return f"wl:{wl_ns}:{wl}", "workload"

    def add_node(self, svc_ns: str, svc: str, wl_ns: str, wl: str, app: str, ver: str) -> _Node:
        nid, ntype = self.node_id(svc_ns, svc, wl_ns, wl, app, ver)
        node = self.nodes.get(nid)
        if node is None:
            ns = wl_ns if _ok(wl_ns) else svc_ns
            if ntype == "unknown":
                node = _Node(nid, ntype, UNKNOWN)
            elif ntype == "service":
                node = _Node(nid, ntype, ns, service=svc)
            else:
                node = _Node(nid, ntype, ns, workload=wl if self.graph_type in ("workload", "service") else "",
                             app=app if _ok(app) else "",
                             version=ver if self.graph_type == "versionedApp" and _ok(ver) else "")
                if ntype == "workload" and self.graph_type in ("app", "versionedApp"):
                    node.workload = wl
            self.nodes[nid] = node
        return node

    def add_edge_traffic(self, src: _Node, dst: _Node, protocol: str, code: str, flags: str, host: str,
                         value: float, ts_key: tuple[str, ...]) -> bool:
        edge = self.edges.get((src.id, dst.id, protocol))
        if edge is None:
            edge = self.edges[(src.id, dst.id, protocol)] = _Edge(src.id, dst.id, protocol)
        if ts_key in edge.seen:
            return False
        edge.seen.add(ts_key)
        k = (code, flags, host)
        edge.responses[k] = edge.responses.get(k, 0.0) + value
        src.outbound[(protocol, code)] = src.outbound.get((protocol, code), 0.0) + value
        dst.inbound[(protocol, code)] = dst.inbound.get((protocol, code), 0.0) + value
        return True


def _labels(s: Sample) -> dict[str, str]:
    return dict(s.metric)


def _response_code(protocol: str, labels: Mapping[str, str]) -> str:
    code = labels.get("response_code", "")
    if protocol == "grpc" and labels.get("grpc_response_status"):
        return labels["grpc_response_status"]
    if code in ("", "0"):
        return "-"
    return code


def _apply_requests(g: _Graph, samples: Iterable[Sample]) -> None:
    for s in samples:
        if s.value != s.value or s.value < 0:  # NaN; zero is an idle edge (idle edges on)
            continue
        m = _labels(s)
        src_ns, src_wl = m.get("source_workload_namespace", ""), m.get("source_workload", "")
        src_app, src_ver = m.get("source_canonical_service", ""), m.get("source_canonical_revision", "")
        dst_svc_ns, dst_svc = m.get("destination_service_namespace", ""), m.get("destination_service", "")
        dst_svc_name = m.get("destination_service_name", "")
        dst_wl_ns, dst_wl = m.get("destination_workload_namespace", ""), m.get("destination_workload", "")
        dst_app, dst_ver = m.get("destination_canonical_service", ""), m.get("destination_canonical_revision", "")
        # Kiali's IsBadSourceTelemetry / IsBadDestTelemetry.
        if _ok(src_wl) and not _ok(src_ns):
            continue
        if not _ok(dst_svc_name) and not _ok(dst_wl):
            continue
        if not _ok(dst_svc_ns):
            dst_svc_ns = dst_wl_ns
        protocol = m.get("request_protocol", "http") or "http"
        if protocol not in ("http", "grpc"):
            continue
        code = _response_code(protocol, m)
        flags = m.get("response_flags", "-") or "-"
        host = dst_svc
        source = g.add_node(src_ns, "", src_ns, src_wl, src_app, src_ver)
        dest = g.add_node(dst_svc_ns, dst_svc_name, dst_wl_ns, dst_wl, dst_app, dst_ver)
        ts_key = (src_ns, src_wl, src_app, src_ver, dst_svc_ns, dst_svc_name, dst_wl_ns, dst_wl, dst_app,
                  dst_ver, code, flags, host)
        inject = (g.inject and _ok(dst_svc_name) and dst_svc_name != "PassthroughCluster"
                  and dest.node_type != "service")
        if inject:
            svc = g.add_node(dst_svc_ns, dst_svc_name, "", "", "", "")
            svc.injected = True
            if g.add_edge_traffic(source, svc, protocol, code, flags, host, s.value, ts_key):
                svc.dest_services.add((dst_svc_ns, dst_svc_name))
                g.add_edge_traffic(svc, dest, protocol, code, flags, host, s.value, ts_key)
                dest.dest_services.add((dst_svc_ns, dst_svc_name))
        elif g.add_edge_traffic(source, dest, protocol, code, flags, host, s.value, ts_key):
            if _ok(dst_svc_name):
                dest.dest_services.add((dst_svc_ns, dst_svc_name))


def _apply_response_times(g: _Graph, samples: Iterable[Sample], filled: set[tuple[str, str]]) -> None:
    """Response time per edge (ms); across queries the first value wins, within one the largest."""
    mine: dict[tuple[str, str], float] = {}
    for s in samples:
        if s.value != s.value or s.value <= 0:
            continue
        m = _labels(s)
        src_ns, src_wl = m.get("source_workload_namespace", ""), m.get("source_workload", "")
        dst_svc_ns, dst_svc_name = m.get("destination_service_namespace", ""), m.get("destination_service_name", "")
        dst_wl_ns, dst_wl = m.get("destination_workload_namespace", ""), m.get("destination_workload", "")
        dst_app, dst_ver = m.get("destination_canonical_service", ""), m.get("destination_canonical_revision", "")
        dest_id, dest_type = g.node_id(dst_svc_ns, dst_svc_name, dst_wl_ns, dst_wl, dst_app, dst_ver)
        if g.inject and _ok(dst_svc_name) and dst_svc_name != "PassthroughCluster" and dest_type != "service":
            src_id = f"svc:{dst_svc_ns}:{dst_svc_name}"  # not on the edge into the service node
        else:
            src_id, _ = g.node_id(src_ns, "", src_ns, src_wl, m.get("source_canonical_service", ""),
                                  m.get("source_canonical_revision", ""))
        key = (src_id, dest_id)
        if key in filled:
            continue
        mine[key] = max(mine.get(key, 0.0), s.value)
    for (src, dst, _), edge in g.edges.items():
        if (src, dst) in mine:
            edge.response_time = mine[(src, dst)]
    filled.update(mine)


def _reduce_to_service_graph(g: _Graph) -> _Graph:
    """Kiali's `reduceToServiceGraph`: service nodes plus root workloads, service→service edges."""
    out = _Graph("service", True)
    has_inbound = {dst for (_, dst, _) in g.edges}
    for nid, node in g.nodes.items():
        if node.node_type == "service" or nid not in has_inbound:
            out.nodes[nid] = _Node(node.id, node.node_type, node.namespace, node.workload, node.app,
                                   node.version, node.service, node.injected, set(node.dest_services))
    for (src, dst, proto), e in g.edges.items():
        src_node, dst_node = g.nodes[src], g.nodes[dst]
        if src_node.node_type != "service":
            if src in out.nodes and dst_node.node_type == "service":
                _merge_edge(out, src, dst, proto, e)
            continue
        # service → workload → service (the workload's outbound edges)
        for (src2, dst2, proto2), e2 in g.edges.items():
            if src2 == dst and g.nodes[dst2].node_type == "service":
                _merge_edge(out, src, dst2, proto2, e2)
    return out


def _merge_edge(g: _Graph, src: str, dst: str, proto: str, e: _Edge) -> None:
    edge = g.edges.get((src, dst, proto))
    if edge is None:
        edge = g.edges[(src, dst, proto)] = _Edge(src, dst, proto)
    for k, v in e.responses.items():
        edge.responses[k] = edge.responses.get(k, 0.0) + v
        code = k[0]
        g.nodes[src].outbound[(proto, code)] = g.nodes[src].outbound.get((proto, code), 0.0) + v
        g.nodes[dst].inbound[(proto, code)] = g.nodes[dst].inbound.get((proto, code), 0.0) + v


# ---------------------------------------------------------------------------------------------- badges
def _host_matches(host: str, service: str, namespace: str, vs_namespace: str) -> bool:
    """`names_service`, and also the wildcard hosts (`*`, `*.<suffix>`) that cover the service."""
    host = host.strip()
    if host == "*":
        return True
    if host.startswith("*."):
        return any(n.endswith(host[1:]) for n in qualified_names(service, namespace))
    return names_service(host, service, namespace, vs_namespace)


def _spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _weighted(routes: list[Any]) -> bool:
    weights = [r.get("weight") for r in routes if isinstance(r, dict)]
    return len(routes) > 1 and sum(1 for w in weights if isinstance(w, int) and w > 0) > 1


def _vs_badges(vs: Mapping[str, Any]) -> dict[str, bool]:
    spec = _spec(vs)
    http = [r for r in _list(spec.get("http")) if isinstance(r, dict)]
    tcp = [r for r in _list(spec.get("tcp")) if isinstance(r, dict)]
    return {
        "hasRequestRouting": any(r.get("match") or len(_list(r.get("route"))) > 1 or any(
            isinstance(d, dict) and isinstance(d.get("destination"), dict) and d["destination"].get("subset")
            for d in _list(r.get("route"))) for r in http),
        "hasTrafficShifting": any(_weighted(_list(r.get("route"))) for r in http),
        "hasTCPTrafficShifting": any(_weighted(_list(r.get("route"))) for r in tcp),
        "hasFaultInjection": any(bool(r.get("fault")) for r in http),
        "hasMirroring": any(bool(r.get("mirror")) or bool(r.get("mirrors")) for r in http),
        "hasRequestTimeout": any(bool(r.get("timeout")) for r in http),
    }


def _has_circuit_breaker(dr: Mapping[str, Any]) -> bool:
    spec = _spec(dr)
    policies = [spec.get("trafficPolicy")] + [s.get("trafficPolicy") for s in _list(spec.get("subsets"))
                                              if isinstance(s, dict)]
    return any(isinstance(p, dict) and (p.get("connectionPool") or p.get("outlierDetection")) for p in policies)


def _badges(node: _Node, virtual_services: Sequence[Mapping[str, Any]],
            destination_rules: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    services = {(node.namespace, node.service)} if node.node_type == "service" else node.dest_services
    out: dict[str, Any] = {}
    for ns, svc in sorted(services):
        for vs in virtual_services:
            vs_ns = str(_meta(vs).get("namespace") or "")
            hosts = [str(h) for h in _list(_spec(vs).get("hosts"))]
            matched = [h for h in hosts if _host_matches(h, svc, ns, vs_ns)]
            if not matched:
                continue
            has_vs = out.setdefault("hasVS", {"hostnames": []})
            has_vs["hostnames"] = sorted(set(has_vs["hostnames"]) | set(matched))
            for k, v in _vs_badges(vs).items():
                if v:
                    out[k] = True
            labels = _meta(vs).get("labels") or {}
            if isinstance(labels, dict) and labels.get("kiali_wizard"):
                out["hasWizard"] = True
        for dr in destination_rules:
            host = str(_spec(dr).get("host") or "")
            if _host_matches(host, svc, ns, str(_meta(dr).get("namespace") or "")) and _has_circuit_breaker(dr):
                out["hasCB"] = True
    return out


# ---------------------------------------------------------------------------------------------- output
def _round(v: float, digits: int = 3) -> float:
    return round(v, digits)


def _rates(prefix_in: str, codes: Mapping[tuple[str, str], float], protocol: str) -> dict[str, float]:
    total = sum(v for (p, _), v in codes.items() if p == protocol)
    out: dict[str, float] = {}
    if total <= 0:
        return out
    out[f"{protocol}{prefix_in}"] = _round(total)
    if protocol == "http":
        for cls in ("3", "4", "5"):
            v = sum(val for (p, c), val in codes.items() if p == protocol and c.startswith(cls) and len(c) == 3)
            if v > 0:
                out[f"http{prefix_in}{cls}xx"] = _round(v)
    else:
        v = sum(val for (p, c), val in codes.items() if p == protocol and c not in ("0", "-"))
        if v > 0:
            out[f"grpc{prefix_in}Err"] = _round(v)
    noresp = sum(val for (p, c), val in codes.items() if p == protocol and c == "-")
    if noresp > 0:
        out[f"{protocol}{prefix_in}NoResponse"] = _round(noresp)
    return out


@dataclass(frozen=True)
class _Driven:
    """What one Argo Rollout drives: its canary/stable Services and the VirtualServices whose weights it edits."""

    rollout: str
    namespace: str
    services: frozenset[str]
    virtual_services: tuple[Mapping[str, Any], ...]


def _driven(rollouts: Sequence[Mapping[str, Any]], virtual_services: Sequence[Mapping[str, Any]]) -> list[_Driven]:
    by_name = {(str(_meta(v).get("namespace") or ""), str(_meta(v).get("name") or "")): v for v in virtual_services}
    out = []
    for ro in rollouts:
        ns, name = str(_meta(ro).get("namespace") or ""), str(_meta(ro).get("name") or "")
        info = rollout_services(ro)
        canary = _spec(ro).get("strategy", {}).get("canary") or {}
        istio = (canary.get("trafficRouting") or {}).get("istio") or {}
        # the references as the controller reads them (`name`, `name.namespace`, `…svc.cluster.local`)
        vss = [vs for vs_ns, vs_name, _ in vs_refs(istio if isinstance(istio, dict) else {}, ns)
               if (vs := by_name.get((vs_ns, vs_name))) is not None]
        services = frozenset(str(s) for s in (info["canaryService"], info["stableService"]) if s)
        out.append(_Driven(name, ns, services, tuple(vss)))
    return out


def _rollout_badge(node: _Node, driven: Sequence[_Driven]) -> list[str]:
    """The Rollouts driving a service node's traffic (Kiali has no such badge: Sluice's own)."""
    names = set()
    for d in driven:
        if node.namespace == d.namespace and node.service in d.services:
            names.add(d.rollout)
        for vs in d.virtual_services:
            vs_ns = str(_meta(vs).get("namespace") or "")
            if any(_host_matches(str(h), node.service, node.namespace, vs_ns) for h in _list(_spec(vs).get("hosts"))):
                names.add(d.rollout)
    return sorted(names)


def _node_data(node: _Node, namespace: str, is_root: bool,
               virtual_services: Sequence[Mapping[str, Any]],
               destination_rules: Sequence[Mapping[str, Any]], driven: Sequence[_Driven] = ()) -> dict[str, Any]:
    data: dict[str, Any] = {"id": node.id, "nodeType": node.node_type, "namespace": node.namespace}
    for k in ("workload", "app", "version", "service"):
        v = getattr(node, k)
        if v:
            data[k] = v
    if node.dest_services:
        data["destServices"] = [{"namespace": ns, "name": n} for ns, n in sorted(node.dest_services)]
    traffic: list[dict[str, Any]] = []
    for proto in ("http", "grpc"):
        rates = {**_rates("In", node.inbound, proto), **_rates("Out", node.outbound, proto)}
        if rates:
            traffic.append({"protocol": proto, "rates": rates})
    if traffic:
        data["traffic"] = traffic
    in_status, in_err = health_status(node.inbound)
    out_status, out_err = health_status(node.outbound)
    # A service node's health is its inbound traffic; the others count both directions (Kiali's
    # default tolerances apply to any direction).
    status = in_status if node.node_type == "service" else _worst([in_status, out_status])
    data["healthStatus"] = status
    data["health"] = {"status": status, "inbound": {"status": in_status, "errorRatio": _round(in_err, 2)},
                      "outbound": {"status": out_status, "errorRatio": _round(out_err, 2)}}
    if is_root:
        data["isRoot"] = True
    if node.namespace != namespace:
        data["isOutside"] = True
    if node.injected:
        data["isInjected"] = True
    if node.node_type in ("service", "app", "workload"):
        data.update(_badges(node, virtual_services, destination_rules))
    if node.node_type == "service" and driven:
        names = _rollout_badge(node, driven)
        if names:
            data["hasRollout"] = names
    return data


def _edge_data(edge: _Edge, source_out: Mapping[str, float], with_rt: bool) -> dict[str, Any]:
    total = edge.rate
    proto = edge.protocol
    rates: dict[str, float] = {proto: _round(total)}
    codes: dict[tuple[str, str], float] = {}
    for (code, _, _), v in edge.responses.items():
        codes[(proto, code)] = codes.get((proto, code), 0.0) + v
    rates.update({k.replace(f"{proto}In", proto): v for k, v in _rates("In", codes, proto).items()
                  if k != f"{proto}In"})
    out_total = source_out.get(proto, 0.0)
    if out_total > 0:
        rates[f"{proto}PercentReq"] = _round(100.0 * total / out_total, 1)
    status, err = health_status(codes)
    if err > 0:
        rates[f"{proto}PercentErr"] = _round(err, 1)
    responses: dict[str, dict[str, dict[str, float]]] = {}
    for (code, flags, host), v in sorted(edge.responses.items()):
        r = responses.setdefault(code, {"flags": {}, "hosts": {}})
        r["flags"][flags] = r["flags"].get(flags, 0.0) + v
        r["hosts"][host] = r["hosts"].get(host, 0.0) + v
    for r in responses.values():
        for part in r.values():
            for k in part:
                part[k] = _round(100.0 * part[k] / total, 1) if total > 0 else 0.0
    data: dict[str, Any] = {
        "id": f"{edge.source}->{edge.dest}:{proto}", "source": edge.source, "target": edge.dest,
        "traffic": {"protocol": proto, "rates": rates, "responses": responses},
        "healthStatus": status,
    }
    if with_rt and edge.response_time is not None:
        data["responseTime"] = _round(edge.response_time, 2)
    return data


def build_graph(samples: GraphInputs, *, graph_type: str, namespace: str, window_s: int,
                query_time: int = 0, inject_service_nodes: bool = True,
                virtual_services: Sequence[Mapping[str, Any]] = (),
                destination_rules: Sequence[Mapping[str, Any]] = (),
                box_by_app: bool = True, rollouts: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Build the Cytoscape-style graph of `namespace` from the results of `graph_queries`.

    `samples` maps query names to instant vectors (missing names: none). `virtual_services` and
    `destination_rules` (whole objects) give the badges; `rollouts` (Argo Rollouts) mark the service nodes whose
    traffic a Rollout drives (`hasRollout`). `query_time` (unix seconds, end of the
    window) is echoed as `timestamp`. Raises ValueError for an unknown graph type.
    """
    if graph_type not in GRAPH_TYPES:
        raise ValueError(f"unknown graph type {graph_type!r} (want one of {', '.join(GRAPH_TYPES)})")
    g = _Graph(graph_type, inject_service_nodes or graph_type == "service")
    for name in REQUEST_QUERIES:
        _apply_requests(g, samples.get(name, ()))
    if graph_type == "service":
        g = _reduce_to_service_graph(g)
    else:
        filled: set[tuple[str, str]] = set()
        for name in RESPONSE_TIME_QUERIES:
            _apply_response_times(g, samples.get(name, ()), filled)

    # Outbound totals per node and protocol over the edges in the final graph.
    out_totals: dict[str, dict[str, float]] = {}
    for (src, _, proto), e in g.edges.items():
        d = out_totals.setdefault(src, {})
        d[proto] = d.get(proto, 0.0) + e.rate
    has_inbound = {dst for (_, dst, _) in g.edges}
    driven = _driven(rollouts, virtual_services)

    nodes: list[dict[str, Any]] = []
    boxes: dict[str, dict[str, Any]] = {}
    for nid in sorted(g.nodes):
        node = g.nodes[nid]
        data = _node_data(node, namespace, nid not in has_inbound, virtual_services, destination_rules, driven)
        if box_by_app and graph_type == "versionedApp" and node.node_type == "app" and node.version:
            box_id = f"box:{node.namespace}:{node.app}"
            data["parent"] = box_id
            box = boxes.setdefault(box_id, {"id": box_id, "nodeType": "box", "isBox": "app",
                                            "namespace": node.namespace, "app": node.app, "members": []})
            box["members"].append(data)
        nodes.append(data)
    for box in boxes.values():
        members = box.pop("members")
        box["healthStatus"] = _worst(m["healthStatus"] for m in members)
        if any(m.get("isOutside") for m in members):
            box["isOutside"] = True
        nodes.append(box)
    nodes.sort(key=lambda d: str(d["id"]))

    with_rt = graph_type != "service"
    edges = [_edge_data(e, out_totals.get(e.source, {}), with_rt and g.nodes[e.dest].node_type != "service")
             for _, e in sorted(g.edges.items())]
    return {
        "timestamp": int(query_time), "duration": int(window_s), "graphType": graph_type,
        "namespace": namespace,
        "elements": {"nodes": [{"data": n} for n in nodes], "edges": [{"data": e} for e in edges]},
    }


def node_health(graph: Mapping[str, Any], node_type: str = "workload") -> dict[str, str]:
    """Health by name (`workload`, `app` or `service`) of a built graph's nodes of one type."""
    out: dict[str, str] = {}
    for n in graph["elements"]["nodes"]:
        d = n["data"]
        if d.get("nodeType") == node_type and not d.get("isOutside"):
            key = str(d.get(node_type, ""))
            if key:
                out[key] = _worst([out.get(key, "NA"), str(d["healthStatus"])])
    return out
