"""Builds the daemon's data-plane parts: the local kubelet (pods as processes) and the xDS server.

Called by `sluice.daemon.main.serve` when the runtime is on. Kept apart so the API server can run alone
(`--no-runtime`) and so the heavier imports (grpc, Envoy protos) load only when they are used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sluice.api.registry import Registry
from sluice.api.server import LogSource
from sluice.daemon.state import DaemonOptions, Home
from sluice.store.sqlite import Store

__all__ = ["MeshParts", "build"]


@dataclass
class MeshParts:
    components: list[Any] = field(default_factory=list)
    routes: list[web.RouteDef] = field(default_factory=list)
    logs: LogSource | None = None
    kubelet: Any = None


def build(home: Home, registry: Registry, store: Store, options: DaemonOptions) -> MeshParts:
    from sluice.console.auth import ConsoleAuth
    from sluice.daemon.metrics_parts import ConsoleService, MetricsService
    from sluice.runtime.kubelet import Kubelet
    from sluice.telemetry.collector import Collector
    from sluice.xds import debug
    from sluice.xds.server import XdsServer
    from sluice.xds.translate import MeshOptions

    parts = MeshParts()
    xds_address = ("127.0.0.1", options.xds_port)
    # Every sidecar streams its access log (ALS) to the xDS port; the collector turns it into Istio's metrics.
    xds = XdsServer(store, address=xds_address,
                    options=MeshOptions(relative_weights=options.relative_weights, als_address=xds_address))
    collector = Collector(store)
    xds.add_servicer(collector.register)
    metrics = MetricsService(home, options, collector)
    kubelet = Kubelet(registry, store, home, xds_address=("127.0.0.1", options.xds_port))
    # The console takes the API server's bearer token too, so scripts use the kubeconfig they already have.
    auth = ConsoleAuth.for_home(home.root, home.token(), options.console_port)
    console = ConsoleService(registry, metrics, options.console_port, auth=auth, logs=kubelet.read_log_lines)
    parts.components.extend([collector, metrics, console, xds])
    parts.routes.extend(debug.routes(xds))
    parts.components.append(_KubeletComponent(kubelet))
    parts.logs = kubelet.log_source
    parts.kubelet = kubelet
    return parts


class _KubeletComponent:
    """Starts the kubelet with the other parts; stopping it is the daemon's decision (pods stay on restart)."""

    def __init__(self, kubelet: Any) -> None:
        self.kubelet = kubelet

    async def start(self) -> None:
        await self.kubelet.start()

    async def stop(self) -> None:
        pass
