"""Records Kubernetes Events (what `kubectl describe` shows at the bottom) for controllers and the runtime,
and expires them.

Repeated events for the same object, reason and message are folded into one Event with a count, as
kube's event recorder does. `EventExpiry` deletes Events an hour after their last update, as
kube-apiserver's `--event-ttl` (default 1h) does, so a long-running daemon's store does not fill with them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sluice.aio import cancel_and_wait
from sluice.api.errors import ApiError
from sluice.api.registry import Registry, now_rfc3339
from sluice.resources.kinds import by_kind

__all__ = ["EventRecorder", "EventExpiry", "expired", "EVENT_TTL_S"]

log = logging.getLogger("sluice.events")

# How many (object, reason, message) keys are remembered for folding repeats, least recently used dropped
# first: client-go's event correlator keeps an LRU of this size (maxLruCacheEntries).
MAX_REMEMBERED = 4096
EVENT_TTL_S = 3600  # kube-apiserver --event-ttl default


class EventRecorder:
    def __init__(self, registry: Registry, component: str) -> None:
        self.registry = registry
        self.component = component
        self._rt = by_kind("", "Event")
        self._seen: OrderedDict[tuple[str, str, str, str], str] = OrderedDict()

    def record(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        assert self._rt is not None
        meta = obj.get("metadata") or {}
        ns = str(meta.get("namespace") or "default")
        key = (str(meta.get("uid")), type_, reason, message)
        now = now_rfc3339()
        try:
            name = self._seen.get(key)
            if name is not None:
                self._seen.move_to_end(key)
                try:
                    cur = self.registry.get(self._rt, "v1", ns, name)
                except ApiError as e:
                    if e.code != 404:
                        raise
                    cur = None  # expired or deleted: start a new Event below
                if cur is not None:
                    cur["count"] = int(cur.get("count") or 1) + 1
                    cur["lastTimestamp"] = now
                    self.registry.replace(self._rt, "v1", ns, name, cur)
                    return
            name = f"{meta.get('name')}.{secrets.token_hex(8)}"
            event = {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": ns},
                "involvedObject": {"kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"),
                                   "name": meta.get("name"), "namespace": ns, "uid": meta.get("uid"),
                                   "resourceVersion": meta.get("resourceVersion")},
                "reason": reason, "message": message, "type": type_, "count": 1,
                "firstTimestamp": now, "lastTimestamp": now,
                "source": {"component": self.component}, "reportingComponent": self.component,
            }
            self.registry.create(self._rt, "v1", ns, event)
            self._seen[key] = name
            while len(self._seen) > MAX_REMEMBERED:
                self._seen.popitem(last=False)
        except ApiError as e:  # events are best effort: never fail the caller over one
            if e.code == 404:
                self._seen.pop(key, None)
            log.debug("event %s/%s not recorded: %s", reason, message, e.message)


def _when(event: dict[str, Any]) -> float | None:
    """The Event's last update (lastTimestamp, else eventTime, else its creation) in unix seconds."""
    meta = event.get("metadata") or {}
    for raw in (event.get("lastTimestamp"), event.get("eventTime"), meta.get("creationTimestamp")):
        if isinstance(raw, str) and raw:
            try:
                return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC).timestamp()
            except ValueError:
                continue
    return None


def expired(events: Iterable[dict[str, Any]], now: float, ttl_s: float = EVENT_TTL_S) -> list[tuple[str, str]]:
    """(namespace, name) of the Events last updated more than `ttl_s` before `now`."""
    out = []
    for e in events:
        when = _when(e)
        if when is not None and now - when > ttl_s:
            meta = e.get("metadata") or {}
            out.append((str(meta.get("namespace") or "default"), str(meta.get("name"))))
    return out


class EventExpiry:
    """Deletes expired Events every `interval_s` while the daemon runs."""

    def __init__(self, registry: Registry, ttl_s: float = EVENT_TTL_S, interval_s: float = 60.0) -> None:
        self.registry = registry
        self.ttl_s = ttl_s
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def sweep(self, now: float) -> int:
        """Delete the expired Events once; returns how many went."""
        rt = by_kind("", "Event")
        assert rt is not None
        items, _, _ = self.registry.list_objects(rt, "v1", None)
        gone = 0
        for ns, name in expired(items, now, self.ttl_s):
            try:
                self.registry.delete(rt, "v1", ns, name)
                gone += 1
            except ApiError as e:  # deleted meanwhile
                log.debug("expiring event %s/%s: %s", ns, name, e.message)
        return gone

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.sweep(datetime.now(UTC).timestamp())
            except Exception:  # keep expiring next time; never take the daemon down
                log.exception("expiring events failed")

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-expiry")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
