"""Records Kubernetes Events (what `kubectl describe` shows at the bottom) for controllers and the runtime.

Repeated events for the same object, reason and message are folded into one Event with a count, as
kube's event recorder does.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from typing import Any

from sluice.api.errors import ApiError
from sluice.api.registry import Registry, now_rfc3339
from sluice.resources.kinds import by_kind

__all__ = ["EventRecorder"]

log = logging.getLogger("sluice.events")

# How many (object, reason, message) keys are remembered for folding repeats, least recently used dropped
# first: client-go's event correlator keeps an LRU of this size (maxLruCacheEntries).
MAX_REMEMBERED = 4096


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
                cur = self.registry.get(self._rt, "v1", ns, name)
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
