"""One PromQL query never freezes the daemon: while each pathological query runs against the real daemon's
Prometheus API, the Kubernetes API server on the same event loop answers a GET every 100 ms, and the query gets
Prometheus's answer (an error for the ones that must fail) within a few times its timeout."""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Daemon, start_daemon, stop_daemon, wait_for


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("promql-safety")
    (home / "config.yaml").write_text("scrape_interval: 1\n")
    d = start_daemon(home)
    try:
        yield d
    finally:
        stop_daemon(d)


def _metrics_base(d: Daemon) -> str:
    run = json.loads((d.home / "daemon.json").read_text())
    return f"http://127.0.0.1:{run['metrics_port']}"


def _prom(d: Daemon, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    url = f"{_metrics_base(d)}{path}?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _api_get(d: Daemon, ctx: ssl.SSLContext) -> int:
    req = urllib.request.Request(f"{d.api_url}/api/v1/namespaces",
                                 headers={"Authorization": f"Bearer {d.token}"})
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        r.read()
        return int(r.status)


def _has_data(d: Daemon) -> bool:
    status, body = _prom(d, "/api/v1/query", {"query": "count({__name__=~\".+\"})"})
    return status == 200 and bool(body["data"]["result"])


NOW = "{now}"  # filled in per test
CASES = [
    # (id, path, params, timeout seconds, expected status, expected errorType or None for success)
    ("catastrophic-regex", "/api/v1/query", {"query": '{__name__=~"(.+)+z"}', "timeout": "5s"}, 5.0, 200, None),
    ("backtracking-regex", "/api/v1/query",
     {"query": 'count({__name__=~".+", __name__!~"(a|aa|a*)*(b|c)x(.*)*y"})', "timeout": "1s"}, 1.0, 200, None),
    ("fine-subquery", "/api/v1/query", {"query": 'max_over_time({__name__=~".+"}[3h:1ms])', "timeout": "1s"},
     1.0, 422, "execution"),
    ("deep-nesting", "/api/v1/query", {"query": "(" * 1000 + "1" + ")" * 1000, "timeout": "1s"}, 1.0, 400,
     "bad_data"),
    ("slow-range-query", "/api/v1/query_range",
     {"query": "quantile_over_time(0.5, vector(time())[1h:1s])", "start": "{start}", "end": NOW, "step": "1",
      "timeout": "2s"}, 2.0, 503, "timeout"),
]


@pytest.mark.parametrize(("path", "params", "timeout", "status", "etype"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_api_keeps_answering_while_a_pathological_query_runs(daemon: Daemon, path: str, params: dict[str, str],
                                                             timeout: float, status: int, etype: str | None) -> None:
    wait_for(lambda: _has_data(daemon), timeout=30)
    now = time.time()
    params = {k: v.replace("{now}", f"{now:.3f}").replace("{start}", f"{now - 3 * 3600:.3f}")
              for k, v in params.items()}
    ctx = ssl.create_default_context(cafile=str(daemon.home / "pki" / "ca.crt"))
    answer: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        answer["status"], answer["body"] = _prom(daemon, path, params)
        answer["elapsed"] = time.monotonic() - started

    query = threading.Thread(target=run)
    query.start()
    polls: list[int] = []
    try:
        while True:  # at least one GET, then one every 100 ms until the query has its answer
            polls.append(_api_get(daemon, ctx))  # raises (failing the test) if the API server does not answer
            if not query.is_alive():
                break
            time.sleep(0.1)
    finally:
        query.join(timeout=120)
    assert polls and all(code == 200 for code in polls), polls
    assert answer["status"] == status, answer
    if etype is None:
        assert answer["body"]["status"] == "success", answer
    else:
        assert answer["body"]["errorType"] == etype, answer
    assert answer["elapsed"] < 5 * timeout + 2, answer  # generous: the shared CI machine is slow at times


HEAVY = " + ".join(f"quantile_over_time(0.{k}, vector(time())[1h:1s])" for k in range(1, 10))


def test_daemon_stops_promptly_while_a_query_runs(tmp_path_factory: pytest.TempPathFactory) -> None:
    # One worker and no queue: a second query is refused exactly while the first one is being evaluated.
    home = tmp_path_factory.mktemp("promql-stop")
    (home / "config.yaml").write_text("query_max_concurrency: 1\nquery_max_queue: 0\n")
    d = start_daemon(home)
    assert d.proc is not None
    now = time.time()
    heavy = {"query": HEAVY, "start": f"{now - 3 * 3600:.3f}", "end": f"{now:.3f}", "step": "1"}
    answer: dict[str, Any] = {}

    def run() -> None:
        # The probes below may hold the one worker just when this arrives (then it is refused with 503): ask
        # again until it is the query being evaluated.
        deadline = time.monotonic() + 30
        try:
            while True:
                answer["status"], answer["body"] = _prom(d, "/api/v1/query_range", heavy)
                if answer["status"] != 503 or time.monotonic() > deadline:
                    return
        except OSError as e:  # the daemon went away mid-request
            answer["error"] = e

    query = threading.Thread(target=run)
    query.start()
    try:
        wait_for(lambda: _prom(d, "/api/v1/query", {"query": "1"})[0] == 503, timeout=30)
        assert query.is_alive()  # minutes of work at the default 2 m timeout
        d.proc.terminate()
        d.proc.wait(timeout=30)  # raises if the daemon waits for the query to finish
    finally:
        stop_daemon(d)
        query.join(timeout=30)
    assert d.proc.returncode == 0
    assert answer and answer.get("status", 499) != 200, answer
