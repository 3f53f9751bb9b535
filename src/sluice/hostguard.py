"""DNS-rebinding defence for the daemon's plain-HTTP ports (the console and the Prometheus API).

A web page can point a name it controls (`attacker.example`) at 127.0.0.1 and then talk to a loopback server as
its own origin; the one thing it cannot forge is the `Host` header, which still says `attacker.example`. So a
request is served only when its `Host` names this server by a loopback name and the port the connection
arrived on (`127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT`); anything else gets 403 with a message that says
why. The port is read from the accepted socket, so the check needs no configuration.

Callers: `sluice.console.api.console_app` puts `host_guard` first in its middleware chain,
`sluice.metrics.api.metrics_app` checks `host_refusal` before routing (its server reads the port with
`sockname_port`); `sluice.console.auth` uses `origin_of_host` for its same-origin check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

__all__ = ["LOOPBACK_NAMES", "allowed_hosts", "host_allowed", "refusal", "host_refusal", "sockname_port",
           "local_port", "host_guard", "origin_of_host"]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# (request, message) → the response a refused request gets, in the port's own error format.
Refuse = Callable[[web.Request, str], web.StreamResponse]


def allowed_hosts(port: int) -> list[str]:
    return [f"{name}:{port}" for name in LOOPBACK_NAMES]


def host_allowed(host: str | None, port: int) -> bool:
    """Whether a `Host` header names this server (port `port`) by one of its loopback names."""
    if not host:
        return False
    h = host.strip().lower()
    if port == 80 and h in LOOPBACK_NAMES:  # clients leave the scheme's default port out
        return True
    name, _, text = h.rpartition(":")  # `allowed_hosts(port)` without building it: this runs per request
    return name in LOOPBACK_NAMES and text == str(port)


def refusal(host: str | None, port: int) -> str:
    shown = f"Host {host!r}" if host else "a request without a Host header"
    return (f"{shown} does not name this server: only {', '.join(allowed_hosts(port))} are served "
            "(requests through any other name are refused as a DNS-rebinding defence)")


def sockname_port(sockname: object) -> int | None:
    """The port of an accepted socket's local address (a transport's `sockname`), None when it has none."""
    if isinstance(sockname, tuple) and len(sockname) >= 2 and isinstance(sockname[1], int):
        return sockname[1]
    return None


def local_port(request: web.Request) -> int | None:
    """The port the request's connection was accepted on."""
    transport = request.transport
    return sockname_port(transport.get_extra_info("sockname") if transport is not None else None)


def origin_of_host(host: str) -> str:
    """The origin (`http://host:port`) of a page served under `host` (a `Host` header that passed the guard)."""
    return "http://" + host.strip().lower()


def host_refusal(host: str | None, port: int | None) -> str | None:
    """Why a request with this `Host` on a connection accepted on `port` is refused; None: it is served."""
    if port is None:
        return "the connection is gone"
    if not host_allowed(host, port):
        return refusal(host, port)
    return None


def host_guard(refuse: Refuse) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        why = host_refusal(request.headers.get("Host"), local_port(request))
        if why is not None:
            return refuse(request, why)
        return await handler(request)

    return middleware
