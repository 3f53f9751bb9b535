"""NaN and ±Inf are refused with an Istio-like field message wherever a validator reads a number (the decoders
refuse them first; these rules keep any other path from storing one)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from sluice.resources.schema import schema_for
from sluice.validation.istio import validate
from sluice.validation.structural import check

NAN, INF = math.nan, math.inf
R = [{"destination": {"host": "ratings"}}]


def vs(rule: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "ratings", "namespace": "default"},
            "spec": {"hosts": ["ratings"], "http": [{"route": R, **rule}]}}


def dr(lb: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "ratings", "namespace": "default"},
            "spec": {"host": "ratings", "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN", **lb}}}}


@pytest.mark.parametrize(("obj", "expected"), [
    (vs({"fault": {"abort": {"httpStatus": 500, "percentage": {"value": NAN}}}}),
     "spec.http[0].fault.abort.percentage.value: Invalid value: NaN: must be a finite number"),
    (vs({"fault": {"delay": {"fixedDelay": "1s", "percentage": {"value": INF}}}}),
     "spec.http[0].fault.delay.percentage.value: Invalid value: +Inf: must be a finite number"),
    (vs({"mirror": {"host": "ratings"}, "mirrorPercentage": {"value": -INF}}),
     "spec.http[0].mirrorPercentage.value: Invalid value: -Inf: must be a finite number"),
    (dr({"warmup": {"duration": "10s", "minimumPercent": NAN}}),
     "spec.trafficPolicy.loadBalancer.warmup.minimumPercent: Invalid value: NaN: must be a finite number"),
    (dr({"warmup": {"duration": "10s", "aggression": INF}}),
     "spec.trafficPolicy.loadBalancer.warmup.aggression: Invalid value: +Inf: must be a finite number"),
])
def test_istio_validation_names_the_field(obj: dict[str, Any], expected: str) -> None:
    errors = [str(e) for e in validate(obj["kind"], obj).errors]
    assert expected in errors, errors


def test_structural_check_refuses_non_finite_numbers() -> None:
    obj = vs({"fault": {"abort": {"httpStatus": 500, "percentage": {"value": NAN}}}})
    result = check(schema_for("networking.istio.io", "VirtualService"), obj)
    assert [str(e) for e in result.errors] == [
        "spec.http[0].fault.abort.percentage.value: Invalid value: NaN: must be a finite number"]
