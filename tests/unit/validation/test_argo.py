"""Argo Rollouts' duration rules (Go's time.ParseDuration, RolloutPause.DurationSeconds) and metric checks."""

from __future__ import annotations

import pytest

from sluice.validation import argo


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("1h30m", 5400), ("250ms", 0.25), ("0", 0),
                                               ("1.5m", 90), ("-2s", -2)])
def test_go_durations(text: str, seconds: float) -> None:
    assert argo.go_duration(text) == seconds


@pytest.mark.parametrize(("text", "message"), [
    ("10", 'time: missing unit in duration "10"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("", 'time: invalid duration ""'),
    ("s", 'time: invalid duration "s"'),
])
def test_go_duration_errors_read_like_go(text: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        argo.go_duration(text)
    assert str(e.value) == message


@pytest.mark.parametrize(("duration", "seconds"), [(None, 0), (45, 45), ("45", 45), ("10m", 600), ("ten", -1)])
def test_pause_seconds(duration: object, seconds: int) -> None:
    assert argo.pause_seconds(duration) == seconds


def test_first_metric_problem_is_reported_with_argos_text() -> None:
    spec = {"metrics": [{"name": "m", "count": 2, "failureLimit": 3, "inconclusiveLimit": 5,
                         "provider": {"prometheus": {"query": "up"}}},
                        {"name": "m", "provider": {"prometheus": {"query": "up"}}}]}
    v = argo.validate("AnalysisTemplate", {"metadata": {"name": "t"}, "spec": spec})
    assert [str(e) for e in v.errors] == [
        "spec.metrics[0].count: Invalid value: 2: count (2) must be >= failureLimit + consecutiveSuccessLimit "
        "(3 + 0) if both >= 0",
        "spec.metrics[1].name: Invalid value: \"m\": duplicate name 'm'",
    ]
    assert v.warnings == []
