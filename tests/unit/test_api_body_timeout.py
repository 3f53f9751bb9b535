"""A request body that trickles in is cut off with kube-apiserver's timeout Status (the header deadline no longer
covers a request whose headers arrived)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from sluice.api import server
from sluice.api.registry import Registry
from sluice.resources.kinds import by_kind
from sluice.store.sqlite import Store

TOKEN = "t0k3n"


async def test_stalled_body_gets_504(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "BODY_TIMEOUT", 0.3)
    reg = Registry(Store(tmp_path / "db"))
    reg.ensure_namespace("default")
    ts = TestServer(server.make_app(reg, TOKEN))
    await ts.start_server()
    try:
        reader, writer = await asyncio.open_connection(ts.host, ts.port)
        writer.write(b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"kind\":")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 504"), head
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        status = json.loads(await reader.readexactly(length))
        assert status["reason"] == "Timeout" and status["code"] == 504
        writer.close()
        await writer.wait_closed()
        configmaps = by_kind("", "ConfigMap")
        assert configmaps is not None and reg.list_objects(configmaps, "v1", "default")[0] == []
    finally:
        await ts.close()
