"""Workloads, apps and services as the console lists them (pure: stored objects in, JSON-ready dicts out).

Role: a workload is a Deployment with the pods its selector matches and Kiali's health (pod health from
desired vs available replicas, traffic health from the request graph); an app is the workloads sharing an
`app` label; a service is a Service with the workloads its selector picks and the VirtualServices and
DestinationRules whose hosts name it. Nothing here reads the store or the clock: the handlers in
`sluice.console.api` pass the objects and the traffic health (by workload / service name) in.

Callers: `sluice.console.api`, `sluice.console.wizard` (host matching, workload labels).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sluice.kube.pods import pod_ready

__all__ = [
    "worst", "pod_summary", "pods_of", "workloads", "template_labels", "service_selects", "qualified_names", "names_service", "config_hosts",
    "services", "service_workloads", "workload_detail", "apps",
]

Obj = Mapping[str, Any]

_RANK = {"NA": 0, "Healthy": 1, "Degraded": 2, "Failure": 3}


def worst(*statuses: str) -> str:
    """The worst of Kiali health statuses (`Failure` > `Degraded` > `Healthy` > `NA`); `NA` when none."""
    return max(statuses, key=lambda s: _RANK.get(s, 0), default="NA")


def _meta(obj: Obj) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _spec(obj: Obj) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _str_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    match = selector.get("matchLabels") or {}
    if not isinstance(match, dict) or not match:
        return False
    return all(labels.get(k) == v for k, v in match.items())


def pod_summary(pod: Obj) -> dict[str, Any]:
    meta = _meta(pod)
    status = pod.get("status") or {}
    containers = [c.get("name") for c in _spec(pod).get("containers") or [] if isinstance(c, dict)]
    statuses = [c for c in status.get("containerStatuses") or [] if isinstance(c, dict)]
    return {"name": meta.get("name"), "phase": status.get("phase", "Pending"), "ready": pod_ready(pod),
            "containers": containers, "istioSidecar": "istio-proxy" in containers,
            "restarts": sum(int(c.get("restartCount") or 0) for c in statuses),
            "labels": meta.get("labels") or {}, "createdAt": meta.get("creationTimestamp")}


def _pod_health(desired: int, available: int) -> str:
    """Kiali's workload pod health: no replicas wanted → NA; none available → Failure; some → Degraded."""
    if desired <= 0:
        return "NA"
    if available <= 0:
        return "Failure"
    if available < desired:
        return "Degraded"
    return "Healthy"


def template_labels(deployment: Obj) -> dict[str, str]:
    """The labels a Deployment's pods carry (its pod template's)."""
    return _str_map(_meta(_spec(deployment).get("template") or {}).get("labels"))


def pods_of(deployment: Obj, pods: Iterable[Obj]) -> list[Obj]:
    selector = _spec(deployment).get("selector") or {}
    return [p for p in pods if isinstance(selector, dict) and _selector_matches(selector, _meta(p).get("labels") or {})]


def workloads(deployments: Iterable[Obj], pods: Sequence[Obj], ns: str,
              traffic: Mapping[str, str]) -> list[dict[str, Any]]:
    """The console's Workload list: each Deployment with its pods and health, sorted by name."""
    out: list[dict[str, Any]] = []
    for dep in deployments:
        meta, spec = _meta(dep), _spec(dep)
        mine = pods_of(dep, pods)
        desired = int(spec["replicas"]) if isinstance(spec.get("replicas"), int) else 1
        available = sum(1 for p in mine if pod_ready(p) and not _meta(p).get("deletionTimestamp"))
        name = str(meta.get("name"))
        pod_status = _pod_health(desired, available)
        traffic_status = traffic.get(name, "NA")
        labels = template_labels(dep)
        summaries = [pod_summary(p) for p in mine]
        out.append({
            "name": name, "namespace": ns, "type": "Deployment", "labels": meta.get("labels") or {},
            "app": labels.get("app", ""), "version": labels.get("version", ""),
            "desiredReplicas": desired, "availableReplicas": available,
            "pods": summaries,
            "istioSidecar": bool(summaries) and all(s["istioSidecar"] for s in summaries),
            "health": {"status": worst(pod_status, traffic_status), "pods": pod_status,
                       "traffic": traffic_status},
        })
    return sorted(out, key=lambda w: str(w["name"]))


