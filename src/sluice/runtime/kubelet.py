"""The local "kubelet": runs every Pod in the store as local processes, and serves their logs.

Created and started by the daemon (`sluice.daemon.main`) next to the API server, whose `pods/<name>/log`
requests it answers through `log_source` (and `pods/<name>/exec|attach|portforward` through `stream_source`,
`sluice.runtime.streams`). It watches Pods in all namespaces: a new Pod gets a pod IP and a
`PodWorker` (`sluice.runtime.pod`); a `deletionTimestamp` starts the graceful termination; a Pod that vanishes
from the store is stopped the same way. State lives under `SLUICE_HOME/runtime/` (`sluice.runtime.layout`), so
a restarted daemon adopts the pods that kept running, restarts the ones that died, and stops the ones whose
objects are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from sluice import mesh
from sluice.aio import cancel_and_wait
from sluice.api.errors import ApiError
from sluice.api.registry import Registry
from sluice.controllers.events import EventRecorder
from sluice.objects import Obj
from sluice.resources.kinds import by_kind
from sluice.runtime import proxy
from sluice.runtime.ipam import IPAllocator, PoolExhausted
from sluice.runtime.layout import PodDir, RuntimeLayout
from sluice.runtime.logfiles import LogRotation
from sluice.runtime.logs import parse_options, read_lines, serve_log
from sluice.runtime.netns.clusterdns import ClusterDns
from sluice.runtime.netns.dial import http_fetch
from sluice.runtime.netns.kubeproxy import KubeProxy
from sluice.runtime.netns.loopback_lb import LoopbackBalancer
from sluice.runtime.netns.node import NodeNetwork
from sluice.runtime.netns.sandbox import PodNetwork
from sluice.runtime.pod import PodContext, PodWorker, grace_seconds
from sluice.runtime.status import now
from sluice.runtime.streams.source import StreamServer
from sluice.runtime.supervisor import BackOff
from sluice.runtime.zygote import Zygote
from sluice.store import Event, Store

__all__ = ["Kubelet", "KubeletOptions"]

log = logging.getLogger("sluice.runtime")

_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")


@dataclass(frozen=True)
class KubeletOptions:
    backoff_base: float = 10.0  # crash back-off: first restart immediate, then base, 2×base, … (kubelet: 10 s)
    backoff_max: float = 300.0  # … capped here (kubelet: 5 min)
    drain_seconds: float = 1.0  # between "not Ready" and SIGTERM, so endpoint removal reaches the sidecars
    down_grace_seconds: float = 5.0  # grace cap when `sluice down` stops every pod
    status_debounce: float = 0.05
    host_ip: str = "127.0.0.1"
    envoy_concurrency: int = 1
    envoy_log_level: str = "warning"
    # Builds the Envoy bootstrap; None means `sluice.xds.bootstrap.proxy_bootstrap`.
    bootstrap_factory: proxy.BootstrapFactory | None = None
    # "netns": every pod in its own network namespace with Istio's capture; "loopback": pods share the
    # host's network on 127.x addresses and apps use HTTP_PROXY.
    network: str = "loopback"
    xds_socket: str | None = None  # netns mode: the daemon's xDS/ALS Unix socket for the sidecars
    # Container log rotation (kubelet's containerLogMaxSize, containerLogMaxFiles): 10Mi × 5 files per run.
    log_rotation: LogRotation = field(default_factory=LogRotation)
    # Issues each proxy's client certificate for the xDS/ALS endpoint (the daemon's `ProxyCa`); None: the
    # proxies speak plain text (an in-process xDS server without TLS, in tests).
    proxy_ca: proxy.ProxyIssuer | None = None
    # Shims (and Sluice's built-in Python programs) forked from a process that has their imports done
    # (`sluice.runtime.zygote`); False: each starts a fresh interpreter.
    fork_server: bool = True


class Kubelet:
    def __init__(self, registry: Registry, store: Store, home: Path, *, xds_address: tuple[str, int],
                 options: KubeletOptions | None = None) -> None:
        self.registry = registry
        self.store = store
        self.options = options or KubeletOptions()
        self.layout = RuntimeLayout(home / "runtime")
        pod_rt = by_kind("", "Pod")
        assert pod_rt is not None
        self._pod_rt = pod_rt
        self._xds_address = xds_address
        self.workers: dict[tuple[str, str], PodWorker] = {}
        self._ctx: PodContext | None = None
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.node: NodeNetwork | None = None
        self.kube_proxy: KubeProxy | None = None
        self.loopback_lb: LoopbackBalancer | None = None  # netns mode
        self._dns: ClusterDns | None = None  # netns mode
        self._zygote: Zygote | None = None
        self._home = home
        # `pods/<name>/exec|attach|portforward` (the API server's StreamSource).
        self.stream_source = StreamServer(lambda: self.workers)

    # ------------------------------------------------------------------ start / stop
    async def start(self) -> None:
        self.layout.prepare()
        if self.options.fork_server:
            # Started first: its imports overlap the network setup below.
            self._zygote = Zygote(str(self.layout.root))
            await self._zygote.start()
        existing = self.layout.existing()
        ips = [str(info["ip"]) for d in existing.values() if (info := d.read())]
        o = self.options
        network: PodNetwork | None = None
        if o.network == "netns":
            network = await self._start_network()
            ipam = IPAllocator(self.layout.ipam, ips, network=mesh.NETNS_POD_NETWORK, machine_wide=False,
                               reserved=1)
        else:
            ipam = IPAllocator(self.layout.ipam, ips)
        self._ctx = PodContext(
            registry=self.registry, pod_rt=self._pod_rt, ipam=ipam, network=network,
            admin_socket=self.layout.admin_socket,
            xds_address=self._xds_address, host_ip=o.host_ip, backoff=BackOff(o.backoff_base, o.backoff_max),
            drain_seconds=o.drain_seconds, status_debounce=o.status_debounce, envoy_concurrency=o.envoy_concurrency,
            envoy_log_level=o.envoy_log_level, bootstrap_factory=o.bootstrap_factory, proxy_ca=o.proxy_ca,
            configmaps=self._configmap, events=EventRecorder(self.registry, "kubelet"), services=self._services,
            log_rotation=o.log_rotation, zygote=self._zygote)
        if self.kube_proxy is not None:
            await self.kube_proxy.start()
        if self.loopback_lb is not None:
            await self.loopback_lb.start()  # before any pod registers with it
        items, _ = self.store.list_kind(self._pod_rt.key)
        watcher, _ = self.store.watch(self._pod_rt.key, None, None)
        for pod in items:
            uid = str(pod["metadata"].get("uid"))
            self._sync(pod, existing.pop(uid, None))
        for uid, d in existing.items():
            log.info("stopping pod %s: its object is gone", uid)
            self._reap(d)
        self._task = asyncio.create_task(self._watch(watcher), name="kubelet watch")

    async def _start_network(self) -> PodNetwork:
        """netns mode: the node namespace, the host-namespace handle for the gateway, kube-proxy."""
        node = NodeNetwork(self._home)
        await asyncio.to_thread(node.ensure_node)
        self.node = node
        host = await asyncio.to_thread(node.pin_host_netns)
        self.kube_proxy = KubeProxy(self.store, node.nft_node)
        self.loopback_lb = LoopbackBalancer(self.store, node.nft_pod)
        # Kubernetes DNS for the pods, on kube-dns's address inside the node namespace, in a process of its own
        # that keeps answering while the daemon restarts (`sluice.runtime.netns.clusterdns`).
        self._dns = ClusterDns(self.store, node.node_path, self.layout.root)
        await self._dns.start()
        assert self.options.xds_socket, "netns mode needs the xDS Unix socket"
        return PodNetwork(node=node, xds_socket=self.options.xds_socket, host_netns=host, loopback=self.loopback_lb)

    async def stop(self, *, stop_pods: bool) -> None:
        """Stop the kubelet. With `stop_pods`, stop every pod's processes too (IPs and logs are kept), and
        in netns mode remove every namespace, link and rule the kubelet made."""
        self._stopping = True
        await cancel_and_wait(self._task)
        if self.kube_proxy is not None:
            await self.kube_proxy.stop()
        if self.loopback_lb is not None:
            await self.loopback_lb.stop()
        if self._dns is not None:
            await self._dns.stop(kill=stop_pods)
        workers = list(self.workers.values())
        self.workers.clear()
        if stop_pods:
            # one pod that fails to stop cleanly does not keep the others running
            results = await asyncio.gather(*(w.shut_down(self.options.down_grace_seconds) for w in workers),
                                           return_exceptions=True)
            for w, r in zip(workers, results, strict=True):
                if isinstance(r, Exception):
                    log.error("pod %s/%s: shutting down failed: %r", w.namespace, w.name, r)
            if self._background:
                await asyncio.gather(*self._background, return_exceptions=True)
            with contextlib.suppress(Exception):
                from sluice.xds.envoy import cleanup_shared_memory

                cleanup_shared_memory()
            if self.node is not None:
                await asyncio.to_thread(self.node.teardown)
        else:
            await asyncio.gather(*(w.detach() for w in workers))
            for t in list(self._background):
                t.cancel()
        if self._zygote is not None:
            await self._zygote.stop()

    # ------------------------------------------------------------------ watch
    async def _watch(self, watcher: Any) -> None:
        while True:
            ev: Event | None = await watcher.queue.get()
            if ev is None:
                # The store dropped us (too far behind): list again and carry on from there.
                items, _ = self.store.list_kind(self._pod_rt.key)
                watcher, _ = self.store.watch(self._pod_rt.key, None, None)
                seen = set()
                for pod in items:
                    seen.add((str(pod["metadata"].get("namespace")), str(pod["metadata"]["name"])))
                    self._sync(pod, None)
                for key, worker in list(self.workers.items()):
                    if key not in seen:
                        worker.begin_termination(None)
                continue
            try:
                if ev.type == "DELETED":
                    w = self.workers.get((ev.namespace, ev.name))
                    if w is not None and w.uid == ev.object["metadata"].get("uid"):
                        w.begin_termination(None)
                else:
                    self._sync(ev.object, None)
            except Exception:
                log.exception("kubelet: handling %s pod %s/%s", ev.type, ev.namespace, ev.name)

    def _sync(self, pod: Obj, pod_dir: PodDir | None) -> None:
        """Make the runtime match one Pod object (new, changed, or found at start with its directory)."""
        meta = pod["metadata"]
        key = (str(meta.get("namespace") or "default"), str(meta["name"]))
        uid = str(meta.get("uid"))
        w = self.workers.get(key)
        if w is not None and w.uid != uid:
            w.begin_termination(None)  # a new Pod under an old name: the old one is gone
            self.workers.pop(key, None)
            w = None
        if w is not None:
            if meta.get("deletionTimestamp"):
                w.begin_termination(pod)
            else:
                w.observe(pod)
            return
        if pod_dir is None and meta.get("deletionTimestamp"):
            # Nothing runs for it here: nothing to wait for.
            with contextlib.suppress(ApiError):
                self.registry.delete(self._pod_rt, "v1", key[0], key[1],
                                     {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}})
            return
        if pod_dir is None and (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return  # finished before this runtime knew it (its state was removed): leave it finished
        self._start_worker(pod, pod_dir)

    def _start_worker(self, pod: Obj, pod_dir: PodDir | None) -> None:
        assert self._ctx is not None
        meta = pod["metadata"]
        uid = str(meta.get("uid"))
        info = pod_dir.read() if pod_dir is not None else None
        if pod_dir is None or info is None:
            try:
                ip = self._ctx.ipam.allocate()
            except PoolExhausted as e:
                log.error("pod %s/%s: %s", meta.get("namespace"), meta.get("name"), e)
                return
            pod_dir = self.layout.pod(uid)
            start_time = now()
            pod_dir.write(pod, ip, start_time)
            _record_start(self._ctx, pod)
        else:
            ip, start_time = str(info["ip"]), str(info.get("startTime") or now())
            self._ctx.ipam.claim(ip)
        w = PodWorker(self._ctx, pod, pod_dir, ip, start_time, adopt=info is not None)
        key = (w.namespace, w.name)
        self.workers[key] = w
        w.start()
        if meta.get("deletionTimestamp"):
            w.begin_termination(pod)
        task = asyncio.get_running_loop().create_task(self._forget_when_done(w, key))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _forget_when_done(self, w: PodWorker, key: tuple[str, str]) -> None:
        await w.done.wait()
        if self.workers.get(key) is w:
            del self.workers[key]

    def _reap(self, pod_dir: PodDir) -> None:
        """Stop the processes of a pod whose object is gone (found at start), then drop its state."""
        assert self._ctx is not None
        info = pod_dir.read()
        if info is None:
            pod_dir.remove()
            return
        self._ctx.ipam.claim(str(info["ip"]))
        w = PodWorker(self._ctx, info["pod"], pod_dir, str(info["ip"]), str(info.get("startTime") or now()))
        w.gone = True
        w.terminating = True
        task = asyncio.get_running_loop().create_task(self._reap_worker(w))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reap_worker(self, w: PodWorker) -> None:
        assert self._ctx is not None
        for sup in w.supervisors.values():
            sup.begin_stop()
        await w.stop_containers(time.monotonic() + min(self.options.down_grace_seconds, grace_seconds(w.pod)))
        if self.node is not None:
            await asyncio.to_thread(self.node.remove_pod, w.ip)
        w.remove_admin_socket()
        w.dir.remove()
        self._ctx.ipam.release(w.ip)

    def _configmap(self, namespace: str, name: str) -> Obj | None:
        return self.store.get("configmaps", namespace, name)

    # ------------------------------------------------------------------ envoy admin
    async def envoy_admin(self, namespace: str, pod: str, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        """GET `path` from a pod's Envoy admin, which only the daemon reaches (netns mode: the pod's
        127.0.0.1:15000, as Istio's sidecar; loopback mode: a 0600 Unix socket): (status, body). For
        `sluice proxy-config`."""
        w = self.workers.get((namespace, pod))
        if w is None or not w.has_proxy or (w.ctx.network is not None and w.netns is None):
            raise ApiError(404, "NotFound", f'pod "{pod}" in namespace "{namespace}" has no running '
                                            f"{mesh.SIDECAR_CONTAINER} container")
        return await http_fetch(w.netns, w.admin_endpoint(), path, timeout)

    def _services(self, namespace: str) -> list[Obj]:
        """The Services that exist now in `namespace`, plus default/kubernetes (for the service variables)."""
        items, _ = self.store.list_kind("services", namespace)
        master = self.store.get("services", "default", "kubernetes")
        return items + ([master] if master is not None and namespace != "default" else [])

    # ------------------------------------------------------------------ logs
    async def log_source(self, request: web.Request, pod: Obj, query: dict[str, str]) -> web.StreamResponse:
        """`GET pods/<name>/log`: kubelet's options and errors (see `sluice.runtime.logs`)."""
        opts = parse_options(query)
        meta = pod.get("metadata") or {}
        name = str(meta.get("name"))
        containers = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
        container = opts.container or (containers[0] if containers else "")
        w = self.workers.get((str(meta.get("namespace") or "default"), name))
        sup = w.supervisors.get(container) if w is not None and w.uid == meta.get("uid") else None
        if sup is None:
            if opts.previous:
                raise ApiError.bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
            raise ApiError.bad_request(f'container "{container}" in pod "{name}" is waiting to start: '
                                       "ContainerCreating")
        if opts.previous:
            path = sup.previous_log()
            if path is None:
                raise ApiError.bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
            return await serve_log(request, path, opts, lambda: True)
        path = sup.current_log()
        if path is None:
            reason = str(((sup.state.get("waiting") or {}).get("reason")) or "ContainerCreating")
            what = "image can't be pulled" if reason in _PULL_REASONS else reason
            raise ApiError.bad_request(f'container "{container}" in pod "{name}" is waiting to start: {what}')
        run = sup.attempt
        current = sup.files.log(run)
        # -f ends with the run it reads, also when the container is restarted right away.
        return await serve_log(request, path, opts,
                               lambda: path != current or sup.attempt != run or not sup.run_active())

    async def read_log_lines(self, namespace: str, pod: str, container: str, tail_lines: int,
                             after: str | None = None) -> list[tuple[str, str]]:
        """(timestamp, text) of the last `tail_lines` lines of a container's current log, oldest first, only
        those strictly after `after` (see `sluice.runtime.logs.read_lines`); none for a pod or container
        this kubelet is not running (yet). The console's `LogReader`."""
        w = self.workers.get((namespace, pod))
        sup = w.supervisors.get(container) if w is not None else None
        path = sup.current_log() if sup is not None else None
        if path is None:
            return []
        return await asyncio.to_thread(read_lines, path, tail_lines, after)



def _record_start(ctx: PodContext, pod: Obj) -> None:
    """The events `kubectl describe pod` shows for a pod this kubelet starts for the first time."""
    if ctx.events is None:
        return
    meta = pod["metadata"]
    ctx.events.record(pod, "Normal", "Scheduled",
                      f"Successfully assigned {meta.get('namespace')}/{meta.get('name')} to sluice")
    for c in (pod.get("spec") or {}).get("containers") or []:
        ctx.events.record(pod, "Normal", "Pulled", f'Container image "{c.get("image")}" already present on machine')
        ctx.events.record(pod, "Normal", "Created", f"Created container: {c.get('name')}")
        ctx.events.record(pod, "Normal", "Started", f"Started container {c.get('name')}")
