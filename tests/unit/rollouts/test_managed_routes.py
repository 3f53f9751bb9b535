"""The managed routes of Argo's Istio traffic router as pure VirtualService edits (sluice.rollouts.istio):
setHeaderRoute, setMirrorRoute, ordering by `managedRoutes`, removal, and the weights of managed mirror routes,
with the shapes Argo's istio.go writes (checked against its unit tests' expectations)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sluice.rollouts import istio
from sluice.rollouts.istio import IstioConfig
from sluice.rollouts.traffic import step_routes
from sluice.validation.istio import validate as validate_istio

SUBSET = IstioConfig("", "", "canary", "stable")
HOST = IstioConfig("web-canary", "web-stable", "", "")
MANAGED = ("header-route", "mirror-route")


def subset_vs(port: int | None = 8000) -> dict[str, Any]:
    def dest(subset: str) -> dict[str, Any]:
        d: dict[str, Any] = {"host": "web", "subset": subset}
        if port:
            d["port"] = {"number": port}
        return d
    return {"apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"hosts": ["web"], "http": [
                {"name": "primary", "route": [{"destination": dest("stable"), "weight": 80},
                                              {"destination": dest("canary"), "weight": 20}]},
                {"name": "fallback", "route": [{"destination": {"host": "other"}}]}]}}


def names(vs: dict[str, Any]) -> list[str]:
    return [h.get("name", "") for h in vs["spec"]["http"]]


HEADER = {"name": "header-route", "match": [{"headerName": "x-canary", "headerValue": {"exact": "yes"}},
                                            {"headerName": "user-agent", "headerValue": {"regex": ".*Firefox.*"}}]}
MIRROR = {"name": "mirror-route", "percentage": 35,
          "match": [{"method": {"exact": "POST"}, "path": {"prefix": "/color"}},
                    {"headers": {"x-mirror": {"exact": "1"}}}]}


def test_header_route_sends_the_matched_requests_to_the_canary_subset_on_the_routes_port() -> None:
    vs = subset_vs()
    before = copy.deepcopy(vs)
    out = istio.set_header_route(vs, ["primary"], MANAGED, HEADER, "web", "canary")
    assert vs == before  # pure: the input is not touched
    assert names(out) == ["header-route", "primary", "fallback"]  # managed routes first
    assert out["spec"]["http"][0] == {
        "name": "header-route",
        "match": [{"headers": {"x-canary": {"exact": "yes"}}}, {"headers": {"user-agent": {"regex": ".*Firefox.*"}}}],
        "route": [{"destination": {"host": "web", "subset": "canary", "port": {"number": 8000}}, "weight": 100}]}
    assert not validate_istio("VirtualService", out).errors  # Istio accepts what the controller writes


def test_header_route_host_level_without_port_and_replacing_an_older_one() -> None:
    vs = subset_vs(port=None)
    vs["spec"]["http"][0]["route"] = [{"destination": {"host": "web-stable"}, "weight": 100},
                                      {"destination": {"host": "web-canary"}, "weight": 0}]
    first = istio.set_header_route(vs, ["primary"], MANAGED, HEADER, "web-canary", "")
    again = istio.set_header_route(first, ["primary"], MANAGED,
                                   {"name": "header-route", "match": [{"headerName": "x-v", "headerValue": {"prefix": "2"}}]},
                                   "web-canary", "")
    assert names(again) == ["header-route", "primary", "fallback"]  # replaced, not duplicated
    assert again["spec"]["http"][0]["match"] == [{"headers": {"x-v": {"prefix": "2"}}}]
    assert again["spec"]["http"][0]["route"] == [{"destination": {"host": "web-canary"}, "weight": 100}]


def test_a_step_without_match_removes_its_route() -> None:
    with_header = istio.set_header_route(subset_vs(), ["primary"], MANAGED, HEADER, "web", "canary")
    both = istio.set_mirror_route(with_header, ["primary"], MANAGED, MIRROR, "web", "canary")
    assert names(both) == ["header-route", "mirror-route", "primary", "fallback"]
    no_header = istio.set_header_route(both, ["primary"], MANAGED, {"name": "header-route"}, "web", "canary")
    assert names(no_header) == ["mirror-route", "primary", "fallback"]
    none = istio.set_mirror_route(no_header, ["primary"], MANAGED, {"name": "mirror-route"}, "web", "canary")
    assert names(none) == ["primary", "fallback"]
    assert none["spec"]["http"] == subset_vs()["spec"]["http"]


def test_mirror_route_keeps_the_weights_and_mirrors_a_percentage_to_the_canary() -> None:
    vs = subset_vs()
    vs["spec"]["http"][0]["route"][1]["weight"] = 0
    vs["spec"]["http"][0]["route"][0]["weight"] = 100
    out = istio.set_mirror_route(vs, ["primary"], MANAGED, MIRROR, "web", "canary")
    assert names(out) == ["mirror-route", "primary", "fallback"]
    assert out["spec"]["http"][0] == {
        "name": "mirror-route",
        "match": [{"method": {"exact": "POST"}, "uri": {"prefix": "/color"}},
                  {"headers": {"x-mirror": {"exact": "1"}}}],
        # Argo's typed copy: a zero weight is omitted
        "route": [{"destination": {"host": "web", "subset": "stable", "port": {"number": 8000}}, "weight": 100},
                  {"destination": {"host": "web", "subset": "canary", "port": {"number": 8000}}}],
        "mirror": {"host": "web", "subset": "canary", "port": {"number": 8000}},
        "mirrorPercentage": {"value": 35}}
    assert not validate_istio("VirtualService", out).errors
    default = istio.set_mirror_route(vs, ["primary"], MANAGED, {**MIRROR, "percentage": None}, "web", "canary")
    assert default["spec"]["http"][0]["mirrorPercentage"] == {"value": 100}


def test_routes_are_ordered_by_managed_routes_whatever_order_the_steps_ran_in() -> None:
    mirror_first = istio.set_mirror_route(subset_vs(), ["primary"], MANAGED, MIRROR, "web", "canary")
    both = istio.set_header_route(mirror_first, ["primary"], MANAGED, HEADER, "web", "canary")
    assert names(both) == ["header-route", "mirror-route", "primary", "fallback"]
    reversed_ = istio.set_header_route(mirror_first, ["primary"], ("mirror-route", "header-route"), HEADER,
                                       "web", "canary")
    assert names(reversed_) == ["mirror-route", "header-route", "primary", "fallback"]
    assert istio.order_routes([{"name": "b"}, {"route": []}, {"name": "a"}], ("a", "b")) == [
        {"name": "a"}, {"name": "b"}, {"route": []}]


def test_set_weights_moves_managed_mirror_routes_too_and_keeps_the_order() -> None:
    vs = istio.set_mirror_route(subset_vs(), ["primary"], MANAGED, MIRROR, "web", "canary")
    vs = istio.set_header_route(vs, ["primary"], MANAGED, HEADER, "web", "canary")
    out = istio.set_weights(vs, ["primary"], 60, SUBSET, MANAGED)
    assert out is not None
    assert names(out) == ["header-route", "mirror-route", "primary", "fallback"]
    by_name = {h["name"]: h for h in out["spec"]["http"]}
    assert [d["weight"] for d in by_name["primary"]["route"]] == [40, 60]
    assert [d["weight"] for d in by_name["mirror-route"]["route"]] == [40, 60]
    assert by_name["header-route"]["route"][0]["weight"] == 100  # not a weighted route
    assert istio.set_weights(out, ["primary"], 60, SUBSET, MANAGED) is None  # nothing left to change


def test_an_omitted_zero_weight_is_not_a_change() -> None:
    vs = subset_vs()
    vs["spec"]["http"][0]["route"] = [{"destination": {"host": "web", "subset": "stable"}, "weight": 100},
                                      {"destination": {"host": "web", "subset": "canary"}}]
    assert istio.set_weights(vs, ["primary"], 0, SUBSET) is None


def test_without_route_names_the_one_unmanaged_route_is_the_weighted_one() -> None:
    vs = subset_vs()
    vs["spec"]["http"] = vs["spec"]["http"][:1]
    del vs["spec"]["http"][0]["name"]
    with_header = istio.set_header_route(vs, [], MANAGED, HEADER, "web", "canary")
    assert istio.route_indexes(with_header, [], MANAGED) == [1]
    out = istio.set_weights(with_header, [], 50, SUBSET, MANAGED)
    assert out is not None and [d["weight"] for d in out["spec"]["http"][1]["route"]] == [50, 50]
    with pytest.raises(ValueError, match="must have exactly one route when omitting"):
        istio.route_indexes(with_header, [], ())  # the header route counts when it is not a managed one


def test_removal_takes_out_managed_and_step_named_routes_only() -> None:
    vs = istio.set_mirror_route(subset_vs(), ["primary"], MANAGED, MIRROR, "web", "canary")
    vs = istio.set_header_route(vs, ["primary"], MANAGED, HEADER, "web", "canary")
    vs["spec"]["http"].append({"name": "old-step-route", "route": [{"destination": {"host": "web"}}]})
    out = istio.remove_managed_routes(vs, MANAGED, ("old-step-route",))
    assert out is not None and names(out) == ["primary", "fallback"]
    assert istio.remove_managed_routes(out, MANAGED, ("old-step-route",)) is None  # nothing to remove


def test_step_routes_and_managed_names() -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 10}, {"setHeaderRoute": HEADER}, {"setMirrorRoute": MIRROR},
             {"setHeaderRoute": {"name": "header-route"}}]
    assert step_routes(steps) == ("header-route", "mirror-route", "header-route")
    assert istio.managed_names({"trafficRouting": {"managedRoutes": [{"name": "a"}, {}, {"name": "b"}]}}) == ("a", "b")
    assert istio.managed_names({}) == ()
