"""Kubeconfig discovery order, context resolution and `config view` redaction."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from sluice.client.errors import ClientError
from sluice.client.kubeconfig import default_path, load_kubeconfig, redact

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: sluice
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority-data: {ca}
contexts:
- name: sluice
  context: {{cluster: sluice, user: admin, namespace: tutorial}}
- name: other
  context: {{cluster: sluice, user: admin}}
current-context: sluice
users:
- name: admin
  user: {{token: secret-token}}
"""


def _write(path: Path) -> Path:
    path.write_text(KUBECONFIG.format(ca=base64.b64encode(b"PEM").decode()))
    return path


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert default_path() == [tmp_path / "home" / "kubeconfig"]
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path}/a:{tmp_path}/b")
    assert default_path() == [tmp_path / "a", tmp_path / "b"]
    assert default_path(str(tmp_path / "flag")) == [tmp_path / "flag"]


def test_rest_config_from_current_and_named_context(tmp_path: Path) -> None:
    kc = load_kubeconfig(str(_write(tmp_path / "kc")))
    rc = kc.rest_config()
    assert (rc.server, rc.namespace, rc.token, rc.ca_data) == ("https://127.0.0.1:6443", "tutorial", "secret-token",
                                                               b"PEM")
    assert kc.rest_config("other").namespace == "default"
    with pytest.raises(ClientError, match="context was not found"):
        kc.rest_config("nope")


def test_merged_files_first_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = tmp_path / "first"
    first.write_text("current-context: other\ncontexts:\n- name: other\n  context: {cluster: c2, user: u}\n"
                     "clusters:\n- name: c2\n  cluster: {server: 'https://127.0.0.2:1'}\n")
    monkeypatch.setenv("KUBECONFIG", f"{first}:{_write(tmp_path / 'second')}:{tmp_path / 'missing'}")
    kc = load_kubeconfig()
    assert kc.current_context == "other"
    assert kc.rest_config().server == "https://127.0.0.2:1"
    assert kc.rest_config("sluice").token == "secret-token"


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ClientError, match="no such file"):
        load_kubeconfig(str(tmp_path / "nope"))


def test_redact_like_kubectl(tmp_path: Path) -> None:
    doc = load_kubeconfig(str(_write(tmp_path / "kc"))).doc
    out = redact(doc)
    assert out["clusters"][0]["cluster"]["certificate-authority-data"] == "DATA+OMITTED"
    assert out["users"][0]["user"]["token"] == "REDACTED"
    assert doc["users"][0]["user"]["token"] == "secret-token"  # the input is untouched
