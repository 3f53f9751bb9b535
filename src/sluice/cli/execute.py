"""`sluice exec [-i] [-t] [-c CONTAINER] POD|TYPE/NAME -- COMMAND [ARGS…]`: kubectl exec over `v5.channel.k8s.io`.

Local stdin (with `-i`) goes to channel 0 and its end to the v5 close signal; channels 1 and 2 go to stdout
and stderr; with `-t` on a terminal, the local terminal is put in raw mode and its size follows on channel
4. The remote command's exit code becomes this command's (`command terminated with exit code N`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

import click

from sluice.cli.attachable import attachable_pod
from sluice.cli.context import global_options, session
from sluice.cli.errors import CliError
from sluice.cli.logs import pick_container

__all__ = ["COMMANDS", "exit_from_status", "run_in_pod"]

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def exit_from_status(raw: bytes) -> tuple[int, str]:
    """(exit code, message for stderr) from the channel-3 Status, as kubectl decodes it."""
    if not raw:
        return 0, ""
    try:
        st = json.loads(raw)
    except ValueError:
        return 1, f"error: error stream protocol error: {raw.decode('utf-8', 'replace')}"
    if not isinstance(st, dict) or st.get("status") == "Success":
        return 0, ""
    if st.get("status") != "Failure":
        return 1, "error: error stream protocol error: unknown error"
    if st.get("reason") == "NonZeroExitCode":
        for cause in (st.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                try:
                    code = int(cause.get("message"))
                except (TypeError, ValueError):
                    break
                if 0 <= code <= 255:
                    return code, f"command terminated with exit code {code}"
        return 1, "error: error stream protocol error: no ExitCode cause given"
    return 1, f"error: {st.get('message') or 'unknown error'}"


def _terminal_size() -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except OSError:
        return None
    return size.columns, size.lines


async def _session(conn: Any, *, stdin: bool, tty: bool) -> tuple[int, str]:
    import aiohttp
    ws = conn.ws
    loop = asyncio.get_running_loop()
    status = bytearray()

    async def send(channel: int, data: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_bytes(bytes([channel]) + data)

    def resize() -> None:
        size = _terminal_size()
        if size is not None:
            body = json.dumps({"Width": size[0], "Height": size[1]}).encode() + b"\n"
            loop.create_task(send(RESIZE, body))

    if tty:
        resize()
        loop.add_signal_handler(signal.SIGWINCH, resize)
    if stdin:
        def pump_stdin() -> None:
            # A thread, so a pipe, a file and a terminal are read alike; a daemon thread dies with us.
            while True:
                try:
                    data = os.read(sys.stdin.fileno(), 32 * 1024)
                except OSError:
                    data = b""
                try:
                    if not data:
                        if not tty:
                            asyncio.run_coroutine_threadsafe(send(CLOSE, bytes([STDIN])), loop)
                        return
                    asyncio.run_coroutine_threadsafe(send(STDIN, data), loop)
                except RuntimeError:
                    return  # the session is over (its loop is closed)

        threading.Thread(target=pump_stdin, daemon=True).start()
    out, err = sys.stdout.buffer, sys.stderr.buffer
    async for msg in ws:
        if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
            continue
        channel, payload = msg.data[0], msg.data[1:]
        if channel == STDOUT:
            out.write(payload)
            out.flush()
        elif channel == STDERR:
            err.write(payload)
            err.flush()
        elif channel == ERROR:
            status += payload
    if tty:
        loop.remove_signal_handler(signal.SIGWINCH)
    if ws.close_code not in (1000, None):
        return 1, f"error: error reading from error stream: websocket: close {ws.close_code}"
    return exit_from_status(bytes(status))


def _exec_query(command: Sequence[str], container: str, *, stdin: bool, tty: bool) -> list[tuple[str, str]]:
    """kubectl's exec query: stderr is merged into the terminal with a TTY."""
    query = [("command", c) for c in command] + [("container", container)]
    if not tty:
        query.append(("stderr", "true"))
    if stdin:
        query.append(("stdin", "true"))
    query.append(("stdout", "true"))
    if tty:
        query.append(("tty", "true"))
    return query


async def _exec(s: Any, namespace: str, pod: str, query: list[tuple[str, str]], *, stdin: bool,
                tty: bool) -> tuple[int, str]:
    from sluice.client.streams import open_stream  # aiohttp loads only when a command streams
    conn = await open_stream(s.client.rest, f"/api/v1/namespaces/{namespace}/pods/{pod}/exec", query,
                             ["v5.channel.k8s.io"])
    try:
        return await _session(conn, stdin=stdin, tty=tty)
    finally:
        await conn.close()


def run_in_pod(s: Any, namespace: str, pod: str, container: str, command: list[str]) -> tuple[int, str]:
    """Run `command` in a pod's container over the exec stream, its stdout and stderr passed through to ours;
    (exit code, message) as for `sluice exec`."""
    query = _exec_query(command, container, stdin=False, tty=False)
    return asyncio.run(_exec(s, namespace, pod, query, stdin=False, tty=False))


@click.command("exec", context_settings={"ignore_unknown_options": False})
@click.argument("target")
@click.argument("command", nargs=-1, required=False)
@click.option("-c", "--container", help="Container name. If omitted, the default-container annotation or the first.")
@click.option("-i", "--stdin", "stdin", is_flag=True, help="Pass stdin to the container.")
@click.option("-t", "--tty", "tty", is_flag=True, help="Stdin is a TTY.")
@click.option("-q", "--quiet", is_flag=True, help="Only print output from the remote session.")
@global_options
def exec_cmd(target: str, command: tuple[str, ...], container: str | None, stdin: bool, tty: bool,
             quiet: bool) -> None:
    """Execute a command in a container (`sluice exec deploy/sleep -- curl -s http://reviews:9080/`)."""
    if not command:
        raise CliError("you must specify at least one command for the container")
    s = session()
    ns = s.namespace
    pod = attachable_pod(s, target, ns)
    name = str(pod["metadata"]["name"])
    phase = str((pod.get("status") or {}).get("phase") or "")
    if phase in ("Succeeded", "Failed"):
        raise CliError(f"cannot exec into a container in a completed pod; current phase is {phase}")
    if container:
        chosen = container  # the server checks it, as it does for kubectl
    elif quiet:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):  # no "Defaulted container"
            chosen = pick_container(pod, None)[0]
    else:
        chosen = pick_container(pod, None)[0]
    if tty and not stdin:
        click.echo("Unable to use a TTY - input is not a terminal or the right kind of file", err=True)
        tty = False
    if tty and not os.isatty(sys.stdin.fileno()):
        click.echo("Unable to use a TTY - input is not a terminal or the right kind of file", err=True)
        tty = False
    query = _exec_query(command, chosen, stdin=stdin, tty=tty)
    saved = None
    if tty:
        import termios
        import tty as ttymod

        saved = termios.tcgetattr(sys.stdin.fileno())
        ttymod.setraw(sys.stdin.fileno(), termios.TCSANOW)  # keep what was typed ahead
    try:
        code, message = asyncio.run(_exec(s, ns, name, query, stdin=stdin, tty=tty))
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
    if code:
        raise CliError(message, code, raw=True)
    if message:
        click.echo(message, err=True)


COMMANDS = [exec_cmd]
