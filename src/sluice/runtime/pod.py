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
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluice import mesh
from sluice.api.errors import ApiError
from sluice.api.registry import Registry
from sluice.controllers.events import EventRecorder
from sluice.dns.files import pod_hostname, sandbox_hostname
from sluice.objects import Obj
from sluice.resources import appprobes
from sluice.resources.kinds import ResourceType
from sluice.runtime import images, proxy
from sluice.runtime.enter import EnterSpec, argv_for
from sluice.runtime.environment import container_env
from sluice.runtime.ipam import IPAllocator
from sluice.runtime.layout import PodDir
from sluice.runtime.logfiles import LogRotation
from sluice.runtime.netns.capture import CaptureError
from sluice.runtime.netns.dial import Endpoint
from sluice.runtime.netns.node import NetworkError
from sluice.runtime.netns.sandbox import PodNetwork
from sluice.runtime.status import build_status
from sluice.runtime.supervisor import BackOff, Launch, Supervisor
from sluice.runtime.zygote import Zygote

__all__ = ["PodWorker", "PodContext", "has_sidecar", "grace_seconds", "ADMIN_SOCKET_ENV"]

log = logging.getLogger("sluice.runtime")
PROXY_GID = 1337  # the sidecar's group: the capture rules let its traffic out unredirected
ADMIN_SOCKET_ENV = "SLUICE_ADMIN_SOCKET"  # loopback mode: istio-proxy's Envoy admin socket, in its environment



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
    proxy_ca: proxy.ProxyIssuer | None
    configmaps: Callable[[str, str], Obj | None]
    # loopback mode: pod IP -> the Unix socket its proxy's Envoy admin listens on (netns mode: 127.0.0.1:15000
    # inside the pod, as Istio's sidecar)
    admin_socket: Callable[[str], Path]
    events: EventRecorder | None = None
    network: PodNetwork | None = None  # netns mode: the node network pods join; None in loopback mode
    # The Services whose variables a pod of a namespace gets (its namespace's, and default/kubernetes).
    services: Callable[[str], list[Obj]] | None = None
    log_rotation: LogRotation = field(default_factory=LogRotation)  # kubelet's containerLogMaxSize/MaxFiles
    zygote: Zygote | None = None  # forks the shims (and built-in programs) with their imports done


