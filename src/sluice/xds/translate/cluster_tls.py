"""DestinationRule `trafficPolicy.tls` → an outbound cluster's upstream TLS (Istio's cluster_tls.go, the
parts we need: TLS origination).

- `SIMPLE`: the sidecar opens TLS to the destination: `sni` as written; `caCertificates` (a file the proxy
  reads) verifies the server, together with `subjectAltNames`; without it (or with `insecureSkipVerify`) the
  server is not verified, as Istio does without a root certificate;
- `MUTUAL`: the same plus the client's `clientCertificate` and `privateKey` (both required, as Istio requires);
- `credentialName` instead of the files (`SIMPLE` and `MUTUAL`): the client certificate, key, CA and CRL come
  from that Secret in the proxy's namespace, read as Istio's SDS serves it (`credentials`): for MUTUAL
  `tls.crt`/`tls.key` or `cert`/`key`; the CA from `ca.crt`/`cacert` of that Secret or of `<name>-cacert`
  (required unless `insecureSkipVerify`); `ca.crl`/`crl`. They travel inline in the cluster (not over SDS).
  A Secret that is missing, incomplete or does not load fails closed, as Istio's proxy does while SDS has
  nothing for it: the cluster accepts no server certificate (an impossible pin) and offers none. At a sidecar,
  a rule without a `workloadSelector` whose TLS names a Secret this way gets no TLS at all (plaintext), as
  Istio's cluster builder does so that a Secret is never handed to every sidecar a rule reaches
  (`sidecar_drops_tls`); gateways and the workloads a selecting rule picks get it;
- `DISABLE`, `ISTIO_MUTUAL`: plaintext (Sluice has no mesh mTLS, so Istio's auto-mTLS default is plaintext too).
When `sni` is empty, HTTP clusters take it from the request's host (`auto_sni`) and, with a root
certificate and no `subjectAltNames`, check the server's certificate for that name (`auto_san_validation`).
Called by `clusters`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from .credentials import ca_of, first, key_pair_loads, pem_certificates_load
from .protos import typed
from .push_context import PushContext
from .spec import Obj

__all__ = ["transport_socket", "upstream_http_options", "client_credential", "sidecar_drops_tls", "ClientCredential",
           "TLS_SOCKET", "NO_CERTIFICATE_PIN"]

TLS_SOCKET = "envoy.transport_sockets.tls"
_UPSTREAM_TLS = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
_ORIGINATING = ("SIMPLE", "MUTUAL")
_CONFIGMAP_REF = "configmap://"  # a credential anyone may read (Istio's KubernetesConfigMapTypeURI)
# A SHA-256 pin no certificate has: with it Envoy refuses every server (a credential that is not there).
NO_CERTIFICATE_PIN = "0" * 64


@dataclass(frozen=True)
class ClientCredential:
    """What a DestinationRule's `credentialName` Secret holds (PEM); `usable` False: missing or broken."""

    usable: bool
    cert: bytes | None = None
    key: bytes | None = None
    ca: bytes | None = None
    crl: bytes | None = None


def _mode(tls: Any) -> str:
    return str(tls.get("mode") or "") if isinstance(tls, dict) else ""


def _file(path: Any) -> Obj:
    return {"filename": str(path)}


def _inline(data: bytes) -> Obj:
    return {"inline_bytes": base64.b64encode(data).decode("ascii")}


def _skip_verify(tls: Obj) -> bool:
    value = tls.get("insecureSkipVerify")
    return bool(value.get("value") if isinstance(value, dict) else value)


def _credential_name(tls: Any) -> str:
    return str(tls.get("credentialName") or "") if _mode(tls) in _ORIGINATING else ""


def sidecar_drops_tls(tls: Any, rule_selects: bool) -> bool:
    """Whether a sidecar gets no TLS from this setting: SIMPLE or MUTUAL naming a Secret (`credentialName`, not
    a `configmap://` reference) in a rule without a `workloadSelector` (`rule_selects` False). Istio's
    `buildUpstreamClusterTLSContext` returns no TLS context then, and the cluster stays plaintext."""
    name = _credential_name(tls)
    return bool(name) and not name.startswith(_CONFIGMAP_REF) and not rule_selects


