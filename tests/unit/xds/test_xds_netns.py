"""netns mode (Istio's transparent capture) from a connection's point of view: where a captured
connection to `IP:port` lands (listener, filter chain) and where its request or bytes go, via the
listener simulator and the route simulator; plus what telemetry and the runtime rely on."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from xds_scenarios import NS, bookinfo, build_push, load_scenario, proxy_for, run_scenario, scenario_objects

from sluice import mesh
from sluice.xds.translate import (
    TYPE_CLUSTER,
    TYPE_ENDPOINT,
    TYPE_LISTENER,
    TYPE_ROUTE,
    MeshOptions,
    Resources,
    generate,
)
from sluice.xds.translate.simulate import Hop, match_connection, route_request

Obj = dict[str, Any]
REVIEWS_VIP = "10.96.0.13"


def fqdn(name: str) -> str:
    return mesh.fqdn(name, NS)


def as_dict(msg: Any) -> Obj:
    out: Obj = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    return out


def request(res: Resources, ip: str, port: int, authority: str, path: str = "/") -> tuple[Hop, Any]:
    hop = match_connection(res, ip, port, http=True)
    assert hop is not None and hop.route_config is not None, hop
    return hop, route_request(res, authority, path, route_config=hop.route_config)


def test_captured_request_to_the_cluster_ip_follows_the_90_10_split() -> None:
    res = run_scenario("netns-bookinfo")["productpage-v1"]
    for authority in ("reviews:9080", "reviews", "reviews.tutorial", "reviews.tutorial.svc:9080",
                      f"{fqdn('reviews')}:9080", REVIEWS_VIP, f"{REVIEWS_VIP}:9080"):
        hop, d = request(res, REVIEWS_VIP, 9080, authority, "/reviews/0")
        assert (hop.listener, hop.route_config) == ("0.0.0.0_9080", "9080")
        assert d is not None and d.clusters == ((mesh.outbound_cluster(9080, "v2", fqdn("reviews")), 90),
                                                (mesh.outbound_cluster(9080, "v3", fqdn("reviews")), 10)), authority


def test_what_no_service_claims_passes_through() -> None:
    res = run_scenario("netns-bookinfo")["productpage-v1"]
    # an HTTP port, a Host no service has: Istio's allow_any virtual host
    _, d = request(res, "93.184.216.34", 9080, "example.com")
    assert d is not None and (d.virtual_host, d.cluster) == ("allow_any", "PassthroughCluster")
    # an HTTP port, bytes that are not HTTP: the listener's PassthroughFilterChain
    assert match_connection(res, REVIEWS_VIP, 9080, http=False) == Hop(
        "0.0.0.0_9080", "PassthroughFilterChain", cluster="PassthroughCluster")
    # a port no service has: virtualOutbound's catch-all; and 15001 itself: the black hole
    assert match_connection(res, "1.2.3.4", 5555, http=True) == Hop(
        "virtualOutbound", "virtualOutbound-catchall-tcp", cluster="PassthroughCluster")
    assert match_connection(res, "127.0.0.1", 15001, http=False) == Hop(
        "virtualOutbound", "virtualOutbound-blackhole", cluster="BlackHoleCluster")
    passthrough = as_dict(res[TYPE_CLUSTER]["PassthroughCluster"])
    assert passthrough["type"] == "ORIGINAL_DST" and "original_dst_lb_config" not in passthrough


def test_tcp_sniffed_grpc_and_target_port_services_from_a_client() -> None:
    res = run_scenario("netns-protocols")["sleep"]
    for http in (True, False):  # a TCP port has no HTTP path, whatever the bytes
        hop = match_connection(res, "10.96.0.20", 3306, http=http)
        assert hop is not None and (hop.listener, hop.chain) == ("10.96.0.20_3306", "10.96.0.20_3306")
    web = mesh.outbound_cluster(8000, "", fqdn("web"))
    assert match_connection(res, "10.96.0.22", 8000, http=False) == Hop("10.96.0.22_8000", "10.96.0.22_8000",
                                                                        cluster=web)
    hop, d = request(res, "10.96.0.22", 8000, "anything-at-all")  # a sniffed port's table has one host: `*`
    assert hop.route_config == f"{fqdn('web')}:8000" and d is not None and d.cluster == web
    # httpbin shares port 8000 with web but not its VIP: the wildcard HTTP listener, chosen by Host
    hop, d = request(res, "10.96.0.23", 8000, "httpbin:8000")
    assert hop.listener == "0.0.0.0_8000" and d.cluster == mesh.outbound_cluster(8000, "", fqdn("httpbin"))
    hop, d = request(res, "10.96.0.21", 7070, "echo:7070", "/grpc.health.v1.Health/Check")
    echo = mesh.outbound_cluster(7070, "", fqdn("echo"))
    assert d.cluster == echo
    options = as_dict(res[TYPE_CLUSTER][echo])["typed_extension_protocol_options"]
    assert "http2_protocol_options" in str(options)
    assert "use_downstream_protocol_config" in str(as_dict(res[TYPE_CLUSTER][web]))


def test_inbound_chains_per_target_port() -> None:
    out = run_scenario("netns-inbound")

    def inbound(pod: str, port: int, http: bool) -> Hop | None:
        return match_connection(out[pod], "10.244.0.99", port, http=http, inbound=True)

    assert inbound("mysql-v1", 3306, http=False) == Hop("virtualInbound", "0.0.0.0_3306", cluster="inbound|3306||")
    # the named targetPort `grpc` is container port 17070: that is the inbound port, not the service's 7070
    assert inbound("echo-v1", 17070, http=True) == Hop("virtualInbound", "0.0.0.0_17070", cluster="inbound|17070||")
    assert inbound("echo-v1", 7070, http=True) == Hop("virtualInbound", "virtualInbound-catchall-http",
                                                      cluster="InboundPassthroughCluster")
    assert inbound("httpbin-v1", 80, http=True) == Hop("virtualInbound", "0.0.0.0_80", cluster="inbound|80||")
    # a sniffed port: HTTP and TCP chains, both to the port's inbound cluster
    assert inbound("web-v1", 8000, http=True) == inbound("web-v1", 8000, http=False) == Hop(
        "virtualInbound", "0.0.0.0_8000", cluster="inbound|8000||")
    assert inbound("web-v1", 5555, http=False) == Hop("virtualInbound", "virtualInbound",
                                                      cluster="InboundPassthroughCluster")
    assert inbound("web-v1", 15006, http=True) == Hop("virtualInbound", "virtualInbound-blackhole",
                                                      cluster="BlackHoleCluster")
    for pod, port in (("mysql-v1", 3306), ("echo-v1", 17070), ("web-v1", 8000), ("httpbin-v1", 80)):
        c = as_dict(out[pod][TYPE_CLUSTER][f"inbound|{port}||"])
        assert c["type"] == "ORIGINAL_DST" and c["lb_policy"] == "CLUSTER_PROVIDED"
        assert c["upstream_bind_config"]["source_address"]["address"] == "127.0.0.6"


def test_http_inspector_runs_only_where_the_protocol_is_not_declared() -> None:
    out = run_scenario("netns-inbound")
    for pod, disabled in (("web-v1", [15006]), ("httpbin-v1", [80, 15006]), ("mysql-v1", [3306, 15006])):
        [original_dst, inspector] = as_dict(out[pod][TYPE_LISTENER]["virtualInbound"])["listener_filters"]
        assert original_dst["name"] == "envoy.filters.listener.original_dst"
        pred = inspector["filter_disabled"]
        rules = pred["or_match"]["rules"] if "or_match" in pred else [pred]
        assert [int(r["destination_port_range"]["start"]) for r in rules] == disabled, pod


def test_every_proxy_filter_reports_to_als_over_the_unix_socket() -> None:
    res = run_scenario("netns-telemetry")["ratings-v1"]
    als = as_dict(res[TYPE_CLUSTER]["envoy_accesslog_service"])
    assert als["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "pipe": {"path": "/run/sluice/als.sock"}}
    seen = {"http": 0, "tcp": 0}
    for listener in res[TYPE_LISTENER].values():
        d = as_dict(listener)
        for chain in [*d.get("filter_chains", []), *([d["default_filter_chain"]] if "default_filter_chain" in d else [])]:
            config = chain["filters"][0]["typed_config"]
            loggers = [log["typed_config"]["@type"].rsplit(".", 1)[-1] for log in config["access_log"]]
            if config.get("cluster") == "BlackHoleCluster":
                assert loggers == ["FileAccessLog"]  # no metrics for it, but Istio's log line
                continue
            if "HttpConnectionManager" in config["@type"]:
                assert loggers == ["FileAccessLog", "HttpGrpcAccessLogConfig"], (d["name"], chain.get("name"))
                seen["http"] += 1
            else:
                # Istio's TEXT line when the connection ends (not also when it opens, as the ALS entries)
                assert loggers == ["FileAccessLog", "TcpGrpcAccessLogConfig"], (d["name"], chain.get("name"))
                assert config["access_log"][0]["filter"] == {"log_type_filter": {"types": ["TcpConnectionEnd"]}}
                assert config["access_log_options"]["flush_access_log_on_connected"] is True
                seen["tcp"] += 1
    # outbound: 0.0.0.0_80, 0.0.0.0_9080 (+ their passthrough), mongodb's VIP, virtualOutbound's catch-all;
    # inbound: the passthrough chains and 0.0.0.0_9080
    assert seen == {"http": 4, "tcp": 5}


def test_reserved_ports_and_headless_services() -> None:
    objects = bookinfo(netns=True) + [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "odd", "namespace": NS},
         "spec": {"clusterIP": "10.96.0.40", "selector": {"app": "odd"},
                  "ports": [{"name": "http", "port": 15021}, {"name": "tcp", "port": 15006}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hl", "namespace": NS},
         "spec": {"clusterIP": "None", "selector": {"app": "hl"},
                  "ports": [{"name": "http", "port": 9080}, {"name": "tcp", "port": 5432}]}},
    ]
    push = build_push(objects, MeshOptions(network="netns"))
    res = generate(proxy_for(objects, "productpage-v1"), push)
    names = set(res[TYPE_LISTENER])
    # Istio skips service listeners that collide with its own (15001, 15006, 15021, 15090)
    assert not {"0.0.0.0_15021", "10.96.0.40_15006", "0.0.0.0_15006"} & names
    assert "15021" not in res[TYPE_ROUTE]
    # a headless HTTP port shares 0.0.0.0_<port> (no ClusterIP among its domains); its TCP port gets no listener
    hl = next(v for v in as_dict(res[TYPE_ROUTE]["9080"])["virtual_hosts"] if v["name"].startswith("hl."))
    assert "hl:9080" in hl["domains"] and not any(d[0].isdigit() for d in hl["domains"])
    assert not any(n.endswith("_5432") for n in names)


def test_loopback_stays_the_default_and_ignores_host_netns() -> None:
    assert MeshOptions().network == "loopback"
    objects = bookinfo()
    push = build_push(objects, MeshOptions(host_netns="/run/netns/host"))
    res = generate(proxy_for(objects, "productpage-v1"), push)
    assert sorted(res[TYPE_LISTENER]) == ["127.1.0.7_15001", "127.1.0.7_9080"]
    assert list(res[TYPE_ROUTE]) == ["http_proxy"]
    with_gateway = scenario_objects(load_scenario("gateway"))
    gw = generate(proxy_for(with_gateway, "istio-ingressgateway"), build_push(with_gateway, MeshOptions(
        host_netns="/run/netns/host")))
    # 127.0.0.1 at the Service port, and the pod's own IP at its targetPort (where the Service's endpoints point)
    ip = proxy_for(with_gateway, "istio-ingressgateway").ip
    assert list(gw[TYPE_LISTENER]) == ["0.0.0.0_8080", f"{ip}_8080"]
    assert as_dict(gw[TYPE_LISTENER][f"{ip}_8080"])["address"]["socket_address"] == {"address": ip, "port_value": 8080}
    assert "network_namespace_filepath" not in str([as_dict(m) for m in gw[TYPE_LISTENER].values()])


def test_ingress_gateway_listens_in_its_pod_and_on_the_host() -> None:
    """netns mode: Istio's gateway listener in the pod at the Service's targetPort (pods reach it through the
    Service, as on Kubernetes), and the same on the host's 127.0.0.1 at the Service's port."""
    scenario = load_scenario("netns-gateway")
    objects = scenario_objects(scenario)
    push = build_push(objects, MeshOptions(network="netns", host_netns="/run/netns/sluice-host"))
    gw = generate(proxy_for(objects, "istio-ingressgateway"), push)
    assert sorted(gw[TYPE_LISTENER]) == ["0.0.0.0_8080", "127.0.0.1_80"]
    pod, host = (as_dict(gw[TYPE_LISTENER][n]) for n in ("0.0.0.0_8080", "127.0.0.1_80"))
    assert pod["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 8080}
    assert host["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 80,
                                                  "network_namespace_filepath": "/run/netns/sluice-host"}
    for listener in (pod, host):
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        assert hcm["rds"]["route_config_name"] == "http.80"
    d = route_request(gw, "anything", "/productpage", route_config="http.80")
    assert d is not None and d.cluster == mesh.outbound_cluster(9080, "", fqdn("productpage"))
    # a pod's request to the gateway Service goes to the gateway pod's 8080 through its sidecar
    res = generate(proxy_for(objects, "productpage-v1"), push)
    gateway_cluster = mesh.outbound_cluster(80, "", "istio-ingressgateway.istio-system.svc.cluster.local")
    _, d = request(res, "10.96.0.50", 80, "istio-ingressgateway.istio-system")
    assert d is not None and d.cluster == gateway_cluster
    eds = as_dict(res[TYPE_ENDPOINT][gateway_cluster])
    assert [e["endpoint"]["address"]["socket_address"] for e in eds["endpoints"][0]["lb_endpoints"]] == [
        {"address": "10.244.0.9", "port_value": 8080}]
    # without the host's namespace (nowhere to open the host listeners), the pod's only
    alone = generate(proxy_for(objects, "istio-ingressgateway"), build_push(objects, MeshOptions(network="netns")))
    assert sorted(alone[TYPE_LISTENER]) == ["0.0.0.0_8080"]


def test_a_service_entry_naming_a_service_of_another_namespace_wins_in_its_own() -> None:
    """Istio's egress TLS origination task: a ServiceEntry in the client's namespace names a Kubernetes Service's
    host in another; each proxy sees its own namespace's first. In the Service's own namespace the Service wins."""
    host = fqdn("reviews")

    def entry(namespace: str) -> Obj:
        return {"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                "metadata": {"name": "reviews-tls", "namespace": namespace},
                "spec": {"hosts": [host], "resolution": "DNS", "ports": [
                    {"number": 80, "name": "http", "protocol": "HTTP", "targetPort": 9443}]}}

    objects = bookinfo(netns=True) + [entry("istio-system"), entry(NS)]
    push = build_push(objects, MeshOptions(network="netns"))
    gateway = generate(proxy_for(objects, "istio-ingressgateway"), push)[TYPE_CLUSTER]
    mine = as_dict(gateway[mesh.outbound_cluster(80, "", host)])
    assert mine["type"] == "STRICT_DNS" and mesh.outbound_cluster(9080, "", host) not in gateway
    assert mine["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"] == {
        "address": host, "port_value": 9443}
    local = generate(proxy_for(objects, "productpage-v1"), push)[TYPE_CLUSTER]
    assert as_dict(local[mesh.outbound_cluster(9080, "", host)])["type"] == "EDS"
    assert mesh.outbound_cluster(80, "", host) not in local


def test_unnamed_well_known_server_first_ports_are_tcp_not_sniffed() -> None:
    objects = bookinfo(netns=True) + [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": NS},
         "spec": {"clusterIP": "10.96.0.41", "selector": {"app": "db"}, "ports": [{"port": 3306}, {"port": 8000}]}}]
    res = generate(proxy_for(objects, "productpage-v1"), build_push(objects, MeshOptions(network="netns")))
    mysql = as_dict(res[TYPE_LISTENER]["10.96.0.41_3306"])
    assert "listener_filters" not in mysql and "default_filter_chain" not in mysql  # no inspector to wait on
    sniffed = as_dict(res[TYPE_LISTENER]["10.96.0.41_8000"])
    assert sniffed["listener_filters"][0]["name"] == "envoy.filters.listener.http_inspector"


def test_tcp_virtual_service_splits_a_tcp_port_between_subsets() -> None:
    scenario = load_scenario("netns-protocols")
    objects = scenario_objects(scenario) + [
        {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
         "metadata": {"name": "mysql", "namespace": NS},
         "spec": {"host": "mysql", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                               {"name": "v2", "labels": {"version": "v2"}}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "mysql", "namespace": NS},
         "spec": {"hosts": ["mysql"], "tcp": [
             {"match": [{"port": 9999}], "route": [{"destination": {"host": "mysql", "subset": "v2"}}]},
             {"match": [{"port": 3306}], "route": [
                 {"destination": {"host": "mysql", "subset": "v1"}, "weight": 75},
                 {"destination": {"host": "mysql", "subset": "v2"}, "weight": 25}]}]}},
    ]
    res = generate(proxy_for(objects, "sleep"), build_push(objects, MeshOptions(network="netns")))
    tcp = as_dict(res[TYPE_LISTENER]["10.96.0.20_3306"])["filter_chains"][0]["filters"][0]["typed_config"]
    assert tcp["weighted_clusters"]["clusters"] == [
        {"name": mesh.outbound_cluster(3306, "v1", fqdn("mysql")), "weight": 75},
        {"name": mesh.outbound_cluster(3306, "v2", fqdn("mysql")), "weight": 25}]
    assert {c["name"] for c in tcp["weighted_clusters"]["clusters"]} <= set(res[TYPE_CLUSTER])


def test_netns_snapshots_have_no_dangling_references() -> None:
    from sluice.xds.cache import Snapshot

    for scenario in ("netns-bookinfo", "netns-protocols", "netns-inbound", "netns-telemetry", "netns-gateway",
                     "netns-tcp-tls"):
        for proxy, res in run_scenario(scenario).items():
            assert Snapshot.build(res, None).consistent() == [], (scenario, proxy)


def test_replicas_share_outbound_listeners_but_not_virtual_inbound() -> None:
    objects = bookinfo(netns=True)
    replica = next(o for o in objects if o["kind"] == "Pod" and o["metadata"]["name"].startswith("reviews-v1"))
    twin = {**replica, "metadata": {**replica["metadata"], "name": "reviews-v1-5d8f9c7b6-fghij"},
            "status": {**replica["status"], "podIP": "10.244.0.44"}}
    objects.append(twin)
    push = build_push(objects, MeshOptions(network="netns"))
    a = generate(proxy_for(objects, "reviews-v1-5d8f9c7b6-abcde"), push)[TYPE_LISTENER]
    b = generate(proxy_for(objects, "reviews-v1-5d8f9c7b6-fghij"), push)[TYPE_LISTENER]
    other = generate(proxy_for(objects, "reviews-v2"), push)[TYPE_LISTENER]
    # Built once for the twins; equal content is one shared message anyway (parsed messages are memoised).
    assert list(a) == list(b) and a["0.0.0.0_9080"] is b["0.0.0.0_9080"]
    assert "0.0.0.0_9080" in other and "virtualInbound" in a and "virtualInbound" in b


def test_headless_service_keeps_the_pod_the_app_dialled() -> None:
    out = run_scenario("netns-headless")
    pg = {port: mesh.outbound_cluster(port, "", fqdn("pg")) for port in (5432, 7000, 8080)}
    sleep = out["sleep"]
    assert match_connection(sleep, "10.244.0.51", 5432, http=False) == Hop(
        "10.244.0.51_5432", "10.244.0.51_5432", cluster=pg[5432])
    hop, d = request(sleep, "10.244.0.50", 7000, "pg-0.pg:7000")  # unnamed: sniffed, per pod
    assert hop.listener == "10.244.0.50_7000" and d is not None and d.cluster == pg[7000]
    hop, d = request(sleep, "10.244.0.50", 8080, "pg-0.pg.tutorial.svc.cluster.local:8080")
    assert hop.listener == "0.0.0.0_8080" and d is not None and d.cluster == pg[8080]
    for name in pg.values():
        c = as_dict(sleep[TYPE_CLUSTER][name])
        assert (c["type"], c["lb_policy"]) == ("ORIGINAL_DST", "CLUSTER_PROVIDED") and "eds_cluster_config" not in c
        assert name not in sleep[TYPE_ENDPOINT]
    # pg-0's app calling its own IP is not captured: its sidecar has listeners for pg-1 only
    assert sorted(n for n in out["pg-0"][TYPE_LISTENER] if n.startswith("10.244.0.5")) == [
        "10.244.0.51_5432", "10.244.0.51_7000"]

