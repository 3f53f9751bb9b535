"""Shared inputs for the translation tests: Bookinfo as stored objects, scenario files, golden I/O.

A scenario (`testdata/<name>.yaml`) names a base object set (`bookinfo`, or `bookinfo-netns` with pod-CIDR IPs), extra objects (VirtualServices,
DestinationRules, Gateways; `objects_from: <scenario>` reuses another's), the proxies (pod names) to generate
for, optional mesh options, which xDS types its golden file records and (`golden_only`, a regex) which names.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format

from sluice import mesh
from sluice.resources.loadbalancer import PortMap
from sluice.xds.translate import (
    ADS_ORDER,
    TYPE_CLUSTER,
    TYPE_ENDPOINT,
    TYPE_LISTENER,
    TYPE_ROUTE,
    MeshOptions,
    Proxy,
    PushContext,
    Resources,
    generate,
    proxy_from_pod,
)

HERE = Path(__file__).resolve().parent
TESTDATA = HERE / "testdata"
GOLDEN = HERE / "golden"
NS = "tutorial"
SHORT = {"clusters": TYPE_CLUSTER, "endpoints": TYPE_ENDPOINT, "listeners": TYPE_LISTENER, "routes": TYPE_ROUTE}

Obj = dict[str, Any]

# (deployment, app, version, pod IP, container port or None)
_WORKLOADS = [
    ("details-v1", "details", "v1", "127.1.0.2", 9080),
    ("ratings-v1", "ratings", "v1", "127.1.0.3", 9080),
    ("reviews-v1", "reviews", "v1", "127.1.0.4", 9080),
    ("reviews-v2", "reviews", "v2", "127.1.0.5", 9080),
    ("reviews-v3", "reviews", "v3", "127.1.0.6", 9080),
    ("productpage-v1", "productpage", "v1", "127.1.0.7", 9080),
    ("sleep", "sleep", "", "127.1.0.8", None),
]
_SERVICES = [("details", 9080, "10.96.0.11"), ("ratings", 9080, "10.96.0.12"), ("reviews", 9080, "10.96.0.13"),
             ("productpage", 9080, "10.96.0.14"), ("sleep", 80, "10.96.0.15")]


def pod_name(deployment: str) -> str:
    return f"{deployment}-5d8f9c7b6-abcde"


def _pod(deployment: str, app: str, version: str, ip: str, port: int | None, namespace: str = NS) -> Obj:
    labels = {"app": app, "pod-template-hash": "5d8f9c7b6"}
    if version:
        labels["version"] = version
    app_container: Obj = {"name": app, "image": f"docker.io/istio/examples-bookinfo-{deployment}:1.20.3"}
    if port:
        app_container["ports"] = [{"containerPort": port, "protocol": "TCP"}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name(deployment), "namespace": namespace, "labels": labels,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"serviceAccountName": f"bookinfo-{app}",
                     "containers": [app_container, {"name": mesh.SIDECAR_CONTAINER, "image": mesh.PROXY_IMAGE,
                                                    "args": ["proxy", "sidecar"]}]},
            "status": {"phase": "Running", "podIP": ip}}


def client_namespace(namespace: str, ip: str = "127.1.0.40") -> list[Obj]:
    """Another namespace with one sidecar'd client pod in it (`proxy_for(objects, "curl")`), beside Bookinfo's."""
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            _pod("curl", "curl", "", ip, None, namespace)]


def netns_ip(ip: str) -> str:
    """A loopback-mode pod IP (127.1.0.N) as netns mode allocates it (10.244.0.N)."""
    return "10.244." + ip.split(".", 2)[2] if ip.startswith("127.1.") else ip


def bookinfo(netns: bool = False) -> list[Obj]:
    """Bookinfo as stored; `netns`: with pod IPs from a pod CIDR (10.244.0.0/16), as netns mode has them."""
    objs: list[Obj] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
                       {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}]
    pods = [_pod(d, app, v, netns_ip(ip) if netns else ip, port) for d, app, v, ip, port in _WORKLOADS]
    objs += pods
    for name, port, cluster_ip in _SERVICES:
        objs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": name, "namespace": NS, "labels": {"app": name, "service": name}},
                     "spec": {"clusterIP": cluster_ip, "selector": {"app": name},
                              "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}]}})
        members = [p for p in pods if p["metadata"]["labels"]["app"] == name]
        objs.append({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": NS},
                     "subsets": [{"addresses": [
                         {"ip": p["status"]["podIP"], "targetRef": {"kind": "Pod", "namespace": NS,
                                                                    "name": p["metadata"]["name"]}}
                         for p in members], "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}]})
    gw = {"apiVersion": "v1", "kind": "Pod",
          "metadata": {"name": "istio-ingressgateway-6c8d7f9b5-xyz12", "namespace": "istio-system",
                       "labels": {"app": "istio-ingressgateway", "istio": "ingressgateway"}},
          "spec": {"containers": [{"name": mesh.SIDECAR_CONTAINER, "image": mesh.PROXY_IMAGE,
                                   "args": ["proxy", "router"], "ports": [{"containerPort": 8080}]}]},
          "status": {"podIP": netns_ip("127.1.0.9") if netns else "127.1.0.9"}}
    objs.append(gw)
    return objs


def load_scenario(name: str) -> Obj:
    data: Obj = yaml.safe_load((TESTDATA / f"{name}.yaml").read_text())
    return data


def scenario_names() -> list[str]:
    return sorted(p.stem for p in TESTDATA.glob("*.yaml"))


def scenario_objects(scenario: Obj) -> list[Obj]:
    base = {"bookinfo": bookinfo, "bookinfo-netns": lambda: bookinfo(netns=True)}.get(
        scenario.get("base", "bookinfo"), list)()
    extra = []
    objects = [*(load_scenario(scenario["objects_from"]).get("objects") or [] if scenario.get("objects_from") else []),
               *(scenario.get("objects") or [])]
    for i, obj in enumerate(objects):
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", NS)
        meta.setdefault("creationTimestamp", f"2026-01-02T00:00:{i:02d}Z")
        extra.append(obj)
    return base + extra


def build_push(objects: list[Obj], options: MeshOptions | None = None) -> PushContext:
    return PushContext.build(objects, version="test-1", options=options or MeshOptions())


def scenario_options(scenario: Obj) -> MeshOptions:
    opts = scenario.get("options") or {}
    als = opts.get("als_address")
    return MeshOptions(relative_weights=bool(opts.get("relative_weights")),
                       als_address=str(als) if isinstance(als, str) else (str(als[0]), int(als[1])) if als else None,
                       network=opts.get("network") or "loopback", host_netns=opts.get("host_netns"),
                       gateway_ports=PortMap(dict(opts.get("gateway_ports") or {})))


def proxy_for(objects: list[Obj], pod_prefix: str) -> Proxy:
    for obj in objects:
        if obj.get("kind") == "Pod" and obj["metadata"]["name"].startswith(pod_prefix):
            proxy = proxy_from_pod(obj)
            assert proxy is not None, pod_prefix
            return proxy
    raise KeyError(pod_prefix)


def run_scenario(name: str) -> dict[str, Resources]:
    scenario = load_scenario(name)
    objects = scenario_objects(scenario)
    push = build_push(objects, scenario_options(scenario))
    return {p: generate(proxy_for(objects, p), push) for p in scenario["proxies"]}


def as_yaml(name: str, outputs: dict[str, Resources]) -> str:
    scenario = load_scenario(name)
    kinds = scenario.get("golden") or list(SHORT)
    only = re.compile(scenario.get("golden_only") or ".*")
    doc: Obj = {}
    for proxy, resources in outputs.items():
        doc[proxy] = {k: {n: to_dict(m) for n, m in resources[SHORT[k]].items() if only.fullmatch(n)} for k in kinds}
    return yaml.safe_dump(doc, sort_keys=False, width=120, allow_unicode=True)


def to_dict(message: Any) -> Obj:
    """A message as plain JSON data (`Any` fields come back as OrderedDicts, which YAML cannot dump)."""
    out: Obj = json.loads(json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True)))
    return _sort_structs(out)


def _sort_structs(value: Any, in_struct: bool = False) -> Any:
    """protobuf Structs (`metadata`) keep no key order; sort them so golden files are stable."""
    if isinstance(value, dict):
        items = sorted(value.items()) if in_struct else value.items()
        return {k: _sort_structs(v, in_struct or k == "metadata") for k, v in items}
    if isinstance(value, list):
        return [_sort_structs(v, in_struct) for v in value]
    return value


def refresh() -> bool:
    return os.environ.get("REFRESH_GOLDEN", "").lower() in ("1", "true", "yes")


__all__ = ["ADS_ORDER", "bookinfo", "build_push", "proxy_for", "run_scenario", "scenario_names", "as_yaml",
           "refresh", "to_dict", "GOLDEN", "NS", "pod_name", "netns_ip", "scenario_options", "scenario_objects",
           "load_scenario"]
