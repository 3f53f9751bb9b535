"""The controller's only ways out: the Kubernetes API (through `sluice.client`, from a kubeconfig and its token)
and the Prometheus HTTP API. Any cluster and any Prometheus will do; inside the daemon they are its own.
"""

from __future__ import annotations

import builtins
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sluice.client.api import ApiClient
from sluice.client.discovery import ResourceInfo
from sluice.client.errors import ApiError, ClientError
from sluice.client.kubeconfig import RestConfig, load_kubeconfig
from sluice.client.prometheus import PromClient, PromError
from sluice.rollouts.analysis import rfc3339
from sluice.rollouts.providers import PromQuery

if TYPE_CHECKING:
    from sluice.rollouts.metrics import ControllerMetrics

__all__ = ["Kube", "KINDS", "prom_query_factory", "Conflict", "COMPONENT", "UNCONFIGURED"]

log = logging.getLogger("sluice.rollouts")
Obj = dict[str, Any]
_T = TypeVar("_T")
COMPONENT = "rollouts-controller"
UNCONFIGURED = "prometheus address is not configured"


def _info(group: str, version: str, plural: str, kind: str, namespaced: bool = True) -> ResourceInfo:
    return ResourceInfo(group, version, plural, plural.rstrip("s"), kind, namespaced)


KINDS: dict[str, ResourceInfo] = {
    "Rollout": _info("argoproj.io", "v1alpha1", "rollouts", "Rollout"),
    "AnalysisRun": _info("argoproj.io", "v1alpha1", "analysisruns", "AnalysisRun"),
    "AnalysisTemplate": _info("argoproj.io", "v1alpha1", "analysistemplates", "AnalysisTemplate"),
    "ClusterAnalysisTemplate": _info("argoproj.io", "v1alpha1", "clusteranalysistemplates",
                                     "ClusterAnalysisTemplate", namespaced=False),
    "ReplicaSet": _info("apps", "v1", "replicasets", "ReplicaSet"),
    "Deployment": _info("apps", "v1", "deployments", "Deployment"),  # what a Rollout's workloadRef names
    "Service": _info("", "v1", "services", "Service"),
    "Pod": _info("", "v1", "pods", "Pod"),
    "Event": _info("", "v1", "events", "Event"),
    # Argo's controller speaks v1alpha3 unless told otherwise (--istio-api-version)
    "VirtualService": _info("networking.istio.io", "v1alpha3", "virtualservices", "VirtualService"),
    "DestinationRule": _info("networking.istio.io", "v1alpha3", "destinationrules", "DestinationRule"),
}


class Conflict(Exception):
    """Someone else wrote the object since it was read: the next pass reads it again."""


