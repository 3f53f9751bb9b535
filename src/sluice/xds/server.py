"""The ADS gRPC server (state of the world) and `XdsServer`, which assembles cache, pusher and status.

`AdsServicer` speaks the protocol: one reader task per stream, nonces, stale-nonce skipping, ACK/NACK
bookkeeping per type, RDS/EDS subscriptions by name. It reaches the config only through the cache's
`ConfigWatcher` protocol, and reports protocol events through `Callbacks`. `XdsServer` is what the
daemon runs: it binds the gRPC server (other services such as the telemetry ALS receiver are added
to the same server with `add_servicer`), starts the pusher that keeps the cache current from the store,
and answers status questions.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import json_format

from sluice.ratelog import RateLimitedLog
from sluice.store import Store
from sluice.xds.cache import (
    ADS_ORDER,
    WILDCARD_TYPES,
    ConfigWatcher,
    Response,
    SnapshotCache,
    WatchRequest,
    short_name,
)
from sluice.xds.identity import ProxyIdentity, peer_identity
from sluice.xds.pusher import ConfigGenerator, Pusher, TranslateGenerator

if TYPE_CHECKING:
    from sluice.xds.translate import MeshOptions
from sluice.xds.status import ConnectionStatus, ProxyStatus, StatusTracker

__all__ = ["AdsServicer", "Callbacks", "StreamInfo", "XdsServer", "ADS_SERVICE"]

log = logging.getLogger(__name__)

ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
_refusals = RateLimitedLog(log)  # refused streams are an attacker's to repeat: a few lines, not a disk


@dataclass(frozen=True)
class StreamInfo:
    stream_id: int
    node_id: str
    peer: str
    metadata: dict[str, Any]
    identity: ProxyIdentity | None = None  # from the client certificate, when the server requires one


@dataclass
class Callbacks:
    """Optional hooks on protocol events; every field may be left None."""

    on_stream_open: Callable[[StreamInfo], None] | None = None
    on_stream_closed: Callable[[StreamInfo], None] | None = None
    on_request: Callable[[StreamInfo, str], None] | None = None  # (stream, type URL)
    on_response: Callable[[StreamInfo, str, str, str], None] | None = None  # (stream, type, version, nonce)
    on_ack: Callable[[StreamInfo, str, str, str], None] | None = None  # (stream, type, version, nonce)
    on_nack: Callable[[StreamInfo, str, str, str, str], None] | None = None  # (…, rejected version, nonce, error)


@dataclass
class _TypeState:
    nonce: str | None = None  # the last nonce sent for this type; only a reply carrying it counts
    sent_version: str | None = None
    sent_names: frozenset[str] | None = None
    names: frozenset[str] = frozenset()
    cancel: Callable[[], None] | None = None


@dataclass(eq=False)
class _Stream:
    id: int
    peer: str
    out: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    info: StreamInfo | None = None
    types: dict[str, _TypeState] = field(default_factory=dict)
    closed: bool = False
    error: str | None = None
    error_code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT
    identity: ProxyIdentity | None = None


def _nonce_bytes(nonce: str) -> bytes:
    return bytes(discovery_pb2.DiscoveryResponse(nonce=nonce).SerializeToString())


def _serialize(message: bytes | discovery_pb2.DiscoveryResponse) -> bytes:
    # Responses arrive pre-serialised from the cache (memoised body + nonce); anything else is a message.
    return message if isinstance(message, bytes) else bytes(message.SerializeToString())


class AdsServicer:
    """`AggregatedDiscoveryService`, state of the world only (delta answers UNIMPLEMENTED).

    With `require_identity`, a stream must come with a proxy client certificate (`sluice.xds.identity`)
    and its node id must name the proxy the certificate names; otherwise it is closed with
    UNAUTHENTICATED or PERMISSION_DENIED, as istiod closes a stream whose identity does not match the proxy.
    """

    def __init__(self, cache: ConfigWatcher, callbacks: Iterable[Callbacks] = (), *,
                 require_identity: bool = False) -> None:
        self._cache = cache
        self.require_identity = require_identity
        self.refused = 0  # streams closed for a missing or mismatched identity
        self._callbacks = list(callbacks)
        self._stream_ids = itertools.count(1)
        self._nonces = itertools.count(1)  # one counter for all streams: nonces never repeat in a process
        self._streams: set[_Stream] = set()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(ADS_SERVICE, {
            "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                self.stream_aggregated_resources,
                request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
                response_serializer=_serialize),
            "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                self.delta_aggregated_resources,
                request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                response_serializer=_serialize),
        })

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    # ------------------------------------------------------------------ RPCs
    async def delta_aggregated_resources(self, request_iterator: Any, context: Any) -> None:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "incremental (delta) xDS is not implemented; use "
                                                           "state-of-the-world ADS")

    async def stream_aggregated_resources(self, request_iterator: Any, context: Any) -> None:
        identity = peer_identity(context) if self.require_identity else None
        if self.require_identity and identity is None:
            self.refused += 1
            await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                "authentication failure: no client certificate issued to a proxy")
        st = _Stream(next(self._stream_ids), str(context.peer()), identity=identity)
        self._streams.add(st)
        reader = asyncio.create_task(self._read(st, context), name=f"ads-reader-{st.id}")
        try:
            while True:
                item = await st.out.get()
                if item is None:
                    break
                await context.write(item)
        finally:
            reader.cancel()
            self._close(st)
        if st.error:
            await context.abort(st.error_code, st.error)

    async def _read(self, st: _Stream, context: Any) -> None:
        try:
            while True:
                req = await context.read()
                if req is grpc.aio.EOF:
                    break
                self.on_request(st, req)
                if st.error:
                    break
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a broken stream ends this stream, never the server
            log.debug("ADS stream %d ended: %r", st.id, e)
        finally:
            st.out.put_nowait(None)

    def _close(self, st: _Stream) -> None:
        if st.closed:
            return
        st.closed = True
        self._streams.discard(st)
        for ts in st.types.values():
            if ts.cancel is not None:
                ts.cancel()
                ts.cancel = None
        if st.info is not None:
            log.info("xDS stream %d closed: %s", st.id, st.info.node_id)
            self._emit("on_stream_closed", st.info)

    def _emit(self, hook: str, *args: Any) -> None:
        for cb in self._callbacks:
            fn = getattr(cb, hook)
            if fn is not None:
                fn(*args)

    # ------------------------------------------------------------------ protocol
    def on_request(self, st: _Stream, req: discovery_pb2.DiscoveryRequest) -> None:
        """Handle one DiscoveryRequest (public so tests can drive a stream without gRPC)."""
        if st.info is None:
            if not req.node.id:
                st.error = "the first DiscoveryRequest on a stream must carry node.id"
                return
            if self.require_identity and (st.identity is None or not st.identity.matches_node(req.node.id)):
                self.refused += 1
                _refusals("identity", f"xDS stream {st.id} refused: the client certificate names {st.identity}, "
                                      f"the node id is {req.node.id[:200]!r}")
                st.error_code = grpc.StatusCode.PERMISSION_DENIED
                st.error = (f"authorization failed: the client certificate names {st.identity}, "
                            f"not node {req.node.id!r}")
                return
            metadata = json_format.MessageToDict(req.node.metadata) if req.node.HasField("metadata") else {}
            st.info = StreamInfo(st.id, req.node.id, st.peer, metadata, st.identity)
            log.info("xDS stream %d opened: %s (%s)", st.id, req.node.id, st.peer)
            self._emit("on_stream_open", st.info)
        info = st.info
        type_url = req.type_url
        if not type_url:
            return  # ADS requires a type URL; nothing sensible to answer
        ts = st.types.get(type_url)
        if ts is None:
            ts = st.types[type_url] = _TypeState()
        nonce = req.response_nonce
        if nonce:
            if nonce != ts.nonce:
                # A reply to a response we have since superseded: the newer one's reply will follow.
                log.debug("stream %d %s: stale nonce %s (current %s)", st.id, short_name(type_url), nonce, ts.nonce)
                return
            if req.HasField("error_detail"):
                rejected = ts.sent_version or ""
                self._emit("on_nack", info, type_url, rejected, nonce, req.error_detail.message)
                # Park at the rejected version: the cache answers only when the config changes again,
                # so a bad version is never re-sent in a loop.
                have = rejected
            else:
                self._emit("on_ack", info, type_url, req.version_info, nonce)
                have = req.version_info
        else:
            # First request for the type on this stream (a new or reconnecting Envoy, which sends its last
            # accepted version): always answer, since version numbers from an earlier server mean nothing.
            self._emit("on_request", info, type_url)
            have = ""
        wildcard = type_url in WILDCARD_TYPES
        ts.names = frozenset() if wildcard else frozenset(req.resource_names)
        if ts.cancel is not None:
            ts.cancel()
            ts.cancel = None
        request = WatchRequest(info.node_id, type_url, have, ts.names, ts.sent_names if have else None)
        before = ts.nonce
        cancel = self._cache.create_watch(request, lambda resp: self._respond(st, resp))
        # An answer given synchronously consumed the watch (and set a new nonce); otherwise it is parked.
        ts.cancel = cancel if ts.nonce == before else None

    def _respond(self, st: _Stream, resp: Response) -> None:
        if st.closed or st.info is None:
            return
        ts = st.types.setdefault(resp.type_url, _TypeState())
        nonce = str(next(self._nonces))
        ts.nonce, ts.sent_version, ts.sent_names, ts.cancel = nonce, resp.version, ts.names, None
        st.out.put_nowait(resp.body + _nonce_bytes(nonce))
        self._emit("on_response", st.info, resp.type_url, resp.version, nonce)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class XdsServer:
    """The daemon's xDS endpoint: ADS on `address`, fed from `store` through the pusher.

    `options` is the translation's `MeshOptions`; `generator` replaces the translation (tests).
    """

    def __init__(self, store: Store, *, address: tuple[str, int], options: MeshOptions | None = None,
                 debounce: float = 0.0,
                 max_delay: float = 1.0, generator: ConfigGenerator | None = None,
                 unix_socket: str | None = None, tls: tuple[bytes, bytes, bytes] | None = None) -> None:
        self.store = store
        # (CA, certificate, key) PEMs: serve mutual TLS only, and answer only proxies whose certificate
        # names them (`sluice.daemon.pki.ProxyCa.server_credentials`). None: plain text (tests).
        self._tls = tls
        self._unix = unix_socket  # also serve here (sidecars in their own network namespaces)
        self.cache = SnapshotCache()
        self.tracker = StatusTracker(self._latest_version)
        self._host, self._port = address
        self._extra: list[Callable[[Any], None]] = []
        self._server: Any = None
        self._changed = asyncio.Event()
        self.status_generation = 0  # counts status changes (pushes, ACKs, NACKs, streams), for long polls
        self._status_waiters: list[asyncio.Future[None]] = []
        self._nacks_logged: set[tuple[str, str, str]] = set()
        self.pusher = Pusher(store, self.cache, generator or TranslateGenerator(options),
                             debounce=debounce, max_delay=max_delay, on_idle=self._wake)
        self.servicer = AdsServicer(self.cache, [
            Callbacks(on_stream_open=self._opened, on_stream_closed=self._closed,
                      on_request=lambda i, t: self.tracker.requested(i.stream_id, t),
                      on_response=lambda i, t, v, n: self.tracker.sent(i.stream_id, t, v, n),
                      on_ack=self._acked, on_nack=self._nacked),
        ], require_identity=tls is not None)
        self.cache.on_change(lambda _node: self._wake())

    # ------------------------------------------------------------------ lifecycle
    @property
    def address(self) -> tuple[str, int]:
        """The bound address (the real port when started with port 0)."""
        return self._host, self._port

    def add_servicer(self, register: Callable[[Any], None]) -> None:
        """Register another gRPC service on the same server before `start()`, e.g.
        `xds.add_servicer(lambda s: als_pb2_grpc.add_AccessLogServiceServicer_to_server(als, s))`."""
        if self._server is not None:
            raise RuntimeError("add_servicer must be called before start()")
        self._extra.append(register)

    async def start(self) -> None:
        server = grpc.aio.server(options=[
            ("grpc.so_reuseport", 0),  # a second daemon on the same port must fail, not share it
            ("grpc.max_concurrent_streams", 10000),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10000),
        ])
        server.add_generic_rpc_handlers((self.servicer.handler(),))
        for register in self._extra:
            register(server)
        def listen(address: str) -> int:
            if self._tls is None:
                return int(server.add_insecure_port(address))
            ca, cert, key = self._tls
            creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)
            return int(server.add_secure_port(address, creds))

        port = listen(f"{self._host}:{self._port}")
        if not port:
            raise OSError(f"cannot listen for xDS on {self._host}:{self._port}")
        self._port = port
        if self._unix:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._unix)  # a stale socket from a daemon that died
            if not listen(f"unix:{self._unix}"):
                raise OSError(f"cannot listen for xDS on unix:{self._unix}")
        await self.pusher.start()
        await server.start()
        self._server = server
        log.info("xDS (ADS) listening on %s:%d", self._host, self._port)

    async def stop(self, grace: float | None = 0.5) -> None:
        await self.pusher.stop()
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    # ------------------------------------------------------------------ callbacks
    def _opened(self, info: StreamInfo) -> None:
        self.tracker.opened(info.stream_id, info.node_id, info.peer, info.metadata)
        self.pusher.connected(info.node_id)  # generated by the push task (no debounce); its watches wait
        self._wake()

    def _closed(self, info: StreamInfo) -> None:
        self.tracker.closed(info.stream_id)
        if info.node_id not in self.tracker.node_ids():
            self.pusher.disconnected(info.node_id)
        self._wake()

    def _acked(self, info: StreamInfo, type_url: str, version: str, nonce: str) -> None:
        self.tracker.acked(info.stream_id, type_url, version, nonce)
        self._wake()

    def _nacked(self, info: StreamInfo, type_url: str, version: str, nonce: str, error: str) -> None:
        self.tracker.nacked(info.stream_id, type_url, version, nonce, error)
        key = (info.node_id, type_url, version)
        if key not in self._nacks_logged:
            self._nacks_logged.add(key)
            log.warning("%s rejected %s version %s: %s", info.node_id, short_name(type_url), version, error)
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self.status_generation += 1
        waiters, self._status_waiters = self._status_waiters, []
        for f in waiters:
            if not f.done():
                f.set_result(None)

    async def status_changed(self, after: int, timeout: float) -> None:
        """Return once `status_generation` is past `after`, or after `timeout` seconds."""
        if self.status_generation > after:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._status_waiters.append(fut)
        # A timer rather than `asyncio.wait_for` (a task per call): watchers wait once per push and ACK.
        timer = loop.call_later(timeout, _resolve, fut)
        try:
            await fut
        finally:
            timer.cancel()
            if fut in self._status_waiters:
                self._status_waiters.remove(fut)

    def _latest_version(self, node_id: str, type_url: str) -> str | None:
        snap = self.cache.get_snapshot(node_id)
        return snap.version(type_url) if snap is not None else None

    # ------------------------------------------------------------------ status
    @property
    def status(self) -> list[ProxyStatus]:
        return self.tracker.proxies()

    def status_of(self, proxies: Collection[str] | None) -> list[ProxyStatus]:
        """`status` of the proxies named `<pod>.<namespace>` only (all for None)."""
        return self.tracker.proxies(proxies)

    def synced(self, min_proxies: int = 0) -> bool:
        """Every connected proxy holds (ACKed) the latest version of every type the cache has for it,
        no store change is waiting to be pushed, and at least `min_proxies` proxies are connected."""
        if not self.pusher.idle:
            return False
        conns = self._connections(None)
        if len({c.node_id for c in conns}) < min_proxies:
            return False
        return all(self._conn_synced(conn) for conn in conns)

    def _connections(self, proxies: Collection[str] | None) -> list[ConnectionStatus]:
        """The streams of connected proxies (named `<pod>.<namespace>` in `proxies`, unless None) whose pods
        still exist."""
        return [c for c in self.tracker.connections() if c.node_id not in self.pusher.forgotten
                and (proxies is None or c.proxy in proxies)]

    def _conn_synced(self, conn: ConnectionStatus) -> bool:
        snap = self.cache.get_snapshot(conn.node_id)
        if snap is None:
            return False
        for type_url in ADS_ORDER:
            ts = snap.types.get(type_url)
            if ts is None:
                continue
            # CDS/LDS are always subscribed; RDS/EDS once the proxy has something to name.
            if type_url not in conn.types and (type_url in WILDCARD_TYPES or ts.resources):
                return False
        return self.tracker.stream_synced(conn)

    async def wait_proxies_synced(self, proxies: Collection[str] | None, timeout: float) -> bool:
        """Wait until no store change is waiting to be pushed and the proxies named `<pod>.<namespace>` in
        `proxies` (every connected one for None) hold the latest config; False if `timeout` seconds pass first.

        It is woken by every push and ACK, hundreds per change at scale, so it does not check every proxy each
        time: the proxies seen synced are set aside (they are answered in order, so each wake checks few), and
        only when none is left are they all checked once more."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pending: list[ConnectionStatus] | None = None
        while True:
            generation = self.status_generation
            if self.pusher.idle:
                if pending is None:
                    pending = sorted(self._connections(proxies), key=lambda c: c.node_id, reverse=True)
                while pending and self._conn_synced(pending[-1]):
                    pending.pop()
                if not pending:
                    if all(self._conn_synced(c) for c in self._connections(proxies)):
                        return True
                    pending = None
            else:
                pending = None  # a push is coming: whatever was synced may not be after it
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await self.status_changed(generation, remaining)

    async def wait_synced(self, timeout: float, *, min_proxies: int = 0) -> bool:
        """Wait until `synced(min_proxies)`; False if `timeout` seconds pass first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._changed.clear()
            if self.synced(min_proxies):
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return self.synced(min_proxies)
