"""A console credential for tests that are about something else: the kubeconfig-style bearer token, sent on every
request of a test client. (The access rules themselves are tested in test_auth.py and
tests/integration/test_hostile_console.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sluice.console.auth import ConsoleAuth

API_TOKEN = "console-test-api-token"
BEARER = {"Authorization": f"Bearer {API_TOKEN}"}


def console_auth(home: Path, port: int = 0) -> ConsoleAuth:
    """Secrets under `home/console/`, as the daemon keeps them under SLUICE_HOME."""
    return ConsoleAuth.for_home(home, API_TOKEN, port)


def bearer_client(app: web.Application) -> TestClient[Any, Any]:
    return TestClient(TestServer(app), headers=BEARER)