class PodWorker:
    def __init__(self, ctx: PodContext, pod: Obj, pod_dir: PodDir, ip: str, start_time: str,
                 adopt: bool = False) -> None:
        self.ctx = ctx
        self.adopt = adopt  # found running at daemon start: keep its network namespace if it is there
        self.netns: str | None = None
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
        # An adopted pod's containers start from the status it showed (ready, running since …), not from
        # "ContainerCreating": a status written before the runs are re-attached would flap its endpoints.
        status = pod.get("status") or {}
        before = {str(c.get("name")): c for key in ("initContainerStatuses", "containerStatuses")
                  for c in status.get(key) or [] if isinstance(c, dict)} if adopt else {}
        # Init containers run first, in order, each to completion (restarted on failure unless the pod's policy
        # is Never); one with `restartPolicy: Always` is a sidecar: started, and kept running beside the others.
        inits = [c for c in spec.get("initContainers") or [] if isinstance(c, dict) and c.get("name")]
        self.init_names = [str(c["name"]) for c in inits]
        self.restartable = frozenset(str(c["name"]) for c in inits if c.get("restartPolicy") == "Always")
        self.restart_policy = policy
        # Conditions another controller sets, that the pod's readiness waits for (kubelet's readiness gates).
        self.readiness_gates = [str(g["conditionType"]) for g in spec.get("readinessGates") or []
                                if isinstance(g, dict) and g.get("conditionType")]
        self._gates_seen: tuple[str | None, ...] = ()
        self.supervisors: dict[str, Supervisor] = {}

        def supervise(c: Obj, restart_policy: str, **kw: Any) -> None:
            self.supervisors[str(c["name"])] = Supervisor(
                pod_key=pod_key, uid=self.uid, container=c, restart_policy=restart_policy,
                files=pod_dir.container(str(c["name"])), prepare=self._preparer(c), backoff=ctx.backoff,
                kill_grace=lambda: grace_seconds(self.pod), on_change=self._changed,
                log_rotation=ctx.log_rotation, zygote=ctx.zygote, previous=before.get(str(c["name"])),
                event=self._event, **kw)

        for c in inits:
            if str(c["name"]) in self.restartable:
                supervise(c, "Always")
            else:
                supervise(c, "Never" if policy == "Never" else "OnFailure", init=True)
        for c in containers:
            supervise(c, policy, waiting_reason="PodInitializing" if inits else "ContainerCreating")
        self.terminating = False
        self.gone = False  # the Pod object no longer exists: no status writes, no delete
        self.done = asyncio.Event()
        self._dirty = asyncio.Event()
        self._terminate = asyncio.Event()
        self._grace = 30.0
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._sidecars_done: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ containers
    def _preparer(self, c: Obj) -> Callable[[], Launch]:
        def prepare() -> Launch:
            program = images.resolve(c)
            env = container_env(self.pod, c, program, pod_ip=self.ip, host_ip=self.ctx.host_ip,
                                has_sidecar=self.sidecar, configmaps=self.ctx.configmaps,
                                transparent=self.ctx.network is not None,
                                services=self.ctx.services(self.namespace) if self.ctx.services else (),
                                warn=self._warn)
            env.update(self._proxy_env(c))
            files_dir = str(self.dir.container(str(c["name"])).dir)
            net = self.ctx.network
            wrapper: tuple[str, ...] = ()
            if net is not None:
                if self.netns is None:
                    raise images.ImageError("CreateContainerError", "the pod's network namespace is not ready")
                wrapper = tuple(argv_for(self.sandbox(str(c["name"]), with_cwd=False), []))
            if program.builtin == "proxy":
                admin = self.admin_endpoint()
                try:
                    argv = proxy.proxy_argv(pod=self.pod, pod_ip=self.ip, mode=program.proxy_mode,
                                            xds_address=self.ctx.xds_address, bootstrap_file=self.dir.bootstrap,
                                            factory=self.ctx.bootstrap_factory,
                                            concurrency=self.ctx.envoy_concurrency,
                                            log_level=self.ctx.envoy_log_level, admin_address=admin,
                                            xds_socket=net.xds_socket if net is not None else None,
                                            issuer=self.ctx.proxy_ca)
                except (ImportError, OSError, RuntimeError) as e:
                    raise images.ImageError("CreateContainerError", f"cannot start Envoy: {e}") from None
                return Launch(argv, env, files_dir, program.image_id, self.ip,
                              ready_url=(admin, "/ready"), netns=self.netns, wrapper=wrapper)
            argv = images.resolve(c, env).argv  # command/args with `$(VAR)` expanded, as the kubelet does
            app = mesh.app_ip(self.ip) if self.sidecar and net is None else self.ip
            return Launch(argv, env, str(c.get("workingDir") or files_dir), program.image_id, app,
                          netns=self.netns, wrapper=wrapper, original_probe=self._original_probe())
        return prepare

    def admin_endpoint(self) -> Endpoint:
        """Where this pod's Envoy admin listens: 127.0.0.1:15000 inside the pod's network namespace (netns
        mode, as Istio), or a 0600 Unix socket under SLUICE_HOME (loopback mode, where a TCP port would be open
        to every local program and web page)."""
        if self.ctx.network is not None:
            return ("127.0.0.1", proxy.ADMIN_PORT)
        return str(self.ctx.admin_socket(self.ip))

    def remove_admin_socket(self) -> None:
        """The socket file Envoy leaves behind (its next owner's Envoy would replace it anyway)."""
        admin = self.admin_endpoint()
        if self.has_proxy and isinstance(admin, str):
            with contextlib.suppress(OSError):
                os.unlink(admin)

    @property
    def has_proxy(self) -> bool:
        """An `istio-proxy` container: a sidecar or a gateway."""
        return mesh.SIDECAR_CONTAINER in self.supervisors

    # ------------------------------------------------------------------ sandbox
    def sandbox(self, container: str, with_cwd: bool = True) -> EnterSpec:
        """How to run a process in this pod as `container` (its network, files, hostname, working dir)."""
        c = self._container(container) or {}
        cwd = str(c.get("workingDir") or self.dir.container(container).dir) if with_cwd else None
        net = self.ctx.network
        if net is None or self.netns is None:
            return EnterSpec(cwd=cwd)
        try:
            hostname = sandbox_hostname(self.pod)
        except ValueError:
            hostname = pod_hostname(self.pod)[0]
        return EnterSpec(netns=self.netns, hostname=hostname, binds=net.pod_files(self.dir.root).binds(),
                         gid=PROXY_GID if container == mesh.SIDECAR_CONTAINER else None, cwd=cwd)

    def dial_address(self, port: int) -> tuple[str | None, str]:
        """(network namespace or None, host) to connect to this pod's `port` from, as port-forward does."""
        if self.netns is not None:
            return self.netns, "127.0.0.1"
        return None, mesh.app_ip(self.ip) if self.sidecar else self.ip

    async def _setup_network(self) -> bool:
        """netns mode: make (or, when adopting, find) the pod's namespace; False if it cannot be made."""
        net = self.ctx.network
        if net is None:
            return True
        try:
            self.netns = await asyncio.to_thread(net.setup_pod, self.pod, self.ip, self.dir.root,
                                                 self.sidecar and not _is_gateway(self.pod), self.adopt)
            if net.loopback is not None:
                await net.loopback.add_pod(self.ip, self.pod)
            return True
        except (NetworkError, CaptureError, OSError) as e:
            log.error("pod %s/%s: network setup failed: %s", self.namespace, self.name, e)
            if self.ctx.events is not None:
                self.ctx.events.record(self.pod, "Warning", "FailedCreatePodSandBox",
                                       f"Failed to create pod sandbox: {e}")
            return False

    async def _teardown_network(self) -> None:
        net = self.ctx.network
        if net is not None:
            if net.loopback is not None:
                await net.loopback.remove_pod(self.ip)
            await asyncio.to_thread(net.node.remove_pod, self.ip)
            self.netns = None

    def _original_probe(self) -> Callable[[dict[str, Any]], dict[str, Any] | None] | None:
        """What Istio's agent answers on its status port: the app probes the injector rewrote, by path."""
        proxy = self._container(mesh.SIDECAR_CONTAINER)
        probers = next((str(e["value"]) for e in (proxy or {}).get("env") or []
                        if isinstance(e, dict) and e.get("name") == appprobes.PROBERS_ENV and "value" in e), "")
        if not probers:
            return None
        return lambda probe: appprobes.app_prober(self.pod, probers, probe)

    # ------------------------------------------------------------------ streams (exec, attach, port-forward)
    def _container(self, name: str) -> Obj | None:
        spec = self.pod.get("spec") or {}
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            if isinstance(c, dict) and c.get("name") == name:
                return c
        return None

    def exec_env(self, container_name: str) -> dict[str, str]:
        """The environment a container runs with, for the commands `kubectl exec` starts in it."""
        c = self._container(container_name) or {}
        env = container_env(self.pod, c, images.resolve(c), pod_ip=self.ip, host_ip=self.ctx.host_ip,
                            has_sidecar=self.sidecar, configmaps=self.ctx.configmaps,
                            transparent=self.ctx.network is not None,
                            services=self.ctx.services(self.namespace) if self.ctx.services else ())
        env.update(self._proxy_env(c))
        return env

    def _proxy_env(self, c: Obj) -> dict[str, str]:
        """loopback mode, `istio-proxy`: where its Envoy admin is (`kubectl exec -c istio-proxy -- curl
        --unix-socket "$SLUICE_ADMIN_SOCKET" localhost/stats`; in netns mode, localhost:15000 as in Istio)."""
        if c.get("name") != mesh.SIDECAR_CONTAINER or not self.has_proxy:
            return {}
        admin = self.admin_endpoint()
        return {ADMIN_SOCKET_ENV: admin} if isinstance(admin, str) else {}

    def _warn(self, reason: str, message: str) -> None:
        self._event("Warning", reason, message)

    def _event(self, type_: str, reason: str, message: str) -> None:
        if self.ctx.events is not None:
            self.ctx.events.record(self.pod, type_, reason, message)

    def _changed(self) -> None:
        self._dirty.set()

    def observe(self, pod: Obj) -> None:
        """The Pod object changed (another writer): when a readiness gate's condition did, the readiness is
        worked out again, as the kubelet's status sync does."""
        if not self.readiness_gates:
            return
        conditions = {str(c.get("type")): c.get("status") for c in (pod.get("status") or {}).get("conditions") or []
                      if isinstance(c, dict)}
        seen = tuple(conditions.get(g) for g in self.readiness_gates)
        if seen != self._gates_seen:
            self._gates_seen = seen
            self._changed()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._task = asyncio.create_task(self._main(), name=f"pod {self.namespace}/{self.name}")

    async def _main(self) -> None:
        try:
            self._write_status()
            self._writer = asyncio.create_task(self._status_writer())
            if await self._setup_network():
                await self._start_containers()
            await self._terminate.wait()
            await self._run_termination()
        except Exception:
            log.exception("pod %s/%s: runtime error", self.namespace, self.name)
        finally:
            self.done.set()

    async def _start_containers(self) -> None:
        """In order, as the kubelet does: the init containers one after another, each run to completion (a
        sidecar among them until it has started), then the containers (the proxy first), a container with a
        postStart hook holding the next one back until its hook has finished. A pod deleted meanwhile starts no
        more of them; an init container that failed for good (restartPolicy Never) leaves the rest unstarted."""
        for name in self.init_names:
            sup = self.supervisors[name]
            if self.terminating:
                return
            sup.start()
            if name in self.restartable:
                await self._until(sup.startup_done)
            else:
                await self._until(sup.ended)
                if not (sup.finished and sup.ready):
                    return  # failed (the pod with it), could not start, or the pod is going
        apps = [s for n, s in self.supervisors.items() if n not in self.init_names]
        for sup in apps:
            if self.terminating:
                return
            sup.start()
            if sup.has_post_start:
                await self._until(sup.first_start)
        if self.restartable and self.restart_policy != "Always":
            self._sidecars_done = asyncio.create_task(self._stop_sidecars_after(apps))

    async def _until(self, event: asyncio.Event) -> None:
        """Wait for `event`, or for the pod's termination to begin."""
        waits = (asyncio.create_task(event.wait()), asyncio.create_task(self._terminate.wait()))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for t in waits:
            t.cancel()

    async def _stop_sidecars_after(self, apps: list[Supervisor]) -> None:
        """A pod that runs to completion: once its containers have all ended for good, the kubelet stops its
        sidecars (init containers that restart), in reverse order, so that the pod can complete."""
        await asyncio.gather(*(s.ended.wait() for s in apps))
        for name in reversed(self.init_names):
            if name in self.restartable and not self.terminating:
                await self.supervisors[name].terminate(time.monotonic() + grace_seconds(self.pod))

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
        await self._teardown_network()
        # 4. Free the IP, then remove the object (a kubelet's final delete is immediate).
        self.remove_admin_socket()
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
        apps = [s for s in self.supervisors.values() if s.name != mesh.SIDECAR_CONTAINER and s.name not in
                self.restartable]
        side = [s for s in self.supervisors.values() if s.name == mesh.SIDECAR_CONTAINER or s.name in self.restartable]
        # One container that fails to stop cleanly does not keep the others running.
        _log_failures(f"{self.namespace}/{self.name}", await asyncio.gather(*(s.terminate(deadline) for s in apps),
                                                     return_exceptions=True))
        # Envoy needs no grace to speak of, but give it a moment to exit on SIGTERM before SIGKILL.
        _log_failures(f"{self.namespace}/{self.name}", await asyncio.gather(
            *(s.terminate(max(deadline, time.monotonic() + 1.0)) for s in side), return_exceptions=True))

    async def shut_down(self, grace: float) -> None:
        """`sluice down`: stop the processes but keep the Pod, its IP and its logs for the next start."""
        self.terminating = True
        for sup in self.supervisors.values():
            sup.begin_stop()
        await self.stop_containers(time.monotonic() + min(grace, grace_seconds(self.pod)))
        self.remove_admin_socket()
        await self._teardown_network()
        await self._flush()
        await self._cancel()

    async def detach(self) -> None:
        """The daemon stops but the pod keeps running: stop watching, touch nothing."""
        await asyncio.gather(*(s.detach() for s in self.supervisors.values()))
        await self._cancel()

    async def _cancel(self) -> None:
        for t in (self._writer, self._task, self._sidecars_done):
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
            status = build_status(statuses=[s.status() for n, s in self.supervisors.items()
                                            if n not in self.init_names],
                                  restart_policy=self.restart_policy, pod_ip=self.ip, host_ip=self.ctx.host_ip,
                                  start_time=self.start_time, previous=current.get("status"),
                                  init_statuses=[self.supervisors[n].status() for n in self.init_names],
                                  restartable=self.restartable, readiness_gates=self.readiness_gates)
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


def _log_failures(pod: str, results: list[object]) -> None:
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
            log.error("pod %s: stopping a container failed: %r", pod, r)
