"""details and ratings, seen from outside through aiohttp's test client."""

from __future__ import annotations

import random
from typing import Any

from sluice.samples.bookinfo import details, ratings


async def test_details_health_and_book(make_client: Any) -> None:
    client = await make_client(details.create_app({}))
    resp = await client.get("/health")
    assert resp.status == 200
    assert await resp.text() == '{"status":"Details is healthy"}'
    resp = await client.get("/details/0")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.text() == (
        '{"id":0,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,'
        '"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}'
    )
    assert (await (await client.get("/details/42")).json())["id"] == 42


async def test_details_non_numeric_id(make_client: Any) -> None:
    client = await make_client(details.create_app({}))
    for path in ("/details/abc", "/details", "/details/"):
        resp = await client.get(path)
        assert resp.status == 400, path
        assert await resp.text() == '{"error":"please provide numeric product id"}'
    assert (await client.get("/nothing")).status == 404


async def test_details_v2_external_service_fails_cleanly(make_client: Any) -> None:
    client = await make_client(details.create_app({"ENABLE_EXTERNAL_BOOK_SERVICE": "true"}))
    resp = await client.get("/details/0")
    assert resp.status == 400
    assert "error" in await resp.json()


async def test_ratings_v1(make_client: Any) -> None:
    client = await make_client(ratings.create_app({"SERVICE_VERSION": "v1"}))
    resp = await client.get("/health")
    assert (resp.status, await resp.text()) == (200, '{"status":"Ratings is healthy"}')
    resp = await client.get("/ratings/0")
    assert (resp.status, await resp.text()) == (200, '{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}')
    resp = await client.get("/ratings/abc")
    assert (resp.status, await resp.text()) == (400, '{"error":"please provide numeric product ID"}')
    # parseInt semantics: leading digits count, the query string is part of the last segment.
    assert (await (await client.get("/ratings/7?x=1")).json())["id"] == 7


async def test_ratings_post_stores_in_memory(make_client: Any) -> None:
    client = await make_client(ratings.create_app({}))
    resp = await client.post("/ratings/3", data='{"Reviewer1":1,"Reviewer2":2}')
    assert (resp.status, await resp.text()) == (200, '{"id":3,"ratings":{"Reviewer1":1,"Reviewer2":2}}')
    assert await (await client.get("/ratings/3")).text() == '{"id":3,"ratings":{"Reviewer1":1,"Reviewer2":2}}'
    bad = await client.post("/ratings/3", data="not json")
    assert (bad.status, await bad.text()) == (400, '{"error":"please provide valid ratings JSON"}')


async def test_ratings_faulty_variant_fails_some_requests(make_client: Any) -> None:
    client = await make_client(ratings.create_app({"SERVICE_VERSION": "v-faulty"}, rng=random.Random(1)))
    codes = [(await client.get("/ratings/0")).status for _ in range(40)]
    assert set(codes) == {200, 503}


async def test_ratings_v2_without_database(make_client: Any) -> None:
    client = await make_client(ratings.create_app({"SERVICE_VERSION": "v2"}))
    resp = await client.get("/ratings/0")
    assert (resp.status, await resp.text()) == (500, '{"error":"could not connect to ratings database"}')
    assert (await client.post("/ratings/0", data="{}")).status == 501


def test_js_parse_int() -> None:
    assert ratings.js_parse_int("12abc") == 12
    assert ratings.js_parse_int("-5") == -5
    assert ratings.js_parse_int("") is None
    assert ratings.js_parse_int("x1") is None
