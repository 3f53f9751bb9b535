"""What the store hands out and raises, whatever keeps the objects: watch events, watchers, errors."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sluice.objects import Obj

__all__ = ["Event", "Watcher", "StoreError", "AlreadyExists", "NotFound", "Conflict", "Expired", "StorageFull",
           "WATCH_QUEUE"]

WATCH_QUEUE = 10000  # events a watcher may fall behind by before the store drops it


class StoreError(Exception):
    pass


class AlreadyExists(StoreError):
    pass


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    pass


class StorageFull(StoreError):
    """A write found no room on the disk (SQLite's SQLITE_FULL): it was rolled back and nothing changed. Later
    writes succeed once space is freed; reads keep working meanwhile."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"the disk holding {path} is full ({detail})")
        self.path = path
        self.detail = detail


class Expired(StoreError):
    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


@dataclass(frozen=True)
class Event:
    type: str  # ADDED | MODIFIED | DELETED
    kind: str
    namespace: str
    name: str
    rv: int
    object: Obj
    prev: Obj | None = None  # the object before a MODIFIED (live events only), for selector transitions


@dataclass
class Watcher:
    """One watch: a bounded queue fed after each commit. `None` in the queue means the store dropped it."""

    kind: str
    namespace: str | None
    queue: asyncio.Queue[Event | None] = field(default_factory=lambda: asyncio.Queue(WATCH_QUEUE))
    closed: bool = False

    def wants(self, ev: Event) -> bool:
        return ev.kind == self.kind and (self.namespace is None or ev.namespace == self.namespace)
