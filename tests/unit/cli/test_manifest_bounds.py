"""`sluice apply -f` reads manifests with the API server's bounded decoders, refusing what kubectl refuses
client-side (an alias bomb, a recursive anchor, NaN) instead of hanging or printing a traceback."""

from __future__ import annotations

import pytest

from sluice.cli.errors import CliError
from sluice.cli.manifests import parse_documents


def _bomb() -> str:
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: b}", "data:", '  a0: &a0 ["lol"]']
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("text", "expected"), [
    (_bomb(), "error converting YAML to JSON: yaml: document contains excessive aliasing"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: &a {k: *a}\n", "anchor value contains itself"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {k: .nan}\n", "data.k: json: unsupported value: NaN"),
    ('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": Infinity}}',
     "data.k: json: unsupported value: +Inf"),
    ("a: " + "[" * 500 + "]" * 500 + "\n", "exceeded max depth of 100"),
])
def test_hostile_manifests_are_refused(text: str, expected: str) -> None:
    with pytest.raises(CliError) as e:
        parse_documents(text, "f.yaml")
    assert expected in str(e.value) and str(e.value).startswith("error parsing f.yaml: ")


def test_documents_keep_their_lines_across_empty_ones() -> None:
    text = "---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\n" \
           "metadata: {name: b}\nbase: &x 1\ncopy: *x\n"
    docs = parse_documents(text, "f.yaml")
    assert [(m.obj["metadata"]["name"], m.line) for m in docs] == [("a", 3), ("b", 7)]
    assert docs[1].obj["copy"] == 1
