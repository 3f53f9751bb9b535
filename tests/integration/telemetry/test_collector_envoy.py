"""The collector against real Envoys: N requests from one sidecar pod to another service are N in each
reporter's `istio_requests_total`, with the right workloads on both sides.

In-process, no daemon: a Registry and SQLite store (sidecar injection on), the endpoints controller, the
xDS server with the collector's ALS service on the same gRPC port (`MeshOptions.als_address` points every
HTTP connection manager at it), and the local kubelet running the pods as processes with real Envoys.
"""

from __future__ import annotations

import asyncio
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sluice import mesh
from sluice.api.registry import ApiOptions, Registry
from sluice.controllers.endpoints import EndpointsController
from sluice.daemon.state import Home
from sluice.resources.kinds import by_kind
from sluice.runtime.kubelet import Kubelet, KubeletOptions
from sluice.store.sqlite import Store
from sluice.telemetry import Collector
from sluice.xds.envoy import cleanup_shared_memory
from sluice.xds.server import XdsServer
from sluice.xds.translate import MeshOptions
from tests.conftest import free_port
from tests.integration.runtime.harness import SERVER, wait_until

NS = "default"
N = 25


@dataclass
class Mesh:
    registry: Registry
    store: Store
    xds: XdsServer
    collector: Collector
    kubelet: Kubelet
    endpoints: EndpointsController


def _deployment_pod(app: str, version: str, port: int) -> dict[str, Any]:
    """A pod as the Deployment controller writes it (owner ReplicaSet, pod-template-hash)."""
    rs_hash = "7d4b9c6f5"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{app}-{version}-{rs_hash}-q8x2z", "namespace": NS,
        "labels": {"app": app, "version": version, "pod-template-hash": rs_hash},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{app}-{version}-{rs_hash}",
                             "uid": "u-" + app, "controller": True}]},
        "spec": {"serviceAccountName": app, "containers": [
            {"name": app, "image": "local/python", "command": [sys.executable, "-c", SERVER, str(port)],
             "ports": [{"name": "http", "containerPort": port}]}]}}


def _service(app: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "namespace": NS},
            "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": port, "targetPort": port}]}}


@pytest.fixture
async def meshed(tmp_path: Path) -> AsyncIterator[Mesh]:
    store = Store(tmp_path / "db")
    registry = Registry(store, ApiOptions(graceful_pods=True, inject_sidecars=True))
    registry.ensure_namespace(NS)
    home = Home(tmp_path / "home")
    home.root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    xds = XdsServer(store, address=("127.0.0.1", port), options=MeshOptions(als_address=("127.0.0.1", port)),
                    debounce=0.05)
    collector = Collector(store)
    xds.add_servicer(collector.register)
    await xds.start()
    await collector.start()
    endpoints = EndpointsController(registry, store)
    await endpoints.start()
    kubelet = Kubelet(registry, store, home.root, xds_address=("127.0.0.1", port),
                      options=KubeletOptions(backoff_base=0.3, backoff_max=2.0, drain_seconds=0.2,
                                             down_grace_seconds=3))
    await kubelet.start()
    try:
        yield Mesh(registry, store, xds, collector, kubelet, endpoints)
    finally:
        await kubelet.stop(stop_pods=True)
        await endpoints.stop()
        await collector.stop()
        await xds.stop()
        store.close()
        cleanup_shared_memory()


