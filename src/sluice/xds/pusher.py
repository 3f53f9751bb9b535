"""The pusher: store watch events → per-proxy snapshots in the cache.

Run by `XdsServer` (`sluice.xds.server`). The pusher keeps a live copy of every kind the translation reads,
current with the store's watch events (`sluice.xds.informers`); a push takes that copy after applying every
queued event (one consistent view at the store's revision, no re-read), builds one push context, works out
which proxies and which of their xDS types the changes since the last push can affect (Istio's
`ProxyNeedsPush`/`ConfigsUpdated`: `sluice.xds.translate.scope`; whatever it cannot place goes to everyone),
generates those and publishes them as snapshots. There is no fixed wait: the first change is pushed at once,
and the changes that arrive while a push runs are folded into the next one. The building and generating run in
a worker thread, never on the event loop: a large config takes seconds to translate, and the loop serves the
API, xDS and ALS meanwhile (issue 9). Pushes run one at a time, in order, and their results are published on
the loop, so a newer config is never overtaken by an older one; within a push the worker hands the snapshots
over in growing chunks as it makes them, so the first sidecars apply their config while the others' is generated. The cache bumps a type's
version only when that proxy's content of that type changed, so a change reaches only the proxies it
affects, and an endpoint-only change moves EDS alone. The translation is reached through the small
`ConfigGenerator` protocol; `TranslateGenerator` adapts `sluice.xds.translate` to it. Work the same for many
proxies is done once: the translation memoises per push what a namespace (and label set) shares, and parsed
resources by content across pushes; the cache packs and serialises a shared resource once.

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
import logging
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from sluice import mesh
from sluice.aio import cancel_and_wait
from sluice.offloop import call_gc_paused
from sluice.store import Store
from sluice.xds.cache import ADS_ORDER, Resources, Snapshot, SnapshotCache
from sluice.xds.informers import Change, ConfigInformers
from sluice.xds.isolation import Isolator, builder, error_text, isolate

if TYPE_CHECKING:  # the translation loads on first use (`TranslateGenerator`), not with the server layer
    from sluice.xds.translate import MeshOptions, Proxy, PushContext
    from sluice.xds.translate.scope import PushScope

__all__ = ["WATCHED_KINDS", "CONFIG_KINDS", "ConfigGenerator", "TranslateGenerator", "Pusher", "View", "Rejection"]

log = logging.getLogger(__name__)

# Everything the translation reads. Pods are included because subsets select pods by labels and a
# proxy's own identity (labels, ports) comes from its Pod; ConfigMaps for the mesh config (istio-system/istio);
# Secrets because a gateway's HTTPS servers carry their credentials (a changed Secret re-pushes the gateway).
WATCHED_KINDS: tuple[str, ...] = (
    "namespaces", "services", "endpoints", "pods", "configmaps", "secrets",
    "virtualservices.networking.istio.io", "destinationrules.networking.istio.io",
    "gateways.networking.istio.io", "serviceentries.networking.istio.io", "sidecars.networking.istio.io",
)
# The Istio config a push can do without: one of these that breaks the translation is left out, not the push.
CONFIG_KINDS = frozenset({"VirtualService", "DestinationRule", "Gateway", "ServiceEntry", "Sidecar"})

ObjectKey = tuple[str, str, str]  # (kind, namespace, name)
# A push publishes its first few proxies' snapshots at once, then chunks twice as large (up to the last): the
# sidecars that have theirs apply it while the others are generated, at one wake-up of the loop per chunk.
_FIRST_CHUNK, _MAX_CHUNK = 4, 64
_T = TypeVar("_T")


def _key(obj: dict[str, Any]) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _rv(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


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


class ScopedGenerator(ConfigGenerator, Protocol):
    """A generator that can also say which proxies a change affects, and generate some types only. Without
    these the pusher generates every type of every proxy on every push (the cache still versions by content)."""

    def affected(self, changes: list[Change], before: PushContext | None, after: PushContext) -> PushScope:
        ...

    def generate_types(self, proxy: Proxy, push: PushContext, types: Collection[str]) -> Resources:
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

    def generate_types(self, proxy: Proxy, push: PushContext, types: Collection[str]) -> Resources:
        from sluice.xds import translate

        return translate.generate(proxy, push, types)

    def affected(self, changes: list[Change], before: PushContext | None, after: PushContext) -> PushScope:
        from sluice.xds.translate import scope

        return scope.affected(changes, before, after)


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
        self.stored: dict[ObjectKey, str] = {}  # resourceVersion of every stored Istio config object (`load`)
        # (namespace, pod) → (the Pod object, its proxy): kept across pushes by the pusher; an informer's object
        # is replaced, never changed, when the pod changes, so the same object means the same proxy.
        self.proxies: dict[tuple[str, str], tuple[dict[str, Any], Any]] = {}
        self.shared_types: dict[int, Any] = {}  # this push's packing of shared resources (`Snapshot.build`)
        self.isolator: Isolator | None = None  # where a culprit search runs (None: in this thread)
        self.published: dict[str, _NodeOutcome] = {}  # outcomes handed over while `update` ran

    def load(self, objects: dict[str, list[dict[str, Any]]], rejected: dict[ObjectKey, str]) -> None:
        """Fill base, config and pods from the objects of every watched kind, leaving out the `rejected`
        objects (key → the resourceVersion rejected) that did not change since."""
        for kind in WATCHED_KINDS:
            for obj in objects.get(kind, ()):
                if obj.get("kind") in CONFIG_KINDS:
                    self.stored[_key(obj)] = _rv(obj)
                    if rejected.get(_key(obj)) != _rv(obj):
                        self.config.append(obj)
                else:
                    self.base.append(obj)
                if kind == "pods":
                    meta = obj.get("metadata") or {}
                    self.pods[(str(meta.get("namespace") or ""), str(meta.get("name") or ""))] = obj
        for gone in [k for k in self.proxies if k not in self.pods]:
            del self.proxies[gone]

    # ------------------------------------------------------------------ the view
    def build_view(self) -> bool:
        version = str(self.revision)
        try:
            push = self.generator.push_context(self.base + self.config, version)
        except Exception as e:  # noqa: BLE001 - bad config must not take the control plane down
            if self._isolate(self.config, None) is None:
                self.error = f"building the push context failed even without Istio config: {error_text(e)}"
                return False
            try:
                push = self.generator.push_context(self.base + self.config, version)
            except Exception as e2:  # noqa: BLE001 - only if the generator is not deterministic
                self.error = f"building the push context failed: {error_text(e2)}"
                return False
        self.view = View(self.revision, push, self.pods, self.base, list(self.config))
        return True

    def use_view(self, view: View) -> None:
        self.view = view
        self.base, self.config, self.pods = view.base, list(view.config), view.pods

    def _isolate(self, config: list[dict[str, Any]], proxy: Proxy | None) -> list[dict[str, Any]] | None:
        """The config objects that build together with the base objects (the push context, and `proxy`'s
        resources unless None), recording the others as rejections and dropping them from `self.config`; None
        when the base objects alone do not build (the failure is not the Istio config's). The search runs in
        the isolator's worker process (`sluice.xds.isolation`)."""
        version = str(self.revision)
        if self.isolator is not None:
            found = self.isolator.run(self.generator, proxy, version, self.base, config)
        else:
            found = isolate(self.base, config, builder(self.generator, proxy, version))
        if found is None:
            return None
        good, bad = found
        for i, why in bad:
            log.debug("translating %s failed: %s", _key(config[i]), why)
        self.rejections.extend((config[i], why) for i, why in bad)
        rejected = {_key(config[i]) for i, _ in bad}
        self.config = [o for o in self.config if _key(o) not in rejected]
        return [config[i] for i in good]

    # ------------------------------------------------------------------ the nodes
    def update(self, targets: list[str] | dict[str, Collection[str]], everyone: list[str],
               publish: Callable[[dict[str, _NodeOutcome]], None] | None = None) -> dict[str, _NodeOutcome]:
        """The outcome of every node in `targets` (with the types to generate for each, every type for a list);
        of every node in `everyone`, every type, when a node's generation found bad config (the view changed
        without it, so the nodes generated before it must be generated again).

        With `publish`, outcomes are also handed to it in growing chunks as they are made, so the first proxies
        apply their config while the rest is generated; the outcomes it got are in `self.published`. Once a
        node's generation finds bad config it gets nothing more: the outcomes from then on (everyone's again,
        without that config) come in the result only."""
        out: dict[str, _NodeOutcome] = {}
        nodes = targets if isinstance(targets, dict) else dict.fromkeys(targets, ADS_ORDER)
        chunk: dict[str, _NodeOutcome] = {}
        size = _FIRST_CHUNK
        for _ in range(2):
            rejections = len(self.rejections)
            for node_id, types in nodes.items():
                outcome = out[node_id] = self._node(node_id, types)
                if publish is None:
                    continue
                if len(self.rejections) != rejections:
                    publish = None  # this one and the ones after it come in the result
                    continue
                chunk[node_id] = outcome
                if len(chunk) >= size:
                    self.published.update(chunk)
                    publish(chunk)
                    chunk, size = {}, min(2 * size, _MAX_CHUNK)
            if len(self.rejections) == rejections:
                break
            nodes = dict.fromkeys(everyone, ADS_ORDER)
        if publish is not None and chunk:
            self.published.update(chunk)
            publish(chunk)
        return out

    def scoped(self, changes: list[Change], before: View | None, nodes: list[str],
               forced: set[str]) -> dict[str, Collection[str]]:
        """The nodes `changes` can affect, with the types to generate for each; every node in `forced` (no
        snapshot yet, or a failed one) and, when the generator cannot tell, every node: every type."""
        assert self.view is not None
        affected = getattr(self.generator, "affected", None)
        if affected is None or before is None:
            return dict.fromkeys(nodes, ADS_ORDER)
        try:
            scope = cast("ScopedGenerator", self.generator).affected(changes, before.push, self.view.push)
        except Exception:  # noqa: BLE001 - when in doubt, push to everyone
            log.exception("working out which proxies a change affects failed; pushing to all")
            return dict.fromkeys(nodes, ADS_ORDER)
        out: dict[str, Collection[str]] = {}
        for node_id in nodes:
            parsed = mesh.parse_node_id(node_id)
            if node_id in forced or parsed is None:
                out[node_id] = ADS_ORDER
                continue
            proxy_type, _, pod, namespace = parsed
            types = scope.types_for(proxy_type, namespace, pod)
            if types:
                out[node_id] = types
        return out

    def _node(self, node_id: str, types: Collection[str] = ADS_ORDER) -> _NodeOutcome:
        parsed = mesh.parse_node_id(node_id)
        if parsed is None:
            return _NodeOutcome("wait", why="its node id is not <type>~<ip>~<pod>.<namespace>~<domain>")
        _, _, pod_name, namespace = parsed
        pod = self.pods.get((namespace, pod_name))
        if pod is None:
            return _NodeOutcome("gone", why=f"pod {pod_name}.{namespace}")
        known = self.proxies.get((namespace, pod_name))
        if known is not None and known[0] is pod:
            proxy = known[1]
        else:
            try:
                proxy = self.generator.proxy(pod)
            except Exception as e:  # noqa: BLE001 - one proxy's failure must not stop the others
                return _NodeOutcome("error", error=e)
            self.proxies[(namespace, pod_name)] = (pod, proxy)
        if proxy is None:
            return _NodeOutcome("wait", why=f"pod {pod_name}.{namespace} runs no proxy (yet)")
        previous = self.previous.get(node_id)
        if previous is None:
            types = ADS_ORDER
        resources, error = self._generate(proxy, types)
        if resources is None:
            return _NodeOutcome("error", error=error)
        snapshot = Snapshot.build(resources, previous, only=None if types is ADS_ORDER else types,
                                  shared=self.shared_types)
        if previous is not None and not snapshot.changed_types(previous):
            return _NodeOutcome("unchanged", previous=previous)
        return _NodeOutcome("snapshot", snapshot, resources, previous, problems=tuple(snapshot.consistent()))

    def _generate(self, proxy: Proxy, types: Collection[str] = ADS_ORDER
                  ) -> tuple[Resources | None, BaseException | None]:
        """The proxy's resources (of `types`, if the generator can do some only); on failure, the config objects
        responsible are rejected and the view rebuilt without them. (None, the error) when the proxy cannot be
        configured at all."""
        view = self.view
        assert view is not None
        try:
            if types is not ADS_ORDER and hasattr(self.generator, "generate_types"):
                return cast("ScopedGenerator", self.generator).generate_types(proxy, view.push, types), None
            return self.generator.generate(proxy, view.push), None
        except Exception as e:  # noqa: BLE001 - one proxy's failure must not stop the others
            first: BaseException = e

        before = len(self.rejections)
        if self._isolate(view.config, proxy) is not None and len(self.rejections) > before \
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

    def __init__(self, store: Store, cache: SnapshotCache, generator: ConfigGenerator, *, debounce: float = 0.0,
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
        # Told each new view's push context (on the event loop): the daemon reads the mesh config from it.
        self.on_view: Callable[[PushContext], None] | None = None
        self._nodes: set[str] = set()
        self._new_nodes: set[str] = set()  # connected, waiting for their first generation
        self._waiting_logged: set[str] = set()
        self._first_event: float | None = None
        self._last_event = 0.0
        self._pushing = False
        self._wake = asyncio.Event()
        self.informers = ConfigInformers(store, WATCHED_KINDS, self._mark_dirty)
        self._everything = False  # the next push goes to every proxy (an earlier one failed)
        self._proxies: dict[tuple[str, str], tuple[dict[str, Any], Any]] = {}  # see `_Generation.proxies`
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self.isolator = Isolator()  # culprit searches, in a worker process started on the first one

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="xds-push")
        self.informers.start()
        await self._build_view()
        self._tasks.append(asyncio.create_task(self._loop(), name="xds-pusher"))

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        await self.informers.stop()
        if self._executor is not None:
            # A generation still running finishes in its thread; nothing reads its result.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        await asyncio.to_thread(self.isolator.close)

    @property
    def idle(self) -> bool:
        """No store change or new proxy is waiting to be pushed and no push is running."""
        # Events already queued by the store but not yet read count as waiting changes.
        return self._first_event is None and not self._new_nodes and not self._pushing \
            and not self.informers.queued

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

    # ------------------------------------------------------------------ store watch (+ an optional debounce)
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
                    # No wait by default (the first change goes at once; the ones arriving meanwhile fold into
                    # the next push). With a `debounce`: wait for a quiet period of that, but never longer than
                    # `max_delay` after the first change (istiod's rule).
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

    def _read(self) -> tuple[_Generation, list[Change], bool, Callable[[], None]]:
        """One consistent view of the store (no await here): every queued watch event applied, so the informers
        hold the store at its current revision. A generation, the changes since the last read, whether they
        are all known (False after a relist or a failed push), and the work to run off the loop first —
        sorting the objects (the rejected ones that did not change are left out)."""
        self.informers.drain()
        revision = self.store.revision
        objects, changes, relisted = self.informers.take()
        known = not relisted and not self._everything
        self._everything = False
        rejected = {k: r.resource_version for k, r in self.rejected.items()}
        nodes = sorted(self._nodes)
        gen = _Generation(self.generator, revision, [], [], {}, {n: self.cache.get_snapshot(n) for n in nodes})
        gen.proxies = self._proxies
        gen.isolator = self.isolator
        return gen, changes, known, lambda: gen.load(objects, rejected)

    def _forget_changed_rejections(self, gen: _Generation) -> None:
        """A rejected object that changed or went away is forgotten (and so tried again if it is still there)."""
        for key in [k for k, r in self.rejected.items() if gen.stored.get(k) != r.resource_version]:
            del self.rejected[key]

    async def _build_view(self) -> bool:
        gen, _, _, decode = self._read()

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
        if self.on_view is not None and self.view is not None:
            try:
                self.on_view(self.view.push)
            except Exception:
                log.exception("a view hook failed")
        return True

    async def push(self) -> None:
        """Rebuild the view from the informers and update the snapshots of the proxies the changes since the
        last push affect (every connected proxy when that is not known)."""
        gen, changes, known, decode = self._read()
        nodes = sorted(gen.previous)
        before = self.view if known else None
        # Proxies without a snapshot, or whose last generation failed, are tried again in full.
        forced = {n for n in nodes if gen.previous[n] is None or n in self.node_errors}

        loop = asyncio.get_running_loop()

        def publish(chunk: dict[str, _NodeOutcome]) -> None:  # in the worker
            loop.call_soon_threadsafe(self._apply_nodes, chunk)

        def work() -> tuple[bool, dict[str, _NodeOutcome]]:
            decode()
            if not gen.build_view():
                return False, {}
            # Run in place (no worker: tests), the chunks would be applied after the push's result: none then.
            return True, gen.update(gen.scoped(changes, before, nodes, forced), nodes,
                                    publish if self._executor is not None else None)

        try:
            built, outcomes = await self._in_worker(work)
        except BaseException:
            self._everything = True  # these changes were not pushed: the next push goes to everyone
            raise
        self._forget_changed_rejections(gen)
        # The chunks published meanwhile were applied first (the loop runs callbacks in order, and the worker's
        # result comes after its last chunk).
        self._apply(gen, built, {n: o for n, o in outcomes.items() if gen.published.get(n) is not o})
        if built:
            self.pushes += 1
        else:
            self._everything = True

    async def _push_nodes(self, targets: list[str]) -> None:
        """Generate for newly connected proxies from the current view."""
        view = self.view
        if view is None:
            return
        nodes = sorted(self._nodes)
        gen = _Generation(self.generator, view.revision, view.base, view.config, view.pods,
                          {n: self.cache.get_snapshot(n) for n in nodes})
        gen.use_view(view)
        gen.proxies = self._proxies
        gen.isolator = self.isolator
        outcomes = await self._in_worker(lambda: gen.update(targets, nodes))
        self._apply(gen, True, outcomes)

    def _apply(self, gen: _Generation, built: bool, outcomes: dict[str, _NodeOutcome]) -> None:
        self._apply_view(gen, built)
        self._apply_nodes(outcomes)

    def _apply_nodes(self, outcomes: dict[str, _NodeOutcome]) -> None:
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
        error = error_text(e)
        if self.node_errors.get(node_id) != error:  # the traceback once: it is most likely a translation bug
            log.error("generating xDS for %s failed; it keeps its previous config: %s", node_id, error, exc_info=e)
        self.node_errors[node_id] = error

    def _wait(self, node_id: str, why: str) -> None:
        if node_id not in self._waiting_logged:
            self._waiting_logged.add(node_id)
            log.info("not configuring %s yet: %s", node_id, why)
