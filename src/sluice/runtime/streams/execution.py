"""`kubectl exec`: one command in a container's sandbox, its stdio on the channels of one WebSocket.

Started by `sluice.runtime.streams.source` once the request is upgraded. Without a TTY the command gets
pipes (stdin only when asked for); with one (`-it`) it runs on a pseudo-terminal whose size follows
channel 4. The command runs in its own session, and the whole process group is killed when the session
ends for any reason (the command exits, the client disconnects, the daemon stops): nothing outlives it.
The exit code travels on channel 3 the way kubelet writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import struct
import sys
import termios
from dataclasses import dataclass

from sluice.runtime.enter import EnterSpec, argv_for
from sluice.runtime.streams import channels

__all__ = ["ExecRequest", "run_exec", "find_program"]

_CHUNK = 32 * 1024
_QUEUED_CHUNKS = 16  # terminal output read ahead of a slow client, at most
_EXIT_POLL = 0.05
_DRAIN_SECONDS = 1.0  # after the command exits, how long its output may pause before the session ends
# Makes fd 0 (the pty's slave side) the controlling terminal of a new session, then execs the rest.
_LOGIN_TTY = "import os, sys; os.login_tty(0); os.execv(sys.argv[1], sys.argv[1:])"


@dataclass(frozen=True)
class ExecRequest:
    command: tuple[str, ...]
    sandbox: EnterSpec
    env: dict[str, str]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def find_program(command: str, env: dict[str, str], cwd: str | None) -> str | None:
    """Why `command` cannot be executed (the runtime's message), or None if it can."""
    if "/" in command:
        path = os.path.join(cwd or "/", command)
        if not os.path.exists(path):
            return f'exec: "{command}": stat {command}: no such file or directory'
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            return f'exec: "{command}": permission denied'
        return None
    if shutil.which(command, path=env.get("PATH", os.defpath)) is None:
        return f'exec: "{command}": executable file not found in $PATH'
    return None


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def _exited(proc: asyncio.subprocess.Process) -> int:
    """The exit code, as soon as the command exits: `proc.wait()` also waits for its pipes to close, which
    a background process it left behind can hold open for as long as it likes."""
    while proc.returncode is None:
        await asyncio.sleep(_EXIT_POLL)
    return proc.returncode


def _exit_status(code: int) -> bytes:
    if code < 0:
        code = 128 - code  # killed by a signal: the shell convention the runtimes report
    return channels.success() if code == 0 else channels.exit_code(code & 0xFF)


async def run_exec(session: channels.Session, req: ExecRequest) -> None:
    """Run the command for an upgraded session; returns once the session is over and the process is gone."""
    problem = find_program(req.command[0], req.env, req.sandbox.cwd)
    if problem is not None:
        # containerd + runc's chain of messages, which is what users know (and search for) from kubectl.
        exec_id = secrets.token_hex(32)
        await session.finish(channels.internal_error(
            f'error executing command in container: failed to exec in container: failed to start exec "{exec_id}": '
            f"OCI runtime exec failed: exec failed: unable to start container process: {problem}: unknown"))
        return
    await (_run_tty(session, req) if req.tty else _run_pipes(session, req))


async def _run_pipes(session: channels.Session, req: ExecRequest) -> None:
    pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(  # env as a plain dict: uvloop refuses a dict's subclasses
        *argv_for(req.sandbox, list(req.command)), env=dict(req.env), stdin=pipe if req.stdin else null,
        stdout=pipe if req.stdout else null, stderr=pipe if req.stderr else null, start_new_session=True)

    async def to_stdin(data: bytes) -> None:
        if proc.stdin is not None and not proc.stdin.is_closing():
            with contextlib.suppress(ConnectionError):
                proc.stdin.write(data)
                await proc.stdin.drain()

    async def close_stdin() -> None:
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()

    session.on_stdin, session.on_stdin_close = to_stdin, close_stdin
    pumps = [asyncio.create_task(_pump(stream, session, ch))
             for stream, ch in ((proc.stdout, channels.STDOUT), (proc.stderr, channels.STDERR)) if stream is not None]
    await _supervise(session, proc, pumps)


async def _pump(stream: asyncio.StreamReader, session: channels.Session, channel: int) -> None:
    while True:
        data = await stream.read(_CHUNK)
        if not data or not await session.send(channel, data):
            return
        session.progress += 1


async def _drain(session: channels.Session, pumps: list[asyncio.Task[None]]) -> None:
    """Let output written before the exit through: for as long as it keeps coming, then until EOF — which
    never comes while something the command left behind still holds its stdout, so stop after a quiet second."""
    while pumps:
        before = session.progress
        _, pending = await asyncio.wait(pumps, timeout=_DRAIN_SECONDS)
        if not pending or session.progress == before:
            return


async def _supervise(session: channels.Session, proc: asyncio.subprocess.Process,
                     pumps: list[asyncio.Task[None]]) -> None:
    """Wait for the command or the client, whichever ends first; then end the other."""
    session.start()
    waiter = asyncio.create_task(_exited(proc))
    gone = asyncio.create_task(session.closed.wait())
    try:
        await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
        if waiter.done():
            await _drain(session, pumps)
            _kill_group(proc)
            await session.finish(_exit_status(waiter.result()))
    finally:
        _kill_group(proc)
        for t in (*pumps, gone):
            t.cancel()
        with contextlib.suppress(ProcessLookupError):
            await proc.wait()
        await session.stop()


def _set_size(fd: int, columns: int, rows: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


async def _run_tty(session: channels.Session, req: ExecRequest) -> None:
    master, slave = os.openpty()
    env = dict(req.env)
    env.setdefault("TERM", "xterm")
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _LOGIN_TTY, *argv_for(req.sandbox, list(req.command)), env=env,
            stdin=slave, stdout=slave, stderr=slave)
    finally:
        os.close(slave)
    os.set_blocking(master, False)
    loop = asyncio.get_running_loop()
    output: asyncio.Queue[bytes] = asyncio.Queue()
    paused = False

    def readable() -> None:
        nonlocal paused
        try:
            data = os.read(master, _CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO: every holder of the slave side is gone
        if not data or output.qsize() >= _QUEUED_CHUNKS:
            loop.remove_reader(master)  # at the end, or until the client has caught up
            paused = bool(data)
        output.put_nowait(data)

    loop.add_reader(master, readable)

    async def to_stdin(data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(master, view):]
            except BlockingIOError:
                await asyncio.sleep(0.01)  # the terminal's input buffer is full: the program will read it
            except OSError:
                return

    session.on_stdin = to_stdin if req.stdin else None
    session.on_resize = lambda w, h: _set_size(master, w, h)

    async def pump() -> None:
        nonlocal paused
        while True:
            data = await output.get()
            if not data or not await session.send(channels.STDOUT, data):
                return
            session.progress += 1
            if paused and output.empty():
                paused = False
                loop.add_reader(master, readable)

    try:
        await _supervise(session, proc, [asyncio.create_task(pump())])
    finally:
        loop.remove_reader(master)
        os.close(master)
