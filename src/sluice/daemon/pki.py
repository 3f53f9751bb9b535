"""The daemon's CA, its serving certificates, and the per-pod proxy identities it issues.

- `ensure_pki`: the CA and the API server's certificate (kubectl sends its bearer token only over TLS).
  Called by `sluice.daemon.state` on first start; later starts reuse the files in `SLUICE_HOME/pki`.
- `ProxyCa`: what the xDS/ALS endpoint and the kubelet share. The kubelet asks it for a client certificate
  for each sidecar or gateway it starts (`issue`), written 0600 into the pod's state directory; the xDS
  server serves with `xds_server_credentials` (its own certificate, client certificates required) and reads
  who is calling with `identity_from_pem`. Istio's istiod likewise requires the pod's identity before it
  answers xDS; here the daemon is its own CA, so the certificate itself names the pod.
(What a proxy certificate names: `sluice.xds.identity`.)
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sluice.runtime.proxy import IssuedCredential
from sluice.xds.identity import PROXY_TYPES, XDS_SERVER_NAME, ProxyIdentity

__all__ = ["Pki", "ensure_pki", "ProxyCa", "IssuedCredential"]

# No rotation yet: a proxy certificate lives as long as a pod plausibly does (a restart issues a new one).
_PROXY_CERT_DAYS = 365


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _key_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ensure_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    pki = Pki(directory / "ca.crt", directory / "server.crt", directory / "server.key")
    if pki.ca_cert.exists() and pki.server_cert.exists() and pki.server_key.exists():
        return pki
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sluice-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
                                       x509.DNSName("kubernetes.default.svc")])
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sluice-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(san, critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write(directory / "ca.key", _key_bytes(ca_key), 0o600)
    _write(pki.server_key, _key_bytes(key), 0o600)
    _write(pki.server_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(pki.ca_cert, ca.public_bytes(serialization.Encoding.PEM), 0o644)
    return pki


class ProxyCa:
    """Issues proxy client certificates and the xDS server's certificate from the daemon's CA.

    Thread-safe (the kubelet prepares containers in worker threads)."""

    def __init__(self, directory: Path) -> None:
        pki = ensure_pki(directory)
        self.ca_file = pki.ca_cert
        self._ca_pem = pki.ca_cert.read_bytes()
        self._ca = x509.load_pem_x509_certificate(self._ca_pem)
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{directory / 'ca.key'}: not an EC key")
        self._ca_key = key
        self._lock = threading.Lock()
        self.server_cert_file, self.server_key_file = directory / "xds.crt", directory / "xds.key"
        if not (self.server_cert_file.exists() and self.server_key_file.exists()):
            cert, key_pem = self._sign(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sluice-xds")]),
                                       [x509.DNSName(XDS_SERVER_NAME)], ExtendedKeyUsageOID.SERVER_AUTH, 3650)
            _write(self.server_key_file, key_pem, 0o600)
            _write(self.server_cert_file, cert, 0o644)

    def _sign(self, subject: x509.Name, names: list[x509.GeneralName], usage: x509.ObjectIdentifier,
              days: int) -> tuple[bytes, bytes]:
        now = datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(self._ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.SubjectAlternativeName(names), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        with self._lock:
            cert = builder.sign(self._ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _key_bytes(key)

    def issue(self, identity: ProxyIdentity, directory: Path) -> IssuedCredential:
        """A client certificate for `identity`, written into `directory` (the pod's state directory):
        `proxy.crt` (certificate), `proxy.key` (0600) and `ca.crt` (to verify the xDS server)."""
        if identity.kind not in PROXY_TYPES:
            raise ValueError(f"unknown proxy type {identity.kind!r}")
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sluice-proxies"),
                             x509.NameAttribute(NameOID.COMMON_NAME, identity.kind)])
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.spiffe),
                                         x509.UniformResourceIdentifier(identity.pod_uri),
                                         x509.IPAddress(ipaddress.ip_address(identity.ip))]
        cert, key = self._sign(subject, names, ExtendedKeyUsageOID.CLIENT_AUTH, _PROXY_CERT_DAYS)
        directory.mkdir(parents=True, exist_ok=True)
        out = IssuedCredential(directory / "proxy.crt", directory / "proxy.key", directory / "ca.crt")
        _write(out.key_file, key, 0o600)
        _write(out.cert_file, cert, 0o600)
        _write(out.ca_file, self._ca_pem, 0o600)
        return out

    def server_credentials(self) -> tuple[bytes, bytes, bytes]:
        """(CA PEM, server certificate PEM, server key PEM) for a TLS server that requires client certificates."""
        return self._ca_pem, self.server_cert_file.read_bytes(), self.server_key_file.read_bytes()
