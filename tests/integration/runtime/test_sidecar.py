"""Pods with an `istio-proxy` container: a real Envoy on the pod IP in front of the app on the app IP."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sluice import mesh
from sluice.resources.injection import status_probes
from sluice.runtime.kubelet import KubeletOptions
from sluice.runtime.netns.dial import http_fetch
from tests.integration.runtime.harness import (
    POD,
    Cluster,
    http_get,
    listening,
    pod,
    server_container,
    start_cluster,
    stop_cluster,
    wait_until,
)


def admin_socket(c: Cluster, ip: str) -> Path:
    return c.kubelet.layout.admin_socket(ip)


async def admin_get(path: Path, url: str) -> tuple[int, bytes]:
    """GET from an Envoy admin on a Unix socket: (status, body), (0, b"") if nothing answers."""
    try:
        return await http_fetch(None, str(path), url, timeout=3)
    except (OSError, TimeoutError, ValueError):
        return 0, b""

PROXY = {"name": mesh.SIDECAR_CONTAINER, "image": mesh.PROXY_IMAGE, "args": ["proxy", "sidecar"]}


def static_bootstrap(*, node_id: str, pod: dict[str, Any], pod_ip: str, xds_address: tuple[str, int],
                     admin_address: str, cluster: str) -> dict[str, Any]:
    """No control plane: one static inbound listener per container port, pod IP → app IP."""
    app = mesh.app_ip(pod_ip)
    listeners, clusters = [], []
    for c in pod["spec"]["containers"]:
        for p in c.get("ports") or []:
            port = p["containerPort"]
            name = mesh.inbound_cluster(port)
            clusters.append({"name": name, "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
                "cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                    "socket_address": {"address": app, "port_value": port}}}}]}]}})
            listeners.append({"name": f"inbound-{port}", "address": {"socket_address": {
                "address": pod_ip, "port_value": port}}, "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.tcp_proxy", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                        "stat_prefix": name, "cluster": name}}]}]})
    return {"node": {"id": node_id, "cluster": cluster},
            "admin": {"address": {"pipe": {"path": admin_address, "mode": 0o600}}},
            "static_resources": {"listeners": listeners, "clusters": clusters}}


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = await start_cluster(tmp_path, KubeletOptions(backoff_base=0.3, backoff_max=2.0, drain_seconds=0.2,
                                                     down_grace_seconds=3, bootstrap_factory=static_bootstrap))
    yield c
    await stop_cluster(c)


async def test_sidecar_fronts_the_app_and_stops_last(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "term.txt"
    obj = pod("meshed", [server_container(port=9080, env=[{"name": "MARKER", "value": str(marker)}]), PROXY],
              sidecar=True, terminationGracePeriodSeconds=5)
    cluster.create(obj)
    ip = await wait_until(lambda: cluster.status("meshed").get("podIP"))
    app = mesh.app_ip(ip)
    await wait_until(lambda: cluster.ready("meshed"), timeout=30)
    proxy = cluster.container("meshed", mesh.SIDECAR_CONTAINER)
    assert proxy["ready"] and proxy["imageID"] == "sluice://builtin/envoy-sidecar"
    # Inbound: pod IP (Envoy) → app IP (the app); the app itself is not on the pod IP.
    await wait_until(lambda: listening(app, 9080))  # Ready (no probe) means started, not listening
    assert http_get(f"http://{ip}:9080/x") == (200, "meshed /x")
    assert http_get(f"http://{app}:9080/y") == (200, "meshed /y")
    admin = admin_socket(cluster, ip)
    assert (await admin_get(admin, "/ready"))[0] == 200
    # The Envoy node id follows Istio's convention.
    assert json.loads((await admin_get(admin, "/server_info"))[1])["node"]["id"] == \
        mesh.sidecar_node_id(ip, "meshed", "default")
    # The app's environment points at its sidecar.
    env_file = next((cluster.home.root / "runtime" / "pods").glob("*/containers/app/0.pid"))
    pid = int(env_file.read_text().split()[0])
    environ = dict(kv.split("=", 1) for kv in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in kv)
    assert environ["HTTP_PROXY"] == environ["http_proxy"] == f"http://{ip}:15001"
    assert environ["NO_PROXY"] == f"localhost,127.0.0.1,{app}" and environ["SLUICE_BIND"] == app
    # Termination: the app gets SIGTERM while Envoy still runs; then Envoy goes too.
    cluster.registry.delete(POD, "v1", "default", "meshed", {})
    await wait_until(lambda: marker.exists() and "SIGTERM" in marker.read_text(), timeout=15)
    await wait_until(lambda: not listening(app, 9080), timeout=15)
    await wait_until(lambda: cluster.get("meshed") is None)
    assert not admin.exists()  # the pod is gone, and its Envoy's socket with it


async def test_app_sees_envoy_alive_at_sigterm(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "term.txt"
    script = ("import os, signal, socket, sys, time\n"
              "def term(*_):\n"
              "    try:\n        c = socket.socket(socket.AF_UNIX)\n        c.settimeout(2)\n"
              f"        c.connect(os.path.join({str(cluster.kubelet.layout.admin_sockets)!r}, os.environ['POD_IP']"
              " + '.sock'))\n"
              "        c.sendall(b'GET /ready HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')\n"
              "        s = c.recv(100).split()[1].decode()\n"
              "    except Exception as e:\n        s = type(e).__name__\n"
              f"    open({str(marker)!r}, 'w').write('envoy %s' % s)\n    sys.exit(0)\n"
              "signal.signal(signal.SIGTERM, term)\ntime.sleep(600)\n")
    cluster.create(pod("order", [{"name": "app", "image": "x", "command": [sys.executable, "-c", script]}, PROXY],
                       sidecar=True, terminationGracePeriodSeconds=5))
    await wait_until(lambda: cluster.ready("order"), timeout=30)
    cluster.registry.delete(POD, "v1", "default", "order", {})
    await wait_until(marker.exists, timeout=15)
    assert marker.read_text() == "envoy 200"


def _has_real_bootstrap() -> bool:
    try:
        import sluice.xds.bootstrap  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _has_real_bootstrap(), reason="sluice.xds.bootstrap not available")
async def test_real_bootstrap_starts_envoy_towards_the_xds_address(tmp_path: Path) -> None:
    c = await start_cluster(tmp_path)  # default factory: sluice.xds.bootstrap.proxy_bootstrap
    try:
        # with the probes Istio's injector gives it: the pod's readiness is its Envoy's
        c.create(pod("real", [server_container(port=9080), {**PROXY, **status_probes({})}], sidecar=True))
        ip = await wait_until(lambda: c.status("real").get("podIP"))
        await wait_until(lambda: "running" in c.container("real", mesh.SIDECAR_CONTAINER).get("state", {}))
        admin = admin_socket(c, ip)
        for _ in range(400):  # until Envoy has bound it
            if (await admin_get(admin, "/ready"))[0] != 0:
                break
            await asyncio.sleep(0.05)
        info = json.loads((await admin_get(admin, "/server_info"))[1])
        assert info["node"]["id"] == mesh.sidecar_node_id(ip, "real", "default")
        # Loopback mode: the admin is a Unix socket only the daemon's user can open, in a directory only it
        # can search; no TCP port any local program (or web page) could POST /quitquitquit to.
        st = admin.stat()
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid()
        assert stat.S_IMODE(admin.parent.stat().st_mode) == 0o700
        assert not listening(ip, mesh.PROXY_ADMIN_PORT)
        assert not any(listening(host, mesh.PROXY_ADMIN_PORT) for host in ("127.0.0.1", mesh.app_ip(ip)))
        # No ADS server here: Envoy waits for its first config, so the sidecar (and the pod) stay not ready.
        assert c.container("real", mesh.SIDECAR_CONTAINER)["ready"] is False
        assert not c.ready("real")
        code, body = await c.logs("real", container=mesh.SIDECAR_CONTAINER)
        assert code == 200
    finally:
        await stop_cluster(c)
    assert not admin.exists()
