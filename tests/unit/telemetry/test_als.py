"""The ALS servicer over hand-built access-log messages: exact Istio label sets and values per reporter.

A real SQLite store holds the pods and Services (as the controllers would write them); the collector's
informers index them; the servicer's handler is called with a fake request stream, as grpc.aio would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.accesslog.v3 import als_pb2
from google.protobuf import json_format

from sluice import mesh
from sluice.store.sqlite import Store
from sluice.telemetry import ISTIO_LABELS, TARGET_LABELS, TCP_LABELS, Collector, TelemetryOptions
from sluice.xds.bootstrap import proxy_bootstrap

NS = "tutorial"
PRODUCTPAGE_IP, REVIEWS_IP, OUTSIDER_IP, GATEWAY_IP = "127.1.0.10", "127.1.0.20", "127.1.0.30", "127.1.0.40"
REVIEWS_FQDN = mesh.fqdn("reviews", NS)


def _pod(name: str, rs: str, ip: str, labels: dict[str, str], *, sa: str = "default", sidecar: bool = True,
         ns: str = NS, ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    containers: list[dict[str, Any]] = [{"name": "app", "image": "x", "ports": ports or []}]
    if sidecar:
        containers.append({"name": mesh.SIDECAR_CONTAINER, "image": mesh.PROXY_IMAGE, "args": ["proxy", "sidecar"]})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels,
                         "ownerReferences": [{"kind": "ReplicaSet", "name": rs, "controller": True}]},
            "spec": {"serviceAccountName": sa, "containers": containers},
            "status": {"phase": "Running", "podIP": ip}}


def _canonical(app: str, version: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    labels = {"app": app, "version": version, "pod-template-hash": "5f7c9b4d8",
              "service.istio.io/canonical-name": app, "service.istio.io/canonical-revision": version}
    labels.update(extra or {})
    return labels


PRODUCTPAGE = _pod("productpage-v1-5f7c9b4d8-x2x7k", "productpage-v1-5f7c9b4d8", PRODUCTPAGE_IP,
                   _canonical("productpage", "v1"), sa="bookinfo-productpage")
REVIEWS = _pod("reviews-v2-5f7c9b4d8-abcde", "reviews-v2-5f7c9b4d8", REVIEWS_IP, _canonical("reviews", "v2"),
               sa="bookinfo-reviews", ports=[{"name": "http", "containerPort": 9080}])
OUTSIDER = _pod("outsider-5f7c9b4d8-zzzzz", "outsider-5f7c9b4d8", OUTSIDER_IP, {"app": "outsider"}, sidecar=False)
GATEWAY = _pod("istio-ingressgateway-5f7c9b4d8-ggggg", "istio-ingressgateway-5f7c9b4d8", GATEWAY_IP,
               {"istio": "ingressgateway", "app": "istio-ingressgateway", "pod-template-hash": "5f7c9b4d8",
                "service.istio.io/canonical-name": "istio-ingressgateway",
                "service.istio.io/canonical-revision": "latest"}, sa="istio-ingressgateway-service-account",
               ns="istio-system", sidecar=False)


def _service(name: str, target: int | str = 9080) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 9080, "targetPort": target}]}}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "store.db")
    for p in (PRODUCTPAGE, REVIEWS, OUTSIDER, GATEWAY):
        s.create("pods", p)
    s.create("services", _service("reviews", "http"))  # a named targetPort, resolved through the pod
    s.create("services", _service("productpage"))
    yield s
    s.close()


async def _collector(store: Store, **kw: Any) -> Collector:
    c = Collector(store, **kw)
    await c.start()
    return c


@pytest.fixture
async def collector(store: Store) -> AsyncIterator[Collector]:
    c = await _collector(store)
    yield c
    await c.stop()


def node_of(pod: dict[str, Any], kind: str = "sidecar") -> base_pb2.Node:
    meta = pod["metadata"]
    ip = pod["status"]["podIP"]
    node_id = (mesh.sidecar_node_id if kind == "sidecar" else mesh.router_node_id)(ip, meta["name"], meta["namespace"])
    boot = proxy_bootstrap(node_id=node_id, pod=pod, pod_ip=ip, xds_address=("127.0.0.1", 15010),
                           admin_address=(ip, 15000), cluster="x")
    return json_format.ParseDict(boot["node"], base_pb2.Node())


def _addr(ip: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": ip, "port_value": port}}


def http_entry(*, cluster: str = "", upstream: tuple[str, int] | None = None, downstream: tuple[str, int],
               local: tuple[str, int], code: int = 200, authority: str = "reviews:9080", flags: dict[str, Any] | None = None,
               duration_ms: float = 3.2, rx: int = 120, tx: int = 340, request_headers: dict[str, str] | None = None,
               response_trailers: dict[str, str] | None = None) -> dict[str, Any]:
    common: dict[str, Any] = {
        "downstream_remote_address": _addr(*downstream), "downstream_local_address": _addr(*local),
        "duration": f"{duration_ms / 1000:.9f}s", "time_to_last_downstream_tx_byte": f"{duration_ms / 1000:.9f}s",
        "downstream_wire_bytes_received": rx, "downstream_wire_bytes_sent": tx, "route_name": "default"}
    if cluster:
        common["upstream_cluster"] = cluster
    if upstream:
        common["upstream_remote_address"] = _addr(*upstream)
    if flags:
        common["response_flags"] = flags
    entry: dict[str, Any] = {
        "common_properties": common, "protocol_version": "HTTP11",
        "request": {"authority": authority, "path": "/reviews/0", "request_method": "GET",
                    "request_headers_bytes": 100, "request_body_bytes": 0,
                    "request_headers": request_headers or {}},
        "response": {"response_code": code, "response_headers_bytes": 90, "response_body_bytes": 250,
                     "response_trailers": response_trailers or {}}}
    return entry


def outbound(**kw: Any) -> dict[str, Any]:
    """An entry of productpage's outbound HTTP proxy, routed to reviews-v2."""
    args: dict[str, Any] = {"cluster": mesh.outbound_cluster(9080, "v2", REVIEWS_FQDN), "upstream": (REVIEWS_IP, 9080),
                            "downstream": (mesh.app_ip(PRODUCTPAGE_IP), 40000),
                            "local": (PRODUCTPAGE_IP, mesh.PROXY_OUTBOUND_PORT)}
    args.update(kw)
    return http_entry(**args)


