"""Certificates and keys from Secrets, read as Istio's credential controller reads them, for the two places a
`credentialName` names one: a Gateway server's TLS termination (`gateway`) and a DestinationRule's TLS
origination (`cluster_tls`).

Keys: `tls.crt`/`tls.key`/`ca.crt`/`ca.crl` (a `kubernetes.io/tls` Secret) or `cert`/`key`/`cacert`/`crl` (a
generic one). The CA may also come from the Secret `<name>-cacert`. What is read is checked the way Envoy will
load it, so that a broken Secret cannot make Envoy reject a whole update (Istio checks them too).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from sluice.resources import secrets as secret_data

from .push_context import PushContext

__all__ = ["first", "key_pair_loads", "pem_certificates_load", "ca_of", "CA_SUFFIX"]

CA_SUFFIX = "-cacert"  # Istio's SdsCaSuffix: the Secret that may hold a credential's CA on its own


def first(secret: Mapping[str, Any] | None, *keys: str) -> bytes | None:
    """The first of `keys` the Secret has a non-empty value for, decoded."""
    if secret is None:
        return None
    for k in keys:
        value = secret_data.decoded(secret, k)
        if value:
            return value
    return None


def ca_of(push: PushContext, namespace: str, name: str) -> bytes | None:
    """A credential's CA bundle: `ca.crt`/`cacert` of the Secret `name`, else of `<name>-cacert`."""
    return (first(push.secret(namespace, name), "ca.crt", "cacert")
            or first(push.secret(namespace, name + CA_SUFFIX), "ca.crt", "cacert"))


def pem_certificates_load(pem: bytes) -> bool:
    """Whether `pem` holds at least one PEM certificate that loads."""
    from cryptography import x509

    try:
        with warnings.catch_warnings():
            # Istio's tasks sign with `-set_serial 0`, which RFC 5280 disallows and cryptography warns about;
            # Envoy (BoringSSL) loads it.
            warnings.simplefilter("ignore")
            return bool(x509.load_pem_x509_certificates(pem))
    except (ValueError, TypeError):
        return False


def key_pair_loads(cert: bytes, key: bytes, ca: bytes | None = None) -> bool:
    """Whether Envoy will load these: PEM certificates, a PEM key matching the first one, a PEM CA bundle."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if ca is not None and not pem_certificates_load(ca):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # see pem_certificates_load
            leaf = x509.load_pem_x509_certificates(cert)[0]
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm, IndexError):
        return False
    return bool(leaf.public_key().public_bytes(*spki) == private.public_key().public_bytes(*spki))
