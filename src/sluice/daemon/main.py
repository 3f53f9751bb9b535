"""The daemon process: one asyncio loop serving the Kubernetes API (and, in later issues, xDS and metrics).

Started by `sluice up` as `python -m sluice.daemon.main --home DIR ...` in its own session, or in-process by
`sluice up --foreground`. Stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging
import os
import signal
import ssl
import sys
import time
from pathlib import Path

from aiohttp import web

from sluice import ratelog
from sluice.aio import run_server
from sluice.api.registry import ApiOptions, Registry
from sluice.api.server import make_app
from sluice.controllers.autoallocate import AutoAllocateController
from sluice.controllers.deployment import DeploymentController
from sluice.controllers.endpoints import EndpointsController
from sluice.controllers.events import EventExpiry, EventRecorder
from sluice.daemon import guarded_site
from sluice.daemon.mesh_parts import Component
from sluice.daemon.pki import ensure_pki
from sluice.daemon.state import DaemonOptions, Home
from sluice.resources.loadbalancer import PortMap
from sluice.rollouts.controller import Controller as RolloutsController
from sluice.store.sqlite import Store

__all__ = ["run", "main"]

log = logging.getLogger("sluice.daemon")


async def serve(home: Home, options: DaemonOptions, ready: asyncio.Event | None = None) -> None:
    home.prepare()
    fd_limit = guarded_site.raise_fd_limit()
    ratelog.install_loop_handler(asyncio.get_running_loop(), ratelog.RateLimitedLog(log))
    log.info("file descriptor limit %d; at most %d connections per HTTP port", fd_limit,
             guarded_site.limits_for(options).max_connections)
    pki = ensure_pki(home.root / "pki")
    token = home.token()
    home.write_kubeconfig(options.api_port)
    store = Store(home.store)
    try:
        gateway_ports = PortMap.from_setting(options.gateway_ports)
    except ValueError as e:
        store.close()
        raise SystemExit(f"error: {e}") from None
    registry = Registry(store, ApiOptions(relative_weights=options.relative_weights, gateway_ports=gateway_ports))
    for ns in ("default", "kube-system", "kube-public"):
        registry.ensure_namespace(ns)
    components: list[Component] = [
        DeploymentController(registry, store, EventRecorder(registry, "deployment-controller")),
        EndpointsController(registry, store),
        AutoAllocateController(registry, store),
        EventExpiry(registry),
    ]
    extra_routes: list[web.RouteDef] = []
    logs = None
    streams = None
    kubelet = None
    metrics = None
    network = ""
    if options.runtime:
        from sluice.daemon import mesh_parts

        parts = mesh_parts.build(home, registry, store, options)
        components.extend(parts.components)
        extra_routes.extend(parts.routes)
        logs = parts.logs
        streams = parts.streams
        kubelet = parts.kubelet
        metrics = parts.metrics
        network = f"{parts.network} ({parts.network_reason})"
        if kubelet is not None:
            # With a kubelet attached, pods get sidecars and are deleted gracefully (the kubelet finishes it).
            registry.options = dataclasses.replace(registry.options, inject_sidecars=True, graceful_pods=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    app = make_app(registry, token, logs=logs, extra_routes=extra_routes, streams=streams)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0,
                           **guarded_site.RUNNER_OPTIONS)
    await runner.setup()
    site = guarded_site.GuardedSite(runner, "127.0.0.1", options.api_port, ssl_context=ctx,
                                    limits=guarded_site.limits_for(options))
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        store.close()
        raise SystemExit(f"error: cannot listen on 127.0.0.1:{options.api_port}: {e.strerror or e}") from None
    for c in components:
        await c.start()
    rollouts = None
    if options.rollouts_controller:  # a client of this API server and metrics port, like any other
        rollouts = RolloutsController.for_daemon(str(home.kubeconfig), f"http://127.0.0.1:{options.metrics_port}")
        if metrics is not None:  # Argo's controller metrics on the daemon's /metrics, and so in its TSDB
            metrics.more_families.append(rollouts.metric_families)
        rollouts.start_in_thread()
    home.write_run({"pid": os.getpid(), "started": time.time(),
                    "api": f"https://127.0.0.1:{options.api_port}", "api_port": options.api_port,
                    "xds_port": options.xds_port, "metrics_port": options.metrics_port,
                    "console_port": options.console_port, "network": network})
    home.pidfile.write_text(str(os.getpid()))
    log.info("API server listening on https://127.0.0.1:%d", options.api_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    home_watch = asyncio.create_task(_stop_without_home(home, stop), name="home-watch")
    # What the daemon has built by now (modules, schemas, the store's first reads, about 100,000 objects) lives as
    # long as it does. Frozen, it is out of the collector's reach: a full collection, which runs on whichever
    # thread allocates and holds the GIL throughout, walks only what came later (at 100 sidecars 7-8 ms instead
    # of 40-57 ms, once a second or so while pushes and ACKs flow: docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    # And a young-generation collection only after 10,000 more container objects live than died, not Python's
    # 700: a push to 100 proxies, a status dump, a page of JSON each briefly hold thousands, which refcounting
    # frees a moment later. At 700 every such peak set off a collection that promoted them, and the promoted
    # set off full ones: at 100 sidecars, while every proxy's routes changed, 550 young and 4-5 full
    # collections in 11 s, 2-3 % of the daemon's time and stalls of up to 15 ms; at 10,000 none (docs/benchmarks.md).
    gc.set_threshold(10_000, 10, 10)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        home_watch.cancel()
        log.info("shutting down")
        if rollouts is not None:
            await asyncio.to_thread(rollouts.shutdown)
        if kubelet is not None:
            try:
                await kubelet.stop(stop_pods=True)  # `sluice down` leaves nothing running
            except Exception:  # the rest of the shutdown still runs (SLUICE_HOME may be gone)
                log.exception("stopping the pods failed")
        for c in reversed(components):
            await c.stop()
        await runner.cleanup()
        store.close()
        for f in (home.pidfile, home.runfile):
            try:
                f.unlink()
            except FileNotFoundError:
                pass


HOME_CHECK_S = 2.0


async def _stop_without_home(home: Home, stop: asyncio.Event) -> None:
    """Shut down, pods included, once the pid file is gone: SLUICE_HOME was deleted (a test's temporary directory,
    `rm -rf ~/.sluice`), so no `sluice down` can find this daemon any more, and its pods would run on unowned."""
    while not stop.is_set():
        await asyncio.sleep(HOME_CHECK_S)
        if not home.pidfile.exists():
            log.warning("%s is gone (SLUICE_HOME deleted?): shutting down and stopping every pod", home.pidfile)
            stop.set()


def run(home: Home, options: DaemonOptions) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # gRPC core logs every failed TLS handshake on the xDS/ALS port at INFO: anyone could fill the log with
    # connections that present no certificate. Before grpc is imported (sluice.daemon.mesh_parts).
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    try:
        run_server(serve(home, options))
    except SystemExit as e:
        print(e.code, file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sluice-daemon")
    p.add_argument("--home", required=True)
    p.add_argument("--api-port", type=int, default=6443)
    p.add_argument("--xds-port", type=int, default=15010)
    p.add_argument("--metrics-port", type=int, default=9090)
    p.add_argument("--console-port", type=int, default=20001)
    p.add_argument("--relative-weights", action="store_true")
    p.add_argument("--no-runtime", action="store_true", help="API server and controllers only: no pods run")
    p.add_argument("--network", choices=("auto", "netns", "loopback"), default="auto",
                   help="pod networking: own network namespaces (netns) or shared loopback addresses")
    p.add_argument("--no-rollouts-controller", action="store_true",
                   help="do not run the Argo Rollouts controller inside the daemon")
    p.add_argument("--telemetry-series-limit", type=int, default=DaemonOptions.telemetry_series_limit,
                   help="series one workload's access logs may create (0 = no limit); entries beyond it are "
                        "dropped and counted in sluice_telemetry_series_limit_exceeded_total")
    a = p.parse_args(argv)
    home = Home(Path(a.home))
    # Flags win over SLUICE_HOME/config.yaml, which wins over the defaults.
    opts = home.load_options(DaemonOptions(a.api_port, a.xds_port, a.metrics_port, a.console_port,
                                           a.relative_weights, runtime=not a.no_runtime, network=a.network,
                                           telemetry_series_limit=a.telemetry_series_limit,
                                           rollouts_controller=not a.no_rollouts_controller))
    return run(home, opts)


if __name__ == "__main__":
    sys.exit(main())
