"""The pusher: store watch events → debounced rebuild → per-proxy snapshots in the cache.

Run by `XdsServer` (`sluice.xds.server`). One push reads every kind the translation needs from the store
in one synchronous pass (one consistent view at one revision), builds one push context, then generates
the resources of every connected proxy and publishes them as snapshots. The cache bumps a type's
version only when that proxy's content of that type changed, so a change reaches only the proxies it
affects, and an endpoint-only change moves EDS alone. The translation is reached through the small
`ConfigGenerator` protocol; `TranslateGenerator` adapts `sluice.xds.translate` to it.

One Istio config object that the translation cannot handle never stops the rest (Istio skips it and
pushes everything else): when building the push context or a proxy's resources raises, the objects
responsible are found by building with the other kinds plus one config object at a time (only then, so
the common path stays one build), set aside as `rejected` with the error, and everything else is pushed.
A rejected object is tried again once it changes (a new resourceVersion). A proxy whose config cannot
be generated even without any Istio config keeps its previous config and says why in `node_errors`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sluice import mesh
from sluice.aio import cancel_and_wait
from sluice.resources.kinds import KINDS
from sluice.store.sqlite import Store, Watcher
from sluice.xds.cache import Resources, Snapshot, SnapshotCache

__all__ = ["WATCHED_KINDS", "CONFIG_KINDS", "ConfigGenerator", "TranslateGenerator", "Pusher", "View", "Rejection"]

log = logging.getLogger(__name__)

# Everything the translation reads. Pods are included because subsets select pods by labels and a
# proxy's own identity (labels, ports) comes from its Pod; ConfigMaps for the mesh config (istio-system/istio);
# Secrets because a gateway's HTTPS servers carry their credentials (a changed Secret re-pushes the gateway).
WATCHED_KINDS: tuple[str, ...] = (
    "namespaces", "services", "endpoints", "pods", "configmaps", "secrets",
    "virtualservices.networking.istio.io", "destinationrules.networking.istio.io",
    "gateways.networking.istio.io", "serviceentries.networking.istio.io",
)
_TYPES = {rt.key: rt for rt in KINDS}
# The Istio config a push can do without: one of these that breaks the translation is left out, not the push.
CONFIG_KINDS = frozenset({"VirtualService", "DestinationRule", "Gateway", "ServiceEntry"})

ObjectKey = tuple[str, str, str]  # (kind, namespace, name)


def _key(obj: dict[str, Any]) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _rv(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


_MAX_ERROR = 1000  # an Event's message is capped at 1 KiB (kubelet's maxMessageLength is 1024)


def _error_text(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) <= _MAX_ERROR else text[:_MAX_ERROR - 3] + "..."


@dataclass(frozen=True)
class Rejection:
    """An Istio config object left out of every push because translating it failed."""

    obj: dict[str, Any]
    error: str
    since: float  # wall clock

    @property
    def key(self) -> ObjectKey:
        return _key(self.obj)

    @property
    def resource_version(self) -> str:
        return _rv(self.obj)

    def to_json(self) -> dict[str, Any]:
        kind, ns, name = self.key
        return {"kind": kind, "apiVersion": self.obj.get("apiVersion"), "namespace": ns, "name": name,
                "uid": (self.obj.get("metadata") or {}).get("uid"), "resourceVersion": self.resource_version,
                "error": self.error,
                "since": dt.datetime.fromtimestamp(self.since, dt.UTC).isoformat().replace("+00:00", "Z")}


class ConfigGenerator(Protocol):
    """What the pusher needs from the translation."""

    def push_context(self, objects: list[dict[str, Any]], version: str) -> Any:
        """One immutable, indexed view of all config for a push."""
        ...

    def proxy(self, pod: dict[str, Any]) -> Any | None:
        """The proxy a pod runs, or None if it runs none (yet)."""
        ...

    def generate(self, proxy: Any, push: Any) -> Resources:
        """Every xDS resource `proxy` should hold."""
        ...


class TranslateGenerator:
    """`sluice.xds.translate` behind `ConfigGenerator`.

    The module is imported on first use so that the server layer loads (and its tests run) independently
    of the translation's import cost and progress.
    """

    def __init__(self, options: Any = None) -> None:
        self._options = options
        self._mod: Any = None

    def _translate(self) -> Any:
        if self._mod is None:
            self._mod = importlib.import_module("sluice.xds.translate")
            if self._options is None:
                self._options = self._mod.MeshOptions()
        return self._mod

    def push_context(self, objects: list[dict[str, Any]], version: str) -> Any:
        t = self._translate()
        return t.PushContext.build(objects, version=version, options=self._options)

    def proxy(self, pod: dict[str, Any]) -> Any | None:
        return self._translate().proxy_from_pod(pod)

    def generate(self, proxy: Any, push: Any) -> Resources:
        result: Resources = self._translate().generate(proxy, push)
        return result


@dataclass(frozen=True)
class View:
    """The config of one push: the push context and the pods by (namespace, name)."""

    revision: int
    push: Any
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    base: list[dict[str, Any]] = field(default_factory=list)  # the objects of kinds outside CONFIG_KINDS
    config: list[dict[str, Any]] = field(default_factory=list)  # the Istio config in `push` (none rejected)


class Pusher:
    """Keeps the snapshot of every connected proxy current with the store."""

    def __init__(self, store: Store, cache: SnapshotCache, generator: ConfigGenerator, *, debounce: float = 0.1,
                 max_delay: float = 1.0, on_idle: Callable[[], None] | None = None) -> None:
        self.store = store
        self.cache = cache
        self.generator = generator
        self.debounce = debounce
        self.max_delay = max_delay
        self._on_idle = on_idle
        self.view: View | None = None
        self.pushes = 0  # completed full pushes (tests, benchmarks)
        self.forgotten: set[str] = set()  # nodes whose pod was deleted while connected
        self.rejected: dict[ObjectKey, Rejection] = {}  # config left out of pushes, with why
        self.node_errors: dict[str, str] = {}  # node id → why its config could not be generated
        # Told once about each newly rejected object (object, error): the daemon records an Event.
        self.on_rejected: Callable[[dict[str, Any], str], None] | None = None
        self._rejections = 0  # objects rejected so far (a push goes round again when it grows)
        self._nodes: set[str] = set()
        self._waiting_logged: set[str] = set()
        self._first_event: float | None = None
        self._last_event = 0.0
        self._pushing = False
        self._dirty = asyncio.Event()
        self._watchers: list[Watcher] = []
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._rebuild_view()
        for kind in WATCHED_KINDS:
            self._tasks.append(asyncio.create_task(self._watch(kind), name=f"xds-watch-{kind}"))
        self._tasks.append(asyncio.create_task(self._loop(), name="xds-pusher"))

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        for w in self._watchers:
            self.store.unwatch(w)
        self._watchers.clear()

    @property
    def idle(self) -> bool:
        """No store change is waiting to be pushed and no push is running."""
        # Events already queued by the store but not yet read count as waiting changes.
        queued = any(not w.queue.empty() for w in self._watchers)
        return self._first_event is None and not self._pushing and not queued

    # ------------------------------------------------------------------ proxies
    def connected(self, node_id: str) -> None:
        """A proxy connected: generate its snapshot now from the current view (no debounce)."""
        self._nodes.add(node_id)
        self.forgotten.discard(node_id)
        rejections = self._rejections
        self._update_node(node_id)
        if self._rejections != rejections:
            # This proxy's config found bad config and the view was rebuilt without it: the other proxies
            # still hold it until a push.
            self._mark_dirty()

    def disconnected(self, node_id: str) -> None:
        self._nodes.discard(node_id)
        self.node_errors.pop(node_id, None)
        self._waiting_logged.discard(node_id)
        self.cache.clear_snapshot(node_id)

    @property
    def nodes(self) -> set[str]:
        return set(self._nodes)

    # ------------------------------------------------------------------ store watch + debounce
    async def _watch(self, kind: str) -> None:
        while True:
            watcher, _ = self.store.watch(kind, None, None)
            self._watchers.append(watcher)
            try:
                while True:
                    ev = await watcher.queue.get()
                    if ev is None:
                        break  # the store dropped a slow watcher: watch again and rebuild everything
                    self._mark_dirty()
            finally:
                self.store.unwatch(watcher)
                if watcher in self._watchers:
                    self._watchers.remove(watcher)
            self._mark_dirty()

    def _mark_dirty(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._first_event is None:
            self._first_event = now
        self._last_event = now
        self._dirty.set()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._dirty.wait()
            # Wait for a quiet period of `debounce`, but never longer than `max_delay` after the first
            # change, so a steady stream of writes still reaches the proxies (istiod's debounce rule).
            while True:
                first = self._first_event if self._first_event is not None else loop.time()
                due = min(self._last_event + self.debounce, first + self.max_delay)
                delay = due - loop.time()
                if delay <= 0:
                    break
                await asyncio.sleep(delay)
            self._dirty.clear()
            self._first_event = None
            self._pushing = True
            try:
                await self.push()
            except Exception:  # noqa: BLE001 - a failed push must not stop future pushes
                log.exception("xDS push failed")
            finally:
                self._pushing = False
                if self._on_idle is not None:
                    self._on_idle()

    # ------------------------------------------------------------------ pushing
    def _rebuild_view(self) -> bool:
        base: list[dict[str, Any]] = []
        config: list[dict[str, Any]] = []
        pods: dict[tuple[str, str], dict[str, Any]] = {}
        revision = self.store.revision
        # No await in this loop: the reads form one consistent view of the store.
        for kind in WATCHED_KINDS:
            items, _ = self.store.list_kind(kind)
            rt = _TYPES.get(kind)
            for obj in items:
                if rt is not None:
                    obj.setdefault("apiVersion", rt.api_version())
                    obj.setdefault("kind", rt.kind)
                (config if obj.get("kind") in CONFIG_KINDS else base).append(obj)
                if kind == "pods":
                    meta = obj.get("metadata") or {}
                    pods[(str(meta.get("namespace") or ""), str(meta.get("name") or ""))] = obj
        # A rejected object that changed or went away is forgotten (and so tried again if it is still there).
        current = {_key(o): _rv(o) for o in config}
        for key in [k for k, r in self.rejected.items() if current.get(k) != r.resource_version]:
            del self.rejected[key]
        accepted = [o for o in config if _key(o) not in self.rejected]
        version = str(revision)
        try:
            push = self.generator.push_context(base + accepted, version)
        except Exception as e:  # noqa: BLE001 - bad config must not take the control plane down
            def build(objects: list[dict[str, Any]]) -> None:
                self.generator.push_context(objects, version)

            found = self._isolate(base, accepted, build)
            if found is None:
                log.error("building the push context at revision %d failed even without Istio config; keeping "
                          "the previous one: %s", revision, _error_text(e))
                return False
            accepted = found
            try:
                push = self.generator.push_context(base + accepted, version)
            except Exception:  # noqa: BLE001 - only if the generator is not deterministic
                log.exception("building the push context at revision %d failed; keeping the previous one", revision)
                return False
        self.view = View(revision, push, pods, base, accepted)
        return True

    def _isolate(self, base: list[dict[str, Any]], config: list[dict[str, Any]],
                 build: Callable[[list[dict[str, Any]]], None]) -> list[dict[str, Any]] | None:
        """The config objects that `build` accepts together with `base`, rejecting the others; None when
        `build(base)` itself fails (the failure is not the Istio config's)."""
        try:
            build(base)
        except Exception:  # noqa: BLE001
            return None
        bad: list[tuple[dict[str, Any], str]] = []
        good: list[dict[str, Any]] = []
        for obj in config:  # each object alone with everything that is not Istio config
            try:
                build([*base, obj])
                good.append(obj)
            except Exception as e:  # noqa: BLE001
                log.debug("translating %s failed", _key(obj), exc_info=e)
                bad.append((obj, _error_text(e)))
        try:
            build(base + good)
        except Exception:  # noqa: BLE001 - objects that fail only together: add them one by one
            together: list[dict[str, Any]] = []
            for obj in good:
                try:
                    build([*base, *together, obj])
                    together.append(obj)
                except Exception as e:  # noqa: BLE001
                    bad.append((obj, f"{_error_text(e)} (together with other config)"))
            good = together
        for obj, error in bad:
            self._reject(obj, error)
        return good

    def _reject(self, obj: dict[str, Any], error: str) -> None:
        kind, ns, name = _key(obj)
        log.warning("%s %s/%s is left out of xDS pushes: %s", kind, ns, name, error)
        self.rejected[_key(obj)] = Rejection(obj, error, time.time())
        self._rejections += 1
        if self.on_rejected is not None:
            try:
                self.on_rejected(obj, error)
            except Exception:  # noqa: BLE001 - reporting must not break pushing
                log.exception("reporting the rejection of %s %s/%s failed", kind, ns, name)

    async def push(self) -> None:
        """Rebuild the view and update every connected proxy's snapshot."""
        if not self._rebuild_view():
            return
        for _ in range(2):
            rejections = self._rejections
            for node_id in sorted(self._nodes):
                if node_id in self._nodes:  # it may have gone while we yielded
                    self._update_node(node_id)
                # Let ACKs and new requests in between proxies: a big push must not stall the streams.
                await asyncio.sleep(0)
            if self._rejections == rejections:
                break
            # A proxy's generation found bad config (and rebuilt the view without it): the proxies updated
            # before that still hold it, so go round once more.
        self.pushes += 1

    def _update_node(self, node_id: str) -> None:
        view = self.view
        if view is None:
            return
        parsed = mesh.parse_node_id(node_id)
        if parsed is None:
            self._wait(node_id, "its node id is not <type>~<ip>~<pod>.<namespace>~<domain>")
            return
        _, _, pod_name, namespace = parsed
        pod = view.pods.get((namespace, pod_name))
        if pod is None:
            if self.cache.get_snapshot(node_id) is not None:
                log.info("forgetting %s: pod %s.%s is gone", node_id, pod_name, namespace)
                self.cache.clear_snapshot(node_id)
                self.forgotten.add(node_id)
            elif node_id not in self.forgotten:
                self._wait(node_id, f"pod {pod_name}.{namespace} is not known yet")
            return
        self.forgotten.discard(node_id)
        try:
            proxy = self.generator.proxy(pod)
            if proxy is None:
                self._wait(node_id, f"pod {pod_name}.{namespace} runs no proxy (yet)")
                return
        except Exception as e:  # noqa: BLE001 - one proxy's failure must not stop the others
            self._node_failed(node_id, e)
            return
        resources = self._generate(node_id, proxy, view)
        if resources is None:
            return
        self.node_errors.pop(node_id, None)
        self._waiting_logged.discard(node_id)
        previous = self.cache.get_snapshot(node_id)
        snapshot = Snapshot.build(resources, previous)
        if previous is not None and not snapshot.changed_types(previous):
            return
        problems = snapshot.consistent()
        if problems:
            log.warning("snapshot for %s is inconsistent: %s", node_id, "; ".join(problems[:5]))
        self.cache.set_snapshot(node_id, snapshot)

    def _generate(self, node_id: str, proxy: Any, view: View) -> Resources | None:
        """The proxy's resources; on failure, the config objects responsible are rejected and the view rebuilt
        without them. None (and a node error) when the proxy cannot be configured at all."""
        try:
            return self.generator.generate(proxy, view.push)
        except Exception as e:  # noqa: BLE001 - one proxy's failure must not stop the others
            first = e

        def build(objects: list[dict[str, Any]]) -> None:
            self.generator.generate(proxy, self.generator.push_context(objects, str(view.revision)))

        before = self._rejections
        if self._isolate(view.base, view.config, build) is not None and self._rejections > before \
                and self._rebuild_view() and self.view is not None:
            try:
                return self.generator.generate(proxy, self.view.push)
            except Exception as e:  # noqa: BLE001
                first = e
        self._node_failed(node_id, first)
        return None

    def _node_failed(self, node_id: str, e: BaseException) -> None:
        error = _error_text(e)
        if self.node_errors.get(node_id) != error:  # the traceback once: it is most likely a translation bug
            log.error("generating xDS for %s failed; it keeps its previous config: %s", node_id, error, exc_info=e)
        self.node_errors[node_id] = error

    def _wait(self, node_id: str, why: str) -> None:
        if node_id not in self._waiting_logged:
            self._waiting_logged.add(node_id)
            log.info("not configuring %s yet: %s", node_id, why)
