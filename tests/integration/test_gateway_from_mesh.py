"""A pod in the mesh reaches the ingress gateway through its Service, as on Kubernetes, where
`kubectl exec deploy/sleep -- curl istio-ingressgateway.istio-system/...` goes through the client's sidecar to the
gateway pod's targetPort (8080 for port 80), which the gateway's Envoy listens on: in netns mode in the gateway's
namespace, in loopback mode at the gateway pod's own IP (besides 127.0.0.1 at the Service port, the load
balancer's address). (In loopback mode the client's sidecar is its HTTP proxy, which names the request's host
after the URL, as every HTTP proxy must: a `Host:` header of the client's own does not reach the gateway.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import wait_for
from tests.integration.test_envoy_admin_access import GW_NS, NS, Mesh, running_mesh

ROUTE = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: details-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details-via-gateway}
spec:
  hosts: ["*"]
  gateways: [details-gateway]
  http:
  - match: [{uri: {prefix: /details}}]
    route:
    - destination: {host: details, port: {number: 9080}}
"""


@pytest.fixture(scope="module", params=["loopback", "netns"])
def gateway_mesh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    yield from running_mesh(request, tmp_path_factory, ROUTE)


def _status(m: Mesh, path: str) -> str:
    cp = m.kubectl("exec", "-n", NS, "deploy/sleep", "--", "curl", "-s", "--max-time", "5", "-o", "/dev/null",
                   "-w", "%{http_code}", f"http://istio-ingressgateway.{GW_NS}{path}", check=False)
    return cp.stdout.strip()


def test_a_pod_reaches_the_ingress_gateway_through_its_service(gateway_mesh: Mesh) -> None:
    m = gateway_mesh
    # the gateway routes /details to the details service once its listeners and routes are pushed
    wait_for(lambda: _status(m, "/details/0") == "200", timeout=30, interval=0.25)
    # a path no route matches: the gateway's own 404, not a failure on the way to it (503)
    assert _status(m, "/nothing") == "404"
