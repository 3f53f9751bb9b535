"""The SQLite store: objects keyed by (kind, namespace, name), one global revision, watch history.

Called by the API server (`sluice.api.registry`) for every read and write. The store knows nothing of
Kubernetes semantics beyond `metadata.resourceVersion`, which it stamps with the revision of the write
inside the same transaction. Every commit is durable (WAL + synchronous=FULL) before the call returns,
so an acknowledged write survives `kill -9`. Watchers are fed after the commit, in revision order.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

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

__all__ = ["Store", "PRESTAMPED", "Event", "Watcher", "StoreError", "AlreadyExists", "NotFound", "Conflict", "Expired",
           "StorageFull"]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
  kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
  rv INTEGER NOT NULL, data TEXT NOT NULL,
  PRIMARY KEY (kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS events (
  rv INTEGER PRIMARY KEY, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
  type TEXT NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_kind ON events (kind, rv);
"""

# An object encoded elsewhere as compact JSON with `metadata` first and no resourceVersion in it starts so;
# the store puts the revision in right after it.
PRESTAMPED = '{"metadata":{'

# Watch history kept for resuming watches; older resourceVersions get 410 Expired.
HISTORY_EVENTS = 20000


def _rv_of(obj: Obj) -> int:
    return int(obj["metadata"]["resourceVersion"])


class Store:
    def __init__(self, path: Path | str, history: int = HISTORY_EVENTS) -> None:
        self._history_size = history
        self.path = str(path)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('revision', 1)")
        self._watchers: list[Watcher] = []
        self._revision = int(self._db.execute("SELECT value FROM meta WHERE key='revision'").fetchone()[0])

    def close(self) -> None:
        for w in self._watchers:
            self._drop(w)
        self._db.close()

    # ------------------------------------------------------------------ reads
    @property
    def revision(self) -> int:
        return self._revision

    def oldest_resumable(self) -> int:
        """The smallest resourceVersion a watch can resume from."""
        row = self._db.execute("SELECT MIN(rv) FROM events").fetchone()
        return (int(row[0]) - 1) if row and row[0] is not None else self._revision

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        row = self._db.execute(
            "SELECT data FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def get_json(self, kind: str, namespace: str, name: str) -> tuple[int, str] | None:
        """`get` as (resourceVersion, the stored JSON text), for a caller that decodes it elsewhere (the API
        server's body worker process: parsing and re-encoding a large object takes the event loop long)."""
        row = self._db.execute(
            "SELECT rv, data FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name)
        ).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def list_kind(self, kind: str, namespace: str | None = None) -> tuple[list[Obj], int]:
        """All objects of a kind (in one namespace, or all), ordered by namespace and name."""
        if namespace is None:
            rows = self._db.execute(
                "SELECT data FROM objects WHERE kind=? ORDER BY namespace, name", (kind,)
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT data FROM objects WHERE kind=? AND namespace=? ORDER BY name", (kind, namespace)
            ).fetchall()
        return [json.loads(r[0]) for r in rows], self._revision

    def list_kind_json(self, kind: str) -> tuple[list[str], int]:
        """`list_kind` of all namespaces as the stored JSON texts, for a caller that decodes them elsewhere (the
        xDS pusher, in its worker thread: decoding a large config takes the event loop long)."""
        rows = self._db.execute("SELECT data FROM objects WHERE kind=? ORDER BY namespace, name", (kind,)).fetchall()
        return [str(r[0]) for r in rows], self._revision

    def count(self, kind: str, namespace: str | None = None) -> int:
        q = "SELECT COUNT(*) FROM objects WHERE kind=?" + (" AND namespace=?" if namespace is not None else "")
        args: tuple[str, ...] = (kind,) if namespace is None else (kind, namespace)
        return int(self._db.execute(q, args).fetchone()[0])

    # ------------------------------------------------------------------ writes
    def create(self, kind: str, obj: Obj, encoded: str | None = None) -> Obj:
        """`encoded`: `obj` already encoded as a template (`PRESTAMPED`), stored with the revision put in
        instead of encoding `obj` again (the API server's large bodies, encoded in its worker process)."""
        ns, name = _key(obj)
        return self.transaction(lambda tx: tx.create(kind, ns, name, obj, encoded))[0]

    def update(self, kind: str, obj: Obj, expected_rv: int | None = None, encoded: str | None = None) -> Obj:
        ns, name = _key(obj)
        return self.transaction(lambda tx: tx.update(kind, ns, name, obj, expected_rv, encoded))[0]

    def delete(self, kind: str, namespace: str, name: str, expected_rv: int | None = None) -> Obj:
        return self.transaction(lambda tx: tx.delete(kind, namespace, name, expected_rv))[0]

    def transaction(self, body: Callable[[Tx], Obj | list[Obj]]) -> list[Obj]:
        """Run several writes atomically (e.g. a namespace and everything in it). The body raises to abort."""
        tx = Tx(self._db, self._revision)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            result = body(tx)
            if tx.events:
                self._db.execute("UPDATE meta SET value=? WHERE key='revision'", (tx.revision,))
                self._trim_history(tx.revision)
            self._db.execute("COMMIT")
        except BaseException as e:
            # On SQLITE_FULL (and other I/O errors) SQLite may already have rolled back by itself; a second
            # ROLLBACK would fail with "cannot rollback - no transaction is active" and hide the cause.
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error) and getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                raise StorageFull(self.path, str(e)) from e
            raise
        self._revision = tx.revision
        self._fan_out(tx.events)
        return result if isinstance(result, list) else [result]

    def _trim_history(self, revision: int) -> None:
        self._db.execute("DELETE FROM events WHERE rv <= ?", (revision - self._history_size,))

    # ------------------------------------------------------------------ watch
    def watch(self, kind: str, namespace: str | None, since: int | None) -> tuple[Watcher, list[Event]]:
        """Register a watcher. With `since`, also return the recorded events after that revision
        (raises Expired if history no longer reaches back that far). Live events follow in the queue."""
        history: list[Event] = []
        if since is not None and since < self._revision:
            oldest = self.oldest_resumable()
            if since < oldest:
                raise Expired(since, oldest)
            history = list(self._history(kind, namespace, since))
        w = Watcher(kind, namespace)
        self._watchers.append(w)
        return w, history

    def unwatch(self, w: Watcher) -> None:
        if w in self._watchers:
            self._watchers.remove(w)
        w.closed = True

    def _history(self, kind: str, namespace: str | None, since: int) -> Iterator[Event]:
        rows = self._db.execute(
            "SELECT rv, namespace, name, type, data FROM events WHERE kind=? AND rv>? ORDER BY rv", (kind, since)
        )
        for rv, ns, name, typ, data in rows:
            if namespace is None or ns == namespace:
                yield Event(typ, kind, ns, name, int(rv), json.loads(data))

    def _fan_out(self, events: Iterable[Event]) -> None:
        for ev in events:
            for w in list(self._watchers):
                if w.wants(ev):
                    try:
                        w.queue.put_nowait(ev)
                    except asyncio.QueueFull:
                        # A consumer this far behind is dropped; its client re-watches from its last version.
                        self._drop(w)

    def _drop(self, w: Watcher) -> None:
        self.unwatch(w)
        while not w.queue.empty():
            w.queue.get_nowait()
        w.queue.put_nowait(None)


