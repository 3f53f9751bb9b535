"""How a proxy proves who it is to the daemon's xDS/ALS endpoint (both sides: Envoy config and what the server reads).

Every sidecar and gateway holds a client certificate the daemon issued for its pod
(`sluice.daemon.pki.ProxyCa.issue`). The bootstrap (`sluice.xds.bootstrap`) names its files once, as two
static secrets; the `xds-grpc` cluster (bootstrap) and the ALS cluster (CDS, `sluice.xds.translate.clusters`)
both refer to them by name, so the pushed CDS stays the same for every proxy. The proxy checks the
server's certificate against the daemon's CA and its name (`istiod.istio-system.svc`, as for istiod).

The server side: `identity_from_pem` reads who a verified client certificate names. A proxy certificate
carries, as URI SANs, Istio's SPIFFE identity `spiffe://cluster.local/ns/<ns>/sa/<sa>` and
`sluice://proxy/<type>/<ns>/<pod>/<uid>` (which pins the exact pod: the SPIFFE identity is shared by every
pod of a service account), and the pod IP as an IP SAN — together, exactly the proxy's node id.
"""

from __future__ import annotations

import functools
import urllib.parse
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from sluice import mesh

__all__ = ["ProxyCredential", "ProxyIdentity", "identity_from_pem", "peer_identity", "IDENTITY_SECRET", "CA_SECRET",
           "XDS_SERVER_NAME", "PROXY_TYPES", "PROXY_URI_SCHEME", "static_secrets", "upstream_tls"]

IDENTITY_SECRET = "sluice-proxy-identity"  # the pod's certificate and key
CA_SECRET = "sluice-xds-ca"  # the daemon's CA and the server name to expect
XDS_SERVER_NAME = "istiod.istio-system.svc"
PROXY_URI_SCHEME = "sluice"
PROXY_TYPES = ("sidecar", "router")


@dataclass(frozen=True)
class ProxyCredential:
    """Files in the pod's state directory (written 0600 by the kubelet)."""

    cert_file: str
    key_file: str
    ca_file: str


def static_secrets(cred: ProxyCredential) -> list[dict[str, Any]]:
    """The bootstrap's `static_resources.secrets`."""
    return [
        {"name": IDENTITY_SECRET, "tls_certificate": {"certificate_chain": {"filename": cred.cert_file},
                                                      "private_key": {"filename": cred.key_file}}},
        {"name": CA_SECRET, "validation_context": {
            "trusted_ca": {"filename": cred.ca_file},
            "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": XDS_SERVER_NAME}}]}},
    ]


def upstream_tls() -> dict[str, Any]:
    """A cluster's `transport_socket`: mutual TLS to the xDS/ALS endpoint with the static secrets (no
    `sds_config`: Envoy looks a name without one up in `static_resources.secrets`)."""
    return {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "sni": XDS_SERVER_NAME,
        "common_tls_context": {
            "alpn_protocols": ["h2"],
            "tls_certificate_sds_secret_configs": [{"name": IDENTITY_SECRET}],
            "validation_context_sds_secret_config": {"name": CA_SECRET},
        }}}


@dataclass(frozen=True, slots=True)
class ProxyIdentity:
    """Who a proxy certificate names: the node id's parts (type, pod IP, pod, namespace) plus the pod's
    UID and service account."""

    kind: str  # "sidecar" | "router"
    ip: str
    pod: str
    namespace: str
    uid: str
    service_account: str

    @property
    def spiffe(self) -> str:
        return f"spiffe://{mesh.CLUSTER_DOMAIN}/ns/{self.namespace}/sa/{self.service_account}"

    @property
    def pod_uri(self) -> str:
        q = urllib.parse.quote
        return f"{PROXY_URI_SCHEME}://proxy/{self.kind}/{q(self.namespace)}/{q(self.pod)}/{q(self.uid, safe='')}"

    @property
    def node_id(self) -> str:
        make = mesh.router_node_id if self.kind == "router" else mesh.sidecar_node_id
        return make(self.ip, self.pod, self.namespace)

    def matches_node(self, node_id: str) -> bool:
        """Whether a node id (xDS node, ALS identifier) names this proxy and nothing else."""
        return mesh.parse_node_id(node_id) == (self.kind, self.ip, self.pod, self.namespace)

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.pod} ({self.ip})"


def _parse_pod_uri(uri: str) -> tuple[str, str, str, str] | None:
    u = urllib.parse.urlsplit(uri)
    if u.scheme != PROXY_URI_SCHEME or u.netloc != "proxy":
        return None
    parts = u.path.split("/")
    if len(parts) != 5 or parts[0] != "" or parts[1] not in PROXY_TYPES:
        return None
    kind, ns, pod, uid = (urllib.parse.unquote(p) for p in parts[1:])
    return (kind, ns, pod, uid) if ns and pod and uid else None


@functools.lru_cache(maxsize=1024)  # a stream asks once, but every Envoy worker opens its own streams
def identity_from_pem(pem: bytes) -> ProxyIdentity | None:
    """The proxy a (chain-verified) client certificate names, or None when it names none."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    pods = [p for p in (_parse_pod_uri(u) for u in san.get_values_for_type(x509.UniformResourceIdentifier)) if p]
    spiffe = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith("spiffe://")]
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    if len(pods) != 1 or len(spiffe) != 1 or len(ips) != 1:
        return None
    kind, ns, pod, uid = pods[0]
    prefix = f"spiffe://{mesh.CLUSTER_DOMAIN}/ns/{ns}/sa/"
    if not spiffe[0].startswith(prefix):
        return None
    return ProxyIdentity(kind, ips[0], pod, ns, uid, spiffe[0][len(prefix):])


def peer_identity(context: Any) -> ProxyIdentity | None:
    """The proxy a gRPC call's client certificate names (the server verified its chain against the daemon's
    CA during the handshake), or None: no TLS, no certificate, or not a proxy certificate."""
    try:
        pems = context.auth_context().get("x509_pem_cert") or []
    except (AttributeError, RuntimeError):
        return None
    return identity_from_pem(bytes(pems[0])) if len(pems) == 1 else None
