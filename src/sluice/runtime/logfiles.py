"""Container log rotation, as the kubelet does it: the files of one container run and how they turn over.

The shim (`sluice.runtime.shim`) calls `rotate` when the run's log `N.log` reaches the size limit, and
`sluice.runtime.logs` reads a run's files with `chain` and `read_whole`. Kubelet's scheme
(`pkg/kubelet/logs/container_log_manager.go`, containerLogMaxSize 10Mi and containerLogMaxFiles 5 by default):
the full log is renamed `N.log.<YYYYmmdd-HHMMSS>` and a new `N.log` is started; before that, older rotated
files are gzip-compressed to `….gz` (the newest one stays plain so a reader can finish it) and the oldest are
removed, so a container never holds more than `max_files` files (the current one included).

Here the writer rotates (the kubelet checks every 10 s), so a file exceeds the limit by at most one write, and
the daemon need not run for logs to stay bounded. Two rotations in one second would need the same name: the
second waits for the next write in a new second. `N.log` always exists: the new file is renamed over it.

Only built-in modules: the shim imports this at every container start.
"""

from __future__ import annotations

import gzip
import os
import time
from dataclasses import dataclass

__all__ = ["LogRotation", "DEFAULT_MAX_SIZE", "DEFAULT_MAX_FILES", "rotated", "chain", "read_whole", "rotate"]

DEFAULT_MAX_SIZE = 10 * 1024 * 1024  # kubelet's containerLogMaxSize, 10Mi
DEFAULT_MAX_FILES = 5  # kubelet's containerLogMaxFiles
TIMESTAMP = "%Y%m%d-%H%M%S"  # Go's "20060102-150405", kubelet's suffix for rotated logs
_STAMP_LEN = 15
GZ = ".gz"
TMP = ".tmp"


@dataclass(frozen=True)
class LogRotation:
    max_size: int = DEFAULT_MAX_SIZE  # bytes; 0 or less: never rotate
    max_files: int = DEFAULT_MAX_FILES  # files per container run, the one being written included; > 1


def _is_stamp(s: str) -> bool:
    return len(s) == _STAMP_LEN and s[8] == "-" and s[:8].isdigit() and s[9:].isdigit()


def rotated(base: str) -> list[str]:
    """The rotated files of the log `base` (full paths), oldest first; a file being compressed counts once
    (its plain copy while the `.gz` is not complete, the `.gz` after)."""
    directory, name = os.path.split(base)
    prefix = name + "."
    try:
        names = os.listdir(directory or ".")
    except FileNotFoundError:
        return []
    found: dict[str, str] = {}
    for n in names:
        if not n.startswith(prefix):
            continue
        rest = n[len(prefix):]
        stamp = rest[:-len(GZ)] if rest.endswith(GZ) else rest
        if not _is_stamp(stamp):
            continue  # temporary files and anything else
        if rest.endswith(GZ) or stamp not in found:
            found[stamp] = n
    return [os.path.join(directory, found[s]) for s in sorted(found)]


def chain(base: str) -> list[str]:
    """Every file of the run whose current log is `base`, oldest first, `base` last."""
    return [*rotated(base), base]


def stamp_of(path: str) -> str:
    """The rotation time in a rotated file's name (`""` for the current file)."""
    name = os.path.basename(path)
    if name.endswith(GZ):
        name = name[:-len(GZ)]
    tail = name.rsplit(".", 1)[-1]
    return tail if _is_stamp(tail) else ""


def read_whole(path: str) -> bytes:
    """A log file's bytes, decompressed if it is a `.gz`; a file removed meanwhile reads as empty."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        if path.endswith(GZ):
            return b""
        try:  # compressed meanwhile
            return read_whole(path + GZ)
        except OSError:
            return b""
    return gzip.decompress(data) if path.endswith(GZ) else data


def _compress(path: str) -> None:
    tmp = path + GZ + TMP
    with open(path, "rb") as src, open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6,
                                                                      mtime=0) as gz:
        while block := src.read(1 << 20):
            gz.write(block)
    os.replace(tmp, path + GZ)
    os.unlink(path)


def rotate(base: str, policy: LogRotation, now: float | None = None) -> int | None:
    """Rotate the log `base`: returns a descriptor of the new, empty `base` opened for appending (the caller
    closes the old one), or None when this is not the time (a rotation already happened this second)."""
    stamp = time.strftime(TIMESTAMP, time.gmtime(time.time() if now is None else now))
    target = f"{base}.{stamp}"
    if os.path.exists(target) or os.path.exists(target + GZ):
        return None
    directory, name = os.path.split(base)
    for n in os.listdir(directory or "."):  # leftovers of an interrupted rotation
        if n.startswith(name + ".") and n.endswith(TMP):
            os.unlink(os.path.join(directory, n))
    old = rotated(base)
    # The new current file and the one rotated now make up the rest: remove the oldest, as kubelet does.
    excess = max(0, len(old) - max(0, policy.max_files - 2))
    for path in old[:excess]:
        for p in (path, path[:-len(GZ)] if path.endswith(GZ) else path + GZ):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
    for path in old[excess:]:
        if not path.endswith(GZ):
            _compress(path)
    # `base` never disappears: the old file gets its rotated name as a second link, then a fresh file
    # replaces `base` in one rename (readers following it see a new inode behind the name).
    os.link(base, target)
    fresh = base + TMP
    new_fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    try:
        os.replace(fresh, base)
    except OSError:
        os.close(new_fd)
        os.unlink(target)
        raise
    return new_fd
