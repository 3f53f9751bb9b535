"""ServiceEntry egress in loopback mode (apps send through their sidecar's HTTP proxy, `HTTP_PROXY`).

The external server is a sidecar-less httpbin pod (its 127.x address); a STATIC ServiceEntry names it as
`httpbin.example.org`, so `curl http://httpbin.example.org/headers` from sleep is routed by the proxy's
`http_proxy` table to its EDS cluster; under REGISTRY_ONLY an unknown host gets Istio's 502.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import TOOLS, Daemon, start_daemon, stop_daemon, wait_for
from tests.integration.netns.kube import Kube
from tests.integration.netns.test_egress import EXTERNAL, MESH_CONFIGMAP, SERVICE_ENTRY_STATIC, SLEEP


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Kube]]:
    d = start_daemon(tmp_path_factory.mktemp("egress-loopback-home"), network="loopback")
    k = Kube(d)
    try:
        k("create", "namespace", "external")
        k("create", "namespace", "istio-system")
        k("apply", "-f", "-", input=MESH_CONFIGMAP)
        k("apply", "-f", "-", input=EXTERNAL)
        k("apply", "-f", "-", input=SLEEP)
        k("wait", "--for=condition=Available", "deployment", "--all", "--timeout=120s")
        k("wait", "-n", "external", "--for=condition=Available", "deployment", "--all", "--timeout=120s")
        yield d, k
    finally:
        stop_daemon(d)


def _curl(d: Daemon, *args: str) -> str:
    cp = subprocess.run([str(TOOLS / "kubectl-1.35"), "exec", "deploy/sleep", "-c", "sleep", "--", "curl", "-sS",
                         *args], env=d.env, capture_output=True, text=True, timeout=60)
    return cp.stdout + cp.stderr


def test_service_entry_through_the_http_proxy(mesh: tuple[Daemon, Kube]) -> None:
    d, k = mesh
    ip = k("get", "pod", "-n", "external", "-l", "app=httpbin", "-o", "jsonpath={.items..status.podIP}")
    k("apply", "-f", "-", input=SERVICE_ENTRY_STATIC.format(ip=ip))
    last = [""]

    def routed() -> bool:
        last[0] = _curl(d, "http://httpbin.example.org/headers")
        return '"Host": "httpbin.example.org"' in last[0]

    try:
        wait_for(routed, timeout=30, interval=0.5)
    except AssertionError:
        raise AssertionError(last[0]) from None
    assert "X-Envoy-Attempt-Count" in json.loads(last[0])["headers"]
    # REGISTRY_ONLY: a host outside the registry is answered 502 by the proxy
    current = k("get", "configmap", "istio", "-n", "istio-system", "-o", "yaml")
    k("replace", "-n", "istio-system", "-f", "-", input=current.replace("mode: ALLOW_ANY", "mode: REGISTRY_ONLY"))
    wait_for(lambda: _curl(d, "-o", "/dev/null", "-w", "%{http_code}", "http://unknown.example.org/") == "502",
             timeout=30, interval=0.5)
    assert '"Host": "httpbin.example.org"' in _curl(d, "http://httpbin.example.org/headers")
