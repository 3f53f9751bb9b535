"""One container of one pod: start it under a shim, watch it, probe it, restart it with back-off, stop it.

Created by the pod worker (`sluice.runtime.pod`), which reads `status()` to build the pod status and calls
`terminate()` when the pod goes away. Everything needed to pick a container up again after a daemon restart
is on disk in the container's directory (`ContainerFiles`): which run is current, the restart count and last
termination, and per run the shim's files (`N.log`, `N.pid`, `N.exit`) plus `N.shim` (the shim's identity).
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice import mesh
from sluice.runtime import hooks, logfiles, procs
from sluice.runtime.images import ImageError
from sluice.runtime.netns.dial import Endpoint
from sluice.runtime.probes import ProbeLoop, ProbeSpec, endpoint_ok, run_probe
from sluice.runtime.zygote import Zygote

log = logging.getLogger("sluice.runtime")

__all__ = ["Launch", "Exit", "ContainerFiles", "Supervisor", "BackOff"]

SHIM_MODULE = "sluice.runtime.shim"


@dataclass(frozen=True)
class Launch:
    """How to run a container: built by the pod worker from its image, env and the pod's addresses."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    image_id: str
    probe_host: str  # where httpGet/tcpSocket probes connect (the app address)
    # The sidecar's implicit readiness check: its Envoy admin (host and port, or a Unix socket) and `/ready`.
    ready_url: tuple[Endpoint, str] | None = None
    netns: str | None = None  # the pod's network namespace (netns mode): probes connect from inside it
    wrapper: tuple[str, ...] = ()  # argv prefix that enters the pod's sandbox before exec'ing `argv`
    # A probe Istio's injector rewrote to the agent's status port → the original probe it stands for (the agent's
    # `ISTIO_KUBE_APP_PROBERS`), or None for any other probe.
    original_probe: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None


@dataclass(frozen=True)
class Exit:
    code: int
    reason: str
    started_at: str
    finished_at: str
    signal: int = 0
    message: str = ""

    def terminated(self, container_id: str) -> dict[str, Any]:
        t: dict[str, Any] = {"exitCode": self.code, "reason": self.reason, "startedAt": self.started_at,
                             "finishedAt": self.finished_at, "containerID": container_id}
        if self.signal:
            t["signal"] = self.signal
        if self.message:
            t["message"] = self.message
        return t


@dataclass(frozen=True)
class BackOff:
    """Kubelet's crash back-off: the first restart is immediate, then base, 2×base, … up to max."""

    base: float = 10.0
    max: float = 300.0

    def delay(self, restarts_in_a_row: int) -> float:
        if restarts_in_a_row <= 0:
            return 0.0
        return float(min(self.max, self.base * (2 ** (restarts_in_a_row - 1))))

    @property
    def reset_after(self) -> float:
        """A run this long forgives earlier crashes (kubelet forgets back-off entries after 2 × max)."""
        return 2 * self.max