def inbound(peer: str = PRODUCTPAGE_IP, **kw: Any) -> dict[str, Any]:
    """An entry of reviews-v2's inbound listener."""
    args: dict[str, Any] = {"cluster": mesh.inbound_cluster(9080), "upstream": (mesh.app_ip(REVIEWS_IP), 9080),
                            "downstream": (peer, 41000), "local": (REVIEWS_IP, 9080)}
    args.update(kw)
    return http_entry(**args)


def message(entries: list[dict[str, Any]], node: base_pb2.Node | None = None, tcp: bool = False
            ) -> als_pb2.StreamAccessLogsMessage:
    msg = als_pb2.StreamAccessLogsMessage()
    if node is not None:
        msg.identifier.node.CopyFrom(node)
        msg.identifier.log_name = "http_envoy_accesslog"
    for e in entries:
        if tcp:
            json_format.ParseDict(e, msg.tcp_logs.log_entry.add())
        else:
            json_format.ParseDict(e, msg.http_logs.log_entry.add())
    return msg


async def stream(c: Collector, node: base_pb2.Node | None, *batches: list[dict[str, Any]], tcp: bool = False) -> None:
    """One ALS stream: the identifier rides on the first message only, as Envoy sends it."""
    async def requests() -> AsyncIterator[als_pb2.StreamAccessLogsMessage]:
        for i, batch in enumerate(batches):
            yield message(batch, node if i == 0 else None, tcp=tcp)
            await asyncio.sleep(0)

    resp = await c.servicer.StreamAccessLogs(requests(), None)
    assert isinstance(resp, als_pb2.StreamAccessLogsResponse)


def series(c: Collector, name: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(lbl), v) for lbl, v in c.registry.samples() if dict(lbl)["__name__"] == name]


def one(c: Collector, name: str, **match: str) -> tuple[dict[str, str], float]:
    found = [(lbl, v) for lbl, v in series(c, name) if all(lbl.get(k) == v for k, v in match.items())]
    assert len(found) == 1, found
    return found[0]


