"""Behaviour of the translation seen from a request's point of view (via the route simulator) and from
the resources' names and addresses: what the ADS server, the runtime and telemetry rely on."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from google.protobuf import json_format
from xds_scenarios import (
    NS,
    bookinfo,
    build_push,
    client_namespace,
    load_scenario,
    proxy_for,
    run_scenario,
    scenario_objects,
)

from sluice import mesh
from sluice.xds.translate import (
    ADS_ORDER,
    TYPE_CLUSTER,
    TYPE_ENDPOINT,
    TYPE_LISTENER,
    TYPE_ROUTE,
    MeshOptions,
    generate,
    proxy_from_pod,
)
from sluice.xds.translate.simulate import route_request

Obj = dict[str, Any]
REVIEWS = "reviews.tutorial.svc.cluster.local"


def cluster(subset: str, host: str = REVIEWS, port: int = 9080) -> str:
    return mesh.outbound_cluster(port, subset, host)


def as_dict(msg: Any) -> Obj:
    out: Obj = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    return out


# --- routing, through the simulator -------------------------------------------------------------------

def test_story_split_90_10_for_every_name_of_reviews() -> None:
    res = run_scenario("reviews-90-10")["productpage-v1"]
    for authority in ("reviews:9080", "reviews", "reviews.tutorial:9080", "reviews.tutorial.svc:9080",
                      f"{REVIEWS}:9080", REVIEWS, "10.96.0.13:9080"):
        d = route_request(res, authority, "/reviews/0")
        assert d is not None, authority
        assert d.clusters == ((cluster("v2"), 90), (cluster("v3"), 10)), authority


def test_header_match_sends_jason_to_v2() -> None:
    res = run_scenario("header-match")["productpage-v1"]
    jason = route_request(res, "reviews:9080", "/reviews/0", headers={"end-user": "jason"})
    assert jason is not None and jason.cluster == cluster("v2") and jason.route_name == "jason"
    other = route_request(res, "reviews:9080", "/reviews/0", headers={"end-user": "alice"})
    assert other is not None and other.cluster == cluster("v1")
    assert route_request(res, "reviews", "/reviews/0").cluster == cluster("v1")  # type: ignore[union-attr]


def test_match_kinds() -> None:
    res = run_scenario("header-match")["productpage-v1"]
    tester = {"x-tester": "team-blue", "x-canary": ""}
    hit = route_request(res, "reviews:9080", "/REVIEWS/1?canary=yes", headers=tester)
    assert hit is not None and hit.cluster == cluster("v3") and hit.route_name == "v3-testers.by-prefix"
    # withoutHeaders, queryParams, method and the regex header each veto the match
    for change in ({"x-legacy": "1"}, {"x-tester": "Team-Blue"}):
        d = route_request(res, "reviews:9080", "/reviews/1?canary=yes", headers={**tester, **change})
        assert d is not None and d.cluster == cluster("v1"), change
    assert route_request(res, "reviews:9080", "/reviews/1?canary=no", headers=tester).cluster == cluster("v1")  # type: ignore[union-attr]
    assert route_request(res, "reviews:9080", "/reviews/1?canary=yes", headers=tester,
                         method="POST").cluster == cluster("v1")  # type: ignore[union-attr]
    by_authority = route_request(res, "reviews.tutorial:9080", "/reviews/42")
    assert by_authority is not None and by_authority.route_name == "v3-testers.by-authority"
    # a match on another port does not apply to the 9080 virtual host at all
    rc = as_dict(res[TYPE_ROUTE]["http_proxy"])
    names = [r.get("name") for vh in rc["virtual_hosts"] for r in vh["routes"]]
    assert "v3-testers.other-port" not in names


def test_unknown_host_gets_no_route() -> None:
    res = run_scenario("bookinfo-no-vs")["sleep"]
    assert route_request(res, "example.com", "/") is None  # Envoy answers 404 NR
    assert route_request(res, "reviews:9999", "/") is None


def test_default_route_without_virtual_service() -> None:
    res = run_scenario("bookinfo-no-vs")["sleep"]
    d = route_request(res, "details:9080", "/details/0")
    assert d is not None and d.cluster == cluster("", "details.tutorial.svc.cluster.local")
    assert d.route_name == "default"
    retry = d.action["retry_policy"]
    assert retry["num_retries"] == 2 and retry["retry_on"].startswith("connect-failure,refused-stream")
    assert retry["retry_host_predicate"][0]["name"] == "envoy.retry_host_predicates.previous_hosts"
    assert d.action["timeout"] == "0s"


def test_source_labels() -> None:
    out = run_scenario("source-labels")
    pp = route_request(out["productpage-v1"], "reviews:9080", "/")
    sleep = route_request(out["sleep"], "reviews:9080", "/")
    assert pp is not None and pp.cluster == cluster("v2")
    assert sleep is not None and sleep.cluster == cluster("v1")


def test_fault_filter_and_per_route_config() -> None:
    res = run_scenario("fault")["reviews-v2"]
    d = route_request(res, "ratings:9080", "/ratings/0", headers={"end-user": "jason"})
    assert d is not None
    fault = d.per_filter["envoy.filters.http.fault"]
    assert fault["delay"] == {"fixed_delay": "7s", "percentage": {"numerator": 500000, "denominator": "MILLION"}}
    assert fault["abort"]["http_status"] == 500 and fault["abort"]["percentage"]["numerator"] == 105000
    plain = route_request(res, "ratings:9080", "/ratings/0")
    assert plain is not None and not plain.per_filter
    outbound = as_dict(res[TYPE_LISTENER]["127.1.0.5_15001"])
    hcm = outbound["filter_chains"][0]["filters"][0]["typed_config"]
    names = [f["name"] for f in hcm["http_filters"]]
    assert names.index("envoy.filters.http.fault") < names.index("envoy.filters.http.router") == len(names) - 1


def test_retries_and_timeout() -> None:
    res = run_scenario("retries")["productpage-v1"]
    once = route_request(res, "ratings:9080", "/once")
    assert once is not None and "retry_policy" not in once.action
    hard = route_request(res, "ratings:9080", "/x")
    assert hard is not None and hard.action["timeout"] == "10s"
    retry = hard.action["retry_policy"]
    assert retry["num_retries"] == 3 and retry["per_try_timeout"] == "2.500s"
    assert retry["retry_on"] == "gateway-error,connect-failure,retriable-status-codes"
    assert retry["retriable_status_codes"] == [503]
    assert retry["retry_priority"]["name"] == "envoy.retry_priorities.previous_priorities"


def test_mirrors() -> None:
    res = run_scenario("mirror")["productpage-v1"]
    d = route_request(res, "reviews:9080", "/")
    assert d is not None and d.cluster == cluster("v1") and d.mirrors == (cluster("v2"),)
    both = route_request(res, "reviews:9080", "/", headers={"x-shadow": "both"})
    assert both is not None and both.mirrors == (cluster("v2"), cluster("v3"))


def test_rewrite_redirect_direct_response() -> None:
    res = run_scenario("rewrite-redirect-direct")["sleep"]
    old = route_request(res, "productpage:9080", "/old")
    assert old is not None and old.redirect == {"path_redirect": "/productpage", "response_code": "FOUND"}
    moved = route_request(res, "productpage:9080", "/moved/x")
    assert moved is not None and moved.redirect is not None and moved.redirect["port_redirect"] == 8443
    health = route_request(res, "productpage:9080", "/healthz")
    assert health is not None and health.direct_status == 200
    api = route_request(res, "productpage:9080", "/api/x")
    assert api is not None and api.action["prefix_rewrite"] == "/api/v1/"
    assert api.action["host_rewrite_literal"] == "productpage.internal"
    regex = route_request(res, "productpage:9080", "/items/7")
    assert regex is not None and regex.action["regex_rewrite"]["substitution"] == "/products/\\1"
    rest = route_request(res, "productpage:9080", "/productpage")
    assert rest is not None and "envoy.filters.http.cors" in rest.per_filter


def test_gateway_routes_bookinfo() -> None:
    res = run_scenario("gateway")["istio-ingressgateway"]
    listener = as_dict(res[TYPE_LISTENER]["0.0.0.0_8080"])
    assert listener["address"]["socket_address"] == {"address": mesh.INGRESS_ADDRESS, "port_value": 8080}
    for path in ("/productpage", "/static/x.css", "/login", "/logout", "/api/v1/products/0"):
        d = route_request(res, "localhost:8080", path, route_config="http.8080")
        assert d is not None and d.cluster == cluster("", "productpage.tutorial.svc.cluster.local"), path
    assert route_request(res, "localhost:8080", "/admin", route_config="http.8080") is None


def test_gateway_without_virtual_service_answers_404() -> None:
    scenario = load_scenario("gateway")
    objects = [o for o in scenario_objects(scenario) if o.get("kind") != "VirtualService"]
    res = generate(proxy_for(objects, "istio-ingressgateway"), build_push(objects))
    d = route_request(res, "localhost:8080", "/productpage", route_config="http.8080")
    assert d is not None and d.direct_status == 404


def test_virtual_service_export_to() -> None:
    """Istio's exportTo on VirtualServices (VirtualServicesForGateway): a sidecar sees the rules of its own
    namespace, those exported to it by name and the public ones, in that order, so its own namespace's rule for a
    host comes before a public one; a gateway-bound rule kept to its namespace does not reach a gateway elsewhere."""
    other = "other"
    base = [*bookinfo(), *client_namespace(other)]

    def vs(name: str, ns: str, subset: str, export: list[str] | None, created: str = "2026-01-01T00:00:00Z") -> Obj:
        spec: Obj = {"hosts": [REVIEWS], "http": [{"route": [{"destination": {"host": REVIEWS, "subset": subset}}]}]}
        if export is not None:
            spec["exportTo"] = export
        return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": name, "namespace": ns, "creationTimestamp": created}, "spec": spec}

    def routed(objs: list[Obj], pod: str) -> str:
        d = route_request(generate(proxy_for(objs, pod), build_push(objs), [TYPE_ROUTE]), f"{REVIEWS}:9080", "/")
        assert d is not None
        return str(d.cluster).split("|")[2]  # the subset ("": the default route)
    for export, mine, theirs in [(None, "v3", "v3"), (["*"], "v3", "v3"), (["."], "v3", ""), ([NS], "v3", ""),
                                 ([other], "", "v3"), ([".", other], "v3", "v3")]:
        objs = [*base, vs("r", NS, "v3", export)]
        assert (routed(objs, "sleep"), routed(objs, "curl")) == (mine, theirs), export
    # its own namespace's rule first, then one exported to it by name, then a public one (the oldest here)
    objs = [*base, vs("public", NS, "v2", None, "2025-01-01T00:00:00Z"),
            vs("named", NS, "v3", [other], "2025-06-01T00:00:00Z"), vs("mine", other, "v1", ["."])]
    assert (routed(objs, "curl"), routed(objs, "sleep")) == ("v1", "v2")
    assert routed(objs[:-1], "curl") == "v3"

    gateway = load_scenario("gateway")
    objects = scenario_objects(gateway)
    kept = [copy.deepcopy(o) for o in objects]
    for o in kept:
        if o.get("kind") == "VirtualService":
            o["spec"]["exportTo"] = ["."]
    res = generate(proxy_for(kept, "istio-ingressgateway"), build_push(kept))
    d = route_request(res, "localhost:8080", "/productpage", route_config="http.8080")
    assert d is not None and d.direct_status == 404  # in istio-system: the rule is not exported there
    for o in kept:
        if o.get("kind") == "VirtualService":
            o["spec"]["exportTo"] = ["istio-system"]
    res = generate(proxy_for(kept, "istio-ingressgateway"), build_push(kept))
    d = route_request(res, "localhost:8080", "/productpage", route_config="http.8080")
    assert d is not None and d.cluster == cluster("", "productpage.tutorial.svc.cluster.local")


def test_consistent_hash_on_routes() -> None:
    res = run_scenario("destination-rule")["productpage-v1"]
    reviews = route_request(res, "reviews:9080", "/")
    assert reviews is not None
    assert {"header": {"header_name": "end-user"}} in reviews.action["hash_policy"]
    assert {"cookie": {"name": "session", "ttl": "0s", "path": "/"}} in reviews.action["hash_policy"]
    ratings = route_request(res, "ratings:9080", "/")
    assert ratings is not None and ratings.action["hash_policy"] == [{"connection_properties": {"source_ip": True}}]
    details = route_request(res, "details:9080", "/")
    assert details is not None and details.action["hash_policy"] == [{"query_parameter": {"name": "user"}}]


# --- clusters and endpoints ---------------------------------------------------------------------------

def test_subset_clusters_and_endpoints() -> None:
    res = run_scenario("reviews-90-10")["productpage-v1"]
    eds = {n: as_dict(m) for n, m in res[TYPE_ENDPOINT].items()}

    def addrs(name: str) -> list[str]:
        return [f"{e['endpoint']['address']['socket_address']['address']}:"
                f"{e['endpoint']['address']['socket_address']['port_value']}"
                for group in eds[name].get("endpoints", []) for e in group["lb_endpoints"]]

    assert addrs(cluster("")) == ["127.1.0.4:9080", "127.1.0.5:9080", "127.1.0.6:9080"]
    assert addrs(cluster("v2")) == ["127.1.0.5:9080"]
    assert addrs(cluster("v3")) == ["127.1.0.6:9080"]
    cds = {n: as_dict(m) for n, m in res[TYPE_CLUSTER].items()}
    assert set(eds) == {n for n, c in cds.items() if c.get("type") == "EDS"}
    for name in eds:
        c = cds[name]
        assert c["eds_cluster_config"]["service_name"] == name and c["connect_timeout"] == "10s"
    assert {"BlackHoleCluster", "PassthroughCluster"} <= set(cds)


def test_traffic_policy_on_clusters() -> None:
    res = run_scenario("destination-rule")["productpage-v1"]
    cds = {n: as_dict(m) for n, m in res[TYPE_CLUSTER].items()}
    top, v2, v3 = cds[cluster("")], cds[cluster("v2")], cds[cluster("v3")]
    assert top["lb_policy"] == "RING_HASH"
    limits = top["circuit_breakers"]["thresholds"][0]
    assert (limits["max_connections"], limits["max_pending_requests"], limits["max_requests"],
            limits["max_retries"]) == (100, 10, 1000, 3)
    assert top["outlier_detection"]["consecutive_5xx"] == 7 and top["outlier_detection"]["interval"] == "300s"
    opts = top["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert opts["common_http_protocol_options"] == {"idle_timeout": "30s", "max_requests_per_connection": 1}
    assert top["connect_timeout"] == "0.030s"
    assert v2["lb_policy"] == "RANDOM" and v2["circuit_breakers"]["thresholds"][0]["max_connections"] == 5
    assert v2["outlier_detection"]["consecutive_5xx"] == 7  # inherited from the top level
    assert v3["lb_policy"] == "MAGLEV" and v3["maglev_lb_config"]["table_size"] == "65537"
    assert cds[cluster("", "details.tutorial.svc.cluster.local")]["lb_policy"] == "RING_HASH"  # port level wins
    assert cds[cluster("", "ratings.tutorial.svc.cluster.local")]["ring_hash_lb_config"]["minimum_ring_size"] == "2048"
    assert cds[cluster("", "productpage.tutorial.svc.cluster.local")]["lb_policy"] == "LEAST_REQUEST"


# --- listeners and the inbound path -------------------------------------------------------------------

def test_sidecar_listeners_and_inbound_path() -> None:
    res = run_scenario("bookinfo-no-vs")["reviews-v2"]
    assert set(res[TYPE_LISTENER]) == {"127.1.0.5_15001", "127.1.0.5_9080"}
    inbound = as_dict(res[TYPE_LISTENER]["127.1.0.5_9080"])
    assert inbound["address"]["socket_address"] == {"address": "127.1.0.5", "port_value": 9080}
    hcm = inbound["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["stat_prefix"] == "inbound_0.0.0.0_9080"
    assert hcm["route_config"]["name"] == "inbound|9080||"
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]
    assert route["route"]["cluster"] == "inbound|9080||" and route["name"] == "default"
    assert route["route"]["retry_policy"] == {"retry_on": "reset-before-request", "num_retries": 2}
    assert "%UPSTREAM_CLUSTER_RAW%" in hcm["access_log"][0]["typed_config"]["log_format"]["text_format_source"][
        "inline_string"]
    app = as_dict(res[TYPE_CLUSTER]["inbound|9080||"])
    sock = app["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert sock == {"address": mesh.app_ip("127.1.0.5"), "port_value": 9080} and app["type"] == "STATIC"
    outbound = as_dict(res[TYPE_LISTENER]["127.1.0.5_15001"])
    ohcm = outbound["filter_chains"][0]["filters"][0]["typed_config"]
    assert ohcm["rds"]["route_config_name"] == "http_proxy"
    assert ohcm["http_protocol_options"] == {"allow_absolute_url": True}


def test_als_logger_and_cluster() -> None:
    res = run_scenario("telemetry-als")["reviews-v1"]
    hcm = as_dict(res[TYPE_LISTENER]["127.1.0.4_15001"])["filter_chains"][0]["filters"][0]["typed_config"]
    grpc = hcm["access_log"][1]["typed_config"]["common_config"]
    assert grpc["log_name"] == "http_envoy_accesslog"
    assert grpc["grpc_service"]["envoy_grpc"]["cluster_name"] == "envoy_accesslog_service"
    als = as_dict(res[TYPE_CLUSTER]["envoy_accesslog_service"])
    assert als["type"] == "STATIC" and "http2_protocol_options" in str(als["typed_extension_protocol_options"])


# --- inputs: pods, services, name resolution ----------------------------------------------------------

def test_proxy_from_pod() -> None:
    objs = bookinfo()
    pod = next(o for o in objs if o.get("kind") == "Pod" and o["metadata"]["name"].startswith("reviews-v2"))
    proxy = proxy_from_pod(pod)
    assert proxy is not None and proxy.type == "sidecar" and proxy.app_ports == (9080,)
    assert proxy.id == mesh.sidecar_node_id("127.1.0.5", pod["metadata"]["name"], NS)
    assert proxy.listen_address == "127.1.0.5" and proxy.service_account == "bookinfo-reviews"
    gw = proxy_for(objs, "istio-ingressgateway")
    assert gw.type == "router" and gw.listen_address == mesh.INGRESS_ADDRESS and gw.app_ports == ()
    no_ip = copy.deepcopy(pod)
    del no_ip["status"]["podIP"]
    assert proxy_from_pod(no_ip) is None
    no_sidecar = copy.deepcopy(pod)
    no_sidecar["spec"]["containers"] = no_sidecar["spec"]["containers"][:1]
    assert proxy_from_pod(no_sidecar) is None


def test_other_namespace_gets_no_short_names() -> None:
    objs = bookinfo()
    other = copy.deepcopy(next(o for o in objs if o.get("kind") == "Pod" and o["metadata"]["name"].startswith("sleep")))
    other["metadata"].update(namespace="other", name="sleep-other")
    other["status"]["podIP"] = "127.1.0.20"
    objs.append(other)
    res = generate(proxy_from_pod(other), build_push(objs), [TYPE_ROUTE])  # type: ignore[arg-type]
    assert route_request(res, "reviews:9080", "/") is None
    d = route_request(res, "reviews.tutorial:9080", "/")
    assert d is not None and d.cluster == cluster("")


def test_multi_port_service_and_named_target_port() -> None:
    objs = bookinfo()
    objs.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": NS, "labels": {"app": "web"}},
                 "spec": {"containers": [{"name": "web", "ports": [{"name": "http-web", "containerPort": 8000},
                                                                   {"name": "grpc", "containerPort": 9000}]},
                                         {"name": "istio-proxy"}]},
                 "status": {"podIP": "127.1.0.30"}})
    objs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
                 "spec": {"clusterIP": "10.96.0.30", "selector": {"app": "web"},
                          "ports": [{"name": "http", "port": 80, "targetPort": "http-web"},
                                    {"name": "grpc", "port": 9000, "targetPort": 9000}]}})
    objs.append({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": NS},
                 "subsets": [{"addresses": [{"ip": "127.1.0.30", "targetRef": {"kind": "Pod", "name": "web-1"}}],
                              "ports": [{"name": "http", "port": 8000}, {"name": "grpc", "port": 9000}]}]})
    push = build_push(objs)
    res = generate(proxy_for(objs, "sleep"), push)
    assert route_request(res, "web", "/").cluster == cluster("", "web.tutorial.svc.cluster.local", 80)  # type: ignore[union-attr]
    assert route_request(res, "web:9000", "/").cluster == cluster("", "web.tutorial.svc.cluster.local", 9000)  # type: ignore[union-attr]
    eds = as_dict(res[TYPE_ENDPOINT][cluster("", "web.tutorial.svc.cluster.local", 80)])
    assert eds["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] == 8000
    grpc = as_dict(res[TYPE_CLUSTER][cluster("", "web.tutorial.svc.cluster.local", 9000)])
    assert "http2_protocol_options" in str(grpc["typed_extension_protocol_options"])
    domains = [d for vh in as_dict(res[TYPE_ROUTE]["http_proxy"])["virtual_hosts"] for d in vh["domains"]]
    assert len(domains) == len(set(domains))
    # the web pod's own sidecar: inbound gRPC port gets an HTTP/2 cluster
    web = generate(proxy_for(objs, "web-1"), push, [TYPE_CLUSTER])
    assert "http2_protocol_options" in str(as_dict(web[TYPE_CLUSTER]["inbound|9000||"]))


@pytest.mark.parametrize("host", ["reviews", "reviews.tutorial", "reviews.tutorial.svc", REVIEWS, "*.tutorial.svc.cluster.local"])
def test_virtual_service_host_forms(host: str) -> None:
    objs = bookinfo() + [{"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
                          "metadata": {"name": "r", "namespace": NS},
                          "spec": {"hosts": [host], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v3"}}]}]}}]
    res = generate(proxy_for(objs, "sleep"), build_push(objs), [TYPE_ROUTE])
    assert route_request(res, "reviews:9080", "/").cluster == cluster("v3")  # type: ignore[union-attr]


def test_zero_weight_destination_is_skipped() -> None:
    objs = bookinfo() + [{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                          "metadata": {"name": "r", "namespace": NS},
                          "spec": {"hosts": ["reviews"], "http": [{"route": [
                              {"destination": {"host": "reviews", "subset": "v2"}, "weight": 0},
                              {"destination": {"host": "reviews", "subset": "v3"}, "weight": 100}]}]}}]
    res = generate(proxy_for(objs, "sleep"), build_push(objs), [TYPE_ROUTE])
    assert route_request(res, "reviews:9080", "/").clusters == ((cluster("v3"), 100),)  # type: ignore[union-attr]


def test_destination_rule_in_client_namespace_wins() -> None:
    dr = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
          "spec": {"host": REVIEWS, "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}}}
    objs = bookinfo() + [dict(dr, metadata={"name": "a", "namespace": NS}),
                         {**dr, "metadata": {"name": "b", "namespace": "istio-system"},
                          "spec": {"host": REVIEWS, "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}}}]
    push = build_push(objs)
    mine = generate(proxy_for(objs, "sleep"), push, [TYPE_CLUSTER])
    assert as_dict(mine[TYPE_CLUSTER][cluster("")])["lb_policy"] == "RANDOM"

    def gateway_lb(objs: list[Obj]) -> str:  # ROUND_ROBIN is the enum's zero value: absent from the message
        gw = generate(proxy_for(objs, "istio-ingressgateway"), build_push(objs), [TYPE_CLUSTER])
        return str(as_dict(gw[TYPE_CLUSTER][cluster("")]).get("lb_policy", "ROUND_ROBIN"))
    # The gateway runs in the root namespace (istio-system): as in Istio, the service's namespace's rule comes
    # before the root's exported ones there (PushContext.destinationRule: a root-namespace proxy sees the root's
    # private rules first, then the service's namespace's exported rules, then the root's exported ones).
    assert gateway_lb(objs) == "RANDOM"
    # A rule the root namespace keeps to itself comes first for its own proxies ...
    private = [*bookinfo(), dict(dr, metadata={"name": "a", "namespace": NS}),
               {**dr, "metadata": {"name": "b", "namespace": "istio-system"},
                "spec": {"host": REVIEWS, "exportTo": ["."], "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}}}]
    assert gateway_lb(private) == "ROUND_ROBIN"
    # ... and applies to no one else.
    assert as_dict(generate(proxy_for(private, "sleep"), build_push(private), [TYPE_CLUSTER])[TYPE_CLUSTER][
        cluster("")])["lb_policy"] == "RANDOM"


def test_destination_rule_export_to() -> None:
    """Istio's exportTo on DestinationRules: a rule in the service's namespace reaches only the clients'
    namespaces it is exported to (`*`, the namespace's name), `.` keeps it to its own; a client's own namespace
    sees its rules exported to `.`, `*` or itself, not those exported elsewhere only."""
    other = "other"

    def rule(name: str, ns: str, lb: str, export: list[str] | None) -> Obj:
        spec: Obj = {"host": REVIEWS, "trafficPolicy": {"loadBalancer": {"simple": lb}}}
        if export is not None:
            spec["exportTo"] = export
        return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                "metadata": {"name": name, "namespace": ns}, "spec": spec}

    def lb(objs: list[Obj], pod: str) -> str:  # ROUND_ROBIN is the enum's zero value: absent from the message
        out = generate(proxy_for(objs, pod), build_push(objs), [TYPE_CLUSTER])
        return str(as_dict(out[TYPE_CLUSTER][cluster("")]).get("lb_policy", "ROUND_ROBIN"))
    base = [*bookinfo(), *client_namespace(other)]
    for export, seen_from_other in [(None, "RANDOM"), (["*"], "RANDOM"), (["."], "LEAST_REQUEST"),
                                    ([NS], "LEAST_REQUEST"), ([other], "RANDOM"), ([".", other], "RANDOM")]:
        objs = [*base, rule("r", NS, "RANDOM", export)]
        assert lb(objs, "curl") == seen_from_other, export
        assert lb(objs, "sleep") == ("LEAST_REQUEST" if export == [other] else "RANDOM"), export
    # The root namespace's exported rule is the fallback, for the namespaces it is exported to.
    objs = [*base, rule("r", NS, "RANDOM", ["."]), rule("root", "istio-system", "ROUND_ROBIN", [other])]
    assert (lb(objs, "curl"), lb(objs, "sleep")) == ("ROUND_ROBIN", "RANDOM")
    # A rule of the client's own namespace comes first, even when the service's namespace exports one to it.
    objs = [*base, rule("r", NS, "RANDOM", [other]), rule("mine", other, "ROUND_ROBIN", ["."])]
    assert lb(objs, "curl") == "ROUND_ROBIN"


def test_destination_rule_workload_selector_applies_to_the_workloads_it_selects() -> None:
    """Istio's DestinationRule `workloadSelector`: private to its namespace; there the workloads it selects use it
    ahead of the rule without one, the others that one, or none when only selecting rules name the host."""
    def rule(name: str, ns: str, lb: str, **more: Any) -> Obj:
        return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"host": REVIEWS, "trafficPolicy": {"loadBalancer": {"simple": lb}}, **more}}
    catch_all = rule("all", NS, "RANDOM")
    selecting = rule("for-productpage", NS, "ROUND_ROBIN", workloadSelector={"matchLabels": {"app": "productpage"}},
                     subsets=[{"name": "canary", "labels": {"version": "v3"}}])

    def lb(objs: list[Obj], pod: str) -> tuple[str, bool]:
        out = generate(proxy_for(objs, pod), build_push(objs), [TYPE_CLUSTER, TYPE_ENDPOINT])
        assert (cluster("canary") in out[TYPE_CLUSTER]) == (cluster("canary") in out[TYPE_ENDPOINT])
        # ROUND_ROBIN is the enum's zero value: absent from the message
        return (as_dict(out[TYPE_CLUSTER][cluster("")]).get("lb_policy", "ROUND_ROBIN"),
                cluster("canary") in out[TYPE_CLUSTER])

    objs = bookinfo() + [catch_all, selecting]
    assert lb(objs, "productpage-v1") == ("ROUND_ROBIN", True)
    # Istio 1.24 keeps rules whose exportTo differ apart (a selecting rule's is `.`, the catch-all's the default):
    # the other workloads get the catch-all alone, without the selecting rule's `canary` subset.
    assert lb(objs, "sleep") == ("RANDOM", False)
    assert lb(objs, "istio-ingressgateway") == ("RANDOM", False)  # another namespace: the selecting rule is private
    push = build_push(objs)
    pp = generate(proxy_for(objs, "productpage-v1"), push, [TYPE_ENDPOINT])
    canary = as_dict(pp[TYPE_ENDPOINT][cluster("canary")])
    assert [e["endpoint"]["address"]["socket_address"]["address"] for g in canary["endpoints"]
            for e in g["lb_endpoints"]] == ["127.1.0.6"]  # reviews-v3
    # Only a selecting rule names the host: the workloads it does not select get no rule (Istio's default policy).
    objs = bookinfo() + [selecting]
    assert lb(objs, "productpage-v1") == ("ROUND_ROBIN", True)
    assert lb(objs, "sleep") == ("LEAST_REQUEST", False)
    # Only selecting rules in the client's namespace, none selecting it: no rule, not the root namespace's either.
    root = rule("root", "istio-system", "RANDOM")
    objs = bookinfo() + [selecting, root]
    assert lb(objs, "sleep") == ("LEAST_REQUEST", False)
    assert lb(objs, "istio-ingressgateway") == ("RANDOM", False)  # in istio-system: the root rule


def test_selecting_and_catch_all_rules_merge_as_istio_does() -> None:
    """Istio 1.24's setDestinationRules and mergeDestinationRule, rules of one namespace: selecting rules first,
    then oldest first (istio/istio#49057); a rule is merged only into entries with its exportTo or whose exportTo
    its own contains (#52636), and not into those whose selector differs from its own. Two rules with the same
    selector become one, different selectors stay apart; a catch-all with the default exportTo stays apart from
    the selecting rules (theirs is `.`); one exported to `.` and beyond lends them its subsets and policy and stays
    an entry too; one exported to `.` alone is merged into them and, as in Istio, is no entry of its own."""
    def rule(name: str, created: str, selector: dict[str, str] | None, subsets: dict[str, str], **more: Any) -> Obj:
        spec: Obj = {"host": REVIEWS, "subsets": [{"name": n, "labels": {"version": v}} for n, v in subsets.items()],
                     **more}
        if selector is not None:
            spec["workloadSelector"] = {"matchLabels": selector}
        return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                "metadata": {"name": name, "namespace": NS, "creationTimestamp": created}, "spec": spec}
    pp = {"app": "productpage"}
    first = rule("first", "2026-01-01T00:00:00Z", pp, {"a": "v1"})
    same = rule("same", "2026-01-02T00:00:00Z", pp, {"b": "v2"})
    other = rule("other", "2026-01-03T00:00:00Z", {"app": "nobody"}, {"c": "v3"},
                 trafficPolicy={"loadBalancer": {"simple": "ROUND_ROBIN"}})
    late = rule("late", "2026-01-05T00:00:00Z", {"app": "nobody"}, {"e": "v1"})

    def catch_all(**more: Any) -> Obj:  # older than the selecting rules: they still come first
        return rule("all", "2025-12-01T00:00:00Z", None, {"d": "v3"}, trafficPolicy={"loadBalancer": {"simple": "RANDOM"}},
                    **more)

    def clusters_of(objs: list[Obj], pod: str) -> tuple[set[str], str]:
        out = generate(proxy_for(objs, pod), build_push(objs), [TYPE_CLUSTER])
        names = {n.split("|")[2] for n in out[TYPE_CLUSTER] if n.endswith(REVIEWS)} - {""}
        return names, as_dict(out[TYPE_CLUSTER][cluster("")]).get("lb_policy", "ROUND_ROBIN")

    objs = bookinfo() + [late, catch_all(), other, same, first]
    # productpage: `first` with `same` merged in, nothing of `other` and `late` (another selector) nor of the
    # catch-all (another exportTo): no traffic policy, so Istio's default
    assert clusters_of(objs, "productpage-v1") == ({"a", "b"}, "LEAST_REQUEST")
    assert clusters_of(objs, "sleep") == ({"d"}, "RANDOM")
    # exported to `.` and beyond: lends the selecting entries its subset and policy, and stays an entry
    objs = bookinfo() + [late, catch_all(exportTo=[".", "istio-system"]), other, same, first]
    assert clusters_of(objs, "productpage-v1") == ({"a", "b", "d"}, "RANDOM")
    assert clusters_of(objs, "sleep") == ({"d"}, "RANDOM")
    # exported to `.` alone: merged into the selecting entries, none of its own for the workloads they do not select
    objs = bookinfo() + [late, catch_all(exportTo=["."]), other, same, first]
    assert clusters_of(objs, "productpage-v1") == ({"a", "b", "d"}, "RANDOM")
    assert clusters_of(objs, "sleep") == (set(), "LEAST_REQUEST")


def test_rules_for_one_host_are_merged_as_istio_does() -> None:
    """The oldest rule wins what both set; the later one adds the subsets it names anew, and its traffic policy
    when the oldest has none (Istio's mergeDestinationRule)."""
    def rule(name: str, created: str, subsets: dict[str, str], **more: Any) -> Obj:
        return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                "metadata": {"name": name, "namespace": NS, "creationTimestamp": created},
                "spec": {"host": REVIEWS, "subsets": [{"name": n, "labels": {"version": v}} for n, v in subsets.items()],
                         **more}}
    older = rule("z-older", "2026-01-01T00:00:00Z", {"v1": "v1", "newest": "v2"})
    later = rule("a-later", "2026-02-01T00:00:00Z", {"newest": "v3", "v3": "v3"},
                 trafficPolicy={"loadBalancer": {"simple": "RANDOM"}})
    objs = bookinfo() + [later, older]
    out = generate(proxy_for(objs, "sleep"), build_push(objs), [TYPE_CLUSTER, TYPE_ENDPOINT])
    eds = {n: as_dict(m) for n, m in out[TYPE_ENDPOINT].items()}

    def addrs(name: str) -> list[str]:
        return [e["endpoint"]["address"]["socket_address"]["address"] for g in eds[name].get("endpoints", [])
                for e in g["lb_endpoints"]]

    assert {n for n in out[TYPE_CLUSTER] if n.endswith(REVIEWS)} == {
        cluster(s) for s in ("", "v1", "newest", "v3")}
    assert addrs(cluster("newest")) == ["127.1.0.5"]  # the older rule's `newest` (reviews-v2)
    assert addrs(cluster("v3")) == ["127.1.0.6"]
    assert as_dict(out[TYPE_CLUSTER][cluster("")])["lb_policy"] == "RANDOM"


def test_generate_types_and_sharing() -> None:
    objs = bookinfo()
    push = build_push(objs, MeshOptions())
    a = generate(proxy_for(objs, "reviews-v1"), push)
    b = generate(proxy_for(objs, "reviews-v2"), push)
    assert list(a) == list(ADS_ORDER)
    assert a[TYPE_ENDPOINT] is b[TYPE_ENDPOINT]  # built once per push and namespace
    only = generate(proxy_for(objs, "reviews-v1"), push, [TYPE_ROUTE])
    assert list(only) == [TYPE_ROUTE]
