"""`fortio server` (and `tcp-echo`, `udp-echo`, `redirect`): start the listeners, log as fortio does,
stop on SIGTERM. Ports take fortio's forms: `8080`, `:8080`, `host:port` or `disabled`; without a host the
pod's `SLUICE_BIND` (or all addresses) is used."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

from aiohttp import web

from sluice.samples.fortio import VERSION
from sluice.samples.fortio.echo import EchoOptions, UDPEcho, create_app, redirect, tcp_echo
from sluice.samples.fortio.flags import Flags, UsageError
from sluice.samples.fortio.log import CRITICAL, ERROR, INFO, Logger

__all__ = ["run_server", "listen_address"]


def listen_address(spec: str, default_host: str) -> tuple[str, int] | None:
    """(host, port) for a port flag, None for `disabled` (UsageError for anything else)."""
    if spec == "disabled":
        return None
    host, sep, port = spec.rpartition(":")
    if not sep:
        host, port = "", spec
    try:
        number = int(port)
    except ValueError:
        raise UsageError(f"invalid port {spec!r}: want PORT, :PORT, HOST:PORT or disabled") from None
    if not 0 <= number <= 65535:
        raise UsageError(f"invalid port {spec!r}: out of range")
    return host.strip("[]") or default_host, number


def _shown(host: str, port: int) -> str:
    return f"[::]:{port}" if host in ("0.0.0.0", "::", "") else f"{host}:{port}"


async def _serve(flags: Flags, log: Logger) -> int:
    default_host = os.environ.get("SLUICE_BIND") or "0.0.0.0"
    command = flags.command
    wanted = {
        "http": flags.get("http-port", "8080") if command == "server" else "disabled",
        "grpc": flags.get("grpc-port", "8079") if command == "server" else "disabled",
        "tcp": flags.get("tcp-port", "8078") if command in ("server", "tcp-echo") else "disabled",
        "udp": flags.get("udp-port", "8078") if command in ("server", "udp-echo") else "disabled",
        "redirect": flags.get("redirect-port", "8081") if command in ("server", "redirect") else "disabled",
    }
    addresses = {k: listen_address(v, default_host) for k, v in wanted.items()}
    max_delay = flags.duration("max-echo-delay", 1.5)
    opts = EchoOptions(debug_path=flags.get("echo-debug-path", "/debug"), ui_path=flags.get("ui-path", "/fortio/"),
                       default_params=flags.get("echo-server-default-params", ""), max_delay=max_delay)
    cleanups: list[Any] = []
    try:
        if (a := addresses["tcp"]) is not None:
            server = await asyncio.start_server(tcp_echo, a[0], a[1], reuse_address=True)
            cleanups.append(server.close)
            log.log(INFO, f"Fortio {VERSION} tcp-echo server listening on tcp {_shown(*a)}")
        if (a := addresses["udp"]) is not None:
            transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(UDPEcho, local_addr=a)
            cleanups.append(transport.close)
            log.log(INFO, f"Fortio {VERSION} udp-echo server listening on udp {_shown(*a)}")
        if (a := addresses["grpc"]) is not None:
            from sluice.samples.fortio.grpcping import start_server

            grpc_server = await start_server(a[0], a[1], flags.get("healthservice", "") or "ping")
            log.log(INFO, f"Fortio {VERSION} grpc 'ping' server listening on tcp {_shown(*a)}")
        else:
            grpc_server = None
        runners: list[web.AppRunner] = []
        for kind in ("redirect", "http"):
            a = addresses[kind]
            if a is None:
                continue
            if kind == "http":
                app = create_app(opts, log)
            else:
                app = web.Application()
                app.router.add_route("*", "/{tail:.*}", redirect)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, a[0], a[1], reuse_address=True).start()
            runners.append(runner)
            label = "https redirector" if kind == "redirect" else "http-echo"
            log.log(INFO, f"Fortio {VERSION} {label} server listening on tcp {_shown(*a)}")
        if addresses["http"] is not None:
            log.log(INFO, f"Debug endpoint on {opts.debug_path}, Additional Echo on "
                          f"{opts.debug_path.rstrip('/')}/echo/ (UI on {opts.ui_path} is not served by sluice)")
    except OSError as e:
        log.log(CRITICAL, f"Unable to listen: {e.strerror or e}")
        return 1
    log.log(INFO, f"All fortio {VERSION} sluice built-in servers started!")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for runner in runners:
        await runner.cleanup()
    if grpc_server is not None:
        await grpc_server.stop(1)
    for close in cleanups:
        with contextlib.suppress(Exception):
            close()
    return 0


def run_server(flags: Flags, log: Logger) -> int:
    try:
        return asyncio.run(_serve(flags, log))
    except UsageError:
        raise
    except OSError as e:
        log.log(ERROR, f"Unable to start: {e}")
        return 1
