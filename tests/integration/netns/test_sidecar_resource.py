"""Istio's Sidecar resource on a netns-mode daemon, through kubectl: the sleep sample in `default` calls Istio's
httpbin sample in `other`; a Sidecar that leaves `other` out of its egress hosts takes httpbin out of the
sleep pod's sidecar (passed through under ALLOW_ANY, closed under REGISTRY_ONLY), the fields Sluice does not
program are named on write, and Istio's validation refuses what Istio refuses."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import TOOLS, Daemon, start_daemon, stop_daemon, wait_for
from tests.integration.cli_helpers import Sluice
from tests.integration.netns.kube import Kube
from tests.integration.netns.test_egress import SLEEP
from tests.integration.netns.test_istio_samples import HTTPBIN

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="netns mode needs root")

SIDECAR = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
  namespace: default
spec:
  egress:
  - hosts:
    - "./*"
    - "istio-system/*"
  outboundTrafficPolicy:
    mode: {mode}
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Kube, str]]:
    d = start_daemon(tmp_path_factory.mktemp("sidecar-home"), network="netns")
    k = Kube(d)
    try:
        k("create", "namespace", "other")
        k("apply", "-n", "other", "-f", "-", input=HTTPBIN)
        k("apply", "-f", "-", input=SLEEP)
        for namespace in ("default", "other"):
            k("wait", "-n", namespace, "--for=condition=Available", "deployment", "--all", "--timeout=120s")
        yield d, k, k("get", "pod", "-l", "app=sleep", "-o", "jsonpath={.items..metadata.name}")
    finally:
        stop_daemon(d)


def kubectl(d: Daemon, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TOOLS / "kubectl-1.35"), *args], input=input, env=d.env, capture_output=True,
                          text=True, timeout=60)


def test_egress_hosts_and_outbound_policy_of_a_sidecar(mesh: tuple[Daemon, Kube, str]) -> None:
    d, k, sleep = mesh
    code = 'curl -s -o /dev/null -w "%{http_code}\\n" http://httpbin.other:8000/get'

    def answer() -> str:
        return kubectl(d, "exec", sleep, "-c", "sleep", "--", "sh", "-c", code).stdout.strip()

    def clusters() -> dict[str, object]:
        out = kubectl(d, "exec", sleep, "-c", "istio-proxy", "--", "curl", "-s", "localhost:15000/config_dump?"
                      "resource=dynamic_active_clusters").stdout
        return {c["cluster"]["name"]: c for c in json.loads(out).get("configs", [])}

    httpbin = "outbound|8000||httpbin.other.svc.cluster.local"
    assert answer() == "200" and httpbin in clusters()
    try:
        cp = kubectl(d, "apply", "-f", "-", input=SIDECAR.format(mode="REGISTRY_ONLY"))
        assert cp.returncode == 0 and "Warning" not in cp.stderr, cp.stderr  # every field it sets is programmed
        rows = [row.split() for row in k("get", "sidecars").splitlines()]
        assert rows[0] == ["NAME", "AGE"] and rows[1][0] == "default" and len(rows) == 2, rows
        # httpbin is outside the sidecar's egress hosts: no cluster for it, and no listener on its port either, so
        # REGISTRY_ONLY closes the connection at virtualOutbound (Istio's BlackHoleCluster; no HTTP, no 502)
        wait_for(lambda: httpbin not in clusters(), timeout=30)
        wait_for(lambda: answer() == "000", timeout=30)
        wait_for(lambda: "BlackHoleCluster" in k("logs", sleep, "-c", "istio-proxy", "--tail=5"), timeout=30)
        # … ALLOW_ANY passes it through to where it was sent (kube-proxy's DNAT in the pod's namespace)
        k("apply", "-f", "-", input=SIDECAR.format(mode="ALLOW_ANY"))
        wait_for(lambda: answer() == "200", timeout=30)
        wait_for(lambda: "PassthroughCluster" in k("logs", sleep, "-c", "istio-proxy", "--tail=5"), timeout=30)
        assert httpbin not in clusters()
    finally:
        kubectl(d, "delete", "sidecar", "default")
    wait_for(lambda: httpbin in clusters(), timeout=30)
    assert answer() == "200"


def test_what_is_not_programmed_is_named_and_what_istio_refuses_is_refused(mesh: tuple[Daemon, Kube, str]) -> None:
    d, _, _ = mesh
    ingress = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: ingress
  namespace: other
spec:
  workloadSelector:
    labels:
      app: httpbin
  ingress:
  - port:
      number: 9080
      protocol: HTTP
      name: http
    defaultEndpoint: 127.0.0.1:8080
  egress:
  - hosts:
    - "./*"
"""
    try:
        cp = kubectl(d, "apply", "-f", "-", input=ingress)
        assert cp.returncode == 0, cp.stderr
        assert ("Warning: Sidecar spec.ingress is stored but not applied: Sluice does not program this field into "
                "Envoy yet") in cp.stderr.splitlines(), cp.stderr
        analyzed = Sluice(d.env)("analyze", "-n", "other")
        assert ("Warning [SLU0001] (Sidecar other/ingress) Field not programmed: spec.ingress is stored but not "
                "applied: Sluice does not program this field into Envoy yet.") in analyzed.stdout.splitlines(), \
            analyzed.stdout
    finally:
        kubectl(d, "delete", "sidecar", "ingress", "-n", "other")
    bad = SIDECAR.format(mode="ALLOW_ANY").replace('"./*"', "reviews")
    cp = kubectl(d, "apply", "-f", "-", input=bad)
    assert cp.returncode == 1 and ('The Sidecar "default" is invalid: spec.egress[0].hosts[0]: Invalid value: '
                                   '"reviews": host must be of form namespace/dnsName') in cp.stderr, cp.stderr
