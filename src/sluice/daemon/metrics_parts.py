"""The daemon's metrics service: the embedded TSDB sampling the telemetry collector every scrape interval,
and the Prometheus-compatible HTTP API plus `/metrics` on the metrics port (127.0.0.1:9090 by default).

Built by `sluice.daemon.mesh_parts` next to the collector it samples. A stock Prometheus can scrape the same
series from `/metrics`; `sluice query`/`stat` can be pointed at it with `prometheus_url`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from sluice import httpserver
from sluice.aio import cancel_and_wait
from sluice.daemon import guarded_site
from sluice.daemon.state import DaemonOptions, Home
from sluice.metrics import exposition
from sluice.metrics.api import metrics_app
from sluice.metrics.promql import Engine
from sluice.metrics.series import Labels, labels_of
from sluice.metrics.tsdb import TSDB
from sluice.metrics.workers import QueryPool
from sluice.telemetry.collector import Collector

__all__ = ["MetricsService", "serve_metrics_app", "query_pool", "engine_factory"]

log = logging.getLogger("sluice.metrics")

SCRAPE_TARGET = "sluice"
MAINTAIN_EVERY = 60.0


def query_pool(options: DaemonOptions) -> QueryPool:
    """The pool every PromQL evaluation (the Prometheus API's and the console's) runs in, off the loop."""
    return QueryPool(options.query_max_concurrency, options.query_max_queue)


def engine_factory(tsdb: TSDB, options: DaemonOptions) -> Callable[[int | None], Engine]:
    """Engines with the configured limits, one per query (its `lookback_delta` in ms, None: the default)."""
    def engine(lookback_ms: int | None = None) -> Engine:
        return Engine(tsdb, lookback_delta_ms=lookback_ms or 300_000, max_samples=options.query_max_samples,
                      timeout_s=options.query_timeout)
    return engine


async def serve_metrics_app(app: httpserver.App, port: int, options: DaemonOptions) -> httpserver.Server:
    """Serve the metrics port's application on 127.0.0.1:`port` (`sluice.httpserver`, with the limits
    `config.yaml` asks for). Also what bench/query_bench.py serves sluice's side with, so that its numbers are
    the daemon's own path. Raises OSError when the port cannot be bound."""
    return await httpserver.serve(app, "127.0.0.1", port, limits=guarded_site.limits_for(options))


class MetricsService:
    def __init__(self, home: Home, options: DaemonOptions, collector: Collector) -> None:
        self.options = options
        self.collector = collector
        self.tsdb = TSDB(home.root / "tsdb", retention_ms=int(options.retention_hours * 3600_000))
        # Every PromQL evaluation (the Prometheus API's and the console's) runs in this pool, off the loop.
        self.pool = query_pool(options)
        self._server: httpserver.Server | None = None
        # more of the daemon's own families (the rollouts controller's), added to /metrics and stored as scraped
        self.more_families: list[Callable[[], list[exposition.FamilyLike]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._engines = engine_factory(self.tsdb, options)

    def _families(self) -> list[exposition.FamilyLike]:
        return [*self.collector.registry.families(), *self._self_families()]

    def _self_families(self) -> list[exposition.FamilyLike]:
        """The collector's own counters and the TSDB's (named as Prometheus names its own)."""
        def counter(name: str, help: str, value: int) -> exposition.Family:
            return exposition.Family(name, "counter", help, [exposition.Sample(name, (), float(value))])

        more = [fam for source in self.more_families for fam in source()]
        return [*self.collector.self_families(), *more,
                counter("prometheus_tsdb_wal_corruptions_total", "Total number of WAL corruptions.",
                        self.tsdb.wal_corruptions),
                counter("prometheus_tsdb_wal_writes_failed_total", "Total number of WAL writes that failed.",
                        self.tsdb.wal_write_failures)]

    def metrics_text(self) -> str:
        return exposition.render(self._families())

    def _samples(self) -> Iterable[tuple[Labels, float]]:
        yield from self.collector.registry.samples()
        # The daemon's own metrics too, as a Prometheus scraping /metrics would store them.
        for fam in self._self_families():
            for s in fam.samples:
                yield labels_of({**dict(s.labels), "__name__": s.name}), s.value

    def engine(self, lookback_ms: int | None = None) -> Engine:
        return self._engines(lookback_ms)

    async def start(self) -> None:
        app = metrics_app(self.tsdb, self.engine, metrics_text=self.metrics_text, pool=self.pool)
        try:
            self._server = await serve_metrics_app(app, self.options.metrics_port, self.options)
        except OSError as e:
            raise SystemExit(f"error: cannot listen on 127.0.0.1:{self.options.metrics_port} for the Prometheus "
                             f"API: {e.strerror or e}") from None
        self._tasks = [asyncio.create_task(self._scrape(), name="tsdb scrape"),
                       asyncio.create_task(self._maintain(), name="tsdb maintenance")]

    async def _scrape(self) -> None:
        interval = max(0.1, float(self.options.scrape_interval))
        while True:
            try:
                # The sample holds the values the checkpoint holds, and is stored once the checkpoint is written:
                # a stored sample never exceeds what a restart restores.
                state = self.collector.capture()
                t = int(time.time() * 1000)
                samples = list(self._samples())
                if state is not None:
                    await self.collector.write_checkpoint(state)
                self.tsdb.append(t, samples, scrape_target=SCRAPE_TARGET)
            except Exception:  # one bad scrape must not end sampling
                log.exception("sampling the mesh's metrics failed")
            await asyncio.sleep(interval - (time.time() % interval))  # aligned, like Prometheus's scrape offsets

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(MAINTAIN_EVERY)
            try:
                await self.tsdb.maintain()
            except Exception:
                log.exception("TSDB maintenance failed")

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        if self._server is not None:
            await self._server.close()
        self.pool.close()
        self.tsdb.close()
