"""Target safety, option parsing, result shapes and summaries of the load generator."""

from __future__ import annotations

import pytest

from sluice.load import (
    LoadConfig,
    LoadResult,
    TargetRefused,
    check_target,
    format_summary,
    parse_duration,
    parse_header,
)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9080/", "http://127.1.0.7/x", "http://localhost:8080/",
                                 "http://[::1]:9080/"])
def test_loopback_targets_are_accepted(url: str) -> None:
    assert check_target(url).proxy is None


@pytest.mark.parametrize("url", ["http://10.0.0.1/", "http://example.com/", "http://8.8.8.8:80/",
                                 "http://[2001:db8::1]/"])
def test_other_targets_are_refused_without_proxy(url: str) -> None:
    with pytest.raises(TargetRefused, match="refusing target"):
        check_target(url)


def test_names_are_allowed_through_a_loopback_proxy() -> None:
    t = check_target("http://productpage:9080/productpage", "http://127.1.0.5:15001")
    assert (t.host, t.proxy) == ("productpage", "http://127.1.0.5:15001")
    with pytest.raises(TargetRefused, match="refusing proxy"):
        check_target("http://productpage:9080/", "http://192.168.1.1:3128")
    with pytest.raises(TargetRefused, match="not a loopback address"):
        check_target("http://93.184.216.34/", "http://127.0.0.1:15001")


@pytest.mark.parametrize("url", ["https://127.0.0.1/", "ftp://127.0.0.1/", "127.0.0.1:9080", "http:///x"])
def test_malformed_or_non_http_urls(url: str) -> None:
    with pytest.raises(TargetRefused):
        check_target(url)


def test_parse_duration() -> None:
    assert parse_duration("10s") == 10.0
    assert parse_duration("2m") == 120.0
    assert parse_duration("500ms") == 0.5
    assert parse_duration("1.5") == 1.5
    assert parse_duration("0") is None and parse_duration("0s") is None
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_parse_header() -> None:
    assert parse_header("end-user: jason") == ("end-user", "jason")
    assert parse_header("x-a:b:c") == ("x-a", "b:c")
    with pytest.raises(ValueError):
        parse_header("no colon")


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        LoadConfig("http://127.0.0.1/", concurrency=0)
    with pytest.raises(ValueError):
        LoadConfig("http://127.0.0.1/", rate=-1)
    assert not LoadConfig("http://127.0.0.1/", rate=0).open_loop


def test_result_dict_and_summary() -> None:
    r = LoadResult(url="http://127.0.0.1:1/", proxy=None, target_rate=100.0, concurrency=4, elapsed=2.0,
                   requests=200, responses=198, status_codes={200: 190, 503: 8}, errors={"timeout": 2})
    for v in range(1, 201):
        r.histogram.record(v * 1_000_000)  # 1 … 200 ms
    d = r.to_dict()
    assert d["achievedRps"] == 100.0
    assert d["statusCodes"] == {"200": 190, "503": 8}
    assert d["latencyMs"]["p50"] == pytest.approx(100, rel=0.01)
    assert d["latencyMs"]["max"] == 200
    text = format_summary(r)
    for fragment in ("200 in 2.00 s", "100.0 rps achieved, target 100 rps", "p50", "p99", "200: 190", "503: 8",
                     "timeout: 2"):
        assert fragment in text


def test_module_takes_the_proxy_from_a_pods_environment() -> None:
    from sluice.load.__main__ import proxy_from_env

    env = {"HTTP_PROXY": "http://127.1.0.4:15001", "NO_PROXY": "localhost,127.0.0.1,127.2.0.4"}
    assert proxy_from_env("http://productpage:9080/productpage", env) == "http://127.1.0.4:15001"
    assert proxy_from_env("http://127.0.0.1:9080/", env) is None
    assert proxy_from_env("http://productpage:9080/", {}) is None
