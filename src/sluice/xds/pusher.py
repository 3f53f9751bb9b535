"""The pusher: store watch events → debounced rebuild → per-proxy snapshots in the cache.

Run by `XdsServer` (`sluice.xds.server`). One push reads every kind the translation needs from the store
in one synchronous pass (one consistent view at one revision), builds one push context, then generates
the resources of every connected proxy and publishes them as snapshots. The building and generating run in
a worker thread, never on the event loop: a large config takes seconds to translate, and the loop serves the
API, xDS and ALS meanwhile (issue 9). Pushes run one at a time, in order, and their results are published on
the loop, so a newer config is never overtaken by an older one. The cache bumps a type's
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
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sluice import mesh
from sluice.aio import cancel_and_wait
from sluice.offloop import call_gc_paused
from sluice.resources.kinds import KINDS
from sluice.store import Store, Watcher
from sluice.xds.cache import Resources, Snapshot, SnapshotCache

if TYPE_CHECKING:  # the translation loads on first use (`TranslateGenerator`), not with the server layer
    from sluice.xds.translate import MeshOptions, Proxy, PushContext

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
_T = TypeVar("_T")


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
    """What the pusher needs from the translation (`sluice.xds.translate`)."""

    def push_context(self, objects: list[dict[str, Any]], version: str) -> PushContext:
        """One immutable, indexed view of all config for a push."""
        ...

    def proxy(self, pod: dict[str, Any]) -> Proxy | None:
        """The proxy a pod runs, or None if it runs none (yet)."""
        ...

    def generate(self, proxy: Proxy, push: PushContext) -> Resources:
        """Every xDS resource `proxy` should hold."""
        ...


class TranslateGenerator:
    """`sluice.xds.translate` behind `ConfigGenerator`.

    The module is imported on first use so that the server layer loads (and its tests run) independently
    of the translation's import cost.
    """

    def __init__(self, options: MeshOptions | None = None) -> None:
        self._options = options

    def push_context(self, objects: list[dict[str, Any]], version: str) -> PushContext:
        from sluice.xds import translate

        if self._options is None:
            self._options = translate.MeshOptions()
        return translate.PushContext.build(objects, version=version, options=self._options)

    def proxy(self, pod: dict[str, Any]) -> Proxy | None:
        from sluice.xds import translate

        return translate.proxy_from_pod(pod)

    def generate(self, proxy: Proxy, push: PushContext) -> Resources:
        from sluice.xds import translate

        return translate.generate(proxy, push)


@dataclass(frozen=True)
class View:
    """The config of one push: the push context and the pods by (namespace, name)."""

    revision: int
    push: PushContext
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    base: list[dict[str, Any]] = field(default_factory=list)  # the objects of kinds outside CONFIG_KINDS
    config: list[dict[str, Any]] = field(default_factory=list)  # the Istio config in `push` (none rejected)


@dataclass(frozen=True)
class _NodeOutcome:
    """What a generation made of one node; the loop applies it (`Pusher._apply_node`)."""

    state: str  # "snapshot", "unchanged", "gone" (no pod), "wait", "error"
    snapshot: Snapshot | None = None
    resources: Resources | None = None
    previous: Snapshot | None = None  # the snapshot `snapshot` was versioned against
    why: str = ""
    error: BaseException | None = None
    problems: tuple[str, ...] = ()


class _Generation:
    """One push's CPU work — building the push context, each proxy's resources and snapshots, and the culprit
    search when that fails — run in the pusher's worker thread.

    It reads only what it was given (objects read from the store at one revision, the snapshots the nodes
    held when it started) and changes nothing shared: the rejections it finds, the view and every node's
    outcome are handed back to the event loop, which publishes them.
    """

    def __init__(self, generator: ConfigGenerator, revision: int, base: list[dict[str, Any]],
                 config: list[dict[str, Any]], pods: dict[tuple[str, str], dict[str, Any]],
                 previous: dict[str, Snapshot | None]) -> None:
        self.generator = generator
        self.revision = revision
        self.base = base
        self.config = config
        self.pods = pods
        self.previous = previous
        self.view: View | None = None
        self.rejections: list[tuple[dict[str, Any], str]] = []
        self.error = ""  # why the view could not be built
        self.stored: dict[ObjectKey, str] = {}  # resourceVersion of every stored Istio config object (`decode`)

    def decode(self, texts: dict[str, list[str]], rejected: dict[ObjectKey, str]) -> None:
        """Fill base, config and pods from the stored JSON of every watched kind, leaving out the `rejected`
        objects (key → the resourceVersion rejected) that did not change since."""
        for kind in WATCHED_KINDS:
            rt = _TYPES.get(kind)
            for text in texts.get(kind, ()):
                obj = json.loads(text)
                if rt is not None:
                    obj.setdefault("apiVersion", rt.api_version())
                    obj.setdefault("kind", rt.kind)
                if obj.get("kind") in CONFIG_KINDS:
                    self.stored[_key(obj)] = _rv(obj)
                    if rejected.get(_key(obj)) != _rv(obj):
                        self.config.append(obj)
                else:
                    self.base.append(obj)
                if kind == "pods":
                    meta = obj.get("metadata") or {}
                    self.pods[(str(meta.get("namespace") or ""), str(meta.get("name") or ""))] = obj

    # ------------------------------------------------------------------ the view
    def build_view(self) -> bool:
        version = str(self.revision)
        try:
            push = self.generator.push_context(self.base + self.config, version)
        except Exception as e:  # noqa: BLE001 - bad config must not take the control plane down
            def build(objects: list[dict[str, Any]]) -> None:
                self.generator.push_context(objects, version)

            if self._isolate(self.config, build) is None:
                self.error = f"building the push context failed even without Istio config: {_error_text(e)}"
                return False
            try:
                push = self.generator.push_context(self.base + self.config, version)
            except Exception as e2:  # noqa: BLE001 - only if the generator is not deterministic
                self.error = f"building the push context failed: {_error_text(e2)}"
                return False
        self.view = View(self.revision, push, self.pods, self.base, list(self.config))
        return True

    def use_view(self, view: View) -> None:
        self.view = view
        self.base, self.config, self.pods = view.base, list(view.config), view.pods

    def _isolate(self, config: list[dict[str, Any]],
                 build: Callable[[list[dict[str, Any]]], None]) -> list[dict[str, Any]] | None:
        """The config objects that `build` accepts together with the base objects, recording the others as
        rejections and dropping them from `self.config`; None when `build(base)` itself fails (the failure
        is not the Istio config's)."""
        base = self.base
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
        self.rejections.extend(bad)
        rejected = {_key(o) for o, _ in bad}
        self.config = [o for o in self.config if _key(o) not in rejected]
        return good

    # ------------------------------------------------------------------ the nodes
    def update(self, targets: list[str], everyone: list[str]) -> dict[str, _NodeOutcome]:
        """The outcome of every node in `targets`; of every node in `everyone` when a node's generation found
        bad config (the view changed without it, so the nodes generated before it must be generated again)."""
        out: dict[str, _NodeOutcome] = {}
        nodes = targets
        for _ in range(2):
            rejections = len(self.rejections)
            for node_id in nodes:
                out[node_id] = self._node(node_id)
            if len(self.rejections) == rejections:
                break
            nodes = everyone
        return out

    def _node(self, node_id: str) -> _NodeOutcome:
        parsed = mesh.parse_node_id(node_id)
        if parsed is None:
            return _NodeOutcome("wait", why="its node id is not <type>~<ip>~<pod>.<namespace>~<domain>")
        _, _, pod_name, namespace = parsed
        pod = self.pods.get((namespace, pod_name))
        if pod is None:
            return _NodeOutcome("gone", why=f"pod {pod_name}.{namespace}")
        try:
            proxy = self.generator.proxy(pod)
        except Exception as e:  # noqa: BLE001 - one proxy's failure must not stop the others
            return _NodeOutcome("error", error=e)
        if proxy is None:
            return _NodeOutcome("wait", why=f"pod {pod_name}.{namespace} runs no proxy (yet)")
        resources, error = self._generate(proxy)
        if resources is None:
            return _NodeOutcome("error", error=error)
        previous = self.previous.get(node_id)
        snapshot = Snapshot.build(resources, previous)
        if previous is not None and not snapshot.changed_types(previous):
            return _NodeOutcome("unchanged", previous=previous)
        return _NodeOutcome("snapshot", snapshot, resources, previous, problems=tuple(snapshot.consistent()))

    def _generate(self, proxy: Proxy) -> tuple[Resources | None, BaseException | None]:
        """The proxy's resources; on failure, the config objects responsible are rejected and the view rebuilt
        without them. (None, the error) when the proxy cannot be configured at all."""
        view = self.view
        assert view is not None
        try:
            return self.generator.generate(proxy, view.push), None
        except Exception as e:  # noqa: BLE001 - one proxy's failure must not stop the others
            first: BaseException = e

        def build(objects: list[dict[str, Any]]) -> None:
            self.generator.generate(proxy, self.generator.push_context(objects, str(view.revision)))

        before = len(self.rejections)
        if self._isolate(view.config, build) is not None and len(self.rejections) > before \
                and self.build_view() and self.view is not None:
            try:
                return self.generator.generate(proxy, self.view.push), None
            except Exception as e:  # noqa: BLE001
                first = e
        return None, first


class Pusher:
    """Keeps the snapshot of every connected proxy current with the store.

    One task does every push, one after the other, so a newer config is never overtaken by an older one;
    the CPU work of each runs in one worker thread (`_Generation`), so the event loop keeps serving the API,
    xDS and ALS while a large config is translated.
    """

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
        self._nodes: set[str] = set()
        self._new_nodes: set[str] = set()  # connected, waiting for their first generation
        self._waiting_logged: set[str] = set()
        self._first_event: float | None = None
        self._last_event = 0.0
        self._pushing = False
        self._wake = asyncio.Event()
        self._watchers: list[Watcher] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="xds-push")
        await self._build_view()
        for kind in WATCHED_KINDS:
            self._tasks.append(asyncio.create_task(self._watch(kind), name=f"xds-watch-{kind}"))
        self._tasks.append(asyncio.create_task(self._loop(), name="xds-pusher"))

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        for w in self._watchers:
            self.store.unwatch(w)
        self._watchers.clear()
        if self._executor is not None:
            # A generation still running finishes in its thread; nothing reads its result.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    @property
    def idle(self) -> bool:
        """No store change or new proxy is waiting to be pushed and no push is running."""
        # Events already queued by the store but not yet read count as waiting changes.
        queued = any(not w.queue.empty() for w in self._watchers)
        return self._first_event is None and not self._new_nodes and not self._pushing and not queued

    # ------------------------------------------------------------------ proxies
    def connected(self, node_id: str) -> None:
        """A proxy connected: generate its snapshot from the current view as soon as the push task is free
        (no debounce)."""
        self._nodes.add(node_id)
        self.forgotten.discard(node_id)
        self._new_nodes.add(node_id)
        self._wake.set()

    def disconnected(self, node_id: str) -> None:
        self._nodes.discard(node_id)
        self._new_nodes.discard(node_id)
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
        self._wake.set()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._pushing = True
            try:
                if self._new_nodes:
                    nodes = sorted(self._new_nodes)
                    self._new_nodes.clear()
                    await self._push_nodes(nodes)
                if self._first_event is not None:
                    # Wait for a quiet period of `debounce`, but never longer than `max_delay` after the first
                    # change, so a steady stream of writes still reaches the proxies (istiod's debounce rule).
                    while True:
                        first = self._first_event if self._first_event is not None else loop.time()
                        due = min(self._last_event + self.debounce, first + self.max_delay)
                        delay = due - loop.time()
                        if delay <= 0:
                            break
                        await asyncio.sleep(delay)
                    self._first_event = None
                    self._new_nodes.clear()  # the full push generates for every connected node
                    await self.push()
            except Exception:  # noqa: BLE001 - a failed push must not stop future pushes
                log.exception("xDS push failed")
            finally:
                self._pushing = False
                if self._on_idle is not None:
                    self._on_idle()

    # ------------------------------------------------------------------ pushing
    async def _in_worker(self, fn: Callable[[], _T]) -> _T:
        if self._executor is None:  # not started (tests driving a push directly)
            return fn()
        return await asyncio.wrap_future(self._executor.submit(call_gc_paused, fn))

    def _read(self) -> tuple[_Generation, Callable[[], None]]:
        """One consistent view of the store (no await here): a generation, and its work to run off the loop —
        decoding the objects (the rejected ones that did not change are left out) before anything else."""
        texts: dict[str, list[str]] = {}
        revision = self.store.revision
        for kind in WATCHED_KINDS:
            texts[kind], _ = self.store.list_kind_json(kind)
        rejected = {k: r.resource_version for k, r in self.rejected.items()}
        nodes = sorted(self._nodes)
        gen = _Generation(self.generator, revision, [], [], {}, {n: self.cache.get_snapshot(n) for n in nodes})
        return gen, lambda: gen.decode(texts, rejected)

    def _forget_changed_rejections(self, gen: _Generation) -> None:
        """A rejected object that changed or went away is forgotten (and so tried again if it is still there)."""
        for key in [k for k, r in self.rejected.items() if gen.stored.get(k) != r.resource_version]:
            del self.rejected[key]

    async def _build_view(self) -> bool:
        gen, decode = self._read()

        def work() -> bool:
            decode()
            return gen.build_view()

        built = await self._in_worker(work)
        self._forget_changed_rejections(gen)
        return self._apply_view(gen, built)

    def _apply_view(self, gen: _Generation, built: bool) -> bool:
        for obj, error in gen.rejections:
            self._reject(obj, error)
        gen.rejections.clear()
        if not built:
            log.error("%s at revision %d; keeping the previous one", gen.error, gen.revision)
            return False
        self.view = gen.view
        return True

    async def push(self) -> None:
        """Rebuild the view and update every connected proxy's snapshot."""
        gen, decode = self._read()
        nodes = sorted(gen.previous)

        def work() -> tuple[bool, dict[str, _NodeOutcome]]:
            decode()
            if not gen.build_view():
                return False, {}
            return True, gen.update(nodes, nodes)

        built, outcomes = await self._in_worker(work)
        self._forget_changed_rejections(gen)
        self._apply(gen, built, outcomes)
        if built:
            self.pushes += 1

    async def _push_nodes(self, targets: list[str]) -> None:
        """Generate for newly connected proxies from the current view."""
        view = self.view
        if view is None:
            return
        nodes = sorted(self._nodes)
        gen = _Generation(self.generator, view.revision, view.base, view.config, view.pods,
                          {n: self.cache.get_snapshot(n) for n in nodes})
        gen.use_view(view)
        outcomes = await self._in_worker(lambda: gen.update(targets, nodes))
        self._apply(gen, True, outcomes)

    def _apply(self, gen: _Generation, built: bool, outcomes: dict[str, _NodeOutcome]) -> None:
        self._apply_view(gen, built)
        for node_id, outcome in outcomes.items():
            if node_id in self._nodes:  # it may have gone while the generation ran
                self._apply_node(node_id, outcome)

    def _apply_node(self, node_id: str, outcome: _NodeOutcome) -> None:
        if outcome.state == "gone":
            if self.cache.get_snapshot(node_id) is not None:
                log.info("forgetting %s: %s is gone", node_id, outcome.why)
                self.cache.clear_snapshot(node_id)
                self.forgotten.add(node_id)
            elif node_id not in self.forgotten:
                self._wait(node_id, f"{outcome.why} is not known yet")
            return
        self.forgotten.discard(node_id)
        if outcome.state == "wait":
            self._wait(node_id, outcome.why)
            return
        if outcome.state == "error":
            assert outcome.error is not None
            self._node_failed(node_id, outcome.error)
            return
        self.node_errors.pop(node_id, None)
        self._waiting_logged.discard(node_id)
        if outcome.state == "unchanged":
            return
        snapshot, previous = outcome.snapshot, self.cache.get_snapshot(node_id)
        assert snapshot is not None and outcome.resources is not None
        if previous is not outcome.previous:  # the node's snapshot changed meanwhile (it reconnected)
            snapshot = Snapshot.build(outcome.resources, previous)
            if previous is not None and not snapshot.changed_types(previous):
                return
        if outcome.problems:
            log.warning("snapshot for %s is inconsistent: %s", node_id, "; ".join(outcome.problems[:5]))
        self.cache.set_snapshot(node_id, snapshot)

    def _reject(self, obj: dict[str, Any], error: str) -> None:
        kind, ns, name = _key(obj)
        log.warning("%s %s/%s is left out of xDS pushes: %s", kind, ns, name, error)
        self.rejected[_key(obj)] = Rejection(obj, error, time.time())
        if self.on_rejected is not None:
            try:
                self.on_rejected(obj, error)
            except Exception:  # noqa: BLE001 - reporting must not break pushing
                log.exception("reporting the rejection of %s %s/%s failed", kind, ns, name)

    def _node_failed(self, node_id: str, e: BaseException) -> None:
        error = _error_text(e)
        if self.node_errors.get(node_id) != error:  # the traceback once: it is most likely a translation bug
            log.error("generating xDS for %s failed; it keeps its previous config: %s", node_id, error, exc_info=e)
        self.node_errors[node_id] = error

    def _wait(self, node_id: str, why: str) -> None:
        if node_id not in self._waiting_logged:
            self._waiting_logged.add(node_id)
            log.info("not configuring %s yet: %s", node_id, why)
