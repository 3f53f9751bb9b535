"""Gateway and ServiceEntry rules: each case must pass (expected None) or fail with that message."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.validation.istio import validate


def obj(kind: str, spec: dict[str, Any], name: str = "x", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": kind,
            "metadata": {"name": name, "namespace": "tutorial", "labels": labels or {}}, "spec": spec}


HTTP_PORT = {"number": 80, "name": "http", "protocol": "HTTP"}
HTTPS_PORT = {"number": 443, "name": "https", "protocol": "HTTPS"}


def gw(*servers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"selector": {"istio": "ingressgateway"}, "servers": list(servers), **extra}


def server(port: dict[str, Any] | None = None, hosts: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"hosts": ["*"] if hosts is None else hosts, **extra}
    if port is not None:
        s["port"] = port
    return s


GATEWAY_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("bookinfo", gw(server(HTTP_PORT)), None),
    ("no servers", {"selector": {"istio": "ingressgateway"}}, "spec.servers: Required value: gateway must have at least one server"),
    ("null server", gw(None), "server may not be nil"),  # type: ignore[arg-type]
    ("bad selector", gw(server(HTTP_PORT), selector={"istio": "a b"}), 'invalid tag value: "a b"'),
    ("no port", gw(server()), "spec.servers[0].port: Required value: port is required"),
    ("bad protocol", gw(server({"number": 80, "name": "x", "protocol": "SMTP"})), 'invalid protocol "SMTP"'),
    ("bad port", gw(server({"number": 0, "name": "x", "protocol": "HTTP"})), "port number 0 must be in the range 1..65535"),
    ("no port name", gw(server({"number": 80, "protocol": "HTTP"})), "spec.servers[0].port.name: Required value: port name must be set"),
    ("target port", gw(server({**HTTP_PORT, "targetPort": 8080})), "targetPort has no impact on Gateways"),
    ("duplicate port name", gw(server(HTTP_PORT), server({**HTTP_PORT, "number": 8080})),
     "port names in servers must be unique: duplicate name http"),
    ("no hosts", gw(server(HTTP_PORT, hosts=[])), "server config must contain at least one host"),
    ("ns host", gw(server(HTTP_PORT, hosts=["tutorial/bookinfo.com", "./*.example.com", "*/foo.com"])), None),
    ("short host", gw(server(HTTP_PORT, hosts=["reviews"])), "short names (non FQDN) are not allowed"),
    ("bad ns host", gw(server(HTTP_PORT, hosts=["Bad_NS/a.com"])), 'invalid namespace value "Bad_NS" in gateway'),
    ("empty ns host", gw(server(HTTP_PORT, hosts=["/a.com"])), "config namespace and dnsName in host entry cannot be empty"),
    ("partial wildcard", gw(server(HTTP_PORT, hosts=["*foo.com"])), 'partial wildcard "*foo.com" not allowed'),
    ("ip host", gw(server(HTTP_PORT, hosts=["10.0.0.1"])), None),
    ("bind ok", gw(server(HTTP_PORT, bind="127.0.0.1")), None),
    ("bind bad", gw(server(HTTP_PORT, bind="localhost")), "localhost is not a valid IP"),
    ("https no tls", gw(server(HTTPS_PORT)), "server must have TLS settings for HTTPS/TLS protocols"),
    ("https credential", gw(server(HTTPS_PORT, tls={"mode": "SIMPLE", "credentialName": "bookinfo-secret"})), None),
    ("https files", gw(server(HTTPS_PORT, tls={"mode": "SIMPLE", "serverCertificate": "/c", "privateKey": "/k"})), None),
    ("https no cert", gw(server(HTTPS_PORT, tls={"mode": "SIMPLE", "privateKey": "/k"})), "SIMPLE TLS requires a server certificate"),
    ("https no key", gw(server(HTTPS_PORT, tls={"mode": "SIMPLE", "serverCertificate": "/c"})), "SIMPLE TLS requires a private key"),
    ("mutual no ca", gw(server(HTTPS_PORT, tls={"mode": "MUTUAL", "serverCertificate": "/c", "privateKey": "/k"})),
     "MUTUAL TLS requires a client CA bundle"),
    ("passthrough", gw(server({"number": 443, "name": "tls", "protocol": "TLS"}, tls={"mode": "PASSTHROUGH"})), None),
    ("auto passthrough", gw(server({"number": 15443, "name": "tls", "protocol": "TLS"}, tls={"mode": "AUTO_PASSTHROUGH"})), None),
    ("istio mutual", gw(server(HTTPS_PORT, tls={"mode": "ISTIO_MUTUAL"})), None),
    ("istio mutual cert", gw(server(HTTPS_PORT, tls={"mode": "ISTIO_MUTUAL", "credentialName": "x"})),
     "ISTIO_MUTUAL TLS cannot have associated credentialName"),
    ("tls mode", gw(server(HTTPS_PORT, tls={"mode": "STRICT"})), 'Unsupported value: "STRICT"'),
    ("two sources", gw(server(HTTPS_PORT, tls={"mode": "SIMPLE", "credentialName": "a", "serverCertificate": "/c",
                                              "privateKey": "/k"})),
     "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified"),
    ("crl simple", gw(server(HTTPS_PORT, tls={"mode": "SIMPLE", "serverCertificate": "/c", "privateKey": "/k", "caCrl": "/crl"})),
     "CRL is not supported with SIMPLE TLS"),
    ("http redirect ok", gw(server(HTTP_PORT, tls={"httpsRedirect": True})), None),
    ("http with certs", gw(server(HTTP_PORT, tls={"mode": "SIMPLE", "credentialName": "x"})),
     "server cannot have TLS settings for plain text HTTP ports"),
    ("tcp with tls", gw(server({"number": 31400, "name": "tcp", "protocol": "TCP"}, tls={"mode": "SIMPLE", "credentialName": "x"})),
     "server cannot have TLS settings for non HTTPS/TLS ports"),
]


@pytest.mark.parametrize(("spec", "expected"), [(c[1], c[2]) for c in GATEWAY_CASES], ids=[c[0] for c in GATEWAY_CASES])
def test_gateway_rule(spec: dict[str, Any], expected: str | None) -> None:
    errors = [str(e) for e in validate("Gateway", obj("Gateway", spec, name="bookinfo-gateway")).errors]
    if expected is None:
        assert errors == []
    else:
        assert any(expected in e for e in errors), errors


def test_gateway_name_must_be_a_label() -> None:
    errors = [str(e) for e in validate("Gateway", obj("Gateway", gw(server(HTTP_PORT)), name="my.gateway")).errors]
    assert errors == ['metadata.name: Invalid value: "my.gateway": invalid gateway name: "my.gateway"']


def test_gateway_warnings() -> None:
    spec = gw(server({"number": 443, "name": "tls", "protocol": "TLS"}, tls={"mode": "PASSTHROUGH", "credentialName": "x"}))
    assert validate("Gateway", obj("Gateway", spec)).warnings == ["PASSTHROUGH mode does not use certificates, they will be ignored"]
    spec = gw(server(HTTPS_PORT, tls={"mode": "SIMPLE", "credentialName": "x", "httpsRedirect": True}))
    assert validate("Gateway", obj("Gateway", spec)).warnings == ["tls.httpsRedirect should only be used with http servers"]


EXT = {"hosts": ["api.example.com"], "ports": [{"number": 443, "name": "https", "protocol": "TLS"}],
       "resolution": "DNS", "location": "MESH_EXTERNAL"}


def se(**changes: Any) -> dict[str, Any]:
    spec = {**EXT, **changes}
    return {k: v for k, v in spec.items() if v is not None}


SE_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("external dns", se(), None),
    ("no hosts", se(hosts=None), "spec.hosts: Required value: service entry must have at least one host"),
    ("star host", se(hosts=["*"]), 'invalid host *'),
    ("bad host", se(hosts=["a_b.com"]), 'domain name "a_b.com" invalid'),
    ("wildcard none", se(hosts=["*.example.com"], resolution="NONE"), None),
    ("wildcard dns no endpoints", se(hosts=["*.example.com"]),
     "hosts must be FQDN or contain only prefix wildcards if no endpoints are provided for resolution mode DNS"),
    ("bad resolution", se(resolution="MAGIC"), 'Unsupported value: "MAGIC"'),
    ("bad location", se(location="MESH_OUTSIDE"), 'Unsupported value: "MESH_OUTSIDE"'),
    ("internal", se(location="MESH_INTERNAL"), None),
    ("dup port name", se(ports=[{"number": 80, "name": "http", "protocol": "HTTP"}, {"number": 81, "name": "http", "protocol": "HTTP"}]),
     'service entry port name "http" already defined'),
    ("dup port number", se(ports=[{"number": 80, "name": "a", "protocol": "HTTP"}, {"number": 80, "name": "b", "protocol": "HTTP"}]),
     "service entry port 80 already defined"),
    ("bad port number", se(ports=[{"number": 0, "name": "a", "protocol": "HTTP"}]), "port number 0 must be in the range 1..65535"),
    ("bad port name", se(ports=[{"number": 80, "name": "a.b", "protocol": "HTTP"}]), "invalid port name: a.b"),
    ("bad protocol", se(ports=[{"number": 80, "name": "a", "protocol": "SMTP"}]), "unsupported protocol: SMTP"),
    ("null port", se(ports=[None]), "service entry port may not be null"),
    ("addresses ok", se(addresses=["240.0.0.1"], resolution="STATIC", endpoints=[{"address": "10.0.0.1"}]), None),
    ("bad address", se(addresses=["not-an-ip"]), "not-an-ip is not a valid IP"),
    ("cidr with dns", se(addresses=["10.0.0.0/24"]), "CIDR addresses are allowed only for NONE/STATIC resolution types"),
    ("none with endpoints", se(resolution="NONE", endpoints=[{"address": "10.0.0.1"}]),
     "no endpoints should be provided for resolution type none"),
    ("static fqdn endpoint", se(resolution="STATIC", endpoints=[{"address": "db.example.com"}]),
     'endpoint address "db.example.com" is not a valid IP address'),
    ("static no address", se(resolution="STATIC", endpoints=[{"ports": {"https": 443}}]), "address is required"),
    ("endpoint port unknown", se(resolution="STATIC", endpoints=[{"address": "10.0.0.1", "ports": {"http": 80}}]),
     "endpoint port 80 is not defined by the service entry"),
    ("endpoint bad label", se(resolution="STATIC", endpoints=[{"address": "10.0.0.1", "labels": {"a": "b c"}}]),
     'invalid tag value: "b c"'),
    ("dns fqdn endpoint", se(endpoints=[{"address": "us.api.example.com"}]), None),
    ("dns bad endpoint", se(endpoints=[{"address": "bad_host"}]), 'endpoint address "bad_host" is not a valid FQDN or an IP address'),
    ("round robin many", se(resolution="DNS_ROUND_ROBIN", endpoints=[{"address": "a.com"}, {"address": "b.com"}]),
     "there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN"),
    ("selector and endpoints", se(resolution="STATIC", workloadSelector={"labels": {"app": "vm"}}, endpoints=[{"address": "10.0.0.1"}]),
     "only one of WorkloadSelector or Endpoints is allowed in Service Entry"),
    ("selector ok", se(resolution="STATIC", workloadSelector={"labels": {"app": "vm"}}), None),
    ("selector wildcard", se(resolution="STATIC", workloadSelector={"labels": {"app": "*"}}), 'wildcard is not supported in selector: "app=*"'),
    ("multi host tcp", se(hosts=["a.com", "b.com"], ports=[{"number": 3306, "name": "tcp", "protocol": "TCP"}]),
     "multiple hosts provided with non-HTTP, non-TLS ports"),
    ("multi host http", se(hosts=["a.com", "b.com"], ports=[{"number": 80, "name": "http", "protocol": "HTTP"}]), None),
    ("dynamic dns", se(hosts=["*.example.com"], resolution="DYNAMIC_DNS"), None),
    ("dynamic dns not wildcard", se(resolution="DYNAMIC_DNS"), "host must be wildcarded for resolution mode DYNAMIC_DNS"),
    ("dynamic dns tcp", se(hosts=["*.example.com"], resolution="DYNAMIC_DNS", ports=[{"number": 1, "name": "t", "protocol": "TCP"}]),
     "only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution type DYNAMIC_DNS"),
    ("export none ok", se(exportTo=["~"]), None),
    ("export none mix", se(exportTo=["~", "x"]), "cannot export service entry to no one (~) and someone"),
]


@pytest.mark.parametrize(("spec", "expected"), [(c[1], c[2]) for c in SE_CASES], ids=[c[0] for c in SE_CASES])
def test_service_entry_rule(spec: dict[str, Any], expected: str | None) -> None:
    errors = [str(e) for e in validate("ServiceEntry", obj("ServiceEntry", spec)).errors]
    if expected is None:
        assert errors == []
    else:
        assert any(expected in e for e in errors), errors


def test_service_entry_warnings() -> None:
    spec = se(hosts=["api.*.com"], resolution="NONE")
    assert 'partial wildcard "api.*.com" not allowed' in validate("ServiceEntry", obj("ServiceEntry", spec)).warnings
    spec = se(resolution="NONE", workloadSelector={"labels": {"app": "x"}})
    assert validate("ServiceEntry", obj("ServiceEntry", spec)).warnings == [
        "workloadSelector should not be set when resolution mode is NONE"]
    spec = se(resolution="STATIC", workloadSelector={})
    assert validate("ServiceEntry", obj("ServiceEntry", spec)).warnings == [
        "service entry: workload selector specified without labels, will be applied to all services in namespace"]
    spec = se(ports=[{"number": 3306, "name": "tcp", "protocol": "TCP"}])
    labels = {"networking.istio.io/enable-autoallocate-ip": "false"}
    assert validate("ServiceEntry", obj("ServiceEntry", spec, labels=labels)).warnings == [
        "addresses are required for ports serving TCP (or unset) protocol when IP Autoallocation is not enabled"]
