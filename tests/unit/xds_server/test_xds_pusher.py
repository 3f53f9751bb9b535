"""The pusher over a real SQLite store: debouncing, per-proxy versions, waiting for and forgetting pods."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.xds.stub import StubGenerator

from sluice import mesh
from sluice.store.sqlite import Store
from sluice.xds.cache import CLUSTER, ENDPOINT, LISTENER, ROUTE, SnapshotCache
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
