"""Recorded PromQL results for the story's mesh (namespace `default`, 60 s window), as `graph_queries`
names them: productpage→details, productpage→reviews v2 (90 %) and v3 (10 %), reviews→ratings with
some 503s, reported by both proxies for in-namespace edges, plus p95 response times.

`fake_query` answers the console's instant queries with them (what the daemon's engine would return).

Used by the tests in tests/unit/console/.
"""

from __future__ import annotations

from sluice.metrics.promql.values import QueryResult, Sample

NS = "default"
T = 1_700_000_000_000


def _svc(name: str) -> dict[str, str]:
    return {"destination_service": f"{name}.{NS}.svc.cluster.local", "destination_service_name": name,
            "destination_service_namespace": NS}


def _labels(src: tuple[str, str, str], dst: tuple[str, str, str] | None, svc: str,
            code: str = "200", flags: str = "-") -> dict[str, str]:
    s_wl, s_app, s_ver = src
    out = {"source_cluster": "Kubernetes", "source_workload_namespace": NS, "source_workload": s_wl,
           "source_canonical_service": s_app, "source_canonical_revision": s_ver,
           "destination_cluster": "Kubernetes", "request_protocol": "http", "response_code": code,
           "grpc_response_status": "", "response_flags": flags, **_svc(svc)}
    d_wl, d_app, d_ver = dst or ("unknown", "unknown", "unknown")
    out.update({"destination_workload_namespace": NS if dst else "unknown", "destination_workload": d_wl,
                "destination_canonical_service": d_app, "destination_canonical_revision": d_ver})
    return {k: v for k, v in out.items() if v != ""}


def sample(labels: dict[str, str], value: float) -> Sample:
    return Sample(tuple(sorted(labels.items())), value, T)


PP = ("productpage-v1", "productpage", "v1")
DETAILS = ("details-v1", "details", "v1")
R2 = ("reviews-v2", "reviews", "v2")
R3 = ("reviews-v3", "reviews", "v3")
RATINGS = ("ratings-v1", "ratings", "v1")
GEN = ("traffic-generator", "traffic-generator", "latest")

# (source, destination, service, code, rps)
EDGES = [
    (GEN, PP, "productpage", "200", 10.0),
    (PP, DETAILS, "details", "200", 10.0),
    (PP, R2, "reviews", "200", 9.0),
    (PP, R3, "reviews", "200", 1.0),
    (R2, RATINGS, "ratings", "200", 8.5),
    (R2, RATINGS, "ratings", "503", 0.5),
    (R3, RATINGS, "ratings", "200", 1.0),
]


def recorded() -> dict[str, list[Sample]]:
    """Every in-namespace edge is reported by the destination proxy and again by the source proxy."""
    incoming = [sample(_labels(s, d, svc, code), v) for s, d, svc, code, v in EDGES]
    outgoing = [sample(_labels(s, d, svc, code), v) for s, d, svc, code, v in EDGES]
    rt_in = [sample({k: v for k, v in _labels(s, d, svc).items()
                     if k not in ("response_code", "response_flags", "request_protocol",
                                  "grpc_response_status")}, ms)
             for (s, d, svc, _, _), ms in zip(EDGES, [40.0, 5.0, 30.0, 35.0, 4.0, 4.0, 6.0], strict=True)]
    return {"requests_unserviced": [], "requests_in": incoming, "requests_out": outgoing,
            "response_time_in": rt_in, "response_time_out": []}


VS_90_10 = {
    "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
    "metadata": {"name": "reviews", "namespace": NS},
    "spec": {"hosts": ["reviews"], "http": [{"route": [
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 90},
        {"destination": {"host": "reviews", "subset": "v3"}, "weight": 10}]}]},
}
VS_FAULT = {
    "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
    "metadata": {"name": "ratings", "namespace": NS},
    "spec": {"hosts": ["ratings"], "http": [{
        "fault": {"abort": {"httpStatus": 503, "percentage": {"value": 5}}},
        "mirror": {"host": "ratings", "subset": "v1"},
        "route": [{"destination": {"host": "ratings", "subset": "v1"}}]}]},
}


def fake_query(expr: str) -> QueryResult:
    """The recorded vector `graph_queries` would get for `expr` (none for other namespaces)."""
    data = recorded()
    if expr.startswith("histogram_quantile"):
        key = "response_time_in" if 'reporter="destination"' in expr else "response_time_out"
    elif 'destination_workload="unknown"' in expr:
        key = "requests_unserviced"
    elif 'reporter="destination"' in expr:
        key = "requests_in"
    else:
        key = "requests_out"
    return QueryResult("vector", list(data[key]) if f'"{NS}"' in expr else [])