def _ready(m: Mesh, name: str) -> bool:
    pod = m.store.get("pods", NS, name) or {}
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _via(proxy_ip: str, url: str) -> int:
    """A request sent the way the client pod's app sends it: through its sidecar as an HTTP proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://{proxy_ip}:15001"}))
    try:
        with opener.open(url, timeout=5) as r:
            r.read()
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _requests(m: Mesh, reporter: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(lbl), v) for lbl, v in m.collector.registry.samples()
            if dict(lbl)["__name__"] == "istio_requests_total" and dict(lbl)["reporter"] == reporter]


async def test_n_requests_are_n_per_reporter(meshed: Mesh) -> None:
    m = meshed
    pod_rt, svc_rt = by_kind("", "Pod"), by_kind("", "Service")
    assert pod_rt is not None and svc_rt is not None
    m.registry.create(svc_rt, "v1", NS, _service("web", 9080))
    client = m.registry.create(pod_rt, "v1", NS, _deployment_pod("client", "v1", 8080)).object
    web = m.registry.create(pod_rt, "v1", NS, _deployment_pod("web", "v2", 9080)).object
    for p in (client, web):
        assert any(c["name"] == mesh.SIDECAR_CONTAINER for c in p["spec"]["containers"])  # injected
    cname, wname = client["metadata"]["name"], web["metadata"]["name"]
    await wait_until(lambda: _ready(m, cname) and _ready(m, wname), timeout=60)
    client_ip = (m.store.get("pods", NS, cname) or {})["status"]["podIP"]
    web_ip = (m.store.get("pods", NS, wname) or {})["status"]["podIP"]

    # The route and endpoints reach the client's sidecar asynchronously: warm up until a request lands,
    # then count only what is sent after the collector has seen the warm-up (so N is exact).
    url = "http://web:9080/hello"
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + 60
    while await loop.run_in_executor(None, _via, client_ip, url) != 200:
        assert time.monotonic() < deadline, "the client's sidecar never routed to web"
        await asyncio.sleep(0.2)
    await wait_until(lambda: _requests(m, "source") and _requests(m, "destination"), timeout=30)
    await asyncio.sleep(1.5)  # let any other warm-up entries flush (Envoy batches ALS every second)
    before = {r: sum(v for _, v in _requests(m, r)) for r in ("source", "destination")}

    codes = [await loop.run_in_executor(None, _via, client_ip, url) for _ in range(N)]
    assert codes == [200] * N

    def counted() -> dict[str, float]:
        return {r: sum(v for _, v in _requests(m, r)) - before[r] for r in ("source", "destination")}

    await wait_until(lambda: counted() == {"source": N, "destination": N}, timeout=30, interval=0.1)
    await asyncio.sleep(2.5)  # two more flush intervals: nothing may be counted twice
    assert counted() == {"source": N, "destination": N}
    assert m.collector.stats.dropped == 0

    for reporter, proxy_ip, pod_name in (("source", client_ip, cname), ("destination", web_ip, wname)):
        # Warm-up requests may have met a sidecar without endpoints yet (503 UH): other series.
        [(labels, _)] = [(lbl, v) for lbl, v in _requests(m, reporter) if lbl["response_code"] == "200"]
        assert labels["pod"] == pod_name and labels["instance"] == f"{proxy_ip}:15020"
        assert {k: labels.get(k) for k in (
            "source_workload", "source_workload_namespace", "source_app", "source_version",
            "source_canonical_service", "source_canonical_revision",
            "destination_workload", "destination_workload_namespace", "destination_app", "destination_version",
            "destination_canonical_service", "destination_canonical_revision",
            "destination_service", "destination_service_name", "destination_service_namespace",
            "request_protocol", "response_code", "response_flags")} == {
            "source_workload": "client-v1", "source_workload_namespace": NS, "source_app": "client",
            "source_version": "v1", "source_canonical_service": "client", "source_canonical_revision": "v1",
            "destination_workload": "web-v2", "destination_workload_namespace": NS, "destination_app": "web",
            "destination_version": "v2", "destination_canonical_service": "web",
            "destination_canonical_revision": "v2", "destination_service": mesh.fqdn("web", NS),
            "destination_service_name": "web", "destination_service_namespace": NS,
            "request_protocol": "http", "response_code": "200", "response_flags": "-"}
        assert labels["connection_security_policy"] == ("unknown" if reporter == "source" else "none")

    # Durations and sizes were recorded for every request (wire bytes are never zero for HTTP/1.1).
    samples: dict[tuple[str, str], float] = {}
    for lbl, v in m.collector.registry.samples():
        d = dict(lbl)
        if d["__name__"].endswith("_count"):
            samples[d["__name__"], d["reporter"]] = samples.get((d["__name__"], d["reporter"]), 0) + v
    for reporter in ("source", "destination"):
        total = before[reporter] + N
        assert samples[("istio_request_duration_milliseconds_count", reporter)] == total
        assert samples[("istio_request_bytes_count", reporter)] == total
    sizes = [v for lbl, v in m.collector.registry.samples()
             if dict(lbl)["__name__"] in ("istio_request_bytes_sum", "istio_response_bytes_sum")]
    assert sizes and all(v > 0 for v in sizes)
