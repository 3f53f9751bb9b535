"""The table of programmed Istio fields: what a stored object names that Sluice does not apply, by field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sluice.resources.schema import field_schema, schema_for
from sluice.validation.analyze import analyze, format_message
from sluice.validation.istio.programmed import MAX_WARNINGS, PROGRAMMED, gaps, unprogrammed, warnings

# Istio's samples/bookinfo/networking: the request-routing, fault-injection and traffic-shifting tasks'
# manifests. Everything in them is programmed.
BOOKINFO_NETWORKING = Path(__file__).resolve().parents[2] / "data" / "istio" / "bookinfo-networking"

# The circuit-breaking and mirroring tasks' rules, as the docs write them.
TASKS = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: httpbin
spec:
  host: httpbin
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 1
      http:
        http1MaxPendingRequests: 1
        maxRequestsPerConnection: 1
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 3m
      maxEjectionPercent: 100
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts:
  - httpbin
  http:
  - route:
    - destination:
        host: httpbin
        subset: v1
      weight: 100
    mirror:
      host: httpbin
      subset: v2
    mirrorPercentage:
      value: 100.0
"""


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def paths(kind: str, spec: dict[str, Any]) -> list[str]:
    return [u.path for u in unprogrammed(kind, {"kind": kind, "spec": spec})]


@pytest.mark.parametrize("obj", [d for f in sorted(BOOKINFO_NETWORKING.glob("*.yaml")) for d in docs(f.read_text())]
                         + docs(TASKS),
                         ids=lambda o: f"{o['kind']}-{o['metadata']['name']}")
def test_istio_task_manifests_are_fully_programmed(obj: dict[str, Any]) -> None:
    assert warnings(obj["kind"], obj) == []


def test_virtual_service_fields_not_programmed_are_named_by_path() -> None:
    spec = yaml.safe_load("""
hosts: [reviews]
exportTo: ["."]
http:
- name: r
  match:
  - headers:
      end-user: {exact: jason}
      "@request.auth.claims.groups": {exact: admin}
    statPrefix: jason
  delegate: {name: other}
  fault:
    abort: {http2Error: ENHANCE_YOUR_CALM, percentage: {value: 10}}
  corsPolicy: {allowOrigins: [{exact: "https://example.com"}], allowMethods: [GET]}
  route:
  - destination: {host: reviews, subset: v1, port: {number: 9080}}
tls:
- match: [{sniHosts: [reviews]}]
  route: [{destination: {host: reviews}}]
tcp:
- match: [{port: 9000, destinationSubnets: [10.0.0.0/8], sourceSubnet: 10.1.0.0/16}]
  route: [{destination: {host: tcp-echo, subset: v1}, weight: 100}]
""")
    assert paths("VirtualService", spec) == [
        "spec.http[0].match[0].headers.@request.auth.claims.groups",
        "spec.http[0].match[0].statPrefix",
        "spec.http[0].delegate",
        "spec.http[0].fault.abort.http2Error",
        "spec.tcp[0].match[0].sourceSubnet",
    ]


def test_values_not_programmed_name_the_value() -> None:
    gw = {"selector": {"istio": "ingressgateway"}, "servers": [
        {"port": {"number": 80, "name": "http", "protocol": "http"}, "hosts": ["*"]},
        {"port": {"number": 31400, "name": "tcp", "protocol": "TCP"}, "hosts": ["*"]},
        {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["*"],
         "tls": {"mode": "SIMPLE", "credentialName": "cert"}},
        {"port": {"number": 8443, "name": "mongo", "protocol": "MONGO"}, "hosts": ["*"]},
        {"port": {"number": 9443, "name": "https-2", "protocol": "HTTPS"}, "hosts": ["*"],
         "tls": {"mode": "ISTIO_MUTUAL", "serverCertificate": "/etc/certs/a.pem"}}]}
    assert [u.warning for u in unprogrammed("Gateway", {"spec": gw})] == [
        'Gateway spec.servers[4].tls.mode: "ISTIO_MUTUAL" is stored but not applied: Sluice does not program this '
        "value into Envoy yet",
        "Gateway spec.servers[4].tls.serverCertificate is stored but not applied: Sluice does not program this field "
        "into Envoy yet",
    ]
    assert paths("VirtualService", {"hosts": ["a"], "exportTo": ["*"]}) == []


def test_destination_rule_policies_at_every_level() -> None:
    policy = {"loadBalancer": {"simple": "PASSTHROUGH"}, "tls": {"mode": "ISTIO_MUTUAL"},
              "connectionPool": {"http": {"http1MaxPendingRequests": 1, "h2UpgradePolicy": "UPGRADE"}}}
    spec = {"host": "reviews", "trafficPolicy": {**policy, "portLevelSettings": [{"port": {"number": 9080}, **policy}]},
            "subsets": [{"name": "v1", "labels": {"version": "v1"}, "trafficPolicy": policy}],
            "workloadSelector": {"matchLabels": {"app": "x"}}}
    expected = ["loadBalancer.simple", "tls.mode", "connectionPool.http.h2UpgradePolicy"]
    assert paths("DestinationRule", spec) == [
        *(f"spec.trafficPolicy.{p}" for p in expected),
        *(f"spec.trafficPolicy.portLevelSettings[0].{p}" for p in expected),
        *(f"spec.subsets[0].trafficPolicy.{p}" for p in expected),
    ]
    tls_off = {"host": "reviews", "trafficPolicy": {"tls": {"mode": "DISABLE"}, "loadBalancer": {"simple": "LEAST_CONN"}}}
    assert paths("DestinationRule", tls_off) == []


