"""Istio's "Egress using Wildcard Hosts" task, direct traffic to a wildcard host, on a netns-mode daemon.

`*.wikipedia.org` is `*.wikipedia.example` here: a TLS server in namespace `external` (no sidecar, in no
registry) with a certificate for that wildcard. The mesh runs REGISTRY_ONLY (the task's prerequisite); the
ServiceEntry (hosts `*.wikipedia.example`, port 443 HTTPS, resolution NONE) lets through exactly the names it
covers: the sidecar's 0.0.0.0_443 listener matches the SNI and forwards to the original destination, and any
other name is closed. curl is pointed at the server with `--resolve` (no resolver knows these names; Istio's
task relies on the real DNS) and trusts its certificate with `--cacert`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import start_daemon, stop_daemon, wait_for
from tests.integration.netns.kube import Kube
from tests.integration.netns.test_egress import EGRESS_CONTROL, MESH_CONFIGMAP, SLEEP, Egress

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="netns mode needs root")

TLS_SERVER = r"""
import http.server, ssl, sys
TITLES = {"en": "Wikipedia, the free encyclopedia", "de": "Wikipedia \u2013 Die freie Enzyklop\u00e4die"}
class Page(http.server.BaseHTTPRequestHandler):
    server_version, sys_version = "wikipedia", ""
    def do_GET(self):
        lang = (self.headers.get("Host") or "").split(".")[0]
        body = f"<html><head><title>{TITLES.get(lang, lang)}</title></head></html>\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
    do_HEAD = do_GET
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
server = http.server.ThreadingHTTPServer(("0.0.0.0", 443), Page)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""

SERVICE_ENTRY = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: wikipedia
spec:
  hosts:
  - "*.wikipedia.example"
  ports:
  - number: 443
    name: https
    protocol: HTTPS
"""


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for `*.wikipedia.example` and `secure.example.org` (also its own CA, for curl's
    --cacert)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "*.wikipedia.example")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.wikipedia.example"),
                                                        x509.DNSName("secure.example.org")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def tls_server(cert_file: Path, key_file: Path) -> dict[str, Any]:
    """The Deployment serving TLS_SERVER on 443 in namespace `external`, without a sidecar."""
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "wikipedia", "namespace": "external"},
            "spec": {"selector": {"matchLabels": {"app": "wikipedia"}}, "template": {
                "metadata": {"labels": {"app": "wikipedia"}, "annotations": {"sidecar.istio.io/inject": "false"}},
                "spec": {"containers": [{
                    "name": "wikipedia", "image": "python:3.11",
                    "command": [sys.executable, "-c", TLS_SERVER, str(cert_file), str(key_file)],
                    "ports": [{"containerPort": 443}],
                    "readinessProbe": {"tcpSocket": {"port": 443}, "periodSeconds": 1}}]}}}}


@pytest.fixture(scope="module")
def wildcard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Egress, Path]]:
    home = tmp_path_factory.mktemp("wildcard-home")
    (home / "config.yaml").write_text("scrape_interval: 0.5\n")
    certs = tmp_path_factory.mktemp("wildcard-certs")
    os.chmod(certs, 0o755)
    cert_file, key_file = _certificate(certs)
    d = start_daemon(home, network="netns")
    k = Kube(d)
    try:
        k("create", "namespace", "external")
        k("create", "namespace", "istio-system")
        k("apply", "-f", "-", input=MESH_CONFIGMAP.replace("mode: ALLOW_ANY", "mode: REGISTRY_ONLY"))
        k("apply", "-f", "-", input=json.dumps(tls_server(cert_file, key_file)))
        k("apply", "-f", "-", input=SLEEP)
        k("wait", "--for=condition=Available", "deployment", "--all", "--timeout=120s")
        k("wait", "-n", "external", "--for=condition=Available", "deployment", "--all", "--timeout=120s")
        source = k("get", "pod", "-l", "app=sleep", "-o", "jsonpath={.items..metadata.name}")
        ip = k("get", "pod", "-n", "external", "-l", "app=wikipedia", "-o", "jsonpath={.items..status.podIP}")
        run = json.loads((home / "daemon.json").read_text())
        yield Egress(d, k, f"http://127.0.0.1:{run['metrics_port']}", source, ip), cert_file
    finally:
        stop_daemon(d)


@pytest.mark.istio_task("traffic-management/egress/wildcard-egress-hosts", "Egress using Wildcard Hosts")
def test_wildcard_egress_task(wildcard: tuple[Egress, Path]) -> None:
    e, ca = wildcard

    def curl(host: str, path: str) -> str:
        return (f"curl -s --cacert {ca} --resolve {host}:443:{e.external_ip} https://{host}{path} | "
                'grep -o "<title>.*</title>"')

    both = (f'{curl("en.wikipedia.example", "/wiki/Main_Page")}; '
            f'{curl("de.wikipedia.example", "/wiki/Wikipedia:Hauptseite")}')
    # REGISTRY_ONLY, no ServiceEntry yet: the TLS connection is closed before any title comes back
    code, out = e.exec_sleep(both)
    assert "<title>" not in out, out
    e.k("apply", "-f", "-", input=SERVICE_ENTRY)
    titles = ["<title>Wikipedia, the free encyclopedia</title>",
              "<title>Wikipedia \u2013 Die freie Enzyklop\u00e4die</title>"]
    last = [""]

    def both_titles() -> bool:  # both requests after the sidecar has the ServiceEntry's listener
        last[0] = e.exec_sleep(both)[1]
        return last[0].splitlines() == titles

    try:
        wait_for(both_titles, timeout=30, interval=0.5)
    except AssertionError:
        raise AssertionError(last[0]) from None
    # a name the wildcard does not cover stays blocked, though it is the same server
    code, out = e.exec_sleep(f"curl -sS --cacert {ca} --resolve www.wikipedia.example.net:443:{e.external_ip} "
                             "-k https://www.wikipedia.example.net/")
    assert code != 0 and "<title>" not in out, out
    # the connections are counted against the ServiceEntry's wildcard host
    opened = ('sum(istio_tcp_connections_opened_total{reporter="source",source_workload="sleep",'
              'destination_service="*.wikipedia.example",destination_service_name="*.wikipedia.example"})')
    wait_for(lambda: e.value(opened) >= 2, timeout=30)


SERVICE_ENTRY_HTTPS = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: secure
spec:
  hosts:
  - secure.example.org
  ports:
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
  location: MESH_EXTERNAL
  endpoints:
  - address: {name}
"""


@EGRESS_CONTROL
def test_access_an_external_https_service(wildcard: tuple[Egress, Path]) -> None:
    """The egress-control task's HTTPS ServiceEntry (www.google.com there): under REGISTRY_ONLY the host is
    closed until a DNS ServiceEntry names it; then it resolves in the pod (auto-allocated address), the
    sidecar's listener on that address proxies the TLS connection, and Envoy resolves the endpoint's name."""
    e, ca = wildcard
    head = f'curl -sSI --cacert {ca} https://secure.example.org | grep "HTTP/"'
    code, out = e.exec_sleep(head)
    assert "HTTP/" not in out, out
    e.k("apply", "-f", "-", input=SERVICE_ENTRY_HTTPS.format(name=e.external_name))
    assert e.eventually(head, "HTTP/1.0 200 OK").strip() == "HTTP/1.0 200 OK"
