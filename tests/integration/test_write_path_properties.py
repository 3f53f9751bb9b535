"""Property tests: arbitrary JSON and YAML thrown at the write path never gets a 500 and never writes
anything unless the answer is a success."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Daemon
from tests.integration.test_api_semantics import VS, _http

BASE = "/apis/networking.istio.io/v1/namespaces/default/virtualservices"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)

# Objects that look like VirtualServices, with random values in random places.
vs_like = st.fixed_dictionaries({
    "apiVersion": st.sampled_from(["networking.istio.io/v1", "networking.istio.io/v1alpha3", "v1", "x"]),
    "kind": st.sampled_from(["VirtualService", "Pod", ""]),
    "metadata": st.fixed_dictionaries({"name": st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)})
    | json_values,
    "spec": st.fixed_dictionaries({}, optional={
        "hosts": st.lists(st.text(max_size=12), max_size=3) | json_values,
        "http": st.lists(st.fixed_dictionaries({}, optional={
            "route": st.lists(st.fixed_dictionaries({"destination": st.fixed_dictionaries(
                {"host": st.text(max_size=10)}, optional={"subset": st.text(max_size=5)}) | json_values},
                optional={"weight": st.integers(-5, 120) | json_values}), max_size=3),
            "timeout": st.text(max_size=6) | json_values,
            "match": json_values}), max_size=2),
    }) | json_values,
})


def _state(d: Daemon) -> list[Any]:
    code, body = _http(d, "GET", BASE)
    assert code == 200
    return sorted((i["metadata"]["name"], i["metadata"]["resourceVersion"]) for i in body["items"])


def _check(code: int, status: dict[str, Any]) -> None:
    assert code < 500, status
    if code >= 400:
        assert status.get("kind") == "Status" and status.get("message"), status


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=vs_like | json_values)
def test_create_never_500_never_partial(sluice_daemon: Daemon, body: Any) -> None:
    before = _state(sluice_daemon)
    code, status = _http(sluice_daemon, "POST", BASE, json.dumps(body).encode())
    _check(code, status)
    if code >= 400:
        assert _state(sluice_daemon) == before
    else:
        _http(sluice_daemon, "DELETE", f"{BASE}/{status['metadata']['name']}")


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(patch=json_values, ctype=st.sampled_from(["application/merge-patch+json", "application/json-patch+json",
                                                 "application/strategic-merge-patch+json", "text/plain"]))
def test_patch_never_500_never_partial(sluice_daemon: Daemon, patch: Any, ctype: str) -> None:
    code, _ = _http(sluice_daemon, "GET", f"{BASE}/target")
    if code == 404:
        assert _http(sluice_daemon, "POST", BASE, json.dumps({**VS, "metadata": {"name": "target"}}).encode())[0] == 201
    before = _state(sluice_daemon)
    code, status = _http(sluice_daemon, "PATCH", f"{BASE}/target", json.dumps(patch).encode(), ctype)
    _check(code, status)
    if code >= 400:
        assert _state(sluice_daemon) == before


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(max_size=200))
def test_arbitrary_yaml_text(sluice_daemon: Daemon, text: str) -> None:
    before = _state(sluice_daemon)
    code, status = _http(sluice_daemon, "POST", BASE, text.encode(), "application/yaml")
    _check(code, status)
    if code >= 400:
        assert _state(sluice_daemon) == before
    else:
        _http(sluice_daemon, "DELETE", f"{BASE}/{status['metadata']['name']}")


def test_story_yaml_through_yaml_content_type(sluice_daemon: Daemon) -> None:
    doc = yaml.safe_dump({**VS, "metadata": {"name": "from-yaml"}})
    code, obj = _http(sluice_daemon, "POST", BASE, doc.encode(), "application/yaml")
    assert code == 201 and obj["spec"]["http"][0]["route"][0]["weight"] == 90
