"""DestinationRule `trafficPolicy.tls` → an outbound cluster's upstream TLS (Istio's cluster_tls.go, the
parts we need: TLS origination from files).

- `SIMPLE`: the sidecar opens TLS to the destination: `sni` as written; `caCertificates` (a file the proxy
  reads) verifies the server, together with `subjectAltNames`; without it (or with `insecureSkipVerify`) the
  server is not verified, as Istio does without a root certificate;
- `MUTUAL`: the same plus the client's `clientCertificate` and `privateKey` (both required, as Istio requires);
- `DISABLE`, `ISTIO_MUTUAL`: plaintext (Sluice has no mesh mTLS, so Istio's auto-mTLS default is plaintext too).
When `sni` is empty, HTTP clusters take it from the request's host (`auto_sni`) and, with a root
certificate and no `subjectAltNames`, check the server's certificate for that name (`auto_san_validation`).
`credentialName` (Secrets) is not read here. Called by `clusters`.
"""

from __future__ import annotations

from typing import Any

from .protos import typed
from .spec import Obj

__all__ = ["transport_socket", "upstream_http_options", "TLS_SOCKET"]

TLS_SOCKET = "envoy.transport_sockets.tls"
_UPSTREAM_TLS = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
_ORIGINATING = ("SIMPLE", "MUTUAL")


def _mode(tls: Any) -> str:
    return str(tls.get("mode") or "") if isinstance(tls, dict) else ""


def _file(path: Any) -> Obj:
    return {"filename": str(path)}


def _skip_verify(tls: Obj) -> bool:
    value = tls.get("insecureSkipVerify")
    return bool(value.get("value") if isinstance(value, dict) else value)


def transport_socket(tls: Any, http2: bool) -> Obj | None:
    """The cluster's `transport_socket` for a DestinationRule TLS setting, or None for plaintext."""
    mode = _mode(tls)
    if mode not in _ORIGINATING:
        return None
    assert isinstance(tls, dict)
    common: Obj = {"tls_params": {"tls_minimum_protocol_version": "TLSv1_2",
                                  "tls_maximum_protocol_version": "TLSv1_3"}}
    if mode == "MUTUAL":
        if not tls.get("clientCertificate") or not tls.get("privateKey"):
            return None  # validation requires both; a stored one without them must not break the push
        common["tls_certificates"] = [{"certificate_chain": _file(tls["clientCertificate"]),
                                       "private_key": _file(tls["privateKey"])}]
    if tls.get("caCertificates") and not _skip_verify(tls):
        validation: Obj = {"trusted_ca": _file(tls["caCertificates"])}
        sans = [str(s) for s in tls.get("subjectAltNames") or []]
        if sans:
            validation["match_typed_subject_alt_names"] = [
                {"san_type": kind, "matcher": {"exact": s}} for s in sans for kind in ("DNS", "URI")]
        if tls.get("caCrl"):
            validation["crl"] = _file(tls["caCrl"])
        common["validation_context"] = validation
    if http2:
        common["alpn_protocols"] = ["h2"]
    body: Obj = {"common_tls_context": common}
    if tls.get("sni"):
        body["sni"] = str(tls["sni"])
    return {"name": TLS_SOCKET, "typed_config": typed(_UPSTREAM_TLS, body)}


def upstream_http_options(tls: Any) -> Obj:
    """`HttpProtocolOptions.upstream_http_protocol_options` for an originating cluster without an `sni`:
    Istio's setAutoSniAndAutoSanValidation (the SAN check only where there is a root to check against)."""
    if _mode(tls) not in _ORIGINATING or not isinstance(tls, dict) or tls.get("sni"):
        return {}
    out: Obj = {"auto_sni": True}
    if tls.get("caCertificates") and not tls.get("subjectAltNames") and not _skip_verify(tls):
        out["auto_san_validation"] = True
    return out
