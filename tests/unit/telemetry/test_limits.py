"""Label value checks and the per-workload series budget (sluice.telemetry.limits)."""

from __future__ import annotations

import pytest

from sluice.telemetry.limits import SeriesBudget, valid_grpc_status, valid_host, valid_response_code


@pytest.mark.parametrize(("code", "ok"), [(0, True), (100, True), (200, True), (599, True), (99, False),
                                          (600, False), (1000, False), (2**32 - 1, False)])
def test_response_code(code: int, ok: bool) -> None:
    assert valid_response_code(code) is ok


@pytest.mark.parametrize(("status", "ok"), [("", True), ("0", True), ("14", True), ("16", True), ("17", False),
                                            ("007", False), ("01", False), ("-1", False), ("2a", False),
                                            ("99999999999999999999", False)])
def test_grpc_status(status: str, ok: bool) -> None:
    assert valid_grpc_status(status) is ok


@pytest.mark.parametrize(("host", "ok"), [
    ("", True), ("unknown", True), ("reviews", True), ("reviews.tutorial.svc.cluster.local", True),
    ("web:9080", True), ("10.96.0.1:80", True), ("[::1]:8080", True), ("*.example.com", True),
    ("PassthroughCluster", True), ("a b", False), ("evil\n", False), ('x"y', False), ("a" * 300, False),
    ("host:port", False), ("{x}", False)])
def test_host(host: str, ok: bool) -> None:
    assert valid_host(host) is ok


def test_budget_refuses_past_the_limit_and_recounts() -> None:
    b = SeriesBudget(limit=10)
    a, c = ("ns", "a"), ("ns", "c")
    assert b.take(a, 4) and b.take(a, 4)
    assert not b.take(a, 4)  # 12 > 10: nothing reserved
    assert b.used[a] == 8
    assert b.take(c, 4)  # another workload has its own budget
    b.refuse(a)
    b.refuse(a, 2)
    assert b.exceeded == {a: 3}
    b.recount([(a, 4), (c, 4), (c, 4)])  # after series were removed
    assert b.used == {a: 4, c: 8}
    assert b.take(a, 4)


def test_zero_means_no_limit() -> None:
    b = SeriesBudget(limit=0)
    assert all(b.take(("ns", "w"), 4) for _ in range(10_000))
