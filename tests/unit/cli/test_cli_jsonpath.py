"""The JSONPath subset `-o jsonpath=` supports, checked against what kubectl prints."""

from __future__ import annotations

import pytest

from sluice.cli.jsonpath import JSONPathError, render

LIST = {
    "kind": "List",
    "items": [
        {"metadata": {"name": "reviews", "annotations": {"kubectl.kubernetes.io/last": "x"}},
         "spec": {"http": [{"route": [{"weight": 90}, {"weight": 10}]}]},
         "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Other", "status": "False"}]}},
        {"metadata": {"name": "ratings"}, "spec": {}},
    ],
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{.items[0].metadata.name}", "reviews"),
        (".items[0].metadata.name", "reviews"),
        ("{.items[*].metadata.name}", "reviews ratings"),
        ("{range .items[*]}{.metadata.name}{\"\\n\"}{end}", "reviews\nratings\n"),
        ("{range .items[*]}[{.metadata.name}]{end}", "[reviews][ratings]"),
        ("{.items[0].spec.http[0].route[*].weight}", "90 10"),
        ("{.items[-1].metadata.name}", "ratings"),
        ("{.items[0:1].metadata.name}", "reviews"),
        ("{.items[0].metadata.annotations.kubectl\\.kubernetes\\.io/last}", "x"),
        ("{.items[0].metadata.annotations['kubectl.kubernetes.io/last']}", "x"),
        ("{.items[0].status.conditions[?(@.type==\"Ready\")].status}", "True"),
        ("{.items[*].spec.missing}", ""),
        ("{..name}", "reviews ratings"),
        ("name={.items[1].metadata}", 'name={"name":"ratings"}'),
        ("{.kind}{'\\t'}{.items[1].metadata.name}", "List\tratings"),
    ],
)
def test_templates(template: str, expected: str) -> None:
    assert render(template, LIST) == expected


def test_unclosed_action_is_an_error() -> None:
    with pytest.raises(JSONPathError):
        render("{.items", LIST)


def test_end_without_range_is_an_error() -> None:
    with pytest.raises(JSONPathError):
        render("{end}", LIST)


def test_index_out_of_range_is_an_error() -> None:
    with pytest.raises(JSONPathError):
        render("{.items[5]}", LIST)
