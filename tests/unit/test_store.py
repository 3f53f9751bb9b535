"""The SQLite store and the watch protocol over HTTP, in-process (no TLS, no daemon)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sluice.api.registry import Registry
from sluice.api.server import make_app
from sluice.store.sqlite import AlreadyExists, Conflict, Expired, Store

TOKEN = "t0ken"
H = {"Authorization": f"Bearer {TOKEN}"}


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
            "data": data}


def test_revisions_are_global_and_survive_reopen(tmp_path: Path) -> None:
    s = Store(tmp_path / "db")
    a = s.create("configmaps", cm("a"))
    b = s.create("configmaps", cm("b"))
    assert int(b["metadata"]["resourceVersion"]) == int(a["metadata"]["resourceVersion"]) + 1
    with pytest.raises(AlreadyExists):
        s.create("configmaps", cm("a"))
    with pytest.raises(Conflict):
        s.update("configmaps", cm("a", x="1"), expected_rv=int(a["metadata"]["resourceVersion"]) - 1)
    s.close()
    s2 = Store(tmp_path / "db")
    assert s2.revision == int(b["metadata"]["resourceVersion"])
    assert [o["metadata"]["name"] for o in s2.list_kind("configmaps")[0]] == ["a", "b"]


def test_failed_transaction_writes_nothing(tmp_path: Path) -> None:
    s = Store(tmp_path / "db")
    s.create("configmaps", cm("a"))
    rev = s.revision

    def body(tx: Any) -> Any:
        tx.create("configmaps", "default", "b", cm("b"))
        tx.create("configmaps", "default", "a", cm("a"))  # already exists: the whole transaction aborts

    with pytest.raises(AlreadyExists):
        s.transaction(body)
    assert s.revision == rev and s.get("configmaps", "default", "b") is None


def test_watch_history_resume_and_expiry(tmp_path: Path) -> None:
    s = Store(tmp_path / "db", history=5)
    first = s.create("configmaps", cm("c0"))
    for i in range(1, 10):
        s.create("configmaps", cm(f"c{i}"))
    with pytest.raises(Expired):
        s.watch("configmaps", None, int(first["metadata"]["resourceVersion"]))
    _, history = s.watch("configmaps", "default", s.revision - 3)
    assert [e.name for e in history] == ["c7", "c8", "c9"]


async def _client(tmp_path: Path, history: int = 20000) -> tuple[TestClient[Any, Any], Registry]:
    reg = Registry(Store(tmp_path / "db", history=history))
    reg.ensure_namespace("default")
    client = TestClient(TestServer(make_app(reg, TOKEN)))
    await client.start_server()
    return client, reg


async def _events(client: TestClient[Any, Any], query: str) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/namespaces/default/configmaps?{query}", headers=H)
    assert r.status == 200, await r.text()
    return [json.loads(line) for line in (await r.read()).splitlines() if line.strip()]


async def test_watch_list_sends_initial_events_then_bookmark(tmp_path: Path) -> None:
    client, reg = await _client(tmp_path)
    try:
        for n in ("a", "b"):
            r = await client.post("/api/v1/namespaces/default/configmaps", json=cm(n), headers=H)
            assert r.status == 201
        evs = await _events(client, "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                                    "&allowWatchBookmarks=true&timeoutSeconds=1")
        assert [(e["type"], e["object"]["metadata"].get("name")) for e in evs[:2]] == [("ADDED", "a"), ("ADDED", "b")]
        assert evs[2]["type"] == "BOOKMARK"
        assert evs[2]["object"]["kind"] == "ConfigMap" and evs[2]["object"]["apiVersion"] == "v1"
        assert evs[2]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        r = await client.get("/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true", headers=H)
        assert r.status == 422 and (await r.json())["reason"] == "Invalid"
    finally:
        await client.close()


async def test_watch_too_old_resource_version_is_410(tmp_path: Path) -> None:
    client, reg = await _client(tmp_path, history=3)
    try:
        for i in range(6):
            await client.post("/api/v1/namespaces/default/configmaps", json=cm(f"x{i}"), headers=H)
        evs = await _events(client, "watch=true&resourceVersion=1&timeoutSeconds=1")
        assert len(evs) == 1 and evs[0]["type"] == "ERROR"
        assert evs[0]["object"]["code"] == 410 and evs[0]["object"]["reason"] == "Expired"
        assert evs[0]["object"]["message"].startswith("too old resource version: 1 (")
    finally:
        await client.close()


async def test_watch_resume_and_selector_transitions(tmp_path: Path) -> None:
    client, reg = await _client(tmp_path)
    try:
        r = await client.post("/api/v1/namespaces/default/configmaps", json=cm("w"), headers=H)
        rv = (await r.json())["metadata"]["resourceVersion"]
        url = "/api/v1/namespaces/default/configmaps/w"
        merge = {**H, "Content-Type": "application/merge-patch+json"}
        await client.patch(url, data=b'{"metadata":{"labels":{"app":"x"}}}', headers=merge)
        await client.patch(url, data=b'{"metadata":{"labels":{"app":"y"}}}', headers=merge)
        await client.delete(url, headers=H)
        evs = await _events(client, f"watch=true&resourceVersion={rv}&timeoutSeconds=1")
        assert [e["type"] for e in evs] == ["MODIFIED", "MODIFIED", "DELETED"]
        # A watcher with a selector sees the object enter (ADDED) and leave (DELETED) the selection live.
        import asyncio

        rv2 = reg.store.revision
        task = asyncio.create_task(_events(client, f"watch=true&resourceVersion={rv2}&labelSelector=app%3Dx"
                                                   "&timeoutSeconds=2"))
        await asyncio.sleep(0.3)
        await client.post("/api/v1/namespaces/default/configmaps", json=cm("v"), headers=H)
        url = "/api/v1/namespaces/default/configmaps/v"
        await client.patch(url, data=b'{"metadata":{"labels":{"app":"x"}}}', headers=merge)
        await client.patch(url, data=b'{"metadata":{"labels":{"app":"y"}}}', headers=merge)
        evs = await task
        assert [e["type"] for e in evs] == ["ADDED", "DELETED"]
    finally:
        await client.close()


async def test_bookmarks_flow_and_dead_watchers_are_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from sluice.api import watch

    monkeypatch.setattr(watch, "BOOKMARK_INTERVAL", 0.1)
    client, reg = await _client(tmp_path)
    try:
        evs = await _events(client, "watch=true&allowWatchBookmarks=true&timeoutSeconds=0.5")
        assert evs and all(e["type"] == "BOOKMARK" for e in evs)
        assert evs[0]["object"]["metadata"]["resourceVersion"] == str(reg.store.revision)
        # A client that goes away is noticed at the next tick and its watcher is unregistered.
        r = await client.get("/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=30", headers=H)
        assert r.status == 200
        await asyncio.sleep(0.2)
        assert len(reg.store._watchers) == 1
        r.close()
        for _ in range(50):
            await asyncio.sleep(0.1)
            if not reg.store._watchers:
                break
        assert reg.store._watchers == []
    finally:
        await client.close()


async def test_deletecollection_with_selector(tmp_path: Path) -> None:
    client, reg = await _client(tmp_path)
    try:
        for name, app in (("a", "x"), ("b", "y"), ("c", "x")):
            body = cm(name)
            body["metadata"]["labels"] = {"app": app}
            assert (await client.post("/api/v1/namespaces/default/configmaps", json=body, headers=H)).status == 201
        r = await client.delete("/api/v1/namespaces/default/configmaps?labelSelector=app%3Dx", headers=H)
        assert r.status == 200
        assert sorted(i["metadata"]["name"] for i in (await r.json())["items"]) == ["a", "c"]
        left = await (await client.get("/api/v1/namespaces/default/configmaps", headers=H)).json()
        assert [i["metadata"]["name"] for i in left["items"]] == ["b"]
    finally:
        await client.close()
