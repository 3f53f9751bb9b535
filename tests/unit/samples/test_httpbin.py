"""httpbin's two flavours through aiohttp's test client: paths, status codes and the JSON shapes of
go-httpbin (lists, Go header names, `ip:port` origin) and kennethreitz/httpbin (strings, Flask's pretty print)."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest

from sluice.samples.httpbin import shapes
from sluice.samples.httpbin.__main__ import UsageError, parse_go_args, parse_gunicorn_args
from sluice.samples.httpbin.app import create_app, weighted_choice


async def test_go_get_shape(make_client: Any) -> None:
    client = await make_client(create_app("go"))
    resp = await client.get("/get?a=1&a=2&b=3", headers={"x-b3-traceid": "abc", "X-Forwarded-For": "10.1.2.3, 10.9.9.9"})
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    text = await resp.text()
    body = json.loads(text)
    assert list(body) == ["args", "headers", "method", "origin", "url"]  # go-httpbin's field order
    assert body["args"] == {"a": ["1", "2"], "b": ["3"]}
    assert body["headers"]["X-B3-Traceid"] == ["abc"]
    assert body["headers"]["Host"] == [f"127.0.0.1:{client.port}"]
    assert body["method"] == "GET"
    assert body["origin"] == "10.1.2.3"  # the first X-Forwarded-For entry
    assert body["url"] == f"http://127.0.0.1:{client.port}/get?a=1&a=2&b=3"
    assert text.startswith('{\n  "args": {\n    "a": [\n      "1",\n') and text.endswith("}\n")


async def test_kennethreitz_get_shape(make_client: Any) -> None:
    client = await make_client(create_app("kennethreitz"))
    resp = await client.get("/get?a=1&a=2&b=3", headers={"x-b3-traceid": "abc", "X-Forwarded-For": "10.1.2.3"})
    assert resp.headers["Content-Type"] == "application/json"
    text = await resp.text()
    body = json.loads(text)
    assert sorted(body) == ["args", "headers", "origin", "url"]
    assert body["args"] == {"a": ["1", "2"], "b": "3"}
    assert body["headers"]["X-B3-Traceid"] == "abc"
    assert "X-Forwarded-For" not in body["headers"]  # hidden unless ?show_env
    assert body["origin"] == "10.1.2.3"
    assert '"args": {\n    "a": [\n      "1", \n      "2"\n    ], \n' in text  # Flask's ", " separators


async def test_origin_without_forwarding(make_client: Any) -> None:
    go = await make_client(create_app("go"))
    origin = (await (await go.get("/ip")).json())["origin"]
    assert origin.startswith("127.0.0.1:") and origin.split(":")[1].isdigit()
    kr = await make_client(create_app("kennethreitz"))
    assert await (await kr.get("/ip")).json() == {"origin": "127.0.0.1"}


@pytest.mark.parametrize("flavour", ["go", "kennethreitz"])
async def test_headers_and_status(make_client: Any, flavour: str) -> None:
    client = await make_client(create_app(flavour))
    body = await (await client.get("/headers", headers={"User-Agent": "curl/8.16.0"})).json()
    assert set(body) == {"headers"}
    ua = body["headers"]["User-Agent"]
    assert ua == (["curl/8.16.0"] if flavour == "go" else "curl/8.16.0")
    resp = await client.get("/status/418")
    assert resp.status == 418
    assert resp.headers["X-More-Info"] == "http://tools.ietf.org/html/rfc2324"
    assert (await client.get("/status/100")).status == 200  # Go: interim 100, then its implicit 200
    for code in (200, 204, 404, 503):
        assert (await client.get(f"/status/{code}")).status == code
    assert (await client.post("/status/500")).status == 500
    assert (await client.get("/status/abc")).status == 400
    assert (await client.get("/status/1000")).status == 400


@pytest.mark.parametrize("flavour", ["go", "kennethreitz"])
async def test_weighted_status_list(make_client: Any, flavour: str) -> None:
    client = await make_client(create_app(flavour))
    seen = Counter([(await client.get("/status/200:0.5,503:0.5")).status for _ in range(60)])
    assert set(seen) == {200, 503}  # P(one side never drawn in 60) = 2 * 0.5**60
    assert {(await client.get("/status/201:0,202:1")).status for _ in range(10)} == {202}
    assert (await client.get("/status/200:x,503:1")).status == 400


def test_weighted_choice_follows_weights() -> None:
    rng = random.Random(7)
    draws = Counter(weighted_choice([(200, 3), (503, 1)], rng) for _ in range(4000))
    assert 2800 < draws[200] < 3200  # 3000 ± 6.3σ


async def test_go_delay_caps_with_an_error(make_client: Any) -> None:
    client = await make_client(create_app("go", max_delay=0.5))
    resp = await client.get("/delay/0.01")
    assert resp.status == 200
    assert resp.headers["Server-Timing"].startswith("initial_delay;dur=10.00")
    resp = await client.get("/delay/1")
    assert resp.status == 400
    assert await resp.json() == {"status_code": 400, "error": "Bad Request",
                                 "detail": "invalid duration: duration 1s longer than 500ms"}
    assert (await client.get("/delay/soon")).status == 400


async def test_kennethreitz_delay_is_capped_silently(make_client: Any) -> None:
    client = await make_client(create_app("kennethreitz", max_delay=0.05))
    resp = await client.get("/delay/30")
    assert resp.status == 200
    assert sorted(await resp.json()) == ["args", "data", "files", "form", "headers", "origin", "url"]
    assert (await client.get("/delay/x")).status == 400


@pytest.mark.parametrize("flavour", ["go", "kennethreitz"])
async def test_anything_and_post(make_client: Any, flavour: str) -> None:
    client = await make_client(create_app(flavour))
    body = await (await client.put("/anything/x/y?q=1", json={"k": [1, 2]})).json()
    assert body["method"] == "PUT"
    assert body["json"] == {"k": [1, 2]}
    assert body["data"] == '{"k": [1, 2]}'
    assert body["url"].endswith("/anything/x/y?q=1")
    body = await (await client.post("/post", data={"x": "1"})).json()
    assert body["form"] == ({"x": ["1"]} if flavour == "go" else {"x": "1"})
    assert (await client.get("/post")).status == 405
    assert (await client.post("/get")).status == 405


@pytest.mark.parametrize("flavour", ["go", "kennethreitz"])
async def test_response_headers_bytes_stream_html(make_client: Any, flavour: str) -> None:
    client = await make_client(create_app(flavour))
    resp = await client.get("/response-headers?X-Test=one&X-Test=two")
    assert resp.headers.getall("X-Test") == ["one", "two"]
    body = await resp.json()
    assert body["X-Test"] == ["one", "two"]
    if flavour == "kennethreitz":
        assert body["Content-Length"] == str(len(await resp.read()))
    data = await (await client.get("/bytes/64?seed=3")).read()
    assert len(data) == 64 and data == await (await client.get("/bytes/64?seed=3")).read()
    assert len(await (await client.get("/bytes/999999")).read()) == 100 * 1024
    lines = (await (await client.get("/stream/3")).text()).splitlines()
    assert [json.loads(line)["id"] for line in lines] == [0, 1, 2]
    resp = await client.get("/html")
    assert resp.content_type == "text/html" and "Moby-Dick" in await resp.text()


async def test_unknown_paths_are_404(make_client: Any) -> None:
    go = await make_client(create_app("go"))
    resp = await go.get("/nope")
    assert resp.status == 404 and await resp.text() == "404 page not found\n"
    kr = await make_client(create_app("kennethreitz"))
    assert (await kr.get("/nope")).status == 404


def test_header_names() -> None:
    assert shapes.canonical_go("x-forwarded-client-cert") == "X-Forwarded-Client-Cert"
    assert shapes.canonical_go("X-B3-TRACEID") == "X-B3-Traceid"
    assert shapes.title_werkzeug("x_b3_spanid") == "X-B3-Spanid"
    assert shapes.go_headers([("a", "1"), ("A", "2"), ("host", "x")], "h:1") == {"A": ["1", "2"], "Host": ["h:1"]}
    assert shapes.kr_headers([("a", "1"), ("A", "2")]) == {"A": "1,2"}


def test_command_lines() -> None:
    assert parse_go_args([], {}) == ("0.0.0.0", 8080, 10.0)
    assert parse_go_args(["-port", "9000", "--max-duration=2s"], {}) == ("0.0.0.0", 9000, 2.0)
    assert parse_go_args([], {"PORT": "8081", "HOST": "127.0.0.1"}) == ("127.0.0.1", 8081, 10.0)
    with pytest.raises(UsageError, match="flag provided but not defined: -bogus"):
        parse_go_args(["-bogus", "1"], {})
    assert parse_gunicorn_args(["--access-logfile", "-", "-b", "0.0.0.0:80", "httpbin:app"]) == ("0.0.0.0", 80, True)
    assert parse_gunicorn_args(["-b", "[::]:8000", "httpbin:app", "-k", "gevent"]) == ("::", 8000, False)


@pytest.mark.parametrize("flavour", ["go", "kennethreitz"])
async def test_bad_input_is_a_client_error(make_client: Any, flavour: str) -> None:
    client = await make_client(create_app(flavour, max_delay=0.01))
    bad_multipart = {"Content-Type": "multipart/form-data; boundary=zz"}
    assert (await client.post("/post", data=b"--zz\r\nnot a part", headers=bad_multipart)).status in (200, 400)
    assert (await client.get("/delay/nan")).status == 400
    assert (await client.get("/status/-1")).status == 400
    assert (await client.get("/status/200:-1,503:1")).status == 400
    assert (await client.get("/bytes/-5")).status in (400, 404)
    assert len(await (await client.get("/stream/99999999999999999999")).text()) > 0
