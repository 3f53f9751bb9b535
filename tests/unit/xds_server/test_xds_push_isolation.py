"""One Istio config object that breaks the translation never stops pushes for the rest.

The pusher runs over a real SQLite store with the stub generator wrapped so that it fails on chosen
objects: building the push context fails while a VirtualService has `spec.broken: context`, generating a
proxy's resources fails while one has `spec.broken: generate` (or `generate-<pod>` for that pod's proxy
only), and a pair of objects fails only together.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_pb2
from tests.integration.xds.stub import StubGenerator, StubProxy, StubPush

from sluice import mesh
from sluice.cli.proxy import status_rows
from sluice.store.sqlite import Store
from sluice.xds import debug
from sluice.xds.cache import CLUSTER, ENDPOINT, ROUTE, Resources, SnapshotCache
from sluice.xds.pusher import Pusher
from sluice.xds.server import XdsServer

NS = "t"
VS = "virtualservices.networking.istio.io"
A = mesh.sidecar_node_id("127.1.0.2", "a", NS)
B = mesh.sidecar_node_id("127.1.0.3", "b", NS)


def obj(kind: str, name: str, **rest: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": NS}, **rest}


def vs(name: str, regex: str = "/x", broken: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"hosts": [name], "http": [{"match": [{"uri": {"regex": regex}}],
                                                       "route": [{"destination": {"host": name}}]}]}
    if broken:
        spec["broken"] = broken
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


def service(name: str) -> dict[str, Any]:
    return obj("Service", name, spec={"ports": [{"port": 9080}]})


def eps(name: str, *ips: str) -> dict[str, Any]:
    return obj("Endpoints", name, subsets=[{"addresses": [{"ip": i} for i in ips], "ports": [{"port": 9080}]}])


def pod(name: str, ip: str) -> dict[str, Any]:
    return obj("Pod", name, spec={"containers": [{"name": "app"}]}, status={"podIP": ip})


class FailingGenerator(StubGenerator):
    """The stub translation, failing on the objects a test marks (and on the pods in `bad_pods`)."""

    def __init__(self) -> None:
        super().__init__()
        self.bad_pods: set[str] = set()

    def push_context(self, objects: list[dict[str, Any]], version: str) -> StubPush:
        names = {o["metadata"]["name"] for o in objects if o.get("kind") == "VirtualService"}
        if {"left", "right"} <= names:
            raise ValueError("left and right claim the same route")
        for o in objects:
            if (o.get("spec") or {}).get("broken") == "context":
                raise ValueError(f"cannot index {o['metadata']['name']}")
        return super().push_context(objects, version)

    def generate(self, proxy: StubProxy, push: StubPush) -> Resources:
        if proxy.pod in self.bad_pods:
            raise RuntimeError(f"pod {proxy.pod} has no usable ports")
        for v in push.virtual_services:
            if v["spec"].get("broken") in ("generate", f"generate-{proxy.pod}"):
                raise ValueError("Couldn't parse duration: 400000000000s : Duration is not valid")
        return super().generate(proxy, push)


Env = tuple[Store, SnapshotCache, Pusher, FailingGenerator, list[tuple[str, str]]]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    store = Store(tmp_path / "db")
    for name in ("reviews", "ratings"):
        store.create("services", service(name))
        store.create("endpoints", eps(name, "127.1.0.7"))
    store.create("pods", pod("a", "127.1.0.2"))
    store.create("pods", pod("b", "127.1.0.3"))
    cache, gen = SnapshotCache(), FailingGenerator()
    pusher = Pusher(store, cache, gen, debounce=0.02, max_delay=0.2)
    reported: list[tuple[str, str]] = []
    pusher.on_rejected = lambda o, error: reported.append((o["metadata"]["name"], error))
    await pusher.start()
    pusher.connected(A)
    pusher.connected(B)
    await settle(pusher)
    yield store, cache, pusher, gen, reported
    await pusher.stop()
    store.close()


async def settle(pusher: Pusher) -> None:
    await asyncio.sleep(0)
    while not pusher.idle:
        await asyncio.sleep(0.01)


def route_regex(cache: SnapshotCache, node: str, service_name: str) -> str | None:
    """The regex the proxy's route for `service_name` matches on (None: a plain prefix route)."""
    snap = cache.get_snapshot(node)
    assert snap is not None
    rc = route_pb2.RouteConfiguration()
    snap.types[ROUTE].resources["http_proxy"].Unpack(rc)
    for vh in rc.virtual_hosts:
        if vh.name.startswith(mesh.fqdn(service_name, NS)):
            m = vh.routes[0].match
            return m.safe_regex.regex if m.HasField("safe_regex") else None
    raise AssertionError(f"no virtual host for {service_name}")


