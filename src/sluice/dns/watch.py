"""The cluster's name table kept current from the store: informers on the kinds that make names.

Started by the daemon next to the DNS server: `NameWatcher(store).table` is the `table` callable
`sluice.dns.server.DnsServer` takes. Every change to a Namespace, Service, Endpoints, Pod or ServiceEntry marks
the table stale; the next query rebuilds it from the informers' caches (cheap: one pass over the objects), so a
burst of changes costs one rebuild and an answer never lags the store by more than the watch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sluice.dns.names import DEFAULT_TTL, DEFAULT_ZONE, NameTable, PodMode, build_table
from sluice.kube.informer import Informer
from sluice.store import Store

__all__ = ["NameWatcher", "KINDS"]

log = logging.getLogger("sluice.dns")

KINDS = ("namespaces", "services", "endpoints", "pods", "serviceentries.networking.istio.io")


class NameWatcher:
    def __init__(self, store: Store, *, zone: str = DEFAULT_ZONE, ttl: int = DEFAULT_TTL,
                 pod_mode: PodMode = "insecure", on_change: Callable[[], None] | None = None) -> None:
        self.zone, self.ttl, self.pod_mode = zone, ttl, pod_mode
        self.on_change = on_change
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
        if self.on_change is not None:
            self.on_change()

    def objects(self) -> dict[str, list[dict[str, Any]]]:
        """What `build_table` reads, trimmed to the fields it uses: the snapshot a DNS process outside the
        daemon serves from (`sluice.dns.standalone`)."""
        i = self.informers
        return {
            "namespaces": [{"metadata": {"name": o["metadata"]["name"]}} for o in i["namespaces"].list()],
            "services": [_trim(o, spec=True) for o in i["services"].list()],
            "endpoints": [{"metadata": _meta(o), "subsets": o.get("subsets") or []} for o in i["endpoints"].list()],
            "pods": [{"metadata": _meta(o),
                      "spec": {k: v for k, v in (o.get("spec") or {}).items() if k in ("hostname", "subdomain")},
                      "status": {k: v for k, v in (o.get("status") or {}).items() if k in ("podIP", "podIPs")}}
                     for o in i["pods"].list()],
            "service_entries": [_trim(o, spec=True) for o in i["serviceentries.networking.istio.io"].list()],
        }

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


def _meta(o: dict[str, Any]) -> dict[str, Any]:
    m = o.get("metadata") or {}
    return {"name": m.get("name"), "namespace": m.get("namespace")}


def _trim(o: dict[str, Any], spec: bool) -> dict[str, Any]:
    return {"metadata": _meta(o), "spec": o.get("spec") or {}} if spec else {"metadata": _meta(o)}
