"""Fixtures for the console tests: the `mesh` namespace (tests/unit/console/mesh.py) and console apps over it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from tests.unit.console.access import bearer_client, console_auth
from tests.unit.console.fixtures import fake_query
from tests.unit.console.mesh import Client, populate

from sluice.api.registry import Registry
from sluice.console.api import console_app
from sluice.store.sqlite import Store

MakeClient = Callable[..., Any]


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    reg = Registry(Store(tmp_path / "db"))
    populate(reg)
    return reg


@pytest.fixture
async def make_client(registry: Registry, tmp_path: Path) -> AsyncIterator[MakeClient]:
    """`await make_client(**console_app keywords)` → a started test client over `registry`."""
    clients: list[Client] = []

    async def make(**kw: Any) -> Client:
        kw.setdefault("auth", console_auth(tmp_path))
        app: web.Application = console_app(registry, kw.pop("query", fake_query), **kw)
        c: Client = bearer_client(app)
        await c.start_server()
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()


@pytest.fixture
async def mesh(make_client: MakeClient) -> Client:
    c: Client = await make_client()
    return c
