"""The Sidecar resource as Istio's SidecarScope applies it, seen from a connection (listener and route
simulators) and in what a proxy is sent: which Sidecar scopes a proxy, what its egress hosts let it see, and its
outbound traffic policy."""

from __future__ import annotations

from typing import Any

from xds_scenarios import NS, build_push, load_scenario, proxy_for, scenario_objects

from sluice import mesh
from sluice.validation.istio import validate
from sluice.xds.translate import TYPE_CLUSTER, TYPE_ENDPOINT, TYPE_LISTENER, MeshOptions, Resources, generate
from sluice.xds.translate.simulate import match_connection, route_request

Obj = dict[str, Any]
NETNS = MeshOptions(network="netns")
OTHER_VIP = "10.96.0.60"


def sidecar(namespace: str, hosts: list[str] | None = None, *, name: str = "default", mode: str | None = None,
            selector: dict[str, str] | None = None) -> Obj:
    spec: Obj = {}
    if hosts is not None:
        spec["egress"] = [{"hosts": hosts}]
    if mode is not None:
        spec["outboundTrafficPolicy"] = {"mode": mode}
    if selector is not None:
        spec["workloadSelector"] = {"labels": selector}
    return {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def other_namespace() -> list[Obj]:
    """Namespace `other`: httpbin (a Service and its pod) and a client pod with a sidecar."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "httpbin", "namespace": "other"},
         "spec": {"clusterIP": OTHER_VIP, "selector": {"app": "httpbin"},
                  "ports": [{"name": "http", "port": 8000, "targetPort": 80}]}},
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "httpbin", "namespace": "other"},
         "subsets": [{"addresses": [{"ip": "10.244.0.61"}], "ports": [{"name": "http", "port": 80}]}]},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "curl-7d9c8b6f5-abcde", "namespace": "other", "labels": {"app": "curl"}},
         "spec": {"containers": [{"name": "curl", "image": "curlimages/curl"},
                                 {"name": mesh.SIDECAR_CONTAINER, "image": mesh.PROXY_IMAGE}]},
         "status": {"podIP": "10.244.0.77", "phase": "Running"}},
    ]


def generated(*extra: Obj, proxy: str = "productpage-v1") -> Resources:
    objects = scenario_objects(load_scenario("netns-bookinfo")) + other_namespace() + list(extra)
    return generate(proxy_for(objects, proxy), build_push(objects, NETNS))


def httpbin_cluster() -> str:
    return mesh.outbound_cluster(8000, "", mesh.fqdn("httpbin", "other"))


def test_egress_hosts_limit_what_a_sidecar_sees_and_the_rest_passes_through() -> None:
    open_ = generated()
    assert httpbin_cluster() in open_[TYPE_CLUSTER] and httpbin_cluster() in open_[TYPE_ENDPOINT]
    d = route_request(open_, "httpbin.other:8000", "/", route_config="8000")
    assert d is not None and d.cluster == httpbin_cluster()

    scoped = generated(sidecar(NS, ["./*", "istio-system/*"]))
    assert httpbin_cluster() not in scoped[TYPE_CLUSTER] and httpbin_cluster() not in scoped[TYPE_ENDPOINT]
    assert "0.0.0.0_8000" not in scoped[TYPE_LISTENER]  # no service it sees has the port
    hop = match_connection(scoped, OTHER_VIP, 8000, http=True)
    assert hop is not None and (hop.listener, hop.cluster) == ("virtualOutbound", "PassthroughCluster")
    # its own namespace's services and routes are untouched
    d = route_request(scoped, "reviews:9080", "/", route_config="9080")
    assert d is not None and d.virtual_host == f"{mesh.fqdn('reviews', NS)}:9080" and len(d.clusters) == 2


def test_registry_only_on_the_sidecar_blocks_what_it_does_not_see() -> None:
    res = generated(sidecar(NS, ["./*"], mode="REGISTRY_ONLY"))
    hop = match_connection(res, OTHER_VIP, 8000, http=True)
    assert hop is not None and (hop.listener, hop.cluster) == ("virtualOutbound", "BlackHoleCluster")
    d = route_request(res, "example.com", "/", route_config="9080")
    assert d is not None and d.virtual_host == "block_all"
    # the mesh's policy (ALLOW_ANY) still holds for the sidecars the Sidecar does not scope
    other = generated(sidecar(NS, ["./*"], mode="REGISTRY_ONLY"), proxy="curl")
    d = route_request(other, "example.com", "/", route_config="8000")
    assert d is not None and d.virtual_host == "allow_any"
    # and an outboundTrafficPolicy alone keeps every host in sight
    res = generated(sidecar(NS, mode="REGISTRY_ONLY"))
    assert httpbin_cluster() in res[TYPE_CLUSTER]
    assert route_request(res, "example.com", "/", route_config="9080").virtual_host == "block_all"  # type: ignore[union-attr]


def test_which_sidecar_scopes_a_proxy() -> None:
    root = sidecar("istio-system", ["./*"])  # the mesh's default: `.` is each proxy's own namespace
    res = generated(root, proxy="curl")
    assert httpbin_cluster() in res[TYPE_CLUSTER]
    assert mesh.outbound_cluster(9080, "", mesh.fqdn("reviews", NS)) not in res[TYPE_CLUSTER]
    # the namespace's own default beats the root's, and a selecting one beats both
    own = sidecar(NS, ["*/*"])
    picky = sidecar(NS, ["other/*"], name="productpage", selector={"app": "productpage"})
    res = generated(root, own, picky)
    assert httpbin_cluster() in res[TYPE_CLUSTER]
    assert mesh.outbound_cluster(9080, "", mesh.fqdn("reviews", NS)) not in res[TYPE_CLUSTER]
    res = generated(root, own, picky, proxy="reviews-v2")
    assert httpbin_cluster() in res[TYPE_CLUSTER] and mesh.outbound_cluster(9080, "", mesh.fqdn("ratings", NS)) in \
        res[TYPE_CLUSTER]


def test_a_virtual_service_the_egress_hosts_leave_out_does_not_route() -> None:
    abort = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
             "metadata": {"name": "ratings-abort", "namespace": "other"},
             "spec": {"hosts": [mesh.fqdn("ratings", NS)], "http": [
                 {"fault": {"abort": {"httpStatus": 500, "percentage": {"value": 100}}},
                  "route": [{"destination": {"host": mesh.fqdn("ratings", NS)}}]}]}}
    scoped = route_request(generated(abort, sidecar(NS, ["./*"])), "ratings:9080", "/", route_config="9080")
    assert scoped is not None and scoped.virtual_host == f"{mesh.fqdn('ratings', NS)}:9080"
    assert _fault(generated(abort), "ratings") and not _fault(generated(abort, sidecar(NS, ["./*"])), "ratings")


def _fault(res: Resources, service: str) -> bool:
    from google.protobuf import json_format

    from sluice.xds.translate import TYPE_ROUTE
    table = json_format.MessageToDict(res[TYPE_ROUTE]["9080"], preserving_proto_field_name=True)
    vhost = next(v for v in table["virtual_hosts"] if v["name"] == f"{mesh.fqdn(service, NS)}:9080")
    return any("fault" in str(r.get("typed_per_filter_config", {})) for r in vhost["routes"])


def errors(spec: Obj) -> list[str]:
    obj = {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar", "metadata": {"name": "s", "namespace": NS},
           "spec": spec}
    return [str(e) for e in validate("Sidecar", obj).errors]


def test_istios_sidecar_validation() -> None:
    assert errors({}) == ['spec: Invalid value: "{}": sidecar: empty configuration provided']
    assert errors({"egress": [{"hosts": ["./*", "istio-system/*"]}], "outboundTrafficPolicy": {"mode": "ALLOW_ANY"}}) == []
    assert errors({"egress": [{"hosts": ["reviews"]}]}) == [
        'spec.egress[0].hosts[0]: Invalid value: "reviews": host must be of form namespace/dnsName']
    assert errors({"egress": [{"hosts": ["./reviews"]}]}) == [
        'spec.egress[0].hosts[0]: Invalid value: "./reviews": short names (non FQDN) are not allowed']
    assert errors({"egress": [{"hosts": []}]}) == [
        "spec.egress[0].hosts: Required value: sidecar: egress listener must contain at least one host"]
    assert errors({"egress": [{"hosts": ["./*"]}, {"port": {"number": 80, "protocol": "HTTP"}, "hosts": ["./*"]}]}) == [
        'spec.egress[0]: Invalid value: "{}": sidecar: the egress listener with empty port should be the last '
        "listener in the list"]
    assert errors({"outboundTrafficPolicy": {"mode": "ALLOW_ANY_DYNAMIC_DNS"}}) == [
        'spec.outboundTrafficPolicy.mode: Invalid value: "ALLOW_ANY_DYNAMIC_DNS": sidecar: ALLOW_ANY_DYNAMIC_DNS '
        "mode is only supported in MeshConfig, not in Sidecar resource"]
    assert errors({"ingress": [{"defaultEndpoint": "127.0.0.1:8080"}]}) == [
        "spec.ingress[0].port: Required value: sidecar: port is required for ingress listeners"]
    assert errors({"ingress": [{"port": {"number": 9080, "protocol": "HTTP", "name": "http"},
                                "defaultEndpoint": "10.0.0.1:8080"}]}) == [
        'spec.ingress[0].defaultEndpoint: Invalid value: "10.0.0.1:8080": sidecar: defaultEndpoint must be of form '
        "127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset"]
    warned = validate("Sidecar", {"metadata": {"name": "s", "namespace": NS},
                                  "spec": {"workloadSelector": {}, "outboundTrafficPolicy": {}}})
    assert warned.errors == [] and warned.warnings == [
        "sidecar: workload selector specified without labels, will be applied to all services in namespace"]
    warned = validate("Sidecar", {"metadata": {"name": "s", "namespace": NS},
                                  "spec": {"egress": [{"hosts": ["*/*", "./*"]}]}})
    assert warned.errors == [] and warned.warnings == ["`*/*` host select all resources, no other hosts can be added"]
    warned = validate("Sidecar", {"metadata": {"name": "s", "namespace": NS},
                                  "spec": {"egress": [{"hosts": [f"{NS}/*", "./*"]}]}})
    assert warned.errors == [] and warned.warnings == ["duplicated egress host: ./*"]


def test_the_destinations_of_the_virtual_services_it_selects_come_along() -> None:
    to_httpbin = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                  "metadata": {"name": "details", "namespace": NS},
                  "spec": {"hosts": ["details"], "http": [
                      {"route": [{"destination": {"host": "httpbin.other.svc.cluster.local", "port": {"number": 8000}}}]}]}}
    res = generated(sidecar(NS, ["./*"]), to_httpbin)
    assert httpbin_cluster() in res[TYPE_CLUSTER] and httpbin_cluster() in res[TYPE_ENDPOINT]
    d = route_request(res, "details:9080", "/", route_config="9080")
    assert d is not None and d.cluster == httpbin_cluster()
