"""The snapshot cache: per-node, immutable xDS snapshots and one-shot watches on them.

Written by the pusher (`sluice.xds.pusher`), read by the ADS servicer (`sluice.xds.server`) through the
small `ConfigWatcher` protocol, and by `debug.py` for `/debug/config_dump`. The cache knows nothing of
nonces, ACKs or streams: a watch says "node N has version V of type T (and these names); tell me once
when there is something else", and the cache answers it immediately or when `set_snapshot` makes it
answerable. Protocol bookkeeping lives in the server.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from sluice.xds.typeurls import ADS_ORDER, CLUSTER, ENDPOINT, LISTENER, ROUTE

__all__ = [
    "CLUSTER", "ENDPOINT", "LISTENER", "ROUTE", "ADS_ORDER", "WILDCARD_TYPES", "short_name",
    "Resources", "TypeSnapshot", "Snapshot", "WatchRequest", "Response", "ConfigWatcher", "ConfigFetcher",
    "SnapshotCache",
]

log = logging.getLogger(__name__)

# CDS and LDS are state-of-the-world wildcard subscriptions: every response carries the full set.
# RDS and EDS are answered with exactly the names Envoy asked for.
WILDCARD_TYPES = frozenset({CLUSTER, LISTENER})

_SHORT = {CLUSTER: "CDS", ENDPOINT: "EDS", LISTENER: "LDS", ROUTE: "RDS"}
_HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_MEMO_LIMIT = 16  # distinct name sets remembered per type snapshot (EDS subscriptions change rarely)

_V = TypeVar("_V")

Resources = Mapping[str, Mapping[str, Message]]
"""type URL → resource name → message: what the translation produces for one proxy."""


def short_name(type_url: str) -> str:
    """`CDS`, `EDS`, `LDS`, `RDS`, or the message name for anything else."""
    return _SHORT.get(type_url, type_url.rsplit(".", 1)[-1])


class _Memo:
    """A thread-safe memo keyed by the identity of objects it keeps alive (so an id is never reused while its
    entry lives), least recently used first out, bounded by entries and by the bytes `weight` says they keep:
    the translation shares one message among the proxies (and pushes) that hold the same resource, so packing
    and inspecting it happens once, not once per proxy."""

    def __init__(self, items: int, size: int, weight: Callable[[object, object], int]) -> None:
        self._items, self._size, self._weight = items, size, weight
        self._total = 0
        self._values: OrderedDict[int, tuple[object, object, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: object, build: Callable[[], _V]) -> _V:
        with self._lock:
            found = self._values.get(id(key))
            if found is not None and found[0] is key:
                self._values.move_to_end(id(key))
                return found[1]  # type: ignore[return-value]
        value = build()
        weight = self._weight(key, value)
        with self._lock:
            old = self._values.pop(id(key), None)
            if old is not None:
                self._total -= old[2]
            self._values[id(key)] = (key, value, weight)
            self._total += weight
            while self._values and (len(self._values) > self._items or self._total > self._size):
                self._total -= self._values.popitem(last=False)[1][2]
        return value


def _packed_weight(_message: object, packed: object) -> int:
    return 2 * len(packed.value) if isinstance(packed, any_pb2.Any) else 0  # the message and its bytes


def _any_weight(packed: object, _refs: object) -> int:
    return len(packed.value) if isinstance(packed, any_pb2.Any) else 0


_packed = _Memo(16384, 64 * 1024 * 1024, _packed_weight)
_references = _Memo(16384, 64 * 1024 * 1024, _any_weight)


def _pack(message: Message | any_pb2.Any) -> any_pb2.Any:
    if isinstance(message, any_pb2.Any):
        return message

    def pack() -> any_pb2.Any:
        packed = any_pb2.Any()
        # Deterministic bytes make the content hash stable across map orderings.
        packed.Pack(message, deterministic=True)
        return packed

    return _packed.get(message, pack)


class _Bodies:
    """Serialised resources of a response by (type, content digest, names), shared by every proxy whose
    snapshot holds the same content at whatever version: 100 sidecars with one route table serialise it once.
    Bounded by bytes."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._size = 0
        self._values: OrderedDict[tuple[str, str, frozenset[str] | None], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, frozenset[str] | None], build: Callable[[], bytes]) -> bytes:
        with self._lock:
            found = self._values.get(key)
            if found is not None:
                self._values.move_to_end(key)
                return found
        value = build()
        with self._lock:
            if key not in self._values:
                self._values[key] = value
                self._size += len(value)
            while self._size > self._limit and len(self._values) > 1:
                _, old = self._values.popitem(last=False)
                self._size -= len(old)
        return value


