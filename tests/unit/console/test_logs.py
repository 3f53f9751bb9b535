"""Workload logs: the `sinceTime` cursor, the merge, and the logs endpoint over a recorded per-container reader."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.console.conftest import MakeClient
from tests.unit.console.fixtures import NS
from tests.unit.console.mesh import POD, get_json

from sluice.api.registry import Registry
from sluice.console.logs import merge, parse_since
from sluice.console.params import Fail


def test_parse_since_keeps_nanoseconds_and_normalises_to_utc() -> None:
    assert parse_since("2026-11-28T03:40:00.123456789Z") == "2026-11-28T03:40:00.123456789Z"
    assert parse_since("2026-11-28T03:40:00Z") == "2026-11-28T03:40:00.000000000Z"
    assert parse_since("2026-11-28T04:40:00.5+01:00") == "2026-11-28T03:40:00.500000000Z"
    assert parse_since("2026-11-28T03:40:00.1234567891234Z") == "2026-11-28T03:40:00.123456789Z"
    assert parse_since("2026-11-28T04:40:00 01:00") == "2026-11-28T03:40:00.000000000Z"  # an unencoded "+"
    for bad in ("yesterday", "2026-11-28", "2026-11-28T03:40:00", "2026-13-01T00:00:00Z", "1969-12-31T23:59:59Z"):
        with pytest.raises(Fail) as e:
            parse_since(bad)
        assert e.value.code == 400 and "sinceTime" in e.value.message


def test_merge_orders_by_time_and_flags_the_proxy() -> None:
    lines = merge([
        ("p1", "app", [("2026-01-01T00:00:01.000000000Z", "a1"), ("2026-01-01T00:00:03.000000000Z", "a3")]),
        ("p1", "istio-proxy", [("2026-01-01T00:00:02.000000000Z", "e2"), ("2026-01-01T00:00:03.000000000Z", "e3")]),
        ("p2", "app", [("2026-01-01T00:00:00.500000000Z", "b0")]),
    ])
    assert [(ln["pod"], ln["line"]) for ln in lines] == [("p2", "b0"), ("p1", "a1"), ("p1", "e2"), ("p1", "a3"),
                                                         ("p1", "e3")]
    assert [ln["proxy"] for ln in lines] == [False, False, True, False, True]
    assert lines[0] == {"pod": "p2", "container": "app", "time": "2026-01-01T00:00:00.500000000Z", "line": "b0",
                        "proxy": False}


class Recorder:
    """A LogReader over fixed lines per (pod, container), applying tail and `after` as the runtime does."""

    def __init__(self, data: dict[tuple[str, str], list[tuple[str, str]]]) -> None:
        self.data = data
        self.calls: list[tuple[str, str, str, int, str | None]] = []

    async def __call__(self, ns: str, pod: str, container: str, tail: int, after: str | None
                       ) -> list[tuple[str, str]]:
        self.calls.append((ns, pod, container, tail, after))
        lines = self.data.get((pod, container), [])
        lines = lines[-tail:] if tail else []
        return [ln for ln in lines if after is None or ln[0] > after]


def _t(s: int) -> str:
    return f"2026-11-28T03:40:{s:02d}.000000000Z"


POD_V2 = "reviews-v2-abc12"
DATA = {(POD_V2, "reviews"): [(_t(1), "GET /reviews/0"), (_t(4), "GET /reviews/1")],
        (POD_V2, "istio-proxy"): [(_t(2), "[envoy] inbound 200"), (_t(5), "[envoy] inbound 503")]}


async def test_logs_merge_containers_of_every_pod(make_client: MakeClient, registry: Registry) -> None:
    reader = Recorder(DATA)
    c = await make_client(logs=reader)
    body = await get_json(c, f"/api/namespaces/{NS}/workloads/reviews-v2/logs")
    assert (body["namespace"], body["workload"]) == (NS, "reviews-v2")
    assert [(ln["time"], ln["container"], ln["proxy"]) for ln in body["lines"]] == [
        (_t(1), "reviews", False), (_t(2), "istio-proxy", True), (_t(4), "reviews", False),
        (_t(5), "istio-proxy", True)]
    assert sorted(reader.calls) == [(NS, POD_V2, "istio-proxy", 500, None), (NS, POD_V2, "reviews", 500, None)]

    # a second pod of the workload is read too
    pod2 = registry.get(POD, "v1", NS, POD_V2)
    pod2["metadata"] = {"name": "reviews-v2-xyz34", "labels": pod2["metadata"]["labels"]}
    registry.create(POD, "v1", NS, pod2)
    reader.data[("reviews-v2-xyz34", "reviews")] = [(_t(3), "other pod")]
    body = await get_json(c, f"/api/namespaces/{NS}/workloads/reviews-v2/logs")
    assert [ln["line"] for ln in body["lines"]] == ["GET /reviews/0", "[envoy] inbound 200", "other pod",
                                                    "GET /reviews/1", "[envoy] inbound 503"]


async def test_logs_tail_since_and_container(make_client: MakeClient) -> None:
    reader = Recorder(DATA)
    c = await make_client(logs=reader)
    url = f"/api/namespaces/{NS}/workloads/reviews-v2/logs"
    body = await get_json(c, f"{url}?tailLines=1")
    assert [ln["line"] for ln in body["lines"]] == ["GET /reviews/1", "[envoy] inbound 503"]
    # following: the last line's time, exactly as it was returned, gives only later lines
    body = await get_json(c, f"{url}?sinceTime={_t(2)}")
    assert [ln["time"] for ln in body["lines"]] == [_t(4), _t(5)]
    body = await get_json(c, f"{url}?sinceTime={_t(5)}")
    assert body["lines"] == []
    body = await get_json(c, f"{url}?container=istio-proxy")
    assert {ln["container"] for ln in body["lines"]} == {"istio-proxy"} and len(body["lines"]) == 2
    body = await get_json(c, f"{url}?tailLines=5000&sinceTime=2026-11-28T04:40:02%2B01:00")
    assert reader.calls[-1][3:] == (5000, _t(2))


async def test_logs_bad_input(make_client: MakeClient) -> None:
    c = await make_client(logs=Recorder(DATA))
    url = f"/api/namespaces/{NS}/workloads/reviews-v2/logs"
    for query, words in (("tailLines=-1", "tailLines"), ("tailLines=5001", "5000"), ("tailLines=lots", "integer"),
                         ("sinceTime=now", "sinceTime"), ("container=nginx", "istio-proxy, reviews")):
        body = await get_json(c, f"{url}?{query}", 400)
        assert words in body["error"], (query, body)
    await get_json(c, f"/api/namespaces/{NS}/workloads/nope/logs", 404)
    await get_json(c, "/api/namespaces/nope/workloads/reviews-v2/logs", 404)


async def test_logs_without_a_reader_or_when_it_fails(make_client: MakeClient) -> None:
    c = await make_client()
    await get_json(c, f"/api/namespaces/{NS}/workloads/reviews-v2/logs", 501)

    async def broken(*_: Any) -> list[tuple[str, str]]:
        raise OSError("disk on fire")

    c = await make_client(logs=broken)
    body = await get_json(c, f"/api/namespaces/{NS}/workloads/reviews-v2/logs", 503)
    assert "disk on fire" in body["error"] and "reviews-v2-abc12" in body["error"]
