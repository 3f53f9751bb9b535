"""Fixtures for the Bookinfo unit tests: aiohttp test clients and a recording stand-in upstream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer


@dataclass
class Recorded:
    method: str
    target: str  # the request target as sent: origin form, or absolute form through a proxy
    path: str
    headers: dict[str, str]


@dataclass
class StandIn:
    """A fake upstream: answers by path prefix and records every request."""

    server: TestServer
    requests: list[Recorded] = field(default_factory=list)
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def answer(self, prefix: str, status: int, body: Any) -> None:
        self.answers[prefix] = (status, body)

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


@pytest.fixture
async def stand_in() -> AsyncIterator[StandIn]:
    holder: list[StandIn] = []

    async def handler(request: web.Request) -> web.Response:
        me = holder[0]
        me.requests.append(Recorded(request.method, request.raw_path, request.path,
                                    {k.lower(): v for k, v in request.headers.items()}))
        for prefix, (status, body) in sorted(me.answers.items(), key=lambda kv: -len(kv[0])):
            if request.path.startswith(prefix):
                text = body if isinstance(body, str) else json.dumps(body)
                return web.Response(status=status, text=text, content_type="application/json")
        return web.Response(status=404, text="no answer configured")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    holder.append(StandIn(server))
    yield holder[0]
    await server.close()


ClientFactory = Callable[[web.Application], Any]


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[[web.Application], Any]]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def make(app: web.Application) -> TestClient[web.Request, web.Application]:
        client: TestClient[web.Request, web.Application] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()
