"""The telemetry collector the daemon runs: ALS servicer + pod/service index + metrics registry.

Wiring (in the daemon):

    collector = Collector(store)
    xds.add_servicer(collector.register)   # ALS on the xDS gRPC server, before xds.start()
    await collector.start()                 # informers for pods and services
    ... tsdb scrapes collector.registry.samples(); /metrics writes collector.registry.families()
    ... plus collector.self_families() for the collector's own counters
    await collector.stop()

With target labels on (the default), a deleted pod's series are dropped `series_grace` seconds after the
deletion (time for its last access-log batches to land), so the TSDB sees them disappear and writes
staleness markers, as Prometheus does when a scrape target goes away.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from envoy.service.accesslog.v3 import als_pb2_grpc

from sluice.controllers.informer import Informer
from sluice.store.sqlite import Store

from .als import AccessLogServicer, AlsStats, TelemetryOptions
from .istio import TARGET_LABELS, IstioMetrics
from .peers import PodIndex
from .registry import MetricFamily, MetricsRegistry, MetricType, Sample

__all__ = ["Collector"]

log = logging.getLogger(__name__)


class Collector:
    def __init__(self, store: Store, options: TelemetryOptions | None = None, *,
                 registry: MetricsRegistry | None = None, series_grace: float = 30.0) -> None:
        self.options = options or TelemetryOptions()
        self.registry = registry or MetricsRegistry()
        self.metrics = IstioMetrics(self.registry, target_labels=self.options.target_labels)
        self.index = PodIndex(linger=max(series_grace, 60.0))
        self.stats = AlsStats()
        self.servicer = AccessLogServicer(self.index, self.metrics, self.options, self.stats)
        self.series_grace = series_grace
        self._pods = Informer(store, "pods", self._pod_event)
        self._services = Informer(store, "services", self.index.service_event)
        self._timers: set[asyncio.TimerHandle] = set()
        self.series_removed = 0

    # ------------------------------------------------------------------ lifecycle
    def register(self, server: Any) -> None:
        """Add the ALS service to a grpc.aio server (pass to `XdsServer.add_servicer`)."""
        als_pb2_grpc.add_AccessLogServiceServicer_to_server(self.servicer, server)

    async def start(self, timeout: float = 10.0) -> None:
        self._pods.start()
        self._services.start()
        # Entries that arrive before the first list would resolve to `unknown` peers.
        await asyncio.wait_for(asyncio.gather(self._pods.synced.wait(), self._services.synced.wait()), timeout)

    async def stop(self) -> None:
        for t in self._timers:
            t.cancel()
        self._timers.clear()
        await self._pods.stop()
        await self._services.stop()

    # ------------------------------------------------------------------ pods
    def _pod_event(self, typ: str, obj: dict[str, Any], prev: dict[str, Any] | None) -> None:
        self.index.pod_event(typ, obj, prev)
        if typ == "DELETED" and self.options.target_labels:
            meta = obj.get("metadata") or {}
            ns, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
            loop = asyncio.get_running_loop()
            handle: asyncio.TimerHandle | None = None

            def fire() -> None:
                if handle is not None:
                    self._timers.discard(handle)
                self.forget_pod(ns, name)

            handle = loop.call_later(self.series_grace, fire)
            self._timers.add(handle)

    def forget_pod(self, namespace: str, pod: str) -> int:
        """Drop the series a pod's proxy reported (its target labels name it)."""
        if not self.options.target_labels:
            return 0
        ns_i, pod_i = TARGET_LABELS.index("namespace"), TARGET_LABELS.index("pod")
        n = self.registry.remove_where(
            lambda names, values: names[:len(TARGET_LABELS)] == TARGET_LABELS
            and values[ns_i] == namespace and values[pod_i] == pod)
        # Streams may hold cells that are gone now: make them resolve again.
        self.index.generation += 1
        self.series_removed += n
        if n:
            log.info("dropped %d series of deleted pod %s/%s", n, namespace, pod)
        return n

    # ------------------------------------------------------------------ self-report
    def self_families(self) -> list[MetricFamily]:
        """The collector's own counters for the daemon's `/metrics`."""
        s = self.stats

        def one(name: str, typ: MetricType, help: str, value: float) -> MetricFamily:
            return MetricFamily(name, typ, help, [Sample(name, (), float(value))])

        entries = MetricFamily("sluice_als_entries_total", "counter", "Access-log entries received over ALS.", [
            Sample("sluice_als_entries_total", (("type", "http"),), float(s.http_entries)),
            Sample("sluice_als_entries_total", (("type", "tcp"),), float(s.tcp_entries)),
        ])
        return [
            entries,
            one("sluice_als_entries_dropped_total", "counter",
                "Access-log entries that could not be attributed to a proxy.", s.dropped),
            one("sluice_als_messages_total", "counter", "ALS messages (batches) received.", s.messages),
            one("sluice_als_streams_total", "counter", "ALS streams opened by proxies.", s.streams_total),
            one("sluice_als_streams", "gauge", "ALS streams open now.", s.streams_active),
            one("sluice_telemetry_series", "gauge", "Series held by the telemetry registry.",
                self.registry.series_count),
        ]
