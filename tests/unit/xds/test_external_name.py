"""ExternalName Services as current Istio programs them (resolution `Alias`): no listener, cluster or route of
their own; their names answer on the virtual hosts (and SNI matches) of the service their `externalName` is, and
a route to one goes to that service's cluster. Seen from a connection, through the listener and route
simulators."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from xds_scenarios import NS, build_push, load_scenario, proxy_for, scenario_objects

from sluice import mesh
from sluice.xds.translate import TYPE_CLUSTER, TYPE_LISTENER, TYPE_ROUTE, MeshOptions, Resources, generate
from sluice.xds.translate.push_context import Alias, ServicePort, resolve_aliases
from sluice.xds.translate.simulate import match_connection, route_request

Obj = dict[str, Any]
REVIEWS_VIP = "10.96.0.13"
NETNS = MeshOptions(network="netns")


def fqdn(name: str, namespace: str = NS) -> str:
    return mesh.fqdn(name, namespace)


def external_name(name: str, target: str, namespace: str = NS, port: int | None = None) -> Obj:
    spec: Obj = {"type": "ExternalName", "externalName": target}
    if port is not None:
        spec["ports"] = [{"name": "http", "port": port, "protocol": "TCP"}]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def bookinfo_with(*extra: Obj) -> tuple[list[Obj], Resources]:
    objects = scenario_objects(load_scenario("netns-bookinfo")) + list(extra)
    return objects, generate(proxy_for(objects, "productpage-v1"), build_push(objects, NETNS))


def test_an_alias_of_a_service_follows_its_routes_under_every_name() -> None:
    objects, res = bookinfo_with(external_name("critics", fqdn("reviews")),
                                 {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    split = ((mesh.outbound_cluster(9080, "v2", fqdn("reviews")), 90),
             (mesh.outbound_cluster(9080, "v3", fqdn("reviews")), 10))
    hop = match_connection(res, REVIEWS_VIP, 9080, http=True)
    assert hop is not None and hop.route_config == "9080"
    for authority in ("critics", "critics:9080", "critics.tutorial", "critics.tutorial.svc", fqdn("critics"),
                      f"{fqdn('critics')}:9080"):
        d = route_request(res, authority, "/reviews/0", route_config="9080")
        assert d is not None and (d.virtual_host, d.clusters) == (f"{fqdn('reviews')}:9080", split), authority
    assert not [n for n in (*res[TYPE_CLUSTER], *res[TYPE_LISTENER], *res[TYPE_ROUTE]) if "critics" in n]
    # the bare name is a short form for callers in the alias's own namespace only
    objects.append(_pod_in("other"))
    other = generate(proxy_for(objects, "curl"), build_push(objects, NETNS))
    d = route_request(other, "critics", "/", route_config="9080")
    assert d is not None and d.virtual_host == "allow_any"
    d = route_request(other, "critics.tutorial", "/", route_config="9080")
    assert d is not None and d.virtual_host == f"{fqdn('reviews')}:9080"


def _pod_in(namespace: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "curl-7d9c8b6f5-abcde", "namespace": namespace, "labels": {"app": "curl"}},
            "spec": {"containers": [{"name": "curl", "image": "curlimages/curl"},
                                    {"name": mesh.SIDECAR_CONTAINER, "image": mesh.PROXY_IMAGE}]},
            "status": {"podIP": "10.244.0.77", "phase": "Running"}}


def test_an_alias_of_a_service_entry_host_and_a_chain_of_aliases() -> None:
    entry = {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
             "metadata": {"name": "httpbin-ext", "namespace": NS},
             "spec": {"hosts": ["httpbin.example.org"], "resolution": "DNS", "location": "MESH_EXTERNAL",
                      "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}]}}
    _, res = bookinfo_with(entry, external_name("my-httpbin", "httpbin.example.org."),
                           external_name("my-httpbin-2", fqdn("my-httpbin")),
                           external_name("loop-a", fqdn("loop-b")), external_name("loop-b", fqdn("loop-a")))
    cluster = mesh.outbound_cluster(80, "", "httpbin.example.org")
    for authority in ("my-httpbin", "my-httpbin.tutorial.svc.cluster.local", "my-httpbin-2", "httpbin.example.org"):
        d = route_request(res, authority, "/headers", route_config="80")
        assert d is not None and d.cluster == cluster, authority
    for authority in ("loop-a", "loop-b"):  # a loop resolves to nothing: NXDOMAIN on Kubernetes
        d = route_request(res, authority, "/", route_config="80")
        assert d is not None and d.virtual_host == "allow_any", authority
    # an alias of a name the registry does not know is only the cluster DNS's CNAME: Istio passes it through
    _, res = bookinfo_with(external_name("elsewhere", "example.com", port=80))
    d = route_request(res, "elsewhere", "/", route_config="80")
    assert d is not None and (d.virtual_host, d.cluster) == ("allow_any", "PassthroughCluster")


def test_resolve_aliases_follows_chains_and_drops_loops() -> None:
    def alias(name: str, target: str) -> Alias:
        return Alias(name, NS, fqdn(name), target, (ServicePort("http", 80, 80, "HTTP"),))

    chains = resolve_aliases([alias("a", "svc.example"), alias("b", fqdn("a")), alias("x", fqdn("y")),
                              alias("y", fqdn("x"))])
    assert chains == {"svc.example": ((NS, fqdn("a")), (NS, fqdn("b")))}


def test_a_route_to_an_alias_goes_to_its_targets_cluster() -> None:
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "details", "namespace": NS},
          "spec": {"hosts": ["details"], "http": [{"route": [{"destination": {"host": "critics"}}]}]}}
    _, res = bookinfo_with(external_name("critics", fqdn("reviews"), port=9080), vs)
    d = route_request(res, "details", "/", route_config="9080")
    # the alias's one port picks the port, its target the cluster (Istio's GetDestinationCluster)
    assert d is not None and d.cluster == mesh.outbound_cluster(9080, "", fqdn("reviews"))


def test_an_alias_of_a_tls_host_without_addresses_matches_by_sni() -> None:
    entry = {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
             "metadata": {"name": "wikipedia", "namespace": NS},
             "spec": {"hosts": ["en.wikipedia.example"], "resolution": "NONE",
                      "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}]}}
    _, res = bookinfo_with(entry, external_name("my-wikipedia", "en.wikipedia.example"))
    listener = json_format.MessageToDict(res[TYPE_LISTENER]["0.0.0.0_443"], preserving_proto_field_name=True)
    chain = next(c for c in listener["filter_chains"] if c["name"] == mesh.outbound_cluster(443, "", "en.wikipedia.example"))
    assert chain["filter_chain_match"]["server_names"] == [
        "en.wikipedia.example", fqdn("my-wikipedia"), "my-wikipedia", "my-wikipedia.tutorial",
        "my-wikipedia.tutorial.svc"]
