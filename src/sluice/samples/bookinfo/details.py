"""Bookinfo `details`: the book's metadata (the original is details.rb on WEBrick).

`GET /details/<id>` answers the fixed record for any numeric id; anything else under `/details` is a 400
with `{"error":"please provide numeric product id"}`. Bodies are compact JSON, as Ruby's `to_json` writes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from sluice.samples.bookinfo.serving import run_service

__all__ = ["create_app", "book_details", "main"]

EXTERNAL_SERVICE_ERROR = "external book service (www.googleapis.com) is not reachable from Sluice"


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def book_details(product_id: int) -> dict[str, Any]:
    """The record details v1 serves for every book (key order as the original's hash)."""
    return {
        "id": product_id,
        "author": "William Shakespeare",
        "year": 1595,
        "type": "paperback",
        "pages": 200,
        "publisher": "PublisherA",
        "language": "English",
        "ISBN-10": "1234567890",
        "ISBN-13": "123-1234567890",
    }


def _ruby_integer(text: str) -> int | None:
    """Ruby's `Integer(str)` for the decimal case (surrounding blanks and `_` separators allowed)."""
    t = text.strip()
    if not t:
        return None
    try:
        return int(t, 10)
    except ValueError:
        return None


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=_compact(body), status=status, content_type="application/json")


def create_app(env: Mapping[str, str] | None = None) -> web.Application:
    env = os.environ if env is None else env
    external = env.get("ENABLE_EXTERNAL_BOOK_SERVICE") == "true"

    async def health(_request: web.Request) -> web.Response:
        return _json({"status": "Details is healthy"})

    async def details(request: web.Request) -> web.Response:
        # WEBrick's mount_proc: the id is the last path segment, whatever comes before it.
        segments = request.path.split("/")
        product_id = _ruby_integer(segments[-1])
        if product_id is None:
            return _json({"error": "please provide numeric product id"}, status=400)
        if external:
            # details v2 asks Google Books; Sluice never reaches the internet, and the original answers
            # a failed external call with a 400 carrying the error message.
            return _json({"error": EXTERNAL_SERVICE_ERROR}, status=400)
        return _json(book_details(product_id))

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_route("*", "/details", details)
    app.router.add_route("*", "/details/{tail:.*}", details)
    return app


def main() -> None:
    run_service("details", create_app)


if __name__ == "__main__":
    main()
