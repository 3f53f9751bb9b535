"""VirtualService `tcp`/`tls` routes, Gateway TCP and TLS-passthrough servers, DestinationRule TLS origination:
where a connection lands (listener, filter chain, cluster) and what the clusters carry, from the scenario
`netns-tcp-tls` (its golden file holds the whole config; Envoy validates it in test_xds_envoy_validate)."""

from __future__ import annotations

import copy
from typing import Any

from xds_scenarios import NS, build_push, load_scenario, proxy_for, run_scenario, scenario_objects, to_dict

from sluice import mesh
from sluice.xds.translate import TYPE_CLUSTER, TYPE_LISTENER, MeshOptions, Resources, generate
from sluice.xds.translate.gateway_tcp import gateway_tcp_listeners
from sluice.xds.translate.simulate import Hop, match_connection

Obj = dict[str, Any]
ECHO_VIP, SECURE_VIP = "10.96.0.30", "10.96.0.32"
OPTIONS = MeshOptions(network="netns", host_netns="/run/netns/sluice-host")


def fqdn(name: str) -> str:
    return mesh.fqdn(name, NS)


def echo(port: int, subset: str = "") -> str:
    return mesh.outbound_cluster(port, subset, fqdn("tcp-echo"))


def secure(subset: str = "") -> str:
    return mesh.outbound_cluster(443, subset, fqdn("secure"))


def objects() -> list[Obj]:
    return scenario_objects(load_scenario("netns-tcp-tls"))


def resources(objs: list[Obj], pod: str) -> Resources:
    return generate(proxy_for(objs, pod), build_push(objs, OPTIONS))


def tcp_config(res: Resources, listener: str, chain: int = 0) -> Obj:
    config: Obj = to_dict(res[TYPE_LISTENER][listener])["filter_chains"][chain]["filters"][0]["typed_config"]
    return config


def find(objs: list[Obj], kind: str, name: str) -> Obj:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def test_tcp_route_weights_subsets_and_source_labels() -> None:
    sleep = run_scenario("netns-tcp-tls")["sleep"]
    split = tcp_config(sleep, f"{ECHO_VIP}_9000")
    assert split["weighted_clusters"]["clusters"] == [{"name": echo(9000, "v1"), "weight": 80},
                                                      {"name": echo(9000, "v2"), "weight": 20}]
    assert split["stat_prefix"] == f"tcp-echo-mesh.{NS}"  # Istio's name for a weighted TCP proxy
    assert match_connection(sleep, ECHO_VIP, 9001, http=False) == Hop(
        f"{ECHO_VIP}_9001", f"{ECHO_VIP}_9001", cluster=echo(9001, "v2"))
    # productpage is no `app: sleep`: the 80/20 rule is not for it, so its 9000 goes to the whole service
    other = resources(objects(), "productpage-v1")
    assert match_connection(other, ECHO_VIP, 9000, http=False) == Hop(
        f"{ECHO_VIP}_9000", f"{ECHO_VIP}_9000", cluster=echo(9000))
    assert {echo(9000, "v1"), echo(9000, "v2"), echo(9001, "v2")} <= set(sleep[TYPE_CLUSTER])


def test_tcp_destination_subnets_get_their_own_chain_before_the_default() -> None:
    objs = objects()
    vs = find(objs, "VirtualService", "tcp-echo-mesh")
    vs["spec"]["tcp"] = [
        {"match": [{"destinationSubnets": ["10.96.0.0/16"]}],
         "route": [{"destination": {"host": "tcp-echo", "port": {"number": 9000}, "subset": "v2"}}]},
        {"route": [{"destination": {"host": "tcp-echo", "port": {"number": 9000}, "subset": "v1"}}]},
        {"route": [{"destination": {"host": "tcp-echo", "port": {"number": 9000}}}]},  # after a catch-all: unused
    ]
    res = resources(objs, "sleep")
    chains = to_dict(res[TYPE_LISTENER][f"{ECHO_VIP}_9000"])["filter_chains"]
    assert [c.get("filter_chain_match") for c in chains] == [
        {"prefix_ranges": [{"address_prefix": "10.96.0.0", "prefix_len": 16}]}, None]
    assert match_connection(res, ECHO_VIP, 9000, http=False).cluster == echo(9000, "v2")  # type: ignore[union-attr]
    assert chains[1]["filters"][0]["typed_config"]["cluster"] == echo(9000, "v1")


