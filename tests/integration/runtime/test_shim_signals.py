"""A SIGTERM that reaches a container's shim at any moment stops the container, never orphans it.

The race this guards: the kubelet stops a container (`sluice down`, a pod deleted) just as its shim has forked
the program but not yet recorded it (`N.pid`) nor installed the handler that forwards SIGTERM. A shim killed
there left the program running under init with nothing on disk naming it (seen once as an Envoy that outlived
its daemon, with `1.shim` but no `1.pid`). The test freezes a fresh shim right after its fork, checks that it
is in that window (SIGTERM not yet caught), sends SIGTERM, and expects the program to end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.runtime.harness import wait_until

_TERM = 1 << (signal.SIGTERM - 1)


def _sig_caught(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    mask = next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1]
    return bool(int(mask, 16) & _TERM)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _stopped_after_fork(directory: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    """Start a shim running `sleep 60` and SIGSTOP it as soon as it has a child: (shim, child), or None if the
    shim was already past the window (it had installed its SIGTERM handler)."""
    shim = subprocess.Popen([sys.executable, "-m", "sluice.runtime.shim", str(directory), "0", "", "--",
                             "sleep", "60"], start_new_session=True)
    children = Path(f"/proc/{shim.pid}/task/{shim.pid}/children")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = children.read_text().split()
        if kids:
            os.kill(shim.pid, signal.SIGSTOP)
            child = int(kids[0])
            if not _sig_caught(shim.pid):
                return shim, child
            os.kill(child, signal.SIGKILL)
            os.kill(shim.pid, signal.SIGKILL)
            shim.wait()
            return None
    shim.kill()
    shim.wait()
    raise AssertionError("the shim never started its program")


async def test_sigterm_between_fork_and_record_stops_the_program(tmp_path: Path) -> None:
    for attempt in range(60):  # the window is a few hundred µs wide: it is caught about one time in three
        directory = tmp_path / str(attempt)
        directory.mkdir()
        caught = _stopped_after_fork(directory)
        if caught is None:
            continue
        shim, child = caught
        try:
            os.kill(shim.pid, signal.SIGTERM)  # what the kubelet sends to stop the container
            os.kill(shim.pid, signal.SIGCONT)
            await wait_until(lambda c=child: not _alive(c), timeout=10)
            assert shim.wait(10) == 0
            # The run is on record as ended by SIGTERM, as for any stopped container.
            code, sig, _ = (directory / "0.exit").read_text().split()
            assert (code, sig) == ("143", "15")
            assert (directory / "0.pid").read_text().split()[0] == str(child)
            return
        finally:
            if _alive(child):
                os.kill(child, signal.SIGKILL)
            if shim.poll() is None:
                shim.kill()
                shim.wait()
    raise AssertionError("never froze the shim between its fork and its SIGTERM handler")
