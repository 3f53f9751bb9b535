"""The pusher with the real translation over a real SQLite store: a change is pushed to the proxies it affects
(and only the xDS types it moves), a burst ends with every proxy holding the last write, and the informers the
pusher works from equal the store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from sluice import mesh
from sluice.store.sqlite import Store
from sluice.xds.cache import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot, SnapshotCache
from sluice.xds.informers import ConfigInformers
from sluice.xds.pusher import WATCHED_KINDS, Pusher, TranslateGenerator
from sluice.xds.translate import MeshOptions, PushContext
from sluice.xds.translate.protos import MESSAGE_CLASSES
from sluice.xds.translate.scope import affected

TYPES = (CLUSTER, ENDPOINT, LISTENER, ROUTE)
VS_KIND = "virtualservices.networking.istio.io"


def meta(name: str, ns: str, **rest: Any) -> dict[str, Any]:
    return {"name": name, "namespace": ns, **rest}


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def service(name: str, ns: str, ip: str, *, private: bool = False, headless: bool = False) -> dict[str, Any]:
    annotations = {"networking.istio.io/exportTo": "."} if private else {}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name, ns, annotations=annotations),
            "spec": {"selector": {"app": name}, "clusterIP": "None" if headless else ip,
                     "ports": [{"name": "http", "port": 9080}]}}


def endpoints(name: str, ns: str, *ips: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta(name, ns),
            "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": [{"name": "http", "port": 9080}]}]}


def pod(name: str, ns: str, ip: str, app: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta(name, ns, labels={"app": app}),
            "spec": {"containers": [{"name": app, "ports": [{"containerPort": 9080}]},
                                    {"name": mesh.SIDECAR_CONTAINER}]},
            "status": {"podIP": ip}}


def virtual_service(name: str, ns: str, host: str, timeout: str, gateways: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"hosts": [host], "http": [{"route": [{"destination": {"host": host}}], "timeout": timeout}]}
    if gateways is not None:
        spec["gateways"] = gateways
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": meta(name, ns), "spec": spec}


# Namespace `a` has a Service only `a` sees (exportTo "."), namespace `b` likewise; `shared` is seen by all.
PODS = [("a1", "a", "127.5.0.1"), ("a2", "a", "127.5.0.2"), ("b1", "b", "127.5.1.1"), ("b2", "b", "127.5.1.2")]
NODES = {name: mesh.sidecar_node_id(ip, name, ns) for name, ns, ip in PODS}


def seed(store: Store) -> None:
    for ns in ("a", "b"):
        store.create("namespaces", namespace(ns))
    store.create("services", service("private", "a", "10.96.5.1", private=True))
    store.create("services", service("other", "b", "10.96.5.2", private=True))
    store.create("services", service("shared", "b", "10.96.5.3"))
    store.create("endpoints", endpoints("private", "a", "127.5.0.1"))
    store.create("endpoints", endpoints("shared", "b", "127.5.1.1"))
    for name, ns, ip in PODS:
        store.create("pods", pod(name, ns, ip, "private" if ns == "a" else "shared"))


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Store, SnapshotCache, Pusher]]:
    store = Store(tmp_path / "db")
    seed(store)
    cache = SnapshotCache()
    pusher = Pusher(store, cache, TranslateGenerator(MeshOptions()))
    await pusher.start()
    for node in NODES.values():
        pusher.connected(node)
    await settle(pusher)
    yield store, cache, pusher
    await pusher.stop()
    store.close()


async def settle(pusher: Pusher) -> None:
    await asyncio.sleep(0)
    while not pusher.idle:
        await asyncio.sleep(0.01)


def snapshots(cache: SnapshotCache) -> dict[str, Snapshot]:
    out = {}
    for name, node in NODES.items():
        snap = cache.get_snapshot(node)
        assert snap is not None, name
        out[name] = snap
    return out


def versions(snaps: dict[str, Snapshot], type_url: str) -> dict[str, str | None]:
    return {name: s.version(type_url) for name, s in snaps.items()}


def content(snap: Snapshot, type_url: str) -> str:
    """The resources of one type as JSON text (to look for a value a write put there)."""
    out = []
    for packed in snap.types[type_url].resources.values():
        msg = MESSAGE_CLASSES[type_url]()
        packed.Unpack(msg)
        out.append(json_format.MessageToDict(msg))
    return json.dumps(out)


async def test_a_route_change_reaches_only_the_callers_of_its_service(env: Any) -> None:
    store, cache, pusher = env
    before = snapshots(cache)
    assert "private.a.svc.cluster.local" in content(before["a1"], ROUTE)
    assert "private.a.svc.cluster.local" not in content(before["b1"], ROUTE)  # not exported to b

    store.create(VS_KIND, virtual_service("private", "a", "private", "7s"))
    await settle(pusher)
    after = snapshots(cache)
    assert versions(after, ROUTE) == {"a1": "2", "a2": "2", "b1": "1", "b2": "1"}
    assert '"timeout": "7s"' in content(after["a1"], ROUTE)
    assert after["b1"] is before["b1"] and after["b2"] is before["b2"]  # not even regenerated
    for name in ("a1", "a2"):  # the other types of the callers did not move
        assert {t: after[name].version(t) for t in (CLUSTER, ENDPOINT, LISTENER)} == \
            {t: before[name].version(t) for t in (CLUSTER, ENDPOINT, LISTENER)}

    # A Service every namespace sees: every proxy's routes move.
    store.create(VS_KIND, virtual_service("shared", "b", "shared", "9s"))
    await settle(pusher)
    assert versions(snapshots(cache), ROUTE) == {"a1": "3", "a2": "3", "b1": "2", "b2": "2"}
    assert all('"timeout": "9s"' in content(s, ROUTE) for s in snapshots(cache).values())


async def test_an_endpoints_change_moves_eds_alone(env: Any) -> None:
    store, cache, pusher = env
    before = snapshots(cache)
    store.update("endpoints", endpoints("shared", "b", "127.5.1.1", "127.5.1.2"))
    await settle(pusher)
    after = snapshots(cache)
    for name in NODES:
        assert after[name].version(ENDPOINT) == str(int(before[name].version(ENDPOINT) or 0) + 1)
        assert {t: after[name].version(t) for t in (CLUSTER, LISTENER, ROUTE)} == \
            {t: before[name].version(t) for t in (CLUSTER, LISTENER, ROUTE)}
        assert "127.5.1.2" in content(after[name], ENDPOINT)


async def test_a_pod_change_reaches_its_own_proxy(env: Any) -> None:
    store, cache, pusher = env
    before = snapshots(cache)
    changed = pod("a1", "a", "127.5.0.1", "private")
    changed["spec"]["containers"][0]["ports"].append({"containerPort": 9443})
    store.update("pods", changed)
    await settle(pusher)
    after = snapshots(cache)
    assert after["a1"].version(LISTENER) == "2" and "9443" in content(after["a1"], LISTENER)
    assert all(after[n].version(LISTENER) == before[n].version(LISTENER) for n in ("a2", "b1", "b2"))


async def test_a_burst_of_writes_ends_with_every_proxy_holding_the_last(env: Any) -> None:
    store, cache, pusher = env
    store.create(VS_KIND, virtual_service("shared", "b", "shared", "1s"))
    for i in range(2, 21):
        store.update(VS_KIND, virtual_service("shared", "b", "shared", f"{i}s"))
        if i % 3 == 0:
            await asyncio.sleep(0)  # some writes land while a push runs
    await settle(pusher)
    for snap in snapshots(cache).values():
        text = content(snap, ROUTE)
        assert '"timeout": "20s"' in text and '"timeout": "19s"' not in text
    assert pusher.pushes <= 20


async def test_gateway_only_routes_and_unknown_hosts_scope(env: Any) -> None:
    _, _, pusher = env
    push = pusher.view.push
    gateway_only = virtual_service("gw", "a", "private", "5s", gateways=["a/gw"])
    scope = affected([(None, gateway_only)], push, push)
    assert scope.types_for("router", "a", "gw-1") and not scope.types_for("sidecar", "a", "a1")
    unknown = virtual_service("ext", "a", "example.com", "5s")
    scope = affected([(None, unknown)], push, push)
    assert scope.types_for("sidecar", "b", "b1") == scope.types_for("sidecar", "a", "a1") != ()
    # Endpoints of a headless Service are listener addresses in netns mode: everything moves.
    headless = PushContext.build([namespace("a"), service("h", "a", "", headless=True)], version="1",
                                 options=MeshOptions())
    scope = affected([(None, endpoints("h", "a", "127.5.0.9"))], headless, headless)
    assert scope.everything
    # In netns mode a VirtualService also moves the capture listeners (TCP routes, sniffed ports).
    netns = PushContext.build([namespace("a"), service("private", "a", "10.96.5.1")], version="1",
                              options=MeshOptions(network="netns"))
    assert affected([(None, virtual_service("p", "a", "private", "5s"))], netns, netns).types_for(
        "sidecar", "a", "a1") == (LISTENER, ROUTE)
    assert push.options.network == "loopback"
    assert affected([(None, virtual_service("p", "a", "private", "5s"))], push, push).types_for(
        "sidecar", "a", "a1") == (ROUTE,)
    # What it cannot place (here a DestinationRule, which routes of other hosts may read) goes everywhere.
    rule = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": meta("dr", "a"),
            "spec": {"host": "private"}}
    assert affected([(None, rule)], push, push).everything


async def test_the_informers_equal_a_store_read_after_creates_updates_and_deletes(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    seed(store)
    dirty: list[int] = []
    informers = ConfigInformers(store, WATCHED_KINDS, lambda: dirty.append(1))
    informers.start()
    try:
        for i in range(30):
            name = f"p{i % 7}"
            ns = "a" if i % 2 else "b"
            if store.get("pods", ns, name) is None:
                store.create("pods", pod(name, ns, f"127.5.2.{i}", "x"))
            elif i % 3 == 0:
                store.delete("pods", ns, name)
            else:
                store.update("pods", pod(name, ns, f"127.5.3.{i}", "y"))
            store.update("endpoints", endpoints("private", "a", f"127.5.4.{i}"))
            if i % 4 == 0:
                await asyncio.sleep(0)  # the watch tasks apply some, drain() the rest
        store.delete("services", "b", "shared")
        informers.drain()
        for kind in WATCHED_KINDS:
            stored, _ = store.list_kind(kind)
            mine = sorted(informers.objects[kind].values(), key=lambda o: (o["metadata"].get("namespace") or "",
                                                                          o["metadata"]["name"]))
            theirs = sorted(stored, key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
            assert [(o["metadata"]["name"], o["metadata"]["resourceVersion"]) for o in mine] == \
                [(o["metadata"]["name"], o["metadata"]["resourceVersion"]) for o in theirs], kind
            assert all(m["kind"] and m["apiVersion"] for m in mine)
        _, changes, relisted = informers.take()
        assert relisted  # the first take reports everything
        store.update("endpoints", endpoints("private", "a", "127.5.9.9"))
        informers.drain()
        _, changes, relisted = informers.take()
        assert not relisted and len(changes) == 1
        old, new = changes[0]
        assert old is not None and new is not None and new["subsets"][0]["addresses"] == [{"ip": "127.5.9.9"}]
    finally:
        await informers.stop()
        store.close()


def test_the_translation_never_changes_the_objects_it_reads() -> None:
    """The pusher hands the translation the informers' objects, shared with every other watcher of the store:
    translating every golden scenario leaves them exactly as they were."""
    import copy

    from tests.unit.xds.xds_scenarios import (
        load_scenario,
        proxy_for,
        scenario_names,
        scenario_objects,
        scenario_options,
    )

    from sluice.xds.translate import generate

    for name in scenario_names():
        scenario = load_scenario(name)
        objects = scenario_objects(scenario)
        pristine = copy.deepcopy(objects)
        push = PushContext.build(objects, version="1", options=scenario_options(scenario))
        for prefix in scenario["proxies"]:
            generate(proxy_for(objects, prefix), push)
        assert objects == pristine, name


def test_with_a_sidecar_in_the_mesh_a_virtual_service_moves_every_type() -> None:
    """A Sidecar-scoped proxy's clusters include its VirtualServices' destinations, so a route change there is no
    longer RDS alone."""
    objects = [namespace("a"), service("private", "a", "10.96.5.1"), service("other", "a", "10.96.5.2")]
    plain = PushContext.build(objects, version="1", options=MeshOptions(network="netns"))
    assert not affected([(None, virtual_service("p", "a", "private", "5s"))], plain, plain).everything
    scoped = PushContext.build(objects + [{"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
                                           "metadata": meta("default", "a"), "spec": {"egress": [{"hosts": ["./*"]}]}}],
                               version="2", options=MeshOptions(network="netns"))
    scope = affected([(None, virtual_service("p", "a", "private", "5s"))], scoped, scoped)
    assert scope.everything and set(scope.types_for("sidecar", "a", "a1")) == set(TYPES)
