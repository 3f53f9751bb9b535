"""Worker processes the daemon starts from its own modules (`python -m sluice.…`): the environment that finds
this copy of Sluice, and dying with the daemon."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import sluice

__all__ = ["module_env", "die_with_parent"]


def module_env() -> dict[str, str]:
    """The daemon's environment, with this copy of Sluice first on PYTHONPATH (a checkout run without
    installing works too)."""
    src = str(Path(sluice.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


def die_with_parent(parent: int) -> None:
    """The kernel kills this process when the daemon dies, even in the middle of a job (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the daemon died before the line above
        os._exit(0)
