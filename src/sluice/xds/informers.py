"""The pusher's live copy of every kind the translation reads, kept current by the store's watch events.

Like `sluice.kube.informer` (list, then watch from the list's revision; relist when the store drops a slow
watcher), for many kinds at once and with two things a push needs: `drain()` applies every event the store has
already queued, synchronously, so that right after it the copy equals the store at its current revision (the
store fans events out synchronously after each commit): one consistent view per push with no re-read; and it
records what changed since the last `take()` (each object as it was before and is now), so a push can work
out which proxies the changes affect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from sluice.aio import cancel_and_wait
from sluice.resources.kinds import KINDS
from sluice.store import Event, Store, Watcher

__all__ = ["ConfigInformers", "Change", "ObjectKey"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ObjectKey = tuple[str, str, str]  # (kind, namespace, name)
Change = tuple[Obj | None, Obj | None]  # (before, after); None: absent
_TYPES = {rt.key: rt for rt in KINDS}


def _typed(kind: str, obj: Obj) -> Obj:
    """The object with its apiVersion and kind (stored objects may lack them); copied only when it does."""
    rt = _TYPES.get(kind)
    if rt is None or (obj.get("kind") and obj.get("apiVersion")):
        return obj
    return {"apiVersion": rt.api_version(), "kind": rt.kind, **obj}


class ConfigInformers:
    """Objects of `kinds` by (namespace, name), current after `drain()`. `on_event` is called for every event
    (the pusher marks itself dirty)."""

    def __init__(self, store: Store, kinds: Iterable[str], on_event: Callable[[], None]) -> None:
        self.store = store
        self.kinds = tuple(kinds)
        self.objects: dict[str, dict[tuple[str, str], Obj]] = {k: {} for k in self.kinds}
        self._on_event = on_event
        self._watchers: dict[str, Watcher] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._changes: dict[ObjectKey, Change] = {}
        self._relisted = True  # nothing is known yet: the first take() reports everything

    def start(self) -> None:
        """List every kind and watch from there (synchronously: no event falls between the two)."""
        for kind in self.kinds:
            self._list(kind)
            self._tasks.append(asyncio.create_task(self._run(kind), name=f"xds-informer-{kind}"))

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        for w in self._watchers.values():
            self.store.unwatch(w)
        self._watchers.clear()

    @property
    def queued(self) -> bool:
        """Events the store has queued that are not applied yet."""
        return any(not w.queue.empty() for w in self._watchers.values())

    def drain(self) -> None:
        """Apply every queued event now."""
        for kind in self.kinds:
            w = self._watchers.get(kind)
            while w is not None and not w.queue.empty():
                ev = w.queue.get_nowait()
                if ev is None:
                    self._list(kind)
                    break
                self._apply(ev)

    def take(self) -> tuple[dict[str, list[Obj]], list[Change], bool]:
        """The objects of every kind (lists the caller owns; the objects are shared and read-only), the changes
        since the last take, and whether a relist happened meanwhile (then the changes are not all known)."""
        objects = {k: list(v.values()) for k, v in self.objects.items()}
        changes = [c for c in self._changes.values() if c[0] is not c[1]]
        relisted = self._relisted
        self._changes.clear()
        self._relisted = False
        return objects, changes, relisted

    # ------------------------------------------------------------------ internals
    def _list(self, kind: str) -> None:
        old = self._watchers.pop(kind, None)
        if old is not None:
            self.store.unwatch(old)
            with contextlib.suppress(asyncio.QueueFull):
                old.queue.put_nowait(None)  # wakes the task still waiting on it (it moves to the new watcher)
        items, _ = self.store.list_kind(kind)
        self._watchers[kind] = self.store.watch(kind, None, None)[0]
        self.objects[kind] = {_key(o): _typed(kind, o) for o in items}
        self._relisted = True

    async def _run(self, kind: str) -> None:
        while True:
            w = self._watchers[kind]
            ev = await w.queue.get()
            if w is not self._watchers.get(kind):
                continue  # relisted by drain() meanwhile: this watcher is gone
            if ev is None:
                log.info("the store dropped the xDS watch on %s: listing it again", kind)
                try:
                    self._list(kind)
                except Exception as e:  # noqa: BLE001 - the store is closing: nothing left to watch
                    log.info("not watching %s any more: %s", kind, e)
                    return
            else:
                self._apply(ev)
            self._on_event()

    def _apply(self, ev: Event) -> None:
        kind = ev.kind
        cache = self.objects[kind]
        key = (ev.namespace, ev.name)
        before = cache.get(key)
        if ev.type == "DELETED":
            cache.pop(key, None)
            after = None
        else:
            after = cache[key] = _typed(kind, ev.object)
        ck = (kind, ev.namespace, ev.name)
        first = self._changes.get(ck)
        self._changes[ck] = (first[0] if first is not None else before, after)


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")