PP_TARGET = {"instance": f"{PRODUCTPAGE_IP}:15020", "job": "kubernetes-pods", "namespace": NS,
             "pod": PRODUCTPAGE["metadata"]["name"]}
RV_TARGET = {"instance": f"{REVIEWS_IP}:15020", "job": "kubernetes-pods", "namespace": NS,
             "pod": REVIEWS["metadata"]["name"]}

SOURCE_PRODUCTPAGE = {
    "source_workload": "productpage-v1", "source_workload_namespace": NS, "source_principal": "unknown",
    "source_app": "productpage", "source_version": "v1", "source_canonical_service": "productpage",
    "source_canonical_revision": "v1", "source_cluster": "Kubernetes"}
DESTINATION_REVIEWS = {
    "destination_workload": "reviews-v2", "destination_workload_namespace": NS, "destination_principal": "unknown",
    "destination_app": "reviews", "destination_version": "v2", "destination_service": REVIEWS_FQDN,
    "destination_service_name": "reviews", "destination_service_namespace": NS,
    "destination_canonical_service": "reviews", "destination_canonical_revision": "v2",
    "destination_cluster": "Kubernetes"}
HTTP_200 = {"request_protocol": "http", "response_code": "200", "response_flags": "-"}


async def test_source_reporter_labels_exactly(collector: Collector) -> None:
    await stream(collector, node_of(PRODUCTPAGE), [outbound(), outbound()], [outbound()])
    labels, value = one(collector, "istio_requests_total")
    assert labels == {"__name__": "istio_requests_total", **PP_TARGET, "reporter": "source",
                      **SOURCE_PRODUCTPAGE, **DESTINATION_REVIEWS, **HTTP_200,
                      "connection_security_policy": "unknown"}
    # grpc_response_status is empty for HTTP, so Prometheus stores no such label.
    assert set(labels) == {"__name__", *TARGET_LABELS, *ISTIO_LABELS} - {"grpc_response_status"}
    assert value == 3


async def test_destination_reporter_labels_exactly(collector: Collector) -> None:
    await stream(collector, node_of(REVIEWS), [inbound(), inbound()])
    labels, value = one(collector, "istio_requests_total")
    assert labels == {"__name__": "istio_requests_total", **RV_TARGET, "reporter": "destination",
                      **SOURCE_PRODUCTPAGE, **DESTINATION_REVIEWS, **HTTP_200,
                      "connection_security_policy": "none"}
    assert value == 2


async def test_each_request_counted_once_per_reporter(collector: Collector) -> None:
    n = 57
    # Envoy sends a batch per flush; both sides' streams run concurrently.
    await asyncio.gather(
        stream(collector, node_of(PRODUCTPAGE), *[[outbound()] * 10 for _ in range(5)], [outbound()] * 7),
        stream(collector, node_of(REVIEWS), [inbound()] * 30, [inbound()] * 27))
    assert one(collector, "istio_requests_total", reporter="source")[1] == n
    assert one(collector, "istio_requests_total", reporter="destination")[1] == n
    assert collector.stats.http_entries == 2 * n and collector.stats.dropped == 0
    assert collector.stats.streams_total == 2 and collector.stats.streams_active == 0


async def test_histograms_use_envoy_buckets_and_wire_bytes(collector: Collector) -> None:
    await stream(collector, node_of(PRODUCTPAGE), [outbound(duration_ms=3.9, rx=120, tx=340),
                                                   outbound(duration_ms=0.4, rx=0, tx=2000),
                                                   outbound(duration_ms=70000, rx=700, tx=70)])
    dur = {lbl.get("le", lbl["__name__"]): v for lbl, v in series(collector, "istio_request_duration_milliseconds_bucket")}
    assert dur["0.5"] == 1 and dur["1.0"] == 1 and dur["5.0"] == 2 and dur["60000.0"] == 2
    assert dur["300000.0"] == 3 and dur["+Inf"] == 3
    assert list(dur) == ["0.5", "1.0", "5.0", "10.0", "25.0", "50.0", "100.0", "250.0", "500.0", "1000.0", "2500.0",
                         "5000.0", "10000.0", "30000.0", "60000.0", "300000.0", "600000.0", "1.8e+06", "3.6e+06",
                         "+Inf"]
    # The filter records whole milliseconds: 3.9 → 3, 0.4 → 0.
    assert one(collector, "istio_request_duration_milliseconds_sum")[1] == 3 + 0 + 70000
    assert one(collector, "istio_request_duration_milliseconds_count")[1] == 3
    assert one(collector, "istio_request_bytes_sum")[1] == 120 + 0 + 700
    assert one(collector, "istio_response_bytes_sum")[1] == 340 + 2000 + 70
    assert one(collector, "istio_response_bytes_bucket", le="1000.0")[1] == 2


