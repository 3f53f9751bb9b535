"""The metrics port's application served by its own HTTP server (`sluice.httpserver`) on a free loopback port,
with an aiohttp client session pointed at it: what the tests talk to, as the daemon serves it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from sluice import httpserver


class Client:
    """`get`/`post` take paths on the served port; `port` is that port."""

    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self.session = session
        self.port = port

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.session.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.session.post(path, **kwargs)


@asynccontextmanager
async def served(app: httpserver.App) -> AsyncIterator[Client]:
    server = await httpserver.serve(app, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{server.port}") as session:
            yield Client(session, server.port)
    finally:
        await server.close()
