"""productpage: the page for each reviews version, errors, login, headers, the API, metrics and the proxy."""

from __future__ import annotations

import json
from typing import Any

from sluice.samples.bookinfo.details import book_details
from sluice.samples.bookinfo.productpage import PRODUCTS, ProductPageConfig, create_app
from sluice.samples.bookinfo.propagation import b3_headers

REVIEWS_V1 = {"id": "0", "podname": "reviews-v1-aaa", "clustername": "null",
              "reviews": [{"reviewer": "Reviewer1", "text": "one"}, {"reviewer": "Reviewer2", "text": "two"}]}


def reviews_with(color: str) -> dict[str, Any]:
    return {"id": "0", "podname": f"reviews-{color}-pod", "clustername": "null",
            "reviews": [{"reviewer": "Reviewer1", "text": "one", "rating": {"stars": 5, "color": color}},
                        {"reviewer": "Reviewer2", "text": "two", "rating": {"stars": 4, "color": color}}]}


def direct(stand_in: Any) -> ProductPageConfig:
    return ProductPageConfig(details_url=stand_in.url, reviews_url=stand_in.url, ratings_url=stand_in.url)


async def page(client: Any, **kw: Any) -> str:
    resp = await client.get("/productpage", **kw)
    assert resp.status == 200
    text: str = await resp.text()
    return text


async def test_page_v1_has_no_stars(make_client: Any, stand_in: Any) -> None:
    stand_in.answer("/details/", 200, book_details(0))
    stand_in.answer("/reviews/", 200, REVIEWS_V1)
    client = await make_client(create_app(direct(stand_in)))
    html = await page(client)
    assert "<title>Simple Bookstore App</title>" in html
    assert "The Comedy of Errors" in html and "Book Details" in html and "PublisherA" in html
    assert "Book Reviews" in html and "Reviewer1" in html and "Reviewer2" in html
    assert "star-full" not in html and "star-empty" not in html
    assert html.count("Reviews served by: reviews-v1-aaa") == 2
    assert stand_in.paths() == ["/details/0", "/reviews/0"]


async def test_page_v2_black_and_v3_red_stars(make_client: Any, stand_in: Any) -> None:
    stand_in.answer("/details/", 200, book_details(0))
    client = await make_client(create_app(direct(stand_in)))
    for color in ("black", "red"):
        stand_in.answer("/reviews/", 200, reviews_with(color))
        html = await page(client)
        # 5 + 4 filled, 0 + 1 outline, all in the rating's colour.
        assert html.count('class="star star-full') == 9
        assert html.count('class="star star-empty') == 1
        assert html.count(f'data-color="{color}"') == 2
        assert f"Reviews served by: reviews-{color}-pod" in html


async def test_rating_error_text(make_client: Any, stand_in: Any) -> None:
    stand_in.answer("/details/", 200, book_details(0))
    body = dict(REVIEWS_V1, reviews=[{"reviewer": "Reviewer1", "text": "x",
                                      "rating": {"error": "Ratings service is currently unavailable"}}])
    stand_in.answer("/reviews/", 200, body)
    client = await make_client(create_app(direct(stand_in)))
    assert "Ratings service is currently unavailable" in await page(client)


async def test_errors_when_details_and_reviews_fail(make_client: Any, stand_in: Any) -> None:
    stand_in.answer("/details/", 503, {"error": "no"})
    stand_in.answer("/reviews/", 500, "boom")
    client = await make_client(create_app(direct(stand_in)))
    html = await page(client)
    assert "Error fetching product details" in html
    assert "Sorry, product details are currently unavailable for this book." in html
    assert "Error fetching product reviews" in html
    assert "Sorry, product reviews are currently unavailable for this book." in html
    # reviews is tried twice, details once.
    assert stand_in.paths() == ["/details/0", "/reviews/0", "/reviews/0"]
    metrics = await (await client.get("/metrics")).text()
    assert 'request_result_total{destination_app="details",response_code="503"} 1.0' in metrics
    assert 'request_result_total{destination_app="reviews",response_code="500"} 1.0' in metrics


async def test_unreachable_upstreams(make_client: Any) -> None:
    cfg = ProductPageConfig(details_url="http://127.0.0.1:1", reviews_url="http://127.0.0.1:1")
    client = await make_client(create_app(cfg))
    html = await page(client)
    assert "Error fetching product details" in html and "Error fetching product reviews" in html
    resp = await client.get("/api/v1/products/0")
    assert resp.status == 500
    assert await resp.json() == {"error": "Sorry, product details are currently unavailable for this book."}