_bodies = _Bodies(64 * 1024 * 1024)


@dataclass(frozen=True)
class TypeSnapshot:
    """One type's resources at one version, packed once; responses are serialised once per name set."""

    type_url: str
    serial: int
    resources: Mapping[str, any_pb2.Any]
    digest: str
    _responses: dict[frozenset[str] | None, bytes] = field(default_factory=dict, compare=False, repr=False)
    # The names the resources reference over ADS (`references`), worked out once: shared by every version and
    # proxy holding the same resources.
    _refs: list[frozenset[str]] = field(default_factory=list, compare=False, repr=False)

    @property
    def version(self) -> str:
        return str(self.serial)

    def bumped(self, serial: int, resources: TypeSnapshot) -> TypeSnapshot:
        """`resources`'s content (and what is worked out from it) at version `serial`."""
        return TypeSnapshot(self.type_url, serial, resources.resources, resources.digest,
                            _refs=resources._refs)

    def references(self) -> frozenset[str]:
        """What the resources name over ADS: the EDS names of CDS clusters, the RDS names of LDS listeners."""
        if not self._refs:
            refs = _eds_references(self) if self.type_url == CLUSTER else \
                _rds_references(self) if self.type_url == LISTENER else set()
            self._refs.append(frozenset(refs))
        return self._refs[0]

    @staticmethod
    def digest_of(resources: Mapping[str, any_pb2.Any]) -> str:
        h = hashlib.sha256()
        for name in sorted(resources):
            body = resources[name]
            h.update(name.encode())
            h.update(b"\0")
            h.update(body.type_url.encode())
            h.update(len(body.value).to_bytes(8, "big"))
            h.update(body.value)
        return h.hexdigest()

    @classmethod
    def build(cls, type_url: str, messages: Mapping[str, Message | any_pb2.Any], serial: int) -> TypeSnapshot:
        packed = {name: _pack(m) for name, m in sorted(messages.items())}
        return cls(type_url, serial, packed, cls.digest_of(packed))

    def select(self, names: frozenset[str] | None) -> list[str]:
        """The resource names a response carries: all of them for None (wildcard), else the requested
        names this snapshot has."""
        if names is None:
            return list(self.resources)
        return [n for n in sorted(names) if n in self.resources]

    def response_body(self, names: frozenset[str] | None) -> bytes:
        """A serialised DiscoveryResponse without its nonce (the server appends that per stream).

        Protobuf messages concatenate, so `body + DiscoveryResponse(nonce=n)` is a complete response; the
        expensive part, serialising the resources, happens once however many proxies receive it.
        """
        body = self._responses.get(names)
        if body is None:
            def resources() -> bytes:
                return bytes(discovery_pb2.DiscoveryResponse(
                    type_url=self.type_url, resources=[self.resources[n] for n in self.select(names)],
                ).SerializeToString())

            # Fields concatenate: the shared resources part, then this snapshot's version.
            body = _bodies.get((self.type_url, self.digest, names), resources) + \
                discovery_pb2.DiscoveryResponse(version_info=self.version).SerializeToString()
            if len(self._responses) >= _MEMO_LIMIT:
                self._responses.clear()
            self._responses[names] = body
        return body