def test_values_that_ask_for_nothing_are_not_reported() -> None:
    assert paths("VirtualService", {"hosts": ["a"], "exportTo": [], "tls": [], "http": [{"delegate": None}]}) == []
    assert paths("DestinationRule", {"host": "a", "trafficPolicy": {"connectionPool": {"http": {
        "useClientProtocol": False, "maxConcurrentStreams": 0}}}}) == []


def test_service_entry_fields_not_programmed_are_named() -> None:
    se = {"hosts": ["httpbin.org"], "ports": [{"number": 80, "name": "http"}], "resolution": "DNS",
          "endpoints": [{"address": "a.example", "locality": "us/east", "weight": 3}], "subjectAltNames": ["x"]}
    assert paths("ServiceEntry", se) == ["spec.endpoints[0].locality", "spec.endpoints[0].weight",
                                         "spec.subjectAltNames"]
    assert paths("ServiceEntry", {**se, "endpoints": [], "subjectAltNames": [], "resolution": "DYNAMIC_DNS"}) == [
        "spec.resolution"]
    assert unprogrammed("Service", {"kind": "Service", "spec": {"ports": [{"port": 80}]}}) == []


def test_warnings_are_bounded() -> None:
    spec = {"hosts": ["a"], "http": [{"delegate": {"name": f"d{i}"}} for i in range(MAX_WARNINGS + 5)]}
    out = warnings("VirtualService", {"spec": spec})
    assert len(out) == MAX_WARNINGS + 1
    assert out[-1].startswith("VirtualService: 5 more fields are stored but not applied")


def test_analyze_lists_them_as_slu0001() -> None:
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
          "metadata": {"name": "reviews", "namespace": "tutorial"},
          "spec": {"hosts": ["reviews"], "exportTo": ["."], "http": [{"match": [{"uri": {"prefix": "/"},
                                                                                   "statPrefix": "reviews"}],
                                                                       "route": [{"destination": {"host": "reviews"}}]}]}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews", "namespace": "tutorial"},
           "spec": {"selector": {"app": "reviews"}, "ports": [{"port": 9080, "name": "http"}]}}
    assert [format_message(m) for m in analyze([vs, svc])] == [
        "Warning [SLU0001] (VirtualService tutorial/reviews) Field not programmed: spec.http[0].match[0].statPrefix "
        "is stored but not applied: Sluice does not program this field into Envoy yet."]


def _schema_path(entry: str) -> str:
    """`spec.http[].match[].headers.*` → `spec.http.match.headers` (what `field_schema` walks)."""
    path = entry.removeprefix("!").partition("=")[0].replace("[]", "")
    kept = []
    for part in path.split("."):
        if any(c in part for c in "*?@"):
            break  # a map key: the map itself is in the schema
        kept.append(part)
    return ".".join(kept)


@pytest.mark.parametrize("kind", sorted(PROGRAMMED))
def test_every_table_entry_is_a_field_of_the_schema(kind: str) -> None:
    schema = schema_for("networking.istio.io", kind)
    for entry in PROGRAMMED[kind]:
        assert field_schema(schema, _schema_path(entry)) is not None, entry


def test_gaps_list_what_an_object_setting_everything_would_be_warned_about() -> None:
    spec = schema_for("networking.istio.io", "VirtualService")["properties"]["spec"]
    assert gaps("VirtualService", spec) == [
        "spec.http[].match[].headers.@request*", "spec.http[].match[].withoutHeaders.@request*",
        "spec.http[].match[].statPrefix", "spec.http[].delegate", "spec.http[].fault.delay.exponentialDelay",
        "spec.http[].fault.abort.http2Error", "spec.tcp[].match[].sourceSubnet"]
    gw = schema_for("networking.istio.io", "Gateway")["properties"]["spec"]
    assert gaps("Gateway", gw) == [
        "spec.servers[].port.protocol other than GRPC, GRPC-WEB, HTTP, HTTP2, HTTPS, MONGO, MYSQL, REDIS, TCP, TLS",
        "spec.servers[].bind", "spec.servers[].tls.mode other than MUTUAL, OPTIONAL_MUTUAL, PASSTHROUGH, SIMPLE",
        *(f"spec.servers[].tls.{f}" for f in ("serverCertificate", "privateKey", "caCertificates", "caCrl",
                                              "tlsCertificates")),
        "spec.servers[].defaultEndpoint"]
    se = schema_for("networking.istio.io", "ServiceEntry")["properties"]["spec"]
    assert gaps("ServiceEntry", se) == [
        "spec.resolution other than DNS, DNS_ROUND_ROBIN, NONE, STATIC", "spec.endpoints[].network",
        "spec.endpoints[].locality", "spec.endpoints[].weight", "spec.endpoints[].serviceAccount",
        "spec.subjectAltNames"]


def test_destination_rule_tls_origination_from_a_secret_is_programmed() -> None:
    tls = {"mode": "MUTUAL", "credentialName": "db-client", "sni": "db.example", "subjectAltNames": ["db.example"]}
    assert paths("DestinationRule", {"host": "db", "trafficPolicy": {"tls": tls}}) == []
