"""Secrets through the real kubectl: `create secret tls|generic` as Istio's Secure Gateways task runs them, the
printed columns, Kubernetes' own checks (base64, the TLS type's keys, immutability), `stringData`."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Kubectl


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The task's openssl commands: a root CA, and a server certificate it signs."""
    d = tmp_path_factory.mktemp("certs")
    for cmd in (
        "openssl req -x509 -sha256 -nodes -days 365 -newkey rsa:2048 -subj '/O=example Inc./CN=example.com' "
        "-keyout example.com.key -out example.com.crt",
        "openssl req -out httpbin.example.com.csr -newkey rsa:2048 -nodes -keyout httpbin.example.com.key "
        "-subj \"/CN=httpbin.example.com/O=httpbin organization\"",
        "openssl x509 -req -sha256 -days 365 -CA example.com.crt -CAkey example.com.key -set_serial 0 "
        "-in httpbin.example.com.csr -out httpbin.example.com.crt",
    ):
        subprocess.run(cmd, shell=True, cwd=d, check=True, capture_output=True)
    return d


def test_create_secret_tls_and_generic(kubectl: Kubectl, certs: Path) -> None:
    ns = f"secrets-{kubectl.version.replace('.', '')}"
    kubectl("create", "namespace", ns, check=True)
    cp = kubectl("create", "-n", ns, "secret", "tls", "httpbin-credential", f"--key={certs}/httpbin.example.com.key",
                 f"--cert={certs}/httpbin.example.com.crt", check=True)
    assert cp.stdout.strip() == "secret/httpbin-credential created"
    cp = kubectl("create", "-n", ns, "secret", "generic", "mtls-credential",
                 f"--from-file=tls.key={certs}/httpbin.example.com.key",
                 f"--from-file=tls.crt={certs}/httpbin.example.com.crt", f"--from-file=ca.crt={certs}/example.com.crt",
                 check=True)
    assert cp.stdout.strip() == "secret/mtls-credential created"

    lines = kubectl("get", "-n", ns, "secret", check=True).stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    rows = {line.split()[0]: line.split()[1:3] for line in lines[1:]}
    assert rows == {"httpbin-credential": ["kubernetes.io/tls", "2"], "mtls-credential": ["Opaque", "3"]}

    obj = json.loads(kubectl("get", "-n", ns, "secret", "mtls-credential", "-o", "json", check=True).stdout)
    assert base64.b64decode(obj["data"]["ca.crt"]) == (certs / "example.com.crt").read_bytes()
    assert obj["type"] == "Opaque"

    described = kubectl("describe", "-n", ns, "secret", "mtls-credential", check=True).stdout
    assert "Type:  Opaque" in described and "ca.crt:" in described and " bytes" in described
    assert "BEGIN" not in described  # describe shows sizes, never values

    cp = kubectl("delete", "-n", ns, "secret", "httpbin-credential", check=True)
    assert cp.stdout.startswith('secret "httpbin-credential" deleted')


def test_secret_checks_as_kubernetes(kubectl: Kubectl) -> None:
    ns = f"secret-checks-{kubectl.version.replace('.', '')}"
    kubectl("create", "namespace", ns, check=True)

    def apply(doc: dict[str, object]) -> subprocess.CompletedProcess[str]:
        return kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Secret", **doc}))

    cp = apply({"metadata": {"name": "bad"}, "data": {"k": "no!base64"}})
    assert cp.returncode != 0 and "illegal base64 data at input byte 2" in cp.stderr, cp.stderr
    cp = apply({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}})
    assert cp.returncode != 0 and "data[tls.key]: Required value" in cp.stderr, cp.stderr
    cp = apply({"metadata": {"name": "keys"}, "data": {"a b": "eA=="}})
    assert cp.returncode != 0 and "a valid config key must consist of alphanumeric characters" in cp.stderr

    cp = apply({"metadata": {"name": "plain"}, "stringData": {"password": "s3cret"}, "immutable": True})
    assert cp.returncode == 0, cp.stderr
    obj = json.loads(kubectl("get", "-n", ns, "secret", "plain", "-o", "json", check=True).stdout)
    assert obj["data"] == {"password": base64.b64encode(b"s3cret").decode()} and "stringData" not in obj
    cp = apply({"metadata": {"name": "plain"}, "stringData": {"password": "other"}, "immutable": True})
    assert cp.returncode != 0 and "field is immutable when `immutable` is set" in cp.stderr, cp.stderr
