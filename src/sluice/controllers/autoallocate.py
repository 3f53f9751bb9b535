"""Istio's IP auto-allocation controller: each ServiceEntry's `status.addresses` lists the addresses its hosts
were given (`- host: httpbin.example.org` / `value: 240.240.x.y`), as istiod's ip-autoallocate controller
writes them, so `kubectl get serviceentry -o yaml` shows what the pods resolve the hosts to.

The addresses themselves come from `sluice.autoallocate` (a pure function of all ServiceEntries, which the
cluster DNS and the xDS translation call too); this controller only writes them where users look. Other
status fields (conditions, validation messages) are left as they are. Runs in the daemon.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable

from sluice.api.errors import ApiError
from sluice.api.registry import Registry
from sluice.autoallocate import auto_addresses, wants_auto_address
from sluice.controllers.queue import WorkQueue
from sluice.kube.informer import Informer
from sluice.objects import Obj
from sluice.resources.kinds import by_kind
from sluice.store import Store

__all__ = ["AutoAllocateController", "desired_addresses"]

_KIND = "serviceentries.networking.istio.io"
_ALL = ("", "*")  # one key: any change can move any entry's allocation (a probe on a collision)


def desired_addresses(se: Obj, allocated: dict[str, str]) -> list[Obj]:
    """The `status.addresses` of one ServiceEntry, given every host's allocated address."""
    if not wants_auto_address(se):
        return []
    out = []
    for h in (se.get("spec") or {}).get("hosts") or []:
        host = str(h).strip().rstrip(".").lower()
        if host in allocated:
            out.append({"host": str(h), "value": allocated[host]})
    return out


class AutoAllocateController:
    def __init__(self, registry: Registry, store: Store) -> None:
        self.registry = registry
        self.rt = by_kind("networking.istio.io", "ServiceEntry")
        self.entries = Informer(store, _KIND, self._on_entry)
        self.queue = WorkQueue("autoallocate", self._reconcile)

    async def start(self) -> None:
        self.queue.start()
        self.entries.start()

    async def stop(self) -> None:
        await self.entries.stop()
        await self.queue.stop()

    def _on_entry(self, typ: str, obj: Obj, prev: Obj | None) -> None:
        self.queue.add(_ALL)

    def _reconcile(self, key: Hashable) -> float | None:
        assert self.rt is not None
        entries = self.entries.list()
        allocated = auto_addresses(entries)
        for se in entries:
            desired = desired_addresses(se, allocated)
            raw = se.get("status")
            status: Obj = raw if isinstance(raw, dict) else {}
            if (status.get("addresses") or []) == desired:
                continue
            new_status = {k: copy.deepcopy(v) for k, v in status.items() if k != "addresses"}
            if desired:
                new_status["addresses"] = desired
            meta = se["metadata"]
            body: Obj = {**copy.deepcopy(se), "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
                         "status": new_status}
            body["metadata"] = {**meta, "resourceVersion": meta["resourceVersion"]}
            try:
                self.registry.replace(self.rt, "v1", meta.get("namespace", ""), meta["name"], body,
                                      subresource="status")
            except ApiError as e:
                if e.code in (404, 409):
                    return 0.05  # raced with another write: look again
                raise
        return None
