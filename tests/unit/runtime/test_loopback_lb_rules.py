"""The loopback load balancer's rules in a pod: 127.0.0.1:<LoadBalancer port> → the Service's endpoints, never
for the sidecar, the pod's declared ports or Istio's; and its applier following Services and Endpoints."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice.runtime.netns.dial import DIAL_MARK
from sluice.runtime.netns.loopback_lb import ISTIO_PORTS, LoopbackBalancer, own_ports, rules
from sluice.store.sqlite import Store

T = "add rule ip sluice-loopback-lb"


def _gateway_svc(ports: list[dict[str, Any]], ingress: list[dict[str, Any]] | None = None,
                 type_: str = "LoadBalancer", name: str = "istio-ingressgateway") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "istio-system"},
            "spec": {"type": type_, "clusterIP": "10.96.0.30", "ports": ports},
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}] if ingress is None else ingress}}}


def _endpoints(ips: list[str], ports: list[dict[str, Any]], name: str = "istio-ingressgateway") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": "istio-system"},
            "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": ports}]}


GW_PORTS = [{"name": "status-port", "port": 15021, "targetPort": 15021},
            {"name": "http2", "port": 80, "targetPort": 8080},
            {"name": "tcp", "port": 31400, "targetPort": 31400}]
GW_EP_PORTS = [{"name": "status-port", "port": 15021}, {"name": "http2", "port": 8080},
               {"name": "tcp", "port": 31400}]


def test_loadbalancer_ports_on_127_0_0_1_go_to_the_endpoints_at_their_target_port() -> None:
    ep = _endpoints(["10.244.0.5"], GW_EP_PORTS)
    script = rules([_gateway_svc(GW_PORTS)], lambda ns, n: ep if (ns, n) == ("istio-system", n) else None,
                   own_ports({}))
    assert f"{T} services ip daddr 127.0.0.1 tcp dport 80 dnat to 10.244.0.5:8080" in script
    assert f"{T} services ip daddr 127.0.0.1 tcp dport 31400 dnat to 10.244.0.5:31400" in script
    assert "dport 15021 dnat" not in script  # Istio's own port: the pod's sidecar keeps it
    # the return path: a loopback source leaving the pod becomes the pod's IP
    assert f'{T} postrouting oifname != "lo" ip saddr 127.0.0.0/8 masquerade' in script
    assert script.startswith("add table ip sluice-loopback-lb\nflush table ip sluice-loopback-lb\n")


def test_several_endpoints_are_picked_at_random_as_kube_proxy_does() -> None:
    ep = _endpoints(["10.244.0.5", "10.244.0.6"], GW_EP_PORTS)
    script = rules([_gateway_svc(GW_PORTS)], lambda ns, n: ep, ())
    assert (f"{T} services ip daddr 127.0.0.1 tcp dport 31400 dnat ip to numgen random mod 2 map "
            "{ 0 : 10.244.0.5 . 31400, 1 : 10.244.0.6 . 31400 }") in script


def test_the_sidecar_and_the_pods_declared_ports_are_left_alone() -> None:
    pod = {"metadata": {"annotations": {"status.sidecar.istio.io/port": "15999"}},
           "spec": {"containers": [{"name": "app", "ports": [{"containerPort": 31400}]},
                                   {"name": "istio-proxy", "ports": [{"containerPort": 15090, "name": "m"}]}],
                    "initContainers": [{"name": "init", "ports": [{"containerPort": 7070, "protocol": "UDP"}]}]}}
    own = own_ports(pod)
    assert set(own) == {31400, 7070, 15999, *ISTIO_PORTS}
    script = rules([_gateway_svc(GW_PORTS)], lambda ns, n: _endpoints(["10.244.0.5"], GW_EP_PORTS), own)
    lines = script.splitlines()
    skip = [f"{T} output meta skuid 1337 return", f"{T} output meta skgid 1337 return",
            f"{T} output meta mark {DIAL_MARK:#x} return",  # the daemon's port-forward into the pod
            f"{T} output meta l4proto {{ tcp, udp }} th dport {{ {', '.join(map(str, sorted(own)))} }} return"]
    jump = f"{T} output jump services"
    assert all(lines.index(s) < lines.index(jump) for s in skip)  # checked before any DNAT
    assert "dport 31400 dnat" not in script  # the pod's own port: its 127.0.0.1:31400 stays its own
    assert f"{T} services ip daddr 127.0.0.1 tcp dport 80 dnat to 10.244.0.5:8080" in script


def test_only_loadbalancers_with_a_loopback_ingress_and_ready_endpoints() -> None:
    ep = _endpoints(["10.244.0.5"], GW_EP_PORTS)
    services = [_gateway_svc(GW_PORTS, ingress=[]),  # no status yet
                _gateway_svc(GW_PORTS, type_="ClusterIP", name="plain"),
                _gateway_svc(GW_PORTS, ingress=[{"ip": "203.0.113.7"}], name="cloud"),
                _gateway_svc(GW_PORTS, ingress=[{"hostname": "lb.example"}], name="named")]
    assert " services " not in rules(services, lambda ns, n: ep, ())
    # no ready endpoint: no rule, the pod's own kernel answers (refused)
    not_ready = {"subsets": [{"notReadyAddresses": [{"ip": "10.244.0.5"}], "ports": GW_EP_PORTS}]}
    assert " services " not in rules([_gateway_svc(GW_PORTS)], lambda ns, n: not_ready, ())
    # another loopback address is its own match
    script = rules([_gateway_svc(GW_PORTS, ingress=[{"ip": "127.0.0.2"}])], lambda ns, n: ep, ())
    assert f"{T} services ip daddr 127.0.0.2 tcp dport 80 dnat to 10.244.0.5:8080" in script


def test_udp_ports_and_a_port_two_services_claim() -> None:
    ports = [{"name": "dns", "port": 5353, "protocol": "UDP"}, {"name": "sctp", "port": 9, "protocol": "SCTP"}]
    ep = {"subsets": [{"addresses": [{"ip": "10.244.0.7"}],
                       "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                                 {"name": "sctp", "port": 9, "protocol": "SCTP"}]}]}
    script = rules([_gateway_svc(ports, name="b"), _gateway_svc(ports, name="a")], lambda ns, n: ep, ())
    assert script.count("udp dport 5353 dnat") == 1  # the first by namespace/name has it
    assert f"{T} services ip daddr 127.0.0.1 udp dport 5353 dnat to 10.244.0.7:53" in script
    assert "sctp" not in script


def test_incoming_localnet_is_blocked_except_replies() -> None:
    script = rules([], lambda ns, n: None, ())
    assert (f'{T} input iifname != "lo" ip daddr 127.0.0.0/8 ip saddr != 127.0.0.0/8 '
            "ct state != { established, related } ct status & dnat == 0 drop") in script


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None, reason="needs root and nft")
def test_the_script_is_valid_nft() -> None:
    ep = _endpoints(["10.244.0.5", "10.244.0.6"], [*GW_EP_PORTS, {"name": "dns", "port": 53, "protocol": "UDP"}])
    ports = [*GW_PORTS, {"name": "dns", "port": 5353, "protocol": "UDP"}]
    script = rules([_gateway_svc(ports)], lambda ns, n: ep, own_ports({}))
    # `-c`: checked by the kernel, never committed
    done = subprocess.run(["nft", "-c", "-f", "-"], input=script, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "store.db")
    yield s
    s.close()


async def _wait(cond: Any, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_the_rules_follow_services_endpoints_and_pods(store: Store) -> None:
    applied: dict[str, str] = {}

    def apply(ip: str, script: str) -> None:
        applied[ip] = script

    lb = LoopbackBalancer(store, apply, debounce=0.001)
    await lb.start()
    try:
        await lb.add_pod("10.244.0.9", {"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 80}]}]}})
        await lb.add_pod("10.244.0.10", {})
        assert " services " not in applied["10.244.0.10"]  # no Service yet, already the table
        store.create("services", _gateway_svc(GW_PORTS))
        store.create("endpoints", _endpoints(["10.244.0.5"], GW_EP_PORTS))
        await _wait(lambda: "dport 31400 dnat to 10.244.0.5:31400" in applied["10.244.0.10"])
        assert "dport 80 dnat" in applied["10.244.0.10"]
        assert "dport 80 dnat" not in applied["10.244.0.9"]  # that pod's own port
        # the gateway pod moves: every pod follows
        store.update("endpoints", _endpoints(["10.244.0.6"], GW_EP_PORTS))
        await _wait(lambda: all("dnat to 10.244.0.6:31400" in s for s in applied.values()))
        # a pod gone is never written again
        await lb.remove_pod("10.244.0.9")
        before = applied.pop("10.244.0.9")
        store.delete("services", "istio-system", "istio-ingressgateway")
        await _wait(lambda: " services " not in applied["10.244.0.10"])
        assert "10.244.0.9" not in applied and "dnat" in before
    finally:
        await lb.stop()


async def test_a_failed_apply_is_retried(store: Store) -> None:
    calls: list[str] = []

    def apply(ip: str, script: str) -> None:
        calls.append(ip)
        if ip == "10.244.0.11" and calls.count(ip) == 2:
            raise RuntimeError("nft: busy")

    lb = LoopbackBalancer(store, apply, debounce=0.001)
    await lb.start()
    try:
        await lb.add_pod("10.244.0.11", {})
        store.create("services", _gateway_svc(GW_PORTS))
        store.create("endpoints", _endpoints(["10.244.0.5"], GW_EP_PORTS))
        await _wait(lambda: calls.count("10.244.0.11") >= 3)  # failed once, written again
    finally:
        await lb.stop()
