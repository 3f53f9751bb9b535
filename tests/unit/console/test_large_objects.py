"""Large objects in the console: decoded, admitted, validated and dumped in the console's worker process (real
worker processes, no daemon), answering exactly what the event loop answers for small ones.

The expected answers are computed here with the same pure functions the loop uses (`configs.validations`,
`config_item`, PyYAML's `safe_dump` as the console called it) over what the registry stores.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.console.conftest import MakeClient
from tests.unit.console.fixtures import NS
from tests.unit.console.mesh import Client

from sluice.api.registry import Registry
from sluice.console.api import WORKERS_KEY
from sluice.console.bodies import ON_LOOP_SIZE
from sluice.console.configs import ANALYZE_KINDS, EMPTY_VALIDATION, config_item, key_of, validations
from sluice.resources.kinds import by_kind

VS = by_kind("networking.istio.io", "VirtualService")
URL = f"/api/namespaces/{NS}/istio/virtualservices"
YAML = {"Content-Type": "application/yaml"}
JSON = {"Content-Type": "application/json"}


# Strings PyYAML quotes, escapes or folds (libyaml's dumper would fold some of them elsewhere).
TRICKY = {"unicode": "é ünï 日本語 😀", "escapes": "tab\there \x85 \u2028 bell\x07 " + "long words " * 20,
          "looks-like": "yes", "number": "012", "multi": "line 1\nline 2\n", "quotes": "'single' \"double\"",
          "spaces": "  padded  ", "empty": "", "colon": "a: b # c"}


def big_vs(name: str = "big", routes: int = 500, prefix: str = "/p") -> dict[str, Any]:
    """A VirtualService for `reviews` of `routes` HTTP routes (about 300 bytes each); one route names a subset
    no DestinationRule defines, so the analyzers have something to say."""
    http = [{"name": f"r{i}", "match": [{"uri": {"prefix": f"{prefix}/{i}"}, "headers": {"end-user": {"exact": f"u{i}"}}}],
             "route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 80},
                       {"destination": {"host": "reviews", "subset": "v2" if i else "v9"}, "weight": 20}],
             "timeout": "3s", "retries": {"attempts": 2, "perTryTimeout": "1s"}} for i in range(routes)]
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": NS, "labels": {"size": "big"}, "annotations": TRICKY},
            "spec": {"hosts": ["reviews"], "http": http}}


def status_now(reg: Registry, ns: str | None) -> tuple[list[dict[str, Any]], dict[Any, dict[str, Any]]]:
    """The Istio config objects and their validation as the loop computes them from what is stored."""
    everything: list[dict[str, Any]] = []
    for group, kind in ANALYZE_KINDS:
        rt = by_kind(group, kind)
        assert rt is not None
        everything.extend(reg.list_objects(rt, rt.preferred_version, None)[0])
    return validations(everything, ns)


def expected_detail(reg: Registry, name: str) -> dict[str, Any]:
    assert VS is not None
    obj = reg.get(VS, "v1", NS, name)
    _, validation = status_now(reg, NS)
    return {**config_item(obj, validation.get(("VirtualService", NS, name), EMPTY_VALIDATION)), "object": obj,
            "yaml": yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)}  # the editor's text before


async def _answer(r: Any) -> Any:
    return json.loads(await r.text())  # key order kept: the YAML's order is checked against it


async def test_a_large_virtual_service_is_created_read_and_replaced_in_the_worker(
        make_client: MakeClient, registry: Registry) -> None:
    c: Client = await make_client()
    body = yaml.safe_dump(big_vs(), sort_keys=False)
    assert len(body) > ON_LOOP_SIZE
    r = await c.post(URL, data=body, headers=YAML)
    assert r.status == 201, await r.text()
    created = await _answer(r)
    assert c.server.app[WORKERS_KEY].pids(), "no worker process did the work"
    assert created == {**expected_detail(registry, "big"), "warnings": []}
    # stored in the object's own key order (as a small write is), which is the order the editor shows
    assert created["yaml"].startswith("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n"
                                      "  name: big\n")
    checks = created["validation"]["checks"]
    assert any("v9" in ch["message"] for ch in checks), checks

    r = await c.get(f"{URL}/big")
    assert r.status == 200
    assert await _answer(r) == expected_detail(registry, "big")

    changed = copy.deepcopy(created["object"])
    changed["spec"]["http"][1]["match"][0]["uri"]["prefix"] = "/changed"
    r = await c.put(f"{URL}/big", data=json.dumps(changed), headers=JSON)
    assert r.status == 200, await r.text()
    replaced = await _answer(r)
    assert replaced == {**expected_detail(registry, "big"), "warnings": []}
    assert replaced["object"]["metadata"]["generation"] == 2
    assert "prefix: /changed\n" in replaced["yaml"]

    # the same again: nothing changes (the resourceVersion stays), answered as a small replace would be
    r = await c.put(f"{URL}/big", data=yaml.safe_dump(replaced["object"], sort_keys=False), headers=YAML)
    assert r.status == 200, await r.text()
    assert (await _answer(r))["object"] == replaced["object"]

    # a stale resourceVersion is kube-apiserver's Conflict, nothing stored
    r = await c.put(f"{URL}/big", data=json.dumps(created["object"]), headers=JSON)
    assert r.status == 409
    err = await r.json()
    assert err["reason"] == "Conflict" and err["code"] == 409
    assert "the object has been modified" in err["error"]
    assert (await _answer(await c.get(f"{URL}/big")))["object"] == replaced["object"]

    # the lists and the overview count it as the loop does
    found, validation = status_now(registry, NS)
    rows = sorted((config_item(o, validation[key_of(o)]) for o in found),
                  key=lambda i: (str(i["namespace"]), str(i["kind"]), str(i["name"])))
    r = await c.get(f"/api/namespaces/{NS}/istio")
    assert r.status == 200 and (await r.json())["items"] == rows
    r = await c.get("/api/istio/config?kinds=virtualservices")
    assert (await r.json())["items"] == [row for row in rows if row["kind"] == "VirtualService"]
    r = await c.get("/api/namespaces")
    overview = {n["name"]: n for n in (await r.json())["namespaces"]}
    errors = sum(1 for v in validation.values() if not v["valid"])
    assert overview[NS]["istioConfig"]["objects"] == len(validation)
    assert overview[NS]["istioConfig"]["errors"] == errors >= 1

    # the app's shutdown stops its workers
    pids = c.server.app[WORKERS_KEY].pids()
    await c.close()
    assert pids and not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _pad(body: str, ctype: str) -> str:
    """The same body, made larger than the loop's limit with trailing blanks (a YAML comment after a mapping)."""
    pad = ON_LOOP_SIZE + 1024
    return body + "#" + "x" * pad + "\n" if body.endswith("\n") and ctype != "application/json" else body + " " * pad


