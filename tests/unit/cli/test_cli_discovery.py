"""Resolving what users type to resources, from discovery documents (a fake transport, no server)."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.client.discovery import Discovery
from sluice.client.errors import ApiError, ResourceTypeNotFound

DOCS: dict[str, dict[str, Any]] = {
    "/api": {"versions": ["v1"]},
    "/apis": {"groups": [
        {"name": "apps", "versions": [{"version": "v1"}], "preferredVersion": {"version": "v1"}},
        {"name": "networking.istio.io", "versions": [{"version": "v1"}, {"version": "v1beta1"}],
         "preferredVersion": {"version": "v1"}},
    ]},
    "/api/v1": {"resources": [
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "shortNames": ["po"]},
        {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod"},
        {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
         "shortNames": ["ns"]},
    ]},
    "/apis/apps/v1": {"resources": [
        {"name": "deployments", "singularName": "deployment", "namespaced": True, "kind": "Deployment",
         "shortNames": ["deploy"]},
        {"name": "deployments/scale", "singularName": "", "namespaced": True, "kind": "Scale"},
    ]},
    "/apis/networking.istio.io/v1": {"resources": [
        {"name": "virtualservices", "singularName": "virtualservice", "namespaced": True, "kind": "VirtualService",
         "shortNames": ["vs"]},
    ]},
    "/apis/networking.istio.io/v1beta1": {"resources": [
        {"name": "virtualservices", "singularName": "virtualservice", "namespaced": True, "kind": "VirtualService",
         "shortNames": ["vs"]},
    ]},
}


class FakeRest:
    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs
        self.calls: list[str] = []

    def json(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        self.calls.append(path)
        if path not in self.docs:
            raise ApiError(404, {"kind": "Status", "reason": "NotFound", "code": 404})
        return self.docs[path]


def _discovery(docs: dict[str, dict[str, Any]] = DOCS) -> Discovery:
    return Discovery(FakeRest(docs))  # type: ignore[arg-type]


@pytest.mark.parametrize("typed", ["vs", "virtualservice", "VirtualService", "virtualservices",
                                   "virtualservices.networking.istio.io", "vs.networking.istio.io",
                                   "virtualservices.networking"])
def test_virtualservice_spellings(typed: str) -> None:
    info = _discovery().resolve(typed)
    assert (info.group, info.version, info.plural) == ("networking.istio.io", "v1", "virtualservices")
    assert info.kind_qualified == "virtualservice.networking.istio.io"


def test_explicit_version() -> None:
    info = _discovery().resolve("virtualservices.v1beta1.networking.istio.io")
    assert info.version == "v1beta1"
    assert info.collection_path("x") == "/apis/networking.istio.io/v1beta1/namespaces/x/virtualservices"


def test_core_and_subresources() -> None:
    d = _discovery()
    pods = d.resolve("po")
    assert pods.subresources == frozenset({"log"}) and pods.object_path("d", "p", "log") == "/api/v1/namespaces/d/pods/p/log"
    assert d.resolve("deploy").subresources == frozenset({"scale"})
    ns = d.resolve("ns")
    assert not ns.namespaced and ns.collection_path("ignored") == "/api/v1/namespaces"
    assert ns.kind_qualified == "namespace"


def test_unknown_type() -> None:
    with pytest.raises(ResourceTypeNotFound, match='the server doesn\'t have a resource type "nosuch"'):
        _discovery().resolve("nosuch")


def test_for_kind_uses_the_manifest_version() -> None:
    d = _discovery()
    assert d.for_kind("networking.istio.io/v1beta1", "VirtualService").version == "v1beta1"
    with pytest.raises(Exception, match='no matches for kind "Gateway"'):
        d.for_kind("networking.istio.io/v1", "Gateway")


def test_falls_back_to_the_kind_table_without_discovery() -> None:
    d = _discovery({})
    info = d.resolve("dr")
    assert info.plural == "destinationrules" and info.group == "networking.istio.io"
