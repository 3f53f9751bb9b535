"""The console's workload logs over a real kubelet: CRI log files written by the shim for real processes,
read by `Kubelet.read_log_lines`, merged by the console's logs endpoint; and the CRI reader on crafted files."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sluice.console.api import console_app
from sluice.resources.kinds import by_kind
from sluice.runtime.logs import read_lines
from tests.integration.runtime.harness import Cluster, pod, start_cluster, stop_cluster
from tests.unit.console.access import bearer_client, console_auth
from tests.unit.console.fixtures import fake_query

DEPLOY = by_kind("apps", "Deployment")


def _ts(s: float) -> bytes:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(s))).encode() + b".%09dZ" % int((s % 1) * 1e9)


def test_read_lines_tail_after_and_partial_records(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    t = 1_800_000_000.0
    log.write_bytes(b"".join([
        _ts(t) + b" stdout F one\n",
        _ts(t + 1) + b" stdout P two-a \n",
        _ts(t + 2) + b" stderr F oops\n",
        _ts(t + 3) + b" stdout F two-b\n",
        b"garbage\n",
        _ts(t + 4) + b" stdout F three\n",
        _ts(t + 5) + b" stdout P still being wri",  # no newline yet: not a record
    ]))
    stamp = [_ts(t + i).decode() for i in range(5)]
    assert read_lines(log, 100) == [(stamp[0], "one"), (stamp[1], "two-a two-b"), (stamp[2], "oops"),
                                    (stamp[4], "three")]
    assert read_lines(log, 1) == [(stamp[4], "three")]
    assert read_lines(log, 0) == []
    assert read_lines(log, 100, after=stamp[1]) == [(stamp[2], "oops"), (stamp[4], "three")]
    assert read_lines(log, 100, after=stamp[4]) == []
    assert read_lines(tmp_path / "missing.log", 10) == []


APP = ("import os, sys, time\n"
       "for i in range(3):\n"
       "    print('app', i, flush=True); time.sleep(0.05)\n"
       "while not os.path.exists(sys.argv[1]): time.sleep(0.05)\n"
       "print('app after go', flush=True)\n"
       "time.sleep(600)\n")
PROXY = ("import time\n"
         "time.sleep(0.02)\n"
         "for i in range(3):\n"
         "    print('[envoy]', i, flush=True); time.sleep(0.05)\n"
         "time.sleep(600)\n")


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = await start_cluster(tmp_path)
    yield c
    await stop_cluster(c)


async def test_workload_logs_from_real_containers(cluster: Cluster, tmp_path: Path) -> None:
    assert DEPLOY is not None
    go = tmp_path / "go"
    labels = {"app": "talker", "version": "v1"}
    cluster.registry.create(DEPLOY, "v1", "default", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "talker"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "app", "image": "x"}]}}}})
    p = pod("talker-1", [{"name": "app", "image": "x", "command": [sys.executable, "-c", APP, str(go)]},
                         {"name": "istio-proxy", "image": "x", "command": [sys.executable, "-c", PROXY]}])
    p["metadata"]["labels"] = labels
    cluster.create(p)
    client: TestClient[Any, Any] = bearer_client(console_app(
        cluster.registry, fake_query, auth=console_auth(tmp_path), logs=cluster.kubelet.read_log_lines))
    await client.start_server()
    url = "/api/namespaces/default/workloads/talker/logs"

    async def get(**params: str) -> list[dict[str, Any]]:
        r = await client.get(url, params=params)
        body = await r.json()
        assert r.status == 200, body
        return list(body["lines"])

    try:
        deadline = time.monotonic() + 20
        lines: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(lines) < 6:
            lines = await get()
            await asyncio.sleep(0.1)
        assert sorted(ln["line"] for ln in lines) == ["[envoy] 0", "[envoy] 1", "[envoy] 2", "app 0", "app 1",
                                                      "app 2"]
        assert [ln["time"] for ln in lines] == sorted(ln["time"] for ln in lines)
        assert {ln["pod"] for ln in lines} == {"talker-1"}
        assert all(ln["proxy"] == (ln["container"] == "istio-proxy") for ln in lines)
        assert [ln["line"] for ln in await get(tailLines="1", container="app")] == ["app 2"]
        assert [ln["line"] for ln in await get(container="istio-proxy")] == ["[envoy] 0", "[envoy] 1", "[envoy] 2"]

        # following: poll with the last line's time; only the new line comes back, once
        last = lines[-1]["time"]
        assert await get(sinceTime=last) == []
        go.touch()
        new = await wait_until_lines(lambda: get(sinceTime=last))
        assert [ln["line"] for ln in new] == ["app after go"]
        assert await get(sinceTime=new[-1]["time"]) == []
    finally:
        await client.close()


async def wait_until_lines(fetch: Any, timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got: list[dict[str, Any]] = await fetch()
        if got:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError("no new log lines")


async def test_console_logs_span_rotated_files(tmp_path: Path) -> None:
    from sluice.runtime import logfiles
    from sluice.runtime.kubelet import KubeletOptions

    c = await start_cluster(tmp_path, KubeletOptions(
        backoff_base=0.3, backoff_max=2.0, drain_seconds=0.2, down_grace_seconds=3,
        log_rotation=logfiles.LogRotation(max_size=2048, max_files=3)))
    script = ("import time\n"
              "for i in range(1, 301):\n"
              "    print('line', i, flush=True); time.sleep(0.01)\n"
              "print('done', flush=True); time.sleep(600)\n")
    assert DEPLOY is not None
    labels = {"app": "rotor", "version": "v1"}
    c.registry.create(DEPLOY, "v1", "default", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "rotor"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "app", "image": "x"}]}}}})
    p = pod("rotor-1", [{"name": "app", "image": "x", "command": [sys.executable, "-c", script]}])
    p["metadata"]["labels"] = labels
    c.create(p)
    client: TestClient[Any, Any] = bearer_client(console_app(
        c.registry, fake_query, auth=console_auth(tmp_path), logs=c.kubelet.read_log_lines))
    await client.start_server()
    try:
        async def lines(tail: int) -> list[str]:
            r = await client.get("/api/namespaces/default/workloads/rotor/logs",
                                 params={"tailLines": str(tail), "container": "app"})
            body = await r.json()
            assert r.status == 200, body
            return [ln["line"] for ln in body["lines"]]

        deadline = time.monotonic() + 30
        got: list[str] = []
        while time.monotonic() < deadline and (not got or got[-1] != "done"):
            got = await lines(5)
            await asyncio.sleep(0.1)
        assert got[-1] == "done"
        cdir = next((tmp_path / "home" / "runtime" / "pods").glob("*/containers/app"))
        files = logfiles.chain(str(cdir / "0.log"))
        assert len(files) >= 2, files  # rotated at least once
        current = len(logfiles.read_whole(files[-1]).splitlines())
        want = current + 20  # more than the current file holds
        assert await lines(want) == [f"line {i}" for i in range(302 - want, 301)] + ["done"]
    finally:
        await client.close()
        await stop_cluster(c)
