"""Bookinfo `productpage`: the web page that calls details and reviews (the original is Flask + gunicorn).

Routes: `/` and `/index.html`, `/health`, `POST /login`, `GET /logout`, `/productpage`, `/api/v1/products`,
`/api/v1/products/<id>` (details), `…/<id>/reviews`, `…/<id>/ratings`, `/metrics`. Calls time out after
3 s; reviews is tried twice (the original keeps this "bug" for the fault-injection task). Outgoing calls
carry the propagated headers, the B3 headers re-encoded, and `end-user: <user>` once someone signed in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from sluice.samples.bookinfo.env import proxy_from_env, service_url
from sluice.samples.bookinfo.metrics import RequestResults
from sluice.samples.bookinfo.page import render_index, render_product_page
from sluice.samples.bookinfo.propagation import PRODUCTPAGE_COPIED, b3_headers, copy_headers
from sluice.samples.bookinfo.serving import run_service
from sluice.samples.bookinfo.session import COOKIE_NAME, decode_session, encode_session
from sluice.samples.bookinfo.upstream import Upstream, UpstreamResult

__all__ = ["ProductPageConfig", "PRODUCTS", "REQUEST_RESULTS", "create_app", "forward_headers", "main"]

REQUEST_RESULTS = web.AppKey("request_results", RequestResults)
UPSTREAM_TIMEOUT = 3.0
REVIEWS_ATTEMPTS = 2
DETAILS_ERROR = "Sorry, product details are currently unavailable for this book."
REVIEWS_ERROR = "Sorry, product reviews are currently unavailable for this book."
RATINGS_ERROR = "Sorry, product ratings are currently unavailable for this book."

PRODUCTS: list[dict[str, Any]] = [
    {
        "id": 0,
        "title": "The Comedy of Errors",
        "descriptionHtml": '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: '
                           "The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his "
                           "shortest and one of his most farcical comedies, with a major part of the humour "
                           "coming from slapstick and mistaken identity, in addition to puns and word play.",
    }
]


@dataclass(frozen=True)
class ProductPageConfig:
    details_url: str = "http://details:9080"
    reviews_url: str = "http://reviews:9080"
    ratings_url: str = "http://ratings:9080"
    proxy: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProductPageConfig:
        env = os.environ if env is None else env
        return cls(details_url=service_url("details", env), reviews_url=service_url("reviews", env),
                   ratings_url=service_url("ratings", env), proxy=proxy_from_env(env))

    def service_tree(self) -> dict[str, Any]:
        """The landing page's table; like the original, its root is named after details."""
        details = {"name": self.details_url, "endpoint": "details", "children": []}
        ratings = {"name": self.ratings_url, "endpoint": "ratings", "children": []}
        reviews = {"name": self.reviews_url, "endpoint": "reviews", "children": [ratings]}
        return {"name": self.details_url, "endpoint": "details", "children": [details, reviews]}


def forward_headers(request: web.Request, user: str | None) -> dict[str, str]:
    """The headers productpage puts on its calls (the original's getForwardHeaders)."""
    headers = b3_headers(request.headers)
    if user is not None:
        headers["end-user"] = user
    headers.update(copy_headers(request.headers, PRODUCTPAGE_COPIED))
    return headers


def _json_response(body: Any, status: int) -> web.Response:
    # simplejson.dumps with default separators, like the original.
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


def create_app(config: ProductPageConfig | None = None) -> web.Application:
    cfg = config or ProductPageConfig.from_env()
    upstream = Upstream(cfg.proxy)
    results = RequestResults()
    timeout = aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT)

    def status_of(result: UpstreamResult) -> int:
        # No response, or a 200 whose body is not JSON (the original's res.json() would raise): 500.
        return result.status if result.status and result.status != 200 else 500

    async def fetch(app_name: str, url: str, headers: dict[str, str], error: str,
                    attempts: int = 1) -> tuple[int, Any]:
        result = UpstreamResult(status=None)
        for _ in range(attempts):
            result = await upstream.get_json(url, headers, timeout)
            if result.ok:
                results.inc(app_name, 200)
                return 200, result.body
        results.inc(app_name, status_of(result))
        return status_of(result), {"error": error}

    async def details(product_id: str, headers: dict[str, str]) -> tuple[int, Any]:
        return await fetch("details", f"{cfg.details_url}/details/{product_id}", headers, DETAILS_ERROR)

    async def reviews(product_id: str, headers: dict[str, str]) -> tuple[int, Any]:
        return await fetch("reviews", f"{cfg.reviews_url}/reviews/{product_id}", headers, REVIEWS_ERROR,
                           attempts=REVIEWS_ATTEMPTS)

    async def ratings(product_id: str, headers: dict[str, str]) -> tuple[int, Any]:
        return await fetch("ratings", f"{cfg.ratings_url}/ratings/{product_id}", headers, RATINGS_ERROR)

    def user_of(request: web.Request) -> str | None:
        return decode_session(request.cookies.get(COOKIE_NAME))

    async def index(_request: web.Request) -> web.Response:
        return web.Response(text=render_index(cfg.service_tree()), content_type="text/html")

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="Product page is healthy", content_type="text/html")

    def back(request: web.Request) -> web.Response:
        # Flask's redirect(request.referrer); with no Referer, the product page is the sensible place.
        return web.Response(status=302, headers={"Location": request.headers.get("Referer") or "/productpage"})

    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        user = form.get("username") or request.query.get("username")
        response = back(request)
        if isinstance(user, str) and user:
            response.set_cookie(COOKIE_NAME, encode_session(user), httponly=True, path="/")
        return response

    async def logout(request: web.Request) -> web.Response:
        response = back(request)
        response.del_cookie(COOKIE_NAME, path="/")
        return response

    async def product_page(request: web.Request) -> web.Response:
        product_id = 0
        user = user_of(request)
        headers = forward_headers(request, user)
        details_status, details_body = await details(str(product_id), headers)
        reviews_status, reviews_body = await reviews(str(product_id), headers)
        html = render_product_page(PRODUCTS[product_id], details_status, details_body, reviews_status,
                                   reviews_body, user or "")
        return web.Response(text=html, content_type="text/html")

    async def products(_request: web.Request) -> web.Response:
        return _json_response(PRODUCTS, 200)

    async def product(request: web.Request) -> web.Response:
        status, body = await details(request.match_info["id"], forward_headers(request, user_of(request)))
        return _json_response(body, status)

    async def product_reviews(request: web.Request) -> web.Response:
        status, body = await reviews(request.match_info["id"], forward_headers(request, user_of(request)))
        return _json_response(body, status)

    async def product_ratings(request: web.Request) -> web.Response:
        status, body = await ratings(request.match_info["id"], forward_headers(request, user_of(request)))
        return _json_response(body, status)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text=results.exposition(), content_type="text/plain",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def close(_app: web.Application) -> None:
        await upstream.close()

    app = web.Application()
    app[REQUEST_RESULTS] = results
    r = app.router
    r.add_get("/", index)
    r.add_get("/index.html", index)
    r.add_get("/health", health)
    r.add_post("/login", login)
    r.add_get("/logout", logout)
    r.add_get("/productpage", product_page)
    r.add_get("/api/v1/products", products)
    r.add_get("/api/v1/products/{id}", product)
    r.add_get("/api/v1/products/{id}/reviews", product_reviews)
    r.add_get("/api/v1/products/{id}/ratings", product_ratings)
    r.add_get("/metrics", metrics)
    app.on_cleanup.append(close)
    return app


def main() -> None:
    run_service("productpage", create_app)


if __name__ == "__main__":
    main()
