"""Bookinfo `ratings`: stars per reviewer (the original is ratings.js on node's http module).

`GET /ratings/<id>` → `{"id":<id>,"ratings":{"Reviewer1":5,"Reviewer2":4}}`; `POST /ratings/<id>` stores
ratings in memory. `SERVICE_VERSION` selects the original's test variants: `v-faulty` (half the requests
fail with 503), `v-delayed` (half wait 7 s), `v-unavailable` (503 for alternating minutes), `v-unhealthy`
(unhealthy and unavailable for alternating 15-minute periods) and `v2` (database-backed; with no
database reachable it fails as the original does).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from sluice.samples.bookinfo.serving import run_service

__all__ = ["create_app", "js_parse_int", "main"]

DELAY_SECONDS = 7.0
_JS_INT = re.compile(r"^\s*([+-]?\d+)")


def js_parse_int(text: str) -> int | None:
    """JavaScript's `parseInt(text)` (decimal): leading digits after optional blanks and sign, else NaN (None)."""
    m = _JS_INT.match(text)
    return int(m.group(1)) if m else None


def _json(body: Any, status: int = 200) -> web.Response:
    # JSON.stringify is compact; the original's header is spelt `Content-type`, any client treats it alike.
    return web.Response(text=json.dumps(body, separators=(",", ":")), status=status,
                        content_type="application/json")


class _Toggle:
    """A flag that flips every `period` seconds since start (the original uses setInterval)."""

    def __init__(self, period: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._period = period
        self._clock = clock
        self._start = clock()

    def __call__(self) -> bool:
        return int((self._clock() - self._start) // self._period) % 2 == 1


def create_app(env: Mapping[str, str] | None = None, *, rng: random.Random | None = None) -> web.Application:
    env = os.environ if env is None else env
    version = env.get("SERVICE_VERSION", "v1")
    mysql = env.get("DB_TYPE") == "mysql"
    rng = rng or random.Random()
    stored: dict[int, Any] = {}
    unavailable: Callable[[], bool] = lambda: False  # noqa: E731
    unhealthy: Callable[[], bool] = lambda: False  # noqa: E731
    if version == "v-unavailable":
        unavailable = _Toggle(60.0)
    elif version == "v-unhealthy":
        unavailable = unhealthy = _Toggle(900.0)

    def local_ratings(product_id: int) -> Any:
        if product_id in stored:
            return stored[product_id]
        return {"id": product_id, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}

    def product_id_of(request: web.Request) -> int | None:
        # `req.url.split('/').pop()`: the last segment of the raw URL, query string included.
        return js_parse_int(request.raw_path.split("/")[-1])

    async def health(_request: web.Request) -> web.Response:
        if unhealthy():
            return _json({"status": "Ratings is not healthy"}, status=500)
        return _json({"status": "Ratings is healthy"})

    async def get_ratings(request: web.Request) -> web.Response:
        product_id = product_id_of(request)
        if product_id is None:
            return _json({"error": "please provide numeric product ID"}, status=400)
        if version == "v2":
            # No database runs next to Sluice's ratings; these are the original's answers when it can't connect.
            if mysql:
                return _json({"error": "could not connect to ratings database"})
            return _json({"error": "could not connect to ratings database"}, status=500)
        if version == "v-faulty" and rng.random() <= 0.5:
            return _json({"error": "Service unavailable"}, status=503)
        if version == "v-delayed" and rng.random() <= 0.5:
            await asyncio.sleep(DELAY_SECONDS)
        if unavailable():
            return _json({"error": "Service unavailable"}, status=503)
        return _json(local_ratings(product_id))

    async def post_ratings(request: web.Request) -> web.Response:
        product_id = product_id_of(request)
        if product_id is None:
            return _json({"error": "please provide numeric product ID"}, status=400)
        try:
            ratings = json.loads(await request.text())
        except ValueError:
            return _json({"error": "please provide valid ratings JSON"}, status=400)
        if version == "v2":
            return _json({"error": "Post not implemented for database backed ratings"}, status=501)
        stored[product_id] = {"id": product_id, "ratings": ratings}
        return _json(local_ratings(product_id))

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/ratings/{tail:.*}", get_ratings)
    app.router.add_post("/ratings/{tail:.*}", post_ratings)
    return app


def main() -> None:
    run_service("ratings", create_app)


if __name__ == "__main__":
    main()
