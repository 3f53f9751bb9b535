"""Container lifecycle hooks (`lifecycle.postStart`, `lifecycle.preStop`), run as the kubelet runs them.

The kubelet (pkg/kubelet/lifecycle/handlers.go) knows three handlers: `exec` (a command inside the container,
failing on a non-zero exit), `httpGet` (one GET, to the pod's IP unless `host` is set; any HTTP answer is
success, only a failed request fails) and `sleep`; anything else, `tcpSocket` included, fails with "Cannot run
handler". A failure is a message in the kubelet's words, which the supervisor turns into the
`FailedPostStartHook` / `FailedPreStopHook` events. Istio's injector rewrites httpGet and tcpSocket handlers to
the agent's status port (`sluice.resources.appprobes`); Sluice has no agent there, so the original handler the
rewritten one stands for is run in its place, as the agent would run it (a tcpSocket one as a connection).

Used by `sluice.runtime.supervisor`; I/O only through the probes' dialers and a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sluice.runtime.images import exec_argv
from sluice.runtime.netns import dial
from sluice.runtime.probes import resolve_port, send_get

__all__ = ["HookContext", "handler", "run_hook"]

_OUTPUT_LIMIT = 10 * 1024  # of an exec hook's output kept for the event's message
_USER_AGENT = "kube-lifecycle/1.35"


@dataclass(frozen=True)
class HookContext:
    """Where and how a container's hooks run (from its `Launch`)."""

    pod_key: str  # "<pod>_<namespace>(<uid>)", as the kubelet names pods in messages
    host: str  # the default httpGet host: the app's address
    env: Mapping[str, str]
    cwd: str | None
    netns: str | None = None
    wrapper: Sequence[str] = ()  # enters the pod's sandbox before exec'ing a command
    # an httpGet Istio rewrote to the agent's status port → the original it stands for
    original: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None


def handler(container: Mapping[str, Any], which: str) -> dict[str, Any] | None:
    """The container's `lifecycle.<which>` handler (`postStart`, `preStop`), if it has one."""
    lifecycle = container.get("lifecycle")
    h = lifecycle.get(which) if isinstance(lifecycle, dict) else None
    return h if isinstance(h, dict) and h else None


async def run_hook(h: dict[str, Any], container: Mapping[str, Any], ctx: HookContext,
                   timeout: float | None = None) -> str | None:
    """Run one handler; None when it succeeded, else the kubelet's message. `timeout` bounds it (a preStop hook
    has the rest of the grace period); running out of time is a failure."""
    kind = _describe(h)
    if kind is None:
        return f"Cannot run handler: invalid handler: {h}"
    try:
        error = await asyncio.wait_for(_run(h, container, ctx), timeout)
    except TimeoutError:
        error = f"not finished within the {timeout:.0f}s left of the grace period"
    if error is None:
        return None
    name = str(container.get("name") or "")
    return f"{kind} for Container {_quoted(name)} in Pod {_quoted(ctx.pod_key)} failed - error: {error}"


def _describe(h: Mapping[str, Any]) -> str | None:
    """The handler as the kubelet's messages name it; None for one it cannot run."""
    if isinstance(h.get("exec"), dict):
        return f"Exec lifecycle hook ({_go_list(h['exec'].get('command'))})"
    if isinstance(h.get("httpGet"), dict):
        return f"HTTP lifecycle hook ({h['httpGet'].get('path') or ''})"
    if isinstance(h.get("sleep"), dict):
        return f"Sleep lifecycle hook ({h['sleep'].get('seconds')})"
    return None


def _go_list(items: Any) -> str:
    return "[" + " ".join(str(i) for i in items or []) + "]"  # Go's %v of a []string


def _quoted(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'  # Go's %q, near enough


async def _run(h: dict[str, Any], container: Mapping[str, Any], ctx: HookContext) -> str | None:
    """The handler's error, as the kubelet words it after "failed - error: "; None when it succeeded."""
    if isinstance(h.get("exec"), dict):
        command = [str(c) for c in h["exec"].get("command") or []]
        # as `kubectl exec` runs it: an image's own program (`pilot-agent wait` in istio-proxy) is its built-in
        code, output = await _exec(exec_argv(dict(container), command) if command else command, ctx)
        if code == 0:
            return None
        return f"command '{' '.join(command)}' exited with {code}: {output}, message: {_quoted(output)}"
    if isinstance(h.get("httpGet"), dict):
        original = ctx.original(h) if ctx.original is not None else None
        return await (_agent(original, container, ctx) if original is not None
                      else _http(h["httpGet"], container, ctx))
    seconds = h["sleep"].get("seconds")
    await asyncio.sleep(float(seconds) if isinstance(seconds, int) and seconds > 0 else 0.0)
    return None


async def _exec(command: list[str], ctx: HookContext) -> tuple[int, str]:
    if not command:
        return 126, "no command"
    try:
        proc = await asyncio.create_subprocess_exec(
            *ctx.wrapper, *command, env=dict(ctx.env), cwd=ctx.cwd, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    except OSError as e:
        return 126, f"exec: {shlex.quote(command[0])}: {e.strerror or e}"
    try:
        assert proc.stdout is not None
        out = b""
        while chunk := await proc.stdout.read(65536):
            out = (out + chunk)[-_OUTPUT_LIMIT:]
        return await proc.wait(), out.decode(errors="replace")
    finally:
        if proc.returncode is None:  # cancelled (the grace period ran out): the command goes with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            await proc.wait()


async def _http(get: Mapping[str, Any], container: Mapping[str, Any], ctx: HookContext) -> str | None:
    """One GET as the kubelet's lifecycle handler sends it; an error text, or None for any HTTP answer."""
    port = resolve_port(get.get("port"), dict(container))
    if port is None:
        return f"couldn't find port: {get.get('port')}"
    host = str(get.get("host") or ctx.host)
    path = str(get.get("path") or "")
    path = path if path.startswith("/") else "/" + path
    try:
        reader, writer = await dial.open_endpoint(ctx.netns, (host, port), 10.0)
    except (OSError, TimeoutError) as e:
        return f'Get "http://{host}:{port}{path}": dial tcp {host}:{port}: {e.strerror or e}'
    try:
        status = await send_get(reader, writer, f"{host}:{port}", path, get.get("httpHeaders"), _USER_AGENT)
        if not status.startswith(b"HTTP/"):
            return f'Get "http://{host}:{port}{path}": malformed HTTP response {status[:100]!r}'
        return None
    except OSError as e:
        return f'Get "http://{host}:{port}{path}": {e.strerror or e}'
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _agent(original: Mapping[str, Any], container: Mapping[str, Any], ctx: HookContext) -> str | None:
    """What Istio's agent does for a rewritten handler: the original GET, or a connection for a tcpSocket."""
    if isinstance(original.get("httpGet"), dict):
        return await _http(original["httpGet"], container, ctx)
    tcp = original.get("tcpSocket")
    port = resolve_port(tcp.get("port"), dict(container)) if isinstance(tcp, dict) else None
    if not isinstance(tcp, dict) or port is None:
        return "the agent has no handler for this path"
    host = str(tcp.get("host") or ctx.host)
    try:
        _, writer = await dial.open_connection(ctx.netns, host, port, 10.0)
    except (OSError, TimeoutError) as e:
        return f"dial tcp {host}:{port}: {e.strerror or e}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None

