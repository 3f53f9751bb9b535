"""The traffic-shifting wizard: the objects it generates, the weights it reads back, and its endpoints
writing through the Registry (validation, create-or-replace, nothing written on a rejected request)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from tests.unit.console.conftest import MakeClient
from tests.unit.console.fixtures import NS, VS_90_10
from tests.unit.console.mesh import DR, GATEWAY_VS, REVIEWS_DR, SVC, VS, Client, get_json

from sluice.api.errors import ApiError
from sluice.api.registry import Registry
from sluice.console.params import Fail
from sluice.console.wizard import (
    Versioned,
    current_weights,
    destination_rule,
    even_split,
    parse_weights,
    virtual_service,
)

FQDN = "reviews.default.svc.cluster.local"
REVIEWS = [Versioned(f"reviews-{v}", v, {"app": "reviews", "version": v}) for v in ("v1", "v2", "v3")]
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": NS},
           "spec": {"selector": {"app": "reviews"}}}


def test_generated_objects_are_kialis() -> None:
    assert destination_rule("reviews", NS, REVIEWS) == {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "reviews", "namespace": NS, "labels": {"kiali_wizard": "traffic_shifting"}},
        "spec": {"host": FQDN, "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                           {"name": "v2", "labels": {"version": "v2"}},
                                           {"name": "v3", "labels": {"version": "v3"}}]}}
    assert virtual_service("reviews", NS, REVIEWS, {"reviews-v1": 0, "reviews-v2": 80, "reviews-v3": 20}) == {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": NS, "labels": {"kiali_wizard": "traffic_shifting"}},
        "spec": {"hosts": ["reviews"], "http": [{"route": [
            {"destination": {"host": FQDN, "subset": "v2"}, "weight": 80},
            {"destination": {"host": FQDN, "subset": "v3"}, "weight": 20}]}]}}


def test_parse_weights() -> None:
    body = {"workloads": [{"name": "reviews-v2", "weight": 80}, {"name": "reviews-v3", "weight": 20}]}
    assert parse_weights(body, REVIEWS, "reviews") == {"reviews-v1": 0, "reviews-v2": 80, "reviews-v3": 20}
    assert parse_weights({"workloads": [{"name": "reviews-v1", "weight": 100}]}, REVIEWS, "reviews")["reviews-v1"] == 100
    bad: list[tuple[Any, str]] = [
        ({"workloads": [{"name": "reviews-v2", "weight": 80}, {"name": "reviews-v3", "weight": 10}]}, "total 90"),
        ({"workloads": [{"name": "reviews-v9", "weight": 100}]}, "workloads[0].name: 'reviews-v9' is not"),
        ({"workloads": [{"name": "reviews-v2", "weight": 50.5}, {"name": "reviews-v3", "weight": 49.5}]}, "integer"),
        ({"workloads": [{"name": "reviews-v2", "weight": "100"}]}, "integer"),
        ({"workloads": [{"name": "reviews-v2", "weight": True}]}, "integer"),
        ({"workloads": [{"name": "reviews-v2", "weight": 120}, {"name": "reviews-v3", "weight": -20}]}, "0 to 100"),
        ({"workloads": [{"name": "reviews-v2", "weight": 50}, {"name": "reviews-v2", "weight": 50}]}, "twice"),
        ({"workloads": ["reviews-v2"]}, "workloads[0] must be an object"),
        ({"workloads": [{"weight": 100}]}, "workloads[0].name"),
        ({"weights": {}}, '"workloads"'),
        ([1, 2], '"workloads"'),
    ]
    for b, words in bad:
        with pytest.raises(Fail) as e:
            parse_weights(b, REVIEWS, "reviews")
        assert e.value.code == 400 and words in e.value.message, (b, e.value.message)
    twins = [Versioned("a", "v1", {"version": "v1"}), Versioned("b", "v1", {"version": "v1"})]
    with pytest.raises(Fail) as e:
        parse_weights({"workloads": [{"name": "a", "weight": 50}, {"name": "b", "weight": 50}]}, twins, "s")
    assert "share version" in e.value.message


def test_even_split_totals_100() -> None:
    assert even_split(3) == [34, 33, 33] and even_split(1) == [100] and even_split(0) == []
    assert all(sum(even_split(n)) == 100 for n in range(1, 12))


def test_current_weights_read_from_the_first_route_through_subsets() -> None:
    got = current_weights(SERVICE, REVIEWS, [VS_90_10, GATEWAY_VS], [REVIEWS_DR])
    assert got == {"service": "reviews", "namespace": NS, "host": FQDN,
                   "workloads": [{"name": "reviews-v1", "version": "v1", "weight": 0},
                                 {"name": "reviews-v2", "version": "v2", "weight": 90},
                                 {"name": "reviews-v3", "version": "v3", "weight": 10}],
                   "virtualService": "reviews", "destinationRule": "reviews", "wizard": False}
    # a VirtualService with another name is used when it is the only one naming the service
    renamed = copy.deepcopy(VS_90_10)
    renamed["metadata"]["name"] = "reviews-route"
    renamed["spec"]["hosts"] = [FQDN]
    assert current_weights(SERVICE, REVIEWS, [renamed], [REVIEWS_DR])["virtualService"] == "reviews-route"
    # one destination without a weight takes everything
    single = copy.deepcopy(VS_90_10)
    single["spec"]["http"][0]["route"] = [{"destination": {"host": "reviews", "subset": "v3"}}]
    assert [w["weight"] for w in current_weights(SERVICE, REVIEWS, [single], [REVIEWS_DR])["workloads"]] == [0, 0, 100]


def test_current_weights_even_split_without_subset_routing() -> None:
    no_subsets = copy.deepcopy(VS_90_10)
    no_subsets["spec"]["http"][0]["route"] = [{"destination": {"host": "reviews"}}]
    for vss, drs in (([], []), ([no_subsets], [REVIEWS_DR]), ([VS_90_10], [])):
        got = current_weights(SERVICE, REVIEWS, vss, drs)
        assert [w["weight"] for w in got["workloads"]] == [34, 33, 33]


# ---------------------------------------------------------------------------------------------- endpoints
URL = f"/api/namespaces/{NS}/services/reviews/traffic-shifting"


async def _post(c: Client, body: Any, url: str = URL, raw: str | None = None) -> tuple[int, Any]:
    r = await c.post(url, data=raw if raw is not None else json.dumps(body),
                     headers={"Content-Type": "application/json"})
    return r.status, await r.json()


def _stored(reg: Registry) -> dict[str, Any]:
    out = {}
    for rt in (VS, DR):
        items, _, _ = reg.list_objects(rt, "v1", NS)
        out.update({f"{rt.kind}/{o['metadata']['name']}": o for o in items})
    return out


async def test_get_reads_current_weights(mesh: Client) -> None:
    body = await get_json(mesh, URL)
    assert [(w["name"], w["weight"]) for w in body["workloads"]] == [("reviews-v1", 0), ("reviews-v2", 90),
                                                                     ("reviews-v3", 10)]
    assert (body["virtualService"], body["destinationRule"], body["wizard"]) == ("reviews", "reviews", False)
    ratings = await get_json(mesh, f"/api/namespaces/{NS}/services/ratings/traffic-shifting")
    assert ratings["workloads"] == [{"name": "ratings-v1", "version": "v1", "weight": 100}]
    assert ratings["virtualService"] is None and ratings["host"] == "ratings.default.svc.cluster.local"
    await get_json(mesh, f"/api/namespaces/{NS}/services/nope/traffic-shifting", 404)
    await get_json(mesh, "/api/namespaces/nope/services/reviews/traffic-shifting", 404)


async def test_post_replaces_through_the_registry(mesh: Client, registry: Registry) -> None:
    before = {k: v["metadata"] for k, v in _stored(registry).items()}
    status, body = await _post(mesh, {"workloads": [{"name": "reviews-v2", "weight": 80},
                                                    {"name": "reviews-v3", "weight": 20}]})
    assert status == 200, body
    assert body["virtualService"]["validation"]["valid"] is True
    assert body["destinationRule"]["name"] == "reviews"
    vs, dr = registry.get(VS, "v1", NS, "reviews"), registry.get(DR, "v1", NS, "reviews")
    # replaced in place (same object, new resourceVersion), with the wizard's content
    assert vs["metadata"]["uid"] == before["VirtualService/reviews"]["uid"]
    assert vs["metadata"]["resourceVersion"] != before["VirtualService/reviews"]["resourceVersion"]
    assert dr["metadata"]["uid"] == before["DestinationRule/reviews"]["uid"]
    assert vs["metadata"]["labels"] == {"kiali_wizard": "traffic_shifting"}
    assert vs["spec"] == {"hosts": ["reviews"], "http": [{"route": [
        {"destination": {"host": FQDN, "subset": "v2"}, "weight": 80},
        {"destination": {"host": FQDN, "subset": "v3"}, "weight": 20}]}]}
    assert dr["spec"]["host"] == FQDN and [s["name"] for s in dr["spec"]["subsets"]] == ["v1", "v2", "v3"]
    assert int(dr["metadata"]["resourceVersion"]) < int(vs["metadata"]["resourceVersion"])  # DR written first
    got = await get_json(mesh, URL)
    assert [w["weight"] for w in got["workloads"]] == [0, 80, 20] and got["wizard"] is True
    # and again: a second replace works from the new resourceVersions
    status, body = await _post(mesh, {"workloads": [{"name": "reviews-v1", "weight": 100}]})
    assert status == 200, body
    assert registry.get(VS, "v1", NS, "reviews")["spec"]["http"][0]["route"] == [
        {"destination": {"host": FQDN, "subset": "v1"}, "weight": 100}]


async def test_post_creates_when_there_is_nothing(mesh: Client, registry: Registry) -> None:
    status, body = await _post(mesh, {"workloads": [{"name": "ratings-v1", "weight": 100}]},
                               f"/api/namespaces/{NS}/services/ratings/traffic-shifting")
    assert status == 200, body
    assert registry.get(DR, "v1", NS, "ratings")["spec"]["subsets"] == [{"name": "v1", "labels": {"version": "v1"}}]
    assert registry.get(VS, "v1", NS, "ratings")["spec"]["hosts"] == ["ratings"]


async def test_rejected_requests_write_nothing(mesh: Client, registry: Registry) -> None:
    before = _stored(registry)
    for body, words in (
            ({"workloads": [{"name": "reviews-v2", "weight": 80}, {"name": "reviews-v3", "weight": 10}]},
             "the weights total 90, not 100"),
            ({"workloads": [{"name": "ratings-v1", "weight": 100}]}, "not a versioned workload of service 'reviews'"),
            ({"workloads": [{"name": "reviews-v2", "weight": 100.0}]}, "integer"),
            ({"nothing": True}, "workloads")):
        status, answer = await _post(mesh, body)
        assert status == 400 and answer["code"] == 400 and words in answer["error"], answer
    status, answer = await _post(mesh, None, raw="{not json")
    assert status == 400 and "not valid JSON" in answer["error"]
    status, answer = await _post(mesh, None, raw="")
    assert status == 400
    assert _stored(registry) == before


async def test_post_conflicts(mesh: Client, registry: Registry) -> None:
    # another VirtualService already routes details: the wizard would make a second one
    other = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
             "metadata": {"name": "details-route", "namespace": NS},
             "spec": {"hosts": ["details.default.svc.cluster.local"],
                      "http": [{"route": [{"destination": {"host": "details"}}]}]}}
    registry.create(VS, "v1", NS, other)
    before = _stored(registry)
    status, answer = await _post(mesh, {"workloads": [{"name": "details-v1", "weight": 100}]},
                                 f"/api/namespaces/{NS}/services/details/traffic-shifting")
    assert status == 409 and "details-route" in answer["error"]
    # a service without versioned workloads has nothing to shift
    status, answer = await _post(mesh, {"workloads": []},
                                 f"/api/namespaces/{NS}/services/traffic-generator/traffic-shifting")
    assert status == 409 and "version" in answer["error"]
    assert _stored(registry) == before


async def test_delete_only_removes_wizard_objects(mesh: Client, registry: Registry) -> None:
    r = await mesh.delete(URL)
    assert r.status == 409 and "kiali_wizard" in (await r.json())["error"]
    assert registry.get(VS, "v1", NS, "reviews")  # untouched
    status, _ = await _post(mesh, {"workloads": [{"name": "reviews-v3", "weight": 100}]})
    assert status == 200
    r = await mesh.delete(URL)
    assert r.status == 200
    assert (await r.json())["deleted"] == [{"kind": "VirtualService", "namespace": NS, "name": "reviews"},
                                           {"kind": "DestinationRule", "namespace": NS, "name": "reviews"}]
    for rt in (VS, DR):
        with pytest.raises(ApiError):
            registry.get(rt, "v1", NS, "reviews")
    r = await mesh.delete(URL)
    assert r.status == 404 and (await r.json())["code"] == 404
    got = await get_json(mesh, URL)  # nothing routes reviews now: an even split
    assert [w["weight"] for w in got["workloads"]] == [34, 33, 33] and got["virtualService"] is None


async def test_service_without_selector(make_client: MakeClient, registry: Registry) -> None:
    registry.create(SVC, "v1", NS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "external"},
                                    "spec": {"ports": [{"port": 80}]}})
    c = await make_client()
    got = await get_json(c, f"/api/namespaces/{NS}/services/external/traffic-shifting")
    assert got["workloads"] == []
    status, answer = await _post(c, {"workloads": []}, f"/api/namespaces/{NS}/services/external/traffic-shifting")
    assert status == 409
