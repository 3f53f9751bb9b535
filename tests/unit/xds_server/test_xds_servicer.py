"""The ADS servicer over fake streams: handshake, nonces, ACK/NACK, stale nonces, subscriptions, reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from tests.unit.xds_server.fixtures import NODE, FakeContext, names_of, request, resources

from sluice.xds.cache import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot, SnapshotCache
from sluice.xds.server import AdsServicer, Callbacks
from sluice.xds.status import StatusTracker, SyncState


@dataclass
class Harness:
    cache: SnapshotCache
    servicer: AdsServicer
    tracker: StatusTracker

    def publish(self, **kw: object) -> Snapshot:
        snap = Snapshot.build(resources(**kw), self.cache.get_snapshot(NODE))  # type: ignore[arg-type]
        self.cache.set_snapshot(NODE, snap)
        return snap

    def state(self, short: str) -> SyncState:
        [proxy] = self.tracker.proxies()
        return proxy.types[short].state

    async def open(self) -> tuple[FakeContext, asyncio.Task[None]]:
        ctx = FakeContext()
        task = asyncio.create_task(self.servicer.stream_aggregated_resources(None, ctx))
        return ctx, task


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    cache = SnapshotCache()

    def latest(node: str, t: str) -> str | None:
        s = cache.get_snapshot(node)
        return s.version(t) if s else None

    tracker = StatusTracker(latest)
    cb = Callbacks(on_stream_open=lambda i: tracker.opened(i.stream_id, i.node_id, i.peer, i.metadata),
                   on_stream_closed=lambda i: tracker.closed(i.stream_id),
                   on_request=lambda i, t: tracker.requested(i.stream_id, t),
                   on_response=lambda i, t, v, n: tracker.sent(i.stream_id, t, v, n),
                   on_ack=lambda i, t, v, n: tracker.acked(i.stream_id, t, v, n),
                   on_nack=lambda i, t, v, n, e: tracker.nacked(i.stream_id, t, v, n, e))
    harness = Harness(cache, AdsServicer(cache, [cb]), tracker)
    harness.publish()
    yield harness


async def test_initial_request_ack_and_no_resend(h: Harness) -> None:
    ctx, task = await h.open()
    ctx.send(request(CLUSTER, node=NODE))
    resp = await ctx.next()
    assert resp.version_info == "1" and resp.type_url == CLUSTER and sorted(names_of(resp)) == ["a", "b"]
    assert h.state("CDS") is SyncState.STALE  # sent, not yet acknowledged
    ctx.send(request(CLUSTER, version="1", nonce=resp.nonce))
    await ctx.nothing()
    assert h.state("CDS") is SyncState.SYNCED
    ctx.hang_up()
    await task
    assert h.tracker.proxies() == []


async def test_rds_and_eds_answer_requested_names_only_and_follow_subscription_changes(h: Harness) -> None:
    ctx, _ = await h.open()
    ctx.send(request(ENDPOINT, node=NODE, names=("a",)))
    first = await ctx.next()
    assert names_of(first) == ["a"]
    # An ACK that also changes the subscription (Envoy piggy-backs it) is answered at the same version.
    ctx.send(request(ENDPOINT, version="1", nonce=first.nonce, names=("a", "b")))
    second = await ctx.next()
    assert second.version_info == "1" and sorted(names_of(second)) == ["a", "b"]
    ctx.send(request(ENDPOINT, version="1", nonce=second.nonce, names=("a", "b")))
    await ctx.nothing()


async def test_config_change_pushes_only_changed_types_in_ads_order(h: Harness) -> None:
    ctx, _ = await h.open()
    subs = {CLUSTER: (), ENDPOINT: ("a", "b"), LISTENER: (), ROUTE: ("9080",)}
    ctx.send(request(CLUSTER, node=NODE))
    for t, names in subs.items():
        if t != CLUSTER:
            ctx.send(request(t, names=names))
    for _ in subs:
        r = await ctx.next()
        ctx.send(request(r.type_url, version=r.version_info, nonce=r.nonce, names=subs[r.type_url]))
    await ctx.nothing()
    h.publish(eps=("127.1.0.9",))
    r = await ctx.next()
    assert (r.type_url, r.version_info) == (ENDPOINT, "2")
    ctx.send(request(ENDPOINT, version="2", nonce=r.nonce, names=subs[ENDPOINT]))
    await ctx.nothing()
    h.publish(eps=("127.1.0.10",), domain="ratings", clusters=("a", "b", "c"))
    got = [await ctx.next() for _ in range(3)]
    assert [r.type_url for r in got] == [CLUSTER, ENDPOINT, ROUTE]
    assert [p.synced for p in h.tracker.proxies()] == [False]


async def test_nack_is_recorded_not_retried_and_a_later_change_is_sent(h: Harness) -> None:
    ctx, _ = await h.open()
    ctx.send(request(ROUTE, node=NODE, names=("9080",)))
    r1 = await ctx.next()
    ctx.send(request(ROUTE, version="1", nonce=r1.nonce, names=("9080",)))
    h.publish(domain="bad")
    r2 = await ctx.next()
    assert r2.version_info == "2"
    ctx.send(request(ROUTE, version="1", nonce=r2.nonce, names=("9080",), error="invalid regex"))
    await ctx.nothing(0.1)  # the rejected version is not sent again
    [proxy] = h.tracker.proxies()
    assert proxy.types["RDS"].state is SyncState.NACK
    assert proxy.types["RDS"].nack_error == "invalid regex" and proxy.types["RDS"].acked_version == "1"
    h.publish(domain="good")
    r3 = await ctx.next()
    assert r3.version_info == "3"
    ctx.send(request(ROUTE, version="3", nonce=r3.nonce, names=("9080",)))
    await ctx.nothing()
    assert h.state("RDS") is SyncState.SYNCED


async def test_stale_nonces_are_ignored(h: Harness) -> None:
    ctx, _ = await h.open()
    ctx.send(request(CLUSTER, node=NODE))
    r1 = await ctx.next()
    ctx.send(request(CLUSTER, version="1", nonce=r1.nonce))
    await ctx.nothing()
    h.publish(clusters=("a",))
    r2 = await ctx.next()
    # A late NACK for the superseded response must neither record a NACK nor trigger a send.
    ctx.send(request(CLUSTER, version="1", nonce=r1.nonce, error="late"))
    await ctx.nothing()
    assert h.state("CDS") is SyncState.STALE
    ctx.send(request(CLUSTER, version="2", nonce=r2.nonce))
    await ctx.nothing()
    assert h.state("CDS") is SyncState.SYNCED


async def test_reconnect_with_last_accepted_version_and_empty_nonce_is_answered(h: Harness) -> None:
    ctx, task = await h.open()
    ctx.send(request(LISTENER, node=NODE))
    r = await ctx.next()
    ctx.send(request(LISTENER, version=r.version_info, nonce=r.nonce))
    ctx.hang_up()
    await task
    again, _ = await h.open()
    again.send(request(LISTENER, node=NODE, version=r.version_info))
    r2 = await again.next()
    assert r2.version_info == r.version_info and names_of(r2) == ["l1"]


async def test_stream_without_node_is_refused(h: Harness) -> None:
    ctx, task = await h.open()
    ctx.send(request(CLUSTER))
    with pytest.raises(RuntimeError):
        await task
    assert ctx.aborted is not None and ctx.aborted[0] == grpc.StatusCode.INVALID_ARGUMENT


async def test_delta_xds_is_unimplemented(h: Harness) -> None:
    ctx = FakeContext()
    with pytest.raises(RuntimeError):
        await h.servicer.delta_aggregated_resources(None, ctx)
    assert ctx.aborted is not None and ctx.aborted[0] == grpc.StatusCode.UNIMPLEMENTED


async def test_unknown_types_stay_parked(h: Harness) -> None:
    ctx, _ = await h.open()
    secret = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
    ctx.send(request(secret, node=NODE, names=("default",)))
    await ctx.nothing()
    assert h.cache.parked(NODE) == 1
