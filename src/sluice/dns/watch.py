"""The cluster's name table kept current from the store: informers on the kinds that make names.

Started by the daemon next to the DNS server: `NameWatcher(store).table` is the `table` callable
`sluice.dns.server.DnsServer` takes. Every change to a Namespace, Service, Endpoints, Pod or ServiceEntry marks
the table stale; the next query rebuilds it from the informers' caches (cheap: one pass over the objects), so a
burst of changes costs one rebuild and an answer never lags the store by more than the watch.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sluice.controllers.informer import Informer
from sluice.dns.names import DEFAULT_TTL, DEFAULT_ZONE, NameTable, PodMode, build_table
from sluice.store.sqlite import Store

__all__ = ["NameWatcher", "KINDS"]

log = logging.getLogger("sluice.dns")

KINDS = ("namespaces", "services", "endpoints", "pods", "serviceentries.networking.istio.io")


class NameWatcher:
    def __init__(self, store: Store, *, zone: str = DEFAULT_ZONE, ttl: int = DEFAULT_TTL,
                 pod_mode: PodMode = "insecure") -> None:
        self.zone, self.ttl, self.pod_mode = zone, ttl, pod_mode
        self.informers = {kind: Informer(store, kind, self._changed) for kind in KINDS}
        self._table = build_table(zone=zone, ttl=ttl, pod_mode=pod_mode)
        self._stale = True

    def start(self) -> None:
        for inf in self.informers.values():
            inf.start()

    async def stop(self) -> None:
        for inf in self.informers.values():
            await inf.stop()

    async def wait_synced(self) -> None:
        for inf in self.informers.values():
            await inf.synced.wait()

    def _changed(self, typ: str, obj: dict[str, Any], prev: dict[str, Any] | None) -> None:
        self._stale = True

    def table(self) -> NameTable:
        if self._stale:
            self._stale = False
            i = self.informers
            try:
                self._table = build_table(
                    namespaces=i["namespaces"].list(), services=i["services"].list(),
                    endpoints=i["endpoints"].list(), pods=i["pods"].list(),
                    service_entries=i["serviceentries.networking.istio.io"].list(),
                    zone=self.zone, ttl=self.ttl, pod_mode=self.pod_mode, serial=int(time.time()))
            except Exception:  # keep answering from the last good table
                log.exception("dns: rebuilding the name table failed")
        return self._table
