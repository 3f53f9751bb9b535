"""The gRPC access-log service: Envoy's ALS entries → Istio's standard metrics.

One stream per Envoy worker. Its first message names the proxy (node id and metadata), which fixes the
proxy's own side of every label set, as the node does for Istio's stats filter. For each entry:

- reporter: an entry of a sidecar's outbound HTTP proxy (upstream cluster `outbound|…`, or local port
  15001 when no upstream was picked) and every entry of a gateway is `source`; a sidecar's inbound entry
  (`inbound|<port>||`) is `destination`. So each request is counted once per reporter. netns mode (Istio's
  capture): outbound entries have the original destination as local address, inbound ones the pod's own
  IP, and undeclared inbound ports go to `InboundPassthroughCluster` (`destination`).
- the peer: for `source`, the upstream host's IP → pod; for `destination`, the downstream remote IP (the
  calling sidecar's pod IP, since sidecars connect upstream from it) → pod, if that pod runs a proxy
  (a client without one does no metadata exchange, so Istio knows nothing of it either).
- the service: the outbound cluster's host; for inbound, the Service selecting this pod on that port;
  else the `:authority`, as the filter's Host-header fallback does.

The hot path reads only the fields it needs from the upb messages, builds a small key, and looks the
resolved label set up in a per-stream cache; only a new key resolves peers and builds label values.
Registered on the xDS server's gRPC server by `sluice.telemetry.collector.Collector.register`.

Trust (`require_identity`, what the daemon runs): a stream must come with the client certificate the
daemon issued to the proxy's pod (`sluice.xds.identity`); a stream without one is refused (UNAUTHENTICATED),
and one whose identifier names another proxy than the certificate has its entries dropped and counted. The
proxy's own side of every label set then comes from the pod the certificate names, as the store knows it,
never from the node metadata the stream sends; the peer side from the server's pod index. Label values
taken from entries are checked and each reporting workload has a series limit (`sluice.telemetry.limits`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.service.accesslog.v3 import als_pb2

from sluice import mesh
from sluice.ratelog import RateLimitedLog
from sluice.xds.identity import ProxyIdentity, peer_identity

from .istio import (
    AGENT_PORT,
    LATEST,
    SCRAPE_JOB,
    UNKNOWN,
    HttpSeries,
    IstioMetrics,
    TcpSeries,
    http_to_grpc_status,
    response_flags_string,
)
from .limits import (
    SeriesBudget,
    WorkloadKey,
    valid_grpc_status,
    valid_host,
    valid_response_code,
)
from .peers import PodIndex, Workload, workload_from_node, workload_from_pod

__all__ = ["AccessLogServicer", "TelemetryOptions", "AlsStats", "SPECIAL_CLUSTERS"]

log = logging.getLogger(__name__)
# Refused streams are an attacker's to repeat: a few lines, not a disk.
_refusals = RateLimitedLog(log)

# Clusters whose name is itself the destination_service_name (istio_stats.cc).
SPECIAL_CLUSTERS = frozenset({"BlackHoleCluster", "PassthroughCluster", "InboundPassthroughCluster",
                              "InboundPassthroughClusterIpv4", "InboundPassthroughClusterIpv6"})
_OUTBOUND_PORT = mesh.PROXY_OUTBOUND_PORT
_INBOUND_PASSTHROUGH = "InboundPassthroughCluster"
_CATCH_ALL_ROUTES = {"block_all": "BlackHoleCluster", "allow_any": "PassthroughCluster"}  # netns mode: virtualInbound's chains for undeclared ports
# envoy.data.accesslog.v3.AccessLogType values for TCP entries
_TCP_CONNECTED, _TCP_PERIODIC = 1, 2
_EMPTY_RESPONSE = als_pb2.StreamAccessLogsResponse()
# A stream's caches of resolved keys are bounded: a proxy that sends endless distinct keys (peer IPs,
# authorities, connection ids) costs re-resolution, never memory.
_MAX_KEYS = 8192
_MAX_CONNS = 65536
# Why entries were dropped (`sluice_als_entries_dropped_total{reason}`).
DROP_REASONS = ("unattributed", "identity_mismatch", "unknown_pod", "invalid_label")


@dataclass(frozen=True)
class TelemetryOptions:
    # The mesh has no mTLS yet, so Istio would report unknown principals and `none`; turn this on with
    # mTLS to get SPIFFE principals from service accounts and `mutual_tls` from meshed peers.
    mutual_tls: bool = False
    # Add the labels Prometheus's `kubernetes-pods` job adds (instance, job, namespace, pod).
    target_labels: bool = True


@dataclass
class AlsStats:
    """Counters for the daemon's own `/metrics`."""

    streams_total: int = 0
    streams_active: int = 0
    messages: int = 0
    http_entries: int = 0
    tcp_entries: int = 0
    dropped: int = 0  # entries that could not be attributed (no/unknown node identifier, malformed)
    identity_mismatch: int = 0  # entries on a stream whose identifier named another proxy than its certificate
    unknown_pod: int = 0  # entries from a certificate whose pod the store does not know (any more)
    invalid_label: int = 0  # entries with a label value that fails its check (limits.py)
    streams_refused: int = 0  # streams without a proxy certificate, or naming another proxy

    def by_reason(self) -> dict[str, int]:
        return {"unattributed": self.dropped, "identity_mismatch": self.identity_mismatch,
                "unknown_pod": self.unknown_pod, "invalid_label": self.invalid_label}


