"""Builds the daemon's data-plane parts: the local kubelet (pods as processes) and the xDS server.

Called by `sluice.daemon.main.serve` when the runtime is on. Kept apart so the API server can run alone
(`--no-runtime`) and so the heavier imports (grpc, Envoy protos) load only when they are used.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from sluice.api.registry import Registry
from sluice.api.server import LogSource, StreamSource
from sluice.daemon.state import DaemonOptions, Home
from sluice.store import Store

if TYPE_CHECKING:
    from sluice.daemon.metrics_parts import MetricsService
    from sluice.runtime.kubelet import Kubelet
    from sluice.runtime.logfiles import LogRotation

__all__ = ["Component", "MeshParts", "build"]


class Component(Protocol):
    """What the daemon starts in order and stops in reverse."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


@dataclass
class MeshParts:
    components: list[Component] = field(default_factory=list)
    routes: list[web.RouteDef] = field(default_factory=list)
    logs: LogSource | None = None
    streams: StreamSource | None = None
    kubelet: Kubelet | None = None
    metrics: MetricsService | None = None
    network: str = "loopback"
    network_reason: str = ""


def choose_network(setting: str) -> tuple[str, str]:
    """("netns" | "loopback", why): `auto` picks netns wherever this process can make namespaces."""
    from sluice.runtime.netns.node import netns_available

    if setting == "loopback":
        return "loopback", "network: loopback in config"
    ok, why = netns_available()
    if setting == "netns":
        if not ok:
            raise SystemExit(f"error: network: netns was asked for, but {why}")
        return "netns", "network: netns in config"
    return ("netns", why) if ok else ("loopback", why)


def log_rotation(options: DaemonOptions) -> LogRotation:
    """`container_log_max_size` / `container_log_max_files` checked as the kubelet checks them."""
    from sluice.runtime.logfiles import LogRotation
    from sluice.runtime.quantity import QuantityError, parse_quantity

    raw = options.container_log_max_size
    try:
        size = parse_quantity(raw)
    except QuantityError:
        raise SystemExit(f'error: failed to parse container log max size "{raw}"') from None
    if size.denominator != 1:
        raise SystemExit(f'error: failed to parse container log max size "{raw}": invalid max log size')
    files = options.container_log_max_files
    if not isinstance(files, int) or files <= 1:
        raise SystemExit(f"error: invalid container_log_max_files {files}, must be > 1")
    return LogRotation(int(size), files)