# ---------------------------------------------------------------------------------------------- services
def service_selects(service: Obj, labels: Mapping[str, str]) -> bool:
    """Whether a Service's selector picks pods with `labels` (a Service without a selector picks none)."""
    selector = _str_map(_spec(service).get("selector"))
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def qualified_names(service: str, namespace: str) -> tuple[str, ...]:
    """The dotted names an Istio host can give the Service `service.namespace` by."""
    return (f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local")


def names_service(host: str, service: str, namespace: str, config_namespace: str) -> bool:
    """Whether an Istio host names the Service `service.namespace` exactly (short names are resolved in the
    config object's own namespace; wildcards name no one service)."""
    host = host.strip()
    if "." not in host:
        return host == service and config_namespace == namespace
    return host in qualified_names(service, namespace)


def config_hosts(obj: Obj) -> list[str]:
    """The hosts an Istio config object names: a VirtualService's `hosts`, a DestinationRule's `host`."""
    spec = _spec(obj)
    if obj.get("kind") == "DestinationRule":
        return [str(spec["host"])] if isinstance(spec.get("host"), str) else []
    hosts = spec.get("hosts")
    return [str(h) for h in hosts if isinstance(h, str)] if isinstance(hosts, list) else []


def _naming(configs: Iterable[Obj], service: str, namespace: str) -> list[Obj]:
    return [c for c in configs
            if any(names_service(h, service, namespace, str(_meta(c).get("namespace") or ""))
                   for h in config_hosts(c))]


def service_workloads(service: Obj, deployments: Iterable[Obj]) -> list[Obj]:
    """The Deployments whose pods the Service selects, by name."""
    return sorted((d for d in deployments if service_selects(service, template_labels(d))),
                  key=lambda d: str(_meta(d).get("name")))


def _service(svc: Obj, deployments: Sequence[Obj], configs: Sequence[Obj], health: Mapping[str, str]
             ) -> dict[str, Any]:
    meta, spec = _meta(svc), _spec(svc)
    name, ns = str(meta.get("name")), str(meta.get("namespace") or "")
    ports = []
    for p in spec.get("ports") or []:
        if isinstance(p, dict):
            ports.append({"name": p.get("name", ""), "port": p.get("port"), "protocol": p.get("protocol", "TCP"),
                          "targetPort": p.get("targetPort", p.get("port"))})
    local = [c for c in _naming(configs, name, ns) if _meta(c).get("namespace") == ns]
    return {
        "name": name, "namespace": ns, "type": spec.get("type", "ClusterIP"), "clusterIP": spec.get("clusterIP"),
        "ports": ports, "selector": _str_map(spec.get("selector")), "labels": meta.get("labels") or {},
        "health": {"status": health.get(name, "NA")},
        "workloads": [{"name": _meta(d).get("name"), "app": template_labels(d).get("app", ""),
                       "version": template_labels(d).get("version", "")}
                      for d in service_workloads(svc, deployments)],
        "virtualServices": sorted(str(_meta(c).get("name")) for c in local if c.get("kind") == "VirtualService"),
        "destinationRules": sorted(str(_meta(c).get("name")) for c in local if c.get("kind") == "DestinationRule"),
    }


def services(service_objs: Iterable[Obj], deployments: Sequence[Obj], configs: Sequence[Obj],
             health: Mapping[str, str]) -> list[dict[str, Any]]:
    """The console's Service list, sorted by name. `configs` are VirtualServices and DestinationRules;
    `health` is the traffic health by service name."""
    return sorted((_service(s, deployments, configs, health) for s in service_objs), key=lambda s: str(s["name"]))


def workload_detail(workload: Mapping[str, Any], deployment: Obj, service_objs: Iterable[Obj],
                    configs: Sequence[Obj]) -> dict[str, Any]:
    """A Workload plus the services that select its pods and the VirtualServices/DestinationRules naming them."""
    label_sets = [template_labels(deployment)] + [_str_map(p.get("labels")) for p in workload.get("pods") or []
                                                 if isinstance(p, dict)]
    mine = sorted((s for s in service_objs if any(service_selects(s, labels) for labels in label_sets)),
                  key=lambda s: str(_meta(s).get("name")))
    config: dict[tuple[str, str, str], dict[str, str]] = {}
    for svc in mine:
        meta = _meta(svc)
        for c in _naming(configs, str(meta.get("name")), str(meta.get("namespace") or "")):
            key = (str(c.get("kind")), str(_meta(c).get("namespace") or ""), str(_meta(c).get("name")))
            config[key] = {"kind": key[0], "name": key[2], "namespace": key[1]}
    return {**workload, "services": [str(_meta(s).get("name")) for s in mine],
            "istioConfig": [config[k] for k in sorted(config)]}


# ---------------------------------------------------------------------------------------------- apps
def apps(workload_list: Sequence[Mapping[str, Any]], deployments: Sequence[Obj], service_objs: Sequence[Obj]
         ) -> list[dict[str, Any]]:
    """The console's App list: workloads grouped by their `app` label (workloads without one are no app's)."""
    by_name = {str(_meta(d).get("name")): d for d in deployments}
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for w in workload_list:
        if w.get("app"):
            groups.setdefault(str(w["app"]), []).append(w)
    out = []
    for app, members in sorted(groups.items()):
        svc_names: set[str] = set()
        for w in members:
            dep = by_name.get(str(w["name"]))
            if dep is not None:
                labels = template_labels(dep)
                svc_names.update(str(_meta(s).get("name")) for s in service_objs if service_selects(s, labels))
        pods = worst(*(str(w["health"]["pods"]) for w in members))
        traffic = worst(*(str(w["health"]["traffic"]) for w in members))
        out.append({
            "name": app, "workloads": sorted(str(w["name"]) for w in members),
            "versions": sorted({str(w["version"]) for w in members if w.get("version")}),
            "services": sorted(svc_names),
            "istioSidecar": all(bool(w.get("istioSidecar")) for w in members),
            "health": {"status": worst(pods, traffic), "pods": pods, "traffic": traffic},
        })
    return out
