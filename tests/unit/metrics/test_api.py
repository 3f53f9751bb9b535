"""The Prometheus HTTP API as a client sees it: exact envelopes, encodings, error types, codes and messages.

A stub engine stands in for PromQL here (it answers a few fixed expressions and records what it was asked), so
these tests pin the API's own behaviour; the last test runs the real engine over the TSDB when it is present.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from tests.unit.metrics.served import Client, served

from sluice.metrics.api import format_timestamp, format_value, metrics_app, parse_duration, parse_time
from sluice.metrics.promql.errors import EvalError, ParseError, QueryTimeout
from sluice.metrics.promql.values import QueryResult, Sample, Scalar, Series, String
from sluice.metrics.series import Labels, labels_of
from sluice.metrics.tsdb import TSDB

T0 = 1_435_781_430_000


def L(**kv: str) -> Labels:
    return labels_of(kv)


@dataclass
class StubEngine:
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    lookback: int | None = None

    def _answer(self, expr: str, t: int, timeout_s: float | None = None) -> QueryResult:
        if expr == "vec":
            return QueryResult("vector", [Sample(L(__name__="up", job="x"), 1.0, t),
                                          Sample(L(job="y"), 0.25, t)])
        if expr == "values":
            vals = [1e-7, 1e21, 0.1, 100.0, -0.0, math.nan, math.inf, -math.inf, 1e-5, 123456789.125]
            return QueryResult("vector", [Sample(L(i=str(i)), v, t) for i, v in enumerate(vals)])
        if expr == "scal":
            return QueryResult("scalar", Scalar(t, 2.5))
        if expr == "str":
            return QueryResult("string", String(t, "a<b"))
        if expr == "warn":
            return QueryResult("vector", [], warnings=["PromQL warning: x"], infos=["PromQL info: y"])
        if expr == "slow":  # keeps the engine's contract: past the timeout it raises
            time.sleep(0.05)
            if timeout_s is not None and timeout_s < 0.05:
                raise QueryTimeout()
            return QueryResult("vector", [])
        if expr == "exec":
            raise EvalError("vector cannot contain metrics with the same labelset")
        if expr == "crash":
            raise RuntimeError("bug")
        raise ParseError('unexpected end of input', len(expr), expr)

    def instant(self, expr: str, t_ms: int, *, timeout_s: float | None = None) -> QueryResult:
        self.calls.append(("instant", expr, t_ms, self.lookback))
        return self._answer(expr, t_ms, timeout_s)

    def range(self, expr: str, start_ms: int, end_ms: int, step_ms: int, *,
              timeout_s: float | None = None) -> QueryResult:
        self.calls.append(("range", expr, start_ms, end_ms, step_ms, self.lookback))
        if expr == "awkward":  # every layout Go's float format has, at times the fast encoders must get right
            vals = [1e-7, 1e21, 0.1, 100.0, -0.0, math.nan, math.inf, -math.inf, 1e-5, 123456789.125, 1e16, 2.0**70,
                    9.999999e-7, 5e-324, 0.30000000000000004, -2.5]
            times = [start_ms + i * 1001 for i in range(len(vals))]
            far = [10**15 + i * 7 for i in range(len(vals))]  # past the range where ms / 1000 prints exactly
            return QueryResult("matrix", [Series(L(job="near"), times, vals), Series(L(job="far"), far, vals),
                                          Series(L(job="neg"), [-1500, -1], [1.0, 2.0])])
        if expr == "mat":
            return QueryResult("matrix", [
                Series(L(job="z"), [start_ms], [3.0]),
                Series(L(__name__="up", job="a"), [start_ms, start_ms + step_ms], [1.0, 2.0]),
            ])
        return self._answer(expr, start_ms, timeout_s)


@pytest.fixture
def engine() -> StubEngine:
    return StubEngine()


@pytest.fixture
def storage() -> TSDB:
    db = TSDB(None)
    db.append(T0, [(L(__name__="req_total", app="a", reporter="destination"), 1.0),
                   (L(__name__="req_total", app="b", reporter="source"), 2.0),
                   (L(__name__="other", **{"http.status_code": "200"}), 3.0)], scrape_target="t")
    return db


@pytest.fixture
async def client(engine: StubEngine, storage: TSDB) -> AsyncIterator[Client]:
    def factory(lookback: int | None) -> StubEngine:
        engine.lookback = lookback
        return engine

    app = metrics_app(storage, factory, metrics_text=lambda: "up 1\n", now=lambda: T0 / 1000 + 0.5)
    async with served(app) as c:
        yield c


async def get(client: Client, path: str, **params: Any) -> tuple[int, str]:
    r = await client.get(path, params=params)
    return r.status, await r.text()


async def test_instant_vector_envelope_is_byte_exact(client: Client) -> None:
    status, body = await get(client, "/api/v1/query", query="vec", time="1435781451.781")
    assert status == 200
    assert body == ('{"status":"success","data":{"resultType":"vector","result":['
                    '{"metric":{"__name__":"up","job":"x"},"value":[1435781451.781,"1"]},'
                    '{"metric":{"job":"y"},"value":[1435781451.781,"0.25"]}]}}')


async def test_values_are_go_formatted_strings(client: Client) -> None:
    _, body = await get(client, "/api/v1/query", query="values", time="1")
    got = [s["value"][1] for s in json.loads(body)["data"]["result"]]
    assert got == ["1e-07", "1e+21", "0.1", "100", "-0", "NaN", "+Inf", "-Inf", "0.00001", "123456789.125"]


async def test_range_values_and_times_are_go_formatted(client: Client) -> None:
    _, body = await get(client, "/api/v1/query_range", query="awkward", start="1435781451.781", end="1435781452",
                        step="1")
    got = {s["metric"]["job"]: s["values"] for s in json.loads(body)["data"]["result"]}
    texts = ["1e-07", "1e+21", "0.1", "100", "-0", "NaN", "+Inf", "-Inf", "0.00001", "123456789.125",
             "10000000000000000", "1.1805916207174113e+21", "9.999999e-07", "5e-324", "0.30000000000000004", "-2.5"]
    assert [v for _, v in got["near"]] == texts
    assert [v for _, v in got["far"]] == texts
    assert [t for t, _ in got["near"]][:4] == [1435781451.781, 1435781452.782, 1435781453.783, 1435781454.784]
    assert '[1000000000000.007,"1e+21"]' in body and '[1000000000000,"1e-07"]' in body
    assert got["neg"] == [[-1.5, "1"], [-0.001, "2"]]


def test_value_and_timestamp_encoders() -> None:
    assert format_timestamp(1435781430000) == "1435781430"
    assert format_timestamp(1435781451781) == "1435781451.781"
    assert format_timestamp(1435781451780) == "1435781451.78"
    assert format_timestamp(1435781451001) == "1435781451.001"
    assert format_timestamp(-1500) == "-1.5"
    assert format_timestamp(0) == "0"
    assert format_value(0.1 + 0.2) == "0.30000000000000004"
    assert format_value(1e16) == "10000000000000000"
    assert format_value(1.5e-6) == "0.0000015"
    assert format_value(2.0**60) == "1152921504606847000"
    assert format_value(2.0**70) == "1.1805916207174113e+21"


def test_parameter_parsers() -> None:
    assert parse_time("2015-07-01T20:10:51.781Z") == 1435781451781
    assert parse_time("2015-07-01T22:10:51.7819+02:00") == 1435781451781
    assert parse_time("1435781451.781") == 1435781451781
    assert parse_time("1435781451.7815") == 1435781451782  # rounded to ms, half away from zero
    assert parse_time("1e9") == 1_000_000_000_000
    assert parse_duration("5m") == 300 * 10**9
    assert parse_duration("1h30m") == 5400 * 10**9
    assert parse_duration("0.5") == 5 * 10**8
    for bad in ("", "abc", "2015-07-01", "NaN"):
        with pytest.raises(ValueError):
            parse_time(bad)
    with pytest.raises(ValueError, match="overflows int64"):
        parse_duration("1e20")


async def test_scalar_and_string_results(client: Client) -> None:
    _, body = await get(client, "/api/v1/query", query="scal", time="1435781451.5")
    assert json.loads(body)["data"] == {"resultType": "scalar", "result": [1435781451.5, "2.5"]}
    _, body = await get(client, "/api/v1/query", query="str", time="10")
    assert body == '{"status":"success","data":{"resultType":"string","result":[10,"a\\u003cb"]}}'


async def test_time_defaults_to_now_and_accepts_rfc3339(client: Client, engine: StubEngine) -> None:
    await get(client, "/api/v1/query", query="vec")
    await get(client, "/api/v1/query", query="vec", time="2015-07-01T20:10:51.781Z")
    assert [c[2] for c in engine.calls] == [T0 + 500, 1435781451781]


async def test_post_form_is_accepted(client: Client, engine: StubEngine) -> None:
    r = await client.post("/api/v1/query", data={"query": "vec", "time": "100"})
    assert r.status == 200
    assert engine.calls[-1][:3] == ("instant", "vec", 100_000)
    r = await client.post("/api/v1/query_range", data={"query": "mat", "start": "0", "end": "60", "step": "15s"})
    assert (await r.json())["data"]["resultType"] == "matrix"


async def test_large_and_multipart_forms(client: Client, engine: StubEngine) -> None:
    # a form past what is parsed on the loop (16 KiB) is parsed in a worker, with the same result
    fields = {"query": "vec", "time": "100", **{f"pad{i}": "x" * 100 for i in range(200)}}
    r = await client.post("/api/v1/query", data=fields)
    assert r.status == 200 and engine.calls[-1][:3] == ("instant", "vec", 100_000)
    form = aiohttp.FormData()
    form.add_field("query", "scal")
    form.add_field("time", "200")
    form.add_field("file", b"ignored", filename="f.txt")
    r = await client.post("/api/v1/query", data=form)  # multipart/form-data, as Go's FormValue reads it
    assert r.status == 200 and engine.calls[-1][:3] == ("instant", "scal", 200_000)
    many = aiohttp.FormData()
    for i in range(1001):
        many.add_field(f"f{i}", "v")
    many.add_field("query", "vec", content_type="text/plain")
    r = await client.post("/api/v1/query", data=many)
    assert r.status == 400
    assert await r.json() == {"status": "error", "errorType": "bad_data",
                              "error": "error parsing form values: multipart: message too large"}


async def test_warnings_and_infos_only_when_present(client: Client) -> None:
    _, body = await get(client, "/api/v1/query", query="warn", time="1")
    assert json.loads(body) == {"status": "success", "data": {"resultType": "vector", "result": []},
                                "warnings": ["PromQL warning: x"], "infos": ["PromQL info: y"]}
    _, body = await get(client, "/api/v1/query", query="vec", time="1")
    assert "warnings" not in json.loads(body) and "infos" not in json.loads(body)


@pytest.mark.parametrize(("params", "status", "etype", "error"), [
    ({"query": "sum(", "time": "1"}, 400, "bad_data",
     'invalid parameter "query": 1:5: parse error: unexpected end of input'),
    ({"query": "exec", "time": "1"}, 422, "execution", "vector cannot contain metrics with the same labelset"),
    ({"query": "vec", "time": "yesterday"}, 400, "bad_data",
     'invalid parameter "time": invalid time value for \'time\': cannot parse "yesterday" to a valid timestamp'),
    ({"query": "vec", "timeout": "soon"}, 400, "bad_data",
     'invalid parameter "timeout": cannot parse "soon" to a valid duration'),
    ({"query": "slow", "timeout": "0.001"}, 503, "timeout", "query timed out in expression evaluation"),
    ({"query": "vec", "limit": "x"}, 400, "bad_data",
     'invalid parameter "limit": strconv.Atoi: parsing "x": invalid syntax'),
    ({"query": "vec", "limit": "-1"}, 400, "bad_data", 'invalid parameter "limit": limit must be non-negative'),
    ({"query": "vec", "lookback_delta": "x"}, 400, "bad_data",
     'error parsing lookback delta duration: cannot parse "x" to a valid duration'),
    ({"query": "crash"}, 500, "internal", "unexpected error: RuntimeError: bug"),
])
async def test_query_errors(client: Client, params: dict[str, str], status: int, etype: str,
                            error: str) -> None:
    r = await client.get("/api/v1/query", params=params)
    assert r.status == status
    assert r.headers["Content-Type"].startswith("application/json")
    assert await r.json() == {"status": "error", "errorType": etype, "error": error}


@pytest.mark.parametrize(("params", "error"), [
    ({"start": "10", "end": "5", "step": "1"}, 'invalid parameter "end": end timestamp must not be before start time'),
    ({"start": "0", "end": "5", "step": "0"}, 'invalid parameter "step": zero or negative query resolution step '
                                              'widths are not accepted. Try a positive integer'),
    ({"start": "0", "end": "5", "step": "-1s"}, 'invalid parameter "step": cannot parse "-1s" to a valid duration'),
    ({"start": "0", "end": "11001", "step": "1"}, "exceeded maximum resolution of 11,000 points per timeseries. "
                                                  "Try decreasing the query resolution (?step=XX)"),
    ({"end": "5", "step": "1"}, 'invalid parameter "start": cannot parse "" to a valid timestamp'),
    ({"start": "0", "end": "x", "step": "1"}, 'invalid parameter "end": cannot parse "x" to a valid timestamp'),
])
async def test_range_guards(client: Client, params: dict[str, str], error: str) -> None:
    r = await client.get("/api/v1/query_range", params={"query": "mat", **params})
    assert r.status == 400
    assert await r.json() == {"status": "error", "errorType": "bad_data", "error": error}


async def test_range_query_matrix_sorted_and_parameters_passed(client: Client,
                                                               engine: StubEngine) -> None:
    status, body = await get(client, "/api/v1/query_range", query="mat", start="2015-07-01T20:10:30Z",
                             end="1435781490", step="15s", lookback_delta="1m")
    assert status == 200
    assert engine.calls[-1] == ("range", "mat", T0, T0 + 60_000, 15_000, 60_000)
    assert body == ('{"status":"success","data":{"resultType":"matrix","result":['
                    '{"metric":{"__name__":"up","job":"a"},"values":[[1435781430,"1"],[1435781445,"2"]]},'
                    '{"metric":{"job":"z"},"values":[[1435781430,"3"]]}]}}')
    # Exactly 11,000 steps is still allowed.
    status, _ = await get(client, "/api/v1/query_range", query="mat", start="0", end="11000", step="1")
    assert status == 200


async def test_limit_truncates_with_a_warning(client: Client) -> None:
    _, body = await get(client, "/api/v1/query", query="vec", limit="1", time="1")
    doc = json.loads(body)
    assert len(doc["data"]["result"]) == 1 and doc["warnings"] == ["results truncated due to limit"]


async def test_series_endpoint(client: Client) -> None:
    status, body = await get(client, "/api/v1/series", **{"match[]": 'req_total{reporter="destination"}'})
    assert status == 200
    assert body == ('{"status":"success","data":[{"__name__":"req_total","app":"a","reporter":"destination"}]}')
    r = await client.get("/api/v1/series", params=[("match[]", '{app="a"}'), ("match[]", '{app="b"}'),
                                                   ("match[]", '{app="a"}')])
    assert [s["app"] for s in (await r.json())["data"]] == ["a", "b"]
    r = await client.get("/api/v1/series", params=[("match[]", "req_total"), ("limit", "1")])
    doc = await r.json()
    assert len(doc["data"]) == 1 and doc["warnings"] == ["results truncated due to limit"]
    _, body = await get(client, "/api/v1/series", **{"match[]": "req_total", "end": "100"})
    assert json.loads(body)["data"] == []


@pytest.mark.parametrize(("params", "error"), [
    ({}, "no match[] parameter provided"),
    ({"match[]": "up{"}, 'invalid parameter "match[]": 1:4: parse error: unexpected end of input inside braces'),
    ({"match[]": '{a=~".*"}'}, 'invalid parameter "match[]": 1:1: parse error: vector selector must contain at '
                               'least one non-empty matcher'),
    ({"match[]": "up", "start": "x"}, 'invalid parameter "start": invalid time value for \'start\': cannot parse '
                                      '"x" to a valid timestamp'),
])
async def test_series_errors(client: Client, params: dict[str, str], error: str) -> None:
    r = await client.get("/api/v1/series", params=params)
    assert r.status == 400
    assert await r.json() == {"status": "error", "errorType": "bad_data", "error": error}


async def test_labels_and_label_values(client: Client) -> None:
    _, body = await get(client, "/api/v1/labels")
    assert body == '{"status":"success","data":["__name__","app","http.status_code","reporter"]}'
    r = await client.get("/api/v1/labels", params={"match[]": "req_total"})
    assert (await r.json())["data"] == ["__name__", "app", "reporter"]
    _, body = await get(client, "/api/v1/label/app/values")
    assert body == '{"status":"success","data":["a","b"]}'
    r = await client.get("/api/v1/label/app/values", params={"match[]": '{reporter="source"}'})
    assert (await r.json())["data"] == ["b"]
    r = await client.get("/api/v1/label/__name__/values", params={"limit": "1"})
    assert await r.json() == {"status": "success", "data": ["other"], "warnings": ["results truncated due to limit"]}
    r = await client.get("/api/v1/label/U__http_2e_status__code/values")
    assert (await r.json())["data"] == ["200"]
    r = await client.get("/api/v1/label/nope/values")
    assert await r.json() == {"status": "success", "data": []}
    r = await client.post("/api/v1/labels", data={"match[]": '{app="a"}'})
    assert (await r.json())["data"] == ["__name__", "app", "reporter"]
    r = await client.get("/api/v1/labels", params={"match[]": "up{"})
    assert r.status == 400 and (await r.json())["errorType"] == "bad_data"


async def test_buildinfo_metrics_and_browser(client: Client) -> None:
    doc = await (await client.get("/api/v1/status/buildinfo")).json()
    assert doc["status"] == "success"
    assert set(doc["data"]) == {"version", "revision", "branch", "buildUser", "buildDate", "goVersion"}
    r = await client.get("/metrics")
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert await r.text() == "up 1\n"
    r = await client.get("/")
    page = await r.text()
    assert r.status == 200 and "api/v1/query_range" in page and "<svg" in page
    assert "http://" not in page and "https://" not in page  # self-contained: no external assets


async def test_with_the_real_engine_over_the_tsdb() -> None:
    promql = pytest.importorskip("sluice.metrics.promql")
    Engine = getattr(promql, "Engine", None)
    if Engine is None:
        pytest.skip("the PromQL engine has not landed yet")
    db = TSDB(None)
    labels = L(__name__="istio_requests_total", reporter="destination", destination_service_name="reviews",
               destination_service_namespace="tutorial", destination_version="v2")
    for i in range(13):
        db.append(T0 + i * 5000, [(labels, float(i * 10))], scrape_target="collector")
    app = metrics_app(db, lambda lb: Engine(db, lookback_delta_ms=lb or 300_000))
    async with served(app) as c:
        q = ('sum(istio_requests_total{destination_service_namespace="tutorial", reporter="destination",'
             'destination_service_name="reviews", destination_version="v2"})')
        r = await c.get("/api/v1/query", params={"query": q, "time": str((T0 + 60_000) / 1000)})
        assert await r.json() == {"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [1435781490, "120"]}]}}
        r = await c.get("/api/v1/query_range", params={"query": q, "start": "1435781430", "end": "1435781490",
                                                       "step": "30"})
        assert (await r.json())["data"]["result"][0]["values"] == [
            [1435781430, "0"], [1435781460, "60"], [1435781490, "120"]]


def test_the_real_engine_stops_at_its_deadline(storage: TSDB) -> None:
    from sluice.metrics.promql import Engine
    from sluice.metrics.promql import QueryTimeout as Timeout

    engine = Engine(storage)
    assert engine.instant("sum(rate(up[5m]))", 1_000_000).type == "vector"
    with pytest.raises(Timeout, match="query timed out in expression evaluation"):
        engine.instant("sum(rate(up[5m]))", 1_000_000, timeout_s=-1)
    with pytest.raises(Timeout):
        engine.range("up", 0, 1_000_000, 15_000, timeout_s=-1)
    with pytest.raises(Timeout):  # the engine's own limit caps a longer request
        Engine(storage, timeout_s=-1).instant("up", 1_000_000, timeout_s=60)
