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

Durable (given `state_dir` and `pods_dir`, as the daemon does): the registry's values and the catch-up ledger
(`sluice.telemetry.catchup`) are written together to `state_dir/checkpoint.json` — by the metrics service
before each TSDB sample it stores (`capture`, then `write_checkpoint`, which encodes a large checkpoint without
stalling the event loop; the sample holds the captured values, so a stored sample never exceeds what a restart
restores), and by `checkpoint()` at start and stop — and read back on construction. `start()` then counts,
from the sidecars' access-log files, every request the checkpoint had not counted (served while the daemon was
down, or whose ALS entries died with it) before anything is served, and keeps reading the files for entries
ALS drops. Counters never go backwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envoy.service.accesslog.v3 import als_pb2_grpc

from sluice.kube.informer import Informer
from sluice.store import Store

from . import checkpointfile
from .als import DROP_REASONS, AccessLogServicer, AlsStats, TelemetryOptions
from .catchup import Ledger
from .istio import ISTIO_LABELS, TARGET_LABELS, IstioMetrics
from .limits import DEFAULT_SERIES_LIMIT, SeriesBudget, WorkloadKey
from .peers import PodIndex
from .registry import MetricFamily, MetricsRegistry, MetricType, Sample

__all__ = ["Collector", "Captured"]

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
_YIELD_EVERY = 128 * 1024  # checkpoint text encoded between turns of the event loop (about 2 ms here)
SCAN_EVERY = 1.0  # seconds between reads of the access-log files while running


@dataclass(frozen=True)
class Captured:
    """What a checkpoint holds (`data`, JSON-ready), and the order it was captured in."""

    seq: int
    data: dict[str, Any]


