"""The console API over a Registry on a temp Store, with a fake PromQL callable returning recorded data."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient
from tests.unit.console.access import bearer_client, console_auth
from tests.unit.console.fixtures import NS, VS_90_10, fake_query

from sluice.api.registry import Registry
from sluice.console.api import console_app
from sluice.resources.kinds import by_kind
from sluice.store.sqlite import Store

VS = by_kind("networking.istio.io", "VirtualService")
DR = by_kind("networking.istio.io", "DestinationRule")


def _svc(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 9080}]}}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Registry]]:
    reg = Registry(Store(tmp_path / "db"))
    reg.ensure_namespace(NS)
    svc = by_kind("", "Service")
    assert svc is not None and VS is not None and DR is not None
    reg.create(svc, "v1", NS, _svc("reviews"))
    reg.create(DR, "v1", NS, {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                              "metadata": {"name": "reviews", "namespace": NS},
                              "spec": {"host": "reviews", "subsets": [
                                  {"name": "v2", "labels": {"version": "v2"}},
                                  {"name": "v3", "labels": {"version": "v3"}}]}})
    reg.create(VS, "v1", NS, copy.deepcopy(VS_90_10))
    reg.create(VS, "v1", NS, {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                              "metadata": {"name": "broken", "namespace": NS},
                              "spec": {"hosts": ["nowhere"], "http": [{"route": [
                                  {"destination": {"host": "nowhere"}}]}]}})
    c: TestClient[Any, Any] = bearer_client(console_app(reg, fake_query, auth=console_auth(tmp_path)))
    await c.start_server()
    try:
        yield c, reg
    finally:
        await c.close()


async def test_graph_endpoint(client: tuple[TestClient[Any, Any], Registry]) -> None:
    c, _ = client
    r = await c.get(f"/api/namespaces/{NS}/graph?graphType=versionedApp&duration=60s&responseTime=95")
    assert r.status == 200
    g = await r.json()
    assert g["duration"] == 60
    edges = {(e["data"]["source"], e["data"]["target"]): e["data"] for e in g["elements"]["edges"]}
    assert edges[("svc:default:reviews", "app:default:reviews:v2")]["traffic"]["rates"]["httpPercentReq"] == 90.0
    nodes = {n["data"]["id"]: n["data"] for n in g["elements"]["nodes"]}
    assert nodes["svc:default:reviews"]["hasTrafficShifting"] is True
    for bad in ("graphType=bogus", "duration=forever", "responseTime=42"):
        r = await c.get(f"/api/namespaces/{NS}/graph?{bad}")
        assert r.status == 400 and (await r.json())["code"] == 400
    r = await c.get("/api/namespaces/nope/graph")
    assert r.status == 404 and "not found" in (await r.json())["error"]


async def test_config_list_with_validation(client: tuple[TestClient[Any, Any], Registry]) -> None:
    c, _ = client
    r = await c.get(f"/api/istio/config?namespace={NS}")
    assert r.status == 200
    items = {(i["kind"], i["name"]): i for i in (await r.json())["items"]}
    assert set(items) == {("VirtualService", "reviews"), ("VirtualService", "broken"),
                          ("DestinationRule", "reviews")}
    broken = items[("VirtualService", "broken")]["validation"]
    assert broken["valid"] is False and broken["errors"] >= 1
    assert any(ch["code"] == "IST0101" and ch["severity"] == "error" for ch in broken["checks"])
    assert items[("VirtualService", "reviews")]["validation"]["valid"] is True
    # no pods carry the subsets' labels yet: the analyzer says so (not the write-time validator)
    dr_checks = items[("DestinationRule", "reviews")]["validation"]["checks"]
    assert dr_checks and all(ch["code"] != "IST0106" for ch in dr_checks)


async def test_put_invalid_weights_is_rejected_and_nothing_changes(
        client: tuple[TestClient[Any, Any], Registry]) -> None:
    c, reg = client
    assert VS is not None
    before = reg.get(VS, "v1", NS, "reviews")
    r = await c.get(f"/api/namespaces/{NS}/istio/virtualservices/reviews")
    assert r.status == 200
    obj = (await r.json())["object"]
    obj["spec"]["http"][0]["route"][0]["weight"] = 80
    r = await c.put(f"/api/namespaces/{NS}/istio/virtualservices/reviews", data=yaml.safe_dump(obj),
                    headers={"Content-Type": "application/yaml"})
    assert r.status == 422
    body = await r.json()
    assert body["code"] == 422
    assert "total destination weight 90 != 100" in body["error"]
    assert body["status"]["kind"] == "Status"
    assert reg.get(VS, "v1", NS, "reviews") == before

    obj["spec"]["http"][0]["route"][1]["weight"] = 20
    r = await c.put(f"/api/namespaces/{NS}/istio/VirtualService/reviews", data=json.dumps(obj),
                    headers={"Content-Type": "application/json"})
    assert r.status == 200, await r.text()
    saved = reg.get(VS, "v1", NS, "reviews")
    assert [d["weight"] for d in saved["spec"]["http"][0]["route"]] == [80, 20]
    assert (await r.json())["validation"]["valid"] is True


async def test_bad_bodies_and_unknown_paths(client: tuple[TestClient[Any, Any], Registry]) -> None:
    c, _ = client
    url = f"/api/namespaces/{NS}/istio/virtualservices/reviews"
    for data in ("", "a: [", "- 1\n", "a: 1\n---\nb: 2\n"):
        r = await c.put(url, data=data, headers={"Content-Type": "application/yaml"})
        assert r.status == 400, data
    r = await c.get(f"/api/namespaces/{NS}/istio/pods/x")
    assert r.status == 404
    r = await c.get(f"/api/namespaces/{NS}/istio/virtualservices/missing")
    assert r.status == 404 and (await r.json())["code"] == 404
    r = await c.get("/api/nothing/here")
    assert r.status == 404 and "error" in await r.json()


async def test_namespaces_workloads_and_logs(client: tuple[TestClient[Any, Any], Registry]) -> None:
    c, _ = client
    r = await c.get("/api/namespaces")
    assert r.status == 200
    nss = {n["name"]: n for n in (await r.json())["namespaces"]}
    assert nss[NS]["istioConfig"] == {"objects": 3, "valid": 1, "warnings": 0, "errors": 2}
    r = await c.get(f"/api/namespaces/{NS}/workloads")
    assert r.status == 200 and (await r.json())["workloads"] == []
    r = await c.get(f"/api/namespaces/{NS}/workloads/reviews-v2/logs")
    assert r.status == 404  # no such Deployment


async def test_create_and_delete(client: tuple[TestClient[Any, Any], Registry]) -> None:
    c, reg = client
    vs: dict[str, Any] = copy.deepcopy(VS_90_10)
    vs["metadata"] = {"name": "reviews2", "namespace": NS}
    r = await c.post(f"/api/namespaces/{NS}/istio/virtualservices", data=yaml.safe_dump(vs),
                     headers={"Content-Type": "application/yaml"})
    assert r.status == 201, await r.text()
    r = await c.delete(f"/api/namespaces/{NS}/istio/virtualservices/reviews2")
    assert r.status == 200
    r = await c.delete(f"/api/namespaces/{NS}/istio/virtualservices/reviews2")
    assert r.status == 404


async def test_static_dir(tmp_path: Path) -> None:
    (tmp_path / "ui").mkdir()
    (tmp_path / "ui" / "index.html").write_text("<html>console</html>")
    (tmp_path / "ui" / "app.js").write_text("x")
    reg = Registry(Store(tmp_path / "db"))
    async with bearer_client(console_app(reg, fake_query, auth=console_auth(tmp_path),
                                         static_dir=tmp_path / "ui")) as c:
        assert "console" in await (await c.get("/")).text()
        assert await (await c.get("/app.js")).text() == "x"
        assert "console" in await (await c.get("/graph/default")).text()
        assert (await c.get("/../db")).status in (200, 404)
        assert (await c.get("/api/namespaces")).status == 200
