"""The body worker pool on its own (`sluice.api.body_pool`): real worker processes, no daemon."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

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


def _without_server_fields(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in obj["metadata"].items() if k not in ("uid", "creationTimestamp", "resourceVersion")}
    return {**obj, "metadata": meta}


async def test_plain_writes_store_and_answer_as_the_loop_does(tmp_path: Path) -> None:
    """`plain` (the console's): the admitted object comes back as it is and is stored in its own key order, as
    `create` and `replace` on the loop store it."""
    from sluice.api.registry import Registry
    from sluice.resources.kinds import by_kind
    from sluice.store.sqlite import Store

    rt = by_kind("networking.istio.io", "VirtualService")
    assert rt is not None
    reg = Registry(Store(tmp_path / "db"))
    reg.ensure_namespace("default")
    pool = BodyPool(size=1)
    try:
        on_loop = reg.create(rt, "v1", "default", {**VS, "metadata": {"name": "loop"}})
        res = await reg.create_in_worker(pool, rt, "v1", "default",
                                         json.dumps({**VS, "metadata": {"name": "worker"}}).encode(),
                                         "application/json", plain=True)
        assert res.encoded is None and pool.pids()
        stored = reg.get(rt, "v1", "default", "worker")
        assert res.object == stored
        assert list(stored) == list(on_loop.object) and list(stored["metadata"]) == list(on_loop.object["metadata"])
        assert _without_server_fields(stored) == {**_without_server_fields(on_loop.object),
                                                  "metadata": {**_without_server_fields(on_loop.object)["metadata"],
                                                               "name": "worker"}}

        changed = {**stored, "spec": {**stored["spec"], "hosts": ["ratings"]}}
        res = await reg.replace_in_worker(pool, rt, "v1", "default", "worker", json.dumps(changed).encode(),
                                          "application/json", plain=True)
        assert res.encoded is None and res.object == reg.get(rt, "v1", "default", "worker")
        assert res.object["spec"]["hosts"] == ["ratings"] and res.object["metadata"]["generation"] == 2
        assert list(res.object["metadata"]) == list(stored["metadata"])
        with pytest.raises(ApiError) as e:  # the old resourceVersion: Conflict, as on the loop
            await reg.replace_in_worker(pool, rt, "v1", "default", "worker", json.dumps(stored).encode(),
                                        "application/json", plain=True)
        assert e.value.code == 409
    finally:
        await pool.close()
