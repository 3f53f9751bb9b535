"""The Endpoints controller: for each Service with a selector, an Endpoints object listing its pods.

Ready pods go to `addresses`, running-but-unready ones to `notReadyAddresses`, terminating pods nowhere —
so a pod leaves the mesh's load balancing (via EDS) before its processes are stopped. Ports are the
Service's ports with `targetPort` resolved against each pod's container ports (by number or by name).
Runs in the daemon.
"""

from __future__ import annotations

from collections.abc import Hashable

from sluice.api.errors import ApiError
from sluice.api.registry import Registry
from sluice.controllers.queue import WorkQueue
from sluice.kube.informer import Informer
from sluice.kube.pods import pod_ready
from sluice.kube.selectors import from_label_selector_dict
from sluice.objects import Obj
from sluice.resources.kinds import by_kind
from sluice.store import Store

__all__ = ["EndpointsController", "desired_subsets"]





def _target_port(svc_port: Obj, pod: Obj) -> int | None:
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return int(p["containerPort"])
    return None


def desired_subsets(svc: Obj, pods: list[Obj]) -> list[Obj]:
    """Endpoints subsets for `svc` from the candidate pods (already selected by label), grouped by port set."""
    groups: dict[tuple[tuple[str, int, str], ...], Obj] = {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or pod["metadata"].get("deletionTimestamp"):
            continue
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        ports: list[tuple[str, int, str]] = []
        for sp in (svc.get("spec") or {}).get("ports") or []:
            tp = _target_port(sp, pod)
            if tp is not None:
                ports.append((str(sp.get("name") or ""), tp, str(sp.get("protocol") or "TCP")))
        if not ports:
            continue
        key = tuple(ports)
        subset = groups.setdefault(key, {"ports": [
            {**({"name": n} if n else {}), "port": p, "protocol": proto} for n, p, proto in ports]})
        address = {"ip": ip, "nodeName": "sluice",
                   "targetRef": {"kind": "Pod", "namespace": pod["metadata"].get("namespace", ""),
                                 "name": pod["metadata"]["name"], "uid": pod["metadata"].get("uid")}}
        subset.setdefault("addresses" if pod_ready(pod) else "notReadyAddresses", []).append(address)
    return [groups[k] for k in sorted(groups)]


class EndpointsController:
    def __init__(self, registry: Registry, store: Store) -> None:
        self.registry = registry
        self.ep_rt = by_kind("", "Endpoints")
        self.services = Informer(store, "services", self._on_service)
        self.pods = Informer(store, "pods", self._on_pod)
        self.endpoints = Informer(store, "endpoints", self._on_endpoints)
        self.queue = WorkQueue("endpoints", self._reconcile_key)

    async def start(self) -> None:
        self.queue.start()
        for inf in (self.services, self.pods, self.endpoints):
            inf.start()

    async def stop(self) -> None:
        for inf in (self.services, self.pods, self.endpoints):
            await inf.stop()
        await self.queue.stop()

    def _on_service(self, typ: str, obj: Obj, prev: Obj | None) -> None:
        self.queue.add((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))

    def _on_endpoints(self, typ: str, obj: Obj, prev: Obj | None) -> None:
        # Someone else changed or removed our Endpoints: put it right.
        self.queue.add((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))

    def _on_pod(self, typ: str, obj: Obj, prev: Obj | None) -> None:
        ns = obj["metadata"].get("namespace", "")
        labels = [obj["metadata"].get("labels") or {}]
        if prev is not None:
            labels.append(prev["metadata"].get("labels") or {})
        for svc in self.services.list(ns):
            sel = (svc.get("spec") or {}).get("selector")
            if sel and any(all(lbl.get(k) == v for k, v in sel.items()) for lbl in labels):
                self.queue.add((ns, svc["metadata"]["name"]))

    def _reconcile_key(self, key: Hashable) -> float | None:
        assert isinstance(key, tuple) and self.ep_rt is not None
        ns, name = key
        svc = self.services.get(ns, name)
        current = self.endpoints.get(ns, name)
        if svc is None:
            if current is not None and current["metadata"].get("labels", {}).get("sluice.dev/managed") == "true":
                try:
                    self.registry.delete(self.ep_rt, "v1", ns, name)
                except ApiError as e:
                    if e.code != 404:
                        raise
            return None
        sel = (svc.get("spec") or {}).get("selector")
        if not sel:
            return None  # no selector: Endpoints are managed by hand
        selector = from_label_selector_dict({"matchLabels": sel})
        pods = [p for p in self.pods.list(ns) if selector.matches(p["metadata"].get("labels") or {})]
        subsets = desired_subsets(svc, pods)
        labels = {**(svc["metadata"].get("labels") or {}), "sluice.dev/managed": "true"}
        if current is not None and current.get("subsets", []) == subsets \
                and (current["metadata"].get("labels") or {}) == labels:
            return None
        body: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                     "metadata": {"name": name, "namespace": ns, "labels": labels}}
        if subsets:
            body["subsets"] = subsets
        try:
            if current is None:
                self.registry.create(self.ep_rt, "v1", ns, body)
            else:
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                self.registry.replace(self.ep_rt, "v1", ns, name, body)
        except ApiError as e:
            if e.code in (404, 409):
                return 0.05  # raced with another write: look again
            raise
        return None
