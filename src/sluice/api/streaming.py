"""`pods/exec`, `pods/attach`, `pods/portforward`: what the API server checks before handing a stream on.

`serve` is called by `sluice.api.server` for these subresources: it reads the options from the query the
way kube-apiserver decodes `PodExecOptions`/`PodAttachOptions`/`PodPortForwardOptions`, picks and checks the
container, and passes the request to the `StreamSource` (the kubelet, `sluice.runtime.streams.source`). The
source calls `upgrade` when it is ready: only then is the WebSocket accepted, so every refusal before it is
an ordinary `Status` — which kubectl shows after retrying the same URL with a SPDY POST, answered the same
way. Clients that speak SPDY/3.1 instead (kubectl ≤ 1.29 for exec, ≤ 1.30 for port-forward) are served over
a taken-over connection (`sluice.api.spdy_upgrade`) with kubelet's protocols (`v4.channel.k8s.io`,
`portforward.k8s.io`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from sluice.api import spdy_upgrade
from sluice.api.errors import ApiError

__all__ = ["ACTIONS", "StreamOptions", "StreamSource", "parse_options", "pick_container", "serve", "upgrade",
           "upgrade_spdy", "is_spdy", "EXEC_PROTOCOLS", "PORT_FORWARD_PROTOCOLS", "SPDY_PROTOCOLS", "MAX_MESSAGE"]

ACTIONS = ("exec", "attach", "portforward")
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
# The SPDY tunnel is what kubectl speaks; the channel form is the kubelet's other port-forward protocol.
PORT_FORWARD_PROTOCOLS = ("SPDY/3.1+portforward.k8s.io", "v4.channel.k8s.io")
SPDY_PROTOCOLS = {"exec": ("v4.channel.k8s.io",), "attach": ("v4.channel.k8s.io",),
                  "portforward": ("portforward.k8s.io",)}
MAX_MESSAGE = 4 * 1024 * 1024
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
_MINIMUM = {"exec": "1.30", "attach": "1.30", "portforward": "1.31"}


@dataclass(frozen=True)
class StreamOptions:
    action: str  # one of ACTIONS
    container: str = ""
    command: tuple[str, ...] = ()
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    tty: bool = False
    ports: tuple[int, ...] = ()


StreamSource = Callable[[web.Request, dict[str, Any], StreamOptions], Awaitable[web.StreamResponse]]


def _bool(query: MultiMapping[str], key: str) -> bool:
    """kube-apiserver's rule: absent, "0" or "false" (any case) is false; anything else is true."""
    values = query.getall(key, [])
    return bool(values) and values[0] != "0" and values[0].lower() != "false"


def pick_container(pod: dict[str, Any], wanted: str) -> str:
    """The container a logs, exec or attach request names (`wanted`, or the pod's only one), by kube-apiserver's
    rule and messages; init containers count."""
    spec = pod.get("spec") or {}
    name = str((pod.get("metadata") or {}).get("name") or "")
    names = [str(c.get("name")) for c in spec.get("containers") or [] if isinstance(c, dict)]
    init = [str(c.get("name")) for c in spec.get("initContainers") or [] if isinstance(c, dict)]
    if not wanted:
        if len(names) == 1:
            return names[0]
        message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
        if init:
            message += f" or one of the init containers: [{' '.join(init)}]"
        raise ApiError.bad_request(message)
    if wanted not in names and wanted not in init:
        raise ApiError.bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted


def _ports(query: MultiMapping[str]) -> tuple[int, ...]:
    out: list[int] = []
    for raw in query.getall("ports", []):
        for part in raw.split(","):
            part = part.strip()
            try:
                port = int(part)
            except ValueError:
                port = 0
            if not 0 < port < 65536:
                raise ApiError.bad_request(f'invalid port "{part}": must be between 1 and 65535, inclusive')
            out.append(port)
    return tuple(out)


