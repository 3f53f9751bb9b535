"""One pod on this machine: its containers' supervisors, its status writes, its graceful termination.

Created by the kubelet (`sluice.runtime.kubelet`) for each Pod it runs or adopts. The worker turns container
changes into debounced status writes through `Registry.replace(..., subresource="status")` (re-reading on 409),
and on termination goes: not Ready (so the endpoints controller and the sidecars drop the pod) → a short drain
→ SIGTERM to the apps → SIGTERM to the sidecar once they are gone → SIGKILL at the grace deadline → free the IP
→ delete the Pod object.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sluice import mesh
from sluice.api.errors import ApiError
from sluice.api.registry import Registry
from sluice.controllers.events import EventRecorder
from sluice.resources.kinds import ResourceType
from sluice.runtime import images, proxy
from sluice.runtime.environment import container_env
from sluice.runtime.ipam import IPAllocator
from sluice.runtime.layout import PodDir
from sluice.runtime.status import build_status
from sluice.runtime.supervisor import BackOff, Launch, Supervisor

__all__ = ["PodWorker", "PodContext", "has_sidecar", "grace_seconds"]

log = logging.getLogger("sluice.runtime")

Obj = dict[str, Any]


def has_sidecar(pod: Obj) -> bool:
    return any(isinstance(c, dict) and c.get("name") == mesh.SIDECAR_CONTAINER
               for c in (pod.get("spec") or {}).get("containers") or []) and not _is_gateway(pod)


def _is_gateway(pod: Obj) -> bool:
    containers = (pod.get("spec") or {}).get("containers") or []
    return len(containers) == 1 and containers[0].get("name") == mesh.SIDECAR_CONTAINER and \
        (containers[0].get("args") or [None, None])[1:2] == ["router"]


def grace_seconds(pod: Obj) -> float:
    meta = pod.get("metadata") or {}
    for v in (meta.get("deletionGracePeriodSeconds"), (pod.get("spec") or {}).get("terminationGracePeriodSeconds")):
        if isinstance(v, int | float) and not isinstance(v, bool):
            return max(0.0, float(v))
    return 30.0


@dataclass
class PodContext:
    """What every pod worker shares: set up once by the kubelet."""

    registry: Registry
    pod_rt: ResourceType
    ipam: IPAllocator
    xds_address: tuple[str, int]
    host_ip: str
    backoff: BackOff
    drain_seconds: float
    status_debounce: float
    envoy_concurrency: int
    envoy_log_level: str
    bootstrap_factory: proxy.BootstrapFactory | None
    configmaps: Callable[[str, str], Obj | None]
    events: EventRecorder | None = None
    # The Services whose variables a pod of a namespace gets (its namespace's, and default/kubernetes).
    services: Callable[[str], list[Obj]] | None = None


class PodWorker:
    def __init__(self, ctx: PodContext, pod: Obj, pod_dir: PodDir, ip: str, start_time: str) -> None:
        self.ctx = ctx
        self.pod = pod
        meta = pod.get("metadata") or {}
        self.name = str(meta.get("name"))
        self.namespace = str(meta.get("namespace") or "default")
        self.uid = str(meta.get("uid"))
        self.dir = pod_dir
        self.ip = ip
        self.start_time = start_time
        self.sidecar = has_sidecar(pod)
        spec = pod.get("spec") or {}
        policy = str(spec.get("restartPolicy") or "Always")
        containers = [c for c in spec.get("containers") or [] if isinstance(c, dict) and c.get("name")]
        # The sidecar starts first (and stops last): apps can reach the mesh as soon as Envoy has its config.
        containers.sort(key=lambda c: c.get("name") != mesh.SIDECAR_CONTAINER)
        pod_key = f"{self.name}_{self.namespace}({self.uid})"
        self.supervisors: dict[str, Supervisor] = {}
        for c in containers:
            self.supervisors[str(c["name"])] = Supervisor(
                pod_key=pod_key, uid=self.uid, container=c, restart_policy=policy,
                files=pod_dir.container(str(c["name"])), prepare=self._preparer(c), backoff=ctx.backoff,
                kill_grace=lambda: grace_seconds(self.pod), on_change=self._changed)
        self.terminating = False
        self.gone = False  # the Pod object no longer exists: no status writes, no delete
        self.done = asyncio.Event()
        self._dirty = asyncio.Event()
        self._terminate = asyncio.Event()
        self._grace = 30.0
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ containers
    def _preparer(self, c: Obj) -> Callable[[], Launch]:
        def prepare() -> Launch:
            program = images.resolve(c)
            env = container_env(self.pod, c, program, pod_ip=self.ip, host_ip=self.ctx.host_ip,
                                has_sidecar=self.sidecar, configmaps=self.ctx.configmaps,
                                services=self.ctx.services(self.namespace) if self.ctx.services else (),
                                warn=self._warn)
            files_dir = str(self.dir.container(str(c["name"])).dir)
            if program.builtin == "proxy":
                try:
                    argv = proxy.proxy_argv(pod=self.pod, pod_ip=self.ip, mode=program.proxy_mode,
                                            xds_address=self.ctx.xds_address, bootstrap_file=self.dir.bootstrap,
                                            factory=self.ctx.bootstrap_factory,
                                            concurrency=self.ctx.envoy_concurrency,
                                            log_level=self.ctx.envoy_log_level)
                except (ImportError, OSError, RuntimeError) as e:
                    raise images.ImageError("CreateContainerError", f"cannot start Envoy: {e}") from None
                return Launch(argv, env, files_dir, program.image_id, self.ip,
                              ready_url=(self.ip, proxy.ADMIN_PORT, "/ready"))
            argv = images.resolve(c, env).argv  # command/args with `$(VAR)` expanded, as the kubelet does
            app = mesh.app_ip(self.ip) if self.sidecar else self.ip
            return Launch(argv, env, str(c.get("workingDir") or files_dir), program.image_id, app)
        return prepare

    def _warn(self, reason: str, message: str) -> None:
        if self.ctx.events is not None:
            self.ctx.events.record(self.pod, "Warning", reason, message)

    def _changed(self) -> None:
        self._dirty.set()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._task = asyncio.create_task(self._main(), name=f"pod {self.namespace}/{self.name}")

    async def _main(self) -> None:
        try:
            self._write_status()
            for sup in self.supervisors.values():
                sup.start()
            self._writer = asyncio.create_task(self._status_writer())
            await self._terminate.wait()
            await self._run_termination()
        except Exception:
            log.exception("pod %s/%s: runtime error", self.namespace, self.name)
        finally:
            self.done.set()

    def begin_termination(self, pod: Obj | None) -> None:
        """The Pod got a deletionTimestamp (pod given) or disappeared from the store (None)."""
        if pod is None:
            self.gone = True
        else:
            self.pod = pod
        if not self.terminating:
            self.terminating = True
            self._grace = grace_seconds(self.pod)
            self._terminate.set()

    async def _run_termination(self) -> None:
        deadline = time.monotonic() + self._grace
        # 1. Not ready first, so the pod leaves the endpoints before anything stops.
        for sup in self.supervisors.values():
            sup.begin_stop()
            if self.ctx.events is not None and not self.gone:
                self.ctx.events.record(self.pod, "Normal", "Killing", f"Stopping container {sup.name}")
        if not self.gone:
            self._write_status()
        drain = min(self.ctx.drain_seconds, self._grace / 2)
        if drain > 0:
            await asyncio.sleep(drain)
        await self.stop_containers(deadline)
        # 4. Free the IP, then remove the object (a kubelet's final delete is immediate).
        self.dir.remove()
        self.ctx.ipam.release(self.ip)
        if self._writer is not None:
            self._writer.cancel()
        if not self.gone:
            try:
                self.ctx.registry.delete(self.ctx.pod_rt, "v1", self.namespace, self.name,
                                         {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}})
            except ApiError as e:
                if e.code not in (404, 409):
                    log.warning("pod %s/%s: final delete failed: %s", self.namespace, self.name, e.message)

    async def stop_containers(self, deadline: float) -> None:
        """2. SIGTERM the apps, 3. then the sidecar once they are gone; SIGKILL whatever is left at `deadline`."""
        apps = [s for s in self.supervisors.values() if s.name != mesh.SIDECAR_CONTAINER]
        side = [s for s in self.supervisors.values() if s.name == mesh.SIDECAR_CONTAINER]
        await asyncio.gather(*(s.terminate(deadline) for s in apps))
        # Envoy needs no grace to speak of, but give it a moment to exit on SIGTERM before SIGKILL.
        await asyncio.gather(*(s.terminate(max(deadline, time.monotonic() + 1.0)) for s in side))

    async def shut_down(self, grace: float) -> None:
        """`sluice down`: stop the processes but keep the Pod, its IP and its logs for the next start."""
        self.terminating = True
        for sup in self.supervisors.values():
            sup.begin_stop()
        await self.stop_containers(time.monotonic() + min(grace, grace_seconds(self.pod)))
        await self._flush()
        await self._cancel()

    async def detach(self) -> None:
        """The daemon stops but the pod keeps running: stop watching, touch nothing."""
        await asyncio.gather(*(s.detach() for s in self.supervisors.values()))
        await self._cancel()

    async def _cancel(self) -> None:
        for t in (self._writer, self._task):
            if t is not None and not t.done():
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t

    # ------------------------------------------------------------------ status
    async def _status_writer(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.ctx.status_debounce)  # coalesce the bursts of a pod start
            await self._flush()

    async def _flush(self) -> None:
        self._dirty.clear()
        if not self.gone:
            self._write_status()

    def _write_status(self) -> None:
        reg, rt = self.ctx.registry, self.ctx.pod_rt
        for _ in range(20):
            try:
                current = reg.get(rt, "v1", self.namespace, self.name)
            except ApiError:
                self.gone = True
                return
            if (current.get("metadata") or {}).get("uid") != self.uid:
                self.gone = True
                return
            status = build_status(statuses=[s.status() for s in self.supervisors.values()],
                                  restart_policy=str((self.pod.get("spec") or {}).get("restartPolicy") or "Always"),
                                  pod_ip=self.ip, host_ip=self.ctx.host_ip, start_time=self.start_time,
                                  previous=current.get("status"))
            if self.terminating and not self.gone:
                # A terminating pod is never Ready, whatever its containers say.
                for cond in status["conditions"]:
                    if cond["type"] in ("Ready", "ContainersReady") and cond["status"] == "True":
                        cond.update(status="False", lastTransitionTime=time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                     time.gmtime()))
            new = copy.deepcopy(current)
            new["status"] = status
            try:
                reg.replace(rt, "v1", self.namespace, self.name, new, subresource="status")
                return
            except ApiError as e:
                if e.code == 409:
                    continue  # someone else wrote the pod meanwhile: re-read and try again
                if e.code == 404:
                    self.gone = True
                    return
                log.warning("pod %s/%s: status write failed: %s", self.namespace, self.name, e.message)
                return
