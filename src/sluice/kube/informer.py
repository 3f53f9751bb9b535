"""A small informer: keeps a live cache of one kind from the store and calls a handler on every change.

Used by the controllers (and anything else in the daemon that reacts to stored objects). It lists, then
watches from the list's revision, so no change is missed; if the store drops a slow watcher it relists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sluice.aio import cancel_and_wait
from sluice.objects import Obj
from sluice.store import Event, Expired, Store

__all__ = ["Informer", "Handler"]

log = logging.getLogger("sluice.controllers")

Handler = Callable[[str, Obj, Obj | None], None]  # (event type, object, previous object or None)


class Informer:
    def __init__(self, store: Store, kind: str, handler: Handler | None = None) -> None:
        self.store = store
        self.kind = kind
        self.handlers: list[Handler] = [handler] if handler else []
        self.cache: dict[tuple[str, str], Obj] = {}
        self.synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"informer-{self.kind}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    def get(self, namespace: str, name: str) -> Obj | None:
        return self.cache.get((namespace, name))

    def list(self, namespace: str | None = None) -> list[Obj]:
        return [o for (ns, _), o in sorted(self.cache.items()) if namespace is None or ns == namespace]

    def remember(self, obj: Obj) -> None:
        """Write-through after the controller's own write, so its next reconcile sees what it just did even
        before the watch event arrives (events older than the cached object are then skipped)."""
        m = obj["metadata"]
        self.cache[(m.get("namespace") or "", m["name"])] = obj

    def forget(self, namespace: str, name: str) -> None:
        self.cache.pop((namespace, name), None)

    def _emit(self, typ: str, obj: Obj, prev: Obj | None) -> None:
        for h in self.handlers:
            try:
                h(typ, obj, prev)
            except Exception:  # a handler bug must not stop the informer
                log.exception("handler for %s failed", self.kind)

    async def _run(self) -> None:
        while True:
            items, rv = self.store.list_kind(self.kind)
            fresh = {(o["metadata"].get("namespace") or "", o["metadata"]["name"]): o for o in items}
            for key, old in list(self.cache.items()):
                if key not in fresh:
                    del self.cache[key]
                    self._emit("DELETED", old, old)
            for key, obj in fresh.items():
                prev = self.cache.get(key)
                self.cache[key] = obj
                if prev is None:
                    self._emit("ADDED", obj, None)
                elif prev["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                    self._emit("MODIFIED", obj, prev)
            self.synced.set()
            try:
                watcher, history = self.store.watch(self.kind, None, rv)
            except Expired:
                continue
            try:
                for ev in history:
                    self._apply(ev)
                while True:
                    ev_or_none = await watcher.queue.get()
                    if ev_or_none is None:
                        break  # dropped for falling behind: relist
                    self._apply(ev_or_none)
            finally:
                self.store.unwatch(watcher)

    def _apply(self, ev: Event) -> None:
        key = (ev.namespace, ev.name)
        prev = self.cache.get(key)
        if ev.type == "DELETED":
            self.cache.pop(key, None)
            self._emit("DELETED", ev.object, prev)
        else:
            if prev is not None and _rv(prev) > _rv(ev.object):
                return  # already remembered a newer version written by this process
            self.cache[key] = ev.object
            self._emit("ADDED" if prev is None else "MODIFIED", ev.object, prev)


def _rv(obj: Obj) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0
