"""Per-proxy xDS sync status: what was sent, what was ACKed or NACKed, and whether that is the latest.

Fed by the ADS servicer's callbacks (wired in `XdsServer`), read by `XdsServer.status`,
`XdsServer.wait_synced`, `/debug/syncz` (`debug.py`) and so by `sluice proxy-status`. Depends on nothing
else in the xDS package: the latest version of a type for a node is looked up through a function.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sluice import mesh
from sluice.xds.cache import ADS_ORDER, short_name

__all__ = ["SyncState", "TypeStatus", "ConnectionStatus", "ProxyStatus", "TypeView", "StatusTracker"]

LatestVersion = Callable[[str, str], "str | None"]  # (node id, type URL) → version the cache holds


class SyncState(StrEnum):
    SYNCED = "SYNCED"
    STALE = "STALE"
    NACK = "NACK"
    NOT_SENT = "NOT SENT"


@dataclass
class TypeStatus:
    """Mutable per-stream, per-type record (owned by StatusTracker)."""

    sent_version: str | None = None
    sent_nonce: str | None = None
    sent_at: float | None = None
    acked_version: str | None = None
    acked_at: float | None = None
    answered_nonce: str | None = None  # the nonce of the last ACK or NACK
    nack_version: str | None = None
    nack_error: str | None = None

    @property
    def pending(self) -> bool:
        return self.sent_nonce is not None and self.answered_nonce != self.sent_nonce

    def state(self, latest: str | None) -> SyncState:
        if self.sent_nonce is None:
            return SyncState.NOT_SENT
        if self.nack_version is not None and self.nack_version == self.sent_version and not self.pending:
            return SyncState.NACK
        if self.pending or self.acked_version != self.sent_version:
            return SyncState.STALE
        if latest is not None and latest != self.acked_version:
            return SyncState.STALE  # the cache has newer config the proxy has not been sent yet
        return SyncState.SYNCED


@dataclass
class ConnectionStatus:
    stream_id: int
    node_id: str
    peer: str
    connected_at: float  # wall clock, for display
    metadata: Mapping[str, Any]
    types: dict[str, TypeStatus] = field(default_factory=dict)

    @functools.cached_property
    def pod_and_namespace(self) -> tuple[str, str]:
        """The pod and namespace the sidecar says it serves (its metadata, else its node id)."""
        parsed = mesh.parse_node_id(self.node_id)
        return (str(self.metadata.get("NAME") or (parsed[2] if parsed else "")),
                str(self.metadata.get("NAMESPACE") or (parsed[3] if parsed else "")))

    @property
    def proxy(self) -> str:
        """`<pod>.<namespace>` (`ProxyStatus.proxy`), without building the view."""
        pod, namespace = self.pod_and_namespace
        return f"{pod}.{namespace}" if pod else self.node_id


@dataclass(frozen=True)
class TypeView:
    type_url: str
    state: SyncState
    sent_version: str | None
    acked_version: str | None
    latest_version: str | None
    sent_nonce: str | None
    acked_nonce: str | None
    nack_error: str | None
    nack_version: str | None

    def to_json(self) -> dict[str, Any]:
        return {"type_url": self.type_url, "state": self.state.value, "sent": self.sent_version,
                "acked": self.acked_version, "latest": self.latest_version, "sent_nonce": self.sent_nonce,
                "acked_nonce": self.acked_nonce, "nack_error": self.nack_error, "nack_version": self.nack_version}


@dataclass(frozen=True)
class ProxyStatus:
    """An immutable view of one connected proxy, for status displays."""

    node_id: str
    proxy_type: str
    pod: str
    namespace: str
    ip: str
    peer: str
    connected_since: float
    istio_version: str
    cluster_id: str
    types: Mapping[str, TypeView]  # keyed by short name: CDS, EDS, LDS, RDS

    @property
    def proxy(self) -> str:
        """`<pod>.<namespace>`, as istioctl names proxies."""
        return f"{self.pod}.{self.namespace}" if self.pod else self.node_id

    @property
    def synced(self) -> bool:
        return all(v.state is SyncState.SYNCED for v in self.types.values())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "proxy": self.proxy,
            "node_id": self.node_id,
            "proxy_type": self.proxy_type,
            "pod": self.pod,
            "namespace": self.namespace,
            "ip": self.ip,
            "peer": self.peer,
            "connected_since": dt.datetime.fromtimestamp(self.connected_since, dt.UTC)
            .isoformat().replace("+00:00", "Z"),
            "cluster_id": self.cluster_id,
            "istio_version": self.istio_version,
            "types": {k: v.to_json() for k, v in self.types.items()},
        }
        # istiod's /debug/syncz fields (nonces sent and acknowledged per type), for tools that read them.
        for short, word in (("CDS", "cluster"), ("LDS", "listener"), ("RDS", "route"), ("EDS", "endpoint")):
            view = self.types.get(short)
            out[f"{word}_sent"] = (view.sent_nonce or "") if view else ""
            out[f"{word}_acked"] = (view.acked_nonce or "") if view else ""
        return out


class StatusTracker:
    """Records protocol events per stream; answers status and "is everyone synced" questions."""

    def __init__(self, latest_version: LatestVersion) -> None:
        self._latest = latest_version
        self._streams: dict[int, ConnectionStatus] = {}

    # ------------------------------------------------------------ events (from the servicer)
    def opened(self, stream_id: int, node_id: str, peer: str, metadata: Mapping[str, Any]) -> None:
        self._streams[stream_id] = ConnectionStatus(stream_id, node_id, peer, time.time(), dict(metadata))

    def closed(self, stream_id: int) -> None:
        self._streams.pop(stream_id, None)

    def _type(self, stream_id: int, type_url: str) -> TypeStatus | None:
        conn = self._streams.get(stream_id)
        if conn is None:
            return None
        return conn.types.setdefault(type_url, TypeStatus())

    def requested(self, stream_id: int, type_url: str) -> None:
        self._type(stream_id, type_url)

    def sent(self, stream_id: int, type_url: str, version: str, nonce: str) -> None:
        ts = self._type(stream_id, type_url)
        if ts is not None:
            ts.sent_version, ts.sent_nonce, ts.sent_at = version, nonce, time.time()

    def acked(self, stream_id: int, type_url: str, version: str, nonce: str) -> None:
        ts = self._type(stream_id, type_url)
        if ts is not None:
            ts.acked_version, ts.answered_nonce, ts.acked_at = version, nonce, time.time()
            ts.nack_version = ts.nack_error = None

    def nacked(self, stream_id: int, type_url: str, rejected_version: str, nonce: str, error: str) -> None:
        ts = self._type(stream_id, type_url)
        if ts is not None:
            ts.answered_nonce, ts.nack_version, ts.nack_error = nonce, rejected_version, error

    # ------------------------------------------------------------ views
    def connections(self) -> list[ConnectionStatus]:
        return list(self._streams.values())

    def node_ids(self) -> set[str]:
        return {c.node_id for c in self._streams.values()}

    def view(self, conn: ConnectionStatus) -> ProxyStatus:
        parsed = mesh.parse_node_id(conn.node_id)
        kind, ip = parsed[:2] if parsed else ("", "")
        pod, namespace = conn.pod_and_namespace
        md = conn.metadata
        types: dict[str, TypeView] = {}
        rank = {t: i for i, t in enumerate(ADS_ORDER)}
        for type_url in sorted(conn.types, key=lambda t: (rank.get(t, len(rank)), t)):
            ts = conn.types[type_url]
            latest = self._latest(conn.node_id, type_url)
            types[short_name(type_url)] = TypeView(
                type_url, ts.state(latest), ts.sent_version, ts.acked_version, latest, ts.sent_nonce,
                ts.answered_nonce if ts.nack_version is None else None, ts.nack_error, ts.nack_version)
        return ProxyStatus(
            node_id=conn.node_id, proxy_type=kind, pod=pod, namespace=namespace, ip=ip, peer=conn.peer, connected_since=conn.connected_at,
            istio_version=str(md.get("ISTIO_VERSION") or ""), cluster_id=str(md.get("CLUSTER_ID") or ""),
            types=types)

    def proxies(self, names: Collection[str] | None = None) -> list[ProxyStatus]:
        """One view per node id (its newest stream), sorted by proxy name; of the proxies `names` names
        (`<pod>.<namespace>`) only, when given: a watcher of a few proxies among hundreds costs few views."""
        newest: dict[str, ConnectionStatus] = {}
        for conn in self._streams.values():
            if names is not None and conn.proxy not in names:
                continue
            cur = newest.get(conn.node_id)
            if cur is None or conn.stream_id > cur.stream_id:
                newest[conn.node_id] = conn
        return sorted((self.view(c) for c in newest.values()), key=lambda p: p.proxy)

    def stream_synced(self, conn: ConnectionStatus) -> bool:
        """Every type the stream asked for that the cache serves is ACKed at the cache's version."""
        for type_url, ts in conn.types.items():
            latest = self._latest(conn.node_id, type_url)
            if latest is None:
                continue  # not served (yet) for this node: nothing to be in sync with
            if ts.pending or ts.acked_version != latest:
                return False
        return True
