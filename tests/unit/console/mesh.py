"""A Bookinfo-like namespace in a real Registry (see `populate`), plus small helpers for the console tests.

`populate` writes: Deployments productpage-v1, details-v1, reviews-v1/v2/v3, ratings-v1 and traffic-generator
(no version label), one Running pod each with an `istio-proxy` container (reviews-v1's pod is not Ready), the
Services productpage, details, reviews, ratings and traffic-generator, the DestinationRule `reviews`
(subsets v1, v2, v3), the VirtualService `reviews` (v2 90 %, v3 10 %, no wizard label) and a gateway
VirtualService `bookinfo` with hosts `*` (which names no one service). Traffic comes from the recorded
PromQL results in `fixtures.py` (ratings answers some 503s).
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp.test_utils import TestClient
from tests.unit.console.fixtures import NS, VS_90_10

from sluice.api.registry import Registry
from sluice.resources.kinds import ResourceType, by_kind


def _rt(group: str, kind: str) -> ResourceType:
    rt = by_kind(group, kind)
    assert rt is not None
    return rt


POD, DEPLOY, SVC = _rt("", "Pod"), _rt("apps", "Deployment"), _rt("", "Service")
VS, DR = _rt("networking.istio.io", "VirtualService"), _rt("networking.istio.io", "DestinationRule")

WORKLOADS = [("productpage-v1", "productpage", "v1"), ("details-v1", "details", "v1"),
             ("reviews-v1", "reviews", "v1"), ("reviews-v2", "reviews", "v2"), ("reviews-v3", "reviews", "v3"),
             ("ratings-v1", "ratings", "v1"), ("traffic-generator", "traffic-generator", "")]
NOT_READY = {"reviews-v1"}

REVIEWS_DR = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
              "metadata": {"name": "reviews", "namespace": NS},
              "spec": {"host": "reviews", "subsets": [{"name": v, "labels": {"version": v}}
                                                      for v in ("v1", "v2", "v3")]}}
GATEWAY_VS = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
              "metadata": {"name": "bookinfo", "namespace": NS},
              "spec": {"hosts": ["*"], "gateways": ["bookinfo-gateway"], "http": [{"route": [
                  {"destination": {"host": "productpage", "port": {"number": 9080}}}]}]}}


def _labels(app: str, version: str) -> dict[str, str]:
    return {"app": app, **({"version": version} if version else {})}


def populate(reg: Registry) -> None:
    reg.ensure_namespace(NS)
    for name, app, version in WORKLOADS:
        labels = _labels(app, version)
        reg.create(DEPLOY, "v1", NS, {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": app, "image": f"example/{app}"}]}}}})
        reg.create(POD, "v1", NS, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-abc12", "labels": {**labels, "pod-template-hash": "abc12"}},
            "spec": {"containers": [{"name": app, "image": f"example/{app}"},
                                    {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.0"}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "False" if name in NOT_READY else "True"}]}})
    for app in ("productpage", "details", "reviews", "ratings", "traffic-generator"):
        reg.create(SVC, "v1", NS, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "labels": {"app": app}},
                                   "spec": {"selector": {"app": app},
                                            "ports": [{"name": "http", "port": 9080, "targetPort": 9080}]}})
    reg.create(DR, "v1", NS, copy.deepcopy(REVIEWS_DR))
    reg.create(VS, "v1", NS, copy.deepcopy(VS_90_10))
    reg.create(VS, "v1", NS, copy.deepcopy(GATEWAY_VS))


Client = TestClient[Any, Any]


async def get_json(c: Client, url: str, status: int = 200) -> Any:
    r = await c.get(url)
    body = await r.json()
    assert r.status == status, body
    if status >= 400:
        assert body["code"] == status and body["error"]
    return body
