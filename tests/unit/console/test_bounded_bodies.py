"""The console's config editor decodes bodies with the API server's bounded decoders: an alias bomb, deep
nesting and non-finite numbers are a 400 naming the problem, and nothing is stored."""

from __future__ import annotations

import pytest
from tests.unit.console.conftest import MakeClient

from sluice.api.registry import Registry
from sluice.resources.kinds import by_kind

NS = "bounded"
URL = f"/api/namespaces/{NS}/istio/virtualservices"


def _bomb() -> str:
    lines = ["apiVersion: networking.istio.io/v1", "kind: VirtualService", "metadata: {name: bomb}", "spec:",
             "  hosts: [reviews]", '  a0: &a0 ["lol"]']
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("body", "ctype", "expected"), [
    (_bomb(), "application/yaml", "excessive aliasing (aliases expand to more than 10000 nodes)"),
    ('{"spec":' + "[" * 3000 + "]" * 3000 + "}", "application/json", "exceeded max depth of 100"),
    ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: nan}\n"
     "spec: {hosts: [r], http: [{mirrorPercentage: {value: .nan}}]}\n", "application/yaml",
     "spec.http[0].mirrorPercentage.value: json: unsupported value: NaN"),
    ('{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"inf"},'
     '"spec":{"hosts":["r"],"http":[{"mirrorPercentage":{"value":Infinity}}]}}', "application/json",
     "spec.http[0].mirrorPercentage.value: json: unsupported value: +Inf"),
])
async def test_editor_refuses_hostile_bodies(make_client: MakeClient, registry: Registry, body: str, ctype: str,
                                             expected: str) -> None:
    registry.ensure_namespace(NS)
    c = await make_client()
    r = await c.post(URL, data=body, headers={"Content-Type": ctype})
    assert r.status == 400
    assert expected in (await r.json())["error"]
    rt = by_kind("networking.istio.io", "VirtualService")
    assert rt is not None and registry.list_objects(rt, "v1", NS)[0] == []