class Kube:
    def __init__(self, config: RestConfig) -> None:
        self.config = config
        self.api = ApiClient(config, timeout=30.0)
        self.api.rest.on_warning = lambda text: log.debug("API warning: %s", text)
        self._lock = threading.Lock()  # one connection: one request at a time
        self.metrics: ControllerMetrics | None = None  # counts requests and Events when set

    @classmethod
    def from_kubeconfig(cls, path: str | None, context: str | None = None) -> Kube:
        return cls(load_kubeconfig(path).rest_config(context))

    def _call(self, fn: Callable[[], _T], kind: str, namespace: str | None, name: str, verb: str) -> _T:
        """`fn()` alone on the connection, counted as Argo counts its client's requests (kind, verb, status)."""
        with self._lock:
            try:
                out = fn()
            except ApiError as e:
                self._count(kind, namespace, name, verb, e.code)
                if e.code == 409:
                    raise Conflict(e.message) from None
                raise
            self._count(kind, namespace, name, verb, 201 if verb == "Create" else 200)
            return out

    def _count(self, kind: str, namespace: str | None, name: str, verb: str, code: int) -> None:
        if self.metrics is not None:
            self.metrics.request(KINDS[kind].plural, namespace or "", name, verb, code)

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        try:
            return self._call(lambda: self.api.get(KINDS[kind], name, namespace), kind, namespace, name, "Get")
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    def list(self, kind: str, namespace: str | None = None, label_selector: str | None = None) -> list[Obj]:
        out = self._call(lambda: self.api.list(KINDS[kind], namespace, label_selector=label_selector),
                         kind, namespace, "", "List")
        items = [i for i in out.get("items") or [] if isinstance(i, dict)]
        info = KINDS[kind]
        for i in items:  # list items carry no kind; the controller's writes need it
            i.setdefault("apiVersion", info.api_version)
            i.setdefault("kind", info.kind)
        return items

    def create(self, kind: str, namespace: str | None, obj: Obj) -> Obj:
        return self._call(lambda: self.api.create(KINDS[kind], namespace, obj, field_manager=COMPONENT,
                                                  field_validation=None),
                          kind, namespace, str((obj.get("metadata") or {}).get("name") or ""), "Create")

    def update(self, kind: str, obj: Obj) -> Obj:
        """PUT the whole object; `Conflict` if its resourceVersion is stale."""
        info = KINDS[kind]
        meta = obj["metadata"]
        path = info.object_path(meta.get("namespace") if info.namespaced else None, meta["name"])
        return self._call(lambda: self.api.rest.json("PUT", path, body=obj, query={"fieldManager": COMPONENT}),
                          kind, meta.get("namespace"), str(meta["name"]), "Update")

    def patch(self, kind: str, namespace: str | None, name: str, patch: Obj, subresource: str | None = None) -> Obj:
        return self._call(lambda: self.api.patch(KINDS[kind], name, namespace, patch, field_manager=COMPONENT,
                                                 field_validation=None, subresource=subresource),
                          kind, namespace, name, "Patch")

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        try:
            self._call(lambda: self.api.delete(KINDS[kind], name, namespace), kind, namespace, name, "Delete")
        except ApiError as e:
            if e.code != 404:
                raise

    def container_log(self, namespace: str, pod: str, container: str, since_seconds: int) -> builtins.list[str] | None:
        """The container's log lines of the last `since_seconds` (`pods/log`); None when the pod is gone."""
        def read() -> builtins.list[str]:
            return [b.decode("utf-8", "replace") for b in self.api.logs(
                namespace, pod, {"container": container, "sinceSeconds": str(since_seconds)})]
        try:
            return self._call(read, "Pod", namespace, pod, "Get")
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        meta = obj.get("metadata") or {}
        ns = str(meta.get("namespace") or "default")
        now = rfc3339(time.time())
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta.get('name')}.{secrets.token_hex(8)}", "namespace": ns},
            "involvedObject": {"kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"),
                               "name": meta.get("name"), "namespace": ns, "uid": meta.get("uid"),
                               "resourceVersion": meta.get("resourceVersion")},
            "reason": reason, "message": message, "type": type_, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
        }
        if self.metrics is not None:
            self.metrics.event(obj, type_, reason)
        try:
            self.create("Event", ns, event)
        except (ApiError, ClientError, Conflict) as e:  # events are best effort
            log.debug("event %s not recorded: %s", reason, e)

    def close(self) -> None:
        self.api.close()


def prom_query_factory(default_url: str) -> Callable[[str], PromQuery]:
    """`address` → a PromQuery against that Prometheus (the metric's own, else the controller's default)."""
    def for_address(address: str) -> PromQuery:
        url = address or default_url
        if not url:
            def unconfigured(_: str) -> list[Any]:
                raise PromError("error", UNCONFIGURED)
            return unconfigured
        client = PromClient(url, timeout=30.0)

        def query(promql: str) -> list[Any]:
            data = client.query(promql)
            if not isinstance(data, dict):
                return []
            result = data.get("result")
            return result if isinstance(result, list) else []
        return query
    return for_address
