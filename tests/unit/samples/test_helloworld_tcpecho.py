"""helloworld's reply and tcp-echo's prefixed echo, as Istio's samples answer."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sluice.samples import helloworld, tcpecho


async def test_hello_names_version_and_instance(make_client: Any) -> None:
    client = await make_client(helloworld.create_app({"SERVICE_VERSION": "v2", "HOSTNAME": "helloworld-v2-7d8f"}))
    resp = await client.get("/hello")
    assert resp.status == 200
    assert await resp.text() == "Hello version: v2, instance: helloworld-v2-7d8f\n"
    assert await (await client.get("/health")).text() == "Helloworld is healthy"
    assert (await client.get("/other")).status == 404


async def test_tcp_echo_prefixes_every_line(capsys: Any) -> None:
    server = await asyncio.start_server(lambda r, w: tcpecho.handle("one", r, w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello\nworld\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), 5) == b"one hello\n"
        assert await asyncio.wait_for(reader.readline(), 5) == b"one world\n"
        writer.write(b"partial")  # no newline: nothing comes back, the connection ends at EOF
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()
    assert "request: hello\nresponse: one hello\n" in capsys.readouterr().out


def test_tcp_echo_usage(capsys: Any) -> None:
    assert tcpecho.main(["9000"]) == 1
    assert "you should run it like: 'main [PORTS...] prefix'" in capsys.readouterr().out
    assert tcpecho.main(["9000,x", "one"]) == 1
    assert "invalid port" in capsys.readouterr().out
