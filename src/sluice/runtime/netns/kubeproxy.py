"""kube-proxy for netns mode: ClusterIP:port → a ready endpoint, as nftables NAT in the node namespace.

Pods without a sidecar (and anything the sidecar passes through untouched) reach Services the Kubernetes
way: the packet for 10.96.x.y:port crosses the node namespace's L3 (every pod routes through the gateway) and
is DNATed there to one of the Service's ready endpoints, picked at random per connection as kube-proxy's
nftables mode does; a Service with no ready endpoint rejects the connection at once, as kube-proxy does.
`rules(services, endpoints)` is pure; `KubeProxy` keeps it applied from the store's watch events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from sluice.aio import cancel_and_wait
from sluice.kube.informer import Informer
from sluice.objects import Obj
from sluice.store import Store

__all__ = ["rules", "KubeProxy", "TABLE", "endpoint_targets", "dnat_statement"]

log = logging.getLogger("sluice.runtime")

TABLE = "sluice-kube-proxy"


def endpoint_targets(ep: Obj | None, port_name: str, protocol: str) -> list[tuple[str, int]]:
    """The ready (ip, port) pairs of the Endpoints' port of this name and protocol."""
    out: list[tuple[str, int]] = []
    for subset in (ep or {}).get("subsets") or []:
        ports = [p for p in subset.get("ports") or []
                 if str(p.get("name") or "") == port_name and str(p.get("protocol") or "TCP") == protocol]
        for addr in subset.get("addresses") or []:  # ready addresses only (notReadyAddresses are skipped)
            ip = str(addr.get("ip") or "")
            for p in ports:
                if ip and isinstance(p.get("port"), int):
                    out.append((ip, int(p["port"])))
    return sorted(set(out))


def dnat_statement(targets: list[tuple[str, int]]) -> str:
    """DNAT to one of `targets` (non-empty), picked at random per connection."""
    if len(targets) == 1:
        ip, p = targets[0]
        return f"dnat to {ip}:{p}"
    choices = ", ".join(f"{i} : {ip} . {p}" for i, (ip, p) in enumerate(targets))
    return f"dnat ip to numgen random mod {len(targets)} map {{ {choices} }}"


def rules(services: Iterable[Obj], endpoints: Callable[[str, str], Obj | None]) -> str:
    """The `nft -f` script (re)creating the kube-proxy table for these Services and their Endpoints."""
    t = f"ip {TABLE}"
    lines = [f"add table {t}", f"flush table {t}",
             f"add chain {t} prerouting {{ type nat hook prerouting priority dstnat ; }}",
             f"add chain {t} output {{ type nat hook output priority -100 ; }}",
             f"add chain {t} services",
             f"add chain {t} reject-no-endpoints",
             f"add rule {t} prerouting jump services",
             f"add rule {t} output jump services"]
    filters: list[str] = []
    for svc in sorted(services, key=lambda s: (s["metadata"].get("namespace", ""), s["metadata"]["name"])):
        spec = svc.get("spec") or {}
        vip = str(spec.get("clusterIP") or "")
        if not vip or vip == "None" or spec.get("type") == "ExternalName":
            continue
        meta = svc["metadata"]
        ep = endpoints(str(meta.get("namespace") or "default"), str(meta["name"]))
        for port in spec.get("ports") or []:
            if not isinstance(port.get("port"), int):
                continue
            proto = str(port.get("protocol") or "TCP")
            if proto not in ("TCP", "UDP"):
                continue
            l4 = proto.lower()
            match = f"ip daddr {vip} {l4} dport {port['port']}"
            targets = endpoint_targets(ep, str(port.get("name") or ""), proto)
            if not targets:
                filters.append(f"{match} reject" if l4 == "udp" else f"{match} reject with tcp reset")
                continue
            lines.append(f"add rule {t} services {match} {dnat_statement(targets)}")
    if filters:
        # NAT chains cannot reject: refusals for Services with no endpoint live in a filter chain.
        lines.append(f"add chain {t} filter-input {{ type filter hook input priority filter ; }}")
        lines.append(f"add chain {t} filter-forward {{ type filter hook forward priority filter ; }}")
        lines.append(f"add chain {t} filter-output {{ type filter hook output priority filter ; }}")
        for chain in ("filter-input", "filter-forward", "filter-output"):
            lines.append(f"add rule {t} {chain} jump reject-no-endpoints")
        for f in filters:
            lines.append(f"add rule {t} reject-no-endpoints {f}")
    return "\n".join(lines) + "\n"


class ServiceWatch:
    """Services and Endpoints informers: any change marks a `sync` due, run `debounce` s later on a task (changes
    meanwhile fold into it). Subclasses say what a sync does, and whether the first runs before `start`
    returns (`SYNC_AT_START`)."""

    SYNC_AT_START = False

    def __init__(self, store: Store, debounce: float, name: str) -> None:
        self._services = Informer(store, "services", self._changed)
        self._endpoints = Informer(store, "endpoints", self._changed)
        self._debounce = debounce
        self._dirty = asyncio.Event()
        self._name = name
        self._task: asyncio.Task[None] | None = None

    def _changed(self, _typ: str, _obj: Obj, _prev: Obj | None) -> None:
        self._dirty.set()

    async def start(self) -> None:
        self._services.start()
        self._endpoints.start()
        await self._services.synced.wait()
        await self._endpoints.synced.wait()
        if self.SYNC_AT_START:
            await self.sync()
        self._task = asyncio.create_task(self._loop(), name=self._name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self._services.stop()
        await self._endpoints.stop()

    async def _loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._debounce)
            self._dirty.clear()
            with contextlib.suppress(Exception):
                await self.sync()

    async def sync(self) -> None:
        raise NotImplementedError


class KubeProxy(ServiceWatch):
    """Keeps `rules` applied in the node namespace while Services and Endpoints change."""

    SYNC_AT_START = True

    def __init__(self, store: Store, apply: Callable[[str], None], debounce: float = 0.01) -> None:
        super().__init__(store, debounce, "kube-proxy")
        self._apply = apply
        self._last = ""
        self.applied = asyncio.Event()  # set after each successful apply (tests and readiness wait on it)

    async def sync(self) -> None:
        self._dirty.clear()
        script = rules(self._services.list(), self._endpoints.get)
        if script == self._last:
            return
        try:
            await asyncio.to_thread(self._apply, script)
        except Exception as e:
            log.error("kube-proxy: applying the Service rules failed: %s", e)
            raise
        self._last = script
        self.applied.set()
