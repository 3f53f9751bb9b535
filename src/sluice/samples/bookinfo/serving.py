"""Running a Bookinfo service as a process: listen, log requests to stdout, stop gracefully on SIGTERM.

On SIGTERM (or SIGINT) the listening socket closes at once, requests already being handled finish (up to
`DRAIN_SECONDS`), idle keep-alive connections are closed, and the process exits 0 — what the runtime's
graceful termination expects.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable

from aiohttp import web

from sluice.samples.bookinfo.env import Listen, listen_from_env

__all__ = ["run_service", "DRAIN_SECONDS"]

DRAIN_SECONDS = 20.0  # below Kubernetes' default 30 s grace period, above productpage's worst case (9 s)

_ACCESS_FORMAT = '%a "%r" %s %b "%{User-Agent}i" %Tfs'


async def serve(app: web.Application, listen: Listen, ready: Callable[[], None] | None = None) -> None:
    """Serve `app` until SIGTERM/SIGINT, then drain and return."""
    runner = web.AppRunner(app, access_log_format=_ACCESS_FORMAT, shutdown_timeout=DRAIN_SECONDS)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, listen.host, listen.port, reuse_address=True)
        await site.start()
        if ready is not None:
            ready()
        await stop.wait()
    finally:
        await runner.cleanup()


def run_service(name: str, make_app: Callable[[], web.Application], argv: list[str] | None = None) -> None:
    """The `main()` of every service module: configure logging, serve, exit 0 after a graceful stop."""
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    listen = listen_from_env(argv=sys.argv[1:] if argv is None else argv)
    log = logging.getLogger(name)

    def ready() -> None:
        log.info("%s listening on http://%s:%d", name, listen.host, listen.port)

    try:
        asyncio.run(serve(make_app(), listen, ready))
    except OSError as e:
        # A port already in use is the usual cause; say so instead of a traceback.
        log.error("cannot listen on %s:%d: %s", listen.host, listen.port, e.strerror or e)
        raise SystemExit(1) from None
    log.info("%s stopped", name)
