"""Object storage with one global revision and watch fan-out.

`Store` is what the layers above need of it (read, write, watch); `sluice.store.sqlite.Store` is the
implementation the daemon opens. Only the API registry, which runs multi-object transactions, and the daemon,
which opens the database, use the SQLite class itself.
"""

from __future__ import annotations

from typing import Protocol

from sluice.objects import Obj
from sluice.store.model import (
    AlreadyExists,
    Conflict,
    Event,
    Expired,
    NotFound,
    StorageFull,
    StoreError,
    Watcher,
)

__all__ = ["Store", "Event", "Watcher", "StoreError", "AlreadyExists", "NotFound", "Conflict", "Expired",
           "StorageFull"]


class Store(Protocol):
    @property
    def revision(self) -> int: ...

    def get(self, kind: str, namespace: str, name: str) -> Obj | None: ...

    def list_kind(self, kind: str, namespace: str | None = None) -> tuple[list[Obj], int]: ...

    def list_kind_json(self, kind: str) -> tuple[list[str], int]: ...

    def count(self, kind: str, namespace: str | None = None) -> int: ...

    def create(self, kind: str, obj: Obj) -> Obj: ...

    def update(self, kind: str, obj: Obj, expected_rv: int | None = None) -> Obj: ...

    def delete(self, kind: str, namespace: str, name: str, expected_rv: int | None = None) -> Obj: ...

    def watch(self, kind: str, namespace: str | None, since: int | None) -> tuple[Watcher, list[Event]]: ...

    def unwatch(self, w: Watcher) -> None: ...

    def close(self) -> None: ...