def endpoint_ips(cache: SnapshotCache, node: str, service_name: str) -> set[str]:
    snap = cache.get_snapshot(node)
    assert snap is not None
    cla = endpoint_pb2.ClusterLoadAssignment()
    snap.types[ENDPOINT].resources[mesh.outbound_cluster(9080, "", mesh.fqdn(service_name, NS))].Unpack(cla)
    return {e.endpoint.address.socket_address.address for g in cla.endpoints for e in g.lb_endpoints}


@pytest.mark.parametrize("where", ["context", "generate"])
async def test_a_broken_object_is_left_out_and_everything_else_is_pushed(env: Env, where: str) -> None:
    store, cache, pusher, _, reported = env
    store.create(VS, vs("ratings", "/broken", broken=where))
    await settle(pusher)
    # Later valid changes of every kind reach every proxy.
    store.create(VS, vs("reviews", "/v2"))
    store.update("endpoints", eps("reviews", "127.1.0.8"))
    await settle(pusher)
    for node in (A, B):
        assert route_regex(cache, node, "reviews") == "/v2"
        assert route_regex(cache, node, "ratings") is None  # the broken object is not in anyone's config
        assert endpoint_ips(cache, node, "reviews") == {"127.1.0.8"}
    [rejection] = pusher.rejected.values()
    assert rejection.key == ("VirtualService", NS, "ratings")
    expected = "cannot index ratings" if where == "context" else "Couldn't parse duration"
    assert expected in rejection.error and rejection.to_json()["resourceVersion"]
    assert [(name, expected in error) for name, error in reported] == [("ratings", True)]  # reported once
    assert pusher.node_errors == {}

    # Fixed (a new resourceVersion): tried again and pushed; the rejection is gone.
    store.update(VS, vs("ratings", "/fixed"))
    await settle(pusher)
    assert route_regex(cache, A, "ratings") == route_regex(cache, B, "ratings") == "/fixed"
    assert pusher.rejected == {}


async def test_a_rejected_object_is_not_retried_until_it_changes(env: Env) -> None:
    store, cache, pusher, gen, reported = env
    store.create(VS, vs("ratings", broken="generate"))
    await settle(pusher)
    store.update("endpoints", eps("reviews", "127.1.0.9"))
    await settle(pusher)
    generated = gen.generated
    store.update("endpoints", eps("reviews", "127.1.0.10"))
    await settle(pusher)
    # One generation per proxy: the rejected object is left out up front, no isolation is run again.
    assert gen.generated == generated + 2 and len(reported) == 1
    assert endpoint_ips(cache, A, "reviews") == {"127.1.0.10"}
    store.delete(VS, NS, "ratings")
    await settle(pusher)
    assert pusher.rejected == {}


async def test_config_one_proxy_cannot_take_is_left_out_for_every_proxy(env: Env) -> None:
    store, cache, pusher, _, reported = env
    pusher.disconnected(A)
    store.create(VS, vs("ratings", "/only-b-can", broken="generate-a"))
    await settle(pusher)
    assert route_regex(cache, B, "ratings") == "/only-b-can"  # b alone is connected: nothing failed yet
    pusher.connected(A)  # a's config fails on it: it is rejected, and b loses it too
    await settle(pusher)
    assert route_regex(cache, A, "ratings") is None and [name for name, _ in reported] == ["ratings"]
    assert route_regex(cache, B, "ratings") is None


