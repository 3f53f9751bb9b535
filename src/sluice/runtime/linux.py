"""Thin ctypes bindings for the Linux namespace calls Python 3.11's `os` lacks: setns, unshare, mount.

Used by `sluice.runtime.enter` (in a forked child, just before exec) and `sluice.runtime.netns` (to make
sockets inside a pod's or the node's network namespace). Only built-in modules: the shim imports this.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["CLONE_NEWNET", "CLONE_NEWNS", "CLONE_NEWUTS", "MS_BIND", "MS_PRIVATE", "MS_REC", "setns", "unshare",
           "mount", "sethostname", "enter_netns_file"]

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def setns(fd: int, nstype: int) -> None:
    """Move the calling thread into the namespace `fd` refers to."""
    _check(_libc.setns(fd, nstype), "setns")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    _check(_libc.mount(source.encode() if source else None, target.encode(),
                       fstype.encode() if fstype else None, ctypes.c_ulong(flags), None), f"mount {target}")


def sethostname(name: str) -> None:
    data = name.encode()
    _check(_libc.sethostname(data, len(data)), "sethostname")


def enter_netns_file(path: str) -> None:
    """setns into the network namespace bound at `path` (e.g. /run/netns/NAME)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd, CLONE_NEWNET)
    finally:
        os.close(fd)