def test_tls_routes_pick_the_subset_by_sni() -> None:
    sleep = run_scenario("netns-tcp-tls")["sleep"]
    listener = to_dict(sleep[TYPE_LISTENER][f"{SECURE_VIP}_443"])
    assert [f["name"] for f in listener["listener_filters"]] == ["envoy.filters.listener.tls_inspector"]
    hop = match_connection(sleep, SECURE_VIP, 443, http=False, sni="a.secure.example")
    assert hop is not None and hop.cluster == secure("v1")
    b = tcp_config(sleep, f"{SECURE_VIP}_443", 1)
    assert b["weighted_clusters"]["clusters"] == [{"name": secure("v1"), "weight": 50},
                                                  {"name": secure("v2"), "weight": 50}]
    # an SNI no rule names has no chain (Envoy closes the connection), as in Istio
    assert match_connection(sleep, SECURE_VIP, 443, http=False, sni="c.secure.example") is None


def test_tls_port_without_tls_routes_goes_to_the_service_whatever_the_sni() -> None:
    objs = [o for o in objects() if not (o["kind"] == "VirtualService" and o["metadata"]["name"] == "secure")]
    res = resources(objs, "sleep")
    listener = to_dict(res[TYPE_LISTENER][f"{SECURE_VIP}_443"])
    assert "listener_filters" not in listener
    for sni in ("a.secure.example", None):
        hop = match_connection(res, SECURE_VIP, 443, http=False, sni=sni)
        assert hop is not None and hop.cluster == secure()