async def test_bytes_fall_back_to_headers_and_body_without_wire_counts(collector: Collector) -> None:
    await stream(collector, node_of(PRODUCTPAGE), [outbound(rx=0, tx=0)])
    assert one(collector, "istio_request_bytes_sum")[1] == 100
    assert one(collector, "istio_response_bytes_sum")[1] == 90 + 250


async def test_no_route_uses_the_host_header(collector: Collector) -> None:
    entry = http_entry(downstream=(mesh.app_ip(PRODUCTPAGE_IP), 40000), local=(PRODUCTPAGE_IP, 15001), code=404,
                       authority="nosuch:8080", flags={"no_route_found": True})
    await stream(collector, node_of(PRODUCTPAGE), [entry])
    labels, value = one(collector, "istio_requests_total")
    assert value == 1
    assert labels == {"__name__": "istio_requests_total", **PP_TARGET, "reporter": "source", **SOURCE_PRODUCTPAGE,
                      "destination_workload": "unknown", "destination_workload_namespace": "unknown",
                      "destination_principal": "unknown", "destination_app": "unknown",
                      "destination_version": "unknown", "destination_service": "nosuch:8080",
                      "destination_service_name": "nosuch:8080", "destination_service_namespace": "unknown",
                      "destination_canonical_service": "unknown", "destination_canonical_revision": "latest",
                      "destination_cluster": "unknown", "request_protocol": "http", "response_code": "404",
                      "response_flags": "NR", "connection_security_policy": "unknown"}


async def test_no_healthy_upstream_still_names_the_service(collector: Collector) -> None:
    entry = http_entry(downstream=(mesh.app_ip(PRODUCTPAGE_IP), 40000), local=(PRODUCTPAGE_IP, 15001), code=503,
                       authority="reviews.tutorial:9080", flags={"no_healthy_upstream": True})
    await stream(collector, node_of(PRODUCTPAGE), [entry])
    labels, _ = one(collector, "istio_requests_total")
    assert (labels["destination_service"], labels["destination_service_name"]) == (REVIEWS_FQDN, "reviews")
    assert labels["destination_workload"] == "unknown" and labels["destination_service_namespace"] == "unknown"
    assert (labels["response_code"], labels["response_flags"]) == ("503", "UH")


async def test_flags_in_envoys_order(collector: Collector) -> None:
    await stream(collector, node_of(PRODUCTPAGE), [outbound(code=503, flags={
        "upstream_retry_limit_exceeded": True, "upstream_connection_failure": True})])
    assert one(collector, "istio_requests_total")[0]["response_flags"] == "UF,URX"


async def test_unmeshed_or_unknown_callers_are_unknown(collector: Collector) -> None:
    await stream(collector, node_of(REVIEWS), [inbound(peer=OUTSIDER_IP), inbound(peer="127.0.0.1")])
    labels, value = one(collector, "istio_requests_total")
    assert value == 2
    assert {k: v for k, v in labels.items() if k.startswith("source_")} == {
        "source_workload": "unknown", "source_workload_namespace": "unknown", "source_principal": "unknown",
        "source_app": "unknown", "source_version": "unknown", "source_canonical_service": "unknown",
        "source_canonical_revision": "latest", "source_cluster": "unknown"}
    assert labels["destination_workload"] == "reviews-v2" and labels["destination_service_name"] == "reviews"


async def test_inbound_without_a_service_falls_back_to_authority(collector: Collector, store: Store) -> None:
    store.delete("services", NS, "reviews")
    await asyncio.sleep(0.05)  # the informer applies the deletion
    await stream(collector, node_of(REVIEWS), [inbound(authority="127.1.0.20:9080")])
    labels, _ = one(collector, "istio_requests_total")
    assert labels["destination_service"] == labels["destination_service_name"] == "127.1.0.20:9080"


