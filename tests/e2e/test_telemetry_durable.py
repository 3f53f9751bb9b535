"""Telemetry survives the daemon: `kill -9` under steady load and restarts lose no request and count none twice.

The client counts the requests it saw answered; the story's `sum(istio_requests_total{...})` must end equal to
that count for both reporters, and no sample of the series may ever decrease, across a kill -9 (requests
served while the daemon is down are counted from the sidecars' access logs once it is back) and across
restarts without traffic (the values stay)."""

from __future__ import annotations

import json
import signal
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from sluice.telemetry.catchup import GRACE_S
from tests.conftest import Daemon, start_daemon, stop_daemon, wait_for
from tests.e2e.mesh import SteadyLoad, api_client, deployments_ready, pod, pod_ips, start_story_mesh
from tests.story import STORY_VS

NS = "tutorial"
Q_DEST = ('sum(istio_requests_total{destination_service_namespace="tutorial", reporter="destination",'
          'destination_service_name="reviews"})')
# Not by destination_service_namespace: a 503 a sidecar answers itself (no healthy upstream) has it `unknown`.
Q_SOURCE = 'sum(istio_requests_total{reporter="source", source_workload="sleep", destination_service_name="reviews"})'
SERIES = 'istio_requests_total{destination_service_namespace="tutorial", destination_service_name="reviews"}'


def _api(d: Daemon, path: str, **params: str) -> dict[str, Any]:
    run = json.loads((d.home / "daemon.json").read_text())
    url = f"http://127.0.0.1:{run['metrics_port']}/api/v1/{path}?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return dict(body["data"])


def _value(d: Daemon, expr: str) -> float | None:
    try:
        result = _api(d, "query", query=expr)["result"]
    except OSError:
        return None  # the daemon is (re)starting
    return float(result[0]["value"][1]) if result else None


def _restart(d: Daemon, *, kill: bool) -> None:
    """Kill -9 (pods keep running) or stop (pods stop too) the daemon, then start it again on the same home."""
    assert d.proc is not None
    if kill:
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
    else:
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(30)
    d.proc = start_daemon(d.home, port=d.api_port, xds_port=d.xds_port, network=d.network, extra=d.extra).proc


def _counts(d: Daemon) -> tuple[float | None, float | None]:
    return _value(d, Q_SOURCE), _value(d, Q_DEST)


def _settle(d: Daemon, expected: tuple[int, int], after: float, timeout: float = 90) -> None:
    """Wait until both reporters' sums equal `expected` at some time past `after`."""
    deadline = time.monotonic() + timeout
    got = _counts(d)
    while time.monotonic() < deadline:
        got = _counts(d)
        if got == expected and time.time() > after:
            return
        time.sleep(0.5)
    raise AssertionError(f"(source, destination) = {got}, the client saw {expected}")


def _never_decreased(d: Daemon, start: float) -> None:
    """Every series of the story's query, and their sum, over the whole test: no sample below the one before."""
    end = time.time()
    for expr in (SERIES, Q_DEST, Q_SOURCE):
        data = _api(d, "query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step="1")
        assert data["result"], expr
        for series in data["result"]:
            values = [float(v) for _, v in series["values"]]
            drops = [(a, b) for a, b in zip(values, values[1:], strict=False) if b < a]
            assert not drops, (expr, series["metric"], drops)


@pytest.mark.parametrize("network", ["loopback", "netns"])
def test_counts_survive_kill_and_restart(tmp_path: Path, network: str) -> None:
    if network == "netns":
        from sluice.runtime.netns.node import netns_available

        ok, why = netns_available()
        if not ok:
            pytest.skip(f"netns mode unavailable: {why}")
    d = start_story_mesh(tmp_path, config="scrape_interval: 1\n", extra=[STORY_VS], network=network)
    try:
        core = client.CoreV1Api(api_client(d))
        sleep = pod(d, pod_ips(core, NS, "app=sleep")[0], core)
        began = time.time()
        load = SteadyLoad(sleep, "http://reviews:9080/reviews/0").start()
        try:
            wait_for(lambda: (_value(d, Q_DEST) or 0) >= 50, timeout=60, interval=0.5)
            assert d.proc is not None
            d.proc.send_signal(signal.SIGKILL)  # with ALS batches in flight and unsampled counts in memory
            d.proc.wait()
            served = load.total
            wait_for(lambda: load.total >= served + 200, timeout=60)  # ≈ 2 s of traffic with no daemon
            d.proc = start_daemon(d.home, port=d.api_port, xds_port=d.xds_port, network=d.network,
                                  extra=d.extra).proc
            wait_for(lambda: deployments_ready(client.AppsV1Api(api_client(d)), NS), timeout=60)
            served = load.total
            wait_for(lambda: load.total >= served + 200, timeout=60)
        finally:
            load.stop()
        stopped = time.time()
        # Every request got an answer (a sidecar's own 503 while it reconnects to the new daemon is one too).
        assert not [f for f in load.failures if not f[:3].isdigit()], load.failures[:5]
        answered, reached = load.total, load.codes[200]
        # Both reporters end at exactly the client's counts (the source sidecar counts every answer, reviews'
        # own sidecar the requests that reached it), and stay there once every late ALS entry could have
        # arrived (a double count would show up then).
        _settle(d, (answered, reached), after=stopped + GRACE_S + 3)
        _never_decreased(d, began)

        # Restarts with no traffic: the values stay (kill -9 keeps the pods; a clean stop stops them too).
        for kill in (True, False):
            _restart(d, kill=kill)
            wait_for(lambda: _value(d, Q_DEST) is not None, timeout=60, interval=0.5)
            assert _counts(d) == (answered, reached), kill
        _never_decreased(d, began)
    finally:
        stop_daemon(d)