@dataclass(frozen=True)
class Snapshot:
    """Everything one node should have: per type URL, a version and the resources."""

    types: Mapping[str, TypeSnapshot]

    def version(self, type_url: str) -> str | None:
        ts = self.types.get(type_url)
        return ts.version if ts is not None else None

    @classmethod
    def build(cls, resources: Resources, previous: Snapshot | None = None,
              only: Collection[str] | None = None,
              shared: dict[int, tuple[Mapping[str, Message], TypeSnapshot]] | None = None) -> Snapshot:
        """Pack `resources`, carrying each type's version over from `previous` when its content is
        unchanged and bumping it otherwise, so only the types that really changed are pushed. With `only`,
        `resources` holds those types alone and the others are `previous`'s, as they were. `shared` (one
        push's) remembers the packing of each resources mapping, which the translation hands many proxies."""
        types: dict[str, TypeSnapshot] = {}
        # A type present before but absent now becomes empty (state of the world: Envoy removes it all).
        type_urls = set(resources) | (set(previous.types) if previous is not None else set())
        for type_url in _ordered(type_urls):
            if only is not None and type_url not in only and previous is not None and type_url in previous.types:
                types[type_url] = previous.types[type_url]
                continue
            messages = resources.get(type_url) or {}
            # Proxies sharing one resources mapping (the translation memoises it) share its packing and digest.
            known = shared.get(id(messages)) if shared is not None else None
            if known is not None and known[0] is messages:
                built = known[1]
            else:
                built = TypeSnapshot.build(type_url, messages, 1)
                if shared is not None:
                    shared[id(messages)] = (messages, built)
            old = previous.types.get(type_url) if previous is not None else None
            if old is not None:
                if old.digest == built.digest:
                    types[type_url] = old  # keeps its version and its memoised responses
                    continue
                built = old.bumped(old.serial + 1, built)
            types[type_url] = built
        return cls(types)

    def changed_types(self, previous: Snapshot | None) -> list[str]:
        """Type URLs whose version differs from `previous`, in ADS order."""
        return [t for t in _ordered(self.types)
                if previous is None or previous.version(t) != self.types[t].version]

    def consistent(self) -> list[str]:
        """Dangling references, as readable problems: EDS names a CDS cluster expects but the snapshot
        lacks, and route configurations a listener names over RDS that the snapshot lacks."""
        problems: list[str] = []
        for refs, held, what in ((CLUSTER, ENDPOINT, "cluster load assignment {!r} is referenced by CDS but missing"),
                                 (LISTENER, ROUTE, "route configuration {!r} is referenced by LDS but missing")):
            ts, target = self.types.get(refs), self.types.get(held)
            if ts is not None:
                missing = ts.references().difference(target.resources if target is not None else ())
                problems.extend(what.format(name) for name in sorted(missing))
        return problems


def _ordered(type_urls: Iterable[str]) -> list[str]:
    present = list(type_urls)
    rank = {t: i for i, t in enumerate(ADS_ORDER)}
    return sorted(present, key=lambda t: (rank.get(t, len(rank)), t))


def _eds_references(ts: TypeSnapshot | None) -> set[str]:
    out: set[str] = set()
    for name, packed in (ts.resources.items() if ts else ()):
        out.update(_references.get(packed, functools.partial(_cluster_eds, packed, name)))
    return out


def _cluster_eds(packed: any_pb2.Any, name: str) -> frozenset[str]:
    c = cluster_pb2.Cluster()
    packed.Unpack(c)
    return frozenset({c.eds_cluster_config.service_name or name}) if c.type == cluster_pb2.Cluster.EDS \
        else frozenset()


def _rds_references(ts: TypeSnapshot | None) -> set[str]:
    out: set[str] = set()
    for packed in (ts.resources.values() if ts else ()):
        out.update(_references.get(packed, functools.partial(_listener_rds, packed)))
    return out


def _listener_rds(packed: any_pb2.Any) -> frozenset[str]:
    out: set[str] = set()
    lst = listener_pb2.Listener()
    packed.Unpack(lst)
    chains = list(lst.filter_chains)
    if lst.HasField("default_filter_chain"):
        chains.append(lst.default_filter_chain)
    for chain in chains:
        for f in chain.filters:
            if f.typed_config.type_url != _HCM_TYPE:
                continue
            hcm = http_connection_manager_pb2.HttpConnectionManager()
            f.typed_config.Unpack(hcm)
            if hcm.HasField("rds"):
                out.add(hcm.rds.route_config_name)
    return frozenset(out)


@dataclass(frozen=True)
class WatchRequest:
    """What a stream knows about one type, as the server tells the cache.

    `version` is the version the client holds (its ACKed version), the version it rejected after a NACK
    (so the cache does not answer with it again), or "" to force an answer (a new stream).
    `sent_names` is the name set last answered at that version (for RDS/EDS subscription changes).
    """

    node_id: str
    type_url: str
    version: str
    names: frozenset[str] = frozenset()
    sent_names: frozenset[str] | None = None


