"""Outgoing HTTP calls from a Bookinfo service to another one, directly or through the pod's sidecar.

With `HTTP_PROXY` set, aiohttp sends each request to the proxy in absolute form
(`GET http://reviews:9080/reviews/0`), which is how a sidecar routes by service name. Connections are never
reused (`force_close`): the original productpage deliberately does not pool, so that load spreads over a
service's endpoints, and reviews builds a new JAX-RS client per call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

__all__ = ["Upstream", "UpstreamResult"]


@dataclass(frozen=True)
class UpstreamResult:
    """`status` is None when no HTTP response arrived (refused, reset, timed out); `body` is the parsed JSON."""

    status: int | None
    body: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


class Upstream:
    """One service's client for calls to the others; create inside the running loop, close on shutdown."""

    def __init__(self, proxy: str | None) -> None:
        self.proxy = proxy
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, limit=0),
                cookie_jar=aiohttp.DummyCookieJar(),  # forwarded cookies must not leak between users
                auto_decompress=True,
            )
        return self._session

    async def get_json(self, url: str, headers: dict[str, str], timeout: aiohttp.ClientTimeout) -> UpstreamResult:
        """GET `url` and parse a JSON body; every failure becomes a result, never an exception."""
        try:
            async with self._client().get(url, headers=headers, proxy=self.proxy, timeout=timeout,
                                          allow_redirects=False) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, OSError) as e:  # OSError covers TimeoutError
            return UpstreamResult(status=None, error=type(e).__name__)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return UpstreamResult(status=status, error="invalid JSON")
        return UpstreamResult(status=status, body=body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
