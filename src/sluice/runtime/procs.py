"""Processes the kubelet did not necessarily start itself: identity checks, signals, and waiting for exit.

Used by `sluice.runtime.supervisor`. A pid alone is not an identity (pids are recycled, and a restarted daemon
finds pids in files), so every pid travels with its `/proc/<pid>/stat` start time. Waiting uses a pidfd, which
works for processes that are not our children (the shims of an adopted pod belong to init, not to us).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcRef", "start_time", "wait_exit", "kill_group"]


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return text.rsplit(")", 1)[1].split()
    except IndexError:
        return None


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (`"0"` if it is gone)."""
    fields = _stat(pid)
    return fields[19] if fields and len(fields) > 19 else "0"


@dataclass(frozen=True)
class ProcRef:
    """A process identified by pid and start time."""

    pid: int
    started: str

    @classmethod
    def of(cls, pid: int) -> ProcRef:
        return cls(pid, start_time(pid))

    @classmethod
    def parse(cls, text: str) -> ProcRef | None:
        parts = text.split()
        if len(parts) < 2 or not parts[0].isdigit():
            return None
        return cls(int(parts[0]), parts[1])

    def alive(self) -> bool:
        fields = _stat(self.pid)
        return bool(fields) and fields is not None and len(fields) > 19 and fields[19] == self.started \
            and fields[0] not in ("Z", "X")

    def signal(self, sig: int) -> bool:
        if not self.alive():
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, sig)
            return True
        return False


def kill_group(ref: ProcRef) -> None:
    """SIGKILL the process group led by `ref` (the container program runs as its own group leader).

    Sent even when the leader is gone: its children may remain, and the group id stays valid while they do."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(ref.pid, signal.SIGKILL)


def _reap(pid: int) -> None:
    # Our own children must be reaped or they stay zombies; for adopted processes this is a no-op.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


async def wait_exit(ref: ProcRef, poll: float = 0.5) -> None:
    """Return once `ref` has exited (and reap it if it is our child)."""
    try:
        fd = os.pidfd_open(ref.pid)
    except OSError:
        fd = -1
    if fd < 0 or not ref.alive():  # pidfd unavailable, or the pid was recycled before we opened it
        if fd >= 0:
            os.close(fd)
        while ref.alive():
            await asyncio.sleep(poll)
        _reap(ref.pid)
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    _reap(ref.pid)
