"""Secret data as kube-apiserver reads and checks it: Go's base64 errors, stringData folded into data, the TLS
type's required keys, immutability."""

from __future__ import annotations

import pytest

from sluice.resources.defaults import apply_defaults
from sluice.resources.secrets import base64_error, decoded
from sluice.validation.core import validate


@pytest.mark.parametrize("value, error", [
    ("eA==", None), ("aGVsbG8=\n", None), ("", None),
    ("no!base64", "illegal base64 data at input byte 2"),
    ("abc", "illegal base64 data at input byte 0"),
    ("ab=c", "illegal base64 data at input byte 2"),
])
def test_base64_errors_read_as_go_writes_them(value: str, error: str | None) -> None:
    assert base64_error(value) == error


def test_string_data_is_folded_into_data_and_not_kept() -> None:
    secret = {"data": {"a": "eA==", "b": "eA=="}, "stringData": {"b": "plain"}}
    apply_defaults("", "Secret", secret)
    assert secret == {"data": {"a": "eA==", "b": "cGxhaW4="}, "type": "Opaque"}
    assert decoded(secret, "b") == b"plain"


def test_checks_as_kubernetes() -> None:
    tls = {"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}
    assert [str(e) for e in validate("Secret", tls, None)] == ["data[tls.key]: Required value"]
    old = {"type": "Opaque", "immutable": True, "data": {"k": "eA=="}}
    new = {"type": "kubernetes.io/tls", "immutable": True, "data": {"k": "eQ==", "tls.crt": "eA==", "tls.key": "eA=="}}
    assert [str(e) for e in validate("Secret", new, old)] == [
        'type: Invalid value: "kubernetes.io/tls": field is immutable',
        "data: Forbidden: field is immutable when `immutable` is set"]
