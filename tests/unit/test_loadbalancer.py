"""Sluice's load balancer as the API server applies it: a LoadBalancer Service's ingress address, and ports moved by
`gateway_ports` (or by missing privileges) stored where they are served, so `.spec.ports[].port` tells the truth."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sluice.api.registry import ApiOptions, Registry
from sluice.resources.kinds import by_kind
from sluice.resources.loadbalancer import PortMap, assign
from sluice.store.sqlite import Store

GATEWAY = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
           "spec": {"type": "LoadBalancer", "selector": {"istio": "ingressgateway"}, "ports": [
               {"name": "status-port", "port": 15021, "targetPort": 15021},
               {"name": "http2", "port": 80, "targetPort": 8080},
               {"name": "https", "port": 443, "targetPort": 8443}]}}


def test_ports_move_by_setting_and_without_privileges() -> None:
    ports = PortMap({80: 18080}, unprivileged_below=1024)
    assert [ports.host(p) for p in (80, 443, 15021)] == [18080, 8443, 15021]
    assert PortMap().host(80) == 80  # root: every port as written


@pytest.mark.parametrize("setting, message", [
    ([80], "must be a map"), ({80: "x"}, "not a port number pair"), ({80: 70000}, "between 1 and 65535"),
])
def test_a_bad_setting_is_named(setting: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PortMap.from_setting(setting)


def test_assign_sets_the_address_only_for_load_balancers() -> None:
    svc = copy.deepcopy(GATEWAY)
    assign(svc, PortMap({80: 18080, 443: 18443}))
    assert [p["port"] for p in svc["spec"]["ports"]] == [15021, 18080, 18443]
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == [15021, 8080, 8443]
    assert svc["status"] == {"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ipMode": "VIP"}]}}
    plain = {"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}
    assign(plain, PortMap({80: 18080}))
    assert plain["spec"]["ports"] == [{"port": 80}] and plain["status"] == {"loadBalancer": {}}


def test_the_registry_stores_moved_ports_and_reapplying_keeps_them(tmp_path: Path) -> None:
    reg = Registry(Store(tmp_path / "db"), ApiOptions(gateway_ports=PortMap({80: 18080, 443: 18443})))
    reg.ensure_namespace("istio-system")
    rt = by_kind("", "Service")
    assert rt is not None
    stored = reg.create(rt, "v1", "istio-system", copy.deepcopy(GATEWAY)).object
    assert [p["port"] for p in stored["spec"]["ports"]] == [15021, 18080, 18443]
    assert stored["status"]["loadBalancer"]["ingress"][0]["ip"] == "127.0.0.1"
    # kubectl apply's patch for the manifest as written adds port 80 beside the stored 18080 (merge key `port`)
    patch = {"spec": {"$setElementOrder/ports": [{"port": 15021}, {"port": 80}, {"port": 443}],
                      "ports": [{"name": "http2", "port": 80, "targetPort": 8080},
                                {"name": "https", "port": 443, "targetPort": 8443}]}}
    out = reg.patch(rt, "v1", "istio-system", "istio-ingressgateway", "application/strategic-merge-patch+json",
                    json.dumps(patch).encode()).object
    assert [(p["name"], p["port"]) for p in out["spec"]["ports"]] == [
        ("status-port", 15021), ("http2", 18080), ("https", 18443)]
