"""The four Bookinfo services as real processes on loopback, wired by environment variables (no mesh).

Checks what a browser or curl sees: the page for reviews v1 (no stars), v2 (black) and v3 (red), header
propagation from productpage through reviews to ratings (recorded by a stand-in ratings), the error texts
when details, reviews or ratings are down, and a clean exit on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import free_port


@dataclass
class App:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Recorder:
    """A stand-in ratings that records the headers of every request."""

    server: ThreadingHTTPServer
    headers: list[dict[str, str]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


class Bookinfo:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.apps: list[App] = []

    def start(self, service: str, name: str, **env: str) -> App:
        port = free_port()
        full = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}
        full.update({"SLUICE_BIND": "127.0.0.1", "SLUICE_PORT": str(port), "HOSTNAME": name, **env})
        log = self.tmp / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", f"sluice.samples.bookinfo.{service}"], env=full,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        app = App(name, port, proc, log)
        self.apps.append(app)
        return app

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        for app in self.apps:
            while True:
                assert app.proc.poll() is None, f"{app.name} exited: {app.log.read_text()}"
                try:
                    with urllib.request.urlopen(app.url + "/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"{app.name} not ready: {app.log.read_text()}"
                time.sleep(0.05)

    def stop(self) -> None:
        for app in self.apps:
            if app.proc.poll() is None:
                app.proc.send_signal(signal.SIGTERM)
        for app in self.apps:
            try:
                app.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                app.proc.kill()
                app.proc.wait()


def dead_port() -> str:
    return str(free_port())  # nothing listens there once free_port has closed its socket


def wired(details: App | None, reviews: App | None, ratings_port: int | None = None) -> dict[str, str]:
    return {
        "DETAILS_HOSTNAME": "127.0.0.1", "DETAILS_SERVICE_PORT": str(details.port) if details else dead_port(),
        "REVIEWS_HOSTNAME": "127.0.0.1", "REVIEWS_SERVICE_PORT": str(reviews.port) if reviews else dead_port(),
        "RATINGS_HOSTNAME": "127.0.0.1", "RATINGS_SERVICE_PORT": str(ratings_port or dead_port()),
    }


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    rec: list[Recorder] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            rec[0].headers.append({k.lower(): v for k, v in self.headers.items()})
            body = b'{"id":0,"ratings":{"Reviewer1":2,"Reviewer2":3}}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.append(Recorder(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec[0]
    server.shutdown()
    server.server_close()


@dataclass
class Deployed:
    pages: dict[str, App]
    ratings: App
    reviews_recorded: App


@pytest.fixture(scope="module")
def bookinfo(tmp_path_factory: pytest.TempPathFactory, recorder: Recorder) -> Iterator[Deployed]:
    b = Bookinfo(tmp_path_factory.mktemp("bookinfo"))
    try:
        details = b.start("details", "details-v1-aaaaa", SERVICE_VERSION="v1")
        ratings = b.start("ratings", "ratings-v1-bbbbb", SERVICE_VERSION="v1")
        rp = ratings.port
        r1 = b.start("reviews", "reviews-v1-11111", SERVICE_VERSION="v1", ENABLE_RATINGS="false",
                     **wired(None, None, rp))
        r2 = b.start("reviews", "reviews-v2-22222", SERVICE_VERSION="v2", ENABLE_RATINGS="true", STAR_COLOR="black",
                     **wired(None, None, rp))
        r3 = b.start("reviews", "reviews-v3-33333", SERVICE_VERSION="v3", ENABLE_RATINGS="true", STAR_COLOR="red",
                     **wired(None, None, rp))
        r_rec = b.start("reviews", "reviews-v2-rec", ENABLE_RATINGS="true", **wired(None, None, recorder.port))
        r_down = b.start("reviews", "reviews-v3-down", ENABLE_RATINGS="true", STAR_COLOR="red",
                         **wired(None, None, None))
        pages = {
            "v1": b.start("productpage", "productpage-v1", **wired(details, r1)),
            "v2": b.start("productpage", "productpage-v2", **wired(details, r2)),
            "v3": b.start("productpage", "productpage-v3", **wired(details, r3)),
            "recorded": b.start("productpage", "productpage-rec", **wired(details, r_rec)),
            "ratings-down": b.start("productpage", "productpage-rd", **wired(details, r_down)),
            "all-down": b.start("productpage", "productpage-down", **wired(None, None)),
        }
        b.wait_ready()
        yield Deployed(pages=pages, ratings=ratings, reviews_recorded=r_rec)
    finally:
        b.stop()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_v1_page_has_no_stars(bookinfo: Deployed) -> None:
    status, html = get(bookinfo.pages["v1"].url + "/productpage")
    assert status == 200
    assert "<title>Simple Bookstore App</title>" in html
    assert "The Comedy of Errors" in html and "PublisherA" in html and "1234567890" in html
    assert "Reviewer1" in html and "Reviewer2" in html
    assert "star-full" not in html
    assert "Reviews served by: reviews-v1-11111" in html


@pytest.mark.parametrize(("version", "color", "pod"), [("v2", "black", "reviews-v2-22222"),
                                                      ("v3", "red", "reviews-v3-33333")])
def test_v2_black_and_v3_red_stars(bookinfo: Deployed, version: str, color: str, pod: str) -> None:
    status, html = get(bookinfo.pages[version].url + "/productpage")
    assert status == 200
    assert html.count('class="star star-full') == 9  # 5 + 4 from ratings v1
    assert html.count('class="star star-empty') == 1
    assert html.count(f'data-color="{color}"') == 2
    assert f"Reviews served by: {pod}" in html


def test_service_json_through_productpage_api(bookinfo: Deployed) -> None:
    status, body = get(bookinfo.pages["v3"].url + "/api/v1/products/0/reviews")
    assert status == 200
    reviews = json.loads(body)
    assert reviews["podname"] == "reviews-v3-33333" and reviews["clustername"] == "null"
    assert [r["rating"] for r in reviews["reviews"]] == [{"stars": 5, "color": "red"}, {"stars": 4, "color": "red"}]
    status, body = get(bookinfo.ratings.url + "/ratings/0")
    assert (status, body) == (200, '{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}')


def test_headers_propagate_end_to_end(bookinfo: Deployed, recorder: Recorder) -> None:
    page = bookinfo.pages["recorded"].url
    # Sign in as jason: the session cookie makes productpage add `end-user: jason`.
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    login = urllib.request.Request(page + "/login", data=b"username=jason&passwd=x",
                                   headers={"Referer": page + "/productpage"})
    with opener.open(login, timeout=15) as r:
        assert r.status == 200 and "jason" in r.read().decode()
    recorder.headers.clear()
    sent = {"x-request-id": "a3d1f0c2-1111-2222-3333-444455556666",
            "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7", "x-b3-spanid": "e457b5a2e4d86bd1",
            "x-b3-sampled": "1", "traceparent": "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01",
            "user-agent": "bookinfo-test/1.0", "x-private": "stays here"}
    with opener.open(urllib.request.Request(page + "/productpage", headers=sent), timeout=15) as r:
        html = r.read().decode()
    assert html.count('class="star star-full') == 5  # the stand-in's 2 + 3 stars
    assert len(recorder.headers) == 1
    got = recorder.headers[0]
    for name in ("x-request-id", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "traceparent", "user-agent"):
        assert got.get(name) == sent[name], name
    assert got.get("end-user") == "jason"
    assert "session=" in got.get("cookie", "")
    assert "x-private" not in got


def test_error_texts_when_ratings_is_down(bookinfo: Deployed) -> None:
    status, html = get(bookinfo.pages["ratings-down"].url + "/productpage")
    assert status == 200
    assert html.count("Ratings service is currently unavailable") == 2
    assert "Book Reviews" in html and "star-full" not in html


def test_error_texts_when_details_and_reviews_are_down(bookinfo: Deployed) -> None:
    page = bookinfo.pages["all-down"].url
    status, html = get(page + "/productpage")
    assert status == 200
    assert "Error fetching product details" in html
    assert "Sorry, product details are currently unavailable for this book." in html
    assert "Error fetching product reviews" in html
    assert "Sorry, product reviews are currently unavailable for this book." in html
    status, metrics = get(page + "/metrics")
    assert 'request_result_total{destination_app="reviews",response_code="500"}' in metrics


def test_sigterm_exits_zero_promptly(tmp_path: Path) -> None:
    b = Bookinfo(tmp_path)
    app = b.start("details", "details-term")
    b.wait_ready()
    app.proc.send_signal(signal.SIGTERM)
    assert app.proc.wait(timeout=10) == 0
    assert "stopped" in app.log.read_text()