def parse_options(action: str, pod: dict[str, Any], query: MultiMapping[str]) -> StreamOptions:
    """The request's options, checked as kube-apiserver and kubelet check them before any upgrade."""
    if action == "portforward":
        return StreamOptions(action, ports=_ports(query))
    container = pick_container(pod, query.get("container", ""))
    tty = _bool(query, "tty")
    opts = StreamOptions(action, container, tuple(query.getall("command", [])) if action == "exec" else (),
                         stdin=_bool(query, "stdin"), stdout=_bool(query, "stdout"),
                         stderr=_bool(query, "stderr") and not tty, tty=tty)
    if action == "exec" and not opts.command:
        raise ApiError.bad_request("you must specify at least one command for the container")
    if not (opts.stdin or opts.stdout or opts.stderr):
        raise ApiError.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return opts


async def serve(request: web.Request, pod: dict[str, Any], action: str, source: StreamSource | None
                ) -> web.StreamResponse:
    if request.method not in ("GET", "POST"):
        raise ApiError.method_not_allowed(request.method)
    opts = parse_options(action, pod, request.query)
    if source is None:
        # No kubelet runs pods next to this API server (`--no-runtime`): kube-apiserver's answer for a pod
        # that no node has taken.
        raise ApiError.bad_request(f"pod {pod['metadata']['name']} does not have a host assigned")
    return await source(request, pod, opts)


def is_spdy(request: web.Request) -> bool:
    return "spdy/3.1" in request.headers.get("Upgrade", "").lower()


def _spdy_protocol(request: web.Request, action: str) -> str | None:
    offered = spdy_upgrade.offered_protocols(request)
    supported = SPDY_PROTOCOLS[action]
    # kubelet speaks v4 at most over SPDY; a client offering v5 first (kubectl ≥ 1.29) takes v4 just the same.
    return next((p for p in offered if p in supported), None)


def upgrade_refusal(request: web.Request, action: str) -> ApiError | None:
    """Why this request cannot become the stream (checked before anything irreversible), or None."""
    if is_spdy(request):
        if _spdy_protocol(request, action) is None:
            offered = spdy_upgrade.offered_protocols(request)
            return ApiError(403, "Forbidden", f"unable to upgrade: unable to negotiate protocol: client supports "
                                              f"{offered}, server accepts {list(SPDY_PROTOCOLS[action])}")
        return None
    supported = PORT_FORWARD_PROTOCOLS if action == "portforward" else EXEC_PROTOCOLS
    ready = web.WebSocketResponse(protocols=supported).can_prepare(request)
    if not ready.ok:
        return ApiError.bad_request("Upgrade request required")
    if ready.protocol is None:
        offered = [p.strip() for h in request.headers.getall("Sec-WebSocket-Protocol", []) for p in h.split(",")]
        return ApiError.bad_request(f"none of the requested WebSocket subprotocols {offered} is supported "
                                    f"for pods/{action}; supported: {list(supported)} (kubectl "
                                    f"{_MINIMUM[action]} and newer use them)")
    return None


async def upgrade(request: web.Request, action: str) -> web.WebSocketResponse:
    """Accept the WebSocket with the first subprotocol the client offered that this server speaks."""
    refusal = upgrade_refusal(request, action)
    if refusal is not None:
        raise refusal
    supported = PORT_FORWARD_PROTOCOLS if action == "portforward" else EXEC_PROTOCOLS
    # No heartbeat of our own: kubectl pings every few seconds, and `receive()` answers them.
    ws = web.WebSocketResponse(protocols=supported, max_msg_size=MAX_MESSAGE, compress=False)
    await ws.prepare(request)
    return ws


async def upgrade_spdy(request: web.Request, action: str
                       ) -> tuple[web.StreamResponse, spdy_upgrade.RawConnection]:
    """Answer a SPDY/3.1 upgrade (kubectl ≤ 1.29, or any kubectl with its WebSocket switch off)."""
    refusal = upgrade_refusal(request, action)
    if refusal is not None:
        raise refusal
    protocol = _spdy_protocol(request, action)
    assert protocol is not None
    return await spdy_upgrade.accept(request, protocol)