class Tx:
    """Writes inside one transaction; each write gets the next revision."""

    def __init__(self, db: sqlite3.Connection, revision: int) -> None:
        self._db = db
        self.revision = revision
        self.events: list[Event] = []

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        row = self._db.execute(
            "SELECT data FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def list_kind(self, kind: str, namespace: str | None = None) -> list[Obj]:
        if namespace is None:
            rows = self._db.execute("SELECT data FROM objects WHERE kind=?", (kind,)).fetchall()
        else:
            rows = self._db.execute(
                "SELECT data FROM objects WHERE kind=? AND namespace=?", (kind, namespace)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def kinds_in_namespace(self, namespace: str) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT kind FROM objects WHERE namespace=?", (namespace,))]

    def _stamp(self, obj: Obj, encoded: str | None = None) -> tuple[int, str]:
        self.revision += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.revision)
        if encoded is not None and encoded.startswith(PRESTAMPED) and not encoded.startswith(PRESTAMPED + "}"):
            return self.revision, f'{PRESTAMPED}"resourceVersion":"{self.revision}",{encoded[len(PRESTAMPED):]}'
        return self.revision, json.dumps(obj, separators=(",", ":"))

    def _record(self, typ: str, kind: str, ns: str, name: str, rv: int, data: str, obj: Obj,
                prev: Obj | None = None) -> None:
        self._db.execute("INSERT INTO events VALUES (?,?,?,?,?,?)", (rv, kind, ns, name, typ, data))
        self.events.append(Event(typ, kind, ns, name, rv, obj, prev))

    def create(self, kind: str, ns: str, name: str, obj: Obj, encoded: str | None = None) -> Obj:
        if self.get(kind, ns, name) is not None:
            raise AlreadyExists(name)
        rv, data = self._stamp(obj, encoded)
        self._db.execute("INSERT INTO objects VALUES (?,?,?,?,?)", (kind, ns, name, rv, data))
        self._record("ADDED", kind, ns, name, rv, data, obj)
        return obj

    def update(self, kind: str, ns: str, name: str, obj: Obj, expected_rv: int | None = None,
               encoded: str | None = None) -> Obj:
        cur = self.get(kind, ns, name)
        if cur is None:
            raise NotFound(name)
        if expected_rv is not None and _rv_of(cur) != expected_rv:
            raise Conflict(name)
        rv, data = self._stamp(obj, encoded)
        self._db.execute(
            "UPDATE objects SET rv=?, data=? WHERE kind=? AND namespace=? AND name=?", (rv, data, kind, ns, name)
        )
        self._record("MODIFIED", kind, ns, name, rv, data, obj, cur)
        return obj

    def delete(self, kind: str, ns: str, name: str, expected_rv: int | None = None) -> Obj:
        cur = self.get(kind, ns, name)
        if cur is None:
            raise NotFound(name)
        if expected_rv is not None and _rv_of(cur) != expected_rv:
            raise Conflict(name)
        rv, data = self._stamp(cur)
        self._db.execute("DELETE FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, ns, name))
        self._record("DELETED", kind, ns, name, rv, data, cur)
        return cur


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta["name"])
