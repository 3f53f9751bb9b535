"""DestinationRule TLS origination with `credentialName` (client certificate, key and CA from a Secret, as Istio
serves them over SDS), with a real Envoy in a throw-away network namespace (the harness of
test_xds_netns_envoy) against TLS servers this process runs there: SIMPLE verifies the server with the Secret's
CA, MUTUAL also presents the Secret's client certificate to a server that requires one, and a Secret that is not
there yet fails closed until it is created.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from sluice.store.sqlite import Store
from sluice.xds.translate import MeshOptions
from tests.integration.xds.test_xds_netns_envoy import (  # noqa: F401  (sockdir, xds_for: fixtures)
    CAPTURE_RULES,
    CLIENT_IP,
    DB_IP,
    Envoy,
    Netns,
    _endpoints,
    _obj,
    _ok,
    _pod,
    _service,
    _until,
    pytestmark,
    sockdir,
    xds_for,
)
from tests.integration.xds.test_xds_tcp_tls_envoy import line_call, make_certs, serve_tls

SIMPLE_VIP, MUTUAL_VIP, LATE_VIP = "10.96.0.40", "10.96.0.42", "10.96.0.44"


def _secret(name: str, type_: str, files: dict[str, Path]) -> dict[str, Any]:
    return _obj("Secret", name, type=type_,
                data={k: base64.b64encode(f.read_bytes()).decode() for k, f in files.items()})


def _rule(host: str, mode: str, credential: str) -> dict[str, Any]:
    # A sidecar reads a rule's credentialName only when the rule selects it (Istio's cluster builder).
    return _obj("DestinationRule", host, spec={"host": host, "workloadSelector": {"matchLabels": {"app": "sleep"}},
                                               "trafficPolicy": {"tls": {"mode": mode, "sni": "db.example",
                                                                         "credentialName": credential}}})


async def _fails(call: Any) -> bool:
    """The connection gets no answer (Envoy closes it: the handshake failed)."""
    try:
        return await call() == ""
    except (ConnectionError, OSError):
        return True


async def test_tls_origination_with_credentials_from_secrets(tmp_path: Path, xds_for: Any) -> None:  # noqa: F811
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    netns = Netns(CAPTURE_RULES)
    store = Store(tmp_path / "store.db")
    servers: list[asyncio.Server] = []
    envoy: Envoy | None = None
    try:
        netns.link([CLIENT_IP, DB_IP])
        store.create("namespaces", _obj("Namespace", "netnstest"))
        sleep = _pod("sleep-1", CLIENT_IP, {"app": "sleep"})
        store.create("pods", sleep)
        store.create("pods", _pod("db-1", DB_IP, {"app": "db"}))
        for name, vip, port in (("db-simple", SIMPLE_VIP, 5432), ("db-mtls", MUTUAL_VIP, 5433),
                                ("db-late", LATE_VIP, 5434)):
            store.create("services", _service(name, vip, port, "tcp-db"))
            store.create("endpoints", _endpoints(name, port, ("db-1", DB_IP)))
        # SIMPLE: the CA from a generic Secret (`cacert`); MUTUAL: a TLS Secret with the client's certificate,
        # key and `ca.crt`, as `kubectl create secret generic … --from-file=tls.crt=… --from-file=ca.crt=…`
        store.create("secrets", _secret("db-ca", "Opaque", {"cacert": certs / "ca.crt"}))
        client = {"tls.crt": certs / "client.crt", "tls.key": certs / "client.key", "ca.crt": certs / "ca.crt"}
        store.create("secrets", _secret("db-client", "kubernetes.io/tls", client))
        store.create("destinationrules.networking.istio.io", _rule("db-simple", "SIMPLE", "db-ca"))
        store.create("destinationrules.networking.istio.io", _rule("db-mtls", "MUTUAL", "db-client"))
        store.create("destinationrules.networking.istio.io", _rule("db-late", "MUTUAL", "db-late-client"))
        servers = [await serve_tls(netns, DB_IP, 5432, "db", certs),
                   await serve_tls(netns, DB_IP, 5433, "db-mtls", certs, require_client=True),
                   await serve_tls(netns, DB_IP, 5434, "db-late", certs, require_client=True)]
        sock = await xds_for(store, MeshOptions(network="netns"))
        envoy = Envoy(tmp_path, netns, sleep, sock)
        assert await _until(lambda: _ok(envoy.admin("/healthz/ready", 15021)), "ready"), envoy.log_path.read_text()

        # the app speaks plaintext; its sidecar originates TLS with the DestinationRule's SNI, verifying the
        # server with the Secret's CA (`<server> <SNI> <client certificate CN or -> <line>`)...
        assert await _until(lambda: line_call(netns, SIMPLE_VIP, 5432), "SIMPLE") == "db db.example - hi\n", \
            envoy.log_path.read_text()
        # ...and MUTUAL presents the Secret's client certificate to a server that requires one
        assert await line_call(netns, MUTUAL_VIP, 5433) == "db-mtls db.example sleep hi\n"
        # a Secret that does not exist: no plaintext, no unverified TLS, nothing gets through...
        assert await _fails(lambda: line_call(netns, LATE_VIP, 5434))
        assert await envoy.stat("cluster.outbound|5434||db-late.netnstest.svc.cluster.local.ssl.fail_verify_cert_hash") \
            >= 1
        # ...until it is created: the change reaches the sidecar
        store.create("secrets", _secret("db-late-client", "kubernetes.io/tls", client))
        assert await _until(lambda: line_call(netns, LATE_VIP, 5434), "the Secret's arrival") == \
            "db-late db.example sleep hi\n"
    finally:
        if envoy is not None:
            envoy.stop()
        for s in servers:
            s.close()
        store.close()
        netns.close()
