"""The user story's weight rule, with the exact YAML of seed/phased-rollout.md."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from tests.story import with_weights

from sluice.validation.field import ErrorType
from sluice.validation.istio import IstioOptions, validate

V3_ONLY = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v3
"""


def story(v2: int, v3: int) -> dict[str, Any]:
    doc = yaml.safe_load(with_weights(v2, v3))
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize(("v2", "v3"), [(90, 10), (80, 20), (70, 30), (0, 100), (100, 0)])
def test_weights_summing_to_100_are_accepted(v2: int, v3: int) -> None:
    result = validate("VirtualService", story(v2, v3))
    assert result.errors == []
    assert result.warnings == []


def test_80_10_is_rejected_with_the_exact_message() -> None:
    result = validate("VirtualService", story(80, 10))
    assert len(result.errors) == 1
    err = result.errors[0]
    assert err.field == "spec.http[0].route"
    assert err.type is ErrorType.INVALID
    assert err.bad_value == 90
    assert err.detail == "total destination weight 90 != 100"
    assert str(err) == "spec.http[0].route: Invalid value: 90: total destination weight 90 != 100"


def test_over_100_is_rejected_too() -> None:
    [err] = validate("VirtualService", story(90, 20)).errors
    assert str(err) == "spec.http[0].route: Invalid value: 110: total destination weight 110 != 100"


def test_single_destination_without_weight_is_accepted() -> None:
    doc = yaml.safe_load(V3_ONLY)
    assert validate("VirtualService", doc).errors == []


def test_single_destination_weight_100_is_accepted() -> None:
    doc = yaml.safe_load(V3_ONLY)
    doc["spec"]["http"][0]["route"][0]["weight"] = 100
    assert validate("VirtualService", doc).errors == []


def test_missing_weight_counts_as_zero_with_several_destinations() -> None:
    doc = story(90, 10)
    del doc["spec"]["http"][0]["route"][1]["weight"]
    [err] = validate("VirtualService", doc).errors
    assert str(err) == "spec.http[0].route: Invalid value: 90: total destination weight 90 != 100"


def test_weight_out_of_range_is_reported_per_destination() -> None:
    errors = [str(e) for e in validate("VirtualService", story(150, -50)).errors]
    assert errors == [
        "spec.http[0].route[0].weight: Invalid value: 150: percentage 150 is not in range 0..100",
        "spec.http[0].route[1].weight: Invalid value: -50: percentage -50 is not in range 0..100",
    ]


@pytest.mark.parametrize("key", ["tcp", "tls"])
def test_tcp_and_tls_routes_follow_the_same_rule(key: str) -> None:
    spec: dict[str, Any] = {"hosts": ["reviews.example.com"], key: [{
        "route": [{"destination": {"host": "a"}, "weight": 80}, {"destination": {"host": "b"}, "weight": 10}]}]}
    if key == "tls":
        spec["tls"][0]["match"] = [{"sniHosts": ["reviews.example.com"]}]
    doc = {"kind": "VirtualService", "metadata": {"name": "x"}, "spec": spec}
    errors = [str(e) for e in validate("VirtualService", doc).errors]
    assert errors == [f"spec.{key}[0].route: Invalid value: 90: total destination weight 90 != 100"]


RELATIVE = IstioOptions(relative_weights=True)


@pytest.mark.parametrize(("v2", "v3"), [(80, 10), (550, 500), (49, 50), (1, 0)])
def test_relative_mode_accepts_any_non_negative_split(v2: int, v3: int) -> None:
    assert validate("VirtualService", story(v2, v3), RELATIVE).errors == []


def test_relative_mode_rejects_negative_weight() -> None:
    errors = [str(e) for e in validate("VirtualService", story(-1, 10), RELATIVE).errors]
    assert errors == ["spec.http[0].route[0].weight: Invalid value: -1: weight -1 < 0"]


def test_relative_mode_rejects_all_zero_weights() -> None:
    errors = [str(e) for e in validate("VirtualService", story(0, 0), RELATIVE).errors]
    assert errors == ["spec.http[0].route: Invalid value: 0: total destination weight = 0"]


def test_relative_mode_single_zero_weight_is_fine() -> None:
    doc = yaml.safe_load(V3_ONLY)
    doc["spec"]["http"][0]["route"][0]["weight"] = 0
    assert validate("VirtualService", doc, RELATIVE).errors == []


def test_other_kinds_give_an_empty_result() -> None:
    result = validate("Service", {"kind": "Service", "spec": {"anything": 1}})
    assert result.ok and result.warnings == []