def client_credential(push: PushContext, namespace: str, tls: Any) -> ClientCredential | None:
    """The credential a DestinationRule TLS setting names (`credentialName`, a Secret in the proxy's
    `namespace`), or None when it names none."""
    name = _credential_name(tls)
    if not name:
        return None
    assert isinstance(tls, dict)
    mutual, need_ca = _mode(tls) == "MUTUAL", not _skip_verify(tls)

    def read() -> ClientCredential:
        secret = push.secret(namespace, name)
        cert = key = None
        if mutual:
            cert, key = first(secret, "tls.crt", "cert"), first(secret, "tls.key", "key")
            if cert is None or key is None or not key_pair_loads(cert, key):
                return ClientCredential(usable=False)
        ca = ca_of(push, namespace, name) if need_ca else None
        if need_ca and (ca is None or not pem_certificates_load(ca)):
            return ClientCredential(usable=False)
        crl = first(secret, "ca.crl", "crl") if need_ca else None
        return ClientCredential(usable=True, cert=cert, key=key, ca=ca, crl=crl)
    return push.memo(("destination-rule-credential", namespace, name, mutual, need_ca), read)


def _validation(tls: Obj, trusted: Obj, crl: Obj | None) -> Obj:
    validation: Obj = {"trusted_ca": trusted}
    sans = [str(s) for s in tls.get("subjectAltNames") or []]
    if sans:
        validation["match_typed_subject_alt_names"] = [
            {"san_type": kind, "matcher": {"exact": s}} for s in sans for kind in ("DNS", "URI")]
    if crl is not None:
        validation["crl"] = crl
    return validation


def transport_socket(tls: Any, http2: bool, credential: ClientCredential | None = None) -> Obj | None:
    """The cluster's `transport_socket` for a DestinationRule TLS setting, or None for plaintext;
    `credential`: what its `credentialName` holds (`client_credential`), when it names one."""
    mode = _mode(tls)
    if mode not in _ORIGINATING:
        return None
    assert isinstance(tls, dict)
    common: Obj = {"tls_params": {"tls_minimum_protocol_version": "TLSv1_2",
                                  "tls_maximum_protocol_version": "TLSv1_3"}}
    if _credential_name(tls):
        if credential is None or not credential.usable:
            common["validation_context"] = {"verify_certificate_hash": [NO_CERTIFICATE_PIN]}  # fail closed
        else:
            if credential.cert is not None and credential.key is not None:
                common["tls_certificates"] = [{"certificate_chain": _inline(credential.cert),
                                               "private_key": _inline(credential.key)}]
            if credential.ca is not None:
                common["validation_context"] = _validation(
                    tls, _inline(credential.ca), _inline(credential.crl) if credential.crl else None)
    else:
        if mode == "MUTUAL":
            if not tls.get("clientCertificate") or not tls.get("privateKey"):
                return None  # validation requires both; a stored one without them must not break the push
            common["tls_certificates"] = [{"certificate_chain": _file(tls["clientCertificate"]),
                                           "private_key": _file(tls["privateKey"])}]
        if tls.get("caCertificates") and not _skip_verify(tls):
            common["validation_context"] = _validation(tls, _file(tls["caCertificates"]),
                                                       _file(tls["caCrl"]) if tls.get("caCrl") else None)
    if http2:
        common["alpn_protocols"] = ["h2"]
    body: Obj = {"common_tls_context": common}
    if tls.get("sni"):
        body["sni"] = str(tls["sni"])
    return {"name": TLS_SOCKET, "typed_config": typed(_UPSTREAM_TLS, body)}


def upstream_http_options(tls: Any, credential: ClientCredential | None = None) -> Obj:
    """`HttpProtocolOptions.upstream_http_protocol_options` for an originating cluster without an `sni`:
    Istio's setAutoSniAndAutoSanValidation (the SAN check only where there is a root to check against)."""
    if _mode(tls) not in _ORIGINATING or not isinstance(tls, dict) or tls.get("sni"):
        return {}
    out: Obj = {"auto_sni": True}
    root = credential.ca is not None if credential is not None else bool(tls.get("caCertificates"))
    if root and not tls.get("subjectAltNames") and not _skip_verify(tls):
        out["auto_san_validation"] = True
    return out