@dataclass(frozen=True)
class Response:
    type_url: str
    version: str
    names: frozenset[str]  # the resource names carried
    body: bytes  # serialised DiscoveryResponse without nonce


Sink = Callable[[Response], None]
Cancel = Callable[[], None]


class ConfigWatcher(Protocol):
    def create_watch(self, request: WatchRequest, sink: Sink) -> Cancel:
        """Answer `request` through `sink` now or once, later; the returned callable cancels it."""
        ...


class ConfigFetcher(Protocol):
    def fetch(self, request: WatchRequest) -> Response | None:
        """The answer `request` would get now, or None if the client is up to date."""
        ...


def _noop() -> None:
    return None


@dataclass(eq=False)
class _Watch:
    request: WatchRequest
    sink: Sink


class SnapshotCache:
    """Snapshots keyed by node id, and the watches parked on them."""

    def __init__(self) -> None:
        self._snapshots: dict[str, Snapshot] = {}
        self._watches: dict[str, list[_Watch]] = {}
        self._listeners: list[Callable[[str], None]] = []

    # ------------------------------------------------------------- snapshots
    def get_snapshot(self, node_id: str) -> Snapshot | None:
        return self._snapshots.get(node_id)

    def nodes(self) -> list[str]:
        return sorted(self._snapshots)

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call `listener(node_id)` after every set/clear (the server uses it to re-evaluate sync state)."""
        self._listeners.append(listener)

    def set_snapshot(self, node_id: str, snapshot: Snapshot) -> list[str]:
        """Publish `snapshot` for `node_id` and answer the parked watches it makes answerable, in ADS
        order; returns the type URLs answered."""
        self._snapshots[node_id] = snapshot
        answered: list[str] = []
        parked = self._watches.get(node_id, [])
        rank = {t: i for i, t in enumerate(ADS_ORDER)}
        for w in sorted(parked, key=lambda w: rank.get(w.request.type_url, len(rank))):
            resp = _answer(snapshot, w.request)
            if resp is None:
                continue
            parked.remove(w)  # one-shot: the next request from the stream parks a new watch
            answered.append(w.request.type_url)
            w.sink(resp)
        self._notify(node_id)
        return answered

    def clear_snapshot(self, node_id: str) -> None:
        """Forget a node's snapshot (its pod is gone); its parked watches stay parked."""
        self._snapshots.pop(node_id, None)
        self._notify(node_id)

    def _notify(self, node_id: str) -> None:
        for listener in self._listeners:
            listener(node_id)

    # ------------------------------------------------------------- watches
    def create_watch(self, request: WatchRequest, sink: Sink) -> Cancel:
        snapshot = self._snapshots.get(request.node_id)
        if snapshot is not None:
            resp = _answer(snapshot, request)
            if resp is not None:
                sink(resp)
                return _noop
        watch = _Watch(request, sink)
        self._watches.setdefault(request.node_id, []).append(watch)

        def cancel() -> None:
            parked = self._watches.get(request.node_id)
            if parked and watch in parked:
                parked.remove(watch)
                if not parked:
                    del self._watches[request.node_id]

        return cancel

    def fetch(self, request: WatchRequest) -> Response | None:
        snapshot = self._snapshots.get(request.node_id)
        return _answer(snapshot, request) if snapshot is not None else None

    def parked(self, node_id: str) -> int:
        """How many watches wait on `node_id` (tests, debugging)."""
        return len(self._watches.get(node_id, ()))


def _answer(snapshot: Snapshot, req: WatchRequest) -> Response | None:
    ts = snapshot.types.get(req.type_url)
    if ts is None:
        return None  # a type we never serve (e.g. SDS): the watch stays parked
    if req.type_url in WILDCARD_TYPES:
        if ts.version == req.version:
            return None
        names: frozenset[str] | None = None
    else:
        if ts.version == req.version and req.sent_names == req.names:
            return None
        names = req.names
    return Response(req.type_url, ts.version, frozenset(ts.select(names)), ts.response_body(names))

