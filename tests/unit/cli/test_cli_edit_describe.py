"""Pure helpers of `edit` and `describe`."""

from __future__ import annotations

import pytest

from sluice.cli.describe import describe_object
from sluice.cli.edit import HEADER, editor_command, error_header, strip_comments
from sluice.client.discovery import ResourceInfo

VS = ResourceInfo("networking.istio.io", "v1", "virtualservices", "virtualservice", "VirtualService", True)


def test_editor_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBE_EDITOR", raising=False)
    monkeypatch.delenv("EDITOR", raising=False)
    assert editor_command() == "vi"
    monkeypatch.setenv("EDITOR", "nano")
    assert editor_command() == "nano"
    monkeypatch.setenv("KUBE_EDITOR", "sed -i s/a/b/")
    assert editor_command() == "sed -i s/a/b/"


def test_header_and_error_comments_like_kubectl() -> None:
    assert HEADER.startswith("# Please edit the object below. Lines beginning with a '#' will be ignored,\n")
    assert error_header(VS, "reviews", ["spec.http[0].route: Invalid value: 90: x"]) == (
        '# virtualservices.networking.istio.io "reviews" was not valid:\n'
        "# * spec.http[0].route: Invalid value: 90: x\n"
        "#\n"
    )
    assert strip_comments(HEADER + "a: 1\n# c\nb: 2\n") == "a: 1\nb: 2\n"


def test_describe_virtualservice() -> None:
    obj = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
           "metadata": {"name": "reviews", "namespace": "tutorial", "labels": {"app": "reviews", "v": "1"},
                        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
           "spec": {"hosts": ["reviews"], "http": [{"route": [
               {"destination": {"host": "reviews", "subset": "v2"}, "weight": 90},
               {"destination": {"host": "reviews", "subset": "v3"}, "weight": 10}]}]}}
    text = describe_object(obj, VS, [])
    lines = text.splitlines()
    assert lines[0] == "Name:         reviews"
    assert "Labels:       app=reviews" in lines
    assert "              v=1" in lines
    assert "Annotations:  <none>" in lines  # last-applied is hidden like kubectl
    assert "    Destination:  reviews subset v2 weight 90" in lines
    assert lines[-1].split() == ["Events:", "<none>"]


def test_describe_generic_kind_shows_nested_fields() -> None:
    cm = ResourceInfo("", "v1", "configmaps", "configmap", "ConfigMap", True)
    text = describe_object({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"},
                            "data": {"k": "v"}}, cm, None)
    assert "Data:\n  K:  v\n" in text
    assert "Events" not in text
