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


# --- hostile shapes: nesting depth, YAML aliases, non-finite numbers (issue 9) -----------------------------
def _nest(value: Any, depth: int) -> Any:
    for i in range(depth):
        value = [value] if i % 2 else {"n": value}
    return value


hostile_json = st.tuples(
    st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats() | st.text(max_size=8),
                 lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                 max_leaves=15),
    st.integers(0, 300))


def _depth(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    return 1


def _non_finite(v: Any) -> bool:
    if isinstance(v, float):
        return v != v or v in (float("inf"), float("-inf"))
    if isinstance(v, dict):
        return any(_non_finite(x) for x in v.values())
    if isinstance(v, list):
        return any(_non_finite(x) for x in v)
    return False


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(junk=hostile_json, where=st.sampled_from(["spec", "metadata", "top"]))
def test_json_depth_and_non_finite_numbers_are_refused(sluice_daemon: Daemon, junk: tuple[Any, int],
                                                       where: str) -> None:
    value = _nest(*junk)
    body: dict[str, Any] = {**VS, "metadata": {"name": "hostile"}, "spec": dict(VS["spec"])}
    if where == "spec":
        body["spec"]["http"] = [{"route": [{"destination": {"host": "reviews"}, "weight": 100}],
                                 "mirrorPercentage": {"value": value}}]
    elif where == "metadata":
        body["metadata"]["annotations"] = {"x": value}
    else:
        body["x"] = value
    before = _state(sluice_daemon)
    code, status = _http(sluice_daemon, "POST", f"{BASE}?fieldValidation=Ignore", json.dumps(body).encode())
    _check(code, status)
    if _non_finite(value) or _depth(body) > 100:
        assert code == 400, status
        assert "unsupported value" in status["message"] or "max depth" in status["message"], status
    if code >= 400:
        assert _state(sluice_daemon) == before
    else:
        _http(sluice_daemon, "DELETE", f"{BASE}/hostile")


yaml_scalars = st.sampled_from(["1", "x", ".nan", ".inf", "-.Inf", "1.0e+999", "null", "true", "2020-01-01",
                                "'s'"])


@st.composite
def aliased_yaml(draw: st.DrawFn) -> tuple[str, int, bool, int]:
    """A VirtualService whose spec carries a chain of anchors, each level aliasing the previous one `fanout`
    times, wrapped `depth` deep; returns the text, the nodes the aliases expand to, whether a non-finite
    scalar is in it, and its depth."""
    levels, fanout = draw(st.integers(1, 8)), draw(st.integers(1, 12))
    scalar = draw(yaml_scalars)
    depth = draw(st.integers(0, 150))
    lines = [f"  a0: &a0 [{scalar}]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fanout)}]" for i in range(1, levels)]
    lines.append("  deep: " + "[" * depth + "*a0" + "]" * depth)
    text = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: aliased}\nspec:\n"
            "  hosts: [reviews]\n" + "\n".join(lines) + "\n")
    per_level = [2]  # a0 is a sequence holding one scalar
    for _ in range(1, levels):
        per_level.append(1 + fanout * per_level[-1])
    expanded = sum(per_level) + depth + per_level[0]
    distinct = 2 + (levels - 1) + depth
    non_finite = scalar in (".nan", ".inf", "-.Inf", "1.0e+999")
    return text, expanded - distinct, non_finite, depth + 4


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=aliased_yaml())
def test_yaml_aliases_depth_and_non_finite_are_bounded(sluice_daemon: Daemon, doc: tuple[str, int, bool, int]) -> None:
    text, alias_nodes, non_finite, depth = doc
    before = _state(sluice_daemon)
    code, status = _http(sluice_daemon, "POST", f"{BASE}?fieldValidation=Ignore", text.encode(), "application/yaml")
    _check(code, status)
    # whichever limit the walk meets first names itself
    broken = [why for why, hit in (("max depth", depth > 100), ("excessive aliasing", alias_nodes > 10_000),
                                   ("unsupported value", non_finite)) if hit]
    if broken:
        assert code == 400 and any(why in status["message"] for why in broken), status
    if code >= 400:
        assert _state(sluice_daemon) == before
    else:
        _http(sluice_daemon, "DELETE", f"{BASE}/aliased")