async def test_grpc_status_from_trailers_or_http_status(collector: Collector) -> None:
    grpc = {"content-type": "application/grpc"}
    await stream(collector, node_of(PRODUCTPAGE), [
        outbound(request_headers=grpc, response_trailers={"grpc-status": "0"}),
        outbound(request_headers=grpc, code=503),  # no grpc-status at all: mapped from HTTP 503
        outbound(request_headers={"content-type": "application/json"})])
    got = sorted((lbl["request_protocol"], lbl.get("grpc_response_status", ""), lbl["response_code"], v)
                 for lbl, v in series(collector, "istio_requests_total"))
    assert got == [("grpc", "0", "200", 1), ("grpc", "14", "503", 1), ("http", "", "200", 1)]


async def test_gateway_reports_as_source(collector: Collector) -> None:
    entry = http_entry(cluster=mesh.outbound_cluster(9080, "", mesh.fqdn("productpage", NS)),
                       upstream=(PRODUCTPAGE_IP, 9080), downstream=("127.0.0.1", 50000), local=("127.0.0.1", 8080),
                       authority="bookinfo.com")
    await stream(collector, node_of(GATEWAY, "router"), [entry])
    labels, _ = one(collector, "istio_requests_total")
    assert labels["reporter"] == "source"
    assert labels["source_workload"] == "istio-ingressgateway"
    assert labels["source_workload_namespace"] == "istio-system"
    assert labels["source_canonical_service"] == "istio-ingressgateway"
    assert "source_version" not in labels  # the gateway has no version label: empty, as the filter sends it
    assert labels["destination_workload"] == "productpage-v1"
    assert labels["destination_service"] == mesh.fqdn("productpage", NS)


async def test_mutual_tls_option_fills_principals(store: Store) -> None:
    c = await _collector(store, options=TelemetryOptions(mutual_tls=True))
    try:
        await stream(c, node_of(REVIEWS), [inbound()])
        await stream(c, node_of(PRODUCTPAGE), [outbound()])
        dst = one(c, "istio_requests_total", reporter="destination")[0]
        src = one(c, "istio_requests_total", reporter="source")[0]
        pp, rv = "spiffe://cluster.local/ns/tutorial/sa/bookinfo-productpage", "spiffe://cluster.local/ns/tutorial/sa/bookinfo-reviews"
        assert (dst["source_principal"], dst["destination_principal"], dst["connection_security_policy"]) == (pp, rv, "mutual_tls")
        assert (src["source_principal"], src["destination_principal"], src["connection_security_policy"]) == (pp, rv, "unknown")
    finally:
        await c.stop()


async def test_without_target_labels_pods_aggregate(store: Store) -> None:
    c = await _collector(store, options=TelemetryOptions(target_labels=False))
    try:
        await stream(c, node_of(PRODUCTPAGE), [outbound()])
        labels, _ = one(c, "istio_requests_total")
        assert set(labels) == {"__name__", *ISTIO_LABELS} - {"grpc_response_status"}
    finally:
        await c.stop()


async def test_stream_without_identifier_is_dropped(collector: Collector) -> None:
    await stream(collector, None, [outbound(), outbound()])
    bad = base_pb2.Node(id="not-a-node-id")
    await stream(collector, bad, [outbound()])
    assert series(collector, "istio_requests_total") == []
    assert collector.stats.dropped == 3
    fams = {f.name: f for f in collector.self_families()}
    assert fams["sluice_als_entries_dropped_total"].samples[0].value == 3


