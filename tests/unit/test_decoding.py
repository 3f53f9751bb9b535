"""Bounded decoding (sluice.api.decoding): aliases, depth, size and non-finite numbers are refused before they
cost anything, and whatever decodes is plain JSON data."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.api.patch import PatchError, json_patch
from sluice.kube import decoding


def laughs(levels: int = 9, fanout: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fanout)}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_before_expansion() -> None:
    body = laughs()
    assert len(body) < 600
    with pytest.raises(decoding.DecodeError) as e:
        decoding.decode_yaml(body)
    assert "excessive aliasing" in e.value.message and str(decoding.MAX_ALIAS_NODES) in e.value.message


def test_small_aliases_are_independent_copies() -> None:
    doc = decoding.decode_yaml("base: &b {x: 1}\none: *b\ntwo: *b\n")
    assert doc == {"base": {"x": 1}, "one": {"x": 1}, "two": {"x": 1}}
    doc["one"]["x"] = 2
    assert doc["two"]["x"] == 1


def test_recursive_anchor_is_refused() -> None:
    with pytest.raises(decoding.DecodeError, match="anchor value contains itself"):
        decoding.decode_yaml("a: &a [*a]\n")


@pytest.mark.parametrize("body", ["- " * 150 + "1", "[" * 150 + "]" * 150, "- " * 5000 + "1",
                                  "a: &a " + "[" * 60 + "1" + "]" * 60 + "\nb: &b [[[[[*a]]]]]\nc: " + "[" * 40
                                  + "*b" + "]" * 40])
def test_deep_yaml_is_refused(body: str) -> None:
    with pytest.raises(decoding.DecodeError, match="max depth"):
        decoding.decode_yaml(body)


@pytest.mark.parametrize("depth", [101, 1000, 5000, 200_000])
def test_deep_json_is_refused_without_recursion_error(depth: int) -> None:
    with pytest.raises(decoding.DecodeError, match=f"exceeded max depth of {decoding.MAX_DEPTH}"):
        decoding.decode_json("[" * depth + "]" * depth)
    with pytest.raises(decoding.DecodeError, match="max depth"):
        decoding.decode_json('{"a":' * depth + "1" + "}" * depth)


def test_depth_at_the_limit_is_fine() -> None:
    assert decoding.decode_json("[" * decoding.MAX_DEPTH + "]" * decoding.MAX_DEPTH) is not None


@pytest.mark.parametrize(("body", "field", "shown"), [
    ('{"spec":{"v":NaN}}', "spec.v", "NaN"),
    ('{"spec":{"v":[1,Infinity]}}', "spec.v[1]", "+Inf"),
    ('{"spec":{"v":-Infinity}}', "spec.v", "-Inf"),
    ('{"spec":{"v":1e400}}', "spec.v", "+Inf"),
])
def test_non_finite_json_is_refused_with_its_path(body: str, field: str, shown: str) -> None:
    with pytest.raises(decoding.DecodeError) as e:
        decoding.decode_json(body)
    assert e.value.field == field and shown in e.value.message


@pytest.mark.parametrize("scalar", [".nan", ".NaN", ".inf", "-.inf", "+.Inf", "1.0e+400"])
def test_non_finite_yaml_is_refused(scalar: str) -> None:
    with pytest.raises(decoding.DecodeError) as e:
        decoding.decode_yaml(f"spec:\n  http:\n  - fault: {{abort: {{percentage: {{value: {scalar}}}}}}}\n")
    assert e.value.field == "spec.http[0].fault.abort.percentage.value"


def test_decoded_size_is_bounded_even_when_the_body_is_small() -> None:
    body = "s: &s " + "x" * 400_000 + "\nl: [" + ", ".join(["*s"] * 10) + "]\n"
    assert len(body) < decoding.MAX_BODY
    with pytest.raises(decoding.TooLarge, match="Request entity too large: limit is 3145728"):
        decoding.decode_yaml(body)


def test_yaml_scalars_become_json() -> None:
    doc = decoding.decode_yaml("when: 2020-01-02\n7: seven\ntrue: yes\nnull: ~\n")
    assert doc == {"when": "2020-01-02", "7": "seven", "true": True, "null": None}
    json.dumps(doc)


@pytest.mark.parametrize("body", ["a: !!binary aGk=\n", "a: !!set {x}\n", "a: !!python/object:os.system x\n",
                                  "a: [\n", "? [a]\n: b\n", "a: " + "1" * 5000 + "\n"])
def test_unusual_yaml_is_a_decode_error(body: str) -> None:
    with pytest.raises(decoding.DecodeError):
        decoding.decode_yaml(body)


def test_stream_of_documents_shares_one_limit() -> None:
    doc = "x: " + "y" * (decoding.MAX_BODY // 2) + "\n"
    assert decoding.decode_yaml_documents(doc) == [{"x": "y" * (decoding.MAX_BODY // 2)}]
    with pytest.raises(decoding.TooLarge):
        decoding.decode_yaml_documents(doc + "---\n" + doc + "---\n" + doc)


def test_json_patch_copies_cannot_double_an_object_forever() -> None:
    target = {"a": ["x" * 1000] * 100}
    ops: list[Any] = [{"op": "copy", "from": "/a", "path": "/a/-"} for _ in range(40)]
    with pytest.raises(PatchError, match="accumulated size"):
        json_patch(target, ops)
    assert json_patch(target, ops[:3])["a"][-1][0] == "x" * 1000


json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_tree = st.recursive(json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c,
                                                                                         max_size=3), max_leaves=30)


def _finite(v: Any) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, list):
        return all(_finite(x) for x in v)
    if isinstance(v, dict):
        return all(_finite(x) for x in v.values())
    return True


@settings(max_examples=300, deadline=None)
@given(json_tree)
def test_json_round_trips_or_names_the_non_finite_number(value: Any) -> None:
    text = json.dumps(value)
    if _finite(value):
        assert decoding.decode_json(text) == json.loads(text)
    else:
        with pytest.raises(decoding.DecodeError, match="unsupported value"):
            decoding.decode_json(text)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_protobuf_bodies_decode_or_fail_cleanly(tail: bytes) -> None:
    from sluice.api import protobuf

    try:
        protobuf.decode(protobuf.MAGIC + tail)
    except protobuf.ProtobufError:
        pass


def test_paths_name_map_keys_in_brackets() -> None:
    with pytest.raises(decoding.DecodeError) as e:
        decoding.decode_json('{"metadata":{"annotations":{"a.b/c":[NaN]}}}')
    assert e.value.field == "metadata.annotations[a.b/c][0]"
