"""The console's service: its JSON API (and, once built, its UI) on 127.0.0.1:<console_port>.

Started by `sluice.daemon.mesh_parts`; PromQL goes to the metrics service's worker pool
(`sluice.daemon.metrics_parts.MetricsService`). Large objects (decoding, admission, validation, the editor's YAML)
go to the console app's own worker processes (`sluice.console.worker`), started on the first one and stopped with
the app: not the API server's pool, so that console pages never use up the room kubectl's writes have there.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from sluice.api.registry import Registry
from sluice.daemon import guarded_site
from sluice.daemon.metrics_parts import MetricsService
from sluice.metrics.promql import QueryResult

if TYPE_CHECKING:
    from sluice.console.auth import ConsoleAuth
    from sluice.console.logs import LogReader

__all__ = ["ConsoleService", "CONSOLE_QUERY_TIMEOUT_S"]

# The console's queries run in the metrics service's worker pool; one that takes longer answers an error instead.
CONSOLE_QUERY_TIMEOUT_S = 10.0


class ConsoleService:
    """The console's JSON API (and, once built, its UI) on 127.0.0.1:<console_port>, querying the embedded store
    and reading container logs through `logs` (the kubelet's `read_log_lines`); `auth` says who may use it."""

    def __init__(self, registry: Registry, metrics: MetricsService, port: int, *, auth: ConsoleAuth,
                 logs: LogReader | None = None) -> None:
        self.registry = registry
        self.auth = auth
        self.metrics = metrics
        self.port = port
        self.logs = logs
        self._runner: web.AppRunner | None = None

    async def query(self, expr: str) -> QueryResult:
        engine, t_ms = self.metrics.engine(), int(time.time() * 1000)
        return await self.metrics.pool.run(lambda: engine.instant(expr, t_ms, timeout_s=CONSOLE_QUERY_TIMEOUT_S))

    async def query_range(self, expr: str, start: float, end: float, step: float) -> QueryResult:
        """A range query; times in unix seconds (the engine's are milliseconds)."""
        engine = self.metrics.engine()
        s_ms, e_ms, step_ms = round(start * 1000), round(end * 1000), max(1, round(step * 1000))
        return await self.metrics.pool.run(
            lambda: engine.range(expr, s_ms, e_ms, step_ms, timeout_s=CONSOLE_QUERY_TIMEOUT_S))

    async def start(self) -> None:
        from sluice.console.api import console_app

        # The UI bundle `make ui` builds into the package; without it the API still answers.
        static = Path(__file__).resolve().parent.parent / "console" / "static"
        app = console_app(self.registry, self.query, auth=self.auth, query_range=self.query_range, logs=self.logs,
                          static_dir=static)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
                                     **guarded_site.RUNNER_OPTIONS)
        await self._runner.setup()
        try:
            await guarded_site.GuardedSite(self._runner, "127.0.0.1", self.port,
                                           limits=guarded_site.limits_for(self.metrics.options)).start()
        except OSError as e:
            raise SystemExit(f"error: cannot listen on 127.0.0.1:{self.port} for the console: "
                             f"{e.strerror or e}") from None

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
