"""kubectl's table layout, cell formatting and YAML/JSON output."""

from __future__ import annotations

from typing import Any

from sluice.cli import printing
from sluice.client.discovery import ResourceInfo

VS_TABLE: dict[str, Any] = {
    "kind": "Table",
    "apiVersion": "meta.k8s.io/v1",
    "columnDefinitions": [
        {"name": "Name", "type": "string", "format": "name", "priority": 0},
        {"name": "Gateways", "type": "string", "format": "", "priority": 0},
        {"name": "Hosts", "type": "string", "format": "", "priority": 0},
        {"name": "Extra", "type": "string", "format": "", "priority": 1},
        {"name": "Age", "type": "string", "format": "", "priority": 0},
    ],
    "rows": [
        {"cells": ["reviews", None, '["reviews"]', "x", "5s"],
         "object": {"metadata": {"name": "reviews", "namespace": "tutorial", "labels": {"b": "2", "a": "1"}}}},
        {"cells": ["ratings-long-name", '["mesh"]', '["ratings"]', "y", "10m"],
         "object": {"metadata": {"name": "ratings-long-name", "namespace": "default"}}},
    ],
}


def test_layout_pads_columns_by_three_and_leaves_the_last_unpadded() -> None:
    assert printing.layout([["NAME", "AGE"], ["a", "1s"]]) == ["NAME   AGE", "a      1s"]


def test_layout_minimum_width_is_six() -> None:
    assert printing.layout([["IP", "X"], ["a", "b"]]) == ["IP    X", "a     b"]


def test_table_headers_are_upper_case_and_wide_columns_hidden() -> None:
    headers, rows = printing.table_headers_and_rows(VS_TABLE)
    assert headers == ["NAME", "GATEWAYS", "HOSTS", "AGE"]
    assert rows[0] == ["reviews", "", '["reviews"]', "5s"]
    assert printing.layout([headers, *rows]) == [
        "NAME                GATEWAYS   HOSTS         AGE",
        'reviews                        ["reviews"]   5s',
        'ratings-long-name   ["mesh"]   ["ratings"]   10m',
    ]


def test_wide_namespace_labels_and_kind_prefix() -> None:
    headers, rows = printing.table_headers_and_rows(VS_TABLE, wide=True, namespace_column=True, show_labels=True,
                                                    kind_prefix="virtualservice.networking.istio.io")
    assert headers == ["NAMESPACE", "NAME", "GATEWAYS", "HOSTS", "EXTRA", "AGE", "LABELS"]
    assert rows[0] == ["tutorial", "virtualservice.networking.istio.io/reviews", "", '["reviews"]', "x", "5s",
                       "a=1,b=2"]
    assert rows[1][-1] == "<none>"


def test_raw_json_cells_print_like_go() -> None:
    assert printing.cell_text(["ratings", "details"]) == "[ratings details]"
    assert printing.cell_text(True) == "true"
    assert printing.cell_text(3.0) == "3"
    assert printing.cell_text(None) == ""


def test_table_writer_remembers_widths_for_watch_rows() -> None:
    w = printing.TableWriter()
    assert w.lines([["NAME", "AGE"], ["reviews", "1s"]]) == ["NAME      AGE", "reviews   1s"]
    assert w.lines([["a", "2s"]]) == ["a         2s"]


def test_yaml_like_kubectl() -> None:
    obj = {"metadata": {"resourceVersion": "6", "name": "x", "annotations": {"k": "{}\n"}}, "spec": {"hosts": ["a"]},
           "apiVersion": "v1"}
    assert printing.dump_yaml(obj) == (
        "apiVersion: v1\n"
        "metadata:\n"
        "  annotations:\n"
        "    k: |\n"
        "      {}\n"
        "  name: x\n"
        '  resourceVersion: "6"\n'
        "spec:\n"
        "  hosts:\n"
        "  - a\n"
    )


def test_json_is_sorted_with_four_spaces() -> None:
    assert printing.dump_json({"b": 1, "a": {"c": 2}}) == '{\n    "a": {\n        "c": 2\n    },\n    "b": 1\n}'


def test_fallback_table_has_name_and_age() -> None:
    t = printing.fallback_table([{"metadata": {"name": "x", "creationTimestamp": "2000-01-01T00:00:00Z"}}])
    headers, rows = printing.table_headers_and_rows(t)
    assert headers == ["NAME", "AGE"]
    assert rows[0][0] == "x" and rows[0][1].endswith("y")


def test_human_duration_fallback_rules() -> None:
    f = printing._human_duration_fallback
    assert [f(5), f(119), f(125), f(600), f(3 * 3600 + 60), f(9 * 3600), f(50 * 3600), f(9 * 86400)] == [
        "5s", "119s", "2m5s", "10m", "3h1m", "9h", "2d2h", "9d"]


def test_with_type_fills_kind_and_api_version() -> None:
    info = ResourceInfo("apps", "v1", "deployments", "deployment", "Deployment", True)
    assert printing.with_type({"metadata": {}}, info)["apiVersion"] == "apps/v1"
    assert printing.as_list([])["kind"] == "List"
