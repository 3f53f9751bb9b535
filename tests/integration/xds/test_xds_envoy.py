"""The xDS server against one real Envoy: connect and ACK, pushes, EDS-only changes, NACK, reconnect.

Runs `XdsServer` in-process on a free loopback port over a temporary SQLite store, with the stub
generator (tests/integration/xds/stub.py) in place of the translation, and one Envoy 1.40 bootstrapped
by `proxy_bootstrap`. Every check reads Envoy's own admin endpoints or the server's status.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from sluice import mesh
from sluice.cli.main import cli
from sluice.store.sqlite import Store
from sluice.xds import debug
from sluice.xds.bootstrap import proxy_bootstrap
from sluice.xds.envoy import cleanup_shared_memory, envoy_command
from sluice.xds.server import XdsServer
from sluice.xds.status import ProxyStatus, SyncState
from tests.conftest import free_port
from tests.integration.xds.stub import StubGenerator

NS = "xdstest"
POD = "sleep-5d8f7c9b4-x2x7k"
TIMEOUT = 20.0


def _obj(kind: str, name: str, labels: dict[str, str] | None = None, **rest: Any) -> dict[str, Any]:
    api = "networking.istio.io/v1" if kind == "VirtualService" else "v1"
    meta: dict[str, Any] = {"name": name} if kind == "Namespace" else {"name": name, "namespace": NS}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": api, "kind": kind, "metadata": meta, **rest}


def _service(name: str) -> dict[str, Any]:
    return _obj("Service", name, spec={"ports": [{"name": "http", "port": 9080, "targetPort": 9080}],
                                       "selector": {"app": name}})


def _endpoints(name: str, *ips: str) -> dict[str, Any]:
    return _obj("Endpoints", name, subsets=[{"addresses": [{"ip": ip} for ip in ips],
                                            "ports": [{"name": "http", "port": 9080}]}])


def _vs(regex: str) -> dict[str, Any]:
    return _obj("VirtualService", "reviews", spec={"hosts": ["reviews"], "http": [
        {"match": [{"uri": {"regex": regex}}], "route": [{"destination": {"host": "reviews"}}]}]})


@pytest.fixture
def pod_ip() -> str:
    # A loopback address outside the runtime's pod network, so a concurrently running daemon cannot clash.
    return f"127.9.{random.randint(1, 254)}.{random.randint(2, 254)}"


@pytest.fixture
def store(tmp_path: Path, pod_ip: str) -> Iterator[Store]:
    s = Store(tmp_path / "store.db")
    s.create("namespaces", _obj("Namespace", NS))
    s.create("services", _service("reviews"))
    s.create("endpoints", _endpoints("reviews", "127.9.0.7"))
    s.create("pods", _obj("Pod", POD, labels={"app": "sleep"}, spec={"containers": [{"name": "sleep", "image": "curlimages/curl"}]},
                          status={"phase": "Running", "podIP": pod_ip}))
    yield s
    s.close()


class Envoy:
    def __init__(self, tmp: Path, pod: dict[str, Any], pod_ip: str, xds_port: int) -> None:
        self.admin = ("127.0.0.1", free_port())
        boot = proxy_bootstrap(node_id=mesh.sidecar_node_id(pod_ip, POD, NS), pod=pod, pod_ip=pod_ip,
                               xds_address=("127.0.0.1", xds_port), admin_address=self.admin, cluster=f"sleep.{NS}")
        path = tmp / "envoy.json"
        path.write_text(json.dumps(boot))
        self.log = open(tmp / "envoy.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(envoy_command(path), stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    async def get(self, path: str) -> Any:
        async with aiohttp.ClientSession() as http, http.get(f"http://{self.admin[0]}:{self.admin[1]}{path}") as r:
            return await r.json(content_type=None) if "json" in path or path.startswith("/config_dump") \
                else await r.text()

    async def config(self) -> dict[str, Any]:
        """{"clusters": {name: version}, "routes": {name: (version, config)}, ...} from /config_dump."""
        dump = await self.get("/config_dump")
        out: dict[str, Any] = {"clusters": {}, "routes": {}, "listeners": {}}
        for section in dump["configs"]:
            for c in section.get("dynamic_active_clusters", []):
                out["clusters"][c["cluster"]["name"]] = c["version_info"]
            for r in section.get("dynamic_route_configs", []):
                out["routes"][r["route_config"]["name"]] = (r["version_info"], r["route_config"])
            for lst in section.get("dynamic_listeners", []):
                out["listeners"][lst["name"]] = lst.get("active_state", {}).get("version_info")
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        cleanup_shared_memory()


async def _until(pred: Any, timeout: float = TIMEOUT) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await pred()
        if value or loop.time() > deadline:
            assert value, "condition not met in time"
            return value
        await asyncio.sleep(0.05)


async def _check_debug_and_cli(xds: XdsServer, envoy: Envoy, reviews: str) -> None:
    """/debug/syncz, /debug/config_dump and `sluice proxy-config` agree with what Envoy holds."""
    app = web.Application()
    app.add_routes(debug.routes(xds))
    async with TestClient(TestServer(app)) as client:
        syncz = await (await client.get("/debug/syncz")).json()
        assert [p["proxy"] for p in syncz] == [f"{POD}.{NS}"]
        assert {k: v["state"] for k, v in syncz[0]["types"].items()} == dict.fromkeys(("CDS", "EDS", "LDS", "RDS"), "SYNCED")
        assert syncz[0]["cluster_sent"] == syncz[0]["cluster_acked"] != ""
        dump = await (await client.get("/debug/config_dump", params={"proxyID": f"{POD}.{NS}"})).json()
        sent = [c["cluster"]["name"] for s in dump["configs"] for c in s.get("dynamic_active_clusters", [])]
        assert sent == [reviews]
        assert (await client.get("/debug/config_dump", params={"proxyID": "nope.none"})).status == 404
    runner = CliRunner()
    admin = f"{envoy.admin[0]}:{envoy.admin[1]}"
    out = runner.invoke(cli, ["proxy-config", "clusters", f"{POD}.{NS}", "--admin-address", admin])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].split() == ["SERVICE", "FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION", "RULE"]
    assert any(line.split()[:5] == [mesh.fqdn("reviews", NS), "9080", "-", "outbound", "EDS"] for line in lines)
    out = runner.invoke(cli, ["proxy-config", "routes", f"{POD}.{NS}", "--admin-address", admin])
    assert out.exit_code == 0 and any(line.startswith("http_proxy") and "/*" in line
                                      for line in out.output.splitlines()), out.output
    out = runner.invoke(cli, ["proxy-config", "endpoints", f"{POD}.{NS}", "--admin-address", admin,
                              "--name", reviews])
    assert out.exit_code == 0 and out.output.splitlines()[1].split() == ["127.9.0.7:9080", "HEALTHY", "OK", reviews]
    out = runner.invoke(cli, ["proxy-config", "listeners", f"{POD}.{NS}", "--admin-address", admin, "-o", "json"])
    assert out.exit_code == 0 and json.loads(out.output)[0]["name"].endswith("_15001")


def _versions(status: list[ProxyStatus]) -> dict[str, str | None]:
    [proxy] = status
    return {k: v.acked_version for k, v in proxy.types.items()}


async def _via_proxy(pod_ip: str, host: str) -> str:
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://{host}/", proxy=f"http://{pod_ip}:{mesh.PROXY_OUTBOUND_PORT}") as r:
        return f"{r.status} {await r.text()}"


async def test_xds_server_drives_a_real_envoy(tmp_path: Path, store: Store, pod_ip: str) -> None:
    gen = StubGenerator()
    xds = XdsServer(store, address=("127.0.0.1", 0), generator=gen, debounce=0.05)
    await xds.start()
    envoy = Envoy(tmp_path, store.get("pods", NS, POD) or {}, pod_ip, xds.address[1])
    try:
        # 1. Envoy connects, receives all four types and ACKs them.
        assert await xds.wait_synced(TIMEOUT, min_proxies=1) and xds.status, (tmp_path / "envoy.log").read_text()
        [proxy] = xds.status
        assert proxy.proxy == f"{POD}.{NS}" and proxy.pod == POD and proxy.istio_version
        assert {k: v.state for k, v in proxy.types.items()} == {t: SyncState.SYNCED for t in ("CDS", "EDS", "LDS", "RDS")}
        cfg = await envoy.config()
        reviews = mesh.outbound_cluster(9080, "", mesh.fqdn("reviews", NS))
        assert reviews in cfg["clusters"] and "http_proxy" in cfg["routes"]
        assert await _until(lambda: _via_proxy(pod_ip, "direct:9080")) == "200 direct\n"
        await _check_debug_and_cli(xds, envoy, reviews)

        # 2. A config change (a new Service) is pushed and shows in Envoy's config dump.
        before = _versions(xds.status)
        store.create("services", _service("ratings"))
        store.create("endpoints", _endpoints("ratings", "127.9.0.8"))
        assert await xds.wait_synced(TIMEOUT, min_proxies=1)
        ratings = mesh.outbound_cluster(9080, "", mesh.fqdn("ratings", NS))
        cfg = await envoy.config()
        assert ratings in cfg["clusters"]
        assert any("ratings" in vh["domains"] for vh in cfg["routes"]["http_proxy"][1]["virtual_hosts"])
        after = _versions(xds.status)
        assert after["CDS"] != before["CDS"] and after["RDS"] != before["RDS"] and after["LDS"] == before["LDS"]

        # 3. An endpoint-only change moves EDS alone.
        before = after
        ep = store.get("endpoints", NS, "reviews") or {}
        ep["subsets"][0]["addresses"] = [{"ip": "127.9.0.17"}]
        store.update("endpoints", ep)
        assert await xds.wait_synced(TIMEOUT, min_proxies=1)
        after = _versions(xds.status)
        assert after["EDS"] != before["EDS"]
        assert {k: after[k] for k in ("CDS", "LDS", "RDS")} == {k: before[k] for k in ("CDS", "LDS", "RDS")}
        clusters = await envoy.get("/clusters?format=json")
        hosts = {h["address"]["socket_address"]["address"] for c in clusters["cluster_statuses"]
                 if c["name"] == reviews for h in c.get("host_statuses", [])}
        assert hosts == {"127.9.0.17"}

        # 4. An invalid route is NACKed: shown with Envoy's error, not re-sent, last good config still served.
        good_rds = after["RDS"]
        store.create("virtualservices.networking.istio.io", _vs("(("))

        async def nacked() -> ProxyStatus | None:
            [p] = xds.status
            return p if p.types["RDS"].state is SyncState.NACK else None

        proxy = await _until(nacked)
        rds = proxy.types["RDS"]
        assert rds.nack_error and "missing )" in rds.nack_error, rds.nack_error  # RE2 via Envoy
        assert rds.acked_version == good_rds and rds.sent_version != good_rds
        generated, sent_nonce = gen.generated, rds.sent_nonce
        await asyncio.sleep(1.0)
        [proxy] = xds.status
        assert proxy.types["RDS"].sent_nonce == sent_nonce, "the rejected version was sent again"
        assert proxy.types["RDS"].state is SyncState.NACK and gen.generated == generated
        assert (await envoy.config())["routes"]["http_proxy"][0] == good_rds
        assert await _via_proxy(pod_ip, "direct:9080") == "200 direct\n"
        assert not await xds.wait_synced(0.2)

        # ... and the next config change (a valid regex) is sent and accepted.
        vs = store.get("virtualservices.networking.istio.io", NS, "reviews") or {}
        vs["spec"]["http"][0]["match"][0]["uri"]["regex"] = "/reviews/[0-9]+"
        store.update("virtualservices.networking.istio.io", vs)
        assert await xds.wait_synced(TIMEOUT, min_proxies=1)
        [proxy] = xds.status
        assert proxy.types["RDS"].state is SyncState.SYNCED and proxy.types["RDS"].nack_error is None

        # 5. The server restarts on the same port: Envoy reconnects and is configured again.
        port = xds.address[1]
        await xds.stop()
        xds = XdsServer(store, address=("127.0.0.1", port), generator=StubGenerator(), debounce=0.05)
        await xds.start()
        assert await xds.wait_synced(TIMEOUT, min_proxies=1)
        store.create("services", _service("details"))
        assert await xds.wait_synced(TIMEOUT, min_proxies=1)
        assert mesh.outbound_cluster(9080, "", mesh.fqdn("details", NS)) in (await envoy.config())["clusters"]
        assert await _via_proxy(pod_ip, "direct:9080") == "200 direct\n"
    finally:
        envoy.stop()
        await xds.stop()


async def test_real_translation_configures_envoy(tmp_path: Path, pod_ip: str) -> None:
    """The same loop with `sluice.xds.translate` instead of the stub: Envoy accepts what it generates."""
    pytest.importorskip("sluice.xds.translate")
    store = Store(tmp_path / "real.db")
    store.create("namespaces", _obj("Namespace", NS))
    store.create("services", _service("reviews"))
    store.create("endpoints", _endpoints("reviews", "127.9.0.7"))
    store.create("pods", _obj("Pod", POD, labels={"app": "sleep"}, spec={"containers": [
        {"name": "sleep", "image": "curlimages/curl", "ports": [{"containerPort": 8080}]},
        {"name": mesh.SIDECAR_CONTAINER, "image": mesh.PROXY_IMAGE}]},
        status={"phase": "Running", "podIP": pod_ip}))
    xds = XdsServer(store, address=("127.0.0.1", 0), debounce=0.05)
    await xds.start()
    envoy = Envoy(tmp_path, store.get("pods", NS, POD) or {}, pod_ip, xds.address[1])
    try:
        assert await xds.wait_synced(TIMEOUT, min_proxies=1), [p.to_json() for p in xds.status]
        [proxy] = xds.status
        assert all(v.state is SyncState.SYNCED for v in proxy.types.values()), proxy.to_json()
        reviews = mesh.outbound_cluster(9080, "", mesh.fqdn("reviews", NS))
        assert reviews in (await envoy.config())["clusters"]
        before = _versions(xds.status)
        ep = store.get("endpoints", NS, "reviews") or {}
        ep["subsets"][0]["addresses"] = [{"ip": "127.9.0.17"}]
        store.update("endpoints", ep)
        assert await xds.wait_synced(TIMEOUT, min_proxies=1)
        after = _versions(xds.status)
        assert [k for k in after if after[k] != before[k]] == ["EDS"]
    finally:
        envoy.stop()
        await xds.stop()
        store.close()
