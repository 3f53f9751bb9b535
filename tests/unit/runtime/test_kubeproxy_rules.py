"""kube-proxy's ClusterIP rules: one DNAT per Service port to its ready endpoints, refusals without any."""

from __future__ import annotations

from typing import Any

from sluice.runtime.netns.kubeproxy import rules


def _svc(name: str, ip: str, ports: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "d"}, "spec": {"clusterIP": ip, "ports": ports, **spec}}


def test_dnat_to_ready_endpoints_by_port_name() -> None:
    eps = {"web": {"subsets": [{"addresses": [{"ip": "10.244.0.3"}, {"ip": "10.244.0.4"}],
                                "notReadyAddresses": [{"ip": "10.244.0.9"}],
                                "ports": [{"name": "http", "port": 8000, "protocol": "TCP"},
                                          {"name": "dns", "port": 53, "protocol": "UDP"}]}]}}
    script = rules([_svc("web", "10.96.0.20", [{"name": "http", "port": 80, "protocol": "TCP"},
                                               {"name": "dns", "port": 53, "protocol": "UDP"}])],
                   lambda ns, n: eps.get(n))
    assert ("services ip daddr 10.96.0.20 tcp dport 80 dnat ip to numgen random mod 2 map "
            "{ 0 : 10.244.0.3 . 8000, 1 : 10.244.0.4 . 8000 }") in script
    assert "10.244.0.9" not in script
    assert "ip daddr 10.96.0.20 udp dport 53 dnat ip to numgen random mod 2" in script


def test_no_endpoints_rejects_and_headless_is_skipped() -> None:
    script = rules([_svc("empty", "10.96.0.21", [{"port": 81}]), _svc("headless", "None", [{"port": 82}])],
                   lambda ns, n: None)
    assert "reject-no-endpoints ip daddr 10.96.0.21 tcp dport 81 reject with tcp reset" in script
    assert "dport 82" not in script
    assert script.startswith("add table ip sluice-kube-proxy\nflush table ip sluice-kube-proxy\n")
