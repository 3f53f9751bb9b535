"""Proxy certificates: what the daemon's CA issues for a pod, and what the xDS/ALS server reads back."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509

from sluice import mesh
from sluice.daemon.pki import ProxyCa
from sluice.xds.bootstrap import XDS_CLUSTER, proxy_bootstrap
from sluice.xds.identity import CA_SECRET, IDENTITY_SECRET, ProxyCredential, ProxyIdentity, identity_from_pem

POD = {"metadata": {"name": "reviews-v2-abc", "namespace": "tutorial", "uid": "0b1c-77"},
       "spec": {"serviceAccountName": "bookinfo-reviews", "containers": [{"name": "reviews"}]}}
IDENT = ProxyIdentity("sidecar", "127.1.0.5", "reviews-v2-abc", "tutorial", "0b1c-77", "bookinfo-reviews")


def test_issued_certificate_names_the_pod(tmp_path: Path) -> None:
    ca = ProxyCa(tmp_path / "pki")
    issued = ca.issue(IDENT, tmp_path / "pod")
    for f in (issued.cert_file, issued.key_file, issued.ca_file):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    pem = issued.cert_file.read_bytes()
    assert identity_from_pem(pem) == IDENT
    san = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "spiffe://cluster.local/ns/tutorial/sa/bookinfo-reviews" in san.get_values_for_type(
        x509.UniformResourceIdentifier)
    # The server's own certificate is no proxy identity.
    assert identity_from_pem(ca.server_cert_file.read_bytes()) is None
    assert identity_from_pem(b"not a certificate") is None
    # A second CA object over the same directory reuses the CA and the server certificate.
    assert ProxyCa(tmp_path / "pki").server_credentials() == ca.server_credentials()


def test_node_id_must_name_exactly_the_certificates_proxy() -> None:
    assert IDENT.matches_node(mesh.sidecar_node_id("127.1.0.5", "reviews-v2-abc", "tutorial"))
    assert not IDENT.matches_node(mesh.sidecar_node_id("127.1.0.6", "reviews-v2-abc", "tutorial"))  # other IP
    assert not IDENT.matches_node(mesh.sidecar_node_id("127.1.0.5", "ratings-v1-xyz", "tutorial"))  # other pod
    assert not IDENT.matches_node(mesh.router_node_id("127.1.0.5", "reviews-v2-abc", "tutorial"))  # other type
    assert not IDENT.matches_node("garbage")


def test_bootstrap_uses_the_credential_for_xds() -> None:
    cred = ProxyCredential("/p/proxy.crt", "/p/proxy.key", "/p/ca.crt")
    boot = proxy_bootstrap(node_id=IDENT.node_id, pod=POD, pod_ip=IDENT.ip, xds_address="/home/xds.sock",
                           cluster="reviews.tutorial", network="netns", credential=cred)
    [xds] = [c for c in boot["static_resources"]["clusters"] if c["name"] == XDS_CLUSTER]
    tls = xds["transport_socket"]["typed_config"]["common_tls_context"]
    assert tls["tls_certificate_sds_secret_configs"] == [{"name": IDENTITY_SECRET}]
    secrets = {s["name"]: s for s in boot["static_resources"]["secrets"]}
    assert secrets[IDENTITY_SECRET]["tls_certificate"]["private_key"] == {"filename": "/p/proxy.key"}
    assert secrets[CA_SECRET]["validation_context"]["trusted_ca"] == {"filename": "/p/ca.crt"}
    plain = proxy_bootstrap(node_id=IDENT.node_id, pod=POD, pod_ip=IDENT.ip, xds_address="/home/xds.sock",
                            cluster="reviews.tutorial", network="netns")
    assert "transport_socket" not in plain["static_resources"]["clusters"][0]