class Collector:
    """`require_identity`: ALS streams must carry a proxy client certificate and report only for its pod
    (the daemon serves ALS over mutual TLS; see `sluice.telemetry.als`). `series_limit`: series per
    reporting workload (`sluice.telemetry.limits`; 0 = no limit)."""

    def __init__(self, store: Store, options: TelemetryOptions | None = None, *,
                 registry: MetricsRegistry | None = None, series_grace: float = 30.0,
                 require_identity: bool = False, series_limit: int = DEFAULT_SERIES_LIMIT,
                 state_dir: Path | None = None, pods_dir: Path | None = None) -> None:
        self.options = options or TelemetryOptions()
        self.registry = registry or MetricsRegistry()
        self.metrics = IstioMetrics(self.registry, target_labels=self.options.target_labels)
        self.index = PodIndex(linger=max(series_grace, 60.0))
        self.stats = AlsStats()
        self.budget = SeriesBudget(series_limit)
        self.servicer = AccessLogServicer(self.index, self.metrics, self.options, self.stats,
                                          require_identity=require_identity,
                                          lookup_pod=lambda ns, name: store.get("pods", ns, name),
                                          budget=self.budget)
        self.series_grace = series_grace
        self._pods = Informer(store, "pods", self._pod_event)
        self._services = Informer(store, "services", self.index.service_event)
        self._timers: set[asyncio.TimerHandle] = set()
        self.series_removed = 0
        # Other parts' counters shown with the collector's on /metrics: (name, help, read the value).
        self.extra_counters: list[tuple[str, str, Callable[[], float]]] = []
        self._live: set[tuple[str, str]] = set()  # (namespace, pod) of the pods in the store
        self.ledger: Ledger | None = None
        self.checkpoint_file: Path | None = None
        self._scan_task: asyncio.Task[None] | None = None
        self._checkpoint_failing = False
        self._captures = 0  # states captured for a checkpoint so far
        self._written = 0  # the latest of them written
        self._write_lock = threading.Lock()
        if state_dir is not None and pods_dir is not None:
            self.ledger = Ledger(self.servicer, pods_dir)
            self.servicer.admit = self.ledger.admit
            self.checkpoint_file = state_dir / "checkpoint.json"
            self._restore()

    def set_file_log(self, istio_text: bool) -> None:
        """Whether the sidecars write Istio's TEXT line for each request to their istio-proxy log (the mesh
        config's access-log settings). Without those lines there is nothing to catch up from: ALS entries are
        not remembered for it (no per-entry cost, no keys waiting for lines that never come) and lines in
        another format are passed over."""
        if self.ledger is None or self.ledger.file_lines == istio_text:
            return
        self.ledger.file_lines = istio_text
        self.servicer.admit = self.ledger.admit if istio_text else None
        log.info("telemetry catch-up from the proxies' access logs %s", "on" if istio_text else
                 "off: the mesh config turned Istio's TEXT access log off or changed its format")

    # ------------------------------------------------------------------ lifecycle
    def register(self, server: Any) -> None:
        """Add the ALS service to a grpc.aio server (pass to `XdsServer.add_servicer`)."""
        als_pb2_grpc.add_AccessLogServiceServicer_to_server(self.servicer, server)

    async def start(self, timeout: float = 10.0) -> None:
        self._pods.start()
        self._services.start()
        # Entries that arrive before the first list would resolve to `unknown` peers.
        await asyncio.wait_for(asyncio.gather(self._pods.synced.wait(), self._services.synced.wait()), timeout)
        if self.ledger is not None:
            # Before ALS or the metrics API start: what was served while the daemon was down is counted first.
            n = await self._scan_all(final=True)
            if n:
                log.info("counted %d requests from the proxies' access logs that telemetry had missed", n)
            self._forget_vanished_pods()
            self.checkpoint()
            self._scan_task = asyncio.create_task(self._scan(), name="telemetry catch-up")

    async def stop(self) -> None:
        for t in self._timers:
            t.cancel()
        self._timers.clear()
        if self._scan_task is not None:
            self._scan_task.cancel()
            try:
                await self._scan_task
            except asyncio.CancelledError:
                pass
            self._scan_task = None
        if self.ledger is not None:
            try:
                self.ledger.scan(final=True)  # ALS has stopped: nothing more can come for what is unmatched
            except Exception:
                log.exception("reading the proxies' access logs failed")
            self.checkpoint()
        await self._pods.stop()
        await self._services.stop()

    async def _scan_all(self, final: bool = False) -> int:
        """Scan until the ledger is not behind, yielding to the loop between budgets (a long catch-up after
        a long downtime must not stall the API)."""
        assert self.ledger is not None
        n = self.ledger.scan(final)
        while self.ledger.behind:
            await asyncio.sleep(0)
            n += self.ledger.scan(final)
        return n

    async def _scan(self) -> None:
        assert self.ledger is not None
        while True:
            await asyncio.sleep(SCAN_EVERY)
            try:
                n = await self._scan_all()
                if n:
                    log.info("counted %d requests from the proxies' access logs that ALS did not deliver", n)
            except Exception:  # one bad read must not end the catch-up
                log.exception("reading the proxies' access logs failed")

    # ------------------------------------------------------------------ durability
    def capture(self) -> Captured | None:
        """The registry's values and the ledger as of now, after a scan (which settles the entries whose lines
        are on disk: a smaller checkpoint), copied: what a checkpoint holds. None when not durable."""
        if self.checkpoint_file is None or self.ledger is None:
            return None
        try:
            self.ledger.scan()
        except Exception:
            log.exception("reading the proxies' access logs failed")
        self._captures += 1
        return Captured(self._captures, {"version": CHECKPOINT_VERSION, "time": time.time(),
                                         "registry": self.registry.dump(), "ledger": self.ledger.dump()})

    def checkpoint(self) -> None:
        """Write the registry's values and the ledger, as of now, atomically (a no-op when not durable)."""
        state = self.capture()
        if state is not None:
            self._write(state, "".join(checkpointfile.pieces(state.data)))

    async def write_checkpoint(self, state: Captured) -> None:
        """Write a `capture`d state as `checkpoint` does, its JSON encoded in pieces with the event loop free
        to serve others between them, the file written by a thread."""
        text: list[str] = []
        size = 0
        for piece in checkpointfile.pieces(state.data):
            text.append(piece)
            size += len(piece)
            if size >= _YIELD_EVERY:
                size = 0
                await asyncio.sleep(0)
        await asyncio.to_thread(self._write, state, "".join(text))

    def _write(self, state: Captured, text: str) -> None:
        """Replace the checkpoint with `text`, unless a later capture is already written (a final checkpoint
        at shutdown while a periodic one is still being written must stay the last)."""
        assert self.checkpoint_file is not None
        with self._write_lock:
            if state.seq <= self._written:
                return
            tmp = self.checkpoint_file.with_name(self.checkpoint_file.name + ".tmp")
            try:
                self.checkpoint_file.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(text)
                os.replace(tmp, self.checkpoint_file)  # kill -9 leaves the old file or the new one, never half
                self._written = state.seq
                self._checkpoint_failing = False
            except OSError as e:
                if not self._checkpoint_failing:  # once per failure spell, not once per scrape
                    log.error("cannot write the telemetry checkpoint %s: %s", self.checkpoint_file, e)
                self._checkpoint_failing = True

    def _restore(self) -> None:
        assert self.checkpoint_file is not None and self.ledger is not None
        try:
            data = json.loads(self.checkpoint_file.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            log.error("telemetry checkpoint %s is unreadable (%s): counters start from the access logs",
                      self.checkpoint_file, e)
            return
        if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION:
            log.error("telemetry checkpoint %s has an unknown format: ignored", self.checkpoint_file)
            return
        try:
            n = self.registry.restore(data.get("registry") or {})
            self.ledger.restore(data.get("ledger") or [])
        except (ValueError, TypeError, KeyError, IndexError) as e:
            log.error("telemetry checkpoint %s is damaged (%s): ignored", self.checkpoint_file, e)
            self.registry.remove_where(lambda names, values: True)
            self.ledger.sidecars.clear()
            return
        log.info("restored %d telemetry series from %s", n, self.checkpoint_file)

    def _forget_vanished_pods(self) -> None:
        """Restored series of pods deleted while the daemon was down go now (their DELETED event never comes)."""
        if not self.options.target_labels:
            return
        ns_i, pod_i = TARGET_LABELS.index("namespace"), TARGET_LABELS.index("pod")
        seen: set[tuple[str, str]] = set()
        for f in (self.metrics.requests_total, self.metrics.tcp_opened):
            seen.update((v[ns_i], v[pod_i]) for v in f.cells)
        for ns, pod in seen - self._live:
            self.forget_pod(ns, pod)

    # ------------------------------------------------------------------ pods
    def _pod_event(self, typ: str, obj: dict[str, Any], prev: dict[str, Any] | None) -> None:
        self.index.pod_event(typ, obj, prev)
        meta = obj.get("metadata") or {}
        live = (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))
        if typ == "DELETED":
            self._live.discard(live)
        else:
            self._live.add(live)
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
        if n:
            self.budget.recount(self._owners())
        self.series_removed += n
        if n:
            log.info("dropped %d series of deleted pod %s/%s", n, namespace, pod)
        return n

    def _owners(self) -> list[tuple[WorkloadKey, int]]:
        """The reporting workload of every label set (the proxy's own side, by reporter), and its series."""
        base = len(TARGET_LABELS) if self.options.target_labels else 0
        at = {n: base + i for i, n in enumerate(ISTIO_LABELS)}
        src = (at["source_workload_namespace"], at["source_workload"])
        dst = (at["destination_workload_namespace"], at["destination_workload"])
        out: list[tuple[WorkloadKey, int]] = []
        for family, cost in ((self.metrics.requests_total, self.servicer.http_cost),
                             (self.metrics.tcp_opened, self.servicer.tcp_cost)):
            for values in list(family.cells):
                ns_i, wl_i = src if values[base] == "source" else dst
                out.append(((values[ns_i], values[wl_i]), cost))
        return out

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
        reasons = s.by_reason()
        dropped = MetricFamily("sluice_als_entries_dropped_total", "counter",
                               "Access-log entries dropped: not attributable to a proxy (unattributed), on a stream "
                               "naming another proxy than its certificate (identity_mismatch), from a pod the store "
                               "does not know (unknown_pod), or with an invalid label value (invalid_label).", [
                                   Sample("sluice_als_entries_dropped_total", (("reason", r),), float(reasons[r]))
                                   for r in DROP_REASONS])
        exceeded = MetricFamily(
            "sluice_telemetry_series_limit_exceeded_total", "counter",
            f"Access-log entries dropped because they would have created series beyond the reporting workload's "
            f"limit ({self.budget.limit or 'none'}; Prometheus's sample_limit).", [
                Sample("sluice_telemetry_series_limit_exceeded_total", (("namespace", ns), ("workload", wl)),
                       float(n)) for (ns, wl), n in sorted(self.budget.exceeded.items())])
        return [
            entries,
            dropped,
            exceeded,
            one("sluice_als_streams_refused_total", "counter",
                "ALS streams without a proxy client certificate or naming another proxy than it.", s.streams_refused),
            one("sluice_als_messages_total", "counter", "ALS messages (batches) received.", s.messages),
            one("sluice_als_streams_total", "counter", "ALS streams opened by proxies.", s.streams_total),
            one("sluice_als_streams", "gauge", "ALS streams open now.", s.streams_active),
            one("sluice_telemetry_series", "gauge", "Series held by the telemetry registry.",
                self.registry.series_count),
            *(one(name, "counter", help, read()) for name, help, read in self.extra_counters),
            one("sluice_telemetry_recovered_entries_total", "counter",
                "Access-log entries counted from the proxies' log files because ALS did not deliver them.",
                self.ledger.recovered if self.ledger is not None else 0),
        ]
