"""Parse errors side by side with the real Prometheus (`.tools/bin/prometheus`, Debian's 2.42): the same bad
queries go to its `/api/v1/query` and to Sluice's parser, and the messages (position and text) must agree.

Only queries whose message Prometheus 3 (the version Sluice follows) words as 2.42 does are listed: 3 accepts
a number after `offset` ("expected number or duration") and checks a regex before anchoring it, so the
errors that changed there are covered by the parser tests instead."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import TOOLS, free_port, wait_for

from sluice.metrics.promql import ParseError, parse

PROMETHEUS = TOOLS / "prometheus"
PREFIX = 'invalid parameter "query": '

BAD_QUERIES = [
    # Unbalanced brackets: the lexer's words, at the end of input or after the stray bracket.
    "sum(x", "rate(x[5m]", "sum(rate(x[1m])", "histogram_quantile(0.9, x", "avg(x) by (a", "sum by (a) (x",
    "x[5m", "x[1m:", "x{", 'foo{a="b"', ")", "sum(x))", "x]", "x}", "x{a{", "x{(}", 'x{a="b")', "x{a=1}",
    # Other lexer errors.
    '"abc', 'x{a="b}', "x{a='b'} + '", "x ! y", "x $ y", "x !",
    # Parser errors.
    "sum(x) by", "1 +", "x and", "rate(x)", "{}", "foo(x)", "x @ foo", 'x{a!~"*"}', "sum(x, y)",
    "x offset 5m offset 1m", "rate(x[5m:1m:1m])", "count_values(1, x)", "topk(x)", "sum(x) offset 5m",
    "x @ 1 @ 2", "sum(x) @ 1", "x[1m] @ 1 @ 2", "x[1m:] offset 1m offset 2m", "(x) offset 1m",
]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not PROMETHEUS.exists():
        pytest.skip("no .tools/bin/prometheus")
    port = free_port()
    data: Path = tmp_path_factory.mktemp("prometheus")
    proc = subprocess.Popen([str(PROMETHEUS), f"--storage.tsdb.path={data}", "--config.file=/dev/null",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=error"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        wait_for(ready, timeout=60, interval=0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def _prometheus_error(base: str, query: str) -> str | None:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query, "time": "0"})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            json.loads(r.read())
        return None
    except urllib.error.HTTPError as e:
        err = json.loads(e.read())["error"]
        assert isinstance(err, str)
        return err.removeprefix(PREFIX)


def _our_error(query: str) -> str | None:
    try:
        parse(query)
    except ParseError as e:
        return str(e)
    return None


@pytest.mark.parametrize("query", BAD_QUERIES)
def test_parse_error_as_prometheus(prometheus: str, query: str) -> None:
    theirs = _prometheus_error(prometheus, query)
    assert theirs is not None, f"Prometheus accepts {query!r}"
    assert _our_error(query) == theirs