async def test_objects_that_fail_only_together_leave_one_out(env: Env) -> None:
    store, cache, pusher, _, reported = env
    store.create(VS, vs("left", "/l"))
    await settle(pusher)
    store.create(VS, vs("right", "/r"))
    store.create(VS, vs("reviews", "/v3"))
    await settle(pusher)
    assert route_regex(cache, A, "reviews") == "/v3"
    assert [k[2] for k in pusher.rejected] == ["right"]  # the first in store order stays
    assert "left and right claim the same route" in pusher.rejected[("VirtualService", NS, "right")].error
    assert [name for name, _ in reported] == ["right"]


async def test_a_proxy_that_cannot_be_configured_says_why_and_the_others_go_on(env: Env) -> None:
    store, cache, pusher, gen, reported = env
    before = cache.get_snapshot(B)
    gen.bad_pods.add("b")
    store.create(VS, vs("reviews", "/v2"))
    await settle(pusher)
    assert route_regex(cache, A, "reviews") == "/v2"
    assert cache.get_snapshot(B) is before  # b keeps its previous config ...
    assert pusher.node_errors == {B: "pod b has no usable ports"}  # ... and says why
    assert pusher.rejected == {} and reported == []  # no config object is blamed
    gen.bad_pods.clear()
    store.update("endpoints", eps("reviews", "127.1.0.11"))
    await settle(pusher)
    assert route_regex(cache, B, "reviews") == "/v2" and pusher.node_errors == {}


async def test_syncz_says_why_a_proxy_is_not_synced(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    store.create("pods", pod("a", "127.1.0.2"))
    store.create("pods", pod("b", "127.1.0.3"))
    gen = FailingGenerator()
    gen.bad_pods.add("b")
    xds = XdsServer(store, address=("127.0.0.1", 0), generator=gen)
    await xds.pusher.start()
    try:
        for stream, node in ((1, A), (2, B)):
            xds.tracker.opened(stream, node, "127.0.0.1:1", {})
            xds.pusher.connected(node)
            await settle(xds.pusher)
            xds.tracker.sent(stream, CLUSTER, "1", "n1")
            xds.tracker.acked(stream, CLUSTER, "1", "n1")  # b holds what it had: "acked" but not current
        rows = {r["pod"]: r for r in debug.syncz(xds)}
        assert rows["a"]["types"]["CDS"]["state"] == "SYNCED" and "error" not in rows["a"]
        assert rows["b"]["types"]["CDS"]["state"] == "STALE" and rows["b"]["error"] == "pod b has no usable ports"
        assert status_rows(list(rows.values()))[1][2] == "STALE"
        # `?proxy=` narrows the answer to the proxies named `<pod>.<namespace>`.
        assert [r["pod"] for r in debug.syncz(xds, frozenset({f"b.{NS}"}))] == ["b"]
        assert debug.syncz(xds, frozenset()) == []
    finally:
        await xds.pusher.stop()
        store.close()


async def test_a_status_watcher_wakes_on_the_next_change(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    store.create("pods", pod("a", "127.1.0.2"))
    xds = XdsServer(store, address=("127.0.0.1", 0), generator=StubGenerator())
    await xds.pusher.start()
    try:
        seen = xds.status_generation
        await xds.status_changed(seen - 1, 5)  # already past: at once
        waiter = asyncio.create_task(xds.status_changed(seen, 30))
        await asyncio.sleep(0)
        assert not waiter.done()
        xds.pusher.connected(A)  # its first snapshot is a status change
        await asyncio.wait_for(waiter, 10)
        assert xds.status_generation > seen
    finally:
        await xds.pusher.stop()
        store.close()