async def test_login_sets_end_user_and_logout_clears_it(make_client: Any, stand_in: Any) -> None:
    stand_in.answer("/details/", 200, book_details(0))
    stand_in.answer("/reviews/", 200, REVIEWS_V1)
    client = await make_client(create_app(direct(stand_in)))
    resp = await client.post("/login", data={"username": "jason", "passwd": "x"},
                             headers={"Referer": "/productpage"}, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/productpage"
    html = await page(client)
    assert "jason" in html and "Sign out" in html
    assert [r.headers.get("end-user") for r in stand_in.requests] == ["jason", "jason"]
    resp = await client.get("/logout", headers={"Referer": "/productpage"}, allow_redirects=False)
    assert resp.status == 302
    stand_in.requests.clear()
    html = await page(client)
    assert "Sign in" in html
    assert all("end-user" not in r.headers for r in stand_in.requests)


async def test_forged_session_is_ignored(make_client: Any, stand_in: Any) -> None:
    stand_in.answer("/details/", 200, book_details(0))
    stand_in.answer("/reviews/", 200, REVIEWS_V1)
    client = await make_client(create_app(direct(stand_in)))
    await page(client, headers={"Cookie": "session=eyJ1c2VyIjoiamFzb24ifQ.forged"})
    assert all("end-user" not in r.headers for r in stand_in.requests)


async def test_header_propagation(make_client: Any, stand_in: Any) -> None:
    stand_in.answer("/reviews/", 200, REVIEWS_V1)
    client = await make_client(create_app(direct(stand_in)))
    incoming = {
        "x-request-id": "34eeb41d-d267-9e49-8b84-dde403fc5b72",
        "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7",
        "x-b3-spanid": "e457b5a2e4d86bd1",
        "x-b3-sampled": "1",
        "sw8": "40c7fdf104e3de67",
        "traceparent": "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01",
        "user-agent": "tester/1.0",
        "authorization": "Bearer t",
        "x-something-else": "not forwarded",
    }
    resp = await client.get("/api/v1/products/0/reviews", headers=incoming)
    assert resp.status == 200
    got = stand_in.requests[0].headers
    for name in ("x-request-id", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "sw8", "traceparent",
                 "user-agent", "authorization"):
        assert got.get(name) == incoming[name], name
    assert "x-something-else" not in got


def test_b3_reencoding() -> None:
    assert b3_headers({"x-b3-traceid": "463ac35c9f6413ad", "x-b3-spanid": "a2fb4a1d1a96d312"}) == {
        "x-b3-traceid": "0000000000000000463ac35c9f6413ad", "x-b3-spanid": "a2fb4a1d1a96d312",
        "x-b3-sampled": "0"}
    assert b3_headers({"x-b3-traceid": "zz", "x-b3-spanid": "a2fb4a1d1a96d312"}) == {}
    assert b3_headers({}) == {}
    assert b3_headers({"b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"})["x-b3-sampled"] == "1"


async def test_api_and_static_routes(make_client: Any, stand_in: Any) -> None:
    stand_in.answer("/details/", 200, book_details(0))
    stand_in.answer("/ratings/", 200, {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}})
    client = await make_client(create_app(direct(stand_in)))
    resp = await client.get("/api/v1/products")
    assert await resp.text() == json.dumps(PRODUCTS)
    assert (await resp.json())[0]["title"] == "The Comedy of Errors"
    resp = await client.get("/api/v1/products/0")
    assert resp.status == 200
    assert await resp.text() == json.dumps(book_details(0))
    assert await (await client.get("/api/v1/products/0/ratings")).json() == {
        "id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}
    resp = await client.get("/health")
    assert (resp.status, await resp.text()) == (200, "Product page is healthy")
    index = await (await client.get("/")).text()
    assert "simple bookstore application consisting of three services" in index
    assert "/productpage?u=normal" in index
    assert (await client.get("/index.html")).status == 200


async def test_page_loads_nothing_external(make_client: Any, stand_in: Any) -> None:
    stand_in.answer("/details/", 200, book_details(0))
    stand_in.answer("/reviews/", 200, reviews_with("red"))
    client = await make_client(create_app(direct(stand_in)))
    html = await page(client)
    assert "<link" not in html and " src=" not in html and "@import" not in html and "url(" not in html


async def test_calls_go_through_http_proxy_in_absolute_form(make_client: Any, stand_in: Any) -> None:
    stand_in.answer("/details/", 200, book_details(0))
    stand_in.answer("/reviews/", 200, REVIEWS_V1)
    cfg = ProductPageConfig.from_env({"HTTP_PROXY": stand_in.url})
    client = await make_client(create_app(cfg))
    await page(client)
    assert [r.target for r in stand_in.requests] == [
        "http://details:9080/details/0", "http://reviews:9080/reviews/0"]
    # Not pooled: every call opens its own connection.
    assert all(r.headers.get("connection") == "close" for r in stand_in.requests)


def test_config_from_env() -> None:
    cfg = ProductPageConfig.from_env({"DETAILS_HOSTNAME": "d", "DETAILS_SERVICE_PORT": "1", "REVIEWS_HOSTNAME": "r",
                                      "SERVICES_DOMAIN": "tutorial.svc.cluster.local"})
    assert cfg.details_url == "http://d.tutorial.svc.cluster.local:1"
    assert cfg.reviews_url == "http://r.tutorial.svc.cluster.local:9080"
    assert cfg.ratings_url == "http://ratings.tutorial.svc.cluster.local:9080"
    assert cfg.proxy is None