def build(home: Home, registry: Registry, store: Store, options: DaemonOptions) -> MeshParts:
    from sluice.console.auth import ConsoleAuth
    from sluice.controllers.events import EventRecorder
    from sluice.daemon.console_service import ConsoleService
    from sluice.daemon.metrics_parts import MetricsService
    from sluice.daemon.pki import ProxyCa
    from sluice.runtime.kubelet import Kubelet, KubeletOptions
    from sluice.runtime.netns.node import NodeNetwork
    from sluice.telemetry.collector import Collector
    from sluice.xds import debug
    from sluice.xds.server import XdsServer
    from sluice.xds.translate import MeshOptions

    parts = MeshParts()
    xds_address = ("127.0.0.1", options.xds_port)
    network, why = choose_network(options.network)
    parts.network, parts.network_reason = network, why
    socket = str(home.xds_socket)
    from sluice.resources.loadbalancer import PortMap

    gateway_ports = PortMap.from_setting(options.gateway_ports)  # checked by the daemon before it gets here
    if network == "netns":
        # Sidecars live in their own network namespaces: they reach xDS and ALS over a Unix socket, and the
        # gateway's listeners are created back in the host's namespace (on 127.0.0.1).
        mesh_options = MeshOptions(relative_weights=options.relative_weights, als_address=socket, als_tls=True,
                                   network="netns", host_netns=NodeNetwork(home.root).host_netns_path,
                                   gateway_ports=gateway_ports)
    else:
        mesh_options = MeshOptions(relative_weights=options.relative_weights, als_address=xds_address,
                                   als_tls=True, gateway_ports=gateway_ports)
    # Sidecars prove which pod they are: the kubelet gives each one a client certificate from the daemon's
    # CA, and xDS and ALS (one gRPC server, TCP and Unix socket alike) accept only mutual TLS with one.
    ca = ProxyCa(home.root / "pki")
    # Every sidecar streams its access log (ALS) to the xDS port; the collector turns it into Istio's metrics.
    xds = XdsServer(store, address=xds_address, options=mesh_options,
                    unix_socket=socket if network == "netns" else None, tls=ca.server_credentials())
    # Istio config the translation cannot handle is left out of pushes; say so on the object (`kubectl
    # describe`, `kubectl get events`).
    events = EventRecorder(registry, "sluice-xds")
    xds.pusher.on_rejected = lambda obj, error: events.record(
        obj, "Warning", "InvalidConfig", f"Not pushed to any proxy (the rest of the config is): {error}")
    # Durable telemetry: a checkpoint beside the TSDB, and the catch-up reads the pods' proxy logs.
    collector = Collector(store, require_identity=True, series_limit=options.telemetry_series_limit,
                          state_dir=home.root / "telemetry", pods_dir=home.root / "runtime" / "pods")
    xds.add_servicer(collector.register)
    # The catch-up reads Istio's TEXT lines from the proxies' logs: only while the mesh config has them written.
    xds.pusher.on_view = lambda push: collector.set_file_log(push.mesh_config.istio_text_log)
    collector.extra_counters.append((
        "sluice_xds_streams_refused_total",
        "xDS streams closed for a missing proxy certificate or a node id naming another proxy than it.",
        lambda: float(xds.servicer.refused)))
    metrics = MetricsService(home, options, collector)
    kubelet = Kubelet(registry, store, home.root, xds_address=("127.0.0.1", options.xds_port),
                      options=KubeletOptions(network=network, xds_socket=socket, proxy_ca=ca,
                                             log_rotation=log_rotation(options),
                                             fork_server=options.fork_server))
    # The console takes the API server's bearer token too, so scripts use the kubeconfig they already have.
    auth = ConsoleAuth.for_home(home.root, home.token(), options.console_port)
    console = ConsoleService(registry, metrics, options.console_port, auth=auth, logs=kubelet.read_log_lines)
    parts.components.extend([collector, metrics, console, xds])
    parts.metrics = metrics
    parts.routes.extend(debug.routes(xds))
    parts.routes.append(web.get("/debug/envoy/{namespace}/{pod}/{path:.*}", _envoy_admin(kubelet)))
    parts.components.append(_KubeletComponent(kubelet))
    parts.logs = kubelet.log_source
    parts.streams = kubelet.stream_source
    parts.kubelet = kubelet
    return parts


def _envoy_admin(kubelet: Kubelet) -> Callable[[web.Request], Awaitable[web.Response]]:
    """`GET /debug/envoy/NS/POD/PATH`: a read of the pod's Envoy admin (`sluice proxy-config`), which only
    the pod itself can reach."""
    async def handle(request: web.Request) -> web.Response:
        from sluice.api.errors import ApiError

        path = "/" + request.match_info["path"] + (f"?{request.query_string}" if request.query_string else "")
        try:
            status, body = await kubelet.envoy_admin(request.match_info["namespace"], request.match_info["pod"],
                                                     path)
        except ApiError as e:
            return web.json_response({"error": e.message}, status=e.code)
        except (OSError, ValueError, TimeoutError) as e:
            return web.json_response({"error": f"cannot reach the Envoy admin: {e}"}, status=502)
        return web.Response(status=status, body=body, content_type="application/json")
    return handle


class _KubeletComponent:
    """Starts the kubelet with the other parts; stopping it is the daemon's decision (pods stay on restart)."""

    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet

    async def start(self) -> None:
        await self.kubelet.start()

    async def stop(self) -> None:
        pass
