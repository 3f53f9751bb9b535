"""Stopping pods without the daemon: what `sluice down` does when the daemon had to be killed (it did not
answer SIGTERM in time: a frozen event loop, SIGSTOP) or was already gone (kill -9), so no app or Envoy is
left running with nothing supervising it.

Called by `sluice.daemon.control.down`. Reads the runtime's on-disk record (`sluice.runtime.layout`:
`SLUICE_HOME/runtime/pods/<uid>/containers/<name>/` holds per run `N.pid`, `N.shim` and, once it ended,
`N.exit`) and stops like the kubelet does on `sluice down`: the apps get SIGTERM, their process groups SIGKILL
after the grace period, then the sidecars the same way (a pod's traffic needs its Envoy until its app is gone),
then any shim still alive, then the node: processes recorded in `runtime/*.pid` (netns mode's cluster DNS)
and the pod network's namespaces. Pod objects, IPs and logs are kept; the shims record each exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sluice.mesh import SIDECAR_CONTAINER
from sluice.runtime import procs
from sluice.runtime.layout import RuntimeLayout
from sluice.runtime.netns.node import NodeNetwork
from sluice.runtime.supervisor import ContainerFiles

__all__ = ["Run", "running", "stop", "node_processes", "stop_node"]


@dataclass(frozen=True)
class Run:
    """One container run whose program or shim is still alive."""

    pod: str  # namespace/name
    container: str
    program: procs.ProcRef | None  # leads its own process group
    shim: procs.ProcRef | None

    @property
    def sidecar(self) -> bool:
        return self.container == SIDECAR_CONTAINER

    def alive(self) -> bool:
        return any(r is not None and r.alive() for r in (self.program, self.shim))


def running(home: Path) -> list[Run]:
    """Every container run under `home` whose program or shim is alive."""
    layout = RuntimeLayout(home / "runtime")
    out: list[Run] = []
    for d in layout.existing().values():
        info = d.read() or {}
        meta = (info.get("pod") or {}).get("metadata") or {}
        pod = f"{meta.get('namespace', '?')}/{meta.get('name', '?')}"
        containers = d.root / "containers"
        if not containers.is_dir():
            continue
        for cdir in sorted(p for p in containers.iterdir() if p.is_dir()):
            files = ContainerFiles(cdir)
            for pidfile in cdir.glob("*.pid"):
                if not pidfile.stem.isdigit():
                    continue
                n = int(pidfile.stem)
                child = files.child(n)
                run = Run(pod, cdir.name, child[0] if child else None, files.shim(n))
                if run.alive():
                    out.append(run)
    return out


def _signal_group(ref: procs.ProcRef | None, sig: int) -> None:
    if ref is None:
        return
    if ref.alive():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(ref.pid, sig)
    elif sig == signal.SIGKILL:
        procs.kill_group(ref)  # the leader is gone, but children in its group may remain


def _wait(runs: list[Run], deadline: float, sleep: Callable[[float], None]) -> None:
    while time.monotonic() < deadline and any(r.program is not None and r.program.alive() for r in runs):
        sleep(0.05)


def stop(runs: list[Run], grace: float, sleep: Callable[[float], None] = time.sleep) -> None:
    """Stop `runs`: apps first, then sidecars, each with SIGTERM, then SIGKILL after `grace` seconds."""
    apps = [r for r in runs if not r.sidecar]
    sidecars = [r for r in runs if r.sidecar]
    for group, wait in ((apps, grace), (sidecars, min(grace, 2.0))):
        for r in group:
            _signal_group(r.program, signal.SIGTERM)
        _wait(group, time.monotonic() + wait, sleep)
        for r in group:
            _signal_group(r.program, signal.SIGKILL)
    # A shim exits once its program is reaped and its output drained; one that does not is stuck.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(r.shim is not None and r.shim.alive() for r in runs):
        sleep(0.05)
    for r in runs:
        if r.shim is not None:
            r.shim.signal(signal.SIGKILL)
    with contextlib.suppress(Exception):  # Envoy's hot-restart segments, as the kubelet removes them on stop
        from sluice.xds.envoy import cleanup_shared_memory

        cleanup_shared_memory()


def node_processes(home: Path) -> list[procs.ProcRef]:
    """Live node-level processes the runtime recorded as `SLUICE_HOME/runtime/<name>.pid` ("pid start-time"),
    such as netns mode's cluster DNS, which outlives a daemon restart on purpose."""
    out = []
    for pidfile in sorted((home / "runtime").glob("*.pid")):
        with contextlib.suppress(OSError):
            ref = procs.ProcRef.parse(pidfile.read_text())
            if ref is not None and ref.alive():
                out.append(ref)
    return out


def stop_node(home: Path, sleep: Callable[[float], None] = time.sleep) -> int:
    """After the pods: stop the node-level processes (SIGTERM, SIGKILL after 5 s) and remove the pod network,
    as the kubelet does on `sluice down`. Returns how many processes were stopped."""
    refs = node_processes(home)
    for ref in refs:
        ref.signal(signal.SIGTERM)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(r.alive() for r in refs):
        sleep(0.05)
    for ref in refs:
        ref.signal(signal.SIGKILL)
    with contextlib.suppress(Exception):  # netns mode's namespaces (and the kube-proxy rules inside them)
        NodeNetwork(home).teardown()
    return len(refs)
