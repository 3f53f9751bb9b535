"""Container probes (httpGet, tcpSocket, exec) and the loop that applies their timings and thresholds.

Used by `sluice.runtime.supervisor`, one `ProbeLoop` per probe of a running container. HTTP probes go to the
app address (the app IP in a sidecar pod, as Istio's probe rewrite would route them); the implicit readiness
check of the `istio-proxy` container asks its Envoy admin `/ready`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sluice.runtime.images import exec_argv
from sluice.runtime.netns import dial

__all__ = ["ProbeSpec", "ProbeLoop", "run_probe", "http_ok", "endpoint_ok", "resolve_port", "send_get"]


@dataclass(frozen=True)
class ProbeSpec:
    """A probe with its timings (Kubernetes defaults; floats so the built-in sidecar check can be quick)."""

    action: dict[str, Any]
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def of(cls, probe: dict[str, Any]) -> ProbeSpec:
        def num(key: str, default: float) -> float:
            v = probe.get(key)
            return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else default
        return cls(probe, num("initialDelaySeconds", 0), max(num("periodSeconds", 10), 0.1),
                   max(num("timeoutSeconds", 1), 0.1), max(int(num("successThreshold", 1)), 1),
                   max(int(num("failureThreshold", 3)), 1))


def resolve_port(port: Any, container: dict[str, Any]) -> int | None:
    """A probe port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) and not isinstance(port, bool):
        return port
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        for p in container.get("ports") or []:
            if isinstance(p, dict) and p.get("name") == port and isinstance(p.get("containerPort"), int):
                return int(p["containerPort"])
    return None


async def http_ok(host: str, port: int, path: str = "/", headers: list[dict[str, Any]] | None = None,
                  timeout: float = 1.0, netns: str | None = None) -> bool:
    """One HTTP/1.1 GET; success is a 2xx or 3xx status, as kubelet decides. With `netns`, the connection
    starts inside that network namespace (the pod's own, as Istio's rewritten probes reach the app)."""
    return await endpoint_ok((host, port), path, headers, timeout, netns)


async def endpoint_ok(endpoint: dial.Endpoint, path: str = "/", headers: list[dict[str, Any]] | None = None,
                      timeout: float = 1.0, netns: str | None = None) -> bool:
    """`http_ok` to a (host, port) or a Unix socket (a loopback-mode Envoy admin)."""
    async def attempt() -> bool:
        reader, writer = await dial.open_endpoint(netns, endpoint, timeout)
        try:
            parts = (await send_get(reader, writer, dial.host_header(endpoint), path or "/", headers)).split()
            return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    try:
        return await asyncio.wait_for(attempt(), timeout)
    except (OSError, TimeoutError, ValueError):
        return False


async def send_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str,
                   headers: list[dict[str, Any]] | None, user_agent: str = "kube-probe/1.35") -> bytes:
    """One HTTP/1.1 GET as the kubelet sends it (its User-Agent, the action's `httpHeaders`, no keep-alive) on an
    open connection; the response's status line."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", f"User-Agent: {user_agent}", "Accept: */*",
             "Connection: close"]
    lines += [f"{h['name']}: {h.get('value', '')}" for h in headers or [] if isinstance(h, dict) and h.get("name")]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    return await reader.readline()


async def _tcp_ok(host: str, port: int, timeout: float, netns: str | None) -> bool:
    try:
        _, writer = await asyncio.wait_for(dial.open_connection(netns, host, port, timeout), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _exec_ok(command: list[str], env: dict[str, str], cwd: str | None, timeout: float) -> bool:
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, env=dict(env), cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    except OSError:
        return False
    try:
        return await asyncio.wait_for(proc.wait(), timeout) == 0
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        await proc.wait()
        return False


async def run_probe(spec: ProbeSpec, container: dict[str, Any], host: str, env: dict[str, str],
                    cwd: str | None, netns: str | None = None, wrapper: Sequence[str] = ()) -> bool:
    """Run one probe once. `netns`: the pod's network namespace; `wrapper`: the argv prefix that runs a
    command inside the pod's sandbox (exec probes)."""
    action = spec.action
    if isinstance(action.get("httpGet"), dict):
        g = action["httpGet"]
        port = resolve_port(g.get("port"), container)
        if port is None:
            return False
        return await http_ok(str(g.get("host") or host), port, str(g.get("path") or "/"),
                             g.get("httpHeaders"), spec.timeout, netns)
    if isinstance(action.get("tcpSocket"), dict):
        t = action["tcpSocket"]
        port = resolve_port(t.get("port"), container)
        return port is not None and await _tcp_ok(str(t.get("host") or host), port, spec.timeout, netns)
    if isinstance(action.get("exec"), dict):
        command = [str(c) for c in action["exec"].get("command") or []]
        # as `kubectl exec` and exec hooks run it: an image's own tool is the built-in that stands in for it
        return bool(command) and await _exec_ok([*wrapper, *exec_argv(container, command)], env, cwd, spec.timeout)
    if isinstance(action.get("grpc"), dict):
        port = resolve_port(action["grpc"].get("port"), container)
        return port is not None and await _tcp_ok(host, port, spec.timeout, netns)  # connectivity only
    return False


class ProbeLoop:
    """Runs a probe every period and reports a state change once a threshold is crossed.

    `on_result(True)` after `success_threshold` consecutive successes, `on_result(False)` after
    `failure_threshold` consecutive failures; each only when the state changes (starting from unknown).
    """

    def __init__(self, spec: ProbeSpec, check: Callable[[], Awaitable[bool]],
                 on_result: Callable[[bool], None]) -> None:
        self.spec = spec
        self._check = check
        self._on_result = on_result
        self.state: bool | None = None

    async def run(self, stop_on_success: bool = False) -> None:
        spec = self.spec
        if spec.initial_delay:
            await asyncio.sleep(spec.initial_delay)
        ok_run = fail_run = 0
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            ok = await self._check()
            if ok:
                ok_run, fail_run = ok_run + 1, 0
                if ok_run >= spec.success_threshold and self.state is not True:
                    self.state = True
                    self._on_result(True)
                    if stop_on_success:
                        return
            else:
                ok_run, fail_run = 0, fail_run + 1
                if fail_run >= spec.failure_threshold and self.state is not False:
                    self.state = False
                    self._on_result(False)
            await asyncio.sleep(max(0.0, spec.period - (loop.time() - began)))