async def test_tcp_connection_metrics(collector: Collector) -> None:
    def tcp(kind: str, sent: int, received: int, conn: str) -> dict[str, Any]:
        return {"common_properties": {
            "upstream_cluster": mesh.inbound_cluster(9080), "downstream_remote_address": _addr(PRODUCTPAGE_IP, 42000),
            "upstream_remote_address": _addr(mesh.app_ip(REVIEWS_IP), 9080), "stream_id": conn,
            "access_log_type": kind}, "connection_properties": {"sent_bytes": sent, "received_bytes": received}}

    await stream(collector, node_of(REVIEWS), [tcp("TcpUpstreamConnected", 0, 0, "c1"), tcp("TcpPeriodic", 10, 5, "c1")],
                 [tcp("TcpConnectionEnd", 30, 7, "c1"), tcp("NotSet", 4, 3, "")], tcp=True)
    opened = one(collector, "istio_tcp_connections_opened_total")
    assert opened[1] == 2
    assert set(opened[0]) == {"__name__", *TARGET_LABELS, *TCP_LABELS}
    assert opened[0]["request_protocol"] == "tcp" and opened[0]["reporter"] == "destination"
    assert opened[0]["source_workload"] == "productpage-v1" and opened[0]["destination_service_name"] == "reviews"
    assert one(collector, "istio_tcp_connections_closed_total")[1] == 2
    assert one(collector, "istio_tcp_sent_bytes_total")[1] == 34
    assert one(collector, "istio_tcp_received_bytes_total")[1] == 10
    assert collector.stats.tcp_entries == 4


async def test_deleted_pods_series_go_after_grace(store: Store) -> None:
    c = await _collector(store, series_grace=0.05)
    try:
        await stream(c, node_of(PRODUCTPAGE), [outbound()])
        await stream(c, node_of(REVIEWS), [inbound()])
        store.delete("pods", NS, REVIEWS["metadata"]["name"])
        # Late entries from the deleted pod still resolve (its IP lingers in the index) …
        await asyncio.sleep(0.01)
        await stream(c, node_of(PRODUCTPAGE), [outbound()])
        assert one(c, "istio_requests_total", reporter="source")[0]["destination_workload"] == "reviews-v2"
        # … and once the grace period is over the series it reported are gone (the TSDB marks them stale).
        for _ in range(100):
            if not series(c, "istio_requests_total") or len(series(c, "istio_requests_total")) == 1:
                break
            await asyncio.sleep(0.02)
        [(labels, value)] = series(c, "istio_requests_total")
        assert labels["reporter"] == "source" and value == 2
        assert c.series_removed == 4  # the counter and three histograms of reviews-v2's proxy
    finally:
        await c.stop()


async def test_netns_mode_directions_without_an_upstream_cluster(collector: Collector) -> None:
    """netns mode: a captured outbound request answered by Envoy itself (a VirtualService direct response)
    has the ClusterIP it was aimed at as local address, not :15001; an inbound one the pod's own IP."""
    direct = http_entry(downstream=(PRODUCTPAGE_IP, 40000), local=("10.96.0.13", 9080), code=418,
                        authority="reviews:9080")
    await stream(collector, node_of(PRODUCTPAGE), [direct])
    labels, value = one(collector, "istio_requests_total")
    assert (labels["reporter"], labels["source_workload"], labels["destination_service_name"], value) == (
        "source", "productpage-v1", "reviews", 1)
    aborted = http_entry(downstream=(PRODUCTPAGE_IP, 40000), local=(REVIEWS_IP, 9080), code=503)
    await stream(collector, node_of(REVIEWS), [aborted])
    labels, _ = one(collector, "istio_requests_total", reporter="destination")
    assert (labels["source_workload"], labels["destination_workload"]) == ("productpage-v1", "reviews-v2")


async def test_netns_inbound_passthrough_is_reported_by_the_destination(collector: Collector) -> None:
    entry = inbound(cluster="InboundPassthroughCluster", upstream=(REVIEWS_IP, 8081), local=(REVIEWS_IP, 8081),
                    authority="reviews-v2:8081")
    await stream(collector, node_of(REVIEWS), [entry])
    labels, _ = one(collector, "istio_requests_total")
    assert (labels["reporter"], labels["source_workload"], labels["destination_workload"]) == (
        "destination", "productpage-v1", "reviews-v2")

    def tcp(conn: str) -> dict[str, Any]:
        return {"common_properties": {
            "upstream_cluster": "InboundPassthroughCluster", "downstream_remote_address": _addr(PRODUCTPAGE_IP, 42000),
            "upstream_remote_address": _addr(REVIEWS_IP, 5432), "stream_id": conn,
            "access_log_type": "TcpUpstreamConnected"}, "connection_properties": {}}

    await stream(collector, node_of(REVIEWS), [tcp("c1")], tcp=True)
    opened, _ = one(collector, "istio_tcp_connections_opened_total")
    assert (opened["reporter"], opened["source_workload"]) == ("destination", "productpage-v1")


