"""reviews: the byte-exact JSON of each version, the ratings call, headers and failure handling."""

from __future__ import annotations

from typing import Any

from sluice.samples.bookinfo.propagation import PROPAGATED
from sluice.samples.bookinfo.reviews import ReviewsConfig, create_app

R1 = "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"
R2 = "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."


def config(stand_in: Any, *, ratings: bool, color: str = "black") -> ReviewsConfig:
    return ReviewsConfig(ratings_enabled=ratings, star_color=color, pod_name="reviews-v2-abc",
                         ratings_url=stand_in.url + "/ratings")


async def test_v1_has_no_ratings_and_never_calls_ratings(make_client: Any, stand_in: Any) -> None:
    client = await make_client(create_app(config(stand_in, ratings=False)))
    resp = await client.get("/reviews/0")
    assert resp.status == 200
    assert await resp.text() == (
        '{"id": "0","podname": "reviews-v2-abc","clustername": "null","reviews": ['
        f'{{  "reviewer": "Reviewer1",  "text": "{R1}"}},{{  "reviewer": "Reviewer2",  "text": "{R2}"}}]}}'
    )
    assert stand_in.requests == []


async def test_v2_black_stars_from_ratings(make_client: Any, stand_in: Any) -> None:
    stand_in.answer("/ratings/0", 200, {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}})
    client = await make_client(create_app(config(stand_in, ratings=True)))
    text = await (await client.get("/reviews/0")).text()
    assert text == (
        '{"id": "0","podname": "reviews-v2-abc","clustername": "null","reviews": ['
        f'{{  "reviewer": "Reviewer1",  "text": "{R1}", "rating": {{"stars": 5, "color": "black"}}}},'
        f'{{  "reviewer": "Reviewer2",  "text": "{R2}", "rating": {{"stars": 4, "color": "black"}}}}]}}'
    )
    assert stand_in.paths() == ["/ratings/0"]


async def test_v3_red_stars(make_client: Any, stand_in: Any) -> None:
    stand_in.answer("/ratings/", 200, {"id": 1, "ratings": {"Reviewer1": 3, "Reviewer2": 1}})
    client = await make_client(create_app(config(stand_in, ratings=True, color="red")))
    body = await (await client.get("/reviews/1")).json()
    assert [r["rating"] for r in body["reviews"]] == [{"stars": 3, "color": "red"}, {"stars": 1, "color": "red"}]


async def test_ratings_failure_gives_error_ratings_and_still_200(make_client: Any, stand_in: Any) -> None:
    stand_in.answer("/ratings/", 503, {"error": "Service unavailable"})
    client = await make_client(create_app(config(stand_in, ratings=True)))
    resp = await client.get("/reviews/0")
    assert resp.status == 200
    body = await resp.json()
    assert [r["rating"] for r in body["reviews"]] == [{"error": "Ratings service is currently unavailable"}] * 2


async def test_ratings_unreachable(make_client: Any) -> None:
    cfg = ReviewsConfig(ratings_enabled=True, ratings_url="http://127.0.0.1:1/ratings")
    client = await make_client(create_app(cfg))
    body = await (await client.get("/reviews/0")).json()
    assert body["reviews"][0]["rating"] == {"error": "Ratings service is currently unavailable"}


async def test_propagates_headers_to_ratings(make_client: Any, stand_in: Any) -> None:
    stand_in.answer("/ratings/", 200, {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}})
    client = await make_client(create_app(config(stand_in, ratings=True)))
    sent = {h: f"value-{i}" for i, h in enumerate(PROPAGATED)}
    await client.get("/reviews/0", headers={**sent, "x-not-propagated": "1"})
    got = stand_in.requests[0].headers
    for name, value in sent.items():
        assert got.get(name) == value, name
    assert "x-not-propagated" not in got


async def test_health_and_bad_ids(make_client: Any, stand_in: Any) -> None:
    client = await make_client(create_app(config(stand_in, ratings=False)))
    resp = await client.get("/health")
    assert (resp.status, await resp.text()) == (200, '{"status": "Reviews is healthy"}')
    assert (await client.get("/reviews/abc")).status == 404
    assert (await (await client.get("/reviews/007")).json())["id"] == "7"


def test_timeouts_follow_star_colour() -> None:
    assert ReviewsConfig(star_color="black").ratings_timeout == 10.0
    assert ReviewsConfig(star_color="red").ratings_timeout == 2.5


def test_config_from_env() -> None:
    cfg = ReviewsConfig.from_env({"ENABLE_RATINGS": "True", "STAR_COLOR": "red", "HOSTNAME": "reviews-v3-x",
                                  "RATINGS_HOSTNAME": "r", "RATINGS_SERVICE_PORT": "81", "SERVICES_DOMAIN": "ns",
                                  "HTTP_PROXY": "http://127.1.0.9:15001"})
    assert cfg == ReviewsConfig(ratings_enabled=True, star_color="red", pod_name="reviews-v3-x",
                                ratings_url="http://r.ns:81/ratings", proxy="http://127.1.0.9:15001")
