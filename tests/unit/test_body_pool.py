"""The body worker pool on its own (`sluice.api.body_pool`): real worker processes, no daemon."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest
import yaml

from sluice.api.body_pool import BodyPool
from sluice.api.errors import ApiError

VS = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "r"},
      "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _slow_body() -> bytes:
    """YAML that takes the worker well over a second to compose (thousands of nodes per KiB)."""
    doc = {"spec": {"http": [{"match": [{"uri": {"prefix": f"/p/{i}"}}], "route": [{"destination": {"host": "d"}}]}
                             for i in range(20000)]}}
    return yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)).encode()


async def test_decodes_in_a_worker_and_stops_it_on_close() -> None:
    pool = BodyPool(size=1)
    head, (data,) = await pool.run({"op": "decode", "content_type": "application/yaml", "kind": "VirtualService"},
                                   [yaml.safe_dump(VS).encode()])
    assert head["ok"] and json.loads(data) == VS
    (pid,) = pool.pids()
    assert pid != os.getpid() and _alive(pid)
    await pool.close()
    assert not _alive(pid) and pool.pids() == []
    with pytest.raises(ApiError) as e:
        await pool.run({"op": "decode", "content_type": "application/json", "kind": "VirtualService"}, [b"{}"])
    assert e.value.code == 503


async def test_a_bad_body_is_the_status_the_loop_would_answer() -> None:
    pool = BodyPool(size=1)
    try:
        with pytest.raises(ApiError) as e:
            await pool.run({"op": "decode", "content_type": "application/json", "kind": "VirtualService"},
                           [b"[" * 5000 + b"]" * 5000])
        assert e.value.code == 400
        assert e.value.message == ("the object provided is unrecognized (must be of type VirtualService): "
                                   "json: exceeded max depth of 100")
    finally:
        await pool.close()


async def test_a_job_past_the_time_limit_is_killed_and_answered_504() -> None:
    pool = BodyPool(size=1, time_limit=0.3)
    try:
        with pytest.raises(ApiError) as e:
            await pool.run({"op": "decode", "content_type": "application/yaml", "kind": "VirtualService"},
                           [_slow_body()])
        assert e.value.code == 504 and e.value.reason == "Timeout"
        assert e.value.message == ("Timeout: request did not complete within requested timeout - "
                                   "context deadline exceeded")
        assert pool.pids() == [], "the worker was killed"
        pool.time_limit = 60
        head, _ = await pool.run({"op": "decode", "content_type": "application/json", "kind": "VirtualService"},
                                 [json.dumps(VS).encode()])
        assert head["ok"], "a fresh worker takes the next job"
    finally:
        await pool.close()


async def test_past_the_backlog_a_job_is_refused_with_429() -> None:
    pool = BodyPool(size=1, backlog=0)
    try:
        slow = asyncio.ensure_future(pool.run({"op": "decode", "content_type": "application/yaml", "kind": "x"},
                                              [_slow_body()]))
        await asyncio.sleep(0)  # it holds the one slot now
        with pytest.raises(ApiError) as e:
            await pool.run({"op": "decode", "content_type": "application/json", "kind": "x"}, [b"{}"])
        assert e.value.code == 429 and e.value.details == {"retryAfterSeconds": 1}
        assert (await slow)[0]["ok"]
    finally:
        await pool.close()


async def test_a_worker_that_died_idle_is_replaced_before_the_next_job() -> None:
    pool = BodyPool(size=1)
    job = {"op": "decode", "content_type": "application/json", "kind": "VirtualService"}
    try:
        await pool.run(job, [json.dumps(VS).encode()])
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGKILL)
        head, (data,) = await pool.run(job, [json.dumps(VS).encode()])  # at once: the pool may not know yet
        assert head["ok"] and json.loads(data) == VS
        assert pid not in pool.pids()
    finally:
        await pool.close()