async def test_invalid_label_values_are_dropped_and_counted(collector: Collector) -> None:
    await stream(collector, node_of(PRODUCTPAGE), [outbound(code=200), outbound(code=1234), outbound(code=99),
                                                   outbound(authority="evil host", cluster="PassthroughCluster"),
                                                   outbound(request_headers={"content-type": "application/grpc"},
                                                            response_trailers={"grpc-status": "12345"})])
    assert [lbl["response_code"] for lbl, _ in series(collector, "istio_requests_total")] == ["200"]
    assert collector.stats.invalid_label == 4
    fams = {f.name: f for f in collector.self_families()}
    dropped = {dict(s.labels)["reason"]: s.value for s in fams["sluice_als_entries_dropped_total"].samples}
    assert dropped["invalid_label"] == 4


async def test_series_limit_drops_new_series_only_and_frees_with_the_pod(store: Store) -> None:
    c = await _collector(store, series_limit=3 * 67)  # three HTTP label sets of productpage
    try:
        await stream(c, node_of(PRODUCTPAGE), [outbound(code=code) for code in (200, 201, 202, 203, 204, 200)])
        codes = {lbl["response_code"]: v for lbl, v in series(c, "istio_requests_total")}
        assert codes == {"200": 2, "201": 1, "202": 1}  # the existing series keeps counting
        fams = {f.name: f for f in c.self_families()}
        [over] = fams["sluice_telemetry_series_limit_exceeded_total"].samples
        assert dict(over.labels) == {"namespace": NS, "workload": "productpage-v1"} and over.value == 2
        # Another workload has its own budget.
        await stream(c, node_of(REVIEWS), [inbound(code=500)])
        assert len(series(c, "istio_requests_total")) == 4
        # The pod's series go with it, and so does their share of the budget.
        c.forget_pod(NS, PRODUCTPAGE["metadata"]["name"])
        await stream(c, node_of(PRODUCTPAGE), [outbound(code=code) for code in (203, 204)])
        assert {lbl["response_code"] for lbl, _ in series(c, "istio_requests_total")
                if lbl["reporter"] == "source"} == {"203", "204"}
    finally:
        await c.stop()


async def test_service_entry_destination_as_istio_labels_it(collector: Collector) -> None:
    """A ServiceEntry host is its own service name (Istio's Attributes.Name); the pod behind it has no sidecar
    and no endpoint metadata, so the destination workload and namespaces are unknown."""
    cluster = mesh.outbound_cluster(80, "", "httpbin.example.org")
    await stream(collector, node_of(PRODUCTPAGE), [outbound(cluster=cluster, upstream=(OUTSIDER_IP, 80))])
    labels, _ = one(collector, "istio_requests_total")
    assert (labels["destination_service"], labels["destination_service_name"]) == ("httpbin.example.org",) * 2
    assert labels["destination_workload"] == labels["destination_service_namespace"] == "unknown"


async def test_registry_only_block_all_is_the_black_hole(collector: Collector) -> None:
    """REGISTRY_ONLY's `block_all` route answers 502 with no upstream: Istio names it BlackHoleCluster."""
    entry = outbound(cluster="", upstream=None, code=502, authority="unknown.example.org")
    entry["common_properties"]["route_name"] = "block_all"
    await stream(collector, node_of(PRODUCTPAGE), [entry])
    labels, _ = one(collector, "istio_requests_total")
    assert (labels["destination_service"], labels["destination_service_name"]) == ("unknown.example.org",
                                                                                    "BlackHoleCluster")
    assert labels["reporter"] == "source" and labels["response_code"] == "502"


async def test_kubernetes_service_to_an_unmeshed_pod_keeps_its_workload(collector: Collector) -> None:
    """A Kubernetes Service's endpoint carries Istio's endpoint metadata even without a sidecar there."""
    cluster = mesh.outbound_cluster(9080, "", mesh.fqdn("outsider", NS))
    await stream(collector, node_of(PRODUCTPAGE), [outbound(cluster=cluster, upstream=(OUTSIDER_IP, 9080))])
    assert one(collector, "istio_requests_total")[0]["destination_workload"] == "outsider-5f7c9b4d8"
