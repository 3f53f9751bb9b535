"""Fixture resources and a fake gRPC stream context for the cache and servicer tests."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2

from sluice.xds.cache import CLUSTER, ENDPOINT, LISTENER, ROUTE, Resources

NODE = "sidecar~127.1.0.5~reviews-v1-abc.tutorial~tutorial.svc.cluster.local"


def cluster(name: str) -> cluster_pb2.Cluster:
    c = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    c.eds_cluster_config.service_name = name
    c.eds_cluster_config.eds_config.CopyFrom(config_source_pb2.ConfigSource(ads=config_source_pb2.AggregatedConfigSource()))
    return c


def cla(name: str, *ips: str) -> endpoint_pb2.ClusterLoadAssignment:
    lb = [endpoint_components_pb2.LbEndpoint(endpoint=endpoint_components_pb2.Endpoint(address=address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=ip, port_value=9080)))) for ip in ips]
    return endpoint_pb2.ClusterLoadAssignment(cluster_name=name,
                                              endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=lb)])


def listener(name: str, port: int) -> listener_pb2.Listener:
    return listener_pb2.Listener(name=name, address=address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address="127.1.0.5", port_value=port)))


def route(name: str, domain: str) -> route_pb2.RouteConfiguration:
    return route_pb2.RouteConfiguration(name=name, virtual_hosts=[route_components_pb2.VirtualHost(name=domain, domains=[domain])])


def resources(*, eps: tuple[str, ...] = ("127.1.0.7",), domain: str = "reviews", clusters: tuple[str, ...] = ("a", "b"),
              ) -> Resources:
    return {
        CLUSTER: {c: cluster(c) for c in clusters},
        ENDPOINT: {c: cla(c, *eps) for c in clusters},
        LISTENER: {"l1": listener("l1", 15001)},
        ROUTE: {"9080": route("9080", domain)},
    }


class FakeContext:
    """A grpc.aio ServicerContext stand-in: requests in through `send`, responses out through `responses`.

    `write` asserts the invariants every response must satisfy: a version, a type URL the stream asked
    for, resources of that type, and a nonce greater than every nonce before it on the stream.
    """

    def __init__(self) -> None:
        self._in: asyncio.Queue[Any] = asyncio.Queue()
        self.responses: asyncio.Queue[discovery_pb2.DiscoveryResponse] = asyncio.Queue()
        self.requested: set[str] = set()
        self.last_nonce = 0
        self.aborted: tuple[Any, str] | None = None
        self.all: list[discovery_pb2.DiscoveryResponse] = []

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"

    def send(self, req: discovery_pb2.DiscoveryRequest) -> None:
        self.requested.add(req.type_url)
        self._in.put_nowait(req)

    def hang_up(self) -> None:
        self._in.put_nowait(grpc.aio.EOF)

    async def read(self) -> Any:
        return await self._in.get()

    async def write(self, data: bytes) -> None:
        resp = discovery_pb2.DiscoveryResponse.FromString(data)
        assert resp.version_info, "every response carries a version"
        assert resp.type_url in self.requested, f"unrequested type {resp.type_url}"
        assert int(resp.nonce) > self.last_nonce, "nonces increase"
        for r in resp.resources:
            assert r.type_url == resp.type_url, "resources match the response type"
        self.last_nonce = int(resp.nonce)
        self.all.append(resp)
        self.responses.put_nowait(resp)

    async def abort(self, code: Any, details: str) -> None:
        self.aborted = (code, details)
        raise RuntimeError(f"aborted: {code} {details}")

    async def next(self, timeout: float = 1.0) -> discovery_pb2.DiscoveryResponse:
        return await asyncio.wait_for(self.responses.get(), timeout)

    async def nothing(self, wait: float = 0.05) -> None:
        await asyncio.sleep(wait)
        assert self.responses.empty(), f"unexpected response: {self.responses.get_nowait()}"


def request(type_url: str, *, version: str = "", nonce: str = "", names: tuple[str, ...] = (), node: str | None = None,
            error: str | None = None) -> discovery_pb2.DiscoveryRequest:
    req = discovery_pb2.DiscoveryRequest(type_url=type_url, version_info=version, response_nonce=nonce,
                                         resource_names=list(names))
    if node:
        req.node.id = node
        req.node.metadata.update({"NAMESPACE": "tutorial", "NAME": "reviews-v1-abc", "ISTIO_VERSION": "1.24.0"})
    if error:
        req.error_detail.code = 3
        req.error_detail.message = error
    return req


def names_of(resp: discovery_pb2.DiscoveryResponse) -> list[str]:
    out = []
    for r in resp.resources:
        a = any_pb2.Any()
        a.CopyFrom(r)
        msg: Any = {CLUSTER: cluster_pb2.Cluster, ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
                    LISTENER: listener_pb2.Listener, ROUTE: route_pb2.RouteConfiguration}[resp.type_url]()
        a.Unpack(msg)
        out.append(msg.cluster_name if resp.type_url == ENDPOINT else msg.name)
    return out
