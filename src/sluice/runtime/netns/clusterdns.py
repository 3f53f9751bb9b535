"""The cluster's DNS process in netns mode: started, fed and adopted by the kubelet.

The DNS server runs apart from the daemon (`sluice.dns.standalone`, inside the node namespace on kube-dns's
address) so pods keep resolving names while the daemon restarts, as they keep reaching CoreDNS while a
kube-apiserver restarts. The kubelet keeps the name snapshot it serves current: the informers of
`sluice.dns.watch.NameWatcher` mark it dirty, a short debounce folds bursts, the snapshot file is replaced
atomically and the process gets SIGHUP. A restarted daemon finds the running process by its pid file (pid
and start time) and keeps it; `sluice down` stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sluice import mesh
from sluice.aio import cancel_and_wait
from sluice.dns.watch import NameWatcher
from sluice.runtime import procs
from sluice.runtime.enter import EnterSpec, argv_for
from sluice.store import Store

__all__ = ["ClusterDns"]

log = logging.getLogger("sluice.runtime")


class ClusterDns:
    def __init__(self, store: Store, node_netns: str, state_dir: Path, debounce: float = 0.005) -> None:
        self.state = state_dir / "dns.json"
        self.pidfile = state_dir / "dns.pid"
        self.logfile = state_dir / "dns.log"
        self._netns = node_netns
        self._debounce = debounce
        self._dirty = asyncio.Event()
        self.watcher = NameWatcher(store, on_change=self._dirty.set)
        self.proc: procs.ProcRef | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.watcher.start()
        await self.watcher.wait_synced()
        self._write()
        self.proc = self._running()
        if self.proc is not None:
            self.proc.signal(signal.SIGHUP)  # adopted: serve the current names
        else:
            await self._spawn()
        self._task = asyncio.create_task(self._loop(), name="cluster-dns")

    async def stop(self, *, kill: bool) -> None:
        """Stop feeding it; with `kill` (`sluice down`) also stop the process."""
        await cancel_and_wait(self._task)
        await self.watcher.stop()
        if kill and self.proc is not None:
            self.proc.signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(procs.wait_exit(self.proc), 5)
            except TimeoutError:
                self.proc.signal(signal.SIGKILL)
                await procs.wait_exit(self.proc)
            with contextlib.suppress(FileNotFoundError):
                self.pidfile.unlink()

    def _running(self) -> procs.ProcRef | None:
        try:
            ref = procs.ProcRef.parse(self.pidfile.read_text())
        except OSError:
            return None
        return ref if ref is not None and ref.alive() else None

    async def _spawn(self) -> None:
        program = [sys.executable, "-m", "sluice.dns.standalone", str(self.state), mesh.DNS_SERVICE_IP]
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        start = self.logfile.stat().st_size if self.logfile.exists() else 0
        with open(self.logfile, "ab") as out:
            self._popen = subprocess.Popen(argv_for(EnterSpec(netns=self._netns), program), stdin=subprocess.DEVNULL,
                                           stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                           close_fds=True)
        self.proc = procs.ProcRef.of(self._popen.pid)
        tmp = self.pidfile.with_suffix(".tmp")
        tmp.write_text(f"{self.proc.pid} {self.proc.started}\n")
        os.replace(tmp, self.pidfile)
        # Pods start right after this: make sure names resolve before the first one asks.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                with open(self.logfile, "rb") as f:
                    f.seek(start)
                    if b"serving DNS" in f.read():
                        return
            if self._popen.poll() is not None:
                break
            await asyncio.sleep(0.02)
        log.error("cluster DNS did not start; see %s", self.logfile)

    def _write(self) -> None:
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.watcher.objects(), separators=(",", ":")))
        os.replace(tmp, self.state)

    async def _loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._debounce)
            self._dirty.clear()
            try:
                self._write()
            except OSError as e:
                log.error("cluster DNS: writing the name snapshot failed: %s", e)
                continue
            if self.proc is None or not self.proc.signal(signal.SIGHUP):
                log.warning("cluster DNS process is gone; starting it again")
                await self._spawn()
