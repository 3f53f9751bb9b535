"""The kubelet's side of `pods/exec`, `pods/attach` and `pods/portforward` (the API server's `StreamSource`).

Given a Pod and the checked options (`sluice.api.streaming`), find the pod's worker and container here,
refuse what cannot be served while the request is still plain HTTP, then upgrade (WebSocket, or SPDY/3.1
for older kubectl) and run the session:
`execution` (exec), `attach`, `portforward`. Everything about where a command runs and where a port is
reached comes from the pod worker (`PodWorker.sandbox`, `exec_env`, `dial_address`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sluice.api import streaming
from sluice.api.errors import ApiError
from sluice.objects import Obj
from sluice.runtime.images import ImageError, exec_argv
from sluice.runtime.streams import channels, portforward
from sluice.runtime.streams.attach import run_attach
from sluice.runtime.streams.execution import ExecRequest, run_exec
from sluice.runtime.streams.spdy_session import SpdySession, expected_streams

if TYPE_CHECKING:
    from sluice.runtime.pod import PodWorker

__all__ = ["StreamServer"]

log = logging.getLogger("sluice.runtime")



def _chosen(request: web.Request, supported: tuple[str, ...]) -> str | None:
    offered = [p.strip() for h in request.headers.getall("Sec-WebSocket-Protocol", []) for p in h.split(",")]
    return next((p for p in offered if p in supported), None)


async def _guarded(session: channels.Session, work: Coroutine[Any, Any, None]) -> None:
    """Once upgraded, a failure can only be told on the error channel (a Status response is too late)."""
    try:
        await work
    except Exception as e:  # noqa: BLE001 - the last line of defence for an upgraded stream
        log.exception("exec/attach session failed")
        await session.finish(channels.internal_error(f"{type(e).__name__}: {e}"))


MAX_SESSIONS = 128  # open exec/attach/port-forward sessions at once: every one holds processes or sockets


class StreamServer:
    def __init__(self, workers: Callable[[], dict[tuple[str, str], PodWorker]],
                 max_sessions: int = MAX_SESSIONS) -> None:
        self._workers = workers
        self._max = max_sessions
        self._active = 0

    def _worker(self, pod: Obj) -> PodWorker:
        meta = pod.get("metadata") or {}
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name"))
        w = self._workers().get((ns, name))
        if w is None or w.uid != meta.get("uid"):
            raise ApiError.bad_request(f'unable to upgrade connection: pod not found ("{name}_{ns}")')
        return w

    async def __call__(self, request: web.Request, pod: Obj, opts: streaming.StreamOptions) -> web.StreamResponse:
        if self._active >= self._max:
            raise ApiError(429, "TooManyRequests", f"too many open exec, attach and port-forward sessions "
                                                   f"({self._max}): close one and retry")
        self._active += 1
        try:
            return await self._serve(request, pod, opts)
        finally:
            self._active -= 1

    async def _serve(self, request: web.Request, pod: Obj, opts: streaming.StreamOptions) -> web.StreamResponse:
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
            log_path = sup.current_log()
            if log_path is None:
                raise ApiError.bad_request(f'unable to upgrade connection: container not found ("{opts.container}")')
            resp, session = await self._upgrade(request, opts)
            if session is not None:
                attempt = sup.attempt
                await _guarded(session, run_attach(session, log_path, stdout=opts.stdout, stderr=opts.stderr,
                                                   running=lambda: sup.attempt == attempt and sup.run_active()))
            return resp
        try:
            env = w.exec_env(opts.container)
            problem = None
        except ImageError as e:
            env, problem = {}, e.message
        resp, session = await self._upgrade(request, opts)
        if session is None:
            return resp
        if problem is not None:
            await session.finish(channels.internal_error(problem))
            return resp
        req = ExecRequest(command=tuple(exec_argv(sup.container, list(opts.command))),
                          sandbox=w.sandbox(opts.container), env=env, stdin=opts.stdin,
                          stdout=opts.stdout, stderr=opts.stderr, tty=opts.tty)
        await _guarded(session, run_exec(session, req))
        return resp

    @staticmethod
    async def _upgrade(request: web.Request, opts: streaming.StreamOptions
                       ) -> tuple[web.StreamResponse, channels.Session | None]:
        """The upgraded response and its session (None: a SPDY client never opened its streams)."""
        if not streaming.is_spdy(request):
            ws = await streaming.upgrade(request, opts.action)
            return ws, channels.ChannelSession(ws)
        resp, conn = await streaming.upgrade_spdy(request, opts.action)
        session = SpdySession(conn, expected_streams(stdin=opts.stdin, stdout=opts.stdout, stderr=opts.stderr,
                                                     tty=opts.tty))
        if not await session.open():
            await session.stop()
            return resp, None
        return resp, session

    async def _port_forward(self, request: web.Request, w: PodWorker,
                            opts: streaming.StreamOptions) -> web.StreamResponse:
        protocol = _chosen(request, streaming.PORT_FORWARD_PROTOCOLS)
        if protocol == portforward.CHANNEL_PROTOCOL and not opts.ports:
            raise ApiError.bad_request('query parameter "ports" is required')
        target = portforward.Target(w.dial_address, w.name, w.uid)
        if streaming.is_spdy(request):
            resp, conn = await streaming.upgrade_spdy(request, "portforward")
            try:
                await portforward.serve_spdy(conn, target)
            except Exception:
                log.exception("port-forward session failed")
            finally:
                conn.close()
            return resp
        ws = await streaming.upgrade(request, "portforward")
        try:
            if ws.ws_protocol == portforward.TUNNEL_PROTOCOL:
                await portforward.serve_spdy_tunnel(ws, target)
            else:
                await portforward.serve_channels(ws, target, opts.ports)
        except Exception:
            log.exception("port-forward session failed")
            await ws.close(code=1011)
        return ws
