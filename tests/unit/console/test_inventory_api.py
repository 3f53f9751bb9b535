"""Apps, services, service and workload detail, and the namespace sparkline, over the `mesh` namespace."""

from __future__ import annotations

from typing import Any

from tests.unit.console.conftest import MakeClient
from tests.unit.console.fixtures import NS
from tests.unit.console.mesh import Client, get_json

from sluice.metrics.promql.values import QueryResult, Series


async def test_apps_group_workloads_by_app_label(mesh: Client) -> None:
    body = await get_json(mesh, f"/api/namespaces/{NS}/apps")
    assert body["namespace"] == NS
    apps = {a["name"]: a for a in body["apps"]}
    assert set(apps) == {"productpage", "details", "reviews", "ratings", "traffic-generator"}
    reviews = apps["reviews"]
    assert reviews["workloads"] == ["reviews-v1", "reviews-v2", "reviews-v3"]
    assert reviews["versions"] == ["v1", "v2", "v3"]
    assert reviews["services"] == ["reviews"]
    assert reviews["istioSidecar"] is True
    # reviews-v1 has no Ready pod, reviews-v2 sees 503s from ratings: the worst of its workloads'
    assert reviews["health"] == {"status": "Failure", "pods": "Failure", "traffic": "Degraded"}
    assert apps["ratings"]["health"] == {"status": "Degraded", "pods": "Healthy", "traffic": "Degraded"}
    assert apps["traffic-generator"]["versions"] == []


async def test_services_list_with_workloads_routing_and_health(mesh: Client) -> None:
    body = await get_json(mesh, f"/api/namespaces/{NS}/services")
    services = {s["name"]: s for s in body["services"]}
    assert list(services) == sorted(services)
    reviews = services["reviews"]
    assert reviews["namespace"] == NS and reviews["type"] == "ClusterIP"
    assert reviews["ports"] == [{"name": "http", "port": 9080, "protocol": "TCP", "targetPort": 9080}]
    assert reviews["selector"] == {"app": "reviews"} and reviews["labels"] == {"app": "reviews"}
    assert reviews["workloads"] == [{"name": f"reviews-{v}", "app": "reviews", "version": v}
                                    for v in ("v1", "v2", "v3")]
    assert reviews["virtualServices"] == ["reviews"] and reviews["destinationRules"] == ["reviews"]
    assert reviews["health"] == {"status": "Healthy"}
    assert services["ratings"]["health"] == {"status": "Degraded"}  # 5 % 503s
    # the gateway VirtualService (hosts "*") routes to productpage but does not name it
    assert services["productpage"]["virtualServices"] == []
    assert services["traffic-generator"]["health"] == {"status": "NA"}


async def test_service_detail(mesh: Client) -> None:
    svc = await get_json(mesh, f"/api/namespaces/{NS}/services/ratings")
    assert svc["name"] == "ratings" and svc["workloads"] == [{"name": "ratings-v1", "app": "ratings",
                                                              "version": "v1"}]
    await get_json(mesh, f"/api/namespaces/{NS}/services/nope", 404)
    await get_json(mesh, f"/api/namespaces/{NS}/services/Bad_Name", 400)
    await get_json(mesh, "/api/namespaces/nope/services/ratings", 404)
    await get_json(mesh, "/api/namespaces/nope/services", 404)
    await get_json(mesh, "/api/namespaces/nope/apps", 404)


async def test_workload_detail_has_services_and_istio_config(mesh: Client) -> None:
    w = await get_json(mesh, f"/api/namespaces/{NS}/workloads/reviews-v2")
    assert (w["name"], w["app"], w["version"], w["type"]) == ("reviews-v2", "reviews", "v2", "Deployment")
    assert w["services"] == ["reviews"]
    assert w["istioConfig"] == [{"kind": "DestinationRule", "name": "reviews", "namespace": NS},
                                {"kind": "VirtualService", "name": "reviews", "namespace": NS}]
    assert [p["containers"] for p in w["pods"]] == [["reviews", "istio-proxy"]]
    assert w["istioSidecar"] is True
    assert w["health"] == {"status": "Degraded", "pods": "Healthy", "traffic": "Degraded"}  # its calls to ratings
    pp = await get_json(mesh, f"/api/namespaces/{NS}/workloads/productpage-v1")
    assert pp["services"] == ["productpage"] and pp["istioConfig"] == []
    v1 = await get_json(mesh, f"/api/namespaces/{NS}/workloads/reviews-v1")
    assert v1["availableReplicas"] == 0 and v1["health"]["pods"] == "Failure"
    await get_json(mesh, f"/api/namespaces/{NS}/workloads/ghost", 404)
    await get_json(mesh, f"/api/namespaces/{NS}/workloads/-bad-", 400)


def _range_fn(calls: list[tuple[str, float, float, float]]) -> Any:
    def query_range(expr: str, start: float, end: float, step: float) -> QueryResult:
        calls.append((expr, start, end, step))
        if f'destination_workload_namespace="{NS}"' not in expr:
            return QueryResult("matrix", [])
        ts = [int((start + i * step) * 1000) for i in range(30)]
        return QueryResult("matrix", [Series((), ts, [1.5] * 30)])
    return query_range


async def test_namespaces_sparkline(make_client: MakeClient) -> None:
    calls: list[tuple[str, float, float, float]] = []
    c = await make_client(query_range=_range_fn(calls))
    body = await get_json(c, "/api/namespaces?sparkline=10m")
    nss = {n["name"]: n for n in body["namespaces"]}
    line = nss[NS]["sparkline"]
    assert len(line) == 30 and all(v == 1.5 for _, v in line)
    assert line[-1][0] - line[0][0] == 29 * 20  # 30 points over the 10 minutes
    assert all(step == 20 and end - start == 29 * 20 for _, start, end, step in calls)
    assert any('reporter="destination"' in e and "[1m]" in e for e, *_ in calls)
    # without `sparkline` there is none, and no range query
    calls.clear()
    plain = await get_json(c, "/api/namespaces")
    assert all("sparkline" not in n for n in plain["namespaces"]) and calls == []
    await get_json(c, "/api/namespaces?sparkline=forever", 400)


async def test_sparkline_without_a_range_engine_is_501(mesh: Client) -> None:
    body = await get_json(mesh, "/api/namespaces?sparkline=10m", 501)
    assert "range" in body["error"]
    assert (await get_json(mesh, "/api/namespaces"))["namespaces"]


async def test_unknown_methods_and_paths_are_json_404(mesh: Client) -> None:
    r = await mesh.put(f"/api/namespaces/{NS}/apps", json={})
    assert r.status == 404 and (await r.json())["code"] == 404
    await get_json(mesh, f"/api/namespaces/{NS}/apps/reviews/extra", 404)
