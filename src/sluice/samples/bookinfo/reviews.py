"""Bookinfo `reviews`: two reviews, with stars from `ratings` in v2 (black) and v3 (red).

The original (LibertyRestEndpoint.java) builds its JSON by string concatenation, so the body is rebuilt
here byte for byte, odd spacing and `"clustername": "null"` included. With `ENABLE_RATINGS=true` it calls
`ratings` with the propagated headers and a timeout of 10 s for black stars, 2.5 s otherwise; a failed call
gives each review `"rating": {"error": "Ratings service is currently unavailable"}` and the answer stays 200.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from sluice.samples.bookinfo.env import pod_name, proxy_from_env, service_url
from sluice.samples.bookinfo.propagation import PROPAGATED, copy_headers
from sluice.samples.bookinfo.serving import run_service
from sluice.samples.bookinfo.upstream import Upstream

__all__ = ["ReviewsConfig", "create_app", "render_reviews", "main"]

REVIEWS = (
    ("Reviewer1", "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"),
    ("Reviewer2", "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by "
                  "Shakespeare."),
)
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"
_JAVA_INT = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class ReviewsConfig:
    ratings_enabled: bool = False
    star_color: str = "black"
    pod_name: str = "reviews"
    cluster_name: str | None = None
    ratings_url: str = "http://ratings:9080/ratings"
    proxy: str | None = None

    @property
    def ratings_timeout(self) -> float:
        # The original keys the timeout on the colour, not the version: black (v2) 10 s, else (v3) 2.5 s.
        return 10.0 if self.star_color == "black" else 2.5

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReviewsConfig:
        env = os.environ if env is None else env
        return cls(
            ratings_enabled=env.get("ENABLE_RATINGS", "").lower() == "true",  # Java's Boolean.valueOf
            star_color=env.get("STAR_COLOR") or "black",
            pod_name=pod_name(env),
            cluster_name=env.get("CLUSTER_NAME"),
            ratings_url=service_url("ratings", env) + "/ratings",
            proxy=proxy_from_env(env),
        )


def _java_str(value: str | None) -> str:
    return "null" if value is None else value


def render_reviews(product_id: str, config: ReviewsConfig, stars: tuple[int, int] | None) -> str:
    """The original's response body; `stars` is None when ratings are disabled, (-1, -1) when unavailable."""
    parts = [
        "{",
        f'"id": "{product_id}",',
        f'"podname": "{_java_str(config.pod_name)}",',
        f'"clustername": "{_java_str(config.cluster_name)}",',
        '"reviews": [',
    ]
    for i, (reviewer, text) in enumerate(REVIEWS):
        parts.append("{")
        parts.append(f'  "reviewer": "{reviewer}",')
        parts.append(f'  "text": "{text}"')
        if config.ratings_enabled:
            n = stars[i] if stars is not None else -1
            if n != -1:
                parts.append(f', "rating": {{"stars": {n}, "color": "{config.star_color}"}}')
            else:
                parts.append(f', "rating": {{"error": "{RATINGS_UNAVAILABLE}"}}')
        parts.append("}," if i + 1 < len(REVIEWS) else "}")
    parts.append("]")
    parts.append("}")
    return "".join(parts)


def _stars_from(body: Any) -> tuple[int, int]:
    """Stars per reviewer from a ratings body; -1 where a reviewer is missing, as the original."""
    ratings = body.get("ratings") if isinstance(body, dict) else None
    if not isinstance(ratings, dict):
        return (-1, -1)

    def star(name: str) -> int:
        value = ratings.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else -1

    return (star(REVIEWS[0][0]), star(REVIEWS[1][0]))


def create_app(config: ReviewsConfig | None = None) -> web.Application:
    cfg = config or ReviewsConfig.from_env()
    upstream = Upstream(cfg.proxy)
    timeout = aiohttp.ClientTimeout(total=None, connect=cfg.ratings_timeout, sock_read=cfg.ratings_timeout)

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text='{"status": "Reviews is healthy"}', content_type="application/json")

    async def reviews(request: web.Request) -> web.Response:
        raw = request.match_info["product_id"]
        # JAX-RS converts the path parameter to an int; a value that does not convert is a 404.
        if not _JAVA_INT.match(raw) or not -(2**31) <= int(raw) < 2**31:
            raise web.HTTPNotFound()
        product_id = str(int(raw))
        stars: tuple[int, int] | None = None
        if cfg.ratings_enabled:
            headers = copy_headers(request.headers, PROPAGATED)
            headers["Accept"] = "application/json"
            result = await upstream.get_json(f"{cfg.ratings_url}/{product_id}", headers, timeout)
            stars = _stars_from(result.body) if result.ok else (-1, -1)
        return web.Response(text=render_reviews(product_id, cfg, stars), content_type="application/json")

    async def close(_app: web.Application) -> None:
        await upstream.close()

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/reviews/{product_id}", reviews)
    app.on_cleanup.append(close)
    return app


def main() -> None:
    run_service("reviews", create_app)


if __name__ == "__main__":
    main()
