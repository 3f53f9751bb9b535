"""The kubelet's side of `pods/exec`, `pods/attach` and `pods/portforward` (the API server's `StreamSource`).

Given a Pod and the checked options (`sluice.api.streaming`), find the pod's worker and container here,
refuse what cannot be served while the request is still plain HTTP, then upgrade and run the session:
`execution` (exec), `attach`, `portforward`. Everything about where a command runs and where a port is
reached comes from the pod worker (`PodWorker.sandbox`, `exec_env`, `dial_address`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sluice.api import streaming
from sluice.api.errors import ApiError
from sluice.runtime.images import ImageError, exec_argv
from sluice.runtime.streams import channels, portforward
from sluice.runtime.streams.attach import run_attach
from sluice.runtime.streams.execution import ExecRequest, run_exec

if TYPE_CHECKING:
    from sluice.runtime.pod import PodWorker

__all__ = ["StreamServer"]

Obj = dict[str, Any]


def _chosen(request: web.Request, supported: tuple[str, ...]) -> str | None:
    offered = [p.strip() for h in request.headers.getall("Sec-WebSocket-Protocol", []) for p in h.split(",")]
    return next((p for p in offered if p in supported), None)


class StreamServer:
    def __init__(self, workers: Callable[[], dict[tuple[str, str], PodWorker]]) -> None:
        self._workers = workers

    def _worker(self, pod: Obj) -> PodWorker:
        meta = pod.get("metadata") or {}
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name"))
        w = self._workers().get((ns, name))
        if w is None or w.uid != meta.get("uid") or w.terminating:
            raise ApiError.bad_request(f'unable to upgrade connection: pod not found ("{name}_{ns}")')
        return w

    async def __call__(self, request: web.Request, pod: Obj, opts: streaming.StreamOptions) -> web.StreamResponse:
        w = self._worker(pod)
        if opts.action == "portforward":
            return await self._port_forward(request, w, opts)
        sup = w.supervisors.get(opts.container)
        if sup is None or not sup.running:
            raise ApiError.bad_request(f'unable to upgrade connection: container not found ("{opts.container}")')
        if opts.action == "attach":
            stdin_wanted = opts.stdin and bool(sup.container.get("stdin"))
            if stdin_wanted:
                raise ApiError.bad_request(
                    f"attaching to the stdin of container {opts.container} is not supported: Sluice runs containers "
                    "without a stdin pipe; attach without -i/--stdin to follow the container's output")
            log = sup.current_log()
            if log is None:
                raise ApiError.bad_request(f'unable to upgrade connection: container not found ("{opts.container}")')
            ws = await streaming.upgrade(request, "attach")
            attempt = sup.attempt
            await run_attach(ws, log, stdout=opts.stdout, stderr=opts.stderr,
                             running=lambda: sup.attempt == attempt and sup.run_active())
            return ws
        try:
            env = w.exec_env(opts.container)
            problem = None
        except ImageError as e:
            env, problem = {}, e.message
        ws = await streaming.upgrade(request, "exec")
        if problem is not None:
            await channels.ChannelSession(ws).finish(channels.internal_error(problem))
            return ws
        # The image's own program (`/usr/bin/fortio` in a fortio container) is the built-in standing in for it.
        command = tuple(exec_argv(sup.container, list(opts.command)))
        await run_exec(ws, ExecRequest(command=command, sandbox=w.sandbox(opts.container), env=env,
                                       stdin=opts.stdin, stdout=opts.stdout, stderr=opts.stderr, tty=opts.tty))
        return ws

    async def _port_forward(self, request: web.Request, w: PodWorker,
                            opts: streaming.StreamOptions) -> web.StreamResponse:
        protocol = _chosen(request, streaming.PORT_FORWARD_PROTOCOLS)
        if protocol == portforward.CHANNEL_PROTOCOL and not opts.ports:
            raise ApiError.bad_request('query parameter "ports" is required')
        target = portforward.Target(w.dial_address, w.name, w.uid)
        ws = await streaming.upgrade(request, "portforward")
        if ws.ws_protocol == portforward.TUNNEL_PROTOCOL:
            await portforward.serve_spdy_tunnel(ws, target)
        else:
            await portforward.serve_channels(ws, target, opts.ports)
        return ws
