"""Reading manifests: multi-document YAML, JSON, List kinds, directories, stdin and bad input."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sluice.cli.errors import CliError
from sluice.cli.manifests import parse_documents, read_sources

STORY = """\
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
    - reviews
---
# a comment-only document is skipped
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: a}
- apiVersion: v1
  kind: Namespace
  metadata: {name: b}
"""


def test_multi_document_yaml_with_lists_flattened() -> None:
    docs = parse_documents(STORY, "f.yaml")
    assert [d.obj["metadata"]["name"] for d in docs] == ["reviews", "a", "b"]
    assert docs[0].line == 1 and docs[0].source == "f.yaml"


def test_json_document() -> None:
    docs = parse_documents('{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}', "x.json")
    assert docs[0].obj["kind"] == "Namespace"


def test_missing_kind_is_reported_like_kubectl() -> None:
    with pytest.raises(CliError, match=r'error validating "f.yaml": error validating data: \[kind not set\]'):
        parse_documents("apiVersion: v1\nmetadata: {name: x}\n", "f.yaml")


def test_yaml_syntax_error_names_the_line() -> None:
    with pytest.raises(CliError, match="line 2"):
        parse_documents("a: b\n  c: : d\n", "f.yaml")


def test_scalar_document_is_rejected() -> None:
    with pytest.raises(CliError):
        parse_documents("just text\n", "f.yaml")


def test_directory_in_lexical_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n")
    (tmp_path / "a.json").write_text('{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}')
    (tmp_path / "notes.txt").write_text("ignored")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "c.yml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: c}\n")
    assert [m.obj["metadata"]["name"] for m in read_sources([str(tmp_path)])] == ["a", "b"]
    assert [m.obj["metadata"]["name"] for m in read_sources([str(tmp_path)], recursive=True)] == ["a", "b", "c"]


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(STORY))
    assert [m.source for m in read_sources(["-"])] == ["STDIN"] * 3


def test_missing_file() -> None:
    with pytest.raises(CliError, match='the path "/nonexistent.yaml" does not exist'):
        read_sources(["/nonexistent.yaml"])