class _Rejected:
    """A cached verdict for a key whose entries are dropped."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


_INVALID = _Rejected("invalid_label")
_OVER_LIMIT = _Rejected("series_limit")


@dataclass(eq=False)
class _Stream:
    kind: str
    own: Workload
    target: tuple[str, ...]
    generation: int = -1
    identity: ProxyIdentity | None = None  # the certificate's; the own side is re-read from it on changes
    budget_key: WorkloadKey = ("", "")
    http: dict[tuple[Any, ...], HttpSeries | _Rejected] = field(default_factory=dict)
    tcp: dict[tuple[Any, ...], TcpSeries | _Rejected] = field(default_factory=dict)
    # TCP connection (stream_id) → [series, bytes sent so far, bytes received so far]
    conns: dict[str, list[Any]] = field(default_factory=dict)


def _strip_port(authority: str) -> str:
    host, sep, port = authority.rpartition(":")
    return host if sep and port.isdigit() and "]" not in port else authority


def _own_view(w: Workload) -> Workload:
    """A pod as its own proxy labels itself: the stats filter reads exactly LABELS["app"/"version"] from
    the node, without the fallbacks a peer gets."""
    return dataclasses.replace(w, app=w.labels.get("app", ""), version=w.labels.get("version", ""), meshed=True)


class AccessLogServicer:
    """`envoy.service.accesslog.v3.AccessLogService` (duck-typed for `add_AccessLogServiceServicer_to_server`).

    `require_identity`: see the module docstring; `lookup_pod(namespace, name)` reads a stored Pod (for a
    certificate whose pod the index has not seen yet); `budget` holds the per-workload series limit.
    """

    def __init__(self, index: PodIndex, metrics: IstioMetrics, options: TelemetryOptions | None = None,
                 stats: AlsStats | None = None, *, require_identity: bool = False,
                 lookup_pod: Callable[[str, str], dict[str, Any] | None] | None = None,
                 budget: SeriesBudget | None = None) -> None:
        self.index = index
        self.metrics = metrics
        self.options = options or TelemetryOptions()
        self.stats = stats or AlsStats()
        self.require_identity = require_identity
        self.lookup_pod = lookup_pod
        self.budget = budget or SeriesBudget()
        # What one label set stores (see sluice.telemetry.limits): a counter plus each histogram's buckets,
        # +Inf, _sum and _count; TCP: four counters.
        m = metrics
        self.http_cost = 1 + sum(len(h.bounds) + 3 for h in (m.request_duration, m.request_bytes, m.response_bytes))
        self.tcp_cost = 4
        # Durable telemetry (`sluice.telemetry.catchup.Ledger.admit`): given (stream, request id, common
        # properties, response code), whether to count an HTTP entry (no: its access-log line counted it).
        self.admit: Callable[[_Stream, str, Any, int], bool] | None = None

    # ------------------------------------------------------------------ RPC
    async def StreamAccessLogs(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802 - gRPC name
        stats = self.stats
        stats.streams_total += 1
        stats.streams_active += 1
        stream: _Stream | _Rejected | None = None
        identified = False
        identity: ProxyIdentity | None = None
        try:
            if self.require_identity:
                identity = peer_identity(context)
                if identity is None:
                    stats.streams_refused += 1
                    await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                        "authentication failure: no client certificate issued to a proxy")
            async for msg in request_iterator:
                stats.messages += 1
                if not identified and msg.HasField("identifier"):
                    identified = True
                    stream = self._open(msg.identifier.node, identity)
                try:
                    self.handle(stream, msg)
                except Exception:  # one bad message must not end the stream (Envoy would drop logs)
                    log.exception("could not process an access-log message")
        finally:
            stats.streams_active -= 1
        return _EMPTY_RESPONSE

    def _open(self, node: Any, identity: ProxyIdentity | None = None) -> _Stream | _Rejected | None:
        if self.require_identity:
            if identity is None or not identity.matches_node(str(node.id)):
                self.stats.streams_refused += 1
                _refusals("identity", f"access-log stream refused: the client certificate names {identity}, the "
                                      f"stream node {str(node.id)[:200]!r}; its entries are dropped")
                return _Rejected("identity_mismatch")
            own = self._own(identity)
            if own is None:
                _refusals("unknown_pod", f"access-log stream from {identity}, a pod the store does not know: its "
                                         "entries are dropped")
                return _Rejected("unknown_pod")
            kind = identity.kind
        else:
            parsed = workload_from_node(node)
            if parsed is None:
                _refusals("node", f"access-log stream from an unknown node id {str(node.id)[:200]!r}: its entries "
                                  "are dropped")
                return None
            kind, own = parsed
        target = ((f"{own.ip}:{AGENT_PORT}", SCRAPE_JOB, own.namespace, own.pod)
                  if self.options.target_labels else ())
        return _Stream(kind, own, target, identity=identity, budget_key=(own.namespace, own.workload))

    def _own(self, identity: ProxyIdentity) -> Workload | None:
        """The certificate's pod as the server knows it: the index (by the certificate's IP), else the store."""
        w = self.index.pod(identity.ip)
        if w is not None and (w.namespace, w.pod) == (identity.namespace, identity.pod) \
                and w.uid in ("", identity.uid):
            return _own_view(w)
        obj = self.lookup_pod(identity.namespace, identity.pod) if self.lookup_pod is not None else None
        if obj is None or str((obj.get("metadata") or {}).get("uid") or "") != identity.uid:
            return None
        w = workload_from_pod(obj, ip=identity.ip)
        return _own_view(w) if w is not None else None

    # ------------------------------------------------------------------ entries
    def handle(self, stream: _Stream | _Rejected | None, msg: Any) -> None:
        """Account one StreamAccessLogsMessage to `stream` (None: unattributable, counted as dropped)."""
        which = msg.WhichOneof("log_entries")
        if which is None:
            return
        entries = msg.http_logs.log_entry if which == "http_logs" else msg.tcp_logs.log_entry
        if stream is None:
            self.stats.dropped += len(entries)
            return
        if isinstance(stream, _Rejected):
            self._drop(stream.reason, len(entries))
            return
        if stream.generation != self.index.generation:
            # Pods or Services changed: label sets resolved earlier may be wrong now, and so may the
            # proxy's own labels.
            stream.http.clear()
            stream.tcp.clear()
            stream.generation = self.index.generation
            if stream.identity is not None:
                own = self._own(stream.identity)
                if own is not None:
                    stream.own = own
                    stream.budget_key = (own.namespace, own.workload)
        if which == "http_logs":
            self.stats.http_entries += len(entries)
            self._http(stream, entries)
        else:
            self.stats.tcp_entries += len(entries)
            self._tcp(stream, entries)

    def _http(self, st: _Stream, entries: Any) -> None:
        cache = st.http
        router = st.kind == "router"
        admit = self.admit
        for e in entries:
            cp = e.common_properties
            cluster = cp.upstream_cluster
            flags = response_flags_string(cp.response_flags) if cp.HasField("response_flags") else "-"
            response = e.response
            code = response.response_code.value
            request = e.request
            if admit is not None and not admit(st, request.request_id, cp, code):
                continue
            if not cluster and cp.route_name in _CATCH_ALL_ROUTES:
                # Istio's catch-all routes name what they stand for (REGISTRY_ONLY's 502 has no upstream)
                cluster = _CATCH_ALL_ROUTES[cp.route_name]
            if router or cluster.startswith("outbound|"):
                outbound = True
            elif cluster.startswith("inbound|") or cluster == _INBOUND_PASSTHROUGH:
                outbound = False
            elif cluster:
                outbound = True  # BlackHoleCluster / PassthroughCluster
            else:  # no upstream host was picked (no route, no healthy upstream, fault abort, …)
                local = cp.downstream_local_address.socket_address
                port = local.port_value
                # Loopback mode: outbound is the HTTP proxy's port on the pod IP. netns mode: it is any
                # original destination but the pod's own IP, which inbound connections are addressed to.
                outbound = port == _OUTBOUND_PORT or (bool(local.address) and local.address != st.own.ip)
                if not outbound:
                    cluster = mesh.inbound_cluster(port)
            peer = (cp.upstream_remote_address if outbound else cp.downstream_remote_address).socket_address.address
            authority = "" if cluster.startswith("outbound|") else request.authority
            grpc = ""
            content_type = request.request_headers.get("content-type")
            if content_type is not None and content_type.startswith("application/grpc"):
                status = response.response_trailers.get("grpc-status") or response.response_headers.get("grpc-status")
                grpc = status if status is not None and status.isdigit() else str(http_to_grpc_status(code))
            key = (outbound, cluster, peer, code, flags, grpc, authority)
            series = cache.get(key)
            if series is None:
                if len(cache) >= _MAX_KEYS:
                    cache.clear()
                series = cache[key] = self._http_series(st, outbound, cluster, peer, code, flags, grpc, authority)
            if isinstance(series, _Rejected):
                self._refuse(st, series)
                continue
            series.requests.value += 1
            d = cp.duration
            series.duration.observe(d.seconds * 1000 + d.nanos // 1_000_000)  # whole ms, as the filter
            rx = cp.downstream_wire_bytes_received
            tx = cp.downstream_wire_bytes_sent
            if not rx and not tx:  # an Envoy that does not report wire bytes: headers + body
                rx = request.request_headers_bytes + request.request_body_bytes
                tx = response.response_headers_bytes + response.response_body_bytes
            series.request_bytes.observe(rx)
            series.response_bytes.observe(tx)

    def _tcp(self, st: _Stream, entries: Any) -> None:
        cache = st.tcp
        conns = st.conns
        for e in entries:
            cp = e.common_properties
            conn_id = cp.stream_id
            state = conns.get(conn_id) if conn_id else None
            if state is None:
                cluster = cp.upstream_cluster
                outbound = st.kind == "router" or not (cluster.startswith("inbound|") or cluster == _INBOUND_PASSTHROUGH)
                addr = cp.upstream_remote_address if outbound else cp.downstream_remote_address
                peer = addr.socket_address.address
                flags = response_flags_string(cp.response_flags) if cp.HasField("response_flags") else "-"
                key = (outbound, cluster, peer, flags)
                got = cache.get(key)
                if got is None:
                    if len(cache) >= _MAX_KEYS:
                        cache.clear()
                    got = cache[key] = self._tcp_series(st, outbound, cluster, peer, flags)
                if isinstance(got, _Rejected):
                    self._refuse(st, got)
                    continue
                # The filter fixes a connection's labels when it opens and counts the open once.
                got.opened.value += 1
                state = [got, 0, 0]
                if conn_id:
                    if len(conns) >= _MAX_CONNS:
                        del conns[next(iter(conns))]  # the oldest: a real proxy never holds this many per stream
                    conns[conn_id] = state
            series = state[0]
            props = e.connection_properties
            sent, received = props.sent_bytes, props.received_bytes
            # Periodic and final entries carry the connection's totals so far: count the growth.
            if sent > state[1]:
                series.sent.value += sent - state[1]
                state[1] = sent
            if received > state[2]:
                series.received.value += received - state[2]
                state[2] = received
            kind = cp.access_log_type
            if kind != _TCP_CONNECTED and kind != _TCP_PERIODIC:
                series.closed.value += 1
                if conn_id:
                    conns.pop(conn_id, None)

    # ------------------------------------------------------------------ dropping
    def _drop(self, reason: str, n: int) -> None:
        s = self.stats
        if reason == "identity_mismatch":
            s.identity_mismatch += n
        elif reason == "unknown_pod":
            s.unknown_pod += n
        else:
            s.dropped += n

    def _refuse(self, st: _Stream, verdict: _Rejected) -> None:
        if verdict is _OVER_LIMIT:
            self.budget.refuse(st.budget_key)
        else:
            self.stats.invalid_label += 1

    def _admit(self, st: _Stream, exists: bool, cost: int) -> bool:
        """Whether a resolved label set may be counted: an existing one always, a new one (`cost` series)
        within the reporting workload's series limit."""
        if exists:
            return True
        if self.budget.take(st.budget_key, cost):
            return True
        if not self.budget.exceeded.get(st.budget_key):
            log.warning("workload %s/%s reached its telemetry series limit (%d): entries that would create new "
                        "series are dropped", *st.budget_key, self.budget.limit)
        return False

    # ------------------------------------------------------------------ resolution (once per label set)
    def _http_series(self, st: _Stream, outbound: bool, cluster: str, peer_ip: str, code: int, flags: str,
                     grpc: str, authority: str) -> HttpSeries | _Rejected:
        if not valid_response_code(code) or not valid_grpc_status(grpc):
            return _INVALID
        ident, policy = self._identity(st, outbound, cluster, peer_ip, flags, authority)
        # destination_service and destination_service_name may come from the entry (cluster host, :authority)
        if not (valid_host(ident[14]) and valid_host(ident[15])):
            return _INVALID
        protocol = "grpc" if grpc else "http"
        values = st.target + ident + (protocol, flags, policy, str(code), grpc)
        if not self._admit(st, values in self.metrics.requests_total.cells, self.http_cost):
            return _OVER_LIMIT
        return self.metrics.http(values)

    def _tcp_series(self, st: _Stream, outbound: bool, cluster: str, peer_ip: str, flags: str) -> TcpSeries | _Rejected:
        ident, policy = self._identity(st, outbound, cluster, peer_ip, flags, "")
        if not (valid_host(ident[14]) and valid_host(ident[15])):
            return _INVALID
        values = st.target + ident + ("tcp", flags, policy)
        if not self._admit(st, values in self.metrics.tcp_opened.cells, self.tcp_cost):
            return _OVER_LIMIT
        return self.metrics.tcp(values)

    def _service(self, st: _Stream, cluster: str, flags: str, authority: str) -> tuple[str, str]:
        """(destination_service, destination_service_name); empty when nothing names it."""
        if cluster.startswith("outbound|"):
            host = cluster.split("|", 3)[3]
            # A Kubernetes Service is named by its first label; a ServiceEntry host is its own name (Istio's
            # convertServices: Attributes.Name = the host).
            kube = host.endswith(f".svc.{mesh.CLUSTER_DOMAIN}")
            return host, host.split(".", 1)[0] if kube else host
        if cluster in SPECIAL_CLUSTERS:
            return authority, cluster
        if cluster.startswith("inbound|"):
            port = cluster.split("|", 2)[1]
            svc = self.index.inbound_service(st.own, int(port)) if port.isdigit() else None
            if svc is not None:
                return svc.hostname, svc.name
        elif authority and "NR" not in flags.split(","):
            # An outbound request that never reached a host still had a route to a Service's cluster,
            # whose metadata the filter would read; a request with no route (NR) had none.
            svc = self.index.service_by_host(_strip_port(authority), st.own.namespace)
            if svc is not None:
                return svc.hostname, svc.name
        return authority, authority

    def _identity(self, st: _Stream, outbound: bool, cluster: str, peer_ip: str, flags: str,
                  authority: str) -> tuple[tuple[str, ...], str]:
        """reporter … destination_cluster (ISTIO_LABELS[:20]) and connection_security_policy."""
        own = st.own
        mtls = self.options.mutual_tls
        host, name = self._service(st, cluster, flags, authority)
        if outbound:
            d = self.index.pod(peer_ip) if peer_ip else None
            if d is not None and not d.meshed and not cluster.endswith(f".svc.{mesh.CLUSTER_DOMAIN}"):
                # No Envoy at the other end to exchange metadata with, and (unlike a Kubernetes Service's EDS
                # endpoint) no endpoint metadata naming it: a ServiceEntry's or passthrough destination.
                d = None
            if d is None:
                dest: tuple[str, ...] = (UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, host or UNKNOWN,
                                         name or UNKNOWN, UNKNOWN, UNKNOWN, LATEST, UNKNOWN)
            else:
                dest = (d.workload or UNKNOWN, d.namespace or UNKNOWN, d.principal if mtls else UNKNOWN,
                        d.app or UNKNOWN, d.version or UNKNOWN, host or UNKNOWN, name or UNKNOWN,
                        d.namespace or UNKNOWN, d.canonical_service or UNKNOWN, d.canonical_revision or LATEST,
                        d.cluster or UNKNOWN)
            # The proxy's own side comes verbatim from its node metadata (empty stays empty).
            src: tuple[str, ...] = (own.workload, own.namespace, own.principal if mtls else UNKNOWN, own.app,
                                    own.version, own.canonical_service, own.canonical_revision, own.cluster)
            return ("source", *src, *dest), UNKNOWN
        s = self.index.pod(peer_ip) if peer_ip else None
        if s is not None and not s.meshed:
            s = None
        if s is None:
            src = (UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, LATEST, UNKNOWN)
        else:
            src = (s.workload or UNKNOWN, s.namespace or UNKNOWN, s.principal if mtls else UNKNOWN,
                   s.app or UNKNOWN, s.version or UNKNOWN, s.canonical_service or UNKNOWN,
                   s.canonical_revision or LATEST, s.cluster or UNKNOWN)
        dest = (own.workload, own.namespace, own.principal if mtls else UNKNOWN, own.app, own.version,
                host or own.canonical_service, name or own.canonical_service, own.namespace,
                own.canonical_service, own.canonical_revision, own.cluster)
        policy = "mutual_tls" if mtls and s is not None else "none"
        return ("destination", *src, *dest), policy
