"""build_graph on recorded metric data for the story's mesh, per graph type; and graph_queries."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.console.fixtures import NS, VS_90_10, VS_FAULT, recorded

from sluice.console.graph import build_graph, graph_queries, health_status


def _build(graph_type: str, **kw: Any) -> dict[str, Any]:
    return build_graph(recorded(), graph_type=graph_type, namespace=NS, window_s=60, query_time=1_700_000_000,
                       virtual_services=[VS_90_10, VS_FAULT], **kw)


def _nodes(g: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["data"]["id"]: n["data"] for n in g["elements"]["nodes"]}


def _edges(g: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["data"]["source"], e["data"]["target"]): e["data"] for e in g["elements"]["edges"]}


def test_queries_follow_kiali_reporters_and_window() -> None:
    q = graph_queries("default", 300, "versionedApp", "95")
    assert list(q) == ["requests_unserviced", "requests_in", "requests_out", "response_time_in",
                       "response_time_out"]
    assert 'reporter="destination",destination_workload_namespace="default"}[300s]' in q["requests_in"]
    assert 'reporter="source",source_workload_namespace="default"}[300s]' in q["requests_out"]
    assert "response_code" in q["requests_in"] and "response_flags" in q["requests_in"]
    assert q["requests_in"].endswith("> 0")
    assert q["response_time_in"].startswith("histogram_quantile(0.95, sum(rate(istio_request_duration_milliseconds_bucket")
    assert "by (le," in q["response_time_out"]
    assert "response_time_in" not in graph_queries("default", 60, "service")
    assert "_sum" in graph_queries("default", 60, "app", "avg")["response_time_in"]
    assert not graph_queries("default", 60, idle_edges=True)["requests_out"].endswith("> 0")


def test_versioned_app_graph_nodes_boxes_and_service_nodes() -> None:
    g = _build("versionedApp")
    assert g["duration"] == 60 and g["timestamp"] == 1_700_000_000 and g["graphType"] == "versionedApp"
    nodes = _nodes(g)
    assert {i for i, d in nodes.items() if d["nodeType"] == "app"} == {
        "app:default:traffic-generator:latest", "app:default:productpage:v1", "app:default:details:v1",
        "app:default:reviews:v2", "app:default:reviews:v3", "app:default:ratings:v1"}
    assert {i for i, d in nodes.items() if d["nodeType"] == "service"} == {
        "svc:default:productpage", "svc:default:details", "svc:default:reviews", "svc:default:ratings"}
    r2 = nodes["app:default:reviews:v2"]
    assert (r2["app"], r2["version"], r2["parent"]) == ("reviews", "v2", "box:default:reviews")
    assert nodes["box:default:reviews"]["isBox"] == "app"
    assert nodes["app:default:traffic-generator:latest"].get("isRoot") is True
    assert "isRoot" not in nodes["app:default:productpage:v1"]


def test_distribution_90_10_and_rates_counted_once() -> None:
    edges = _edges(_build("versionedApp"))
    v2 = edges[("svc:default:reviews", "app:default:reviews:v2")]["traffic"]["rates"]
    v3 = edges[("svc:default:reviews", "app:default:reviews:v3")]["traffic"]["rates"]
    # both reporters recorded each series: applied once
    assert v2["http"] == 9.0 and v3["http"] == 1.0
    assert v2["httpPercentReq"] == 90.0 and v3["httpPercentReq"] == 10.0
    out = edges[("app:default:productpage:v1", "svc:default:reviews")]["traffic"]["rates"]
    assert out["http"] == 10.0 and out["httpPercentReq"] == 50.0
    det = edges[("app:default:productpage:v1", "svc:default:details")]["traffic"]["rates"]
    assert det["httpPercentReq"] == 50.0


def test_error_edge_health_and_response_time() -> None:
    g = _build("versionedApp")
    edges, nodes = _edges(g), _nodes(g)
    bad = edges[("svc:default:ratings", "app:default:ratings:v1")]
    assert bad["traffic"]["rates"]["http5xx"] == 0.5
    assert bad["traffic"]["rates"]["httpPercentErr"] == 5.0
    assert bad["traffic"]["responses"]["503"]["flags"] == {"-": 5.0}
    assert bad["healthStatus"] == "Degraded"  # 5xx > 0 % and < 10 %
    from_v2 = edges[("app:default:reviews:v2", "svc:default:ratings")]
    assert from_v2["traffic"]["rates"]["httpPercentErr"] == pytest.approx(5.6, abs=0.1)
    assert edges[("svc:default:reviews", "app:default:reviews:v2")]["healthStatus"] == "Healthy"
    assert nodes["app:default:ratings:v1"]["healthStatus"] == "Degraded"
    assert nodes["app:default:reviews:v2"]["healthStatus"] == "Degraded"  # its outbound errors count
    assert nodes["app:default:reviews:v3"]["healthStatus"] == "Healthy"
    assert nodes["app:default:details:v1"]["traffic"] == [
        {"protocol": "http", "rates": {"httpIn": 10.0}}]
    # response time on the service→workload edge only (Kiali)
    assert edges[("svc:default:reviews", "app:default:reviews:v2")]["responseTime"] == 30.0
    assert "responseTime" not in edges[("app:default:productpage:v1", "svc:default:reviews")]


def test_badges_from_virtual_services() -> None:
    nodes = _nodes(_build("versionedApp"))
    reviews = nodes["svc:default:reviews"]
    assert reviews["hasVS"] == {"hostnames": ["reviews"]}
    assert reviews["hasTrafficShifting"] is True and reviews["hasRequestRouting"] is True
    assert "hasFaultInjection" not in reviews
    ratings = nodes["svc:default:ratings"]
    assert ratings["hasFaultInjection"] is True and ratings["hasMirroring"] is True
    assert "hasTrafficShifting" not in ratings
    assert "hasVS" not in nodes["svc:default:details"]


def test_workload_graph() -> None:
    g = _build("workload")
    nodes, edges = _nodes(g), _edges(g)
    assert nodes["wl:default:reviews-v2"]["workload"] == "reviews-v2"
    assert not any("parent" in d for d in nodes.values())
    assert edges[("svc:default:reviews", "wl:default:reviews-v3")]["traffic"]["rates"]["httpPercentReq"] == 10.0


def test_app_graph_merges_versions() -> None:
    g = _build("app")
    nodes, edges = _nodes(g), _edges(g)
    assert "app:default:reviews" in nodes and "version" not in nodes["app:default:reviews"]
    e = edges[("svc:default:reviews", "app:default:reviews")]["traffic"]["rates"]
    assert e["http"] == 10.0 and e["httpPercentReq"] == 100.0
    to_ratings = edges[("app:default:reviews", "svc:default:ratings")]["traffic"]["rates"]
    assert to_ratings["http"] == 10.0 and to_ratings["http5xx"] == 0.5


def test_service_graph_reduces_to_service_edges() -> None:
    g = _build("service")
    nodes, edges = _nodes(g), _edges(g)
    assert {d["nodeType"] for d in nodes.values()} == {"service", "workload"}
    assert set(edges) == {
        ("wl:default:traffic-generator", "svc:default:productpage"),
        ("svc:default:productpage", "svc:default:details"),
        ("svc:default:productpage", "svc:default:reviews"),
        ("svc:default:reviews", "svc:default:ratings"),
    }
    r = edges[("svc:default:reviews", "svc:default:ratings")]["traffic"]["rates"]
    assert r["http"] == 10.0 and r["http5xx"] == 0.5
    assert all("responseTime" not in e for e in edges.values())


def test_without_service_nodes_badges_go_to_destination_nodes() -> None:
    g = _build("versionedApp", inject_service_nodes=False)
    nodes, edges = _nodes(g), _edges(g)
    assert not any(d["nodeType"] == "service" for d in nodes.values())
    assert edges[("app:default:productpage:v1", "app:default:reviews:v2")]["traffic"]["rates"][
        "httpPercentReq"] == 45.0
    assert nodes["app:default:reviews:v3"]["hasTrafficShifting"] is True


def test_empty_and_unknown_type() -> None:
    g = build_graph({}, graph_type="versionedApp", namespace=NS, window_s=60)
    assert g["elements"] == {"nodes": [], "edges": []}
    with pytest.raises(ValueError):
        build_graph({}, graph_type="bogus", namespace=NS, window_s=60)


def test_health_thresholds() -> None:
    assert health_status({}) == ("NA", 0.0)
    assert health_status({("http", "200"): 1.0})[0] == "Healthy"
    assert health_status({("http", "200"): 999.0, ("http", "500"): 1.0})[0] == "Degraded"
    assert health_status({("http", "200"): 9.0, ("http", "500"): 1.0})[0] == "Failure"  # 10 %
    assert health_status({("http", "200"): 95.0, ("http", "404"): 5.0})[0] == "Healthy"
    assert health_status({("http", "200"): 85.0, ("http", "404"): 15.0})[0] == "Degraded"
    assert health_status({("http", "200"): 80.0, ("http", "404"): 20.0})[0] == "Failure"
    assert health_status({("http", "200"): 99.0, ("http", "-"): 1.0})[0] == "Degraded"