def _rfc3339(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // 1_000_000_000))


@dataclass
class ContainerFiles:
    """The on-disk record of one container (see the module docstring)."""

    dir: Path

    def log(self, n: int) -> Path:
        return self.dir / f"{n}.log"

    def drop_logs_before(self, n: int) -> None:
        """Remove the log files (rotated ones too) of runs before `n`."""
        for p in self.dir.glob("*.log*"):
            head = p.name.split(".", 1)[0]
            if head.isdigit() and int(head) < n:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()

    def read_state(self) -> dict[str, Any]:
        try:
            data = json.loads((self.dir / "state.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_state(self, state: dict[str, Any]) -> None:
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.dir / "state.json")

    def _read(self, name: str) -> str | None:
        try:
            return (self.dir / name).read_text()
        except OSError:
            return None

    def shim(self, n: int) -> procs.ProcRef | None:
        text = self._read(f"{n}.shim")
        return procs.ProcRef.parse(text) if text else None

    def child(self, n: int) -> tuple[procs.ProcRef, int] | None:
        """The program's identity and start time (ns), once the shim has recorded them."""
        text = self._read(f"{n}.pid")
        ref = procs.ProcRef.parse(text) if text else None
        if ref is None or text is None:
            return None
        parts = text.split()
        return ref, int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else time.time_ns()

    def exit(self, n: int) -> tuple[int, int, int] | None:
        """(exit code, signal, finish time ns) once the shim has recorded the end of run `n`."""
        text = self._read(f"{n}.exit")
        parts = text.split() if text else []
        if len(parts) < 3 or not all(p.isdigit() for p in parts[:3]):
            return None
        return int(parts[0]), int(parts[1]), int(parts[2])


class Supervisor:
    def __init__(self, *, pod_key: str, uid: str, container: dict[str, Any], restart_policy: str,
                 files: ContainerFiles, prepare: Callable[[], Launch], backoff: BackOff,
                 kill_grace: Callable[[], float], on_change: Callable[[], None],
                 log_rotation: logfiles.LogRotation | None = None, zygote: Zygote | None = None,
                 previous: dict[str, Any] | None = None,
                 event: Callable[[str, str, str], None] | None = None, init: bool = False,
                 waiting_reason: str = "ContainerCreating") -> None:
        self.name = str(container.get("name") or "")
        # A regular init container: runs to completion, has no probes, is never ready while it runs and is
        # ready once it has exited 0 (the kubelet's initContainerStatuses).
        self.init = init
        self._event = event  # (type, reason, message) about the pod: the hooks' failures
        self._zygote = zygote
        # The container's status the pod showed before a daemon restart: an adopted run keeps its readiness until
        # a probe says otherwise (the kubelet leaves the status alone on restart), so endpoints do not flap.
        was_ready = bool(previous and previous.get("ready") is True)
        self._was_ready = was_ready
        self.log_rotation = log_rotation or logfiles.LogRotation()
        self.image = str(container.get("image") or "")
        self.container = container
        self.pod_key = pod_key  # "<pod>_<namespace>(<uid>)", as kubelet names pods in messages
        self.uid = uid
        self.restart_policy = restart_policy
        self.files = files
        self._prepare = prepare
        self._backoff = backoff
        self._kill_grace = kill_grace
        self._on_change = on_change
        saved = files.read_state()
        self.attempt = int(saved.get("attempt", 0))
        self.restart_count = int(saved.get("restartCount", 0))
        self.crashes_in_a_row = int(saved.get("crashesInARow", 0))
        self.last_state: dict[str, Any] = saved.get("lastState") or {}
        self.image_id = str(saved.get("imageID") or "")
        self.state: dict[str, Any] = {"waiting": {"reason": waiting_reason}}
        self.ready = False
        self.started = False
        if was_ready and previous is not None and isinstance(previous.get("state"), dict) \
                and "running" in previous["state"]:
            # until the run is re-attached (or found gone), the status stays what it was
            self.state = dict(previous["state"])
            self.ready = self.started = True
        self.ever_ran = bool(saved)
        self.finished = False  # terminated for good (policy says no restart, or the pod is stopping)
        self.stopping = False
        self.task: asyncio.Task[None] | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._shim: procs.ProcRef | None = None
        self._probes: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._killing: asyncio.Task[None] | None = None
        self._launch: Launch | None = None
        self._pre_stopped = -1  # the run whose preStop hook has run (once per run, as the kubelet does)
        # Set once the first run has started and its postStart hook finished (or it could not start): the kubelet
        # starts a pod's containers in order, each after the one before it is through its postStart hook.
        self.first_start = asyncio.Event()
        # Set once the container has started (its startup probe passed, its postStart hook done) or its run loop
        # ended: what the next init container waits for after a sidecar (an init container that restarts).
        self.startup_done = asyncio.Event()
        self.ended = asyncio.Event()  # the run loop is over (finished for good, or could not start)

    # ------------------------------------------------------------------ what the pod status shows
    def container_id(self, n: int | None = None) -> str:
        digest = hashlib.sha256(f"{self.uid}/{self.name}/{self.attempt if n is None else n}".encode()).hexdigest()
        return f"sluice://{digest}"

    def status(self) -> dict[str, Any]:
        s: dict[str, Any] = {"name": self.name, "image": self.image, "imageID": self.image_id,
                             "ready": self.ready, "started": self.started, "restartCount": self.restart_count,
                             "state": self.state, "lastState": self.last_state}
        if self.ever_ran:
            s["containerID"] = self.container_id()
        return s

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def waiting_to_start(self) -> bool:
        """Waiting and never terminated: what makes a pod Pending."""
        return "waiting" in self.state and not self.last_state

    def current_log(self) -> Path | None:
        path = self.files.log(self.attempt)
        if path.exists():
            return path
        prev = self.files.log(self.attempt - 1)
        return prev if self.attempt > 0 and prev.exists() else None

    def previous_log(self) -> Path | None:
        n = self.attempt - 1 if self.files.log(self.attempt).exists() else self.attempt - 2
        path = self.files.log(n)
        return path if n >= 0 and path.exists() else None

    def run_active(self) -> bool:
        """Whether the current run may still write to its log (for `follow`)."""
        return self.files.exit(self.attempt) is None and self._shim is not None and self._shim.alive()

    def _set(self, state: dict[str, Any], *, ready: bool | None = None) -> None:
        self.state = state
        if ready is not None:
            self.ready = ready
        self._on_change()

    def _save(self) -> None:
        try:
            self.files.write_state({"attempt": self.attempt, "restartCount": self.restart_count,
                                    "crashesInARow": self.crashes_in_a_row, "lastState": self.last_state,
                                    "imageID": self.image_id})
        except OSError as e:
            # The container goes on being supervised (and stopped, when the daemon goes down) without it: only
            # a later daemon adopting the pod would have read it. The pod's directory gone (SLUICE_HOME
            # deleted), a full disk.
            log.warning("%s/%s: cannot record the container's state: %s", self.pod_key, self.name, e)

    # ------------------------------------------------------------------ the run loop
    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"container {self.pod_key}/{self.name}")

    @property
    def has_post_start(self) -> bool:
        return hooks.handler(self.container, "postStart") is not None

    async def _run(self) -> None:
        try:
            await self._supervise()
        finally:
            self.first_start.set()
            self.startup_done.set()
            self.ended.set()

    async def _supervise(self) -> None:
        try:
            launch = self._prepare()
        except ImageError as e:
            self._set({"waiting": {"reason": e.reason, "message": e.message}})
            return
        self._launch = launch
        self.image_id = launch.image_id
        exit_: Exit | None = self._adopt()
        while not self.stopping:
            if exit_ is None:
                exit_ = await self._run_once(launch)
            self.first_start.set()
            if self.stopping:
                self._finish(exit_)
                return
            lasted = _seconds_between(exit_.started_at, exit_.finished_at)
            if lasted >= self._backoff.reset_after:
                self.crashes_in_a_row = 0
            if not self._should_restart(exit_.code):
                self._finish(exit_)
                return
            self.last_state = {"terminated": exit_.terminated(self.container_id())}
            delay = self._backoff.delay(self.crashes_in_a_row)
            delay -= max(0.0, time.time() - _epoch(exit_.finished_at))
            self._save()
            if delay > 0:
                self._set({"waiting": {"reason": "CrashLoopBackOff", "message":
                           f"back-off {_duration(self._backoff.delay(self.crashes_in_a_row))} restarting failed "
                           f"container={self.name} pod={self.pod_key}"}}, ready=False)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                if self.stopping:
                    self.finished = True
                    return
            self.crashes_in_a_row += 1
            self.restart_count += 1
            self.attempt += 1
            exit_ = None

    def _should_restart(self, code: int) -> bool:
        return self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and code != 0)

    def _finish(self, exit_: Exit) -> None:
        self.finished = True
        self._save()
        self.started = False
        self._set({"terminated": exit_.terminated(self.container_id())}, ready=self.init and exit_.code == 0)

    def _adopt(self) -> Exit | None:
        """Pick up run `attempt` from disk: still running (adopt it), ended (its Exit), or never started."""
        n = self.attempt
        ended = self.files.exit(n)
        shim = self.files.shim(n)
        child = self.files.child(n)
        if ended is not None:
            started = child[1] if child else ended[2]
            return self._exit_from(ended, started)
        if shim is not None and shim.alive():
            self._shim = shim
            return None
        if shim is None and child is None:
            return None  # never started: start it
        # The shim is gone without recording an exit (killed): nothing writes the log any more.
        if child is not None:
            procs.kill_group(child[0])
        now = time.time_ns()
        return Exit(137, "Error", _rfc3339(child[1] if child else now), _rfc3339(now),
                    message="the container's shim process disappeared")

    @staticmethod
    def _exit_from(ended: tuple[int, int, int], started_ns: int) -> Exit:
        code, sig, finished = ended
        return Exit(code, "Completed" if code == 0 else "Error", _rfc3339(started_ns), _rfc3339(finished), sig)

    async def _run_once(self, launch: Launch) -> Exit:
        """Start (or keep watching an adopted) run `attempt` and return how it ended."""
        n = self.attempt
        adopted, self._was_ready = self._shim is not None and self._was_ready, False
        if self._shim is None:
            failed = await self._spawn(launch, n)
            if failed is not None:
                return failed
        shim = self._shim
        assert shim is not None
        self.ever_ran = True
        child = None
        deadline = time.monotonic() + 30  # the shim records the program right after fork (slow on a busy machine)
        while time.monotonic() < deadline:
            child = self.files.child(n)
            if child is not None or not shim.alive():
                break
            await asyncio.sleep(0.02)
        if self.stopping:
            # Stopped while the shim was being started (a fork server's answer is awaited): the stop found
            # nothing to signal then, so stop this run now.
            await self._stop_run(time.monotonic() + min(self._kill_grace(), 3.0))
        started_ns = child[1] if child else time.time_ns()
        post = None if adopted or self.stopping else hooks.handler(self.container, "postStart")
        outcome = "ok" if post is None else await self._post_start(post, launch, shim)
        if outcome == "failed":
            # the kubelet kills a container whose postStart hook failed (its preStop hook first); the
            # restart policy decides what comes next
            await self._pre_stop_and_stop(time.monotonic() + self._kill_grace())
        elif outcome == "ok" and not self.stopping:
            # not running until its postStart hook has finished (the kubelet's rule)
            if self.init:
                self.started = True  # no probes: started as soon as it runs, and not ready until it is done
                self._set({"running": {"startedAt": _rfc3339(started_ns)}}, ready=False)
            else:
                self._set({"running": {"startedAt": _rfc3339(started_ns)}}, ready=adopted)
                self._start_probes(launch)
        self.first_start.set()
        try:
            await procs.wait_exit(shim)
        finally:
            self._stop_probes()
        if self._popen is not None:
            self._popen.poll()
            self._popen = None
        self._shim = None
        self.started = False
        ended = self.files.exit(n)
        if ended is None:
            child = self.files.child(n)
            if child is not None:
                procs.kill_group(child[0])
            now = time.time_ns()
            return Exit(137, "Error", _rfc3339(started_ns), _rfc3339(now),
                        message="the container's shim process disappeared")
        return self._exit_from(ended, started_ns)

    async def _spawn(self, launch: Launch, n: int) -> Exit | None:
        self._save()
        now = _rfc3339(time.time_ns())
        program = launch.argv[0] if launch.argv else ""
        found = shutil.which(program, path=launch.env.get("PATH")) if "/" not in program else (
            program if os.access(program, os.X_OK) else None)
        if not found:
            return Exit(128, "StartError", now, now, message=f'exec: "{program}": executable file not found '
                        "in $PATH" if "/" not in program else f'exec: "{program}": no such file or directory')
        if launch.cwd and not os.path.isdir(launch.cwd):
            return Exit(128, "StartError", now, now,
                        message=f"chdir {launch.cwd}: no such file or directory")
        for stale in (f"{n}.exit", f"{n}.pid", f"{n}.shim"):
            with contextlib.suppress(FileNotFoundError):
                (self.files.dir / stale).unlink()
        # Like kubelet's container GC (the current and the previous run stay), plus the run before: until the
        # shim creates n.log, `previous_log` still means n-2.
        self.files.drop_logs_before(n - 2)
        rot = self.log_rotation
        args = [str(self.files.dir), str(n), launch.cwd, str(rot.max_size), str(rot.max_files), "--",
                *launch.wrapper, *launch.argv]
        err_path = self.files.dir / "shim.err"
        pid = None if self._zygote is None else await self._zygote.spawn(args, dict(launch.env), str(err_path))
        if pid is None:
            with err_path.open("ab") as err:
                self._popen = subprocess.Popen(
                    [sys.executable, "-m", SHIM_MODULE, *args], env=launch.env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=err, start_new_session=True, close_fds=True)
            pid = self._popen.pid
        self._shim = procs.ProcRef.of(pid)
        tmp = self.files.dir / f"{n}.shim.tmp"
        tmp.write_text(f"{self._shim.pid} {self._shim.started}\n")
        os.replace(tmp, self.files.dir / f"{n}.shim")
        return None

    # ------------------------------------------------------------------ lifecycle hooks
    def _hook_context(self, launch: Launch) -> hooks.HookContext:
        return hooks.HookContext(self.pod_key, launch.probe_host, launch.env, launch.cwd or None, launch.netns,
                                 launch.wrapper, launch.original_probe)

    def _hook_failed(self, reason: str, message: str) -> None:
        log.info("%s/%s: %s: %s", self.pod_key, self.name, reason, message)
        if self._event is not None:
            self._event("Warning", reason, message)

    async def _post_start(self, h: dict[str, Any], launch: Launch, shim: procs.ProcRef) -> str:
        """Run the postStart hook while the container runs: "ok", "failed" (an event says why), or "ended" when
        the run ended first (which ends the hook with it)."""
        hook = asyncio.create_task(hooks.run_hook(h, self.container, self._hook_context(launch)))
        ended = asyncio.create_task(procs.wait_exit(shim))
        try:
            await asyncio.wait({hook, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (hook, ended):
                if not t.done():
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
        if hook.cancelled() or hook.exception() is not None:
            return "ended"  # its exit is what counts
        message = hook.result()
        if message is None:
            return "ok"
        self._hook_failed("FailedPostStartHook", message)
        return "failed"

    async def _pre_stop(self, deadline: float) -> float:
        """Run this run's preStop hook (once) within the grace period; the deadline for SIGTERM to SIGKILL after
        it, at least 2 s away (the kubelet's minimum grace after a hook)."""
        h = hooks.handler(self.container, "preStop")
        launch = self._launch
        if h is None or launch is None or self._pre_stopped == self.attempt or self._live_run() is None:
            return deadline
        self._pre_stopped = self.attempt
        left = deadline - time.monotonic()
        if left <= 0:
            return deadline
        message = await hooks.run_hook(h, self.container, self._hook_context(launch), timeout=left)
        if message is not None:
            self._hook_failed("FailedPreStopHook", message)
        return max(deadline, time.monotonic() + 2.0)

    async def _pre_stop_and_stop(self, deadline: float) -> None:
        await self._stop_run(await self._pre_stop(deadline))

    # ------------------------------------------------------------------ probes
    def _start_probes(self, launch: Launch) -> None:
        c = self.container

        def loop(probe: dict[str, Any], on: Callable[[bool], None]) -> ProbeLoop:
            spec = ProbeSpec.of(probe)
            status = self._status_port_check(launch, spec)
            # the agent's part: the original probe, run from inside the pod with its own timeout
            original = launch.original_probe(probe) if launch.original_probe is not None else None
            target = spec if original is None else dataclasses.replace(
                spec, action=original, timeout=ProbeSpec.of({**probe, **original}).timeout)
            return ProbeLoop(spec, status or (lambda: run_probe(target, c, launch.probe_host, launch.env,
                                                                launch.cwd or None, launch.netns, launch.wrapper)), on)

        def begin() -> None:
            self.started = True
            self.startup_done.set()
            self._on_change()
            readiness = c.get("readinessProbe")
            if isinstance(readiness, dict):
                self._probes.append(asyncio.create_task(loop(readiness, self._readiness).run()))
            else:
                self._readiness(True)  # no readiness probe: ready once started, as the kubelet decides
            liveness = c.get("livenessProbe")
            if isinstance(liveness, dict):
                self._probes.append(asyncio.create_task(loop(liveness, self._liveness).run()))

        startup = c.get("startupProbe")
        if isinstance(startup, dict):
            def on_startup(ok: bool) -> None:
                if ok:
                    begin()
                else:
                    self._kill_run("Startup probe failed")
            self._probes.append(asyncio.create_task(loop(startup, on_startup).run(stop_on_success=True)))
        else:
            begin()

    @staticmethod
    def _status_port_check(launch: Launch, spec: ProbeSpec) -> Callable[[], Awaitable[bool]] | None:
        """The injected proxy's probes ask its status port, 15021 `/healthz/ready`, which pilot-agent answers
        from Envoy's readiness. In netns mode that port is the bootstrap's listener in the pod's namespace and
        the probe goes there as any other; in loopback mode pods share the host's ports, so Envoy's admin
        `/ready` (its Unix socket) answers in its place."""
        get = spec.action.get("httpGet")
        if launch.ready_url is None or launch.netns is not None or not isinstance(get, dict):
            return None
        if str(get.get("port")) != str(mesh.PROXY_HEALTH_PORT):
            return None
        admin, ready = launch.ready_url
        if not str(get.get("path") or "/").startswith("/healthz/ready"):
            async def not_found() -> bool:
                return False  # the status listener routes nothing else
            return not_found
        return lambda: endpoint_ok(admin, ready, timeout=spec.timeout)

    def _readiness(self, ok: bool) -> None:
        if self.running and self.ready != ok:
            self.ready = ok
            self._on_change()

    def _liveness(self, ok: bool) -> None:
        if not ok:
            self._kill_run("Liveness probe failed")

    def _stop_probes(self) -> None:
        current = asyncio.current_task()
        for t in self._probes:
            if t is not current:
                t.cancel()
        self._probes.clear()

    def _kill_run(self, why: str) -> None:
        """A failed liveness/startup probe: stop this run (SIGTERM, SIGKILL after the grace period)."""
        if self._killing is None or self._killing.done():
            self._killing = asyncio.create_task(self._pre_stop_and_stop(time.monotonic() + self._kill_grace()))

    # ------------------------------------------------------------------ stopping
    def _live_run(self) -> procs.ProcRef | None:
        """The process that stands for the current run: its shim, or the program if the shim is gone."""
        for ref in (self._shim, self.files.shim(self.attempt)):
            if ref is not None and ref.alive():
                return ref
        child = self.files.child(self.attempt)
        return child[0] if child is not None and child[0].alive() else None

    def _kill_now(self, target: procs.ProcRef) -> None:
        child = self.files.child(self.attempt)
        if child is None:
            # Not recorded yet: the shim may have forked a moment ago; its children are listed in /proc. Freeze it
            # first, so it cannot fork between that read and its death (the child would be left to init).
            target.signal(signal.SIGSTOP)
            with contextlib.suppress(OSError):
                for pid in Path(f"/proc/{target.pid}/task/{target.pid}/children").read_text().split():
                    ref = procs.ProcRef.of(int(pid))
                    procs.kill_group(ref)
                    ref.signal(signal.SIGKILL)  # not yet its own group's leader when it is that young
        else:
            procs.kill_group(child[0])
        target.signal(signal.SIGKILL)

    async def _stop_run(self, deadline: float) -> None:
        target = self._live_run()
        if target is None:
            return
        target.signal(signal.SIGTERM)  # a shim forwards it to the program
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(procs.wait_exit(target), max(0.0, deadline - time.monotonic()))
        if target.alive() or (self._live_run() is not None):
            self._kill_now(target)

    def begin_stop(self) -> None:
        """No more restarts or probes, and not ready from now on (the first step of a pod's termination)."""
        self.stopping = True
        self._wake.set()
        self._stop_probes()
        if self.ready:
            self.ready = False
            self._on_change()

    async def terminate(self, deadline: float) -> None:
        """Stop for good: no restart; the preStop hook, then SIGTERM, SIGKILL (the whole process group) at
        `deadline` (or 2 s after the hook, if that is later)."""
        self.begin_stop()
        await self._pre_stop_and_stop(deadline)
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.task), 5.0)

    async def detach(self) -> None:
        """Stop supervising but leave the processes running (the daemon is going down, pods stay up)."""
        self._stop_probes()
        for t in (self.task, self._killing):
            if t is not None and not t.done():
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t


def _epoch(rfc3339: str) -> float:
    try:
        return float(calendar.timegm(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return time.time()


def _seconds_between(a: str, b: str) -> float:
    return _epoch(b) - _epoch(a)


def _duration(seconds: float) -> str:
    """Go's time.Duration formatting for whole and fractional seconds and minutes (`10s`, `5m0s`, `200ms`)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, secs = divmod(seconds, 60)
    s = f"{secs:g}s"
    return f"{int(minutes)}m{s}" if minutes else s

