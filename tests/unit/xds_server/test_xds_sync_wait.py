"""Waiting for proxies to be synced: `XdsServer.wait_proxies_synced` and `/debug/syncz?until=synced`, over the real
pusher, cache, servicer and status tracker, with scripted Envoys on fake streams that ACK what they get (or hold
their ACKs back)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from envoy.service.discovery.v3 import discovery_pb2
from tests.integration.xds.stub import StubGenerator
from tests.unit.xds_server.fixtures import names_of

from sluice import mesh
from sluice.store.sqlite import Store
from sluice.xds import debug
from sluice.xds.cache import CLUSTER, ENDPOINT, LISTENER, ROUTE
from sluice.xds.server import XdsServer

NS = "t"
VS = "virtualservices.networking.istio.io"


def obj(kind: str, name: str, **rest: Any) -> dict[str, Any]:
    api = "networking.istio.io/v1" if kind == "VirtualService" else "v1"
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": NS}, **rest}


def vs(regex: str) -> dict[str, Any]:
    return obj("VirtualService", "reviews", spec={"hosts": ["reviews"], "http": [
        {"match": [{"uri": {"regex": regex}}], "route": [{"destination": {"host": "reviews"}}]}]})


class ScriptedEnvoy:
    """A stream context that subscribes like Envoy (CDS and LDS, then the EDS and RDS names they name) and ACKs
    every response, unless `hold` is set: then its ACKs wait until `release()`."""

    def __init__(self, pod: str, ip: str) -> None:
        self.node = mesh.sidecar_node_id(ip, pod, NS)
        self.hold = False
        self.held: list[discovery_pb2.DiscoveryRequest] = []
        self.acked: dict[str, str] = {}
        self._in: asyncio.Queue[Any] = asyncio.Queue()
        self._send(discovery_pb2.DiscoveryRequest(type_url=CLUSTER, node={"id": self.node}))
        self._send(discovery_pb2.DiscoveryRequest(type_url=LISTENER))

    def _send(self, req: discovery_pb2.DiscoveryRequest) -> None:
        self._in.put_nowait(req)

    def release(self) -> None:
        self.hold = False
        for req in self.held:
            self._send(req)
            self.acked[req.type_url] = req.version_info
        self.held.clear()

    def hang_up(self) -> None:
        self._in.put_nowait(grpc.aio.EOF)

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    async def read(self) -> Any:
        return await self._in.get()

    async def write(self, data: bytes) -> None:
        resp = discovery_pb2.DiscoveryResponse.FromString(data)
        if resp.type_url == CLUSTER:
            self._send(discovery_pb2.DiscoveryRequest(type_url=ENDPOINT, resource_names=names_of(resp)))
        if resp.type_url == LISTENER:
            self._send(discovery_pb2.DiscoveryRequest(type_url=ROUTE, resource_names=["http_proxy"]))
        names = names_of(resp) if resp.type_url in (ENDPOINT, ROUTE) else []
        ack = discovery_pb2.DiscoveryRequest(type_url=resp.type_url, version_info=resp.version_info,
                                             response_nonce=resp.nonce, resource_names=names)
        if self.hold:
            self.held.append(ack)
        else:
            self._send(ack)
            self.acked[resp.type_url] = resp.version_info

    async def abort(self, code: Any, details: str) -> None:
        raise AssertionError(f"stream aborted: {code} {details}")


Env = tuple[Store, XdsServer, ScriptedEnvoy, ScriptedEnvoy]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    store = Store(tmp_path / "db")
    store.create("services", obj("Service", "reviews", spec={"ports": [{"port": 9080}]}))
    store.create("endpoints", obj("Endpoints", "reviews", subsets=[{"addresses": [{"ip": "127.1.0.7"}],
                                                                    "ports": [{"port": 9080}]}]))
    for name, ip in (("a", "127.1.0.2"), ("b", "127.1.0.3")):
        store.create("pods", obj("Pod", name, spec={"containers": [{"name": "app"}]}, status={"podIP": ip}))
    xds = XdsServer(store, address=("127.0.0.1", 0), generator=StubGenerator())
    await xds.pusher.start()
    a, b = ScriptedEnvoy("a", "127.1.0.2"), ScriptedEnvoy("b", "127.1.0.3")
    streams = [asyncio.create_task(xds.servicer.stream_aggregated_resources(None, e)) for e in (a, b)]
    try:
        assert await xds.wait_synced(10, min_proxies=2)
        yield store, xds, a, b
    finally:
        for e in (a, b):
            e.hang_up()
        await asyncio.gather(*streams)
        await xds.pusher.stop()
        store.close()


async def test_a_wait_ends_when_the_proxies_asked_about_have_acked_the_change(env: Env) -> None:
    store, xds, a, b = env
    assert await xds.wait_proxies_synced(None, 5)  # synced already: at once
    routes = (a.acked[ROUTE], b.acked[ROUTE])
    b.hold = True
    store.create(VS, vs("/v2"))  # every proxy's routes change
    both = asyncio.create_task(xds.wait_proxies_synced(None, 30))
    assert await xds.wait_proxies_synced({f"a.{NS}"}, 10)  # a alone is enough for a wait on a
    assert a.acked[ROUTE] != routes[0]
    await asyncio.sleep(0.05)
    assert not both.done()  # b has its new routes but has not ACKed them
    b.release()
    assert await asyncio.wait_for(both, 10)
    assert b.acked[ROUTE] != routes[1]
    b.hold = True
    store.update(VS, vs("/v3"))
    assert not await xds.wait_proxies_synced(None, 0.2)  # it times out while b holds its ACK
    b.release()
    assert await xds.wait_proxies_synced(None, 10)


async def test_syncz_until_synced_answers_with_the_proxies_still_behind(env: Env) -> None:
    store, xds, a, b = env
    app = web.Application()
    app.add_routes(debug.routes(xds))
    async with TestClient(TestServer(app)) as client:
        r = await client.get("/debug/syncz", params={"until": "soon"})
        assert r.status == 400 and (await r.json()) == {"error": 'until must be "synced"'}
        routes = b.acked[ROUTE]
        store.create(VS, vs("/v2"))
        r = await client.get("/debug/syncz", params={"until": "synced"})
        assert r.headers[debug.SYNCED_HEADER] == "true" and await r.json() == []
        assert a.acked[ROUTE] == b.acked[ROUTE] != routes
        b.hold = True
        store.update(VS, vs("/v3"))
        r = await client.get("/debug/syncz", params={"until": "synced", "proxy": f"a.{NS}"})
        assert r.headers[debug.SYNCED_HEADER] == "true" and await r.json() == []
        rows = await (await client.get("/debug/syncz", params={"proxy": f"b.{NS}"})).json()
        assert [r["proxy"] for r in rows] == [f"b.{NS}"] and rows[0]["types"]["RDS"]["state"] == "STALE"
        b.release()
        r = await client.get("/debug/syncz", params={"until": "synced", "proxy": f"b.{NS}"})
        assert r.headers[debug.SYNCED_HEADER] == "true"
