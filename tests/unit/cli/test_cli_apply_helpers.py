"""Client-side apply's annotation and flag handling."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sluice.cli.apply import LAST_APPLIED, annotated, last_applied_json, validation_mode
from sluice.cli.errors import CliError


def test_last_applied_is_compact_sorted_json_with_newline_and_empty_annotations() -> None:
    obj = {"kind": "VirtualService", "apiVersion": "networking.istio.io/v1alpha3",
           "metadata": {"name": "reviews", "namespace": "default"}, "spec": {"hosts": ["reviews"], "x": None}}
    assert last_applied_json(obj) == (
        '{"apiVersion":"networking.istio.io/v1alpha3","kind":"VirtualService",'
        '"metadata":{"annotations":{},"name":"reviews","namespace":"default"},"spec":{"hosts":["reviews"]}}\n'
    )


def test_annotated_replaces_an_old_annotation_and_keeps_others() -> None:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": "x", "annotations": {LAST_APPLIED: "old", "team": "a"}}}
    out = annotated(obj)
    value = out["metadata"]["annotations"][LAST_APPLIED]
    assert json.loads(value)["metadata"]["annotations"] == {"team": "a"}
    assert out["metadata"]["annotations"]["team"] == "a"
    assert obj["metadata"]["annotations"][LAST_APPLIED] == "old"  # input untouched


@pytest.mark.parametrize(("flag", "mode"), [("true", "Strict"), ("strict", "Strict"), ("warn", "Warn"),
                                            ("false", "Ignore"), ("ignore", "Ignore")])
def test_validate_flag(flag: str, mode: str) -> None:
    assert validation_mode(flag) == mode


def test_validate_flag_rejects_junk() -> None:
    with pytest.raises(CliError):
        validation_mode("maybe")