def test_gateway_tcp_server_splits_by_the_bound_virtual_service() -> None:
    gw = run_scenario("netns-tcp-tls")["istio-ingressgateway"]
    # the same listener twice: in the gateway's pod (Istio's name; pods reach it through its Service) and on
    # the host's 127.0.0.1 (the load balancer's address)
    pod = to_dict(gw[TYPE_LISTENER]["0.0.0.0_31400"])
    assert pod["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 31400}
    host = to_dict(gw[TYPE_LISTENER]["127.0.0.1_31400"])
    assert host["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 31400,
                                                  "network_namespace_filepath": "/run/netns/sluice-host"}
    for name in ("0.0.0.0_31400", "127.0.0.1_31400"):
        assert tcp_config(gw, name)["weighted_clusters"]["clusters"] == [
            {"name": echo(9000, "v1"), "weight": 80}, {"name": echo(9000, "v2"), "weight": 20}]
    assert {echo(9000, "v1"), echo(9000, "v2")} <= set(gw[TYPE_CLUSTER])
    for name in ("0.0.0.0_443", "127.0.0.1_443"):
        passthrough = to_dict(gw[TYPE_LISTENER][name])
        assert passthrough["listener_filters"][0]["name"] == "envoy.filters.listener.tls_inspector"
        assert [(c["filter_chain_match"], c["filters"][0]["typed_config"]["cluster"])
                for c in passthrough["filter_chains"]] == [({"server_names": ["a.secure.example"]}, secure("v2"))]


def test_gateway_servers_without_routes_or_not_built_here_get_no_listener() -> None:
    objs = objects()
    vs = find(objs, "VirtualService", "tcp-echo")
    vs["spec"]["tcp"][0]["match"] = [{"port": 31401}]  # no rule for the server's port
    gw = find(objs, "Gateway", "secure-gateway")
    gw["spec"]["servers"][0]["tls"] = {"mode": "AUTO_PASSTHROUGH"}
    extra = copy.deepcopy(find(objs, "Gateway", "tcp-echo-gateway"))
    extra["metadata"]["name"] = "http-gateway"
    extra["spec"]["servers"] = [{"port": {"number": 9080, "name": "tcp", "protocol": "TCP"}, "hosts": ["*"]},
                                {"port": {"number": 9080, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]
    objs.append(extra)
    names = set(resources(objs, "istio-ingressgateway")[TYPE_LISTENER])
    assert not {"0.0.0.0_31400", "0.0.0.0_443", "127.0.0.1_31400", "127.0.0.1_443"} & names
    assert {"0.0.0.0_9080", "127.0.0.1_9080"} <= names  # the HTTP server's listener, not a second one for the TCP server


def test_gateway_tcp_listeners_take_the_port_mapping() -> None:
    objs = objects()
    push = build_push(objs, OPTIONS)
    out = gateway_tcp_listeners(proxy_for(objs, "istio-ingressgateway"), push,
                                address=lambda p: {"socket_address": {"address": "127.0.0.1", "port_value": p}},
                                listen_port=lambda p: p + 10000)
    assert [(x["name"], x["address"]["socket_address"]["port_value"]) for x in out] == [
        ("0.0.0.0_10443", 10443), ("0.0.0.0_41400", 41400)]


def test_destination_rule_tls_origination() -> None:
    sleep = run_scenario("netns-tcp-tls")["sleep"]
    db = to_dict(sleep[TYPE_CLUSTER][mesh.outbound_cluster(5432, "", fqdn("db-tls"))])
    tls = db["transport_socket"]["typed_config"]
    assert db["transport_socket"]["name"] == "envoy.transport_sockets.tls"
    assert tls["sni"] == "db.example"
    assert tls["common_tls_context"]["validation_context"]["trusted_ca"] == {
        "filename": "/etc/ssl/certs/ca-certificates.crt"}
    api = to_dict(sleep[TYPE_CLUSTER][mesh.outbound_cluster(8443, "", fqdn("api"))])
    options = api["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert options["upstream_http_protocol_options"] == {"auto_sni": True, "auto_san_validation": True}
    assert "sni" not in api["transport_socket"]["typed_config"]
    # plaintext stays plaintext
    assert "transport_socket" not in to_dict(sleep[TYPE_CLUSTER][echo(9000)])


def test_mutual_tls_origination_and_the_modes_that_stay_plaintext() -> None:
    objs = objects()
    dr = find(objs, "DestinationRule", "db-tls")
    dr["spec"]["trafficPolicy"]["tls"] = {"mode": "MUTUAL", "clientCertificate": "/certs/client.pem",
                                          "privateKey": "/certs/client.key", "caCertificates": "/certs/ca.pem"}
    dr["spec"]["subsets"] = [{"name": "plain", "labels": {"v": "1"}, "trafficPolicy": {"tls": {"mode": "DISABLE"}}},
                             {"name": "mesh", "labels": {"v": "2"}, "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}]
    clusters = resources(objs, "sleep")[TYPE_CLUSTER]
    tls = to_dict(clusters[mesh.outbound_cluster(5432, "", fqdn("db-tls"))])["transport_socket"]["typed_config"]
    assert tls["common_tls_context"]["tls_certificates"] == [
        {"certificate_chain": {"filename": "/certs/client.pem"}, "private_key": {"filename": "/certs/client.key"}}]
    assert tls["common_tls_context"]["validation_context"] == {"trusted_ca": {"filename": "/certs/ca.pem"}}
    for subset in ("plain", "mesh"):
        assert "transport_socket" not in to_dict(clusters[mesh.outbound_cluster(5432, subset, fqdn("db-tls"))])


def _pem_pair() -> tuple[bytes, bytes]:
    """A self-signed EC certificate and its key, PEM."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sleep")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def test_tls_origination_with_credential_name() -> None:
    import base64

    cert, key = _pem_pair()

    def secret(name: str, **data: bytes) -> Obj:
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name, "namespace": NS},
                "data": {k.replace("_", "."): base64.b64encode(v).decode() for k, v in data.items()}}

    def tls_of(objs: list[Obj], subset: str = "") -> Obj:
        cluster = to_dict(resources(objs, "sleep")[TYPE_CLUSTER][mesh.outbound_cluster(5432, subset, fqdn("db-tls"))])
        out: Obj = cluster["transport_socket"]["typed_config"]["common_tls_context"]
        return out

    def inline(data: bytes) -> Obj:
        return {"inline_bytes": base64.b64encode(data).decode()}

    objs = objects()
    dr = find(objs, "DestinationRule", "db-tls")
    dr["spec"]["trafficPolicy"]["tls"] = {"mode": "MUTUAL", "credentialName": "db-client", "sni": "db.example",
                                          "subjectAltNames": ["db.example"]}
    dr["spec"]["subsets"] = [{"name": "simple", "labels": {"v": "1"}, "trafficPolicy": {"tls": {
        "mode": "SIMPLE", "credentialName": "db-ca"}}}]
    # a sidecar reads a rule's credentialName only through a workloadSelector (see the test below)
    dr["spec"]["workloadSelector"] = {"matchLabels": dict(proxy_for(objs, "sleep").labels)}
    missing = tls_of(objs)  # no Secret yet: fail closed (no certificate accepted, none offered)
    assert missing == {"tls_params": missing["tls_params"],
                       "validation_context": {"verify_certificate_hash": ["0" * 64]}}
    # tls.crt/tls.key with the CA in `<name>-cacert`; a generic Secret's `cacert`
    objs += [secret("db-client", tls_crt=cert, tls_key=key), secret("db-client-cacert", ca_crt=cert),
             secret("db-ca", cacert=cert)]
    mutual = tls_of(objs)
    assert mutual["tls_certificates"] == [{"certificate_chain": inline(cert), "private_key": inline(key)}]
    assert mutual["validation_context"]["trusted_ca"] == inline(cert)
    assert {"san_type": "DNS", "matcher": {"exact": "db.example"}} in \
        mutual["validation_context"]["match_typed_subject_alt_names"]
    simple = tls_of(objs, "simple")
    assert "tls_certificates" not in simple and simple["validation_context"] == {"trusted_ca": inline(cert)}
    # a key that is not the certificate's: broken, so fail closed too
    other_key = _pem_pair()[1]
    broken = [o for o in objs if o["metadata"]["name"] != "db-client"] + [secret("db-client", tls_crt=cert,
                                                                                 tls_key=other_key)]
    assert tls_of(broken)["validation_context"] == {"verify_certificate_hash": ["0" * 64]}


def test_credential_name_reaches_sidecars_only_through_a_workload_selector() -> None:
    """Istio's cluster builder gives a sidecar no TLS context for a SIMPLE/MUTUAL setting naming a Secret when the
    rule has no workloadSelector (the cluster stays plaintext), so one rule never hands a Secret to every sidecar
    it reaches; a gateway still originates with it, and a setting with files instead of a Secret is unaffected."""
    import base64

    cert, key = _pem_pair()
    objs = objects()
    gateway_ns = proxy_for(objs, "istio-ingressgateway").namespace
    for ns in {NS, gateway_ns}:
        objs.append({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                     "metadata": {"name": "db-client", "namespace": ns},
                     "data": {k: base64.b64encode(v).decode() for k, v in
                              (("tls.crt", cert), ("tls.key", key), ("ca.crt", cert))}})
    dr = find(objs, "DestinationRule", "db-tls")
    dr["spec"]["trafficPolicy"]["tls"] = {"mode": "MUTUAL", "credentialName": "db-client", "sni": "db.example"}

    def cluster(pod: str, objs: list[Obj]) -> Obj:
        out: Obj = to_dict(resources(objs, pod)[TYPE_CLUSTER][mesh.outbound_cluster(5432, "", fqdn("db-tls"))])
        return out

    assert "transport_socket" not in cluster("sleep", objs)  # no selector: plaintext from the sidecar
    at_gateway = cluster("istio-ingressgateway", objs)["transport_socket"]["typed_config"]["common_tls_context"]
    assert at_gateway["tls_certificates"][0]["certificate_chain"] == {"inline_bytes": base64.b64encode(cert).decode()}
    for mode in ("SIMPLE", "MUTUAL"):
        dr["spec"]["trafficPolicy"]["tls"]["mode"] = mode
        assert "transport_socket" not in cluster("sleep", objs), mode
    # a configmap:// reference is not a Secret: Istio leaves it to the normal path (here: fail closed, unreadable)
    dr["spec"]["trafficPolicy"]["tls"]["credentialName"] = "configmap://db-ca"
    assert "transport_socket" in cluster("sleep", objs)
    # files instead of a Secret: the sidecar originates as before
    dr["spec"]["trafficPolicy"]["tls"] = {"mode": "SIMPLE", "sni": "db.example", "caCertificates": "/etc/ca.pem"}
    assert "transport_socket" in cluster("sleep", objs)
    # selecting the client: the sidecar gets the Secret's certificate
    dr["spec"]["trafficPolicy"]["tls"] = {"mode": "MUTUAL", "credentialName": "db-client", "sni": "db.example"}
    dr["spec"]["workloadSelector"] = {"matchLabels": dict(proxy_for(objs, "sleep").labels)}
    selected = cluster("sleep", objs)["transport_socket"]["typed_config"]["common_tls_context"]
    assert selected["tls_certificates"][0]["private_key"] == {"inline_bytes": base64.b64encode(key).decode()}
