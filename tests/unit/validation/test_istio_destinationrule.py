"""DestinationRule rules: each case is a spec that must pass (expected None) or fail with that message."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.validation.istio import validate


def dr(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "reviews", "namespace": "tutorial"}, "spec": spec}


def tp(**policy: Any) -> dict[str, Any]:
    return {"host": "reviews", "trafficPolicy": policy}


def lb(**settings: Any) -> dict[str, Any]:
    return tp(loadBalancer=settings)


def locality(**setting: Any) -> dict[str, Any]:
    return tp(loadBalancer={"localityLbSetting": setting}, outlierDetection={"consecutive5xxErrors": 1})


CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("bookinfo", {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                                                  {"name": "v2", "labels": {"version": "v2"}}]}, None),
    ("no host", {"subsets": []}, "spec.host: Required value"),
    ("bad host", {"host": "a..b"}, 'invalid (label "" invalid)'),
    ("wildcard host", {"host": "*.example.com"}, None),
    ("null subset", {"host": "a", "subsets": [None]}, "subset may not be null"),
    ("duplicate subset", {"host": "a", "subsets": [{"name": "v1"}, {"name": "v1"}]}, "duplicate subset names: v1"),
    ("empty subset name", {"host": "a", "subsets": [{"name": ""}]}, "subset name cannot be empty"),
    ("bad subset name", {"host": "a", "subsets": [{"name": "v1.0"}]}, "subset name is invalid: v1.0"),
    ("bad subset label", {"host": "a", "subsets": [{"name": "v1", "labels": {"version": "v 1"}}]}, 'invalid tag value: "v 1"'),
    ("long label key", {"host": "a", "subsets": [{"name": "v1", "labels": {"k" * 64: "x"}}]}, "(name is too long)"),
    ("subset policy", {"host": "a", "subsets": [{"name": "v1", "trafficPolicy": {}}]},
     "spec.subsets[0].trafficPolicy: Required value: traffic policy must have at least one field"),
    ("empty policy", tp(), "traffic policy must have at least one field"),
    ("tunnel+proxy", tp(tunnel={"targetHost": "a.com", "targetPort": 80}, proxyProtocol={"version": "V1"}),
     "tunnel and proxyProtocol must not be set together"),
    ("tunnel ok", tp(tunnel={"protocol": "CONNECT", "targetHost": "a.com", "targetPort": 80}), None),
    ("tunnel protocol", tp(tunnel={"protocol": "GET", "targetHost": "a.com", "targetPort": 80}),
     'tunnel protocol must be "CONNECT" or "POST"'),
    ("tunnel port", tp(tunnel={"targetHost": "10.0.0.1"}), "tunnel target port is invalid"),
    ("proxy protocol", tp(proxyProtocol={"version": "V3"}), "proxy protocol version is invalid: V3"),
    # load balancer
    ("lb simple", lb(simple="LEAST_REQUEST"), None),
    ("lb simple bad", lb(simple="FASTEST"), 'Unsupported value: "FASTEST"'),
    ("cookie ok", lb(consistentHash={"httpCookie": {"name": "user", "ttl": "0s"}}), None),
    ("cookie no name", lb(consistentHash={"httpCookie": {"ttl": "10s"}}), "name required for HttpCookie"),
    ("cookie attr dup", lb(consistentHash={"httpCookie": {"name": "u", "attributes": [{"name": "a"}, {"name": "a"}]}}),
     "duplicate cookie attribute name: a"),
    ("cookie attr empty", lb(consistentHash={"httpCookie": {"name": "u", "attributes": [{}]}}),
     "cookie attribute name cannot be empty"),
    ("ring and maglev", lb(consistentHash={"useSourceIp": True, "minimumRingSize": 1024, "maglev": {"tableSize": 65537}}),
     "only one of MinimumRingSize or Maglev/Ringhash can be specified"),
    ("maglev ok", lb(consistentHash={"useSourceIp": True, "maglev": {"tableSize": 65537}}), None),
    ("maglev unset", lb(consistentHash={"useSourceIp": True, "maglev": {}}), "tableSize must be set for maglev"),
    ("maglev big", lb(consistentHash={"useSourceIp": True, "maglev": {"tableSize": 5000011}}),
     "tableSize must be less than 5000011 for maglev"),
    ("maglev prime", lb(consistentHash={"useSourceIp": True, "maglev": {"tableSize": 1000}}),
     "tableSize must be a prime number for maglev"),
    ("locality and zone", lb(localityLbSetting={"enabled": True}, zoneAwareLbSetting={}),
     "only one of localityLbSetting and zoneAwareLbSetting can be set"),
    ("warmup no duration", lb(warmup={"minimumPercent": 10}), "duration is required"),
    ("warmup percent", lb(warmup={"duration": "10s", "minimumPercent": 110}), "minimumPercent value should be less than or equal to 100"),
    ("warmup aggression", lb(warmup={"duration": "10s", "aggression": 0}), "aggression should be greater than 0"),
    # locality
    ("distribute ok", locality(distribute=[{"from": "us-west/zone1/*", "to": {"us-west/zone1/*": 80, "us-west/zone2/*": 20}}]), None),
    ("distribute sum", locality(distribute=[{"from": "us-west/*", "to": {"us-west/zone1/*": 80, "us-west/zone2/*": 10}}]),
     "total locality weight 90 != 100"),
    ("distribute weight", locality(distribute=[{"from": "a/*", "to": {"a/b/*": 0, "a/c/*": 100}}]),
     "locality weight must be in range [1, 100]"),
    ("distribute and failover", locality(distribute=[{"from": "a", "to": {"b": 100}}], failover=[{"from": "a", "to": "b"}]),
     "can not simultaneously specify 'distribute' and 'failover'"),
    ("locality wildcard", locality(distribute=[{"from": "a/*/c", "to": {"b": 100}}]),
     "locality a/*/c wildcard '*' number can not exceed 1 and must be in the end"),
    ("locality overlap", locality(distribute=[{"from": "a", "to": {"b": 100}}, {"from": "a/z", "to": {"b": 100}}]),
     "locality a/z overlap with previous specified ones"),
    ("locality empty part", locality(distribute=[{"from": "a//c", "to": {"b": 100}}]),
     "locality a//c must not contain empty region/zone/subzone info"),
    ("failover ok", locality(failover=[{"from": "us-east", "to": "eu-west"}]), None),
    ("failover same", locality(failover=[{"from": "a", "to": "a"}]), "locality lb failover settings must specify different regions"),
    ("failover zone", locality(failover=[{"from": "a/z", "to": "b"}]), "locality lb failover only specify region"),
    ("failover wildcard", locality(failover=[{"from": "a", "to": "*"}]), "locality lb failover region should not contain '*' wildcard"),
    ("failover priority topology", locality(failover=[{"from": "a", "to": "b"}], failoverPriority=["topology.kubernetes.io/region"]),
     "can not simultaneously set 'failover' and topology label 'topology.kubernetes.io/region' in 'failover_priority'"),
    # connection pool
    ("pool ok", tp(connectionPool={"tcp": {"maxConnections": 100, "connectTimeout": "30ms", "idleTimeout": "0s"},
                                   "http": {"http1MaxPendingRequests": 1, "maxRequestsPerConnection": 1}}), None),
    ("pool empty", tp(connectionPool={}), "connection pool must have at least one field"),
    ("pool negative", tp(connectionPool={"http": {"http2MaxRequests": -1}}), "http2 max requests must be non-negative"),
    ("pool pending", tp(connectionPool={"http": {"http1MaxPendingRequests": -1}}), "http1 max pending requests must be non-negative"),
    ("pool retries", tp(connectionPool={"http": {"maxRetries": -1}}), "max retries must be non-negative"),
    ("pool streams", tp(connectionPool={"http": {"maxConcurrentStreams": -1}}), "max concurrent streams must be non-negative"),
    ("pool per conn", tp(connectionPool={"http": {"maxRequestsPerConnection": -1}}), "max requests per connection must be non-negative"),
    ("pool upgrade", tp(connectionPool={"http": {"h2UpgradePolicy": "UPGRADE", "useClientProtocol": True}}),
     "use client protocol must not be true when H2UpgradePolicy is UPGRADE"),
    ("pool conns", tp(connectionPool={"tcp": {"maxConnections": -1}}), "max connections must be non-negative"),
    ("pool connect timeout", tp(connectionPool={"tcp": {"connectTimeout": "0s"}}), "duration must be greater than 1ms"),
    ("pool keepalive", tp(connectionPool={"tcp": {"tcpKeepalive": {"time": "1.5ms"}}}), "only durations to ms precision"),
    # outlier detection
    ("outlier ok", tp(outlierDetection={"consecutive5xxErrors": 7, "interval": "5m", "baseEjectionTime": "15m",
                                        "maxEjectionPercent": 100}), None),
    ("outlier interval", tp(outlierDetection={"interval": "0s"}), "duration must be greater than 1ms"),
    ("outlier percent", tp(outlierDetection={"maxEjectionPercent": 101}), "percentage 101 is not in range 0..100"),
    ("outlier min health", tp(outlierDetection={"minHealthPercent": -1}), "percentage -1 is not in range 0..100"),
    ("outlier local origin", tp(outlierDetection={"consecutiveLocalOriginFailures": 5}),
     "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false"),
    # tls
    ("tls istio", tp(tls={"mode": "ISTIO_MUTUAL"}), None),
    ("tls mode", tp(tls={"mode": "STRICT"}), 'Unsupported value: "STRICT"'),
    ("tls mutual files", tp(tls={"mode": "MUTUAL", "clientCertificate": "/c", "privateKey": "/k"}), None),
    ("tls mutual no cert", tp(tls={"mode": "MUTUAL", "privateKey": "/k"}), "client certificate required for mutual tls"),
    ("tls mutual no key", tp(tls={"mode": "MUTUAL", "clientCertificate": "/c"}), "private key required for mutual tls"),
    ("tls cred and files", tp(tls={"mode": "SIMPLE", "credentialName": "s", "caCertificates": "/ca"}),
     "cannot specify client certificates or CA certificate or CA CRL If credentialName is set"),
    ("tls skip verify", tp(tls={"mode": "SIMPLE", "insecureSkipVerify": True, "caCertificates": "/ca"}),
     "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true"),
    ("tls skip verify mutual", tp(tls={"mode": "MUTUAL", "insecureSkipVerify": True, "subjectAltNames": ["a"],
                                       "credentialName": "c"}),
     "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true"),
    ("tls configmap", tp(tls={"mode": "SIMPLE", "credentialName": "configmap://other/ca"}),
     'namespace must match the configuration namespace "tutorial"'),
    # port level settings
    ("port level ok", tp(portLevelSettings=[{"port": {"number": 80}, "loadBalancer": {"simple": "RANDOM"}}]), None),
    ("port level null", tp(portLevelSettings=[None]), "traffic policy may not be null"),
    ("port level no port", tp(portLevelSettings=[{"loadBalancer": {"simple": "RANDOM"}}]), "portTrafficPolicy must have valid port"),
    ("port level empty", tp(portLevelSettings=[{"port": {"number": 80}}]), "port traffic policy must have at least one field"),
    ("port level nested", tp(portLevelSettings=[{"port": {"number": 80}, "connectionPool": {}}]),
     "spec.trafficPolicy.portLevelSettings[0].connectionPool: Required value: connection pool must have at least one field"),
    # exportTo and workloadSelector
    ("selector ok", {"host": "a", "workloadSelector": {"matchLabels": {"app": "a"}}, "exportTo": ["."]}, None),
    ("selector wildcard", {"host": "a", "workloadSelector": {"matchLabels": {"app": "a*"}}},
     'wildcard is not supported in selector: "app=a*"'),
    ("selector empty key", {"host": "a", "workloadSelector": {"matchLabels": {"": "a"}}}, 'empty key is not supported in selector: "=a"'),
    ("selector export beyond", {"host": "a", "workloadSelector": {"matchLabels": {"app": "a"}}, "exportTo": ["other"]},
     "destination rule with workload selector cannot have exportTo beyond current namespace"),
    ("selector export multiple", {"host": "a", "workloadSelector": {"matchLabels": {"app": "a"}}, "exportTo": [".", "other"]},
     "destination rule with workload selector cannot have multiple entries in exportTo"),
    ("export dup", {"host": "a", "exportTo": ["*", "*"]}, "duplicate entries in exportTo for entry *"),
]


@pytest.mark.parametrize(("spec", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_destination_rule_rule(spec: dict[str, Any], expected: str | None) -> None:
    errors = [str(e) for e in validate("DestinationRule", dr(spec)).errors]
    if expected is None:
        assert errors == []
    else:
        assert any(expected in e for e in errors), errors


@pytest.mark.parametrize(("spec", "warning"), [
    (tp(outlierDetection={"consecutiveErrors": 5}),
     "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead"),
    (lb(consistentHash={"useSourceIp": True, "minimumRingSize": 1024}),
     "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead"),
    (lb(localityLbSetting={"failover": [{"from": "a", "to": "b"}]}), "outlier detection policy must be provided for failover"),
    ({"host": "a", "workloadSelector": {}}, "workload selector specified without labels"),
    ({"host": "a", "subsets": [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v1b", "labels": {"version": "v1"}}]},
     "subsets v1 and v1b have the same labels (version=v1) and select the same pods"),
])
def test_destination_rule_warnings(spec: dict[str, Any], warning: str) -> None:
    result = validate("DestinationRule", dr(spec))
    assert result.errors == []
    assert result.warnings == [warning]
