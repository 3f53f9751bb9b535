"""The pusher over a real SQLite store: debouncing, per-proxy versions, waiting for and forgetting pods."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.xds.stub import StubGenerator, StubProxy, StubPush

from sluice import mesh
from sluice.store.sqlite import Store
from sluice.xds.cache import CLUSTER, ENDPOINT, LISTENER, ROUTE, Resources, Snapshot, SnapshotCache
from sluice.xds.pusher import Pusher

NS = "t"


def obj(kind: str, name: str, **rest: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": NS}, **rest}


def pod(name: str, ip: str) -> dict[str, Any]:
    return obj("Pod", name, spec={"containers": [{"name": "app"}]}, status={"podIP": ip})


def eps(name: str, *ips: str) -> dict[str, Any]:
    return obj("Endpoints", name, subsets=[{"addresses": [{"ip": i} for i in ips], "ports": [{"port": 9080}]}])


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Store, SnapshotCache, Pusher, StubGenerator]]:
    store = Store(tmp_path / "db")
    store.create("services", obj("Service", "reviews", spec={"ports": [{"port": 9080}]}))
    store.create("endpoints", eps("reviews", "127.1.0.7"))
    store.create("pods", pod("a", "127.1.0.2"))
    store.create("pods", pod("b", "127.1.0.3"))
    cache, gen = SnapshotCache(), StubGenerator()
    pusher = Pusher(store, cache, gen, debounce=0.05, max_delay=0.3)
    await pusher.start()
    yield store, cache, pusher, gen
    await pusher.stop()
    store.close()


async def settle(pusher: Pusher) -> None:
    await asyncio.sleep(0)
    while not pusher.idle:
        await asyncio.sleep(0.01)


A = mesh.sidecar_node_id("127.1.0.2", "a", NS)
B = mesh.sidecar_node_id("127.1.0.3", "b", NS)


async def test_connect_generates_at_once_and_a_burst_of_writes_is_one_push(env: Any) -> None:
    store, cache, pusher, _ = env
    pusher.connected(A)
    await settle(pusher)
    assert cache.get_snapshot(A) is not None and pusher.pushes == 0  # no debounce, no full push on connect
    for i in range(10):
        store.update("endpoints", eps("reviews", f"127.1.0.{10 + i}"))
    await settle(pusher)
    assert pusher.pushes == 1
    snap = cache.get_snapshot(A)
    assert snap is not None
    assert {t: snap.version(t) for t in (CLUSTER, ENDPOINT, LISTENER, ROUTE)} == \
        {CLUSTER: "1", ENDPOINT: "2", LISTENER: "1", ROUTE: "1"}


async def test_a_change_reaches_only_the_proxies_it_affects(env: Any) -> None:
    store, cache, pusher, _ = env
    pusher.connected(A)
    pusher.connected(B)
    await settle(pusher)
    # Pod b's own IP changes: only b's listener differs; a's snapshot is untouched.
    store.update("pods", pod("b", "127.1.0.30"))
    await settle(pusher)
    a, b = cache.get_snapshot(A), cache.get_snapshot(B)
    assert a is not None and b is not None
    assert a.version(LISTENER) == "1" and b.version(LISTENER) == "2"


async def test_unknown_pods_wait_and_deleted_pods_are_forgotten(env: Any) -> None:
    store, cache, pusher, _ = env
    late = mesh.sidecar_node_id("127.1.0.4", "late", NS)
    pusher.connected(late)
    await settle(pusher)
    assert cache.get_snapshot(late) is None and late not in pusher.forgotten
    store.create("pods", pod("late", "127.1.0.4"))
    await settle(pusher)
    assert cache.get_snapshot(late) is not None
    store.delete("pods", NS, "late")
    await settle(pusher)
    assert cache.get_snapshot(late) is None and late in pusher.forgotten


async def test_a_generator_failure_keeps_the_previous_snapshot(env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store, cache, pusher, gen = env
    pusher.connected(A)
    await settle(pusher)
    before = cache.get_snapshot(A)

    def boom(*_: Any) -> Any:
        raise ValueError("translation bug")

    monkeypatch.setattr(gen, "generate", boom)
    store.update("endpoints", eps("reviews", "127.1.0.99"))
    await settle(pusher)
    assert cache.get_snapshot(A) is before and pusher.pushes == 1


class GatedGenerator(StubGenerator):
    """The stub translation, stopping before it generates for pod `gate_pod` until `gate` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate_pod = ""

    def generate(self, proxy: StubProxy, push: StubPush) -> Resources:
        if proxy.pod == self.gate_pod:
            assert self.gate.wait(20), "the test never opened the gate"
        return super().generate(proxy, push)


async def test_the_first_proxies_get_their_config_while_the_others_are_generated(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    store.create("services", obj("Service", "reviews", spec={"ports": [{"port": 9080}]}))
    store.create("endpoints", eps("reviews", "127.1.0.7"))
    nodes = []
    for i in range(20):
        store.create("pods", pod(f"p{i:02}", f"127.1.1.{i + 100}"))
        nodes.append(mesh.sidecar_node_id(f"127.1.1.{i + 100}", f"p{i:02}", NS))
    cache, gen = SnapshotCache(), GatedGenerator()
    pusher = Pusher(store, cache, gen)
    await pusher.start()
    try:
        for node in nodes:
            pusher.connected(node)
        await settle(pusher)
        gen.gate_pod = "p15"  # nodes are generated in node id order (p00 first): p15 holds this push up
        store.update("endpoints", eps("reviews", "127.1.0.8"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while (cache.get_snapshot(nodes[0]) or Snapshot({})).version(ENDPOINT) != "2":
            assert loop.time() < deadline, "the first proxy's snapshot was not published during the push"
            await asyncio.sleep(0.01)
        assert not pusher.idle and cache.get_snapshot(nodes[19]).version(ENDPOINT) == "1"  # type: ignore[union-attr]
        gen.gate.set()
        await settle(pusher)
        assert {cache.get_snapshot(n).version(ENDPOINT) for n in nodes} == {"2"}  # type: ignore[union-attr]
        assert pusher.pushes == 1
    finally:
        gen.gate.set()
        await pusher.stop()
        store.close()
