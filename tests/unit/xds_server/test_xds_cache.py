"""The snapshot cache: versions that move only with content, consistency, one-shot watches in ADS order."""

from __future__ import annotations

import pytest
from tests.unit.xds_server.fixtures import NODE, resources

from sluice.xds.cache import (
    ADS_ORDER,
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    Response,
    Snapshot,
    SnapshotCache,
    WatchRequest,
)


def test_first_snapshot_starts_every_type_at_version_1() -> None:
    snap = Snapshot.build(resources())
    assert {t: snap.version(t) for t in ADS_ORDER} == {t: "1" for t in ADS_ORDER}
    assert snap.changed_types(None) == list(ADS_ORDER)


def test_unchanged_content_keeps_version_and_changed_type_bumps_alone() -> None:
    one = Snapshot.build(resources())
    same = Snapshot.build(resources(), one)
    assert same.changed_types(one) == []
    eps = Snapshot.build(resources(eps=("127.1.0.8",)), same)
    assert eps.changed_types(same) == [ENDPOINT]
    assert eps.version(ENDPOINT) == "2" and eps.version(CLUSTER) == "1"
    both = Snapshot.build(resources(eps=("127.1.0.8",), domain="ratings"), eps)
    assert both.changed_types(eps) == [ROUTE]
    assert both.version(ROUTE) == "2" and both.version(ENDPOINT) == "2"


def test_a_type_that_disappears_becomes_empty_at_a_new_version() -> None:
    one = Snapshot.build(resources())
    res = dict(resources())
    del res[ROUTE]
    two = Snapshot.build(res, one)
    assert two.version(ROUTE) == "2" and not two.types[ROUTE].resources


@pytest.mark.parametrize("drop", [ENDPOINT, ROUTE])
def test_consistency_names_dangling_references(drop: str) -> None:
    from envoy.config.listener.v3 import listener_pb2
    from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2

    res = {t: dict(v) for t, v in resources().items()}
    hcm = http_connection_manager_pb2.HttpConnectionManager(stat_prefix="x")
    hcm.rds.route_config_name = "9080"
    lst = listener_pb2.Listener(name="l1")
    lst.filter_chains.add().filters.add(name="envoy.filters.network.http_connection_manager").typed_config.Pack(hcm)
    res[LISTENER] = {"l1": lst}
    assert Snapshot.build(res).consistent() == []
    res[drop] = {}
    problems = Snapshot.build(res).consistent()
    assert problems and ("LDS" in problems[0] if drop == ROUTE else "CDS" in problems[0])


def test_watch_answers_at_once_when_versions_differ_and_parks_otherwise() -> None:
    cache = SnapshotCache()
    cache.set_snapshot(NODE, Snapshot.build(resources()))
    got: list[Response] = []
    cache.create_watch(WatchRequest(NODE, CLUSTER, ""), got.append)
    assert [r.version for r in got] == ["1"] and got[0].names == {"a", "b"}
    cancel = cache.create_watch(WatchRequest(NODE, CLUSTER, "1"), got.append)
    assert len(got) == 1 and cache.parked(NODE) == 1
    cancel()
    assert cache.parked(NODE) == 0


def test_non_wildcard_types_answer_only_requested_names_and_subscription_changes() -> None:
    cache = SnapshotCache()
    cache.set_snapshot(NODE, Snapshot.build(resources()))
    got: list[Response] = []
    cache.create_watch(WatchRequest(NODE, ENDPOINT, "", frozenset({"a", "zz"})), got.append)
    assert got[-1].names == {"a"}
    # Same version, same names: parked. Same version, new names: answered.
    cache.create_watch(WatchRequest(NODE, ENDPOINT, "1", frozenset({"a", "zz"}), frozenset({"a", "zz"})), got.append)
    assert len(got) == 1
    cache.create_watch(WatchRequest(NODE, ENDPOINT, "1", frozenset({"a", "b"}), frozenset({"a"})), got.append)
    assert got[-1].names == {"a", "b"}


def test_set_snapshot_answers_parked_watches_once_in_ads_order() -> None:
    cache = SnapshotCache()
    order: list[str] = []
    for t in (ROUTE, LISTENER, ENDPOINT, CLUSTER):  # parked in reverse order
        names = frozenset({"a", "b"}) if t == ENDPOINT else frozenset({"9080"}) if t == ROUTE else frozenset()
        cache.create_watch(WatchRequest(NODE, t, "", names), lambda r: order.append(r.type_url))
    cache.set_snapshot(NODE, Snapshot.build(resources()))
    assert order == list(ADS_ORDER)
    cache.set_snapshot(NODE, Snapshot.build(resources(eps=("127.1.0.9",)), cache.get_snapshot(NODE)))
    assert len(order) == 4  # one-shot: nothing was parked any more


def test_serialised_responses_are_memoised_per_name_set() -> None:
    snap = Snapshot.build(resources())
    ts = snap.types[ENDPOINT]
    assert ts.response_body(frozenset({"a"})) is ts.response_body(frozenset({"a"}))
    assert ts.response_body(None) != ts.response_body(frozenset({"a"}))