def _bomb() -> str:
    lines = ["apiVersion: networking.istio.io/v1", "kind: VirtualService", "metadata: {name: bomb}", "spec:",
             "  hosts: [reviews]", '  a0: &a0 ["lol"]']
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("body", "ctype"), [
    ("", "application/yaml"),
    ("a: [", "application/yaml"),
    ("- 1\n", "application/yaml"),
    ("a: 1\n---\nb: 2\n", "application/yaml"),
    (_bomb(), "application/yaml"),
    ('{"spec":' + "[" * 3000 + "]" * 3000 + "}", "application/json"),
    ('{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"inf"},'
     '"spec":{"hosts":["r"],"http":[{"mirrorPercentage":{"value":Infinity}}]}}', "application/json"),
    ('{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"w"},'
     '"spec":{"hosts":["reviews"],"http":[{"route":[{"destination":{"host":"reviews"},"weight":30},'
     '{"destination":{"host":"reviews"},"weight":30}]}]}}', "application/json"),
    ('{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"reviews"},'
     '"spec":{"hosts":["reviews"]}}', "application/json"),
])
async def test_a_large_bad_body_gets_the_small_ones_answer(make_client: MakeClient, registry: Registry, body: str,
                                                           ctype: str) -> None:
    assert VS is not None
    c: Client = await make_client()
    before = registry.list_objects(VS, "v1", NS)[0]
    small = await c.post(URL, data=body, headers={"Content-Type": ctype})
    large = await c.post(URL, data=_pad(body, ctype), headers={"Content-Type": ctype})
    assert small.status >= 400 and large.status == small.status
    assert await large.json() == await small.json()
    assert c.server.app[WORKERS_KEY].pids(), "no worker process did the work"
    assert registry.list_objects(VS, "v1", NS)[0] == before


async def test_a_large_body_to_the_wizard_and_the_rollout_buttons(make_client: MakeClient) -> None:
    """Their bodies are read through the worker too, with the same answers."""
    c: Client = await make_client()
    for url in (f"/api/namespaces/{NS}/services/reviews/traffic-shifting",
                f"/api/namespaces/{NS}/rollouts/missing/promote"):
        for body in ('{"weights": "no"}', "[1]"):
            small = await c.post(url, data=body, headers=JSON)
            large = await c.post(url, data=_pad(body, "application/json"), headers=JSON)
            assert small.status >= 400 and large.status == small.status, (url, body)
            assert await large.json() == await small.json()
